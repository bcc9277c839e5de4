// What tables really cost: bytes allocated from the DPDK heaps (rte_malloc, memzones, rings),
// summed over every socket. A table measures itself as the difference around its creation.
#pragma once

#include <cstdint>

namespace tether::dataplane {

std::uint64_t heap_bytes_allocated();

}  // namespace tether::dataplane
