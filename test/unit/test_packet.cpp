// parse_frame (parsers/packet.hpp): every field of good frames, every ParseStatus for the
// malformed frame that should produce it, and no read past the end for any prefix.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <set>
#include <string>

#include "frame_builder.hpp"
#include "parsers/packet.hpp"

using namespace test_frames;
using tether::parsers::L3Kind;
using tether::parsers::ParsedFrame;
using tether::parsers::ParseStatus;

namespace tether::parsers {
// Catch prints the status by name when a comparison fails.
inline std::ostream& operator<<(std::ostream& os, ParseStatus s) { return os << to_string(s); }
}  // namespace tether::parsers

namespace {

const Bytes kPayload = sequence_bytes(11, 0x40);

}  // namespace

TEST_CASE("parse_frame: IPv4 TCP with IP and TCP options", "[packet]") {
  const Bytes ip_options{0x01, 0x01, 0x01, 0x00};  // NOP NOP NOP EOL
  const Bytes tcp_options{0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07};  // MSS, NOP, WS
  const Bytes frame = ethernet(0x0800, ipv4(6, tcp(40000, 80, 0x12, kPayload, {{}, tcp_options}),
                                            kClient4, kVip4, {.options = ip_options}));
  ParsedFrame p;
  REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
  CHECK(p.dst_mac == kOurMac);
  CHECK(p.src_mac == kClientMac);
  CHECK_FALSE(p.has_vlan);
  CHECK(p.vlan_tci == 0);
  CHECK(p.l3 == L3Kind::ipv4);
  CHECK(p.l3_offset == 14);
  CHECK(p.l4_offset == 14 + 24);
  CHECK(p.l3_end == frame.size());
  CHECK(p.l4_proto == 6);
  CHECK(p.src_ip == mapped(kClient4));
  CHECK(p.dst_ip == mapped(kVip4));
  CHECK(tether::parsers::is_ipv4_mapped(p.src_ip));
  CHECK(p.src_port == 40000);
  CHECK(p.dst_port == 80);
  CHECK(p.tcp_flags == 0x12);
  CHECK(p.tcp_seq == 0x01020304);
  CHECK(p.icmp_type == 0);
  CHECK(p.payload_offset == 14 + 24 + 28);
  CHECK(p.payload_length == kPayload.size());
  CHECK(p.payload_offset + p.payload_length == frame.size());
  CHECK(frame[p.payload_offset] == 0x40);
  CHECK(p.arp.operation == 0);
}

TEST_CASE("parse_frame: IPv4 UDP, 802.1Q tag and Ethernet padding", "[packet]") {
  const Bytes datagram = ipv4(17, udp(5062, 5060, {0xaa, 0xbb}));  // 20 + 8 + 2 = 30 bytes
  const Bytes frame = pad_to(ethernet(0x0800, datagram, 0x2064), 60);
  REQUIRE(frame.size() == 60);
  ParsedFrame p;
  REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
  CHECK(p.has_vlan);
  CHECK(p.vlan_tci == 0x2064);
  CHECK(p.l3 == L3Kind::ipv4);
  CHECK(p.l3_offset == 18);
  CHECK(p.l4_offset == 38);
  CHECK(p.l3_end == 18 + 30);  // not 60: the rest is padding
  CHECK(p.l4_proto == 17);
  CHECK(p.src_port == 5062);
  CHECK(p.dst_port == 5060);
  CHECK(p.tcp_flags == 0);
  CHECK(p.tcp_seq == 0);
  CHECK(p.payload_offset == 46);
  CHECK(p.payload_length == 2);
  CHECK(p.src_ip == mapped(kClient4));
  CHECK(p.dst_ip == mapped(kVip4));

  SECTION("802.1ad outer tag is accepted too") {
    REQUIRE(parse_exact(pad_to(ethernet(0x0800, datagram, 0x0005, 0x88a8), 60), p) == ParseStatus::ok);
    CHECK(p.has_vlan);
    CHECK(p.vlan_tci == 5);
    CHECK(p.l3_end == 48);
  }
}

TEST_CASE("parse_frame: TCP payload excludes Ethernet padding", "[packet]") {
  const Bytes frame = pad_to(ethernet(0x0800, ipv4(6, tcp(1234, 21, 0x18, {'A', 'B'}))), 64);
  ParsedFrame p;
  REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
  CHECK(p.l3_end == 14 + 20 + 20 + 2);
  CHECK(p.payload_offset == 54);
  CHECK(p.payload_length == 2);
  CHECK(p.tcp_flags == 0x18);
}

