#include "parsers/packet.hpp"

#include <cstring>

namespace tether::parsers {
namespace {

constexpr std::uint16_t kEthArp = 0x0806;
constexpr std::uint16_t kEthIpv6 = 0x86dd;
constexpr std::uint16_t kEthVlan = 0x8100;
constexpr std::uint16_t kEthQinQ = 0x88a8;

constexpr std::size_t kVlanTag = 4;
constexpr std::size_t kArpIpv4Length = 28;
constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kIcmpMinHeader = 8;

// Inline: one call per packet, from parse_ipv4 or parse_ipv6.
[[gnu::always_inline]] inline ParseStatus parse_l4(const std::uint8_t* base, std::size_t l4_offset,
                                                   std::size_t l3_end, ParsedFrame& out) {
  const std::uint8_t* l4 = base + l4_offset;
  const std::size_t available = l3_end - l4_offset;
  out.l4_offset = static_cast<std::uint16_t>(l4_offset);
  switch (out.l4_proto) {
    case kProtoTcp: {
      if (available < kTcpMinHeader) return ParseStatus::truncated_tcp;
      const std::size_t header = static_cast<std::size_t>(l4[12] >> 4) * 4;
      if (header < kTcpMinHeader || header > available) return ParseStatus::bad_tcp_data_offset;
      out.src_port = load_be16(l4);
      out.dst_port = load_be16(l4 + 2);
      out.tcp_flags = l4[13];
      out.tcp_seq = static_cast<std::uint32_t>(load_be16(l4 + 4)) << 16 | load_be16(l4 + 6);
      out.payload_offset = static_cast<std::uint16_t>(l4_offset + header);
      out.payload_length = static_cast<std::uint16_t>(available - header);
      return ParseStatus::ok;
    }
    case kProtoUdp: {
      if (available < kUdpHeader) return ParseStatus::truncated_udp;
      const std::size_t length = load_be16(l4 + 4);
      if (length < kUdpHeader || length > available) return ParseStatus::bad_udp_length;
      out.src_port = load_be16(l4);
      out.dst_port = load_be16(l4 + 2);
      out.payload_offset = static_cast<std::uint16_t>(l4_offset + kUdpHeader);
      out.payload_length = static_cast<std::uint16_t>(length - kUdpHeader);
      return ParseStatus::ok;
    }
    case kProtoIcmp:
    case kProtoIcmpv6: {
      // ICMPv6 neighbour solicitation is 24 bytes, echo 8: the slow path checks per type.
      if (available < kIcmpMinHeader) return ParseStatus::truncated_icmp;
      out.icmp_type = l4[0];
      out.src_port = load_be16(l4 + 4);  // echo identifier
      out.dst_port = 0;
      out.payload_offset = static_cast<std::uint16_t>(l4_offset + kIcmpMinHeader);
      out.payload_length = static_cast<std::uint16_t>(available - kIcmpMinHeader);
      return ParseStatus::ok;
    }
    default:
      return ParseStatus::unsupported_l4;
  }
}

ParseStatus parse_ipv4(const std::uint8_t* base, std::size_t offset, std::size_t frame_end,
                       ParsedFrame& out) {
  if (frame_end - offset < kIpv4MinHeader) return ParseStatus::truncated_ipv4;
  const std::uint8_t* ip = base + offset;
  if ((ip[0] >> 4) != 4) return ParseStatus::bad_ipv4_version;
  const std::size_t header = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
  if (header < kIpv4MinHeader) return ParseStatus::bad_ipv4_header_length;
  const std::size_t total = load_be16(ip + 2);
  if (total < header) return ParseStatus::bad_ipv4_total_length;
  if (total > frame_end - offset) return ParseStatus::truncated_ipv4;
  out.l3 = L3Kind::ipv4;
  out.l3_offset = static_cast<std::uint16_t>(offset);
  out.l3_end = static_cast<std::uint16_t>(offset + total);
  out.l4_proto = ip[9];
  out.src_ip = ipv4_mapped(ip + 12);
  out.dst_ip = ipv4_mapped(ip + 16);
  // MF or an offset: parse_fragment() reads it from l3_offset (parsers/fragment.hpp).
  if ((load_be16(ip + 6) & 0x3fff) != 0) return ParseStatus::ipv4_fragment;
  return parse_l4(base, offset + header, offset + total, out);
}

ParseStatus parse_ipv6(const std::uint8_t* base, std::size_t offset, std::size_t frame_end,
                       ParsedFrame& out) {
  if (frame_end - offset < kIpv6Header) return ParseStatus::truncated_ipv6;
  const std::uint8_t* ip = base + offset;
  if ((ip[0] >> 4) != 6) return ParseStatus::bad_ipv6_version;
  const std::size_t payload = load_be16(ip + 4);
  // A zero payload length means a jumbogram (hop-by-hop option); no link here carries one.
  if (payload == 0) return ParseStatus::bad_ipv6_payload_length;
  if (payload > frame_end - offset - kIpv6Header) return ParseStatus::truncated_ipv6;
  const std::size_t end = offset + kIpv6Header + payload;
  out.l3 = L3Kind::ipv6;
  out.l3_offset = static_cast<std::uint16_t>(offset);
  out.l3_end = static_cast<std::uint16_t>(end);
  std::memcpy(out.src_ip.data(), ip + 8, 16);
  std::memcpy(out.dst_ip.data(), ip + 24, 16);

  std::uint8_t next = ip[6];
  std::size_t cursor = offset + kIpv6Header;
  for (unsigned hops = 0;; ++hops) {
    switch (next) {
      case 0:    // hop-by-hop options
      case 43:   // routing
      case 60: {  // destination options
        if (hops == kMaxIpv6ExtensionHeaders) return ParseStatus::ipv6_extension_chain_too_long;
        if (end - cursor < 8) return ParseStatus::truncated_ipv6;
        const std::size_t length = (static_cast<std::size_t>(base[cursor + 1]) + 1) * 8;
        if (length > end - cursor) return ParseStatus::truncated_ipv6;
        next = base[cursor];
        cursor += length;
        continue;
      }
      case 44:
        return ParseStatus::ipv6_fragment;
      default:
        out.l4_proto = next;
        return parse_l4(base, cursor, end, out);
    }
  }
}

}  // namespace

ParseStatus parse_frame(std::span<const std::uint8_t> frame, ParsedFrame& out) {
  out = ParsedFrame{};
  const std::uint8_t* base = frame.data();
  const std::size_t size = frame.size();
  if (size < kEthHeader) return ParseStatus::truncated_ethernet;
  std::memcpy(out.dst_mac.data(), base, 6);
  std::memcpy(out.src_mac.data(), base + 6, 6);
  std::uint16_t ethertype = load_be16(base + 12);
  std::size_t offset = kEthHeader;
  if (ethertype == kEthVlan || ethertype == kEthQinQ) {
    if (size < kEthHeader + kVlanTag) return ParseStatus::truncated_vlan;
    out.has_vlan = true;
    out.vlan_tci = load_be16(base + 14);
    ethertype = load_be16(base + 16);
    offset += kVlanTag;
  }
  switch (ethertype) {
    case kEthIpv4:
      return parse_ipv4(base, offset, size, out);
    case kEthIpv6:
      return parse_ipv6(base, offset, size, out);
    case kEthArp: {
      if (size - offset < kArpIpv4Length) return ParseStatus::truncated_arp;
      const std::uint8_t* arp = base + offset;
      // hardware type Ethernet, protocol IPv4, address lengths 6 and 4
      if (load_be16(arp) != 1 || load_be16(arp + 2) != kEthIpv4 || arp[4] != 6 || arp[5] != 4)
        return ParseStatus::unsupported_arp;
      out.l3 = L3Kind::arp;
      out.l3_offset = static_cast<std::uint16_t>(offset);
      out.l3_end = static_cast<std::uint16_t>(offset + kArpIpv4Length);
      out.arp.operation = load_be16(arp + 6);
      std::memcpy(out.arp.sender_mac.data(), arp + 8, 6);
      std::memcpy(out.arp.sender_ip, arp + 14, 4);
      std::memcpy(out.arp.target_ip, arp + 24, 4);
      return ParseStatus::ok;
    }
    default:
      return ParseStatus::unsupported_ethertype;
  }
}

const char* to_string(ParseStatus status) {
  switch (status) {
    case ParseStatus::ok: return "ok";
    case ParseStatus::truncated_ethernet: return "truncated_ethernet";
    case ParseStatus::truncated_vlan: return "truncated_vlan";
    case ParseStatus::unsupported_ethertype: return "unsupported_ethertype";
    case ParseStatus::truncated_arp: return "truncated_arp";
    case ParseStatus::unsupported_arp: return "unsupported_arp";
    case ParseStatus::truncated_ipv4: return "truncated_ipv4";
    case ParseStatus::bad_ipv4_version: return "bad_ipv4_version";
    case ParseStatus::bad_ipv4_header_length: return "bad_ipv4_header_length";
    case ParseStatus::bad_ipv4_total_length: return "bad_ipv4_total_length";
    case ParseStatus::ipv4_fragment: return "ipv4_fragment";
    case ParseStatus::truncated_ipv6: return "truncated_ipv6";
    case ParseStatus::bad_ipv6_version: return "bad_ipv6_version";
    case ParseStatus::bad_ipv6_payload_length: return "bad_ipv6_payload_length";
    case ParseStatus::ipv6_extension_chain_too_long: return "ipv6_extension_chain_too_long";
    case ParseStatus::ipv6_fragment: return "ipv6_fragment";
    case ParseStatus::truncated_tcp: return "truncated_tcp";
    case ParseStatus::bad_tcp_data_offset: return "bad_tcp_data_offset";
    case ParseStatus::truncated_udp: return "truncated_udp";
    case ParseStatus::bad_udp_length: return "bad_udp_length";
    case ParseStatus::truncated_icmp: return "truncated_icmp";
    case ParseStatus::unsupported_l4: return "unsupported_l4";
    case ParseStatus::count_: break;
  }
  return "unknown";
}

}  // namespace tether::parsers
