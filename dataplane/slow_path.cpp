#include "dataplane/slow_path.hpp"

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <cstring>

#include "dataplane/limits.hpp"
#include "dataplane/worker.hpp"

namespace tether::dataplane {
namespace {

constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kNeighbourMessage = 24;  // type, code, checksum, flags, target
constexpr std::size_t kLinkLayerOption = 8;

void set_ethernet(std::uint8_t* frame, const parsers::MacBytes& dst, const parsers::MacBytes& src) {
  std::memcpy(frame, dst.data(), 6);
  std::memcpy(frame + 6, src.data(), 6);
}

void store_be16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

// ICMPv4 checksum: one's complement of the message alone (no pseudo-header).
std::uint16_t icmp_checksum(const std::uint8_t* message, std::size_t length) {
  return static_cast<std::uint16_t>(~rte_raw_cksum(message, length));
}

void set_icmpv6_checksum(std::uint8_t* ipv6, std::uint8_t* icmp) {
  icmp[2] = icmp[3] = 0;
  const std::uint16_t sum = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ipv6), icmp);
  std::memcpy(icmp + 2, &sum, 2);  // already in network order
}

bool plain_ipv6(const parsers::ParsedFrame& parsed) {
  return parsed.l3 == parsers::L3Kind::ipv6 && parsed.l4_offset == parsed.l3_offset + kIpv6Header &&
         parsed.l4_proto == parsers::kProtoIcmpv6;
}

}  // namespace

std::size_t answer_arp(std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                       const parsers::MacBytes& our_mac) {
  if (parsed.l3 != parsers::L3Kind::arp || parsed.arp.operation != 1) return 0;
  std::uint8_t* arp = frame + parsed.l3_offset;
  set_ethernet(frame, parsed.src_mac, our_mac);
  store_be16(arp + 6, 2);
  std::memcpy(arp + 8, our_mac.data(), 6);
  std::memcpy(arp + 14, parsed.arp.target_ip, 4);
  std::memcpy(arp + 18, parsed.arp.sender_mac.data(), 6);
  std::memcpy(arp + 24, parsed.arp.sender_ip, 4);
  return parsed.l3_end;
}

std::size_t answer_icmp_echo(std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                             const parsers::MacBytes& our_mac) {
  std::uint8_t* ip = frame + parsed.l3_offset;
  std::uint8_t* icmp = frame + parsed.l4_offset;
  const std::size_t icmp_length = parsed.l3_end - parsed.l4_offset;
  if (parsed.l3 == parsers::L3Kind::ipv4 && parsed.l4_proto == parsers::kProtoIcmp &&
      parsed.icmp_type == kIcmpEchoRequest) {
    std::uint8_t address[4];
    std::memcpy(address, ip + 12, 4);
    std::memcpy(ip + 12, ip + 16, 4);
    std::memcpy(ip + 16, address, 4);
    ip[8] = 64;  // a fresh TTL, as a host would send
    ip[10] = ip[11] = 0;
    const std::uint16_t ip_sum = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
    std::memcpy(ip + 10, &ip_sum, 2);
    icmp[0] = 0;  // echo reply
    icmp[1] = 0;
    icmp[2] = icmp[3] = 0;
    const std::uint16_t sum = icmp_checksum(icmp, icmp_length);
    std::memcpy(icmp + 2, &sum, 2);
  } else if (plain_ipv6(parsed) && parsed.icmp_type == kIcmpv6EchoRequest) {
    std::uint8_t address[16];
    std::memcpy(address, ip + 8, 16);
    std::memcpy(ip + 8, ip + 24, 16);
    std::memcpy(ip + 24, address, 16);
    ip[7] = 64;
    icmp[0] = 129;  // echo reply
    icmp[1] = 0;
    set_icmpv6_checksum(ip, icmp);
  } else {
    return 0;
  }
  set_ethernet(frame, parsed.src_mac, our_mac);
  return parsed.l3_end;
}

