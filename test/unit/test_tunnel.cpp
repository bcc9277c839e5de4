// Tunnel forwarding's byte code (dataplane/tunnel.hpp) and the next hop of a routed backend
// (control/config.hpp next_hop): outer headers field by field, checksums verified the
// receiver's way (a header or message with its checksum sums to 0xffff), the too-big errors.
#include <catch2/catch.hpp>

#include <set>

#include "control/config.hpp"
#include "dataplane/tunnel.hpp"
#include "frame_builder.hpp"

using namespace test_frames;
using tether::dataplane::Forwarding;
using tether::dataplane::TunnelEndpoint;
namespace dp = tether::dataplane;

namespace {

std::uint32_t ones_sum(const std::uint8_t* data, std::size_t length, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < length; i += 2) sum += get16(data + i);
  if (length % 2) sum += static_cast<std::uint32_t>(data[length - 1]) << 8;
  return sum;
}
std::uint16_t folded(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}
// The IPv6 pseudo-header's sum for an upper-layer message of `length` bytes after `ip`.
std::uint32_t pseudo6(const std::uint8_t* ip, std::size_t length, std::uint8_t next_header) {
  return ones_sum(ip + 8, 32) + static_cast<std::uint32_t>(length) + next_header;
}

tether::IpBytes ip(const char* text) { return *tether::parse_ip(text); }

TunnelEndpoint endpoint(bool ipv4) {
  return dp::make_tunnel_endpoint(ipv4 ? ip("192.0.2.2") : ip("2001:db8::2"),
                                  ipv4 ? ip("198.51.100.11") : ip("2001:db8:5::16"), 1500, 6080);
}

// The inner packet placed after room for the outer headers, as the worker's mbuf holds it.
struct Wrapped {
  Bytes buffer;
  std::size_t overhead;
  Wrapped(const Bytes& inner, const TunnelEndpoint& e, Forwarding f, std::uint32_t hash)
      : overhead(dp::tunnel_overhead(e.outer_ipv4, f)) {
    buffer.assign(overhead, 0xee);
    append(buffer, inner);
    dp::write_tunnel_headers(buffer.data(), e, f, {buffer.data() + overhead, inner.size()}, hash);
  }
};

Bytes client_tcp4(std::size_t payload = 30) {
  Bytes ip4 = ipv4(tether::parsers::kProtoTcp, tcp(40000, 80, 0x18, sequence_bytes(payload, 1)));
  ip4[1] = 0xb8;  // DSCP EF: copied to the outer header
  return ip4;
}

}  // namespace

TEST_CASE("outer IPv4 header of IPv4 in IPv4 (RFC 2003)", "[tunnel]") {
  const Bytes inner = client_tcp4();
  const Wrapped w(inner, endpoint(true), Forwarding::ipip, 0x1234);
  const std::uint8_t* h = w.buffer.data();
  CHECK(w.overhead == 20);
  CHECK(h[0] == 0x45);
  CHECK(h[1] == 0xb8);
  CHECK(get16(h + 2) == 20 + inner.size());
  CHECK(get16(h + 6) == 0x4000);  // DF, offset 0
  CHECK(h[8] == 64);
  CHECK(h[9] == 4);
  CHECK(folded(ones_sum(h, 20)) == 0xffff);  // the header checksum verifies
  CHECK(Bytes(h + 12, h + 16) == Bytes{192, 0, 2, 2});
  CHECK(Bytes(h + 16, h + 20) == Bytes{198, 51, 100, 11});
  CHECK(Bytes(h + 20, h + w.buffer.size()) == inner);
}

TEST_CASE("IPv6 in IPv4 (RFC 4213) and IPv6 in IPv6 (RFC 2473)", "[tunnel]") {
  const Bytes inner = ipv6(tether::parsers::kProtoUdp, udp(5000, 9000, sequence_bytes(40, 3)));
  const Wrapped in4(inner, endpoint(true), Forwarding::ipip, 7);
  CHECK(in4.buffer[9] == 41);
  CHECK(get16(in4.buffer.data() + 2) == 20 + inner.size());
  const Wrapped in6(inner, endpoint(false), Forwarding::ipip, 0xabcde123);
  const std::uint8_t* h = in6.buffer.data();
  CHECK(in6.overhead == 40);
  CHECK(h[0] >> 4 == 6);
  CHECK(((get16(h) & 0x0f) << 16 | get16(h + 2)) == 0xde123);  // the flow label: the hash (RFC 6438)
  CHECK(get16(h + 4) == inner.size());
  CHECK(h[6] == 41);
  CHECK(h[7] == 64);
}

