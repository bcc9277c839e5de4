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
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>

namespace tether::parsers {

// Every address is held in 16 bytes; IPv4 uses the IPv4-mapped form ::ffff:a.b.c.d so that
// one key type and one service index serve both families.
using IpBytes = std::array<std::uint8_t, 16>;
using MacBytes = std::array<std::uint8_t, 6>;

// Two loads and a compare. std::array's == is a memcmp, which needs its operands in memory:
// on the short path it kept the whole Ipv4Transport on the stack, every field stored.
inline bool same_mac(const MacBytes& a, const MacBytes& b) {
  std::uint32_t a_head, b_head;
  std::uint16_t a_tail, b_tail;
  std::memcpy(&a_head, a.data(), 4);
  std::memcpy(&b_head, b.data(), 4);
  std::memcpy(&a_tail, a.data() + 4, 2);
  std::memcpy(&b_tail, b.data() + 4, 2);
  return ((a_head ^ b_head) | static_cast<std::uint32_t>(a_tail ^ b_tail)) == 0;
}

// Inline: parse_frame maps both addresses of every IPv4 packet it reads.
inline IpBytes ipv4_mapped(const std::uint8_t* four_bytes) {
  IpBytes a{};
  a[10] = 0xff;
  a[11] = 0xff;
  std::memcpy(a.data() + 12, four_bytes, 4);
  return a;
}

// An address as the two 8-byte words of its IpBytes, first bytes first: the form in which
// the service index and the flow key hash and compare it. The short IPv4 path makes one from
// the four address bytes in registers, where building an IpBytes would go through memory.
struct AddressWords {
  std::uint64_t high;  // bytes 0-7
  std::uint64_t low;   // bytes 8-15
  friend bool operator==(const AddressWords&, const AddressWords&) = default;
};
inline AddressWords address_words(const IpBytes& a) {
  AddressWords words;
  std::memcpy(&words.high, a.data(), 8);
  std::memcpy(&words.low, a.data() + 8, 8);
  return words;
}
// address_words(ipv4_mapped(four_bytes)), without the bytes.
inline AddressWords ipv4_mapped_words(const std::uint8_t* four_bytes) {
  if constexpr (std::endian::native == std::endian::little) {
    std::uint32_t address;
    std::memcpy(&address, four_bytes, 4);
    return {0, 0xffff0000u | std::uint64_t{address} << 32};  // bytes 10 and 11 are 0xff
  } else {
    return address_words(ipv4_mapped(four_bytes));
  }
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
  ipv4_fragment,  // l3, l3_offset, l3_end and the addresses are set: see parsers/fragment.hpp
  truncated_ipv6,
  bad_ipv6_version,
  bad_ipv6_payload_length,
  ipv6_extension_chain_too_long,
  ipv6_fragment,  // as ipv4_fragment
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

inline constexpr std::uint16_t kEthIpv4 = 0x0800;
inline constexpr std::size_t kEthHeader = 14;
inline constexpr std::size_t kIpv4MinHeader = 20;
inline constexpr std::size_t kTcpMinHeader = 20;
inline constexpr std::size_t kUdpHeader = 8;

inline std::uint16_t load_be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

// What the flow path needs of the frame shape nearly all forwarded traffic has: untagged
// Ethernet II, IPv4 without options and not a fragment, carrying TCP or UDP. The fields mean
// what ParsedFrame's of the same names mean; the addresses are in their AddressWords form.
struct Ipv4Transport {
  MacBytes dst_mac;
  AddressWords src_ip;  // IPv4-mapped
  AddressWords dst_ip;
  std::uint16_t src_port;
  std::uint16_t dst_port;
  std::uint8_t l4_proto;
  std::uint8_t tcp_flags;  // 0 for UDP
  std::uint32_t tcp_seq;   // 0 for UDP
  std::uint16_t payload_offset;
  std::uint16_t payload_length;
};

// Reads that shape in one pass, with parse_frame's checks for it, and returns false for any
// other frame, well-formed or not: the caller then asks parse_frame, which handles every shape
// and names what is wrong with a bad frame. Where this returns true, parse_frame returns ok
// with the same fields (test_packet compares the two on every prefix and single-byte change
// of each shape). Inline, and without ParsedFrame's other fields: it runs on every packet, and
// going through parse_frame's call and a ParsedFrame in memory was a measurable share of the
// established-flow rate (docs/performance.md).
inline bool parse_ipv4_transport(std::span<const std::uint8_t> frame, Ipv4Transport& out) {
  constexpr std::size_t kL4Offset = kEthHeader + kIpv4MinHeader;
  const std::uint8_t* base = frame.data();
  if (frame.size() < kL4Offset || load_be16(base + 12) != kEthIpv4) return false;
  const std::uint8_t* ip = base + kEthHeader;
  if (ip[0] != 0x45) return false;  // version 4, no options
  const std::size_t total = load_be16(ip + 2);
  if (total < kIpv4MinHeader || total > frame.size() - kEthHeader) return false;
  if ((load_be16(ip + 6) & 0x3fff) != 0) return false;  // MF or an offset
  const std::uint8_t* l4 = base + kL4Offset;
  const std::size_t available = total - kIpv4MinHeader;
  std::size_t header;
  std::size_t payload;
  switch (ip[9]) {
    case kProtoTcp:
      if (available < kTcpMinHeader) return false;
      header = static_cast<std::size_t>(l4[12] >> 4) * 4;
      if (header < kTcpMinHeader || header > available) return false;
      payload = available - header;
      out.tcp_flags = l4[13];
      out.tcp_seq = static_cast<std::uint32_t>(load_be16(l4 + 4)) << 16 | load_be16(l4 + 6);
      break;
    case kProtoUdp: {
      header = kUdpHeader;
      if (available < header) return false;
      const std::size_t length = load_be16(l4 + 4);
      if (length < header || length > available) return false;
      payload = length - header;
      out.tcp_flags = 0;
      out.tcp_seq = 0;
      break;
    }
    default:
      return false;
  }
  std::memcpy(out.dst_mac.data(), base, 6);
  out.src_ip = ipv4_mapped_words(ip + 12);
  out.dst_ip = ipv4_mapped_words(ip + 16);
  out.l4_proto = ip[9];
  out.src_port = load_be16(l4);
  out.dst_port = load_be16(l4 + 2);
  out.payload_offset = static_cast<std::uint16_t>(kL4Offset + header);
  out.payload_length = static_cast<std::uint16_t>(payload);
  return true;
}

}  // namespace tether::parsers
