// Every exchange between the control thread and the workers, created and owned in one place.
//
// A worker reaches the rest of the process only through the WorkerLinks it is handed, and
// the control thread reaches the workers only through Links: nothing else crosses threads.
// The table says who writes, who reads, and the ordering each side relies on.
//
//   link                 producer -> consumer                 ordering relied on
//   -------------------  -----------------------------------  --------------------------------
//   snapshot channel     control -> each worker (its own      rte_ring enqueue/dequeue order
//   (snapshot_channel)   SPSC ring); generation acks back     the pointer after the snapshot's
//                        over a second SPSC ring              construction; a snapshot is freed
//                                                             once every worker acked a newer one
//   flow-sample mailbox  control asks, the worker answers     request: release store of the
//   (flow_sample)        (one mailbox per worker)             generation, acquire load; answer:
//                                                             likewise through `answered`
//   session table        every worker adds, refreshes and     rte_hash RW_CONCURRENCY_LF and
//   (session_table)      ends entries; control sweeps and     MULTI_WRITER_ADD; deadlines and
//                        lists them                           call state relaxed atomics; a
//                                                             deleted slot is reused only after
//                                                             every worker's quiescent report
//   exception ring       every worker (MP) -> control (SC):   rte_ring: the frame is written
//                        probe replies, neighbour answers     before its mbuf is enqueued
//   outbound ring        control (SP) -> worker 0 (SC):       rte_ring, as above; mbuf->port
//                        control packets for ports without    holds the snapshot's port index
//                        a TX queue to spare
//   kernel ring          every worker (MP) -> control (SC):   rte_ring, as the exception ring;
//                        frames for a port's kernel interface mbuf->port is the DPDK port id
//                        (within each worker's rate limit)    it arrived on
//   counters             each worker its own -> control       relaxed std::atomic_ref stores by
//   (counters.hpp)       (reports, telemetry, idle exit,      the one worker that writes a
//                        `ha check`'s loop progress);
//                        also the flow table's size, a gauge  counter, relaxed loads by readers:
//                        the worker sets once a loop pass     totals may lag, never tear; the
//                                                             control thread never reads the
//                                                             worker's flow table (rte_hash)
//   stop flag            control -> every worker              relaxed: a worker needs to see it
//                                                             only eventually; the control
//                                                             thread then waits for the lcores
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dataplane/counters.hpp"
#include "dataplane/flow_sample.hpp"
#include "dataplane/limits.hpp"
#include "dataplane/session_table.hpp"
#include "dataplane/snapshot_channel.hpp"

struct rte_ring;

namespace tether::dataplane {

// One worker's end of every link.
struct WorkerLinks {
  SnapshotChannel* snapshots;  // null: the first snapshot stays
  SessionTable* sessions;
  FlowSampleMailbox* flow_samples;
  rte_ring* exceptions;  // null: no packet for the control thread is expected
  rte_ring* outbound;    // worker 0's only; null for the others
  rte_ring* to_kernel;   // null: no port has a kernel interface
  WorkerCounters* counters;
  std::span<BackendCounters> backend_counters;  // kMaxBackends: snapshots may add backends
  const std::atomic<bool>* stop;
};

class Links {
 public:
  // `session_capacity`: entries of the shared session table.
  // `kernel_interfaces`: whether any port has one (the kernel ring exists only then).
  Links(unsigned workers, std::uint32_t session_capacity, bool kernel_interfaces, int socket);
  // The workers must have stopped.
  ~Links() = default;
  Links(const Links&) = delete;
  Links& operator=(const Links&) = delete;

  WorkerLinks worker(unsigned index);

  // --- control thread ---
  SnapshotPublisher& snapshots() { return snapshots_; }
  SessionTable& sessions() { return sessions_; }
  rte_ring* exceptions() const { return exceptions_.get(); }
  rte_ring* outbound() const { return outbound_.get(); }
  rte_ring* to_kernel() const { return to_kernel_.get(); }
  void stop_workers() { stop_.store(true, std::memory_order_relaxed); }

 private:
  // What belongs to one worker, apart from the other workers' (cache-line aligned members).
  struct PerWorker {
    FlowSampleMailbox flow_samples;
    WorkerCounters counters;
    std::vector<BackendCounters> backend_counters = std::vector<BackendCounters>(kMaxBackends);
  };

  // Frees the ring and whatever packets it still holds.
  struct RingFree {
    void operator()(rte_ring* ring) const;
  };
  using Ring = std::unique_ptr<rte_ring, RingFree>;

  // Created in this order, the order tetherd has always used: where the session table lands
  // in the DPDK heap, behind the rings, shows in the SIP benchmark.
  Ring exceptions_;
  Ring outbound_;
  SnapshotPublisher snapshots_;
  SessionTable sessions_;
  Ring to_kernel_;
  std::vector<std::unique_ptr<PerWorker>> workers_;
  std::atomic<bool> stop_{false};
};

}  // namespace tether::dataplane
