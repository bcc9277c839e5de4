#include <cstdio>
#include <sstream>

#include "control/config.hpp"

namespace tether {
namespace {

void describe_members(std::ostringstream& out, const Config& config,
                      const std::vector<ServiceBackend>& members) {
  std::uint64_t total = 0;
  for (const auto& member : members) total += member.weight;
  for (const auto& member : members) {
    char share[16] = "";
    if (total > 0)
      std::snprintf(share, sizeof share, " (%.1f%%)", 100.0 * member.weight / static_cast<double>(total));
    out << "    " << config.backends[member.backend].name << "  weight " << member.weight << share;
    if (member.passive_first)
      out << "  passive ports " << member.passive_first << "-" << member.passive_last;
    out << '\n';
  }
}

}  // namespace

std::string describe(const Config& config) {
  std::ostringstream out;
  out << "configuration " << config.source << ": valid\n";
  out << "  workers " << config.workers << ", flow table " << config.flows_per_worker
      << " entries per worker, session table " << config.sessions << " entries, Maglev table "
      << config.maglev_size << " slots, " << config.mbufs_per_port << " mbufs of " << config.mbuf_data_size
      << " bytes per port\n";
  if (!config.eal_args.empty()) {
    out << "  EAL arguments:";
    for (const auto& arg : config.eal_args) out << ' ' << arg;
    out << '\n';
  }
  out << "  backend MACs by ARP/ND: refreshed every " << config.neighbours.refresh_s << " s, retried every "
      << config.neighbours.retry_ms << " ms, given up after " << config.neighbours.attempts
      << " unanswered\n";
  out << "ports:\n";
  for (const auto& port : config.ports) {
    out << "  " << port.name << "  device " << port.device << "  mac "
        << (port.mac ? format_mac(*port.mac) : std::string("(device's)"));
    for (std::size_t a = 0; a < port.addresses.size(); ++a) {
      out << "  " << format_ip(port.addresses[a]);
      if (port.kernel) out << '/' << unsigned{prefix_length(port, a)};
    }
    out << '\n';
    if (port.kernel)
      out << "    kernel interface " << port.kernel->name << " (" << to_string(port.kernel->driver)
          << "): every frame tetherd does not consume, "
          << port.kernel->rate << " frames/s (burst " << port.kernel->burst << ")\n";
    out << "    mtu " << port.mtu;
    for (const auto& gateway : port.gateways) out << "  gateway " << format_ip(gateway);
    for (const auto& route : port.routes)
      out << "  route " << format_ip(route.prefix) << '/' << unsigned{route.length} << " via " << format_ip(route.via);
    for (const bool ipv4 : {true, false})
      if (const auto source = tunnel_source(port, ipv4)) out << "  tunnel source " << format_ip(*source);
    out << "  gue port " << port.gue_port << '\n';
  }
  if (config.sync) {
    const SyncConfig& sync = *config.sync;
    const PortConfig& port = config.ports[sync.port];
    out << "state sync: UDP " << format_ip(port.addresses[0]) << ":" << sync.listen_port
        << " on " << port.kernel->name << " (port " << port.name << "), instance " << sync.instance
        << " (sender id " << sync.sender_id << "), key " << sync.key.size() << " bytes from "
        << sync.key_file << ", peers";
    for (const auto& peer : sync.peers) out << ' ' << format_ip(peer);
    out << "; flows synced on packet " << sync.flow_threshold << " and every " << sync.flow_period
        << " after, at most " << sync.max_rate << " records/s\n";
  }
  if (config.ha)
    out << "active-standby: starts as " << to_string(config.ha->initial)
        << " (forwards and answers for the VIPs only as master, as `tetherctl ha` sets it); "
        << "on becoming master " << config.ha->gratuitous_count
        << " round(s) of gratuitous ARP / unsolicited NA per VIP, " << config.ha->gratuitous_interval_ms
        << " ms apart\n";
  else
    out << "standalone: always forwards (no `ha`)\n";
  if (config.announce) {
    const PortConfig& port = config.ports[config.announce->port];
    out << "announce: a host route (proto " << unsigned{kAnnounceRouteProtocol} << ") per VIP on "
        << port.kernel->name << " (port " << port.name
        << ") while the workers run, a backend of one of its services is up"
        << (config.ha ? ", the instance is master" : "") << " and it is not draining";
    if (config.sync)
      out << ", once every sync peer's bulk dump arrived (or it was silent for " << config.announce->bulk_wait_s
          << " s)";
    out << "; drain exits after " << config.announce->drain_quiet_s << " s without a new flow or session, at most "
        << config.announce->drain_timeout_s << " s\n";
  }
  out << "backends:\n";
  for (const auto& backend : config.backends) {
    out << "  " << backend.name << "  " << format_ip(backend.address) << "  mac "
        << (backend.mac ? format_mac(*backend.mac)
                        : std::string(parsers::is_ipv4_mapped(backend.address) ? "(by ARP)" : "(by ND)"))
        << "  via " << config.ports[backend.port].name;
    if (const IpBytes hop = next_hop(config.ports[backend.port], backend.address); hop != backend.address)
      out << " (next hop " << format_ip(hop) << ")";
    out << '\n';
  }
  out << "services:\n";
  for (const auto& service : config.services) {
    out << "  " << service.name << "  " << format_ip(service.vip) << ":" << service.port << "/"
        << to_string(service.protocol) << "  scheduler " << to_string(service.scheduler)
        << "  forwarding " << to_string(service.forwarding) << "  idle "
        << seconds_text(service.idle_timeout_ms) << "s";
    if (service.protocol == Protocol::tcp) out << "  fin " << service.fin_timeout_s << "s";
    out << "  dpi " << to_string(service.dpi);
    if (service.dpi == SessionProtocol::sip && service.protocol == Protocol::udp)
      out << " (calls by Call-ID, session " << service.session_timeout_s << "s, linger "
          << service.linger_s << "s)";
    if (service.dpi == SessionProtocol::sip && service.protocol == Protocol::tcp)
      out << " (over TCP: per connection)";
    if (service.dpi == SessionProtocol::rtsp)
      out << " (RTP/RTCP follow SETUP, session " << service.session_timeout_s << "s)";
    if (service.dpi == SessionProtocol::ftp)
      out << " (data follows PASV/EPSV, expectation " << service.expectation_timeout_s << "s)";
    out << '\n';
    if (service.health_check) {
      const auto& h = *service.health_check;
      out << "    health check "
          << (h.type == HealthCheckType::icmp ? "icmp" : h.type == HealthCheckType::tcp ? "tcp" : "sip-options")
          << " every " << h.interval_ms << " ms, timeout " << h.timeout_ms << " ms, rise " << h.rise
          << ", fall " << h.fall << '\n';
    }
    describe_members(out, config, service.backends);
    for (const auto& pool : service.pools) {
      out << "   pool " << pool.name << ":\n";
      describe_members(out, config, pool.backends);
    }
    for (const auto& rule : service.rules) {
      out << "   rule: " << (rule.field == dataplane::RuleField::request_line ? "request-line"
                             : rule.field == dataplane::RuleField::uri        ? "uri"
                                                                               : "header:" + rule.header)
          << " =~ /" << rule.pattern << "/" << (rule.caseless ? "i" : "") << " -> pool "
          << (rule.pool == 0 ? std::string("default") : service.pools[rule.pool - 1].name) << '\n';
    }
  }
  return out.str();
}

}  // namespace tether
