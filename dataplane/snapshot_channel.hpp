// How a new Snapshot reaches the workers without a lock on their path.
//
// The control thread publishes each snapshot with a generation number to every worker over
// that worker's own single-producer single-consumer rte_ring. A worker checks its ring at
// the top of every loop, outside any burst, switches, and acknowledges the generation on a
// return ring. A snapshot is freed only once every worker has acknowledged a newer one, so
// no worker ever reads a freed snapshot, and since snapshots are built completely before
// they are published, none reads a half-built one.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "dataplane/snapshot.hpp"

struct rte_ring;

namespace tether::dataplane {

// One worker's pair of rings.
class SnapshotChannel {
 public:
  SnapshotChannel(unsigned worker, int socket);
  ~SnapshotChannel();
  SnapshotChannel(const SnapshotChannel&) = delete;
  SnapshotChannel& operator=(const SnapshotChannel&) = delete;

  // Worker side: the newest snapshot waiting, or null; acknowledges it (and any skipped).
  const Snapshot* receive();
  // Control side.
  bool send(const Snapshot* snapshot);
  // The newest generation this worker acknowledged, after draining its acknowledgements.
  std::uint64_t acknowledged();

 private:
  rte_ring* to_worker_ = nullptr;
  rte_ring* to_control_ = nullptr;
  std::uint64_t acknowledged_ = 0;
};

// Control side: owns every snapshot still in use and frees them when no worker can see them.
class SnapshotPublisher {
 public:
  SnapshotPublisher(unsigned workers, int socket);

  // The first snapshot, handed to workers at construction (generation 1).
  const Snapshot* initial(std::unique_ptr<Snapshot> snapshot);
  // Publishes a new snapshot to every worker. False if a ring is full (a worker that has not
  // run for a while); the snapshot is kept and published again by the next retry().
  bool publish(std::unique_ptr<Snapshot> snapshot);
  // Collects acknowledgements, frees snapshots no worker can see, re-sends what failed.
  void collect();

  SnapshotChannel& channel(unsigned worker) { return *channels_[worker]; }
  const Snapshot* current() const { return live_.empty() ? nullptr : live_.back().get(); }
  std::size_t live_count() const { return live_.size(); }
  std::uint64_t generation() const { return generation_; }
  std::uint64_t freed() const { return freed_; }

 private:
  std::vector<std::unique_ptr<SnapshotChannel>> channels_;
  std::deque<std::unique_ptr<Snapshot>> live_;  // oldest first; back() is current
  std::uint64_t generation_ = 0;
  std::uint64_t freed_ = 0;
  std::vector<bool> pending_;  // worker still owed the current snapshot
};

}  // namespace tether::dataplane
