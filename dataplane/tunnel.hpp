// Tunnel forwarding (README "Tunnel forwarding"): the outer headers an ipip or gue service
// wraps a client's packet in, and the ICMP "too big" error a packet gets when the wrapped
// packet would exceed the port's MTU. Plain byte code over buffers the caller sized: the
// worker makes the room in the mbuf (dataplane/worker.cpp transmit_to_backend).
//
// Outer headers, as RFC 2003 (IPv4 in IPv4), RFC 2473 (IPv6 in IPv6) and RFC 4213 (IPv6 in
// IPv4) describe them, and GUE variant 1 (draft-ietf-intarea-gue: the inner IP packet right
// after the UDP header):
//  - IPv4: TOS copied from the inner packet (DSCP and ECN, RFC 6040's normal mode), ID 0,
//    DF always set, TTL 64, the header checksum computed. DF always: tether never fragments
//    and a backend's decapsulator (XDP) cannot reassemble outer fragments, so a packet too
//    big for the port is refused with an ICMP error instead, whatever the inner DF says
//    (Katran's choice too); Linux's own tunnels set DF the same way by default (pmtudisc).
//  - IPv6: traffic class copied, the flow label from the flow's hash (RFC 6438: ECMP over
//    IPv6 spreads tunnels by it), hop limit 64, no extension headers.
//  - GUE's UDP header: the source port 49152 + 14 bits of the flow's hash (the ephemeral
//    range, as GUE's draft and RFC 8086 recommend), one flow one port; the destination port
//    the port's `tunnel.gue_port`. Checksum 0 over IPv4 (RFC 768 allows it, GUE's draft
//    too); computed over IPv6, where RFC 8200 requires it: the zero checksum RFC 6935/6936
//    permit for tunnels works only with receivers configured to accept it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "parsers/packet.hpp"

