#include "control/control_ports.hpp"

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

namespace tether {

std::optional<std::size_t> ControlPorts::index_of(std::uint16_t port_id) const {
  for (std::size_t i = 0; i < ports_.size(); ++i)
    if (ports_[i].port_id == port_id) return i;
  return std::nullopt;
}

std::optional<IpBytes> ControlPorts::source_for(std::size_t index, const IpBytes& peer) const {
  for (const auto& address : ports_[index].addresses)
    if (parsers::is_ipv4_mapped(address) == parsers::is_ipv4_mapped(peer)) return address;
  return std::nullopt;
}

rte_mbuf* ControlPorts::allocate(std::size_t index) const { return rte_pktmbuf_alloc(ports_[index].pool); }

bool ControlPorts::transmit(std::size_t index, rte_mbuf* mbuf) const {
  const ControlPort& port = ports_[index];
  bool sent;
  if (port.control_queue >= 0) {
    sent = rte_eth_tx_burst(port.port_id, static_cast<std::uint16_t>(port.control_queue), &mbuf, 1) == 1;
  } else {
    mbuf->port = static_cast<std::uint16_t>(index);
    sent = rte_ring_sp_enqueue(port.outbound, mbuf) == 0;
  }
  if (!sent) rte_pktmbuf_free(mbuf);
  return sent;
}

}  // namespace tether
