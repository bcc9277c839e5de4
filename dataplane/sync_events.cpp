#include "dataplane/sync_events.hpp"

#include <rte_ring.h>
#include <rte_ring_elem.h>

namespace tether::dataplane {

void SyncEventQueue::flush() {
  if (count_ == 0) return;
  const unsigned taken = rte_ring_sp_enqueue_burst_elem(ring_, pending_, sizeof(SyncEvent), count_, nullptr);
  counters_.sync_events += taken;
  counters_.sync_events_lost += count_ - taken;
  count_ = 0;
}

unsigned SyncEventQueue::room() const { return rte_ring_free_count(ring_); }

}  // namespace tether::dataplane
