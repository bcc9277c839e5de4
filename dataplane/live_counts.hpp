// Live sessions per backend, counted by every worker at once: SIP calls (kept by the session
// table) and TCP connections (kept by the workers' flow tables). The least-* schedulers and
// admission read them.
//
// Shared atomics rather than per-worker counts summed by a reader: a scheduler reads the
// count of every member of a pool for each new session, and summing N workers' counts there
// would cost N remote cache lines per member, where one relaxed load is a line that changes
// only when a session of that backend starts or ends. A count is one `lock xadd` on its start
// and one on its end (docs/performance.md measures it); the counts are relaxed, so a reader
// may see one a few sessions behind another worker's, never torn.
//
// Admission reserves with try_add(): a compare-and-swap that moves the count from below the
// capacity to one more, so that sessions admitted at once on N workers never take a backend
// past its capacity (a relaxed read, then an add, could overshoot by N - 1). The reservation
// is the session's count: the place that would have added it (the session table, the flow
// table's connection, the inspected control connection) takes it over, or gives it back
// with remove() when the session is not counted after all.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <span>

#include "control/maglev.hpp"
#include "dataplane/limits.hpp"

namespace tether::dataplane {

class LiveCounts {
 public:
  void add(std::uint16_t backend) { counts_[backend].fetch_add(1, std::memory_order_relaxed); }
  void remove(std::uint16_t backend) { counts_[backend].fetch_sub(1, std::memory_order_relaxed); }
  // Adds one if the count stays within `capacity`, and says whether it did. A full backend
  // costs a load and no write: refusals under overload do not bounce its line between workers.
  bool try_add(std::uint16_t backend, std::int64_t capacity) {
    std::atomic<std::int64_t>& count = counts_[backend];
    std::int64_t current = count.load(std::memory_order_relaxed);
    do {
      if (current >= capacity) return false;
    } while (!count.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
    return true;
  }
  // May be below 0 for a moment: a remove on one worker may be seen before the add on
  // another. Readers that rank backends take it as 0.
  std::int64_t at(std::uint16_t backend) const {
    return counts_[backend].load(std::memory_order_relaxed);
  }

 private:
  std::atomic<std::int64_t> counts_[kMaxBackends] = {};
};

// The member with the fewest live sessions per unit of weight (weighted least-connections as
// IPVS's wlc, without its inactive-connection term); members of weight 0 take nothing, ties go
// to the first listed. `Member` has `backend` and `weight`.
template <typename Member>
std::uint16_t least_loaded(std::span<const Member> members, const LiveCounts& counts) {
  std::uint16_t best = kNoBackend;
  std::int64_t best_count = 0;
  std::uint32_t best_weight = 1;
  for (const Member& member : members) {
    if (member.weight == 0) continue;
    const std::int64_t count = std::max<std::int64_t>(0, counts.at(member.backend));
    // count / weight < best_count / best_weight, without division
    if (best == kNoBackend || count * best_weight < best_count * member.weight) {
      best = member.backend;
      best_count = count;
      best_weight = member.weight;
    }
  }
  return best;
}

}  // namespace tether::dataplane