TEST_CASE("GUE variant 1: UDP to the GUE port, entropy in the source port", "[tunnel]") {
  const Bytes inner = client_tcp4(31);  // odd: the checksum's last byte alone
  const Wrapped over4(inner, endpoint(true), Forwarding::gue, 0x5555aaaa);
  const std::uint8_t* udp4 = over4.buffer.data() + 20;
  CHECK(over4.buffer[9] == 17);
  CHECK(get16(udp4) == dp::gue_source_port(0x5555aaaa));
  CHECK(get16(udp4 + 2) == 6080);
  CHECK(get16(udp4 + 4) == 8 + inner.size());
  CHECK(get16(udp4 + 6) == 0);  // no checksum over IPv4
  CHECK(over4.buffer[28] >> 4 == 4);  // variant 1: the IP version where GUE's header would be

  const Wrapped over6(inner, endpoint(false), Forwarding::gue, 99);
  const std::uint8_t* h = over6.buffer.data();
  const std::size_t udp_length = 8 + inner.size();
  CHECK(get16(h + 4) == udp_length);
  CHECK(h[6] == 17);
  CHECK(get16(h + 40 + 6) != 0);
  CHECK(folded(ones_sum(h + 40, udp_length, pseudo6(h, udp_length, 17))) == 0xffff);

  std::set<std::uint16_t> ports;
  for (std::uint32_t hash = 0; hash < 4000; ++hash) {
    const std::uint16_t port = dp::gue_source_port(hash * 2654435761u);
    CHECK(port >= 49152);
    ports.insert(port);
  }
  CHECK(ports.size() > 3300);  // uniform over 16384 would give about 3550 distinct of 4000
  CHECK(dp::gue_source_port(42) == dp::gue_source_port(42));
}

TEST_CASE("ip_packet_length reads the header, refuses what is none", "[tunnel]") {
  const Bytes v4 = client_tcp4();
  CHECK(dp::ip_packet_length(v4) == v4.size());
  Bytes padded = v4;
  padded.resize(v4.size() + 6);
  CHECK(dp::ip_packet_length(padded) == v4.size());
  const Bytes v6 = ipv6(17, udp(1, 2));
  CHECK(dp::ip_packet_length(v6) == v6.size());
  CHECK(dp::ip_packet_length(Bytes(v4.begin(), v4.begin() + 19)) == 0);
  CHECK(dp::ip_packet_length(Bytes{0x55, 0, 0, 20}) == 0);
  CHECK(dp::ip_packet_length({}) == 0);
}

TEST_CASE("too-big errors: never about an ICMP error or a later fragment", "[tunnel]") {
  using tether::parsers::kProtoIcmp;
  using tether::parsers::kProtoIcmpv6;
  CHECK(dp::may_answer_too_big(client_tcp4()));
  CHECK(dp::may_answer_too_big(ipv4(kProtoIcmp, icmp(8, 1, 1))));  // echo request
  Bytes unreachable = ipv4(kProtoIcmp, icmp(8, 1, 1));
  unreachable[20] = 3;
  CHECK_FALSE(dp::may_answer_too_big(unreachable));
  CHECK_FALSE(dp::may_answer_too_big(ipv4(6, tcp(1, 2, 0x10), kClient4, kVip4, {.flags_fragment = 0x0001})));
  CHECK(dp::may_answer_too_big(ipv4(6, tcp(1, 2, 0x10), kClient4, kVip4, {.flags_fragment = 0x2000})));  // first
  CHECK_FALSE(dp::may_answer_too_big(ipv6(kProtoIcmpv6, Bytes{1, 4, 0, 0, 0, 0, 0, 0})));
  CHECK(dp::may_answer_too_big(ipv6(kProtoIcmpv6, Bytes{128, 0, 0, 0, 0, 0, 0, 0})));
  CHECK_FALSE(dp::may_answer_too_big(Bytes(10, 0x45)));
}

