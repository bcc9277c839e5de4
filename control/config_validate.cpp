#include <algorithm>
#include <cctype>
#include <cstdint>

#include "control/config.hpp"

namespace tether {

std::string name_problem(std::string_view what, const std::string& name) {
  const bool valid = !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == ':';
  });
  if (valid) return {};
  return std::string(what) + " name '" + name + "' must be 1 to 32 letters, digits, '.', '_', '-' or ':'";
}

std::uint8_t prefix_length(const PortConfig& port, std::size_t index) {
  if (index < port.prefix_lengths.size()) return port.prefix_lengths[index];
  return parsers::is_ipv4_mapped(port.addresses[index]) ? 32 : 128;
}

std::string interface_name_problem(const std::string& name) {
  // The kernel's own limit (IFNAMSIZ less the terminator), and names `ip` takes unquoted.
  const bool valid = !name.empty() && name.size() <= 15 && name != "." && name != ".." &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
                     });
  if (valid) return {};
  return "kernel interface name '" + name + "' must be 1 to 15 letters, digits, '.', '_' or '-'";
}

std::string not_a_mac(std::string_view text) {
  std::string message(1, '\'');  // not "'" + ...: GCC 12 warns falsely (-Wrestrict) on that
  return message.append(text).append("' is not a MAC address (like 02:00:00:00:00:01)");
}

std::string port_needed(const std::string& backend) {
  return "backend '" + backend + "' needs 'port' when there are several ports";
}

std::optional<std::uint32_t> parse_weight(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  std::uint32_t weight = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    weight = weight * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (weight > kMaxWeight) return std::nullopt;
  return weight;
}

namespace {

enum class AddressUse { port, backend, vip };

// Why `address` cannot serve as `use`, or null. Nothing routes to an unspecified, multicast,
// broadcast, loopback or reserved (240/4) address as a host; a VIP that is link-local would be
// reachable only from the port's own link, never through a router.
const char* address_problem(const IpBytes& address, AddressUse use) {
  if (parsers::is_ipv4_mapped(address)) {
    const std::uint8_t* a = address.data() + 12;
    if (a[0] == 0) return "is unspecified (0.0.0.0/8)";
    if (a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255) return "is the broadcast address";
    if (a[0] >= 224 && a[0] < 240) return "is multicast (224.0.0.0/4)";
    if (a[0] >= 240) return "is reserved (240.0.0.0/4)";
    if (a[0] == 127) return "is loopback (127.0.0.0/8)";
    if (use == AddressUse::vip && a[0] == 169 && a[1] == 254) return "is link-local (169.254.0.0/16)";
    return nullptr;
  }
  const bool zero_prefix = std::all_of(address.begin(), address.end() - 1, [](std::uint8_t b) { return b == 0; });
  if (zero_prefix && address[15] == 0) return "is unspecified (::)";
  if (zero_prefix && address[15] == 1) return "is loopback (::1)";
  if (address[0] == 0xff) return "is multicast (ff00::/8)";
  if (use == AddressUse::vip && address[0] == 0xfe && (address[1] & 0xc0) == 0x80)
    return "is link-local (fe80::/10)";
  return nullptr;
}

// Why `mac` cannot be a host's MAC, or null.
const char* mac_problem(const MacBytes& mac) {
  if (std::all_of(mac.begin(), mac.end(), [](std::uint8_t b) { return b == 0xff; })) return "is the broadcast MAC";
  if (mac[0] & 0x01) return "is a multicast MAC (group bit set)";
  if (std::all_of(mac.begin(), mac.end(), [](std::uint8_t b) { return b == 0; })) return "is all zeros";
  return nullptr;
}

Problem problem(std::string message, const char* setting = nullptr, int element = -1) {
  return Problem{std::move(message), setting, element};
}

// The port that has `address`. For port `self`'s address `index`: another port that has it,
// or `self` when it is listed earlier (so that the later one is blamed).
std::optional<std::size_t> port_with_address(const Config& config, const IpBytes& address,
                                             std::size_t self = SIZE_MAX, std::size_t index = SIZE_MAX) {
  for (std::size_t p = 0; p < config.ports.size(); ++p) {
    const auto& addresses = config.ports[p].addresses;
    const std::size_t end = p == self ? index : addresses.size();
    for (std::size_t a = 0; a < end; ++a)
      if (addresses[a] == address) return p;
  }
  return std::nullopt;
}

}  // namespace