bool neighbour_solicitation_target(const std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                                   parsers::IpBytes& target) {
  if (!plain_ipv6(parsed) || parsed.icmp_type != kIcmpv6NeighbourSolicitation) return false;
  const std::uint8_t* ip = frame + parsed.l3_offset;
  const std::uint8_t* icmp = frame + parsed.l4_offset;
  // RFC 4861 7.1.1: hop limit 255 proves the sender is on link; code 0; room for the target.
  if (ip[7] != 255 || icmp[1] != 0 || static_cast<std::size_t>(parsed.l3_end - parsed.l4_offset) < kNeighbourMessage)
    return false;
  std::memcpy(target.data(), icmp + 8, 16);
  return true;
}

std::size_t answer_neighbour_solicitation(std::uint8_t* frame, std::size_t capacity,
                                          const parsers::ParsedFrame& parsed,
                                          const parsers::MacBytes& our_mac) {
  parsers::IpBytes target;
  if (!neighbour_solicitation_target(frame, parsed, target)) return 0;
  const std::size_t length = parsed.l3_offset + kIpv6Header + kNeighbourMessage + kLinkLayerOption;
  if (length > capacity) return 0;

  std::uint8_t* ip = frame + parsed.l3_offset;
  std::uint8_t* icmp = ip + kIpv6Header;
  const parsers::IpBytes unspecified{};
  const bool duplicate_address_detection = parsed.src_ip == unspecified;
  parsers::MacBytes dst_mac = parsed.src_mac;
  if (duplicate_address_detection) {
    // RFC 4861 7.2.4: answer a DAD probe to all-nodes, without the solicited flag.
    static constexpr std::uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0,
                                                   0,    0,    0, 0, 0, 0, 0, 1};
    std::memcpy(ip + 24, all_nodes, 16);
    dst_mac = {0x33, 0x33, 0, 0, 0, 1};
  } else {
    std::memcpy(ip + 24, parsed.src_ip.data(), 16);
  }
  std::memcpy(ip + 8, target.data(), 16);
  store_be16(ip + 4, kNeighbourMessage + kLinkLayerOption);
  ip[6] = parsers::kProtoIcmpv6;
  ip[7] = 255;

  icmp[0] = 136;  // neighbour advertisement
  icmp[1] = 0;
  icmp[4] = duplicate_address_detection ? 0x20 : 0x60;  // override, and solicited unless DAD
  icmp[5] = icmp[6] = icmp[7] = 0;
  std::memcpy(icmp + 8, target.data(), 16);
  icmp[24] = 2;  // target link-layer address option, 1 x 8 bytes
  icmp[25] = 1;
  std::memcpy(icmp + 26, our_mac.data(), 6);
  set_icmpv6_checksum(ip, icmp);
  set_ethernet(frame, dst_mac, our_mac);
  return length;
}

std::size_t build_arp_request(std::uint8_t* frame, std::size_t capacity,
                              const parsers::MacBytes& our_mac, const parsers::IpBytes& our_address,
                              const parsers::IpBytes& target) {
  if (capacity < kArpRequestLength) return 0;
  std::memset(frame, 0, kArpRequestLength);
  set_ethernet(frame, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, our_mac);
  store_be16(frame + 12, 0x0806);
  std::uint8_t* arp = frame + 14;
  store_be16(arp, 1);       // Ethernet
  store_be16(arp + 2, 0x0800);
  arp[4] = 6;
  arp[5] = 4;
  store_be16(arp + 6, 1);   // request
  std::memcpy(arp + 8, our_mac.data(), 6);
  std::memcpy(arp + 14, our_address.data() + 12, 4);
  std::memcpy(arp + 24, target.data() + 12, 4);  // target MAC stays zero
  return kArpRequestLength;
}

