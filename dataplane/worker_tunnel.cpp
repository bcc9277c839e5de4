// The worker's tunnel step (README "Tunnel forwarding"): an ipip or gue service's packet is
// wrapped in place, in the headroom DPDK leaves before every received frame, between its
// Ethernet header (VLAN tags included: the packet leaves on the port it came in by, like
// DSR's) and its IP packet; transmit_to_backend then rewrites the MACs to the next hop's.
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

#include "dataplane/worker.hpp"

namespace tether::dataplane {
namespace {

constexpr std::uint16_t kEtherTypeIpv4 = parsers::kEthIpv4;
constexpr std::uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr std::size_t kEthernetHeaderLength = 14;  // untagged

// The Ethernet header's length, with its 802.1Q/802.1ad tags, as parse_frame accepted it.
std::size_t l2_length_of(const std::uint8_t* frame, std::size_t length) {
  std::size_t offset = 12;
  while (offset + 6 <= length) {
    const unsigned type = frame[offset] << 8 | frame[offset + 1];
    if (type != 0x8100 && type != 0x88a8) break;
    offset += 4;
  }
  return offset + 2;
}

void set_ether_type(std::uint8_t* frame, std::size_t l2_length, std::uint16_t type) {
  frame[l2_length - 2] = static_cast<std::uint8_t>(type >> 8);
  frame[l2_length - 1] = static_cast<std::uint8_t>(type);
}

}  // namespace

// The common frame (untagged, in one segment, within the MTU once wrapped) straight into its
// headers, for one outer family and encapsulation known at compile time; false leaves the
// frame untouched to the general path (tags, padding in a chain, errors). The general path
// alone cost GUE a fifth of DSR's rate, this one about a tenth (docs/performance.md): its
// branches on the family and the encapsulation, taken per packet, were most of the gap.
template <bool kOuterIpv4, Forwarding kForwarding>
bool Worker::wrap_common_frame(rte_mbuf* mbuf, const TunnelEndpoint& endpoint, std::uint32_t flow_hash) {
  constexpr std::size_t overhead = tunnel_overhead(kOuterIpv4, kForwarding);
  const auto* frame = rte_pktmbuf_mtod(mbuf, const std::uint8_t*);
  const std::size_t in_segment = rte_pktmbuf_data_len(mbuf);
  if (mbuf->nb_segs != 1 || in_segment <= kEthernetHeaderLength || rte_pktmbuf_headroom(mbuf) < overhead)
    return false;
  const unsigned type = frame[12] << 8 | frame[13];
  if (type != kEtherTypeIpv4 && type != kEtherTypeIpv6) return false;
  const std::size_t ip_length = ip_packet_length({frame + kEthernetHeaderLength, in_segment - kEthernetHeaderLength});
  if (ip_length == 0 || kEthernetHeaderLength + ip_length > in_segment || ip_length + overhead > endpoint.mtu)
    return false;
  const auto wrapped_length = static_cast<std::uint16_t>(kEthernetHeaderLength + overhead + ip_length);
  mbuf->data_off = static_cast<std::uint16_t>(mbuf->data_off - overhead);
  mbuf->data_len = wrapped_length;  // the Ethernet minimum's padding, if any, left behind
  mbuf->pkt_len = wrapped_length;
  auto* wrapped = rte_pktmbuf_mtod(mbuf, std::uint8_t*);
  set_ether_type(wrapped, kEthernetHeaderLength, kOuterIpv4 ? kEtherTypeIpv4 : kEtherTypeIpv6);
  write_tunnel_headers(wrapped + kEthernetHeaderLength, endpoint, kForwarding,
                       {wrapped + kEthernetHeaderLength + overhead, ip_length}, flow_hash);
  counters_.tunnelled++;
  return true;
}

bool Worker::encapsulate(rte_mbuf* mbuf, const TunnelEndpoint& endpoint, Forwarding forwarding,
                         std::uint32_t flow_hash) {
  const bool gue = forwarding == Forwarding::gue;
  const bool common = endpoint.outer_ipv4
                           ? (gue ? wrap_common_frame<true, Forwarding::gue>(mbuf, endpoint, flow_hash)
                                  : wrap_common_frame<true, Forwarding::ipip>(mbuf, endpoint, flow_hash))
                           : (gue ? wrap_common_frame<false, Forwarding::gue>(mbuf, endpoint, flow_hash)
                                  : wrap_common_frame<false, Forwarding::ipip>(mbuf, endpoint, flow_hash));
  if (common) return true;
  const auto* frame = rte_pktmbuf_mtod(mbuf, const std::uint8_t*);
  const std::size_t in_segment = rte_pktmbuf_data_len(mbuf);
  const std::size_t overhead = tunnel_overhead(endpoint.outer_ipv4, forwarding);
  const std::size_t l2_length = l2_length_of(frame, in_segment);
  const std::size_t ip_length =
      l2_length < in_segment ? ip_packet_length({frame + l2_length, in_segment - l2_length}) : 0;
  const std::size_t frame_length = rte_pktmbuf_pkt_len(mbuf);
  if (ip_length == 0 || l2_length + ip_length > frame_length) {
    drop(mbuf, DropReason::tunnel_unwrappable);
    return false;
  }
  if (ip_length + overhead > endpoint.mtu) {
    refuse_too_big(mbuf, l2_length, ip_length, static_cast<std::uint16_t>(endpoint.mtu - overhead));
    return false;
  }
  const bool checksums_payload = forwarding == Forwarding::gue && !endpoint.outer_ipv4;
  if (checksums_payload && mbuf->nb_segs > 1) {  // frames beyond tables.mbuf_size only
    drop(mbuf, DropReason::multi_segment);
    return false;
  }
  // What follows the IP packet is the Ethernet minimum's padding: the tunnel would carry it.
  if (frame_length > l2_length + ip_length &&
      rte_pktmbuf_trim(mbuf, static_cast<std::uint16_t>(frame_length - l2_length - ip_length)) != 0) {
    drop(mbuf, DropReason::tunnel_unwrappable);
    return false;
  }
  auto* wrapped = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_prepend(mbuf, static_cast<std::uint16_t>(overhead)));
  if (wrapped == nullptr) {
    drop(mbuf, DropReason::tunnel_unwrappable);
    return false;
  }
  // transmit_to_backend writes both MACs next: only VLAN tags move, and the EtherType is new.
  constexpr std::size_t kMacs = 12;
  if (l2_length > kMacs + 2) std::memmove(wrapped + kMacs, wrapped + overhead + kMacs, l2_length - kMacs - 2);
  set_ether_type(wrapped, l2_length, endpoint.outer_ipv4 ? kEtherTypeIpv4 : kEtherTypeIpv6);
  // Only GUE over IPv6 reads past the inner header's first bytes, and only in one segment.
  write_tunnel_headers(wrapped + l2_length, endpoint, forwarding, {wrapped + l2_length + overhead, ip_length},
                       flow_hash);
  counters_.tunnelled++;
  return true;
}

