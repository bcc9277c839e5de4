#include "parsers/icmp_error.hpp"

#include <cstring>

namespace tether::parsers {
namespace {

constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kQuotedPorts = 8;  // what every ICMP error quotes after the IP header

// RFC 7045's list (and RFC 8200's fragment header): a quote whose transport header sits
// behind one of these is not followed. DSR backends send plain TCP and UDP, and walking a
// chain in a quote an attacker wrote buys nothing.
bool is_ipv6_extension_header(std::uint8_t next_header) {
  switch (next_header) {
    case 0: case 43: case 44: case 50: case 51: case 60: case 135: case 139: case 140: case 253: case 254:
      return true;
    default:
      return false;
  }
}

IcmpErrorStatus transport(std::uint8_t protocol, std::uint8_t icmp_protocol, const std::uint8_t* l4,
                          QuotedPacket& out) {
  if (protocol == icmp_protocol) return IcmpErrorStatus::quotes_icmp;
  if (protocol != kProtoTcp && protocol != kProtoUdp) return IcmpErrorStatus::quotes_other_protocol;
  out.l4_proto = protocol;
  out.src_port = load_be16(l4);
  out.dst_port = load_be16(l4 + 2);
  return IcmpErrorStatus::ok;
}

}  // namespace

IcmpErrorStatus parse_icmp_error(std::span<const std::uint8_t> message, std::uint8_t l4_proto,
                                 QuotedPacket& out) {
  out = QuotedPacket{};
  if (message.empty() || !is_steered_icmp_error(l4_proto, message[0])) return IcmpErrorStatus::not_steered;
  if (message.size() < kIcmpErrorHeader + 1) return IcmpErrorStatus::truncated;
  const std::uint8_t* quote = message.data() + kIcmpErrorHeader;
  const std::size_t quoted = message.size() - kIcmpErrorHeader;

  if (l4_proto == kProtoIcmp) {
    if ((quote[0] >> 4) != 4) return IcmpErrorStatus::bad_quoted_header;
    const std::size_t header = static_cast<std::size_t>(quote[0] & 0x0f) * 4;
    if (header < kIpv4MinHeader) return IcmpErrorStatus::bad_quoted_header;
    if (quoted < header + kQuotedPorts) return IcmpErrorStatus::truncated;
    if ((load_be16(quote + 6) & 0x1fff) != 0) return IcmpErrorStatus::quotes_fragment;
    out.src_ip = ipv4_mapped(quote + 12);
    out.dst_ip = ipv4_mapped(quote + 16);
    return transport(quote[9], kProtoIcmp, quote + header, out);
  }

  if ((quote[0] >> 4) != 6) return IcmpErrorStatus::bad_quoted_header;
  if (quoted < kIpv6Header + kQuotedPorts) return IcmpErrorStatus::truncated;
  const std::uint8_t next_header = quote[6];
  if (is_ipv6_extension_header(next_header)) return IcmpErrorStatus::quotes_extension_header;
  std::memcpy(out.src_ip.data(), quote + 8, 16);
  std::memcpy(out.dst_ip.data(), quote + 24, 16);
  return transport(next_header, kProtoIcmpv6, quote + kIpv6Header, out);
}

const char* to_string(IcmpErrorStatus status) {
  switch (status) {
    case IcmpErrorStatus::ok: return "ok";
    case IcmpErrorStatus::not_steered: return "not_steered";
    case IcmpErrorStatus::truncated: return "truncated";
    case IcmpErrorStatus::bad_quoted_header: return "bad_quoted_header";
    case IcmpErrorStatus::quotes_icmp: return "quotes_icmp";
    case IcmpErrorStatus::quotes_fragment: return "quotes_fragment";
    case IcmpErrorStatus::quotes_extension_header: return "quotes_extension_header";
    case IcmpErrorStatus::quotes_other_protocol: return "quotes_other_protocol";
    case IcmpErrorStatus::count_: break;
  }
  return "unknown";
}

}  // namespace tether::parsers
