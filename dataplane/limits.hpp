// Sizes fixed for the life of the process.
#pragma once

#include <cstddef>

namespace tether::dataplane {

// Backend indices are stable for the process's life (flows and sessions hold them), so
// per-backend arrays are sized once for the most a configuration may name.
inline constexpr std::size_t kMaxBackends = 4096;
// Service indices likewise (flows and session keys hold them); below ServiceIndex::kRelated.
inline constexpr std::size_t kMaxServices = 4096;
// Inspected control connections per worker (dpi_streams_per_worker): flow entries hold a
// stream's index in 31 bits.
inline constexpr std::size_t kMaxDpiStreamsPerWorker = std::size_t{1} << 20;

}  // namespace tether::dataplane