TEST_CASE("parse_frame: UDP length shorter than the IP payload bounds the payload", "[packet]") {
  // IP says 20 + 8 + 12; UDP says 8 + 4: the UDP length wins.
  const Bytes frame = ethernet(0x0800, ipv4(17, udp(1, 2, sequence_bytes(12), 12)));
  ParsedFrame p;
  REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
  CHECK(p.payload_length == 4);
  CHECK(p.l3_end == frame.size());
}

TEST_CASE("parse_frame: IPv4 ICMP echo", "[packet]") {
  const Bytes frame = pad_to(ethernet(0x0800, ipv4(1, icmp(8, 0x4242, 7, {1, 2, 3, 4}))), 60);
  ParsedFrame p;
  REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
  CHECK(p.l3 == L3Kind::ipv4);
  CHECK(p.l4_proto == 1);
  CHECK(p.icmp_type == 8);
  CHECK(p.src_port == 0x4242);  // echo identifier
  CHECK(p.dst_port == 0);
  CHECK(p.tcp_flags == 0);
  CHECK(p.l4_offset == 34);
  CHECK(p.l3_end == 34 + 12);
  CHECK(p.payload_offset == 42);
  CHECK(p.payload_length == 4);
}

TEST_CASE("parse_frame: IPv6 TCP, UDP and ICMPv6", "[packet]") {
  ParsedFrame p;
  SECTION("TCP") {
    const Bytes frame = ethernet(0x86dd, ipv6(6, tcp(50000, 443, 0x02, {}, {{}, {1, 1, 1, 1}})));
    REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
    CHECK(p.l3 == L3Kind::ipv6);
    CHECK(p.l3_offset == 14);
    CHECK(p.l4_offset == 54);
    CHECK(p.l3_end == frame.size());
    CHECK(p.l4_proto == 6);
    CHECK(p.src_ip == kClient6);
    CHECK(p.dst_ip == kVip6);
    CHECK_FALSE(tether::parsers::is_ipv4_mapped(p.src_ip));
    CHECK(p.src_port == 50000);
    CHECK(p.dst_port == 443);
    CHECK(p.tcp_flags == 0x02);
    CHECK(p.tcp_seq == 0x01020304);
    CHECK(p.payload_offset == 54 + 24);
    CHECK(p.payload_length == 0);
  }
  SECTION("UDP with VLAN and trailing bytes after the IP packet") {
    Bytes frame = ethernet(0x86dd, ipv6(17, udp(5060, 5060, kPayload)), 7);
    const std::size_t packet_end = frame.size();
    frame.insert(frame.end(), {0xde, 0xad, 0xbe, 0xef});
    REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
    CHECK(p.has_vlan);
    CHECK(p.vlan_tci == 7);
    CHECK(p.l3_offset == 18);
    CHECK(p.l4_offset == 58);
    CHECK(p.l3_end == packet_end);
    CHECK(p.l4_proto == 17);
    CHECK(p.payload_offset == 66);
    CHECK(p.payload_length == kPayload.size());
  }
  SECTION("ICMPv6 echo") {
    const Bytes frame = ethernet(0x86dd, ipv6(58, icmp(128, 99, 1, kPayload)));
    REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
    CHECK(p.l4_proto == 58);
    CHECK(p.icmp_type == 128);
    CHECK(p.src_port == 99);
    CHECK(p.dst_port == 0);
    CHECK(p.payload_offset == 62);
    CHECK(p.payload_length == kPayload.size());
  }
}