namespace {

// A neighbour discovery message of our own (solicitation or advertisement): Ethernet to
// `dst` (`group`'s multicast MAC, RFC 2464 7), IPv6 from `source` with hop limit 255 (RFC 4861
// 7.1: receivers drop what crossed a router), the message about `target` with `flags`, and
// our MAC in one link-layer address option of type `option`. The frame is whole: 86 bytes.
static_assert(kNeighbourSolicitationLength == kUnsolicitedAdvertisementLength);
void write_neighbour_message(std::uint8_t* frame, const parsers::MacBytes& our_mac,
                             const parsers::IpBytes& source, const parsers::IpBytes& group,
                             std::uint8_t type, std::uint8_t flags, const parsers::IpBytes& target,
                             std::uint8_t option) {
  std::memset(frame, 0, kNeighbourSolicitationLength);
  set_ethernet(frame, {0x33, 0x33, group[12], group[13], group[14], group[15]}, our_mac);
  store_be16(frame + 12, 0x86dd);
  std::uint8_t* ip = frame + 14;
  ip[0] = 0x60;
  store_be16(ip + 4, kNeighbourMessage + kLinkLayerOption);
  ip[6] = parsers::kProtoIcmpv6;
  ip[7] = 255;
  std::memcpy(ip + 8, source.data(), 16);
  std::memcpy(ip + 24, group.data(), 16);
  std::uint8_t* icmp = ip + kIpv6Header;
  icmp[0] = type;
  icmp[4] = flags;
  std::memcpy(icmp + 8, target.data(), 16);
  icmp[24] = option;
  icmp[25] = 1;  // 1 x 8 bytes
  std::memcpy(icmp + 26, our_mac.data(), 6);
  set_icmpv6_checksum(ip, icmp);
}

}  // namespace

std::size_t build_neighbour_solicitation(std::uint8_t* frame, std::size_t capacity,
                                         const parsers::MacBytes& our_mac,
                                         const parsers::IpBytes& our_address,
                                         const parsers::IpBytes& target) {
  if (capacity < kNeighbourSolicitationLength) return 0;
  // RFC 4291 2.7.1: ff02::1:ffXX:XXXX from the target's low 24 bits. The source link-layer
  // address option lets the target answer at once.
  const parsers::IpBytes group{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, target[13], target[14], target[15]};
  write_neighbour_message(frame, our_mac, our_address, group, kIcmpv6NeighbourSolicitation, 0, target, 1);
  return kNeighbourSolicitationLength;
}

