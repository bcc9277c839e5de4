// Sizes fixed for the life of the process.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tether::dataplane {

// Backend indices are stable for the process's life (flows and sessions hold them), so
// per-backend arrays are sized once for the most a configuration may name.
inline constexpr std::size_t kMaxBackends = 4096;
// Service indices likewise (flows and session keys hold them); below ServiceIndex::kRelated.
inline constexpr std::size_t kMaxServices = 4096;
// Reassembly buffers per worker (dpi_streams_per_worker), 2 KB each.
inline constexpr std::size_t kMaxDpiStreamsPerWorker = std::size_t{1} << 20;
// Inspected control connections per worker (dpi_sessions_per_worker), 48 bytes each: flow
// entries hold a connection's index in 31 bits.
inline constexpr std::size_t kMaxDpiSessionsPerWorker = std::size_t{1} << 24;

// Health probes leave from this port up (TCP, UDP, the ICMP identifier), one per probe:
// above Linux's default ephemeral range (32768-60999), so that replies to them are told from
// a kernel interface's own connections (keep its ip_local_port_range below this).
inline constexpr std::uint16_t kFirstProbePort = 61000;

}  // namespace tether::dataplane
