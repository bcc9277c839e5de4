// The packet an ICMP error quotes.
//
// An ICMP destination unreachable (including "fragmentation needed") or an ICMPv6 packet too
// big / destination unreachable that arrives for a VIP is about a packet a backend sent from
// that VIP through direct server return: the error quotes that packet's IP header and at
// least the first 8 bytes after it (RFC 792, RFC 4443), which hold the ports. The dataplane
// reverses the quoted 5-tuple into the client's flow and sends the error to that flow's
// backend, so path-MTU discovery works through the balancer.
//
// Contract as parse_frame's: parse_icmp_error() reads at most `message.size()` bytes, never
// allocates, does a fixed amount of work, and names what is wrong with a hostile quote.
#pragma once

#include <cstdint>
#include <span>

#include "parsers/packet.hpp"

namespace tether::parsers {

enum class IcmpErrorStatus : std::uint8_t {
  ok,
  not_steered,        // another ICMP type (echo, timestamp, neighbour discovery, time exceeded)
  truncated,          // less than the quoted IP header and 8 bytes after it
  bad_quoted_header,  // not the error's own IP version, or a bad IPv4 header length
  quotes_icmp,        // an error about an ICMP message: never answered by anyone (RFC 1122 3.2.2)
  quotes_fragment,    // a non-first fragment: it carries no ports
  quotes_extension_header,  // IPv6 extension headers before the transport header
  quotes_other_protocol,    // neither TCP nor UDP
  count_
};
inline constexpr std::size_t kIcmpErrorStatusCount = static_cast<std::size_t>(IcmpErrorStatus::count_);
const char* to_string(IcmpErrorStatus status);

inline constexpr std::uint8_t kIcmpDestinationUnreachable = 3;
inline constexpr std::uint8_t kIcmpv6DestinationUnreachable = 1;
inline constexpr std::uint8_t kIcmpv6PacketTooBig = 2;
inline constexpr std::size_t kIcmpErrorHeader = 8;  // type, code, checksum, unused or MTU

// The errors steered to a backend: what path-MTU discovery and an unreachable client send.
inline bool is_steered_icmp_error(std::uint8_t l4_proto, std::uint8_t icmp_type) {
  if (l4_proto == kProtoIcmp) return icmp_type == kIcmpDestinationUnreachable;
  if (l4_proto == kProtoIcmpv6)
    return icmp_type == kIcmpv6DestinationUnreachable || icmp_type == kIcmpv6PacketTooBig;
  return false;
}

// The quoted packet's 5-tuple as the backend sent it: source the VIP, destination the
// client. Addresses in the 16-byte form (IPv4-mapped for IPv4).
struct QuotedPacket {
  IpBytes src_ip;
  IpBytes dst_ip;
  std::uint16_t src_port;
  std::uint16_t dst_port;
  std::uint8_t l4_proto;  // kProtoTcp or kProtoUdp
};

// `message`: the ICMP (l4_proto kProtoIcmp) or ICMPv6 (kProtoIcmpv6) message from its type
// byte to the end of the IP packet (ParsedFrame's l4_offset to l3_end).
IcmpErrorStatus parse_icmp_error(std::span<const std::uint8_t> message, std::uint8_t l4_proto,
                                 QuotedPacket& out);

}  // namespace tether::parsers
