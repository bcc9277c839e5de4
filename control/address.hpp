// Text forms of addresses, for configuration, logs and the summary.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "parsers/packet.hpp"

namespace tether {

using parsers::IpBytes;
using parsers::MacBytes;

std::optional<IpBytes> parse_ip(std::string_view text);  // IPv4 comes back IPv4-mapped
std::optional<MacBytes> parse_mac(std::string_view text);
std::string format_ip(const IpBytes& address);
std::string format_mac(const MacBytes& mac);

}  // namespace tether
