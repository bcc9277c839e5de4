// libFuzzer target for the L2-L4 frame parsers. Besides crashes and sanitizer reports (a read
// past the frame is one), it aborts when parse_frame's result breaks its contract, or when
// parse_ipv4_transport, the short path for untagged IPv4 TCP/UDP, answers differently from
// parse_frame: it must answer exactly for the frames parse_frame accepts as that shape, with
// the same fields. An ICMP or ICMPv6 message goes on to parse_icmp_error (the quote of an
// error to a VIP), as the worker hands it over; so does the whole input, unframed. A fragment
// goes on to parse_fragment, whose fields must stay inside the frame and the datagram.
#include "parsers/fragment.hpp"
#include "parsers/icmp_error.hpp"
#include "parsers/packet.hpp"

#include <cstring>
#include <span>

#include "test/fuzz/fuzz_contract.hpp"

using tether::fuzz::expect;
namespace parsers = tether::parsers;

namespace {

void check_frame(const parsers::ParsedFrame& p, std::size_t size) {
  expect(p.l3 != parsers::L3Kind::none);
  expect(p.l3_offset >= 14 && p.l3_offset <= p.l3_end && p.l3_end <= size);
  if (p.l3 == parsers::L3Kind::arp) return;
  expect(p.l4_offset >= p.l3_offset && p.l4_offset <= p.l3_end);
  expect(p.payload_offset >= p.l4_offset && p.payload_offset + p.payload_length <= p.l3_end);
  if (p.l4_proto != parsers::kProtoTcp) expect(p.tcp_flags == 0 && p.tcp_seq == 0);
  if (p.l3 == parsers::L3Kind::ipv4)
    expect(parsers::is_ipv4_mapped(p.src_ip) && parsers::is_ipv4_mapped(p.dst_ip));
}

bool same(const parsers::Ipv4Transport& a, const parsers::ParsedFrame& b) {
  return a.dst_mac == b.dst_mac && a.src_ip == parsers::address_words(b.src_ip) &&
         a.dst_ip == parsers::address_words(b.dst_ip) &&
         a.src_port == b.src_port && a.dst_port == b.dst_port && a.l4_proto == b.l4_proto &&
         a.tcp_flags == b.tcp_flags && a.tcp_seq == b.tcp_seq &&
         a.payload_offset == b.payload_offset && a.payload_length == b.payload_length;
}

void check_icmp_error(std::span<const std::uint8_t> message, std::uint8_t protocol) {
  parsers::QuotedPacket quoted;
  const parsers::IcmpErrorStatus status = parsers::parse_icmp_error(message, protocol, quoted);
  expect(std::strcmp(parsers::to_string(status), "unknown") != 0);
  if (status != parsers::IcmpErrorStatus::ok) return;
  expect(parsers::is_steered_icmp_error(protocol, message[0]));
  expect(quoted.l4_proto == parsers::kProtoTcp || quoted.l4_proto == parsers::kProtoUdp);
  if (protocol == parsers::kProtoIcmp)
    expect(parsers::is_ipv4_mapped(quoted.src_ip) && parsers::is_ipv4_mapped(quoted.dst_ip));
}

void check_fragment(std::span<const std::uint8_t> frame, const parsers::ParsedFrame& p) {
  expect(p.l3 == parsers::L3Kind::ipv4 || p.l3 == parsers::L3Kind::ipv6);
  parsers::Fragment f;
  const parsers::FragmentStatus status = parsers::parse_fragment(frame, p.l3_offset, p.l3 == parsers::L3Kind::ipv6, f);
  expect(std::strcmp(parsers::to_string(status), "unknown") != 0);
  if (status != parsers::FragmentStatus::ok) return;
  expect(f.src_ip == p.src_ip && f.dst_ip == p.dst_ip);
  expect(f.length > 0 && f.data_offset + f.length <= frame.size());
  expect(f.offset + f.length <= parsers::kMaxDatagram);
  expect(!f.more || f.length % 8 == 0);
  if (!f.ipv6) expect(f.id <= 0xffff && f.l4_proto == f.protocol);
  if (!f.first()) return;
  expect(f.header_end <= f.length);
  expect(f.payload_offset >= f.data_offset && f.payload_offset + f.payload_length <= f.data_offset + f.length);
  if (f.l4_proto == parsers::kProtoUdp) expect(f.header_end >= 8 && f.udp_length >= f.length - (f.header_end - 8));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> frame(data, size);
  parsers::ParsedFrame full;
  const parsers::ParseStatus status = parsers::parse_frame(frame, full);
  expect(std::strcmp(parsers::to_string(status), "unknown") != 0);
  const bool ok = status == parsers::ParseStatus::ok;
  if (ok) check_frame(full, size);
  if (status == parsers::ParseStatus::ipv4_fragment || status == parsers::ParseStatus::ipv6_fragment)
    check_fragment(frame, full);
  if (ok && (full.l4_proto == parsers::kProtoIcmp || full.l4_proto == parsers::kProtoIcmpv6))
    check_icmp_error(frame.subspan(full.l4_offset, full.l3_end - full.l4_offset), full.l4_proto);
  check_icmp_error(frame, parsers::kProtoIcmp);
  check_icmp_error(frame, parsers::kProtoIcmpv6);

  parsers::Ipv4Transport common;
  const bool fast = parsers::parse_ipv4_transport(frame, common);
  const bool shape = ok && !full.has_vlan && full.l3 == parsers::L3Kind::ipv4 &&
                     full.l4_offset == 14 + 20 &&
                     (full.l4_proto == parsers::kProtoTcp || full.l4_proto == parsers::kProtoUdp);
  expect(fast == shape);
  if (fast) expect(same(common, full));
  return 0;
}
