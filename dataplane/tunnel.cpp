#include "dataplane/tunnel.hpp"

#include <cstring>

namespace tether::dataplane {
namespace {

using parsers::kProtoIcmp;
using parsers::kProtoIcmpv6;
using parsers::kProtoUdp;
using detail::fold_complement;
using detail::put16;
constexpr std::uint16_t kDontFragment = 0x4000;

std::uint16_t get16(const std::uint8_t* at) { return static_cast<std::uint16_t>(at[0] << 8 | at[1]); }

// The one's complement sum of `length` bytes (RFC 1071), not folded.
std::uint64_t sum_bytes(const std::uint8_t* data, std::size_t length, std::uint64_t sum = 0) {
  std::size_t i = 0;
  for (; i + 1 < length; i += 2) sum += get16(data + i);
  if (i < length) sum += static_cast<std::uint32_t>(data[i]) << 8;
  return sum;
}

const std::uint8_t* family_bytes(const parsers::IpBytes& address, bool ipv4) {
  return ipv4 ? address.data() + 12 : address.data();
}

// The header checksum from the fields' values, as write_tunnel_headers's.
// `address_sum`: the addresses' sum.
void write_ipv4(std::uint8_t* ip, std::uint8_t tos, std::size_t total_length, std::uint8_t protocol,
                const std::uint8_t* source, const std::uint8_t* destination, std::uint64_t address_sum,
                std::uint16_t flags) {
  const std::uint64_t sum = (0x4500u | tos) + total_length + flags + (kOuterHopLimit << 8 | protocol) + address_sum;
  ip[0] = 0x45;
  ip[1] = tos;
  put16(ip + 2, static_cast<std::uint32_t>(total_length));
  put16(ip + 4, 0);      // ID: any value in an atomic datagram (RFC 6864)
  put16(ip + 6, flags);  // and fragment offset 0
  ip[8] = kOuterHopLimit;
  ip[9] = protocol;
  put16(ip + 10, fold_complement(sum));
  std::memcpy(ip + 12, source, 4);
  std::memcpy(ip + 16, destination, 4);
}

void write_ipv6(std::uint8_t* ip, std::uint8_t traffic, std::uint32_t flow_label, std::size_t payload_length,
                std::uint8_t next_header, const std::uint8_t* source, const std::uint8_t* destination) {
  const std::uint32_t first = 6u << 28 | static_cast<std::uint32_t>(traffic) << 20 | (flow_label & 0xfffff);
  put16(ip, first >> 16);
  put16(ip + 2, first & 0xffff);
  put16(ip + 4, static_cast<std::uint32_t>(payload_length));
  ip[6] = next_header;
  ip[7] = kOuterHopLimit;
  std::memcpy(ip + 8, source, 16);
  std::memcpy(ip + 24, destination, 16);
}

// The IPv6 pseudo-header's sum (RFC 8200 8.1) for an upper-layer packet of `length` bytes.
std::uint64_t ipv6_pseudo_sum(const std::uint8_t* ip, std::size_t length, std::uint8_t next_header) {
  std::uint64_t sum = sum_bytes(ip + 8, 32);
  return sum + (length >> 16) + (length & 0xffff) + next_header;
}

}  // namespace

TunnelEndpoint make_tunnel_endpoint(const parsers::IpBytes& source, const parsers::IpBytes& destination,
                                    std::uint16_t mtu, std::uint16_t gue_port) {
  TunnelEndpoint endpoint;
  endpoint.source = source;
  endpoint.destination = destination;
  endpoint.outer_ipv4 = parsers::is_ipv4_mapped(destination);
  endpoint.mtu = mtu;
  endpoint.gue_port = gue_port;
  const std::size_t length = endpoint.outer_ipv4 ? 4 : 16;
  endpoint.address_sum = static_cast<std::uint32_t>(sum_bytes(family_bytes(source, endpoint.outer_ipv4), length) +
                                                    sum_bytes(family_bytes(destination, endpoint.outer_ipv4), length));
  std::uint8_t* ip = endpoint.outer.data();
  if (endpoint.outer_ipv4) {
    ip[0] = 0x45;
    put16(ip + 6, kDontFragment);  // DF always (tunnel.hpp), fragment offset 0; ID 0: any value in an atomic datagram (RFC 6864)
    ip[8] = kOuterHopLimit;
    std::memcpy(ip + 12, family_bytes(source, true), 4);
    std::memcpy(ip + 16, family_bytes(destination, true), 4);
    endpoint.outer_ipv4_sum = 0x4500u + kDontFragment + (kOuterHopLimit << 8) + endpoint.address_sum;
  } else {
    ip[7] = kOuterHopLimit;
    std::memcpy(ip + 8, source.data(), 16);
    std::memcpy(ip + 24, destination.data(), 16);
  }
  put16(ip + (endpoint.outer_ipv4 ? kIpv4HeaderLength : kIpv6HeaderLength) + 2, gue_port);
  return endpoint;
}

std::uint16_t detail::gue_ipv6_checksum(const TunnelEndpoint& endpoint, std::size_t udp_length,
                                        std::uint16_t source_port, std::span<const std::uint8_t> inner) {
  std::uint64_t sum = endpoint.address_sum + udp_length + kProtoUdp;  // pseudo-header
  sum += source_port + endpoint.gue_port + udp_length;                // the UDP header
  sum = sum_bytes(inner.data(), inner.size(), sum);
  const std::uint16_t checksum = fold_complement(sum);
  return checksum == 0 ? 0xffff : checksum;  // 0 means "none": sent as all ones (RFC 768)
}

bool may_answer_too_big(std::span<const std::uint8_t> inner) {
  if (inner.empty()) return false;
  if ((inner[0] >> 4) == 4) {
    if (inner.size() < kIpv4HeaderLength) return false;
    const std::size_t header = static_cast<std::size_t>(inner[0] & 0x0f) * 4;
    const bool later_fragment = (get16(inner.data() + 6) & 0x1fff) != 0;
    if (later_fragment) return false;
    if (inner[9] != kProtoIcmp) return true;
    // ICMP errors are types 3, 4, 5, 11, 12; queries (echo, timestamp...) may be answered.
    if (inner.size() <= header) return false;
    const std::uint8_t type = inner[header];
    return !(type == 3 || type == 4 || type == 5 || type == 11 || type == 12);
  }
  // ICMPv6 errors are types 0..127 (RFC 4443 2.1), after no extension header here: tether
  // forwards no IPv6 packet with one but the fragments' first.
  if (inner.size() < kIpv6HeaderLength) return false;
  if (inner[6] != kProtoIcmpv6) return true;
  return inner.size() > kIpv6HeaderLength && inner[kIpv6HeaderLength] >= 128;
}

void write_too_big_headers(std::uint8_t* out, std::span<const std::uint8_t> quote, std::uint16_t mtu) {
  const bool ipv4 = (quote[0] >> 4) == 4;
  const std::size_t ip_length = ipv4 ? kIpv4HeaderLength : kIpv6HeaderLength;
  std::uint8_t* icmp = out + ip_length;
  const std::size_t icmp_length = kIcmpHeaderLength + quote.size();
  if (ipv4) {
    // From the packet's destination (the VIP) back to its source.
    write_ipv4(out, 0, ip_length + icmp_length, kProtoIcmp, quote.data() + 16, quote.data() + 12,
               sum_bytes(quote.data() + 12, 8), 0);
    icmp[0] = 3;  // destination unreachable
    icmp[1] = 4;  // fragmentation needed and DF set
    put16(icmp + 2, 0);
    put16(icmp + 4, 0);  // unused
    put16(icmp + 6, mtu);  // the next-hop MTU (RFC 1191)
    put16(icmp + 2, fold_complement(sum_bytes(icmp, icmp_length)));
    return;
  }
  write_ipv6(out, 0, 0, icmp_length, kProtoIcmpv6, quote.data() + 24, quote.data() + 8);
  icmp[0] = 2;  // packet too big
  icmp[1] = 0;
  put16(icmp + 2, 0);
  put16(icmp + 4, 0);  // the MTU, 32 bits
  put16(icmp + 6, mtu);
  put16(icmp + 2, fold_complement(sum_bytes(icmp, icmp_length, ipv6_pseudo_sum(out, icmp_length, kProtoIcmpv6))));
}

}  // namespace tether::dataplane
