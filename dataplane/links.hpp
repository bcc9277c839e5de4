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
//   live connections     every worker counts the TCP          relaxed atomic add/sub per backend
//   (live_counts.hpp)    connections it opens and ends;       (LiveCounts): any reader may see a
//                        workers' schedulers and the control  count a few connections behind
//                        thread read the sums
//   fragment table       every worker adds a routed first     as the session table (a second
//   (fragments)          fragment's datagram and reads it     SessionTable); the count of a
//                        for the later ones; control sweeps   datagram's fragments and the
//                                                             bytes seen: relaxed fetch_add,
//                                                             fetch_or
//   fragment handoff     every other worker (MP) -> the       rte_ring of FragmentBuffer::Piece
//   (fragments)          worker reassembling a SIP datagram   values: the mbuf's bytes before
//                        (SC, its own ring): that datagram's  the enqueue; the owner drains
//                        pieces RSS gave the others           its ring once a loop pass
//   exception ring       every worker (MP) -> control (SC):   rte_ring: the frame is written
//                        probe replies, neighbour answers     before its mbuf is enqueued
//   outbound ring        control (SP) -> worker 0 (SC):       rte_ring, as above; mbuf->port
//                        control packets for ports without    holds the snapshot's port index
//                        a TX queue to spare
//   kernel ring          every worker (MP) -> control (SC):   rte_ring, as the exception ring;
//                        frames for a port's kernel interface mbuf->port is the DPDK port id
//                        (within each worker's rate limit)    it arrived on
//   sync event ring      each worker (SP) -> control (SC):    rte_ring of 64-byte elements,
//   (sync_events)        session changes and synced flows     copied in and out by value
//                        for state sync
//   sync dump request    control asks, each worker walks its  request: release store of the
//   (SyncDumpRequest)    flow table onto its sync event ring  generation, acquire load; done:
//                                                             likewise, after the last event
//                                                             of the walk is enqueued
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

#include "dataplane/admission.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/flow_sample.hpp"
#include "dataplane/limits.hpp"
#include "dataplane/live_counts.hpp"
#include "dataplane/fragments.hpp"
#include "dataplane/session_table.hpp"
#include "dataplane/snapshot_channel.hpp"
#include "dataplane/sync_events.hpp"

struct rte_ring;

namespace tether::dataplane {

// The control thread's request that a worker report every synced flow of its table again
// (a bulk dump for a peer that starts or rejoins). One per worker.
struct alignas(64) SyncDumpRequest {
  std::atomic<std::uint64_t> requested{0};
  std::atomic<std::uint64_t> done{0};
};

// One worker's end of every link.
struct WorkerLinks {
  SnapshotChannel* snapshots;  // null: the first snapshot stays
  SessionTable* sessions;
  LiveCounts* connections;  // live TCP connections per backend, of every worker
  AdmissionLimits* admission;  // rate limits, shared
  FlowSampleMailbox* flow_samples;
  rte_ring* exceptions;  // null: no packet for the control thread is expected
  rte_ring* outbound;    // worker 0's only; null for the others
  rte_ring* to_kernel;   // null: no port has a kernel interface
  rte_ring* sync_events;  // null: state sync is off
  SyncDumpRequest* sync_dump;
  WorkerCounters* counters;
  std::span<BackendCounters> backend_counters;  // kMaxBackends: snapshots may add backends
  std::span<ServiceCounters> service_counters;  // kMaxServices, likewise
  const std::atomic<bool>* stop;
  FragmentTable* fragments;  // the datagrams whose first fragment was routed (dataplane/fragments.hpp)
  FragmentHandoffs* fragment_handoffs;  // null with one worker
};

class Links {
 public:
  // `session_capacity`: entries of the shared session table.
  // `kernel_interfaces`: whether any port has one (the kernel ring exists only then).
  // `sync`: whether state sync is on (the sync event rings exist only then).
  // `fragments`: the shared fragment table's entries, and the handoff rings' (a worker's
  // buffer) size.
  Links(unsigned workers, std::uint32_t session_capacity, bool kernel_interfaces, bool sync,
        int socket, const FragmentSettings& fragments = {});
  // The workers must have stopped.
  ~Links() = default;
  Links(const Links&) = delete;
  Links& operator=(const Links&) = delete;

  WorkerLinks worker(unsigned index);

  // --- control thread ---
  SnapshotPublisher& snapshots() { return snapshots_; }
  SessionTable& sessions() { return sessions_; }
  const LiveCounts& connections() const { return connections_; }
  FragmentTable& fragments() { return fragments_; }
  const FragmentHandoffs* fragment_handoffs() const { return fragment_handoffs_.get(); }
  rte_ring* exceptions() const { return exceptions_.get(); }
  rte_ring* outbound() const { return outbound_.get(); }
  rte_ring* to_kernel() const { return to_kernel_.get(); }
  // Null when state sync is off.
  rte_ring* sync_events(unsigned worker) const { return workers_.at(worker)->sync_events.get(); }
  SyncDumpRequest& sync_dump(unsigned worker) { return workers_.at(worker)->sync_dump; }
  unsigned worker_count() const { return static_cast<unsigned>(workers_.size()); }
  void stop_workers() { stop_.store(true, std::memory_order_relaxed); }

 private:
  // Frees the ring and whatever packets it still holds.
  struct RingFree {
    void operator()(rte_ring* ring) const;
  };
  using Ring = std::unique_ptr<rte_ring, RingFree>;
  // A ring of values, not of mbufs.
  struct ValueRingFree {
    void operator()(rte_ring* ring) const;
  };
  using ValueRing = std::unique_ptr<rte_ring, ValueRingFree>;

  // What belongs to one worker, apart from the other workers' (cache-line aligned members).
  struct PerWorker {
    FlowSampleMailbox flow_samples;
    WorkerCounters counters;
    std::vector<BackendCounters> backend_counters = std::vector<BackendCounters>(kMaxBackends);
    std::vector<ServiceCounters> service_counters = std::vector<ServiceCounters>(kMaxServices);
    ValueRing sync_events;
    SyncDumpRequest sync_dump;
  };

  // Created in this order, the order tetherd has always used: where the session table lands
  // in the DPDK heap, behind the rings, shows in the SIP benchmark.
  Ring exceptions_;
  Ring outbound_;
  SnapshotPublisher snapshots_;
  SessionTable sessions_;
  std::unique_ptr<AdmissionLimits> admission_ = std::make_unique<AdmissionLimits>();
  Ring to_kernel_;
  LiveCounts connections_;
  std::vector<std::unique_ptr<PerWorker>> workers_;
  std::atomic<bool> stop_{false};
  FragmentTable fragments_;  // last: the session table's place in the heap stays as it was
  std::unique_ptr<FragmentHandoffs> fragment_handoffs_;
};

}  // namespace tether::dataplane
