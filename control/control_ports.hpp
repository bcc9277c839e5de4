// The control thread's way out through the dataplane ports, for health probes and neighbour
// requests: the port's own control TX queue, or, on a device without a queue to spare,
// worker 0's outbound ring (worker 0 transmits those packets on its own queue).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "control/address.hpp"

struct rte_mempool;
struct rte_ring;
struct rte_mbuf;

namespace tether {

struct ControlPort {
  std::uint16_t port_id;
  MacBytes mac;
  int control_queue;  // -1: no TX queue to spare: packets go out through `outbound`
  rte_mempool* pool;
  rte_ring* outbound;
  std::vector<IpBytes> addresses;  // the port's interface addresses (config order)
};

class ControlPorts {
 public:
  explicit ControlPorts(std::vector<ControlPort> ports) : ports_(std::move(ports)) {}

  const ControlPort& operator[](std::size_t index) const { return ports_[index]; }
  std::size_t size() const { return ports_.size(); }
  // The index of the port with DPDK port id `port_id` (as received mbufs carry it).
  std::optional<std::size_t> index_of(std::uint16_t port_id) const;
  // The port's first interface address of the family of `peer`: what packets to `peer` come from.
  std::optional<IpBytes> source_for(std::size_t index, const IpBytes& peer) const;

  rte_mbuf* allocate(std::size_t index) const;
  // Sends `mbuf` out of the port; a packet that cannot leave is freed (a probe that never
  // left times out like a lost one) and false returned.
  bool transmit(std::size_t index, rte_mbuf* mbuf) const;

 private:
  std::vector<ControlPort> ports_;
};

}  // namespace tether
