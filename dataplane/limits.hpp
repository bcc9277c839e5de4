// Sizes fixed for the life of the process.
#pragma once

#include <cstddef>

namespace tether::dataplane {

// Backend indices are stable for the process's life (flows and sessions hold them), so
// per-backend arrays are sized once for the most a configuration may name.
inline constexpr std::size_t kMaxBackends = 4096;
// Service indices likewise (flows and session keys hold them); below ServiceIndex::kRelated.
inline constexpr std::size_t kMaxServices = 4096;

}  // namespace tether::dataplane