std::size_t build_unsolicited_advertisement(std::uint8_t* frame, std::size_t capacity,
                                            const parsers::MacBytes& our_mac,
                                            const parsers::IpBytes& address) {
  if (capacity < kUnsolicitedAdvertisementLength) return 0;
  const parsers::IpBytes all_nodes{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  // Override only (0x20): neighbours replace the MAC they hold for the address; the target
  // link-layer address option (2) carries ours.
  write_neighbour_message(frame, our_mac, address, all_nodes, kIcmpv6NeighbourAdvertisement, 0x20, address, 2);
  return kUnsolicitedAdvertisementLength;
}

KernelClass kernel_class(const parsers::ParsedFrame& parsed, std::uint16_t sync_port) {
  constexpr std::uint16_t kBgp = 179, kBfdControl = 3784, kBfdEcho = 3785, kBfdMultihop = 4784;
  if (parsed.l3 == parsers::L3Kind::arp) return KernelClass::control;
  switch (parsed.l4_proto) {
    case parsers::kProtoTcp:
      return parsed.src_port == kBgp || parsed.dst_port == kBgp ? KernelClass::control : KernelClass::other;
    case parsers::kProtoUdp:
      if (sync_port != 0 && parsed.dst_port == sync_port && parsed.src_port == sync_port) return KernelClass::sync;
      return parsed.dst_port == kBfdControl || parsed.dst_port == kBfdEcho || parsed.dst_port == kBfdMultihop
                 ? KernelClass::control
                 : KernelClass::other;
    case parsers::kProtoIcmpv6:  // router and neighbour discovery, redirect: RFC 4861 types 133-137
      return parsed.icmp_type >= 133 && parsed.icmp_type <= 137 ? KernelClass::control : KernelClass::other;
    default:
      return KernelClass::other;
  }
}

KernelClass kernel_class(std::span<const std::uint8_t> frame, parsers::ParseStatus status,
                         const parsers::ParsedFrame& parsed) {
  constexpr std::uint16_t kLldp = 0x88cc;
  constexpr std::uint8_t kVrrp = 112, kOspf = 89;
  if (status == parsers::ParseStatus::unsupported_l4)
    return parsed.l4_proto == kVrrp || parsed.l4_proto == kOspf ? KernelClass::control : KernelClass::other;
  if (status == parsers::ParseStatus::unsupported_ethertype && frame.size() >= 14 &&
      (frame[12] << 8 | frame[13]) == kLldp)
    return KernelClass::control;
  return KernelClass::other;
}

bool neighbour_answer(const std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                      NeighbourAnswer& answer) {
  if (parsed.l3 == parsers::L3Kind::arp) {
    if (parsed.arp.operation != 1 && parsed.arp.operation != 2) return false;
    answer.address = parsers::ipv4_mapped(parsed.arp.sender_ip);
    answer.mac = parsed.arp.sender_mac;
    answer.solicited = parsed.arp.operation == 2;
    answer.override = true;
    return true;
  }
  if (!plain_ipv6(parsed) || parsed.icmp_type != kIcmpv6NeighbourAdvertisement) return false;
  const std::uint8_t* ip = frame + parsed.l3_offset;
  const std::uint8_t* icmp = frame + parsed.l4_offset;
  const std::size_t length = parsed.l3_end - parsed.l4_offset;
  if (ip[7] != 255 || icmp[1] != 0 || length < kNeighbourMessage) return false;
  std::memcpy(answer.address.data(), icmp + 8, 16);
  answer.mac = parsed.src_mac;
  answer.solicited = (icmp[4] & 0x40) != 0;
  answer.override = (icmp[4] & 0x20) != 0;
  // Options follow in units of 8 bytes; a zero length is invalid (RFC 4861 4.6).
  for (std::size_t at = kNeighbourMessage; at + 2 <= length;) {
    const std::size_t option_length = icmp[at + 1] * std::size_t{8};
    if (option_length == 0 || at + option_length > length) return false;
    if (icmp[at] == 2 && option_length >= 8) std::memcpy(answer.mac.data(), icmp + at + 2, 6);
    at += option_length;
  }
  return true;
}

// The worker's side: which frames it answers itself, which it hands to the control thread
// over the exception ring, and which go to the port's kernel interface (or are dropped on a
// port without one).
namespace {

// A reply to one of the control thread's health probes, or a neighbour advertisement: what
// the control thread itself waits for at an interface address.
bool for_control_thread(const parsers::ParsedFrame& parsed) {
  if (parsed.l4_proto == parsers::kProtoTcp || parsed.l4_proto == parsers::kProtoUdp)
    return parsed.dst_port >= kFirstProbePort;
  if (parsed.l4_proto == parsers::kProtoIcmp)  // the identifier is read as the source port
    return parsed.icmp_type == 0 && parsed.src_port >= kFirstProbePort;
  if (parsed.l4_proto == parsers::kProtoIcmpv6)
    return (parsed.icmp_type == 129 && parsed.src_port >= kFirstProbePort) ||
           parsed.icmp_type == kIcmpv6NeighbourAdvertisement;
  return false;
}

}  // namespace

void Worker::answer_locally(rte_mbuf* mbuf, std::uint16_t port_index,
                            const parsers::ParsedFrame& parsed) {
  const Snapshot& snapshot = *snapshot_;
  const PortView& port = snapshot.ports[port_index];
  const auto& our_mac = port.mac;
  auto* frame = rte_pktmbuf_mtod(mbuf, std::uint8_t*);

  if (parsed.l3 == parsers::L3Kind::arp) {
    const auto target = parsers::ipv4_mapped(parsed.arp.target_ip);
    if (parsed.arp.operation == 1 && snapshot.is_local_address(port_index, target)) {
      if (snapshot.is_standby_vip(port_index, target)) return drop(mbuf, DropReason::ha_standby);
      counters_.arp_replies++;
      return send_reply(port_index, mbuf, answer_arp(frame, parsed, our_mac));
    }
    // The answer to the control thread's request for a backend's MAC (which the control
    // thread passes on to the kernel interface too: the kernel may have asked as well).
    if (parsed.arp.operation == 2 && exceptions_ != nullptr &&
        snapshot.is_interface_address(port_index, target))
      return hand_to_control(mbuf);
    return to_kernel_or_drop(mbuf, port_index, KernelClass::control, DropReason::arp_not_for_us);
  }

  parsers::IpBytes target;
  if (neighbour_solicitation_target(frame, parsed, target)) {
    if (!snapshot.is_local_address(port_index, target))
      return to_kernel_or_drop(mbuf, port_index, KernelClass::control, DropReason::no_service);
    if (snapshot.is_standby_vip(port_index, target)) return drop(mbuf, DropReason::ha_standby);
    counters_.nd_advertisements++;
    return send_reply(port_index, mbuf,
                      answer_neighbour_solicitation(frame, rte_pktmbuf_tailroom(mbuf) +
                                                               rte_pktmbuf_data_len(mbuf),
                                                    parsed, our_mac));
  }

  const bool icmp = parsed.l4_proto == parsers::kProtoIcmp || parsed.l4_proto == parsers::kProtoIcmpv6;
  const bool echo_request = icmp && (parsed.icmp_type == kIcmpEchoRequest ||
                                     parsed.icmp_type == kIcmpv6EchoRequest);
  // At an interface address: a health probe's reply or a neighbour advertisement for the
  // control thread. Without a kernel interface, anything but an echo request is taken for
  // one; with it, the rest is the kernel's.
  if (exceptions_ != nullptr && snapshot.is_interface_address(port_index, parsed.dst_ip) &&
      (port.kernel ? for_control_thread(parsed) : !echo_request))
    return hand_to_control(mbuf);
  const bool local = snapshot.is_local_address(port_index, parsed.dst_ip);
  if (local && snapshot.is_standby_vip(port_index, parsed.dst_ip)) return drop(mbuf, DropReason::ha_standby);
  if (!icmp || !local)  // a VIP's port without a service stays tetherd's: the kernel has no VIP
    return local ? drop(mbuf, DropReason::no_service)
                 : to_kernel_or_drop(mbuf, port_index, kernel_class(parsed, port.sync_port),
                                     DropReason::no_service);
  const std::size_t echo = answer_icmp_echo(frame, parsed, our_mac);
  if (echo == 0) return drop(mbuf, DropReason::icmp_not_handled);
  counters_.icmp_echo_replies++;
  send_reply(port_index, mbuf, echo);
}

void Worker::to_kernel_or_drop(rte_mbuf* mbuf, std::uint16_t port_index, KernelClass kind,
                               DropReason reason) {
  const PortView& port = snapshot_->ports[port_index];
  if (!port.kernel || to_kernel_ == nullptr) return drop(mbuf, reason);
  KernelAllowance& allowance = kernel_allowance_[port_index][static_cast<std::size_t>(kind)];
  allowance.credit = std::min(allowance.credit + (now_ - allowance.last), port.kernel_credit_cap_tsc);
  allowance.last = now_;
  if (allowance.credit < port.kernel_cost_tsc) return drop(mbuf, DropReason::kernel_rate_limited);
  allowance.credit -= port.kernel_cost_tsc;
  if (rte_ring_mp_enqueue(to_kernel_, mbuf) != 0) return drop(mbuf, DropReason::kernel_ring_full);
  counters_.to_kernel++;
}

void Worker::hand_to_control(rte_mbuf* mbuf) {
  if (rte_ring_mp_enqueue(exceptions_, mbuf) != 0) return drop(mbuf, DropReason::exception_ring_full);
  counters_.to_control++;
}

}  // namespace tether::dataplane