void Worker::refuse_too_big(rte_mbuf* mbuf, std::size_t l2_length, std::size_t ip_length, std::uint16_t mtu) {
  auto* frame = rte_pktmbuf_mtod(mbuf, std::uint8_t*);
  const std::span<const std::uint8_t> packet{frame + l2_length,
                                             std::min<std::size_t>(ip_length, rte_pktmbuf_data_len(mbuf) - l2_length)};
  if (!may_answer_too_big(packet)) return drop(mbuf, DropReason::tunnel_too_big_unanswerable);
  KernelAllowance& bucket = too_big_allowance_;
  bucket.credit = std::min(bucket.credit + (now_ - bucket.last), 50 * too_big_cost_tsc_);
  bucket.last = now_;
  if (bucket.credit < too_big_cost_tsc_) return drop(mbuf, DropReason::tunnel_too_big_rate_limited);
  bucket.credit -= too_big_cost_tsc_;

  const bool ipv4 = (packet[0] >> 4) == 4;
  const std::size_t header = too_big_header_length(ipv4);
  const std::size_t quote = too_big_quote_length(ipv4, packet.size());
  auto* reply = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_prepend(mbuf, static_cast<std::uint16_t>(header)));
  if (reply == nullptr) return drop(mbuf, DropReason::tunnel_unwrappable);
  std::memmove(reply, reply + header, l2_length);
  // Back where the packet came from: the client's router's MAC, from the port's.
  std::uint8_t client_mac[6];
  std::memcpy(client_mac, reply + 6, 6);
  std::memcpy(reply + 6, reply, 6);
  std::memcpy(reply, client_mac, 6);
  write_too_big_headers(reply + l2_length, {reply + l2_length + header, quote}, mtu);
  // The quote lies in the first segment: the rest of a chain goes.
  if (mbuf->next != nullptr) {
    rte_pktmbuf_free(mbuf->next);
    mbuf->next = nullptr;
    mbuf->nb_segs = 1;
  }
  std::uint16_t port_index = 0;
  while (port_index + 1u < snapshot_->ports.size() && snapshot_->ports[port_index].port_id != mbuf->port)
    ++port_index;
  counters_.icmp_too_big_sent++;
  send_reply(port_index, mbuf, l2_length + header + quote);
}

}  // namespace tether::dataplane
