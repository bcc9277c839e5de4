// parse_icmp_error (parsers/icmp_error.hpp): the quoted 5-tuple of every steered ICMP and
// ICMPv6 error, each hostile quote under its own status, and no read past the message for
// any prefix (each prefix is copied into a buffer of exactly its size, so ASan sees an
// overread).
#include <catch2/catch.hpp>

#include <initializer_list>
#include <set>
#include <string>
#include <tuple>

#include "frame_builder.hpp"
#include "parsers/icmp_error.hpp"

using namespace test_frames;
using tether::parsers::IcmpErrorStatus;
using tether::parsers::QuotedPacket;
using tether::parsers::kProtoIcmp;
using tether::parsers::kProtoIcmpv6;

namespace tether::parsers {
inline std::ostream& operator<<(std::ostream& os, IcmpErrorStatus s) { return os << to_string(s); }
}  // namespace tether::parsers

namespace {

// What a backend sent from the VIP to the client, as an ICMP error quotes it.
const Bytes kReplyPayload = sequence_bytes(32, 0x60);

// An ICMP error message (type, code, 4 bytes of unused or MTU) quoting `quoted`.
Bytes icmp_error(std::uint8_t type, std::uint8_t code, std::uint16_t mtu, const Bytes& quoted) {
  Bytes b;
  put8(b, type);
  put8(b, code);
  put16(b, 0);  // checksum: not verified
  put16(b, 0);
  put16(b, mtu);
  append(b, quoted);
  return b;
}

IcmpErrorStatus parse(const Bytes& message, std::uint8_t protocol, QuotedPacket& out) {
  const Bytes copy(message.begin(), message.end());
  return tether::parsers::parse_icmp_error(std::span<const std::uint8_t>(copy.data(), copy.size()),
                                           protocol, out);
}

Bytes prefix(const Bytes& b, std::size_t n) { return Bytes(b.begin(), b.begin() + static_cast<long>(n)); }

}  // namespace

TEST_CASE("parse_icmp_error: fragmentation needed quoting a backend's TCP segment", "[icmp_error]") {
  // A router could not forward the backend's 1500-byte segment over a 1400-byte link.
  const Bytes reply = ipv4(6, tcp(80, 40000, 0x10, kReplyPayload), kVip4, kClient4);
  const Bytes message = icmp_error(3, 4, 1400, reply);
  QuotedPacket q;
  REQUIRE(parse(message, kProtoIcmp, q) == IcmpErrorStatus::ok);
  CHECK(q.src_ip == mapped(kVip4));
  CHECK(q.dst_ip == mapped(kClient4));
  CHECK(q.src_port == 80);
  CHECK(q.dst_port == 40000);
  CHECK(q.l4_proto == 6);
  SECTION("a quote of the IP header and 8 bytes is enough (RFC 792)") {
    REQUIRE(parse(prefix(message, 8 + 20 + 8), kProtoIcmp, q) == IcmpErrorStatus::ok);
    CHECK(q.dst_port == 40000);
  }
  SECTION("IPv4 options in the quote are skipped by its header length") {
    const Bytes with_options = ipv4(17, udp(5060, 5070), kVip4, kClient4, {.options = {1, 1, 1, 0}});
    REQUIRE(parse(icmp_error(3, 3, 0, with_options), kProtoIcmp, q) == IcmpErrorStatus::ok);
    CHECK(q.src_port == 5060);
    CHECK(q.dst_port == 5070);
    CHECK(q.l4_proto == 17);
  }
  SECTION("a first fragment carries the ports") {
    const Bytes first = ipv4(17, udp(5060, 5070, kReplyPayload), kVip4, kClient4, {.flags_fragment = 0x2000});
    CHECK(parse(icmp_error(3, 4, 576, first), kProtoIcmp, q) == IcmpErrorStatus::ok);
  }
}

TEST_CASE("parse_icmp_error: ICMPv6 packet too big and destination unreachable", "[icmp_error]") {
  const Bytes reply = ipv6(6, tcp(80, 40000, 0x18, kReplyPayload), kVip6, kClient6);
  QuotedPacket q;
  for (std::uint8_t type : std::initializer_list<std::uint8_t>{2, 1}) {
    REQUIRE(parse(icmp_error(type, 0, 1280, reply), kProtoIcmpv6, q) == IcmpErrorStatus::ok);
    CHECK(q.src_ip == kVip6);
    CHECK(q.dst_ip == kClient6);
    CHECK(q.src_port == 80);
    CHECK(q.dst_port == 40000);
    CHECK(q.l4_proto == 6);
  }
}