TEST_CASE("parse_frame: IPv6 extension headers", "[packet]") {
  ParsedFrame p;
  SECTION("hop-by-hop, routing, destination options then UDP") {
    Bytes chain = ipv6_extension(43);        // hop-by-hop -> routing, 8 bytes
    append(chain, ipv6_extension(60, 1));    // routing -> destination options, 16 bytes
    append(chain, ipv6_extension(17));       // destination options -> UDP, 8 bytes
    append(chain, udp(1000, 2000, kPayload));
    const Bytes frame = ethernet(0x86dd, ipv6(0, chain));
    REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
    CHECK(p.l4_proto == 17);
    CHECK(p.l4_offset == 14 + 40 + 32);
    CHECK(p.src_port == 1000);
    CHECK(p.dst_port == 2000);
    CHECK(p.payload_length == kPayload.size());
    CHECK(p.l3_end == frame.size());
  }
  SECTION("four extension headers are accepted") {
    Bytes chain = ipv6_extension(60);
    append(chain, ipv6_extension(60));
    append(chain, ipv6_extension(60));
    append(chain, ipv6_extension(6));
    append(chain, tcp(1, 2, 0x10));
    REQUIRE(parse_exact(ethernet(0x86dd, ipv6(60, chain)), p) == ParseStatus::ok);
    CHECK(p.l4_offset == 14 + 40 + 32);
    CHECK(p.l4_proto == 6);
  }
  SECTION("five are too many") {
    Bytes chain;
    for (int i = 0; i < 4; ++i) append(chain, ipv6_extension(60));
    append(chain, ipv6_extension(6));
    append(chain, tcp(1, 2, 0x10));
    CHECK(parse_exact(ethernet(0x86dd, ipv6(60, chain)), p) == ParseStatus::ipv6_extension_chain_too_long);
  }
  SECTION("a long chain of maximum-length headers is rejected, not walked") {
    Bytes chain;
    for (int i = 0; i < 20; ++i) append(chain, ipv6_extension(60, 0));
    CHECK(parse_exact(ethernet(0x86dd, ipv6(60, chain)), p) == ParseStatus::ipv6_extension_chain_too_long);
  }
}

TEST_CASE("parse_frame: ARP", "[packet]") {
  const Mac zero{};
  const Bytes frame = pad_to(ethernet(0x0806, arp(1, kClientMac, kClient4, zero, kVip4), 3), 60);
  ParsedFrame p;
  REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
  CHECK(p.l3 == L3Kind::arp);
  CHECK(p.has_vlan);
  CHECK(p.vlan_tci == 3);
  CHECK(p.l3_offset == 18);
  CHECK(p.l3_end == 18 + 28);
  CHECK(p.arp.operation == 1);
  CHECK(p.arp.sender_mac == kClientMac);
  CHECK(std::equal(p.arp.sender_ip, p.arp.sender_ip + 4, kClient4.b));
  CHECK(std::equal(p.arp.target_ip, p.arp.target_ip + 4, kVip4.b));
  CHECK(p.l4_proto == 0);
  CHECK(p.src_port == 0);
}

