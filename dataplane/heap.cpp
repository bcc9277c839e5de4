#include "dataplane/heap.hpp"

#include <rte_lcore.h>
#include <rte_malloc.h>

namespace tether::dataplane {

std::uint64_t heap_bytes_allocated() {
  std::uint64_t total = 0;
  for (unsigned i = 0; i < rte_socket_count(); ++i) {
    rte_malloc_socket_stats stats{};
    if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &stats) == 0) total += stats.heap_allocsz_bytes;
  }
  return total;
}

}  // namespace tether::dataplane
