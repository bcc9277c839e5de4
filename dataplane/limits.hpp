// Sizes fixed for the life of the process.
#pragma once

#include <cstddef>

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

}  // namespace tether::dataplane