TEST_CASE("parse_frame: every malformed frame gets its own status", "[packet]") {
  std::set<ParseStatus> seen;
  auto expect = [&](const Bytes& frame, ParseStatus status) {
    ParsedFrame p;
    CHECK(parse_exact(frame, p) == status);
    seen.insert(status);
  };
  const Bytes good_v4 = ethernet(0x0800, ipv4(17, udp(1, 2, kPayload)));
  const Bytes good_v6 = ethernet(0x86dd, ipv6(17, udp(1, 2, kPayload)));

  // Ethernet and VLAN
  expect({}, ParseStatus::truncated_ethernet);
  expect(Bytes(good_v4.begin(), good_v4.begin() + 13), ParseStatus::truncated_ethernet);
  for (std::size_t n = 14; n < 18; ++n) {
    const Bytes tagged = ethernet(0x0800, {}, 1);
    expect(Bytes(tagged.begin(), tagged.begin() + static_cast<long>(n)), ParseStatus::truncated_vlan);
  }
  expect(ethernet(0x88cc, sequence_bytes(46)), ParseStatus::unsupported_ethertype);  // LLDP
  expect(ethernet(0x8100, ipv4(17, udp(1, 2)), 1), ParseStatus::unsupported_ethertype);  // two tags
  expect(ethernet(0x0800, {}), ParseStatus::truncated_ipv4);

  // ARP
  const Mac zero{};
  const Bytes request = arp(1, kClientMac, kClient4, zero, kVip4);
  expect(ethernet(0x0806, Bytes(request.begin(), request.end() - 1)), ParseStatus::truncated_arp);
  expect(ethernet(0x0806, arp(1, kClientMac, kClient4, zero, kVip4, {.hardware = 6})), ParseStatus::unsupported_arp);
  expect(ethernet(0x0806, arp(1, kClientMac, kClient4, zero, kVip4, {.protocol = 0x86dd})), ParseStatus::unsupported_arp);
  expect(ethernet(0x0806, arp(1, kClientMac, kClient4, zero, kVip4, {.hardware_length = 8})), ParseStatus::unsupported_arp);
  expect(ethernet(0x0806, arp(1, kClientMac, kClient4, zero, kVip4, {.protocol_length = 16})), ParseStatus::unsupported_arp);

  // IPv4
  expect(Bytes(good_v4.begin(), good_v4.begin() + 14 + 19), ParseStatus::truncated_ipv4);
  expect(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.version = 6})), ParseStatus::bad_ipv4_version);
  expect(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.ihl = 4})), ParseStatus::bad_ipv4_header_length);
  expect(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.ihl = 0})), ParseStatus::bad_ipv4_header_length);
  expect(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.total_length = 19})), ParseStatus::bad_ipv4_total_length);
  expect(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.total_length = 20, .options = {1, 1, 1, 1}})),
         ParseStatus::bad_ipv4_total_length);
  // Total length beyond the frame: the packet was cut short.
  expect(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.total_length = 29})), ParseStatus::truncated_ipv4);
  // IHL says 60 bytes of header, the frame has 28.
  expect(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.ihl = 15})), ParseStatus::bad_ipv4_total_length);
  expect(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.flags_fragment = 0x2000})), ParseStatus::ipv4_fragment);  // MF
  expect(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.flags_fragment = 0x0001})), ParseStatus::ipv4_fragment);  // offset 8
  expect(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.flags_fragment = 0x1fff})), ParseStatus::ipv4_fragment);
  {
    ParsedFrame p;  // DF alone, or no flags at all, is not a fragment
    CHECK(parse_exact(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.flags_fragment = 0})), p) == ParseStatus::ok);
    CHECK(parse_exact(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.flags_fragment = 0x4000})), p) == ParseStatus::ok);
    // The reserved (evil) bit is not a fragment either.
    CHECK(parse_exact(ethernet(0x0800, ipv4(17, udp(1, 2), kClient4, kVip4, {.flags_fragment = 0x8000})), p) == ParseStatus::ok);
  }

  // IPv6
  expect(Bytes(good_v6.begin(), good_v6.begin() + 14 + 39), ParseStatus::truncated_ipv6);
  expect(ethernet(0x86dd, ipv6(17, udp(1, 2), kClient6, kVip6, {}, 4)), ParseStatus::bad_ipv6_version);
  expect(ethernet(0x86dd, ipv6(17, udp(1, 2), kClient6, kVip6, 0)), ParseStatus::bad_ipv6_payload_length);
  expect(ethernet(0x86dd, ipv6(17, udp(1, 2), kClient6, kVip6, 9)), ParseStatus::truncated_ipv6);
  expect(ethernet(0x86dd, ipv6(0, Bytes(7, 0))), ParseStatus::truncated_ipv6);  // < 8 bytes of extension
  {
    Bytes long_ext = ipv6_extension(17, 2);  // claims 24 bytes
    long_ext.resize(16);                     // has 16
    expect(ethernet(0x86dd, ipv6(60, long_ext)), ParseStatus::truncated_ipv6);
  }
  {
    Bytes fragment{17, 0, 0x00, 0x01, 0, 0, 0, 1};  // fragment header, offset 0, M set
    append(fragment, udp(1, 2));
    expect(ethernet(0x86dd, ipv6(44, fragment)), ParseStatus::ipv6_fragment);
    Bytes after_hop = ipv6_extension(44);
    append(after_hop, fragment);
    expect(ethernet(0x86dd, ipv6(0, after_hop)), ParseStatus::ipv6_fragment);
  }
  {
    Bytes chain;
    for (int i = 0; i < 5; ++i) append(chain, ipv6_extension(i < 4 ? 0 : 17));
    append(chain, udp(1, 2));
    expect(ethernet(0x86dd, ipv6(0, chain)), ParseStatus::ipv6_extension_chain_too_long);
  }

  // TCP
  expect(ethernet(0x0800, ipv4(6, Bytes(19, 0))), ParseStatus::truncated_tcp);
  expect(ethernet(0x86dd, ipv6(6, Bytes(19, 0))), ParseStatus::truncated_tcp);
  expect(ethernet(0x0800, ipv4(6, tcp(1, 2, 0x02, {}, {.data_offset = 4}))), ParseStatus::bad_tcp_data_offset);
  expect(ethernet(0x0800, ipv4(6, tcp(1, 2, 0x02, {}, {.data_offset = 0}))), ParseStatus::bad_tcp_data_offset);
  expect(ethernet(0x0800, ipv4(6, tcp(1, 2, 0x02, {}, {.data_offset = 6}))), ParseStatus::bad_tcp_data_offset);
  expect(ethernet(0x0800, ipv4(6, tcp(1, 2, 0x02, Bytes(40, 0), {.data_offset = 15}))), ParseStatus::ok);
  // Data offset beyond the IP packet even though the Ethernet padding would cover it.
  expect(pad_to(ethernet(0x0800, ipv4(6, tcp(1, 2, 0x02, {}, {.data_offset = 6}))), 64),
         ParseStatus::bad_tcp_data_offset);

  // UDP
  expect(ethernet(0x0800, ipv4(17, Bytes(7, 0))), ParseStatus::truncated_udp);
  expect(ethernet(0x86dd, ipv6(17, Bytes(7, 0))), ParseStatus::truncated_udp);
  expect(ethernet(0x0800, ipv4(17, udp(1, 2, {}, 7))), ParseStatus::bad_udp_length);
  expect(ethernet(0x0800, ipv4(17, udp(1, 2, {}, 0))), ParseStatus::bad_udp_length);
  expect(ethernet(0x0800, ipv4(17, udp(1, 2, kPayload, 8 + 12))), ParseStatus::bad_udp_length);  // 11 available
  expect(ethernet(0x0800, ipv4(17, udp(1, 2, kPayload, 8 + 11))), ParseStatus::ok);
  // UDP length reaching into the Ethernet padding is still beyond the IP packet.
  expect(pad_to(ethernet(0x0800, ipv4(17, udp(1, 2, {1}, 10))), 60), ParseStatus::bad_udp_length);

  // ICMP
  expect(ethernet(0x0800, ipv4(1, Bytes(7, 0))), ParseStatus::truncated_icmp);
  expect(ethernet(0x86dd, ipv6(58, Bytes(7, 0))), ParseStatus::truncated_icmp);
  expect(ethernet(0x0800, ipv4(1, Bytes(8, 0))), ParseStatus::ok);

  // Unsupported L4
  expect(ethernet(0x0800, ipv4(47, Bytes(8, 0))), ParseStatus::unsupported_l4);  // GRE
  expect(ethernet(0x0800, ipv4(132, Bytes(12, 0))), ParseStatus::unsupported_l4);  // SCTP
  expect(ethernet(0x86dd, ipv6(59, Bytes(8, 0))), ParseStatus::unsupported_l4);  // no next header
  expect(ethernet(0x86dd, ipv6(47, Bytes(8, 0))), ParseStatus::unsupported_l4);

  // Every status but ok (the checks above) and count_ has been produced.
  seen.insert(ParseStatus::ok);
  CHECK(seen.size() == tether::parsers::kParseStatusCount);
}

