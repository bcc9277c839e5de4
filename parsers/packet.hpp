// L2-L4 header parser for the dataplane's burst loop.
//
// Contract: parse_frame() reads at most `frame.size()` bytes, never allocates, and does a
// bounded amount of work (at most kMaxIpv6ExtensionHeaders extension headers). It accepts
// Ethernet II with at most one 802.1Q/802.1ad tag, then ARP, IPv4 or IPv6, then TCP, UDP,
// ICMP or ICMPv6. Anything else returns a precise status that the caller counts as a drop
// reason. Checksums are not verified: the NIC does that where it can, and a DSR balancer
// forwards the IP packet unchanged so the backend's stack still rejects a corrupt one.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>

namespace tether::parsers {

// Every address is held in 16 bytes; IPv4 uses the IPv4-mapped form ::ffff:a.b.c.d so that
// one key type and one service index serve both families.
using IpBytes = std::array<std::uint8_t, 16>;
using MacBytes = std::array<std::uint8_t, 6>;

// Inline: every IPv4 packet maps both its addresses.
inline IpBytes ipv4_mapped(const std::uint8_t* four_bytes) {
  IpBytes a{};
  a[10] = 0xff;
  a[11] = 0xff;
  std::memcpy(a.data() + 12, four_bytes, 4);
  return a;
}
inline bool is_ipv4_mapped(const IpBytes& a) {
  return a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0 && a[4] == 0 && a[5] == 0 &&
         a[6] == 0 && a[7] == 0 && a[8] == 0 && a[9] == 0 && a[10] == 0xff && a[11] == 0xff;
}

enum class ParseStatus : std::uint8_t {
  ok,
  truncated_ethernet,
  truncated_vlan,
  unsupported_ethertype,
  truncated_arp,
  unsupported_arp,  // not Ethernet/IPv4 ARP
  truncated_ipv4,
  bad_ipv4_version,
  bad_ipv4_header_length,
  bad_ipv4_total_length,
  ipv4_fragment,
  truncated_ipv6,
  bad_ipv6_version,
  bad_ipv6_payload_length,
  ipv6_extension_chain_too_long,
  ipv6_fragment,
  truncated_tcp,
  bad_tcp_data_offset,
  truncated_udp,
  bad_udp_length,
  truncated_icmp,
  unsupported_l4,
  count_
};
inline constexpr std::size_t kParseStatusCount = static_cast<std::size_t>(ParseStatus::count_);
const char* to_string(ParseStatus status);

enum class L3Kind : std::uint8_t { none, arp, ipv4, ipv6 };

inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr std::uint8_t kProtoUdp = 17;
inline constexpr std::uint8_t kProtoIcmpv6 = 58;

inline constexpr std::uint8_t kTcpFin = 0x01;
inline constexpr std::uint8_t kTcpSyn = 0x02;
inline constexpr std::uint8_t kTcpRst = 0x04;
inline constexpr std::uint8_t kTcpAck = 0x10;

inline constexpr unsigned kMaxIpv6ExtensionHeaders = 4;

struct ArpFields {
  std::uint16_t operation;  // 1 request, 2 reply
  MacBytes sender_mac;
  std::uint8_t sender_ip[4];
  std::uint8_t target_ip[4];
};

struct ParsedFrame {
  MacBytes dst_mac;
  MacBytes src_mac;
  bool has_vlan;
  std::uint16_t vlan_tci;
  L3Kind l3;
  std::uint16_t l3_offset;
  std::uint16_t l4_offset;
  std::uint16_t l3_end;  // end of the IP packet: bytes after it are Ethernet padding
  std::uint8_t l4_proto;
  IpBytes src_ip;
  IpBytes dst_ip;
  std::uint16_t src_port;  // TCP/UDP; for ICMP echo, the identifier
  std::uint16_t dst_port;
  std::uint8_t tcp_flags;
  std::uint32_t tcp_seq;
  std::uint8_t icmp_type;
  std::uint16_t payload_offset;  // TCP/UDP payload
  std::uint16_t payload_length;
  ArpFields arp;
};

ParseStatus parse_frame(std::span<const std::uint8_t> frame, ParsedFrame& out);

}  // namespace tether::parsers