namespace tether::dataplane {

// The order of the configuration's Forwarding (control/config.hpp).
enum class Forwarding : std::uint8_t { dsr, ipip, gue };

inline constexpr std::size_t kIpv4HeaderLength = parsers::kIpv4MinHeader;  // no options
inline constexpr std::size_t kIpv6HeaderLength = 40;
inline constexpr std::size_t kUdpHeaderLength = parsers::kUdpHeader;
inline constexpr std::uint8_t kOuterHopLimit = 64;

// Where a backend's tunnel goes, built by the control thread with make_tunnel_endpoint.
struct TunnelEndpoint {
  parsers::IpBytes source{};       // the port's tunnel source of the backend's family
  parsers::IpBytes destination{};  // the backend's address
  bool outer_ipv4 = true;          // the backend's family
  std::uint16_t mtu = 1500;        // the port's
  std::uint16_t gue_port = 6080;
  // The one's complement sum of the outer addresses (RFC 1071, not folded), where every outer
  // IPv4 header checksum and every GUE-over-IPv6 UDP checksum starts: summed once per snapshot
  // instead of once per packet.
  std::uint32_t address_sum = 0;
  // The outer headers as they go on the wire (the IP header, then GUE's UDP header) but for
  // each packet's own fields, which stay 0 here: built once per snapshot, copied whole per
  // packet (write_tunnel_headers).
  std::array<std::uint8_t, kIpv6HeaderLength + kUdpHeaderLength> outer{};
  // The sum (not folded) of the outer IPv4 header's constant fields: the checksum's start.
  std::uint32_t outer_ipv4_sum = 0;
};

// The endpoint from the backend's address (its family is the outer family) and its port's
// tunnel source of that family, MTU and GUE port.
TunnelEndpoint make_tunnel_endpoint(const parsers::IpBytes& source, const parsers::IpBytes& destination,
                                    std::uint16_t mtu, std::uint16_t gue_port);

// The least IP packet every link carries: an ICMP error quotes as much of the packet it is
// about as fits in one (RFC 1812 4.3.2.3 for IPv4, RFC 4443 2.4 (c) for IPv6).
inline constexpr std::size_t kIpv4MinimumMtu = 576;
inline constexpr std::size_t kIpv6MinimumMtu = 1280;
inline constexpr std::size_t kIcmpHeaderLength = 8;

// The bytes the outer headers add.
constexpr std::size_t tunnel_overhead(bool outer_ipv4, Forwarding forwarding) {
  return (outer_ipv4 ? kIpv4HeaderLength : kIpv6HeaderLength) +
         (forwarding == Forwarding::gue ? kUdpHeaderLength : 0);
}

// GUE's outer source port for a flow's hash: 49152..65535.
constexpr std::uint16_t gue_source_port(std::uint32_t flow_hash) {
  const std::uint32_t folded = flow_hash ^ (flow_hash >> 14) ^ (flow_hash >> 28);
  return static_cast<std::uint16_t>(0xc000 | (folded & 0x3fff));
}

// The length an IP packet's own header gives (IPv4 total length, IPv6 40 + payload length),
// or 0 if `packet` is too short to say or is no IPv4 or IPv6 packet. Inline: once a packet.
inline std::size_t ip_packet_length(std::span<const std::uint8_t> packet) {
  if (packet.empty()) return 0;
  const unsigned version = packet[0] >> 4;
  const auto field = [&](std::size_t at) { return static_cast<std::size_t>(packet[at] << 8 | packet[at + 1]); };
  if (version == 4 && packet.size() >= kIpv4HeaderLength) return field(2);
  if (version == 6 && packet.size() >= kIpv6HeaderLength) return kIpv6HeaderLength + field(4);
  return 0;
}

namespace detail {
inline void put16(std::uint8_t* at, std::uint32_t value) {
  at[0] = static_cast<std::uint8_t>(value >> 8);
  at[1] = static_cast<std::uint8_t>(value);
}
inline std::uint16_t fold_complement(std::uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}
// GUE over IPv6's UDP checksum, over the pseudo-header, the UDP header and the whole inner
// packet: out of line, the one part of the wrapping that grows with the packet.
std::uint16_t gue_ipv6_checksum(const TunnelEndpoint& endpoint, std::size_t udp_length, std::uint16_t source_port,
                                std::span<const std::uint8_t> inner);
}  // namespace detail

// Writes the outer headers (tunnel_overhead bytes) at `out`, which the inner IP packet
// `inner` follows directly in memory (out + tunnel_overhead == inner.data()): GUE over IPv6
// checksums it. `forwarding` is ipip or gue. Inline, as every tunnelled packet's: the
// endpoint's template whole, then the packet's own fields. The IPv4 checksum is summed from
// the fields' values, not read back from the bytes just written: a wide load of narrow
// stores waits for them (store forwarding fails).
inline void write_tunnel_headers(std::uint8_t* out, const TunnelEndpoint& endpoint, Forwarding forwarding,
                                 std::span<const std::uint8_t> inner, std::uint32_t flow_hash) {
  using detail::put16;
  constexpr std::uint8_t kIpv4InIp = 4;   // IANA protocol numbers: IP in IP (RFC 2003)
  constexpr std::uint8_t kIpv6InIp = 41;  // IPv6 (RFC 2473, RFC 4213)
  const bool gue = forwarding == Forwarding::gue;
  const bool inner_ipv4 = (inner[0] >> 4) == 4;
  const std::uint8_t protocol = gue ? parsers::kProtoUdp : inner_ipv4 ? kIpv4InIp : kIpv6InIp;
  // DSCP and ECN, copied (RFC 6040's normal mode).
  const auto traffic = inner_ipv4 ? inner[1] : static_cast<std::uint8_t>((inner[0] & 0x0f) << 4 | inner[1] >> 4);
  const std::size_t payload_length = inner.size() + (gue ? kUdpHeaderLength : 0);
  // Copies of constant sizes, a few wide stores each; IPIP's stops where the inner packet begins.
  if (endpoint.outer_ipv4) {
    std::memcpy(out, endpoint.outer.data(), kIpv4HeaderLength);
    if (gue) std::memcpy(out + kIpv4HeaderLength, endpoint.outer.data() + kIpv4HeaderLength, kUdpHeaderLength);
    const std::size_t total_length = kIpv4HeaderLength + payload_length;
    out[1] = traffic;
    put16(out + 2, static_cast<std::uint32_t>(total_length));
    out[9] = protocol;
    put16(out + 10, detail::fold_complement(std::uint64_t{endpoint.outer_ipv4_sum} + traffic +
                                            total_length + protocol));
  } else {
    std::memcpy(out, endpoint.outer.data(), kIpv6HeaderLength);
    if (gue) std::memcpy(out + kIpv6HeaderLength, endpoint.outer.data() + kIpv6HeaderLength, kUdpHeaderLength);
    // The flow label from the flow's hash (RFC 6438).
    const std::uint32_t first = 6u << 28 | std::uint32_t{traffic} << 20 | (flow_hash & 0xfffff);
    put16(out, first >> 16);
    put16(out + 2, first & 0xffff);
    put16(out + 4, static_cast<std::uint32_t>(payload_length));
    out[6] = protocol;
  }
  if (!gue) return;
  std::uint8_t* udp = out + (endpoint.outer_ipv4 ? kIpv4HeaderLength : kIpv6HeaderLength);
  const std::uint16_t source_port = gue_source_port(flow_hash);
  put16(udp, source_port);
  put16(udp + 4, static_cast<std::uint32_t>(payload_length));
  // Over IPv4 the template's 0: no checksum.
  if (!endpoint.outer_ipv4) put16(udp + 6, detail::gue_ipv6_checksum(endpoint, payload_length, source_port, inner));
}

// Whether the client may be told its packet `inner` was too big: not about an ICMP error
// (RFC 1122 3.2.2, RFC 4443 2.4 (e)), nor about a later fragment of an IPv4 datagram.
bool may_answer_too_big(std::span<const std::uint8_t> inner);

// The bytes of the IP and ICMP headers of the too-big error about `inner`.
constexpr std::size_t too_big_header_length(bool ipv4) {
  return (ipv4 ? kIpv4HeaderLength : kIpv6HeaderLength) + kIcmpHeaderLength;
}
// How much of a packet of `length` bytes the error quotes.
constexpr std::size_t too_big_quote_length(bool ipv4, std::size_t length) {
  const std::size_t room = (ipv4 ? kIpv4MinimumMtu : kIpv6MinimumMtu) - too_big_header_length(ipv4);
  return length < room ? length : room;
}
// Writes at `out` the IP and ICMP headers (too_big_header_length bytes) of the error to the
// client about its packet `quote` (the first too_big_quote_length bytes of it, following
// `out` directly in memory): ICMP "fragmentation needed" (type 3 code 4, RFC 792, with the
// next-hop MTU of RFC 1191) or ICMPv6 "packet too big" (type 2, RFC 4443), from the address
// the packet went to (the VIP) to the one it came from, TTL/hop limit 64.
void write_too_big_headers(std::uint8_t* out, std::span<const std::uint8_t> quote, std::uint16_t mtu);

}  // namespace tether::dataplane
