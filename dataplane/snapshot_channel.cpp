#include "dataplane/snapshot_channel.hpp"

#include "dataplane/dpdk_objects.hpp"

#include <rte_errno.h>
#include <rte_ring.h>

#include <stdexcept>
#include <string>

namespace tether::dataplane {
namespace {

constexpr unsigned kRingSize = 64;
constexpr unsigned kFlags = RING_F_SP_ENQ | RING_F_SC_DEQ;  // one control thread, one worker

}  // namespace

SnapshotChannel::SnapshotChannel(unsigned worker, int socket)
    : to_worker_(make_ring("snap_to_w" + std::to_string(worker), kRingSize, socket, kFlags)) {
  try {
    to_control_ = make_ring("snap_ack_w" + std::to_string(worker), kRingSize, socket, kFlags);
  } catch (...) {
    rte_ring_free(to_worker_);
    throw;
  }
}

SnapshotChannel::~SnapshotChannel() {
  rte_ring_free(to_worker_);
  rte_ring_free(to_control_);
}

const Snapshot* SnapshotChannel::receive() {
  void* newest = nullptr;
  void* next;
  while (rte_ring_sc_dequeue(to_worker_, &next) == 0) newest = next;
  if (newest == nullptr) return nullptr;
  // The acknowledgement ring is as large as the request ring: it cannot be full while the
  // control thread keeps at most kRingSize snapshots unacknowledged.
  const auto* snapshot = static_cast<const Snapshot*>(newest);
  rte_ring_sp_enqueue(to_control_, reinterpret_cast<void*>(static_cast<std::uintptr_t>(snapshot->generation)));
  return snapshot;
}

bool SnapshotChannel::send(const Snapshot* snapshot) {
  return rte_ring_sp_enqueue(to_worker_, const_cast<Snapshot*>(snapshot)) == 0;
}

std::uint64_t SnapshotChannel::acknowledged() {
  void* generation;
  while (rte_ring_sc_dequeue(to_control_, &generation) == 0)
    acknowledged_ = reinterpret_cast<std::uintptr_t>(generation);
  return acknowledged_;
}

SnapshotPublisher::SnapshotPublisher(unsigned workers, int socket) : pending_(workers, false) {
  for (unsigned w = 0; w < workers; ++w)
    channels_.push_back(std::make_unique<SnapshotChannel>(w, socket));
}

const Snapshot* SnapshotPublisher::initial(std::unique_ptr<Snapshot> snapshot) {
  snapshot->generation = ++generation_;
  live_.push_back(std::move(snapshot));
  return live_.back().get();
}

bool SnapshotPublisher::publish(std::unique_ptr<Snapshot> snapshot) {
  snapshot->generation = ++generation_;
  live_.push_back(std::move(snapshot));
  pending_.assign(channels_.size(), true);
  collect();
  for (bool p : pending_)
    if (p) return false;
  return true;
}

void SnapshotPublisher::collect() {
  const Snapshot* newest = current();
  for (std::size_t w = 0; w < channels_.size(); ++w)
    if (pending_[w] && channels_[w]->send(newest)) pending_[w] = false;
  // The oldest generation any worker may still read: what it acknowledged last (a worker
  // holds its snapshot until it switches to a newer one).
  std::uint64_t oldest_in_use = generation_;
  for (auto& channel : channels_) oldest_in_use = std::min(oldest_in_use, channel->acknowledged());
  // Generation 1 is handed over directly, without a ring: count it as acknowledged.
  oldest_in_use = std::max<std::uint64_t>(oldest_in_use, 1);
  while (live_.size() > 1 && live_.front()->generation < oldest_in_use) {
    live_.pop_front();
    ++freed_;
  }
}

}  // namespace tether::dataplane
