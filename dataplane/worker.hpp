// A worker: one lcore polling one RX queue on every port, run to completion.
//
// The burst loop reads top to bottom: receive, parse and classify, look the burst's flows up
// in one bulk call, schedule the misses, rewrite for DSR, transmit. Everything a worker
// writes (flow table, counters, TX buffers) is its own.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "dataplane/counters.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/snapshot.hpp"

struct rte_mbuf;

namespace tether::dataplane {

inline constexpr std::uint16_t kBurst = 32;
// Sweep this many flow-table slots per loop: a full sweep of 1M entries takes ~30k loops,
// well under a second when idle and a few seconds under load, far below any idle timeout.
inline constexpr unsigned kExpiryBudget = 32;

class Worker {
 public:
  Worker(unsigned index, std::uint16_t queue, const Snapshot* snapshot,
         std::uint32_t flow_capacity, int socket);

  void run(const std::atomic<bool>& stop);
  // One pass over every port: true if any packet arrived. run() is a loop of these.
  bool poll_once();

  const WorkerCounters& counters() const { return counters_; }
  const std::vector<BackendCounters>& backend_counters() const { return backend_counters_; }
  std::uint32_t flow_count() const { return flows_.size(); }
  unsigned index() const { return index_; }

 private:
  struct Pending {
    rte_mbuf* mbuf;
    FlowKey key;
    std::uint32_t signature;
    std::uint16_t service;
    std::uint8_t tcp_flags;
  };
  struct TxBuffer {
    std::uint16_t count = 0;
    rte_mbuf* mbufs[kBurst];
  };

  bool poll_port(std::uint16_t port_index, std::uint64_t now);
  // Either queues the packet in `pending` for a flow lookup, or answers or drops it.
  void classify(rte_mbuf* mbuf, std::uint16_t port_index, Pending* pending, unsigned& count);
  void answer_locally(rte_mbuf* mbuf, std::uint16_t port_index,
                      const parsers::ParsedFrame& parsed);
  void forward(Pending& packet, std::int32_t position, std::uint64_t now);
  std::uint16_t pick_backend(const ServiceView& service, const FlowKey& key,
                             std::uint32_t signature) const;
  void send(std::uint16_t port_index, rte_mbuf* mbuf);
  void send_reply(std::uint16_t port_index, rte_mbuf* mbuf, std::size_t length);
  void drop(rte_mbuf* mbuf, DropReason reason);
  void flush();

  unsigned index_;
  std::uint16_t queue_;
  const Snapshot* snapshot_;
  FlowTable flows_;
  WorkerCounters counters_;
  std::vector<BackendCounters> backend_counters_;
  std::vector<TxBuffer> tx_;
};

}  // namespace tether::dataplane