TEST_CASE("parse_frame: status names are distinct", "[packet]") {
  std::set<std::string> names;
  for (std::size_t i = 0; i < tether::parsers::kParseStatusCount; ++i) {
    const std::string name = tether::parsers::to_string(static_cast<ParseStatus>(i));
    CHECK(name != "unknown");
    names.insert(name);
  }
  CHECK(names.size() == tether::parsers::kParseStatusCount);
  CHECK(std::string(tether::parsers::to_string(ParseStatus::ok)) == "ok");
  CHECK(std::string(tether::parsers::to_string(ParseStatus::ipv4_fragment)) == "ipv4_fragment");
}

TEST_CASE("parse_frame: reused output is fully reset", "[packet]") {
  ParsedFrame p;
  REQUIRE(parse_exact(ethernet(0x0800, ipv4(6, tcp(1, 2, 0x11)), 9), p) == ParseStatus::ok);
  REQUIRE(p.tcp_flags == 0x11);
  REQUIRE(parse_exact(ethernet(0x86dd, ipv6(17, udp(3, 4))), p) == ParseStatus::ok);
  CHECK_FALSE(p.has_vlan);
  CHECK(p.vlan_tci == 0);
  CHECK(p.tcp_flags == 0);
  CHECK(p.src_port == 3);
}