TEST_CASE("ICMP fragmentation needed and ICMPv6 packet too big, from the VIP", "[tunnel]") {
  const Bytes big4 = client_tcp4(1460);
  const std::size_t quote4 = dp::too_big_quote_length(true, big4.size());
  CHECK(quote4 == 576 - 28);
  Bytes error4(dp::too_big_header_length(true), 0);
  error4.insert(error4.end(), big4.begin(), big4.begin() + static_cast<long>(quote4));
  dp::write_too_big_headers(error4.data(), {error4.data() + 28, quote4}, 1480);
  const std::uint8_t* h = error4.data();
  CHECK(get16(h + 2) == 576);
  CHECK(h[9] == 1);
  CHECK(folded(ones_sum(h, 20)) == 0xffff);
  CHECK(Bytes(h + 12, h + 16) == Bytes(kVip4.b, kVip4.b + 4));  // from the VIP
  CHECK(Bytes(h + 16, h + 20) == Bytes(kClient4.b, kClient4.b + 4));
  CHECK(h[20] == 3);
  CHECK(h[21] == 4);
  CHECK(get16(h + 26) == 1480);
  CHECK(folded(ones_sum(h + 20, 8 + quote4)) == 0xffff);

  const Bytes big6 = ipv6(17, udp(5000, 9000, sequence_bytes(1452, 9)));
  const std::size_t quote6 = dp::too_big_quote_length(false, big6.size());
  CHECK(quote6 == 1280 - 48);
  CHECK(dp::too_big_quote_length(false, 300) == 300);
  Bytes error6(dp::too_big_header_length(false), 0);
  error6.insert(error6.end(), big6.begin(), big6.begin() + static_cast<long>(quote6));
  dp::write_too_big_headers(error6.data(), {error6.data() + 48, quote6}, 1460);
  h = error6.data();
  CHECK(get16(h + 4) == 8 + quote6);
  CHECK(h[6] == 58);
  CHECK(Bytes(h + 8, h + 24) == Bytes(kVip6.begin(), kVip6.end()));
  CHECK(h[40] == 2);
  CHECK(get16(h + 46) == 1460);
  CHECK(folded(ones_sum(h + 40, 8 + quote6, pseudo6(h, 8 + quote6, 58))) == 0xffff);
}

TEST_CASE("a backend's next hop: longest route or on-link prefix, then the gateway", "[tunnel]") {
  tether::PortConfig port;
  port.addresses = {ip("192.0.2.1"), ip("2001:db8::1")};
  port.prefix_lengths = {24, 128};
  const auto backend = ip("198.51.100.11");
  CHECK(tether::next_hop(port, backend) == backend);  // no gateway: on the segment, as before
  port.gateways = {ip("192.0.2.254"), ip("2001:db8::fe")};
  CHECK(tether::next_hop(port, backend) == ip("192.0.2.254"));
  CHECK(tether::next_hop(port, ip("192.0.2.11")) == ip("192.0.2.11"));  // on-link /24
  CHECK(tether::next_hop(port, ip("2001:db8:5::16")) == ip("2001:db8::fe"));  // /128: no segment said
  port.routes = {{ip("198.51.0.0"), 16, ip("192.0.2.250")}, {ip("198.51.100.0"), 24, ip("192.0.2.251")}};
  CHECK(tether::next_hop(port, backend) == ip("192.0.2.251"));
  CHECK(tether::next_hop(port, ip("198.51.7.1")) == ip("192.0.2.250"));
  port.routes.push_back({ip("192.0.2.128"), 25, ip("192.0.2.252")});  // longer than the on-link /24
  CHECK(tether::next_hop(port, ip("192.0.2.200")) == ip("192.0.2.252"));
  CHECK(tether::tunnel_source(port, false) == ip("2001:db8::1"));
  port.tunnel_sources = {ip("2001:db8::2")};
  CHECK(tether::tunnel_source(port, false) == ip("2001:db8::2"));
  CHECK(tether::tunnel_source(port, true) == ip("192.0.2.1"));
}