Problem port_problem(const Config& config, std::size_t p) {
  const PortConfig& port = config.ports[p];
  if (port.mac)
    if (const char* why = mac_problem(*port.mac)) return problem(format_mac(*port.mac) + " " + why, "mac");
  for (std::size_t a = 0; a < port.addresses.size(); ++a) {
    const std::string text = format_ip(port.addresses[a]);
    if (const char* why = address_problem(port.addresses[a], AddressUse::port))
      return problem(text + " " + why, "addresses", static_cast<int>(a));
    if (const auto other = port_with_address(config, port.addresses[a], p, a))
      return problem(text + (*other == p ? " is listed twice" : " is port '" + config.ports[*other].name + "''s address too"),
                     "addresses", static_cast<int>(a));
  }
  if (port.kernel)
    for (std::size_t other = 0; other < p; ++other)
      if (config.ports[other].kernel && config.ports[other].kernel->name == port.kernel->name)
        return problem("kernel interface '" + port.kernel->name + "' is port '" + config.ports[other].name +
                           "''s too",
                       "kernel");
  return {};
}

namespace {

const char* family_name(bool ipv4) { return ipv4 ? "IPv4" : "IPv6"; }

bool has_family(const PortConfig& port, bool ipv4) {
  return std::any_of(port.addresses.begin(), port.addresses.end(),
                     [ipv4](const IpBytes& a) { return parsers::is_ipv4_mapped(a) == ipv4; });
}

// A next hop (gateway or route's via): a host off this box, asked for by ARP/ND from the
// port's address of its family.
Problem next_hop_problem(const Config& config, const PortConfig& port, const IpBytes& hop,
                         const char* setting, int element) {
  const std::string text = format_ip(hop);
  const bool ipv4 = parsers::is_ipv4_mapped(hop);
  if (const char* why = address_problem(hop, AddressUse::backend)) return problem(text + " " + why, setting, element);
  if (const auto own = port_with_address(config, hop))
    return problem(text + " is port '" + config.ports[*own].name + "''s own address", setting, element);
  if (!has_family(port, ipv4))
    return problem("port '" + port.name + "' has no " + family_name(ipv4) + " address to ask " +
                       (ipv4 ? "ARP" : "neighbour discovery") + " for " + text + " from",
                   setting, element);
  return {};
}

}  // namespace

Problem port_routing_problem(const Config& config, std::size_t p) {
  const PortConfig& port = config.ports[p];
  for (std::size_t g = 0; g < port.gateways.size(); ++g) {
    const int element = static_cast<int>(g);
    if (Problem found = next_hop_problem(config, port, port.gateways[g], "gateways", element)) return found;
    for (std::size_t earlier = 0; earlier < g; ++earlier)
      if (parsers::is_ipv4_mapped(port.gateways[earlier]) == parsers::is_ipv4_mapped(port.gateways[g]))
        return problem(std::string("a second ") + family_name(parsers::is_ipv4_mapped(port.gateways[g])) +
                           " gateway: one per family (static routes reach the others)",
                       "gateways", element);
  }
  for (std::size_t r = 0; r < port.routes.size(); ++r) {
    const RouteConfig& route = port.routes[r];
    const int element = static_cast<int>(r);
    const bool ipv4 = parsers::is_ipv4_mapped(route.prefix);
    const std::string text = format_ip(route.prefix) + "/" + std::to_string(route.length);
    // The host bits: beyond the prefix's length, counted from the family's first bit.
    for (unsigned bit = route.length + (ipv4 ? 96 : 0); bit < 128; ++bit)
      if (route.prefix[bit / 8] & (0x80 >> (bit % 8)))
        return problem("route to " + text + " has host bits set", "routes", element);
    if (parsers::is_ipv4_mapped(route.via) != ipv4)
      return problem("route to " + text + " goes via " + format_ip(route.via) + ", not of its family", "routes",
                     element);
    if (Problem found = next_hop_problem(config, port, route.via, "routes", element)) {
      found.message = "route to " + text + ": " + found.message;
      return found;
    }
    for (std::size_t earlier = 0; earlier < r; ++earlier)
      if (port.routes[earlier].prefix == route.prefix && port.routes[earlier].length == route.length)
        return problem("route to " + text + " is listed twice", "routes", element);
  }
  for (std::size_t s = 0; s < port.tunnel_sources.size(); ++s) {
    const IpBytes& source = port.tunnel_sources[s];
    const bool ipv4 = parsers::is_ipv4_mapped(source);
    if (const char* why = address_problem(source, AddressUse::port))
      return problem("tunnel source " + format_ip(source) + " " + why, "tunnel");
    for (std::size_t earlier = 0; earlier < s; ++earlier)
      if (parsers::is_ipv4_mapped(port.tunnel_sources[earlier]) == ipv4)
        return problem(std::string("a second ") + family_name(ipv4) + " tunnel source: one per family", "tunnel");
  }
  return {};
}