TEST_CASE("parse_icmp_error: only the errors steered to a backend", "[icmp_error]") {
  const Bytes reply4 = ipv4(17, udp(5060, 5070), kVip4, kClient4);
  const Bytes reply6 = ipv6(17, udp(5060, 5070), kVip6, kClient6);
  QuotedPacket q;
  CHECK(parse(icmp_error(3, 1, 0, reply4), kProtoIcmp, q) == IcmpErrorStatus::ok);
  for (std::uint8_t type : std::initializer_list<std::uint8_t>{0, 4, 5, 8, 11, 12, 13}) {  // echo, redirect, time exceeded, ...
    CAPTURE(type);
    CHECK(parse(icmp_error(type, 0, 0, reply4), kProtoIcmp, q) == IcmpErrorStatus::not_steered);
    CHECK_FALSE(tether::parsers::is_steered_icmp_error(kProtoIcmp, type));
  }
  for (std::uint8_t type : std::initializer_list<std::uint8_t>{3, 4, 128, 129, 135, 136}) {  // time exceeded, parameter problem, echo, ND
    CAPTURE(type);
    CHECK(parse(icmp_error(type, 0, 0, reply6), kProtoIcmpv6, q) == IcmpErrorStatus::not_steered);
  }
  // ICMPv6's type numbers are not ICMP's: type 3 is time exceeded there.
  CHECK(parse(icmp_error(2, 0, 0, reply4), kProtoIcmp, q) == IcmpErrorStatus::not_steered);
  CHECK(parse(icmp_error(3, 0, 0, reply4), kProtoIcmp, q) == IcmpErrorStatus::ok);
  CHECK(parse(icmp_error(1, 0, 0, reply4), kProtoIcmp, q) == IcmpErrorStatus::not_steered);
  CHECK(parse({}, kProtoIcmp, q) == IcmpErrorStatus::not_steered);
  CHECK(parse(icmp_error(3, 0, 0, reply4), 17, q) == IcmpErrorStatus::not_steered);
}

TEST_CASE("parse_icmp_error: every hostile quote gets its own status", "[icmp_error]") {
  std::set<IcmpErrorStatus> seen;
  auto expect = [&](const Bytes& message, std::uint8_t protocol, IcmpErrorStatus status) {
    QuotedPacket q;
    CHECK(parse(message, protocol, q) == status);
    seen.insert(status);
  };
  const Bytes reply4 = ipv4(6, tcp(80, 40000, 0x10), kVip4, kClient4);
  const Bytes reply6 = ipv6(17, udp(5060, 5070), kVip6, kClient6);

  expect(icmp_error(3, 4, 1400, reply4), kProtoIcmp, IcmpErrorStatus::ok);
  expect(icmp_error(3, 4, 0, {}), kProtoIcmp, IcmpErrorStatus::truncated);
  expect(icmp_error(3, 4, 0, prefix(reply4, 27)), kProtoIcmp, IcmpErrorStatus::truncated);
  expect(icmp_error(2, 0, 1280, prefix(reply6, 47)), kProtoIcmpv6, IcmpErrorStatus::truncated);
  // The header length says 24 bytes: 20 and 8 bytes of ports are not enough.
  expect(icmp_error(3, 4, 0, prefix(ipv4(6, tcp(80, 1, 0x10), kVip4, kClient4, {.options = {1, 1, 1, 0}}), 28)),
         kProtoIcmp, IcmpErrorStatus::truncated);

  expect(icmp_error(3, 4, 0, reply6), kProtoIcmp, IcmpErrorStatus::bad_quoted_header);   // IPv6 in ICMP
  expect(icmp_error(2, 0, 1280, reply4), kProtoIcmpv6, IcmpErrorStatus::bad_quoted_header);  // IPv4 in ICMPv6
  expect(icmp_error(3, 4, 0, ipv4(6, tcp(80, 1, 0x10), kVip4, kClient4, {.ihl = 4})), kProtoIcmp,
         IcmpErrorStatus::bad_quoted_header);
  expect(icmp_error(3, 4, 0, ipv4(6, tcp(80, 1, 0x10), kVip4, kClient4, {.ihl = 0})), kProtoIcmp,
         IcmpErrorStatus::bad_quoted_header);

  expect(icmp_error(3, 3, 0, ipv4(1, icmp(0, 1, 2), kVip4, kClient4)), kProtoIcmp, IcmpErrorStatus::quotes_icmp);
  expect(icmp_error(1, 4, 0, ipv6(58, icmp(129, 1, 2), kVip6, kClient6)), kProtoIcmpv6, IcmpErrorStatus::quotes_icmp);

  expect(icmp_error(3, 4, 0, ipv4(17, Bytes(16, 0), kVip4, kClient4, {.flags_fragment = 0x0001})), kProtoIcmp,
         IcmpErrorStatus::quotes_fragment);
  expect(icmp_error(3, 4, 0, ipv4(17, Bytes(16, 0), kVip4, kClient4, {.flags_fragment = 0x3fff})), kProtoIcmp,
         IcmpErrorStatus::quotes_fragment);

  for (std::uint8_t header : std::initializer_list<std::uint8_t>{0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254}) {
    CAPTURE(header);
    Bytes chain = ipv6_extension(17);
    append(chain, udp(5060, 5070));
    expect(icmp_error(2, 0, 1280, ipv6(header, chain, kVip6, kClient6)), kProtoIcmpv6,
           IcmpErrorStatus::quotes_extension_header);
  }

  expect(icmp_error(3, 2, 0, ipv4(47, Bytes(16, 0), kVip4, kClient4)), kProtoIcmp,
         IcmpErrorStatus::quotes_other_protocol);  // GRE
  expect(icmp_error(3, 2, 0, ipv4(58, Bytes(16, 0), kVip4, kClient4)), kProtoIcmp,
         IcmpErrorStatus::quotes_other_protocol);  // ICMPv6's number in IPv4
  expect(icmp_error(1, 0, 0, ipv6(59, Bytes(16, 0), kVip6, kClient6)), kProtoIcmpv6,
         IcmpErrorStatus::quotes_other_protocol);  // no next header
  expect(icmp_error(1, 0, 0, ipv6(1, Bytes(16, 0), kVip6, kClient6)), kProtoIcmpv6,
         IcmpErrorStatus::quotes_other_protocol);  // ICMP's number in IPv6

  seen.insert(IcmpErrorStatus::not_steered);  // the test case above
  CHECK(seen.size() == tether::parsers::kIcmpErrorStatusCount);
}

