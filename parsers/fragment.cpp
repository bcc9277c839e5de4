#include "parsers/fragment.hpp"

#include <cstring>

namespace tether::parsers {
namespace {

constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kIpv6FragmentHeader = 8;
constexpr std::uint8_t kIpv6FragmentNext = 44;

bool is_ipv6_option_header(std::uint8_t next) { return next == 0 || next == 43 || next == 60; }

// Walks hop-by-hop, routing and destination options headers from `cursor`, leaving `next`
// and `cursor` at the first other header; `hops` counts them over the whole packet. A header
// that does not fit before `end` is `cut_short`.
FragmentStatus skip_option_headers(const std::uint8_t* base, std::size_t end, std::size_t& cursor,
                                   std::uint8_t& next, unsigned& hops, FragmentStatus cut_short) {
  for (; is_ipv6_option_header(next); ++hops) {
    if (hops == kMaxIpv6ExtensionHeaders) return FragmentStatus::chain_too_long;
    if (end - cursor < 8) return cut_short;
    const std::size_t length = (static_cast<std::size_t>(base[cursor + 1]) + 1) * 8;
    if (length > end - cursor) return cut_short;
    next = base[cursor];
    cursor += length;
  }
  return FragmentStatus::ok;
}

// The transport header of a first fragment, which must hold all of it: `l4` to `end` is what
// the fragment carries of the datagram from the transport header on.
FragmentStatus first_transport(const std::uint8_t* base, std::size_t l4_offset, std::size_t end,
                               std::size_t fragmentable_start, Fragment& out) {
  const std::uint8_t* l4 = base + l4_offset;
  const std::size_t available = end - l4_offset;
  std::size_t header;
  switch (out.l4_proto) {
    case kProtoTcp:
      if (available < kTcpMinHeader) return FragmentStatus::tiny_first;
      header = static_cast<std::size_t>(l4[12] >> 4) * 4;
      if (header < kTcpMinHeader || header > available) return FragmentStatus::tiny_first;
      out.tcp_flags = l4[13];
      out.tcp_seq = static_cast<std::uint32_t>(load_be16(l4 + 4)) << 16 | load_be16(l4 + 6);
      break;
    case kProtoUdp:
      header = kUdpHeader;
      if (available < header) return FragmentStatus::tiny_first;
      out.udp_length = load_be16(l4 + 4);
      // The datagram goes on past this fragment: its length covers at least what is here.
      if (out.udp_length < available) return FragmentStatus::bad_length;
      break;
    default:
      // ICMP and the rest: no ports to route by. 8 bytes, the smallest header among them,
      // keep the type and code in the first fragment.
      header = 8;
      if (available < header) return FragmentStatus::tiny_first;
      out.payload_offset = static_cast<std::uint16_t>(l4_offset);
      out.payload_length = 0;
      out.header_end = static_cast<std::uint16_t>(l4_offset + header - fragmentable_start);
      return FragmentStatus::ok;
  }
  out.src_port = load_be16(l4);
  out.dst_port = load_be16(l4 + 2);
  out.payload_offset = static_cast<std::uint16_t>(l4_offset + header);
  out.payload_length = static_cast<std::uint16_t>(available - header);
  out.header_end = static_cast<std::uint16_t>(l4_offset + header - fragmentable_start);
  return FragmentStatus::ok;
}

// What every fragment must satisfy once its place is known.
FragmentStatus check_place(const Fragment& out) {
  if (out.length == 0) return FragmentStatus::bad_length;
  if (out.more && out.length % 8 != 0) return FragmentStatus::bad_length;
  if (out.offset + out.length > kMaxDatagram) return FragmentStatus::bad_length;
  if (out.offset == 8 && out.protocol == kProtoTcp) return FragmentStatus::tcp_offset_one;
  return FragmentStatus::ok;
}

FragmentStatus parse_ipv4_fragment(const std::uint8_t* base, std::size_t offset, std::size_t frame_end,
                                   Fragment& out) {
  if (frame_end - offset < kIpv4MinHeader) return FragmentStatus::truncated;
  const std::uint8_t* ip = base + offset;
  const std::size_t header = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
  const std::size_t total = load_be16(ip + 2);
  if ((ip[0] >> 4) != 4 || header < kIpv4MinHeader || total < header || total > frame_end - offset)
    return FragmentStatus::truncated;
  const std::uint16_t flags = load_be16(ip + 6);
  out.src_ip = ipv4_mapped(ip + 12);
  out.dst_ip = ipv4_mapped(ip + 16);
  out.id = load_be16(ip + 4);
  out.protocol = ip[9];
  out.l4_proto = ip[9];
  out.offset = static_cast<std::uint32_t>(flags & 0x1fff) * 8;
  out.more = (flags & 0x2000) != 0;
  out.length = static_cast<std::uint16_t>(total - header);
  out.data_offset = static_cast<std::uint16_t>(offset + header);
  if (const FragmentStatus placed = check_place(out); placed != FragmentStatus::ok) return placed;
  if (!out.first()) return FragmentStatus::ok;
  return first_transport(base, offset + header, offset + total, offset + header, out);
}

FragmentStatus parse_ipv6_fragment(const std::uint8_t* base, std::size_t offset, std::size_t frame_end,
                                   Fragment& out) {
  if (frame_end - offset < kIpv6Header) return FragmentStatus::truncated;
  const std::uint8_t* ip = base + offset;
  const std::size_t payload = load_be16(ip + 4);
  if ((ip[0] >> 4) != 6 || payload == 0 || payload > frame_end - offset - kIpv6Header)
    return FragmentStatus::truncated;
  const std::size_t end = offset + kIpv6Header + payload;
  std::memcpy(out.src_ip.data(), ip + 8, 16);
  std::memcpy(out.dst_ip.data(), ip + 24, 16);
  out.ipv6 = true;

  // The unfragmentable part, up to the fragment header.
  std::uint8_t next = ip[6];
  std::size_t cursor = offset + kIpv6Header;
  unsigned hops = 0;
  if (const FragmentStatus walked = skip_option_headers(base, end, cursor, next, hops, FragmentStatus::truncated);
      walked != FragmentStatus::ok)
    return walked;
  if (next != kIpv6FragmentNext || end - cursor < kIpv6FragmentHeader) return FragmentStatus::truncated;
  const std::uint8_t* fragment = base + cursor;
  const std::uint16_t place = load_be16(fragment + 2);
  out.protocol = fragment[0];
  out.id = static_cast<std::uint32_t>(load_be16(fragment + 4)) << 16 | load_be16(fragment + 6);
  out.offset = static_cast<std::uint32_t>(place >> 3) * 8;
  out.more = (place & 1) != 0;
  cursor += kIpv6FragmentHeader;
  const std::size_t fragmentable_start = cursor;
  out.length = static_cast<std::uint16_t>(end - cursor);
  out.data_offset = static_cast<std::uint16_t>(cursor);
  out.l4_proto = out.protocol;
  if (const FragmentStatus placed = check_place(out); placed != FragmentStatus::ok) return placed;
  if (!out.first()) return FragmentStatus::ok;

  // RFC 7112: the first fragment holds the whole header chain, through the transport header.
  next = out.protocol;
  if (const FragmentStatus walked = skip_option_headers(base, end, cursor, next, hops, FragmentStatus::tiny_first);
      walked != FragmentStatus::ok)
    return walked;
  // A second fragment header inside a fragment: nothing sends that; nobody reassembles it.
  if (next == kIpv6FragmentNext) return FragmentStatus::bad_length;
  out.l4_proto = next;
  return first_transport(base, cursor, end, fragmentable_start, out);
}

}  // namespace

FragmentStatus parse_fragment(std::span<const std::uint8_t> frame, std::size_t l3_offset, bool ipv6,
                              Fragment& out) {
  out = Fragment{};
  if (l3_offset > frame.size()) return FragmentStatus::truncated;
  return ipv6 ? parse_ipv6_fragment(frame.data(), l3_offset, frame.size(), out)
              : parse_ipv4_fragment(frame.data(), l3_offset, frame.size(), out);
}

const char* to_string(FragmentStatus status) {
  switch (status) {
    case FragmentStatus::ok: return "ok";
    case FragmentStatus::truncated: return "truncated";
    case FragmentStatus::bad_length: return "bad_length";
    case FragmentStatus::tiny_first: return "tiny_first";
    case FragmentStatus::tcp_offset_one: return "tcp_offset_one";
    case FragmentStatus::chain_too_long: return "chain_too_long";
    case FragmentStatus::count_: break;
  }
  return "unknown";
}

}  // namespace tether::parsers
