// IP addresses in their text forms (IPv4 dotted quad, RFC 4291 2.2 IPv6), as FTP's EPRT and
// SIP's Via maddr carry them. Plain C++ over a string view: no allocation, no locale.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "parsers/text.hpp"

namespace tether::parsers::ip_text {

using ipv4_bytes = std::array<std::uint8_t, 4>;
using ipv6_bytes = std::array<std::uint8_t, 16>;

inline bool parse_ipv4(std::string_view s, ipv4_bytes& out) {
  for (std::size_t i = 0; i < 4; ++i) {
    auto [part, rest, more] = text::split_once(s, '.');
    auto value = part.size() <= 3 ? text::parse_decimal(part, 255) : std::nullopt;
    if (!value || more != (i < 3)) return false;
    out[i] = static_cast<std::uint8_t>(*value);
    s = rest;
  }
  return true;
}

// RFC 4291 2.2 text form: up to 8 groups of 1-4 hex digits, one "::" standing for one or
// more zero groups, optionally a dotted IPv4 tail. No zone ids.
inline bool parse_ipv6(std::string_view s, ipv6_bytes& out) {
  std::uint16_t groups[8] = {};
  std::size_t count = 0;
  std::optional<std::size_t> gap;  // where "::" stands, in groups
  if (s.starts_with("::")) {
    gap = 0;
    s.remove_prefix(2);
  } else if (s.starts_with(":")) {
    return false;
  }
  while (!s.empty()) {
    auto [group, rest, more] = text::split_once(s, ':');
    if (group.find('.') != std::string_view::npos) {  // IPv4 tail: the last 32 bits
      ipv4_bytes v4;
      if (more || count > 6 || !parse_ipv4(group, v4)) return false;
      groups[count++] = static_cast<std::uint16_t>((v4[0] << 8) | v4[1]);
      groups[count++] = static_cast<std::uint16_t>((v4[2] << 8) | v4[3]);
      break;
    }
    if (count == 8 || group.empty() || group.size() > 4) return false;
    std::uint16_t value = 0;
    for (char c : group) {
      if (!text::is_hex(c)) return false;
      int digit = text::is_digit(c) ? c - '0' : text::to_lower(c) - 'a' + 10;
      value = static_cast<std::uint16_t>((value << 4) | digit);
    }
    groups[count++] = value;
    s = rest;
    if (!more) break;
    if (s.starts_with(":")) {
      if (gap) return false;
      gap = count;
      s.remove_prefix(1);
    } else if (s.empty()) {
      return false;  // a trailing single ':'
    }
  }
  if (gap ? count == 8 : count != 8) return false;
  out = {};
  std::size_t zeros = 8 - count;
  for (std::size_t i = 0, out_group = 0; i < count; ++i, ++out_group) {
    if (gap && i == *gap) out_group += zeros;
    out[2 * out_group] = static_cast<std::uint8_t>(groups[i] >> 8);
    out[2 * out_group + 1] = static_cast<std::uint8_t>(groups[i]);
  }
  return true;
}

}  // namespace tether::parsers::ip_text