Problem backend_problem(const Config& config, std::size_t b) {
  const BackendConfig& backend = config.backends[b];
  const std::string address = format_ip(backend.address);
  if (const char* why = address_problem(backend.address, AddressUse::backend))
    return problem("backend address " + address + " " + why, "address");
  if (const auto port = port_with_address(config, backend.address))
    return problem("backend address " + address + " is port '" + config.ports[*port].name + "''s own", "address");
  for (const auto& service : config.services)
    if (!service.removed && service.vip == backend.address)
      return problem("backend address " + address + " is the VIP of service '" + service.name + "'", "address");
  if (backend.mac) {
    const std::string mac = format_mac(*backend.mac);
    if (const char* why = mac_problem(*backend.mac)) return problem("backend MAC " + mac + " " + why, "mac");
    for (const auto& port : config.ports)
      if (port.mac == backend.mac) return problem("backend MAC " + mac + " is port '" + port.name + "''s own", "mac");
  }
  // The destination MAC is the next hop's (the backend's own on its segment): without a
  // static one, it is asked for by ARP/ND from the port's own address of the same family.
  const auto& addresses = config.ports[backend.port].addresses;
  const bool ipv4 = parsers::is_ipv4_mapped(backend.address);
  const bool can_resolve = std::any_of(addresses.begin(), addresses.end(), [ipv4](const IpBytes& a) {
    return parsers::is_ipv4_mapped(a) == ipv4;
  });
  if (!backend.mac && !can_resolve)
    return problem("backend '" + backend.name + "' needs 'mac', or an " + (ipv4 ? "IPv4" : "IPv6") +
                   " address on port '" + config.ports[backend.port].name + "' to resolve it by " +
                   (ipv4 ? "ARP" : "neighbour discovery"));
  return {};
}

Problem service_problem(const Config& config, std::size_t s) {
  const ServiceConfig& service = config.services[s];
  const std::string vip = format_ip(service.vip);
  if (const char* why = address_problem(service.vip, AddressUse::vip)) return problem("VIP " + vip + " " + why, "vip");
  if (const auto port = port_with_address(config, service.vip))
    return problem("VIP " + vip + " is port '" + config.ports[*port].name + "''s own address", "vip");
  for (const auto& backend : config.backends)
    if (!backend.removed && backend.address == service.vip)
      return problem("VIP " + vip + " is backend '" + backend.name + "''s address", "vip");
  // Every backend any pool of the service may choose must be reachable its way.
  std::vector<std::size_t> members;
  for (const auto& member : service.backends) members.push_back(member.backend);
  for (const auto& pool : service.pools)
    for (const auto& member : pool.backends) members.push_back(member.backend);
  for (const std::size_t b : members) {
    const BackendConfig& backend = config.backends[b];
    const PortConfig& port = config.ports[backend.port];
    const bool ipv4 = parsers::is_ipv4_mapped(backend.address);
    if (service.forwarding == Forwarding::dsr) {
      const IpBytes hop = next_hop(port, backend.address);
      if (hop != backend.address)
        return problem("backend '" + backend.name + "' (" + format_ip(backend.address) + ") is reached through " +
                           format_ip(hop) + ": DSR rewrites MACs only and needs its backends on port '" +
                           port.name + "''s segment (forwarding \"ipip\" or \"gue\" reaches routed ones)",
                       "forwarding");
    } else if (!tunnel_source(port, ipv4)) {
      return problem("backend '" + backend.name + "' (" + format_ip(backend.address) + ") needs an " +
                         family_name(ipv4) + " tunnel source on port '" + port.name +
                         "' (tunnel = { sources = [...]; }, or an address of that family)",
                     "forwarding");
    }
  }
  return {};
}

