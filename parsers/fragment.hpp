// IP fragments (RFC 791 for IPv4, RFC 8200 4.5 for IPv6): what following a datagram's
// fragments to its first fragment's backend needs of each one.
//
// parse_frame() stops at a fragment with ParseStatus::ipv4_fragment or ipv6_fragment, having
// set `l3` and `l3_offset`; parse_fragment() reads the fragment from there. Every fragment
// yields its datagram's identity (source, destination, identification, protocol: the key
// RFC 791 and RFC 8200 reassemble by) and its place in the datagram. A first fragment
// (offset 0) also yields the transport fields, named as ParsedFrame names them, so that it is
// routed as any packet.
//
// Refused, as RFC 1858, RFC 3128 and RFC 7112 advise a filter to refuse them:
// - tiny_first: a first fragment that does not hold the whole transport header (TCP with
//   its options, UDP's 8 bytes) or, for IPv6, the whole header chain through it (RFC 7112):
//   the fields a balancer routes by would be in a later fragment, unseen.
// - tcp_offset_one: a TCP fragment at offset 8, which can only be meant to overwrite the TCP
//   header's ports and flags (RFC 3128's rule: "FO=1 and PROTOCOL=TCP"). Counted as an overlap.
// - bad_length: a fragment that is not the last with a length not a multiple of 8, an empty
//   one, or one that ends beyond 65,535 bytes of datagram (the "ping of death").
// Bounded work, no allocation, never reads past the frame.
#pragma once

#include <cstdint>
#include <span>

#include "parsers/packet.hpp"

namespace tether::parsers {

enum class FragmentStatus : std::uint8_t {
  ok,
  truncated,         // a header runs past the packet
  bad_length,
  tiny_first,
  tcp_offset_one,
  chain_too_long,    // more than kMaxIpv6ExtensionHeaders extension headers
  count_
};
const char* to_string(FragmentStatus status);

// The largest datagram IPv4 and IPv6 (without jumbograms) can reassemble.
inline constexpr std::uint32_t kMaxDatagram = 65535;

struct Fragment {
  // The datagram: fragments with the same four belong together.
  IpBytes src_ip;
  IpBytes dst_ip;
  std::uint32_t id;       // IPv4: 16 bits
  std::uint8_t protocol;  // IPv4's protocol; IPv6: the fragment header's next header
  bool ipv6;
  // This fragment's place: bytes `offset` to `offset + length` of the fragmentable part.
  std::uint32_t offset;
  std::uint16_t length;
  bool more;                   // not the last fragment
  std::uint16_t data_offset;   // in the frame, where this fragment's data starts
  // First fragments only (offset 0), as ParsedFrame has them; l4_proto is the upper-layer
  // protocol (for IPv6, after the fragmentable part's extension headers).
  std::uint8_t l4_proto;
  std::uint16_t src_port;
  std::uint16_t dst_port;
  std::uint8_t tcp_flags;
  std::uint32_t tcp_seq;
  std::uint16_t payload_offset;  // in the frame: the TCP/UDP payload this fragment holds
  std::uint16_t payload_length;
  // The first fragment's bytes of the fragmentable part up to the end of the transport
  // header: a later fragment that starts before this would rewrite what the route was chosen
  // by (ports, flags).
  std::uint16_t header_end;
  std::uint16_t udp_length;  // the UDP header's length field: the whole datagram's
  bool first() const { return offset == 0; }
  // Offset 0 and no more to come: RFC 6946's atomic fragment, a whole packet.
  bool whole() const { return offset == 0 && !more; }
};

// `frame` is the whole frame and `l3_offset` where its IPv4 or IPv6 header starts (what
// parse_frame() set); `ipv6` says which.
FragmentStatus parse_fragment(std::span<const std::uint8_t> frame, std::size_t l3_offset, bool ipv6,
                              Fragment& out);

}  // namespace tether::parsers