TEST_CASE("parse_frame: every prefix of a valid frame is safe and never ok before l3_end", "[packet]") {
  Bytes ext_chain = ipv6_extension(43);
  append(ext_chain, ipv6_extension(60, 2));
  append(ext_chain, ipv6_extension(6));
  append(ext_chain, tcp(1, 2, 0x02, kPayload, {{}, {2, 4, 5, 0xb4}}));
  const Mac zero{};
  const std::vector<Bytes> frames = {
      ethernet(0x0800, ipv4(6, tcp(40000, 80, 0x12, kPayload, {{}, {1, 1, 1, 0}}), kClient4, kVip4,
                            {.options = {1, 1, 1, 0, 1, 1, 1, 0}})),
      pad_to(ethernet(0x0800, ipv4(17, udp(5060, 5060, {1, 2})), 0x0123), 60),
      ethernet(0x0800, ipv4(1, icmp(8, 1, 2, kPayload))),
      ethernet(0x86dd, ipv6(0, ext_chain), 77),
      ethernet(0x86dd, ipv6(58, icmp(135, 0, 0, Bytes(16, 0xfe)))),
      ethernet(0x86dd, ipv6(17, udp(1, 2, kPayload))),
      pad_to(ethernet(0x0806, arp(1, kClientMac, kClient4, zero, kVip4)), 60),
  };
  for (std::size_t f = 0; f < frames.size(); ++f) {
    const Bytes& frame = frames[f];
    ParsedFrame full;
    REQUIRE(parse_exact(frame, full) == ParseStatus::ok);
    std::size_t wrongly_ok = 0, mismatched = 0;
    for (std::size_t n = 0; n <= frame.size(); ++n) {
      ParsedFrame p;
      const ParseStatus status = parse_exact(Bytes(frame.begin(), frame.begin() + static_cast<long>(n)), p);
      if (status == ParseStatus::ok) {
        if (n < full.l3_end) ++wrongly_ok;
        if (p.l3_end != full.l3_end || p.l4_offset != full.l4_offset ||
            p.payload_length != full.payload_length || p.src_port != full.src_port)
          ++mismatched;
      }
    }
    INFO("frame " << f << " of " << frame.size() << " bytes");
    CHECK(wrongly_ok == 0);
    CHECK(mismatched == 0);
  }
}

TEST_CASE("parse_frame: random corruptions of valid frames are safe", "[packet]") {
  // Not a fuzzer, but flipping every byte of a few frames through several values reaches the
  // length fields with values that point past the end.
  const std::vector<Bytes> frames = {
      ethernet(0x0800, ipv4(6, tcp(40000, 80, 0x12, kPayload), kClient4, kVip4, {.options = {1, 1, 1, 0}})),
      ethernet(0x86dd, ipv6(0, [] {
                 Bytes c = ipv6_extension(17, 1);
                 append(c, udp(1, 2, kPayload));
                 return c;
               }()), 5),
  };
  std::size_t parsed_ok = 0;
  for (const Bytes& original : frames) {
    for (std::size_t i = 0; i < original.size(); ++i) {
      for (const std::uint8_t value :
           std::initializer_list<std::uint8_t>{0x00, 0x01, 0x05, 0x0f, 0x45, 0x7f, 0x80, 0xff}) {
        Bytes frame = original;
        frame[i] = value;
        ParsedFrame p;
        if (parse_exact(frame, p) == ParseStatus::ok) {
          ++parsed_ok;
          // Whatever was accepted lies within the frame.
          CHECK(p.l3_end <= frame.size());
          CHECK(p.payload_offset + p.payload_length <= p.l3_end);
        }
      }
    }
  }
  CHECK(parsed_ok > 0);
}

namespace {

// parse_ipv4_transport must answer exactly for the frames parse_frame accepts as untagged
// IPv4 without options carrying TCP or UDP, and with parse_frame's fields.
void check_agreement(const Bytes& frame, std::size_t& answered) {
  using tether::parsers::Ipv4Transport;
  const Bytes copy(frame.begin(), frame.end());  // exactly its size, for ASan
  const std::span<const std::uint8_t> bytes(copy.data(), copy.size());
  ParsedFrame full;
  Ipv4Transport common;
  const bool fast = tether::parsers::parse_ipv4_transport(bytes, common);
  const bool shape = tether::parsers::parse_frame(bytes, full) == ParseStatus::ok && !full.has_vlan &&
                     full.l3 == L3Kind::ipv4 && full.l4_offset == 14 + 20 &&
                     (full.l4_proto == 6 || full.l4_proto == 17);
  INFO("frame of " << frame.size() << " bytes");
  REQUIRE(fast == shape);
  if (!fast) return;
  ++answered;
  CHECK(common.dst_mac == full.dst_mac);
  CHECK(common.src_ip == tether::parsers::address_words(full.src_ip));
  CHECK(common.dst_ip == tether::parsers::address_words(full.dst_ip));
  CHECK(common.src_port == full.src_port);
  CHECK(common.dst_port == full.dst_port);
  CHECK(common.l4_proto == full.l4_proto);
  CHECK(common.tcp_flags == full.tcp_flags);
  CHECK(common.tcp_seq == full.tcp_seq);
  CHECK(common.payload_offset == full.payload_offset);
  CHECK(common.payload_length == full.payload_length);
}

}  // namespace