Problem sync_problem(const Config& config) {
  if (!config.sync) return {};
  const SyncConfig& sync = *config.sync;
  const PortConfig& port = config.ports[sync.port];
  if (!port.kernel)
    return problem("port '" + port.name + "' has no kernel interface (kernel = { name = ...; }): "
                   "sync messages travel through it", "port");
  if (port.addresses.empty())
    return problem("port '" + port.name + "' has no address to receive sync messages on", "port");
  const bool ipv4 = parsers::is_ipv4_mapped(port.addresses[0]);
  for (std::size_t i = 0; i < sync.peers.size(); ++i) {
    const IpBytes& peer = sync.peers[i];
    const std::string text = format_ip(peer);
    const int element = static_cast<int>(i);
    if (const char* why = address_problem(peer, AddressUse::backend))
      return problem("peer " + text + " " + why, "peers", element);
    if (parsers::is_ipv4_mapped(peer) != ipv4)
      return problem("peer " + text + " is not of the family of " + format_ip(port.addresses[0]) +
                         ", port '" + port.name + "''s first address, which sync listens on",
                     "peers", element);
    if (const auto own = port_with_address(config, peer))
      return problem("peer " + text + " is port '" + config.ports[*own].name + "''s own address", "peers", element);
    for (std::size_t j = 0; j < i; ++j)
      if (sync.peers[j] == peer) return problem("peer " + text + " is listed twice", "peers", element);
  }
  return {};
}

Problem announce_problem(const Config& config) {
  if (!config.announce) return {};
  const PortConfig& port = config.ports[config.announce->port];
  if (!port.kernel)
    return problem("port '" + port.name + "' has no kernel interface (kernel = { name = ...; }): "
                   "the VIPs' routes are put on it for the routing daemon to announce", "port");
  return {};
}

Problem members_problem(const Config& config, const std::vector<ServiceBackend>& members) {
  if (!members.empty() &&
      std::none_of(members.begin(), members.end(), [](const ServiceBackend& m) { return m.weight > 0; }))
    return problem(members.size() == 1 ? "its only backend has weight 0: nowhere to send"
                                       : "every backend has weight 0: nowhere to send");
  if (config.maglev_size < 100 * members.size())
    return problem("tables.maglev_size " + std::to_string(config.maglev_size) + " is below 100 x the service's " +
                   std::to_string(members.size()) + " backends");
  return {};
}

void validate(const Config& config, const std::vector<MacBytes>& device_macs) {
  if (std::any_of(config.ports.begin(), config.ports.end(), [](const PortConfig& p) { return !p.mac; }) &&
      !device_macs.empty()) {
    Config known = config;
    for (std::size_t p = 0; p < known.ports.size() && p < device_macs.size(); ++p)
      if (!known.ports[p].mac) known.ports[p].mac = device_macs[p];
    return validate(known);
  }
  const auto check = [](const Problem& found, const std::string& what) {
    if (found) throw ConfigError(what + ": " + found.message);
  };
  for (std::size_t p = 0; p < config.ports.size(); ++p)
    check(port_problem(config, p), "port '" + config.ports[p].name + "'");
  for (std::size_t p = 0; p < config.ports.size(); ++p)
    check(port_routing_problem(config, p), "port '" + config.ports[p].name + "'");
  for (std::size_t b = 0; b < config.backends.size(); ++b)
    if (!config.backends[b].removed) check(backend_problem(config, b), "backend '" + config.backends[b].name + "'");
  for (std::size_t s = 0; s < config.services.size(); ++s) {
    const ServiceConfig& service = config.services[s];
    if (service.removed) continue;
    check(service_problem(config, s), "service '" + service.name + "'");
    check(members_problem(config, service.backends), "service '" + service.name + "'");
    for (const auto& pool : service.pools)
      check(members_problem(config, pool.backends), "service '" + service.name + "', pool '" + pool.name + "'");
  }
  check(sync_problem(config), "sync");
  check(announce_problem(config), "announce");
}

}  // namespace tether
