#include "control/config.hpp"

#include <cstdio>

#include "parsers/mix.hpp"
#include "sync/hmac.hpp"

namespace tether {

bool is_prime(std::uint32_t n) {
  if (n < 2) return false;
  for (std::uint32_t d = 2; d <= n / d; ++d)
    if (n % d == 0) return false;
  return true;
}

const char* to_string(Protocol protocol) { return protocol == Protocol::tcp ? "tcp" : "udp"; }
const char* to_string(std::optional<SessionProtocol> dpi) {
  return dpi ? dataplane::to_string(*dpi) : "none";
}
const char* to_string(KernelDriver driver) { return driver == KernelDriver::tap ? "tap" : "virtio-user"; }

std::optional<MetricsConfig> parse_listen(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host.find(':') == std::string_view::npos) return std::nullopt;  // brackets are for IPv6
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || port.front() == '0') return std::nullopt;
  unsigned value = 0;
  for (const char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  const std::optional<IpBytes> address = parse_ip(host);
  if (!address) return std::nullopt;
  return MetricsConfig{*address, static_cast<std::uint16_t>(value), std::string(text)};
}

std::string seconds_text(std::uint32_t ms) {
  std::string text = std::to_string(ms / 1000);
  if (ms % 1000 == 0) return text;
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03u", static_cast<unsigned>(ms % 1000));
  text += fraction;
  while (text.back() == '0') text.pop_back();
  return text;
}

std::uint32_t sync_sender_id(std::string_view instance) {
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, then the splitmix64 finaliser
  for (char c : instance) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return static_cast<std::uint32_t>(parsers::mix64(h) >> 32);
}

std::vector<std::uint8_t> parse_sync_key(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<std::uint8_t> key;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int high = nibble(text[i]), low = i + 1 < text.size() ? nibble(text[i + 1]) : -1;
    if (high < 0 || low < 0)
      throw ConfigError("the key must be hex digits only (an even number of them), as "
                        "`openssl rand -hex 32` writes");
    key.push_back(static_cast<std::uint8_t>(high << 4 | low));
  }
  if (key.size() < sync::kMinKeySize || key.size() > sync::kMaxKeySize)
    throw ConfigError("the key is " + std::to_string(key.size()) + " bytes; " +
                      std::to_string(sync::kMinKeySize) + " to " + std::to_string(sync::kMaxKeySize) +
                      " (" + std::to_string(2 * sync::kMinKeySize) + " to " +
                      std::to_string(2 * sync::kMaxKeySize) + " hex digits) expected");
  return key;
}

}  // namespace tether