TEST_CASE("parse_icmp_error: every prefix is safe and ok only from IP header and ports on",
          "[icmp_error]") {
  const Bytes v4 = icmp_error(3, 4, 1400, ipv4(6, tcp(80, 40000, 0x10, kReplyPayload), kVip4, kClient4,
                                               {.options = {1, 1, 1, 0}}));
  const Bytes v6 = icmp_error(2, 0, 1280, ipv6(17, udp(5060, 5070, kReplyPayload), kVip6, kClient6));
  for (const auto& [message, protocol, enough] :
       {std::tuple{v4, kProtoIcmp, std::size_t{8 + 24 + 8}}, std::tuple{v6, kProtoIcmpv6, std::size_t{8 + 40 + 8}}}) {
    for (std::size_t n = 0; n <= message.size(); ++n) {
      CAPTURE(n);
      QuotedPacket q;
      const IcmpErrorStatus status = parse(prefix(message, n), protocol, q);
      if (n == 0) CHECK(status == IcmpErrorStatus::not_steered);
      else if (n < enough) CHECK(status == IcmpErrorStatus::truncated);
      else CHECK(status == IcmpErrorStatus::ok);
    }
  }
}

TEST_CASE("parse_icmp_error: a refused quote leaves no ports behind", "[icmp_error]") {
  QuotedPacket q;
  REQUIRE(parse(icmp_error(3, 4, 0, ipv4(6, tcp(80, 40000, 0x10), kVip4, kClient4)), kProtoIcmp, q) ==
          IcmpErrorStatus::ok);
  REQUIRE(parse(icmp_error(3, 4, 0, ipv4(1, icmp(0, 1, 2), kVip4, kClient4)), kProtoIcmp, q) ==
          IcmpErrorStatus::quotes_icmp);
  CHECK(q.src_port == 0);
  CHECK(q.dst_port == 0);
  CHECK(q.l4_proto == 0);
}

TEST_CASE("parse_icmp_error: status names are distinct", "[icmp_error]") {
  std::set<std::string> names;
  for (std::size_t i = 0; i < tether::parsers::kIcmpErrorStatusCount; ++i)
    names.insert(tether::parsers::to_string(static_cast<IcmpErrorStatus>(i)));
  CHECK(names.size() == tether::parsers::kIcmpErrorStatusCount);
  CHECK(names.count("unknown") == 0);
}
