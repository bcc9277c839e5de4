// Where a backend's packets go at layer 2, and where tunnelled packets come from: the port's
// routing settings (README "Tunnel forwarding"), read once per snapshot and per ARP/ND entry.
#include <algorithm>

#include "control/config.hpp"

namespace tether {
namespace {

// Whether `address` lies within `prefix`/`length`, the length counted in the family's bits.
bool within(const IpBytes& address, const IpBytes& prefix, unsigned length) {
  if (parsers::is_ipv4_mapped(address) != parsers::is_ipv4_mapped(prefix)) return false;
  unsigned bits = length + (parsers::is_ipv4_mapped(prefix) ? 96 : 0);
  for (std::size_t i = 0; bits > 0; ++i) {
    const unsigned take = std::min(bits, 8u);
    const auto mask = static_cast<std::uint8_t>(0xff00 >> take);
    if ((address[i] & mask) != (prefix[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

}  // namespace

IpBytes next_hop(const PortConfig& port, const IpBytes& backend) {
  const bool ipv4 = parsers::is_ipv4_mapped(backend);
  // Longest prefix wins; at equal length the on-link prefix does, as the kernel's connected
  // route would.
  int best_length = -1;
  IpBytes best = backend;
  for (std::size_t a = 0; a < port.addresses.size(); ++a) {
    const std::uint8_t length = prefix_length(port, a);
    const bool host_route = length == (ipv4 ? 32 : 128);  // the address alone: no segment said
    if (!host_route && within(backend, port.addresses[a], length) && length > best_length) {
      best_length = length;
      best = backend;
    }
  }
  for (const RouteConfig& route : port.routes)
    if (within(backend, route.prefix, route.length) && route.length > best_length) {
      best_length = route.length;
      best = route.via;
    }
  if (best_length >= 0) return best;
  for (const IpBytes& gateway : port.gateways)
    if (parsers::is_ipv4_mapped(gateway) == ipv4) return gateway;
  return backend;
}

std::optional<IpBytes> tunnel_source(const PortConfig& port, bool ipv4) {
  for (const IpBytes& source : port.tunnel_sources)
    if (parsers::is_ipv4_mapped(source) == ipv4) return source;
  for (const IpBytes& address : port.addresses)
    if (parsers::is_ipv4_mapped(address) == ipv4) return address;
  return std::nullopt;
}

}  // namespace tether
