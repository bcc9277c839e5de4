#include "control/address.hpp"

#include <arpa/inet.h>

#include <cstdio>

namespace tether {

std::optional<IpBytes> parse_ip(std::string_view text) {
  if (text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN];
  text.copy(buffer, text.size());
  buffer[text.size()] = '\0';
  std::uint8_t v4[4];
  if (inet_pton(AF_INET, buffer, v4) == 1) return parsers::ipv4_mapped(v4);
  IpBytes v6;
  if (inet_pton(AF_INET6, buffer, v6.data()) == 1) return v6;
  return std::nullopt;
}

std::optional<MacBytes> parse_mac(std::string_view text) {
  MacBytes mac;
  if (text.size() != 17) return std::nullopt;
  for (std::size_t i = 0; i < 6; ++i) {
    unsigned value = 0;
    for (std::size_t j = 0; j < 2; ++j) {
      const char c = text[i * 3 + j];
      unsigned digit;
      if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') digit = static_cast<unsigned>(c - 'A' + 10);
      else return std::nullopt;
      value = value * 16 + digit;
    }
    if (i < 5 && text[i * 3 + 2] != ':') return std::nullopt;
    mac[i] = static_cast<std::uint8_t>(value);
  }
  return mac;
}

std::string format_ip(const IpBytes& address) {
  char buffer[INET6_ADDRSTRLEN];
  if (parsers::is_ipv4_mapped(address))
    inet_ntop(AF_INET, address.data() + 12, buffer, sizeof buffer);
  else
    inet_ntop(AF_INET6, address.data(), buffer, sizeof buffer);
  return buffer;
}

std::string format_mac(const MacBytes& mac) {
  char buffer[18];
  std::snprintf(buffer, sizeof buffer, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
                mac[3], mac[4], mac[5]);
  return buffer;
}

}  // namespace tether
