// Slow-path replies (dataplane/slow_path.hpp): ARP, ICMP/ICMPv6 echo, neighbour
// advertisements. Checksums are verified with an internet checksum written here, not DPDK's.
#include <catch2/catch.hpp>

#include <cstring>
#include <optional>

#include "dataplane/slow_path.hpp"
#include "frame_builder.hpp"

using namespace test_frames;
using tether::dataplane::answer_arp;
using tether::dataplane::answer_icmp_echo;
using tether::dataplane::answer_neighbour_solicitation;
using tether::parsers::ParsedFrame;
using tether::parsers::ParseStatus;

namespace {

const Mac kZeroMac{};

// RFC 1071 sum of 16-bit big-endian words, folded, not complemented.
std::uint32_t ones_sum(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  if (n % 2) sum += static_cast<std::uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

// A message with a correct checksum sums to 0xffff (its complement is 0).
bool checksum_ok(std::uint32_t folded) { return folded == 0xffff; }

// ICMPv6 sum over the pseudo-header (source, destination, upper-layer length, next header 58)
// and the message.
std::uint32_t icmpv6_sum(const std::uint8_t* ip6, const std::uint8_t* icmp, std::size_t length) {
  std::uint8_t pseudo[40] = {};
  std::memcpy(pseudo, ip6 + 8, 32);
  pseudo[32] = static_cast<std::uint8_t>(length >> 24);
  pseudo[33] = static_cast<std::uint8_t>(length >> 16);
  pseudo[34] = static_cast<std::uint8_t>(length >> 8);
  pseudo[35] = static_cast<std::uint8_t>(length);
  pseudo[39] = 58;
  return ones_sum(icmp, length, ones_sum(pseudo, sizeof pseudo));
}

Mac mac_at(const std::uint8_t* p) {
  Mac m;
  std::memcpy(m.data(), p, 6);
  return m;
}
Ip6 ip6_at(const std::uint8_t* p) {
  Ip6 a;
  std::memcpy(a.data(), p, 16);
  return a;
}
bool ip4_equal(const std::uint8_t* p, const Ip4& a) { return std::memcmp(p, a.b, 4) == 0; }

ParsedFrame parsed_ok(const Bytes& frame) {
  ParsedFrame p;
  REQUIRE(parse_exact(frame, p) == ParseStatus::ok);
  return p;
}

// Neighbour solicitation for `target`, with a source link-layer address option unless the
// source is unspecified (RFC 4861 4.3).
Bytes neighbour_solicitation(const Ip6& source, const Ip6& target, std::uint8_t hop_limit = 255,
                             std::optional<std::uint16_t> vlan = {}, std::uint8_t code = 0) {
  Bytes icmp6;
  put8(icmp6, 135);
  put8(icmp6, code);
  put16(icmp6, 0);
  put32(icmp6, 0);  // reserved
  put_bytes(icmp6, target.data(), 16);
  const Ip6 unspecified{};
  if (source != unspecified) {
    put8(icmp6, 1);  // source link-layer address, 1 x 8 bytes
    put8(icmp6, 1);
    put_bytes(icmp6, kClientMac.data(), 6);
  }
  Ip6 solicited_node{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, target[13], target[14], target[15]};
  const Mac multicast_mac{0x33, 0x33, 0xff, target[13], target[14], target[15]};
  return ethernet(0x86dd, ipv6(58, icmp6, source, solicited_node, {}, 6, hop_limit), vlan, 0x8100,
                  multicast_mac, kClientMac);
}

}  // namespace

TEST_CASE("answer_arp: request becomes a reply from our MAC", "[slow_path]") {
  for (const bool tagged : {false, true}) {
    DYNAMIC_SECTION((tagged ? "with" : "without") << " a VLAN tag") {
      const std::optional<std::uint16_t> vlan = tagged ? std::optional<std::uint16_t>(0x0123) : std::nullopt;
      const Mac broadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
      Bytes frame = pad_to(ethernet(0x0806, arp(1, kClientMac, kClient4, kZeroMac, kVip4), vlan,
                                    0x8100, broadcast, kClientMac), 60);
      const ParsedFrame request = parsed_ok(frame);
      const std::size_t length = answer_arp(frame.data(), request, kOurMac);
      const std::size_t l3 = tagged ? 18 : 14;
      CHECK(length == l3 + 28);

      CHECK(mac_at(&frame[0]) == kClientMac);  // Ethernet destination: the requester
      CHECK(mac_at(&frame[6]) == kOurMac);     // Ethernet source: us
      if (tagged) {
        CHECK(get16(&frame[12]) == 0x8100);
        CHECK(get16(&frame[14]) == 0x0123);
      }
      CHECK(get16(&frame[l3 - 2]) == 0x0806);
      const std::uint8_t* a = &frame[l3];
      CHECK(get16(a) == 1);
      CHECK(get16(a + 2) == 0x0800);
      CHECK(a[4] == 6);
      CHECK(a[5] == 4);
      CHECK(get16(a + 6) == 2);              // reply
      CHECK(mac_at(a + 8) == kOurMac);       // sender: our MAC ...
      CHECK(ip4_equal(a + 14, kVip4));       // ... and the address asked for
      CHECK(mac_at(a + 18) == kClientMac);   // target: the requester
      CHECK(ip4_equal(a + 24, kClient4));

      // The reply parses as an ARP reply.
      ParsedFrame reply;
      REQUIRE(parse_exact(Bytes(frame.begin(), frame.begin() + static_cast<long>(length)), reply) == ParseStatus::ok);
      CHECK(reply.arp.operation == 2);
      CHECK(reply.has_vlan == tagged);
    }
  }
}

TEST_CASE("answer_arp: anything but a request gets no answer", "[slow_path]") {
  Bytes reply = ethernet(0x0806, arp(2, kClientMac, kClient4, kOurMac, kVip4));
  const Bytes before = reply;
  CHECK(answer_arp(reply.data(), parsed_ok(reply), kOurMac) == 0);
  CHECK(reply == before);  // untouched

  Bytes rarp = ethernet(0x0806, arp(3, kClientMac, kClient4, kZeroMac, kVip4));
  CHECK(answer_arp(rarp.data(), parsed_ok(rarp), kOurMac) == 0);

  Bytes ip = ethernet(0x0800, ipv4(1, icmp(8, 1, 1)));
  CHECK(answer_arp(ip.data(), parsed_ok(ip), kOurMac) == 0);
}

TEST_CASE("answer_icmp_echo: IPv4", "[slow_path]") {
  const Bytes data = sequence_bytes(37, 0x20);  // odd length exercises the checksum's last byte
  Ipv4Options options;
  options.ttl = 3;
  options.options = {0x01, 0x01, 0x01, 0x00};  // the header checksum must cover options too
  for (const bool tagged : {false, true}) {
    DYNAMIC_SECTION((tagged ? "with" : "without") << " a VLAN tag") {
      const std::optional<std::uint16_t> vlan = tagged ? std::optional<std::uint16_t>(42) : std::nullopt;
      Bytes frame = ethernet(0x0800, ipv4(1, icmp(8, 0xbeef, 9, data), kClient4, kVip4, options), vlan);
      frame.insert(frame.end(), {0x55, 0x55, 0x55});  // trailing padding is not part of the message
      const ParsedFrame request = parsed_ok(frame);
      const std::size_t length = answer_icmp_echo(frame.data(), request, kOurMac);
      const std::size_t l3 = tagged ? 18 : 14;
      const std::size_t ip_header = 24;
      const std::size_t icmp_length = 8 + data.size();
      REQUIRE(length == l3 + ip_header + icmp_length);

      CHECK(mac_at(&frame[0]) == kClientMac);
      CHECK(mac_at(&frame[6]) == kOurMac);
      if (tagged) CHECK(get16(&frame[14]) == 42);
      const std::uint8_t* ip = &frame[l3];
      CHECK(ip[0] == 0x46);
      CHECK(get16(ip + 2) == ip_header + icmp_length);
      CHECK(ip[8] == 64);  // fresh TTL
      CHECK(ip[9] == 1);
      CHECK(ip4_equal(ip + 12, kVip4));     // source: the VIP
      CHECK(ip4_equal(ip + 16, kClient4));  // destination: the client
      CHECK(checksum_ok(ones_sum(ip, ip_header)));

      const std::uint8_t* message = ip + ip_header;
      CHECK(message[0] == 0);  // echo reply
      CHECK(message[1] == 0);
      CHECK(get16(message + 4) == 0xbeef);  // identifier and sequence kept
      CHECK(get16(message + 6) == 9);
      CHECK(std::memcmp(message + 8, data.data(), data.size()) == 0);
      CHECK(checksum_ok(ones_sum(message, icmp_length)));
      // The padding after the IP packet was left alone.
      CHECK(frame[frame.size() - 1] == 0x55);
    }
  }
}

TEST_CASE("answer_icmp_echo: IPv6", "[slow_path]") {
  const Bytes data = sequence_bytes(21, 0x61);
  Bytes frame = ethernet(0x86dd, ipv6(58, icmp(128, 0x0102, 0x0304, data)));
  const ParsedFrame request = parsed_ok(frame);
  const std::size_t length = answer_icmp_echo(frame.data(), request, kOurMac);
  const std::size_t icmp_length = 8 + data.size();
  REQUIRE(length == 14 + 40 + icmp_length);
  CHECK(mac_at(&frame[0]) == kClientMac);
  CHECK(mac_at(&frame[6]) == kOurMac);
  const std::uint8_t* ip = &frame[14];
  CHECK(ip[0] >> 4 == 6);
  CHECK(get16(ip + 4) == icmp_length);
  CHECK(ip[6] == 58);
  CHECK(ip[7] == 64);
  CHECK(ip6_at(ip + 8) == kVip6);
  CHECK(ip6_at(ip + 24) == kClient6);
  const std::uint8_t* message = ip + 40;
  CHECK(message[0] == 129);
  CHECK(message[1] == 0);
  CHECK(get16(message + 4) == 0x0102);
  CHECK(get16(message + 6) == 0x0304);
  CHECK(std::memcmp(message + 8, data.data(), data.size()) == 0);
  CHECK(checksum_ok(icmpv6_sum(ip, message, icmp_length)));
}

TEST_CASE("answer_icmp_echo: non-requests get no answer", "[slow_path]") {
  SECTION("IPv4 echo reply") {
    Bytes frame = ethernet(0x0800, ipv4(1, icmp(0, 1, 1)));
    const Bytes before = frame;
    CHECK(answer_icmp_echo(frame.data(), parsed_ok(frame), kOurMac) == 0);
    CHECK(frame == before);
  }
  SECTION("IPv6 echo reply") {
    Bytes frame = ethernet(0x86dd, ipv6(58, icmp(129, 1, 1)));
    const Bytes before = frame;
    CHECK(answer_icmp_echo(frame.data(), parsed_ok(frame), kOurMac) == 0);
    CHECK(frame == before);
  }
  SECTION("ICMPv6 type 128 inside IPv4 and ICMP type 8 inside IPv6") {
    Bytes v4 = ethernet(0x0800, ipv4(1, icmp(128, 1, 1)));
    CHECK(answer_icmp_echo(v4.data(), parsed_ok(v4), kOurMac) == 0);
    Bytes v6 = ethernet(0x86dd, ipv6(58, icmp(8, 1, 1)));
    CHECK(answer_icmp_echo(v6.data(), parsed_ok(v6), kOurMac) == 0);
  }
  SECTION("IPv4 destination unreachable") {
    Bytes frame = ethernet(0x0800, ipv4(1, icmp(3, 0, 0, Bytes(28, 0))));
    CHECK(answer_icmp_echo(frame.data(), parsed_ok(frame), kOurMac) == 0);
  }
  SECTION("UDP and ARP") {
    Bytes frame = ethernet(0x0800, ipv4(17, udp(1, 7)));
    CHECK(answer_icmp_echo(frame.data(), parsed_ok(frame), kOurMac) == 0);
    Bytes request = ethernet(0x0806, arp(1, kClientMac, kClient4, kZeroMac, kVip4));
    CHECK(answer_icmp_echo(request.data(), parsed_ok(request), kOurMac) == 0);
  }
  SECTION("IPv6 echo request behind an extension header") {
    Bytes chain = ipv6_extension(58);
    append(chain, icmp(128, 1, 1));
    Bytes frame = ethernet(0x86dd, ipv6(60, chain));
    CHECK(answer_icmp_echo(frame.data(), parsed_ok(frame), kOurMac) == 0);
  }
}

TEST_CASE("answer_neighbour_solicitation: advertisement for the target", "[slow_path]") {
  for (const bool tagged : {false, true}) {
    DYNAMIC_SECTION((tagged ? "with" : "without") << " a VLAN tag") {
      const std::optional<std::uint16_t> vlan = tagged ? std::optional<std::uint16_t>(0x0abc) : std::nullopt;
      Bytes frame = neighbour_solicitation(kClient6, kVip6, 255, vlan);
      const std::size_t l3 = tagged ? 18 : 14;
      REQUIRE(frame.size() == l3 + 40 + 32);
      const ParsedFrame request = parsed_ok(frame);

      tether::parsers::IpBytes target{};
      CHECK(tether::dataplane::neighbour_solicitation_target(frame.data(), request, target));
      CHECK(target == kVip6);

      const std::size_t length = answer_neighbour_solicitation(frame.data(), frame.size(), request, kOurMac);
      REQUIRE(length == l3 + 40 + 32);
      CHECK(mac_at(&frame[0]) == kClientMac);
      CHECK(mac_at(&frame[6]) == kOurMac);
      if (tagged) CHECK(get16(&frame[14]) == 0x0abc);
      CHECK(get16(&frame[l3 - 2]) == 0x86dd);
      const std::uint8_t* ip = &frame[l3];
      CHECK(ip[0] >> 4 == 6);
      CHECK(get16(ip + 4) == 32);
      CHECK(ip[6] == 58);
      CHECK(ip[7] == 255);
      CHECK(ip6_at(ip + 8) == kVip6);      // source: the target address
      CHECK(ip6_at(ip + 24) == kClient6);  // destination: the solicitor
      const std::uint8_t* na = ip + 40;
      CHECK(na[0] == 136);
      CHECK(na[1] == 0);
      CHECK(na[4] == 0x60);  // solicited and override, not router
      CHECK(na[5] == 0);
      CHECK(na[6] == 0);
      CHECK(na[7] == 0);
      CHECK(ip6_at(na + 8) == kVip6);
      CHECK(na[24] == 2);  // target link-layer address
      CHECK(na[25] == 1);
      CHECK(mac_at(na + 26) == kOurMac);
      CHECK(checksum_ok(icmpv6_sum(ip, na, 32)));

      ParsedFrame reply;
      REQUIRE(parse_exact(Bytes(frame.begin(), frame.begin() + static_cast<long>(length)), reply) == ParseStatus::ok);
      CHECK(reply.icmp_type == 136);
    }
  }
}

TEST_CASE("answer_neighbour_solicitation: duplicate address detection", "[slow_path]") {
  const Ip6 unspecified{};
  Bytes frame = neighbour_solicitation(unspecified, kVip6);
  REQUIRE(frame.size() == 14 + 40 + 24);  // no source link-layer option
  frame.resize(14 + 40 + 32 + 10, 0);     // the mbuf has room for the reply
  const ParsedFrame request = parsed_ok(frame);
  const std::size_t length = answer_neighbour_solicitation(frame.data(), frame.size(), request, kOurMac);
  REQUIRE(length == 14 + 40 + 32);
  const Mac all_nodes_mac{0x33, 0x33, 0x00, 0x00, 0x00, 0x01};
  const Ip6 all_nodes{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  CHECK(mac_at(&frame[0]) == all_nodes_mac);
  CHECK(mac_at(&frame[6]) == kOurMac);
  const std::uint8_t* ip = &frame[14];
  CHECK(get16(ip + 4) == 32);
  CHECK(ip[7] == 255);
  CHECK(ip6_at(ip + 8) == kVip6);
  CHECK(ip6_at(ip + 24) == all_nodes);
  const std::uint8_t* na = ip + 40;
  CHECK(na[0] == 136);
  CHECK(na[4] == 0x20);  // override only: no solicited flag
  CHECK(ip6_at(na + 8) == kVip6);
  CHECK(mac_at(na + 26) == kOurMac);
  CHECK(checksum_ok(icmpv6_sum(ip, na, 32)));
}

TEST_CASE("answer_neighbour_solicitation: what is not answered", "[slow_path]") {
  SECTION("hop limit 64: not from the link") {
    Bytes frame = neighbour_solicitation(kClient6, kVip6, 64);
    const Bytes before = frame;
    const ParsedFrame request = parsed_ok(frame);
    tether::parsers::IpBytes target{};
    CHECK_FALSE(tether::dataplane::neighbour_solicitation_target(frame.data(), request, target));
    CHECK(answer_neighbour_solicitation(frame.data(), frame.size(), request, kOurMac) == 0);
    CHECK(frame == before);
  }
  SECTION("code not 0") {
    Bytes frame = neighbour_solicitation(kClient6, kVip6, 255, {}, 1);
    CHECK(answer_neighbour_solicitation(frame.data(), frame.size(), parsed_ok(frame), kOurMac) == 0);
  }
  SECTION("too short to hold a target") {
    Bytes icmp6 = icmp(135, 0, 0, Bytes(8, 0));  // 16 bytes
    Bytes frame = ethernet(0x86dd, ipv6(58, icmp6, kClient6, kVip6, {}, 6, 255));
    CHECK(answer_neighbour_solicitation(frame.data(), frame.size(), parsed_ok(frame), kOurMac) == 0);
  }
  SECTION("no room for the advertisement") {
    Bytes frame = neighbour_solicitation(Ip6{}, kVip6);  // 78 bytes, the reply needs 86
    const Bytes before = frame;
    CHECK(answer_neighbour_solicitation(frame.data(), frame.size(), parsed_ok(frame), kOurMac) == 0);
    CHECK(frame == before);
  }
  SECTION("a neighbour advertisement or echo request is not a solicitation") {
    Bytes na = neighbour_solicitation(kClient6, kVip6);
    na[14 + 40] = 136;
    CHECK(answer_neighbour_solicitation(na.data(), na.size(), parsed_ok(na), kOurMac) == 0);
    Bytes echo = ethernet(0x86dd, ipv6(58, icmp(128, 1, 1, Bytes(24, 0)), kClient6, kVip6, {}, 6, 255));
    CHECK(answer_neighbour_solicitation(echo.data(), echo.size(), parsed_ok(echo), kOurMac) == 0);
  }
  SECTION("behind an extension header") {
    Bytes ns = neighbour_solicitation(kClient6, kVip6);
    Bytes icmp6(ns.begin() + 54, ns.end());
    Bytes chain = ipv6_extension(58);
    append(chain, icmp6);
    Bytes frame = ethernet(0x86dd, ipv6(0, chain, kClient6, kVip6, {}, 6, 255));
    CHECK(answer_neighbour_solicitation(frame.data(), frame.size(), parsed_ok(frame), kOurMac) == 0);
  }
  SECTION("IPv4") {
    Bytes frame = ethernet(0x0800, ipv4(1, icmp(135, 0, 0, Bytes(16, 0))));
    CHECK(answer_neighbour_solicitation(frame.data(), frame.size(), parsed_ok(frame), kOurMac) == 0);
  }
}

TEST_CASE("build_arp_request: broadcast who-has from our address", "[slow_path][neighbours]") {
  const Ip4 backend{{192, 0, 2, 11}};
  std::uint8_t frame[64];
  std::memset(frame, 0xaa, sizeof frame);
  CHECK(tether::dataplane::build_arp_request(frame, 59, kOurMac, mapped(kVip4), mapped(backend)) == 0);
  const std::size_t length =
      tether::dataplane::build_arp_request(frame, sizeof frame, kOurMac, mapped(kVip4), mapped(backend));
  REQUIRE(length == 60);
  const Bytes bytes(frame, frame + length);
  const ParsedFrame parsed = parsed_ok(Bytes(bytes.begin(), bytes.begin() + 42));
  CHECK(mac_at(frame) == Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  CHECK(mac_at(frame + 6) == kOurMac);
  CHECK(parsed.l3 == tether::parsers::L3Kind::arp);
  CHECK(parsed.arp.operation == 1);
  CHECK(parsed.arp.sender_mac == kOurMac);
  CHECK(ip4_equal(parsed.arp.sender_ip, kVip4));
  CHECK(ip4_equal(parsed.arp.target_ip, backend));
  CHECK(mac_at(frame + 32) == kZeroMac);
  for (std::size_t i = 42; i < 60; ++i) CHECK(frame[i] == 0);  // padding, not buffer contents
}

TEST_CASE("build_neighbour_solicitation: to the solicited-node group, with our MAC", "[slow_path][neighbours]") {
  const Ip6 backend{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0xef};
  std::uint8_t frame[128];
  CHECK(tether::dataplane::build_neighbour_solicitation(frame, 85, kOurMac, kVip6, backend) == 0);
  const std::size_t length =
      tether::dataplane::build_neighbour_solicitation(frame, sizeof frame, kOurMac, kVip6, backend);
  REQUIRE(length == 14 + 40 + 32);
  const ParsedFrame parsed = parsed_ok(Bytes(frame, frame + length));
  CHECK(mac_at(frame) == Mac{0x33, 0x33, 0xff, 0xab, 0xcd, 0xef});
  CHECK(mac_at(frame + 6) == kOurMac);
  const std::uint8_t* ip = frame + 14;
  CHECK(ip[7] == 255);
  CHECK(ip6_at(ip + 8) == kVip6);
  CHECK(ip6_at(ip + 24) == Ip6{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xab, 0xcd, 0xef});
  const std::uint8_t* ns = ip + 40;
  CHECK(parsed.icmp_type == 135);
  CHECK(ip6_at(ns + 8) == backend);
  CHECK(ns[24] == 1);  // source link-layer address
  CHECK(ns[25] == 1);
  CHECK(mac_at(ns + 26) == kOurMac);
  CHECK(checksum_ok(icmpv6_sum(ip, ns, 32)));
  // The backend's kernel would take it for a solicitation of its address.
  tether::parsers::IpBytes target{};
  CHECK(tether::dataplane::neighbour_solicitation_target(frame, parsed, target));
  CHECK(target == backend);
}

TEST_CASE("build_unsolicited_advertisement: a new master's NA for its VIP, byte by byte", "[slow_path][ha]") {
  std::uint8_t frame[128];
  std::memset(frame, 0xaa, sizeof frame);
  CHECK(tether::dataplane::build_unsolicited_advertisement(frame, 85, kOurMac, kVip6) == 0);
  const std::size_t length =
      tether::dataplane::build_unsolicited_advertisement(frame, sizeof frame, kOurMac, kVip6);
  REQUIRE(length == 14 + 40 + 32);
  const ParsedFrame parsed = parsed_ok(Bytes(frame, frame + length));
  CHECK(mac_at(frame) == Mac{0x33, 0x33, 0, 0, 0, 1});  // all-nodes
  CHECK(mac_at(frame + 6) == kOurMac);
  CHECK(frame[12] == 0x86);
  CHECK(frame[13] == 0xdd);
  const std::uint8_t* ip = frame + 14;
  CHECK(ip[0] == 0x60);
  CHECK(ip[1] == 0);
  CHECK(ip[4] == 0);
  CHECK(ip[5] == 32);  // payload length
  CHECK(ip[6] == 58);
  CHECK(ip[7] == 255);
  CHECK(ip6_at(ip + 8) == kVip6);
  CHECK(ip6_at(ip + 24) == Ip6{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  const std::uint8_t* na = ip + 40;
  CHECK(parsed.icmp_type == 136);
  CHECK(na[1] == 0);
  CHECK(na[4] == 0x20);  // override; neither router nor solicited
  CHECK(na[5] == 0);
  CHECK(na[6] == 0);
  CHECK(na[7] == 0);
  CHECK(ip6_at(na + 8) == kVip6);
  CHECK(na[24] == 2);  // target link-layer address
  CHECK(na[25] == 1);
  CHECK(mac_at(na + 26) == kOurMac);
  CHECK(checksum_ok(icmpv6_sum(ip, na, 32)));
  // A neighbour takes it as news of the VIP's MAC that replaces what it held.
  tether::dataplane::NeighbourAnswer answer;
  REQUIRE(tether::dataplane::neighbour_answer(frame, parsed, answer));
  CHECK(answer.address == kVip6);
  CHECK(answer.mac == kOurMac);
  CHECK_FALSE(answer.solicited);
  CHECK(answer.override);
}

TEST_CASE("gratuitous ARP: build_arp_request with the VIP as sender and target", "[slow_path][ha]") {
  std::uint8_t frame[64];
  const std::size_t length =
      tether::dataplane::build_arp_request(frame, sizeof frame, kOurMac, mapped(kVip4), mapped(kVip4));
  REQUIRE(length == 60);
  const ParsedFrame parsed = parsed_ok(Bytes(frame, frame + 42));
  CHECK(mac_at(frame) == Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  CHECK(parsed.arp.operation == 1);
  CHECK(parsed.arp.sender_mac == kOurMac);
  CHECK(ip4_equal(parsed.arp.sender_ip, kVip4));
  CHECK(ip4_equal(parsed.arp.target_ip, kVip4));
  CHECK(mac_at(frame + 32) == kZeroMac);
}

TEST_CASE("neighbour_answer: ARP and neighbour advertisements", "[slow_path][neighbours]") {
  using tether::dataplane::neighbour_answer;
  using tether::dataplane::NeighbourAnswer;
  const Mac backend_mac{0x02, 0, 0, 0, 0x01, 0x0b};
  const Ip4 backend4{{192, 0, 2, 11}};
  const Ip6 backend6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b};

  SECTION("ARP reply: the sender") {
    const Bytes frame = ethernet(0x0806, arp(2, backend_mac, backend4, kOurMac, kVip4), {}, 0x8100,
                                 kOurMac, backend_mac);
    NeighbourAnswer answer;
    REQUIRE(neighbour_answer(frame.data(), parsed_ok(frame), answer));
    CHECK(answer.address == mapped(backend4));
    CHECK(answer.mac == backend_mac);
    CHECK(answer.solicited);
    CHECK(answer.override);
    const Bytes request = ethernet(0x0806, arp(1, backend_mac, backend4, kZeroMac, kVip4));
    REQUIRE(neighbour_answer(request.data(), parsed_ok(request), answer));
    CHECK_FALSE(answer.solicited);  // a request says where its sender is, but answers nothing
  }
  auto advertisement = [&](const Bytes& options, std::uint8_t hop_limit = 255,
                           std::uint32_t flags = 0x60000000) {
    Bytes icmp6;
    put8(icmp6, 136);
    put8(icmp6, 0);
    put16(icmp6, 0);
    put32(icmp6, flags);
    put_bytes(icmp6, backend6.data(), 16);
    append(icmp6, options);
    return ethernet(0x86dd, ipv6(58, icmp6, backend6, kVip6, {}, 6, hop_limit), {}, 0x8100, kOurMac,
                    kClientMac);
  };
  SECTION("advertisement with a target link-layer address option") {
    Bytes option;
    put8(option, 2);
    put8(option, 1);
    put_bytes(option, backend_mac.data(), 6);
    const Bytes frame = advertisement(option);
    NeighbourAnswer answer;
    REQUIRE(neighbour_answer(frame.data(), parsed_ok(frame), answer));
    CHECK(answer.address == backend6);
    CHECK(answer.mac == backend_mac);
    CHECK(answer.solicited);
    CHECK(answer.override);
  }
  SECTION("the advertisement's solicited and override flags") {
    const Bytes unsolicited = advertisement({}, 255, 0x20000000);
    NeighbourAnswer answer;
    REQUIRE(neighbour_answer(unsolicited.data(), parsed_ok(unsolicited), answer));
    CHECK_FALSE(answer.solicited);
    CHECK(answer.override);
    const Bytes no_override = advertisement({}, 255, 0x40000000);
    REQUIRE(neighbour_answer(no_override.data(), parsed_ok(no_override), answer));
    CHECK(answer.solicited);
    CHECK_FALSE(answer.override);
  }
  SECTION("advertisement without options: the frame's source MAC") {
    const Bytes frame = advertisement({});
    NeighbourAnswer answer;
    REQUIRE(neighbour_answer(frame.data(), parsed_ok(frame), answer));
    CHECK(answer.mac == kClientMac);
  }
  SECTION("malformed or off-link advertisements are not answers") {
    Bytes zero_length;
    put8(zero_length, 2);
    put8(zero_length, 0);
    put_bytes(zero_length, backend_mac.data(), 6);
    Bytes overlong;
    put8(overlong, 2);
    put8(overlong, 2);  // 16 bytes claimed, 8 present
    put_bytes(overlong, backend_mac.data(), 6);
    NeighbourAnswer answer;
    for (const Bytes& frame : {advertisement(zero_length), advertisement(overlong), advertisement({}, 64)})
      CHECK_FALSE(neighbour_answer(frame.data(), parsed_ok(frame), answer));
    const Bytes echo = ethernet(0x86dd, ipv6(58, icmp(129, 1, 1), backend6, kVip6));
    CHECK_FALSE(neighbour_answer(echo.data(), parsed_ok(echo), answer));
  }
}

TEST_CASE("kernel_class: what keeps the box reachable and routed has its own allowance", "[slow_path]") {
  using tether::dataplane::KernelClass;
  using tether::dataplane::kernel_class;
  const auto of = [](const Bytes& frame) {
    ParsedFrame parsed;
    const ParseStatus status = parse_exact(frame, parsed);
    return status == ParseStatus::ok ? kernel_class(parsed) : kernel_class(frame, status, parsed);
  };
  const Ip6 target{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  CHECK(of(ethernet(0x0806, arp(1, kClientMac, kClient4, {}, kClient4))) == KernelClass::control);
  CHECK(of(neighbour_solicitation(kClient6, target)) == KernelClass::control);
  CHECK(of(ethernet(0x0800, ipv4(6, tcp(40000, 179, 0x02)))) == KernelClass::control);
  CHECK(of(ethernet(0x0800, ipv4(6, tcp(179, 40000, 0x12)))) == KernelClass::control);
  CHECK(of(ethernet(0x0800, ipv4(17, udp(49152, 3784)))) == KernelClass::control);
  CHECK(of(ethernet(0x0800, ipv4(112, Bytes(20, 0)))) == KernelClass::control);  // VRRP
  CHECK(of(ethernet(0x0800, ipv4(89, Bytes(20, 0)))) == KernelClass::control);   // OSPF
  CHECK(of(ethernet(0x88cc, Bytes(46, 0))) == KernelClass::control);             // LLDP
  CHECK(of(ethernet(0x0800, ipv4(1, icmp(8, 1, 1)))) == KernelClass::other);
  CHECK(of(ethernet(0x0800, ipv4(6, tcp(40000, 22, 0x02)))) == KernelClass::other);
  CHECK(of(ethernet(0x0800, ipv4(17, udp(3784, 53)))) == KernelClass::other);
  CHECK(of(ethernet(0x0800, ipv4(47, Bytes(20, 0)))) == KernelClass::other);     // GRE
  CHECK(of(ethernet(0x88b5, Bytes(46, 0))) == KernelClass::other);
  // State sync: from and to the group's port, only where the port carries sync.
  const auto on_sync_port = [](const Bytes& frame) {
    ParsedFrame parsed;
    REQUIRE(parse_exact(frame, parsed) == ParseStatus::ok);
    return kernel_class(parsed, 7788);
  };
  CHECK(on_sync_port(ethernet(0x0800, ipv4(17, udp(7788, 7788)))) == KernelClass::sync);
  CHECK(on_sync_port(ethernet(0x0800, ipv4(17, udp(40000, 7788)))) == KernelClass::other);
  CHECK(on_sync_port(ethernet(0x0800, ipv4(6, tcp(7788, 7788, 0x02)))) == KernelClass::other);
  CHECK(of(ethernet(0x0800, ipv4(17, udp(7788, 7788)))) == KernelClass::other);
}