TEST_CASE("parse_ipv4_transport: agrees with parse_frame on every prefix and byte change", "[packet]") {
  const Mac zero{};
  const std::vector<Bytes> frames = {
      ethernet(0x0800, ipv4(6, tcp(40000, 80, 0x12, kPayload))),
      pad_to(ethernet(0x0800, ipv4(6, tcp(40000, 80, 0x10))), 60),  // a bare ACK
      ethernet(0x0800, ipv4(6, tcp(40000, 80, 0x19, kPayload, {{}, {2, 4, 5, 0xb4}}))),
      pad_to(ethernet(0x0800, ipv4(17, udp(5060, 5060, {1, 2}))), 60),
      ethernet(0x0800, ipv4(17, udp(1, 2, kPayload, 8 + 5))),
      // TCP and UDP headers cut short at the frame's end
      ethernet(0x0800, ipv4(6, Bytes(10, 0))),
      ethernet(0x0800, ipv4(17, Bytes(7, 0))),  // UDP shorter than the IP payload
      ethernet(0x0800, ipv4(6, tcp(1, 2, 0x10), kClient4, kVip4, {.options = {1, 1, 1, 0}})),
      ethernet(0x0800, ipv4(17, udp(1, 2, kPayload)), 9),  // tagged
      ethernet(0x0800, ipv4(1, icmp(8, 1, 2, kPayload))),
      ethernet(0x86dd, ipv6(17, udp(1, 2, kPayload))),
      pad_to(ethernet(0x0806, arp(1, kClientMac, kClient4, zero, kVip4)), 60),
  };
  std::size_t answered = 0;
  for (const Bytes& original : frames) {
    for (std::size_t n = 0; n <= original.size(); ++n)
      check_agreement(Bytes(original.begin(), original.begin() + static_cast<long>(n)), answered);
    for (std::size_t i = 0; i < original.size(); ++i) {
      Bytes changed = original;
      for (const std::uint8_t value : std::initializer_list<std::uint8_t>{
               0x00, 0x01, 0x05, 0x06, 0x08, 0x11, 0x14, 0x3f, 0x45, 0x46, 0x50, 0x7f, 0x80, 0xff,
               static_cast<std::uint8_t>(original[i] + 1), static_cast<std::uint8_t>(original[i] - 1)}) {
        changed[i] = value;
        check_agreement(changed, answered);
      }
    }
  }
  // The well-formed frames of the shape, and many of their changes, took the short path.
  CHECK(answered > 1000);
}

TEST_CASE("same_mac: equal only when all six bytes are", "[packet]") {
  using tether::parsers::MacBytes;
  const MacBytes ours{0x02, 0x00, 0x5e, 0x10, 0x20, 0x30};
  CHECK(tether::parsers::same_mac(ours, ours));
  for (std::size_t i = 0; i < ours.size(); ++i)
    for (std::uint8_t bit = 1; bit != 0; bit = static_cast<std::uint8_t>(bit << 1)) {
      MacBytes other = ours;
      other[i] ^= bit;
      INFO("byte " << i << " bit " << int{bit});
      CHECK_FALSE(tether::parsers::same_mac(ours, other));
      CHECK_FALSE(tether::parsers::same_mac(other, ours));
    }
}

TEST_CASE("ipv4_mapped_words: the words of ipv4_mapped's bytes", "[packet]") {
  for (const std::array<std::uint8_t, 4> address :
       {std::array<std::uint8_t, 4>{0, 0, 0, 0}, {192, 0, 2, 1}, {255, 255, 255, 255}, {10, 1, 2, 3},
        {1, 0, 0, 0x80}}) {
    INFO(int{address[0]} << "." << int{address[1]} << "." << int{address[2]} << "." << int{address[3]});
    CHECK(tether::parsers::ipv4_mapped_words(address.data()) ==
          tether::parsers::address_words(tether::parsers::ipv4_mapped(address.data())));
  }
}
