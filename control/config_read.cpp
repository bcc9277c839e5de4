#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <tuple>

#include "control/config.hpp"
#include "control/config_file.hpp"
#include "dataplane/limits.hpp"

namespace tether {
namespace {

// Bytes a SIP OPTIONS probe takes (about 370 with IPv6 addresses), rounded up.
constexpr std::uint16_t kSipProbeRoom = 512;

std::string unique_name(const GroupReader& reader, const char* what,
                        std::map<std::string, std::size_t>& seen, std::size_t index) {
  std::string name = reader.string("name");
  if (const std::string wrong = name_problem(what, name); !wrong.empty()) reader.fail(reader.get("name"), wrong);
  if (!seen.emplace(name, index).second)
    reader.fail(reader.get("name"), std::string("duplicate ") + what + " name '" + name + "'");
  return name;
}

// "198.18.0.1/24": the address, and the prefix length the kernel interface gives it.
std::pair<IpBytes, std::uint8_t> address_with_prefix(const GroupReader& r, const Setting& s) {
  if (s.getType() != Setting::TypeString) r.fail(s, "expected an IPv4 or IPv6 address string");
  const std::string_view text = s.c_str();
  const std::size_t slash = text.find('/');
  const auto address = parse_ip(text.substr(0, slash));
  if (!address) r.fail(s, "'" + std::string(text.substr(0, slash)) + "' is not an IPv4 or IPv6 address");
  const unsigned most = parsers::is_ipv4_mapped(*address) ? 32 : 128;
  if (slash == std::string_view::npos) return {*address, static_cast<std::uint8_t>(most)};
  const std::string_view digits = text.substr(slash + 1);
  unsigned length = 0;
  const bool valid = !digits.empty() && digits.size() <= 3 &&
                     std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (valid) length = static_cast<unsigned>(std::stoul(std::string(digits)));
  if (!valid || length > most || length == 0)
    r.fail(s, "'" + std::string(text) + "': the prefix length must be 1.." + std::to_string(most));
  return {*address, static_cast<std::uint8_t>(length)};
}

KernelInterfaceConfig read_kernel_interface(const GroupReader& port, const Document& doc) {
  GroupReader r(port.get("kernel"), doc, {"name", "driver", "rate", "burst"});
  KernelInterfaceConfig kernel;
  kernel.name = r.string("name");
  if (const std::string wrong = interface_name_problem(kernel.name); !wrong.empty())
    r.fail(r.get("name"), wrong);
  kernel.driver = r.choice<KernelDriver>("driver", {{"tap", KernelDriver::tap}, {"virtio-user", KernelDriver::virtio_user}},
                                         KernelDriver::tap);
  kernel.rate = static_cast<std::uint32_t>(r.integer("rate", 1, 10'000'000, kernel.rate));
  kernel.burst = static_cast<std::uint32_t>(r.integer("burst", 1, 1'000'000, kernel.burst));
  return kernel;
}

// A port's routing and tunnel settings (README "Tunnel forwarding").
void read_port_routing(const GroupReader& r, const Document& doc, PortConfig& port) {
  port.mtu = static_cast<std::uint16_t>(r.integer("mtu", 1280, 9216, kDefaultMtu));
  if (r.has("gateways")) {
    const Setting& gateways = r.list("gateways");
    for (int j = 0; j < gateways.getLength(); ++j) port.gateways.push_back(r.ip(gateways[j]));
  }
  if (r.has("routes")) {
    const Setting& routes = r.list("routes");
    for (int j = 0; j < routes.getLength(); ++j) {
      GroupReader route(routes[j], doc, {"to", "via"});
      const auto [prefix, length] = address_with_prefix(route, route.get("to"));
      port.routes.push_back({prefix, length, route.ip("via")});
    }
  }
  if (r.has("tunnel")) {
    GroupReader tunnel(r.get("tunnel"), doc, {"sources", "gue_port"});
    if (tunnel.has("sources")) {
      const Setting& sources = tunnel.list("sources");
      for (int j = 0; j < sources.getLength(); ++j) port.tunnel_sources.push_back(tunnel.ip(sources[j]));
    }
    port.gue_port = static_cast<std::uint16_t>(tunnel.integer("gue_port", 1, 65535, kGuePort));
  }
}

void read_ports(const GroupReader& top, const Document& doc, Config& config,
                std::map<std::string, std::size_t>& names) {
  const Setting& ports = top.list("ports");
  if (ports.getLength() == 0) top.fail(ports, "at least one port is required");
  for (int i = 0; i < ports.getLength(); ++i) {
    GroupReader r(ports[i], doc, {"name", "device", "mac", "addresses", "mbufs", "kernel", "mtu",
                                  "gateways", "routes", "tunnel"});
    PortConfig port;
    port.name = unique_name(r, "port", names, config.ports.size());
    port.device = r.string("device");
    if (port.device.empty()) r.fail(r.get("device"), "device is empty");
    if (r.has("mac")) port.mac = r.mac("mac");
    if (r.has("mbufs")) port.mbufs = static_cast<std::uint32_t>(r.integer("mbufs", 1023, 1 << 24, 0));
    if (r.has("addresses")) {
      const Setting& addresses = r.list("addresses");
      for (int j = 0; j < addresses.getLength(); ++j) {
        const auto [address, prefix_length] = address_with_prefix(r, addresses[j]);
        port.addresses.push_back(address);
        port.prefix_lengths.push_back(prefix_length);
      }
    }
    if (r.has("kernel")) port.kernel = read_kernel_interface(r, doc);
    read_port_routing(r, doc, port);
    config.ports.push_back(std::move(port));
    r.check(port_problem(config, config.ports.size() - 1));
    r.check(port_routing_problem(config, config.ports.size() - 1));
  }
}

void read_backends(const GroupReader& top, const Document& doc, Config& config,
                   const std::map<std::string, std::size_t>& port_names,
                   std::map<std::string, std::size_t>& names) {
  const Setting& backends = top.list("backends");
  if (backends.getLength() > static_cast<int>(dataplane::kMaxBackends))
    top.fail(backends, "at most " + std::to_string(dataplane::kMaxBackends) + " backends");
  for (int i = 0; i < backends.getLength(); ++i) {
    GroupReader r(backends[i], doc, {"name", "address", "mac", "port"});
    BackendConfig backend;
    backend.name = unique_name(r, "backend", names, config.backends.size());
    backend.address = r.ip("address");
    if (r.has("mac")) backend.mac = r.mac("mac");
    if (r.has("port")) {
      const std::string port = r.string("port");
      auto found = port_names.find(port);
      if (found == port_names.end()) r.fail(r.get("port"), "no port named '" + port + "'");
      backend.port = found->second;
    } else if (config.ports.size() == 1) {
      backend.port = 0;
    } else {
      r.fail_group(port_needed(backend.name));
    }
    config.backends.push_back(std::move(backend));
    r.check(backend_problem(config, config.backends.size() - 1));
  }
}

std::vector<ServiceBackend> read_members(const GroupReader& r, const Document& doc,
                                         const Setting& members,
                                         const std::map<std::string, std::size_t>& backend_names) {
  if (members.getLength() == 0) r.fail(members, "needs at least one backend");
  std::vector<ServiceBackend> result;
  for (int j = 0; j < members.getLength(); ++j) {
    GroupReader m(members[j], doc, {"name", "weight", "passive_ports"});
    const std::string name = m.string("name");
    auto found = backend_names.find(name);
    if (found == backend_names.end()) m.fail(m.get("name"), "no backend named '" + name + "'");
    for (const auto& earlier : result)
      if (earlier.backend == found->second)
        m.fail(m.get("name"), "backend '" + name + "' is listed twice");
    ServiceBackend member{found->second,
                          static_cast<std::uint32_t>(m.integer("weight", 0, kMaxWeight, 1))};
    if (m.has("passive_ports")) {
      const Setting& range = m.list("passive_ports");
      if (range.getLength() != 2) m.fail(range, "expected [first, last] port numbers");
      const long long first = m.integer(range[0], 1024, 65535), last = m.integer(range[1], 1024, 65535);
      if (first > last)
        m.fail(range, "passive port range " + std::to_string(first) + ".." +
                          std::to_string(last) + " must lie within 1024..65535, first <= last");
      member.passive_first = static_cast<std::uint16_t>(first);
      member.passive_last = static_cast<std::uint16_t>(last);
    }
    result.push_back(member);
  }
  return result;
}

void read_rules(const GroupReader& r, const Document& doc, ServiceConfig& service) {
  const Setting& rules = r.list("rules");
  for (int i = 0; i < rules.getLength(); ++i) {
    GroupReader rule(rules[i], doc, {"field", "match", "caseless", "pool"});
    RuleConfig config;
    const std::string field = rule.string("field");
    if (field == "request-line") {
      config.field = dataplane::RuleField::request_line;
    } else if (field == "uri") {
      config.field = dataplane::RuleField::uri;
    } else if (field.rfind("header:", 0) == 0 && field.size() > 7) {
      config.field = dataplane::RuleField::header;
      config.header = field.substr(7);
    } else {
      rule.fail(rule.get("field"),
                "'" + field + "' is not one of: request-line, uri, header:NAME");
    }
    config.pattern = rule.string("match");
    config.caseless = rule.has("caseless") && static_cast<bool>(rule.get("caseless"));
    const std::string pool = rule.string("pool");
    config.pool = pool == "default" ? 0 : SIZE_MAX;
    for (std::size_t p = 0; p < service.pools.size(); ++p)
      if (service.pools[p].name == pool) config.pool = p + 1;
    if (config.pool == SIZE_MAX) rule.fail(rule.get("pool"), "no pool named '" + pool + "'");
    try {
      dataplane::RuleSet check({{config.field, config.header, config.pattern, config.caseless, 0}});
    } catch (const std::invalid_argument& e) {
      std::string message = e.what();
      rule.fail(rule.get("match"), "pattern does not compile:" + message.substr(message.find(':') + 1));
    }
    service.rules.push_back(std::move(config));
  }
}

void read_dpi(const GroupReader& r, const Document& doc, ServiceConfig& service,
              const std::map<std::string, std::size_t>& backend_names) {
  if (r.has("dpi"))
    service.dpi = r.choice<std::optional<SessionProtocol>>(
        "dpi", {{"none", std::nullopt},
                {"sip", SessionProtocol::sip},
                {"rtsp", SessionProtocol::rtsp},
                {"ftp", SessionProtocol::ftp}});
  if ((service.dpi == SessionProtocol::rtsp || service.dpi == SessionProtocol::ftp) && service.protocol != Protocol::tcp)
    r.fail(r.get("dpi"), std::string("dpi '") + to_string(service.dpi) + "' needs protocol 'tcp'");
  const bool sip_calls = service.dpi == SessionProtocol::sip && service.protocol == Protocol::udp;
  if (service.scheduler == Scheduler::least_sessions && !sip_calls)
    r.fail(r.get("scheduler"), "'least-sessions' counts SIP calls: it needs dpi 'sip' over udp");
  service.session_timeout_s = static_cast<std::uint32_t>(
      r.integer("session_timeout", 1, 86400, service.dpi == SessionProtocol::sip ? 1800 : 300));
  service.linger_s = static_cast<std::uint32_t>(r.integer("linger", 0, 3600, 32));
  service.expectation_timeout_s =
      static_cast<std::uint32_t>(r.integer("expectation_timeout", 1, 3600, 30));

  if (r.has("pools")) {
    const Setting& pools = r.list("pools");
    for (int i = 0; i < pools.getLength(); ++i) {
      GroupReader p(pools[i], doc, {"name", "backends"});
      PoolConfig pool;
      pool.name = p.string("name");
      if (pool.name == "default") p.fail(p.get("name"), "'default' names the service's backends");
      for (const auto& other : service.pools)
        if (other.name == pool.name) p.fail(p.get("name"), "duplicate pool name '" + pool.name + "'");
      pool.backends = read_members(p, doc, p.list("backends"), backend_names);
      service.pools.push_back(std::move(pool));
    }
  }
  if (r.has("rules")) {
    // An RTSP or SIP-over-TCP connection is balanced at its SYN, before any request is seen,
    // and in one-way mode the backend completes the handshake: no later choice is possible.
    if (service.dpi != SessionProtocol::sip || service.protocol != Protocol::udp)
      r.fail(r.get("rules"), "content rules need dpi 'sip' over udp (a TCP connection is "
                             "balanced at its SYN, before any request can be read)");
    read_rules(r, doc, service);
  }

  bool any_passive = false;
  for (const auto& member : service.backends) any_passive |= member.passive_first != 0;
  if (any_passive && service.dpi != SessionProtocol::ftp)
    r.fail(r.get("backends"), "passive_ports need dpi 'ftp'");
  for (std::size_t a = 0; a < service.backends.size(); ++a)
    for (std::size_t b = a + 1; b < service.backends.size(); ++b) {
      const auto &x = service.backends[a], &y = service.backends[b];
      if (x.passive_first && y.passive_first && x.passive_first <= y.passive_last &&
          y.passive_first <= x.passive_last)
        r.fail(r.get("backends"), "passive port ranges of backends " + std::to_string(a) +
                                      " and " + std::to_string(b) + " overlap");
    }
}

void read_services(const GroupReader& top, const Document& doc, Config& config,
                   const std::map<std::string, std::size_t>& backend_names) {
  const Setting& services = top.list("services");
  if (services.getLength() == 0) top.fail(services, "at least one service is required");
  if (services.getLength() > static_cast<int>(dataplane::kMaxServices))
    top.fail(services, "at most " + std::to_string(dataplane::kMaxServices) + " services");
  std::map<std::string, std::size_t> names;
  std::map<std::tuple<IpBytes, std::uint16_t, Protocol>, std::string> endpoints;
  // Related flows (RTP of RTSP over UDP, FTP data over TCP) reach a VIP on any port: one
  // inspecting service per VIP and related protocol decides them.
  std::map<std::pair<IpBytes, Protocol>, std::string> related;
  for (int i = 0; i < services.getLength(); ++i) {
    GroupReader r(services[i], doc,
                  {"name", "vip", "port", "protocol", "scheduler", "forwarding", "idle_timeout",
                   "fin_timeout", "backends", "dpi", "session_timeout", "linger",
                   "expectation_timeout", "pools", "rules", "health_check"});
    ServiceConfig service;
    service.name = unique_name(r, "service", names, config.services.size());
    service.vip = r.ip("vip");
    service.port = static_cast<std::uint16_t>(r.integer("port", 1, 65535));
    service.protocol = r.choice<Protocol>("protocol", {{"tcp", Protocol::tcp}, {"udp", Protocol::udp}});
    service.scheduler = r.choice<Scheduler>(
        "scheduler",
        {{"maglev", Scheduler::maglev}, {"source-hash", Scheduler::source_hash},
         {"least-sessions", Scheduler::least_sessions}},
        Scheduler::maglev);
    service.forwarding = r.choice<Forwarding>(
        "forwarding", {{"dsr", Forwarding::dsr}, {"ipip", Forwarding::ipip}, {"gue", Forwarding::gue}},
        Forwarding::dsr);
    const std::uint32_t default_idle_ms = service.protocol == Protocol::tcp ? 300'000 : 60'000;
    service.idle_timeout_ms = r.milliseconds("idle_timeout", 10, 86'400'000, default_idle_ms);
    service.fin_timeout_s = static_cast<std::uint32_t>(r.integer("fin_timeout", 0, 3600, 10));

    auto [existing, inserted] =
        endpoints.emplace(std::make_tuple(service.vip, service.port, service.protocol), service.name);
    if (!inserted)
      r.fail(r.get("vip"), "duplicate VIP:port " + format_ip(service.vip) + ":" +
                               std::to_string(service.port) + "/" + to_string(service.protocol) +
                               " (already used by service '" + existing->second + "')");

    const Setting& members = r.list("backends");
    if (members.getLength() == 0) r.fail(members, "a service needs at least one backend");
    service.backends = read_members(r, doc, members, backend_names);
    read_dpi(r, doc, service, backend_names);

    if (r.has("health_check")) {
      GroupReader h(r.get("health_check"), doc, {"type", "interval", "timeout", "rise", "fall"});
      HealthCheckConfig check;
      check.type = h.choice<HealthCheckType>(
          "type", {{"icmp", HealthCheckType::icmp}, {"tcp", HealthCheckType::tcp},
                   {"sip-options", HealthCheckType::sip_options}});
      if (check.type == HealthCheckType::tcp && service.protocol != Protocol::tcp)
        h.fail(h.get("type"), "a 'tcp' check needs a tcp service");
      if (check.type == HealthCheckType::sip_options && service.protocol != Protocol::udp)
        h.fail(h.get("type"), "a 'sip-options' check needs a udp service");
      if (check.type == HealthCheckType::sip_options && config.mbuf_data_size < kSipProbeRoom)
        h.fail(h.get("type"), "a 'sip-options' probe needs tables.mbuf_size of at least " +
                                  std::to_string(kSipProbeRoom));
      check.interval_ms = static_cast<std::uint32_t>(h.integer("interval", 100, 3600000, 2000));
      check.timeout_ms = static_cast<std::uint32_t>(h.integer("timeout", 50, 3600000, 1000));
      if (check.timeout_ms > check.interval_ms)
        h.fail(h.get("timeout"), "timeout must not exceed interval");
      check.rise = static_cast<std::uint32_t>(h.integer("rise", 1, 100, 2));
      check.fall = static_cast<std::uint32_t>(h.integer("fall", 1, 100, 3));
      service.health_check = check;
    }

    if (const Problem found = members_problem(config, service.backends)) r.fail(members, found.message);
    for (std::size_t p = 0; p < service.pools.size(); ++p)
      if (const Problem found = members_problem(config, service.pools[p].backends))
        r.fail(r.get("pools")[static_cast<int>(p)]["backends"], found.message);

    if (service.dpi == SessionProtocol::rtsp || service.dpi == SessionProtocol::ftp) {
      const Protocol related_protocol = service.dpi == SessionProtocol::rtsp ? Protocol::udp : Protocol::tcp;
      auto [other, fresh] = related.emplace(std::make_pair(service.vip, related_protocol), service.name);
      if (!fresh)
        r.fail(r.get("dpi"), "service '" + other->second + "' already claims " +
                                 to_string(related_protocol) + " flows related to VIP " +
                                 format_ip(service.vip) + ": one rtsp and one ftp service per VIP");
    }
    config.services.push_back(std::move(service));
    r.check(service_problem(config, config.services.size() - 1));
  }
}

// The sync key: hex text in a file only its owner may read (see README "State sync").
std::vector<std::uint8_t> read_sync_key(const GroupReader& r, const std::string& key_file,
                                        const std::string& source) {
  namespace fs = std::filesystem;
  // A relative path is the configuration file's neighbour, wherever tetherd was started.
  const fs::path path = fs::path(source).parent_path() / key_file;
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (error || !fs::is_regular_file(status))
    r.fail(r.get("key_file"), "cannot read key file " + path.string() + ": " +
                                  (error ? error.message() : std::string("not a regular file")));
  const fs::perms open_to_others = fs::perms::group_all | fs::perms::others_all;
  if ((status.permissions() & open_to_others) != fs::perms::none)
    r.fail(r.get("key_file"), "key file " + path.string() +
                                  " is open to group or others: whoever reads it can steer "
                                  "sessions (chmod 600 it)");
  std::string text;
  try {
    text = read_whole_file(path.string());
  } catch (const std::exception& e) {
    r.fail(r.get("key_file"), "cannot read key file " + path.string() + ": " + e.what());
  }
  try {
    return parse_sync_key(text);
  } catch (const ConfigError& e) {
    r.fail(r.get("key_file"), "key file " + path.string() + ": " + e.what());
  }
}

// The index of the port a section names in its `port` setting.
std::size_t named_port(const GroupReader& r, const std::map<std::string, std::size_t>& port_names) {
  const std::string port = r.string("port");
  const auto found = port_names.find(port);
  if (found == port_names.end()) r.fail(r.get("port"), "no port named '" + port + "'");
  return found->second;
}

void read_sync(const GroupReader& top, const Document& doc, Config& config,
               const std::map<std::string, std::size_t>& port_names) {
  GroupReader r(top.get("sync"), doc, {"port", "listen_port", "key_file", "peers", "instance",
                                               "flow_threshold", "flow_period", "max_rate"});
  SyncConfig sync;
  sync.port = named_port(r, port_names);
  sync.listen_port = static_cast<std::uint16_t>(r.integer("listen_port", 1, 65535, sync.listen_port));
  sync.key_file = r.string("key_file");
  if (sync.key_file.empty()) r.fail(r.get("key_file"), "key_file is empty");
  sync.key = read_sync_key(r, sync.key_file, config.source);
  const Setting& peers = r.list("peers");
  if (peers.getLength() == 0) r.fail(peers, "at least one peer is required");
  for (int i = 0; i < peers.getLength(); ++i) sync.peers.push_back(r.ip(peers[i]));
  const PortConfig& sync_port = config.ports[sync.port];
  sync.instance = r.string("instance", sync_port.addresses.empty() ? std::string()
                                                                    : format_ip(sync_port.addresses[0]));
  if (r.has("instance") && sync.instance.empty()) r.fail(r.get("instance"), "instance is empty");
  sync.sender_id = sync_sender_id(sync.instance);
  sync.flow_threshold = static_cast<std::uint32_t>(r.integer("flow_threshold", 1, 62, sync.flow_threshold));
  sync.flow_period = static_cast<std::uint32_t>(r.integer("flow_period", 1, 62, sync.flow_period));
  if (sync.flow_threshold + sync.flow_period > 63)
    r.fail(r.get(r.has("flow_period") ? "flow_period" : "flow_threshold"),
           "flow_threshold + flow_period is " + std::to_string(sync.flow_threshold + sync.flow_period) +
               ": at most 63 (a flow entry counts its packets in six bits)");
  sync.max_rate = static_cast<std::uint32_t>(r.integer("max_rate", 100, 10000000, sync.max_rate));
  config.sync = std::move(sync);
  r.check(sync_problem(config));
}

void read_ha(const GroupReader& top, const Document& doc, Config& config) {
  GroupReader r(top.get("ha"), doc, {"initial", "gratuitous"});
  HaConfig ha;
  // Not "fault": that is keepalived's word for a broken instance, not a way to start.
  ha.initial = r.choice<HaRole>("initial", {{"backup", HaRole::backup}, {"master", HaRole::master}},
                                ha.initial);
  if (r.has("gratuitous")) {
    GroupReader g(r.get("gratuitous"), doc, {"count", "interval"});
    ha.gratuitous_count = static_cast<std::uint32_t>(g.integer("count", 1, 100, ha.gratuitous_count));
    ha.gratuitous_interval_ms =
        static_cast<std::uint32_t>(g.integer("interval", 10, 10000, ha.gratuitous_interval_ms));
  }
  config.ha = ha;
}

void read_announce(const GroupReader& top, const Document& doc, Config& config,
                   const std::map<std::string, std::size_t>& port_names) {
  GroupReader r(top.get("announce"), doc, {"port", "drain_quiet", "drain_timeout", "bulk_wait"});
  AnnounceConfig announce;
  announce.port = named_port(r, port_names);
  announce.drain_quiet_s = static_cast<std::uint32_t>(r.integer("drain_quiet", 1, 3600, announce.drain_quiet_s));
  announce.drain_timeout_s =
      static_cast<std::uint32_t>(r.integer("drain_timeout", 1, 86400, announce.drain_timeout_s));
  announce.bulk_wait_s = static_cast<std::uint32_t>(r.integer("bulk_wait", 0, 3600, announce.bulk_wait_s));
  if (announce.drain_timeout_s < announce.drain_quiet_s)
    r.fail(r.get(r.has("drain_timeout") ? "drain_timeout" : "drain_quiet"),
           "drain_timeout " + std::to_string(announce.drain_timeout_s) + " is below drain_quiet " +
               std::to_string(announce.drain_quiet_s) + ": the drain could never see its traffic stop");
  config.announce = announce;
  r.check(announce_problem(config));
}

void read_metrics(const GroupReader& top, const Document& doc, Config& config) {
  GroupReader r(top.get("metrics"), doc, {"listen"});
  const std::string listen = r.string("listen");
  config.metrics = parse_listen(listen);
  if (!config.metrics)
    r.fail(r.get("listen"), "'" + listen + "' is not ADDRESS:PORT (an IPv6 address in brackets: [::1]:9142)");
}

Config read(libconfig::Config& file, const Document& doc) {
  Config config;
  config.source = doc.source;
  GroupReader top(file.getRoot(), doc,
                  {"workers", "eal", "log_level", "tables", "neighbours", "ports", "backends",
                   "services", "sync", "ha", "announce", "metrics"});
  config.workers = static_cast<unsigned>(top.integer("workers", 1, kMaxWorkers, 1));
  if (top.has("eal")) {
    const Setting& eal = top.list("eal");
    for (int i = 0; i < eal.getLength(); ++i) {
      if (eal[i].getType() != Setting::TypeString) top.fail(eal[i], "expected a string");
      config.eal_args.emplace_back(eal[i].c_str());
    }
  }
  config.log_level = top.choice<std::string>(
      "log_level", {{"error", "error"}, {"warning", "warning"}, {"info", "info"}, {"debug", "debug"}},
      std::string("info"));
  if (top.has("tables")) {
    GroupReader tables(top.get("tables"), doc,
                       {"flows_per_worker", "maglev_size", "mbufs_per_port", "mbuf_size", "sessions",
                        "dpi_streams_per_worker", "dpi_sessions_per_worker"});
    config.flows_per_worker =
        static_cast<std::uint32_t>(tables.integer("flows_per_worker", 1024, 1 << 27, config.flows_per_worker));
    config.maglev_size =
        static_cast<std::uint32_t>(tables.integer("maglev_size", 101, 16777213, config.maglev_size));
    if (!is_prime(config.maglev_size))
      tables.fail(tables.get("maglev_size"),
                  std::to_string(config.maglev_size) + " is not prime (Maglev needs a prime table size)");
    config.mbufs_per_port =
        static_cast<std::uint32_t>(tables.integer("mbufs_per_port", 1023, 1 << 24, config.mbufs_per_port));
    config.mbuf_data_size =
        static_cast<std::uint16_t>(tables.integer("mbuf_size", 128, 16384, config.mbuf_data_size));
    config.sessions =
        static_cast<std::uint32_t>(tables.integer("sessions", 1024, 1 << 26, config.sessions));
    config.dpi_streams_per_worker = static_cast<std::uint32_t>(
        tables.integer("dpi_streams_per_worker", 16, dataplane::kMaxDpiStreamsPerWorker,
                       config.dpi_streams_per_worker));
    config.dpi_sessions_per_worker = static_cast<std::uint32_t>(
        tables.integer("dpi_sessions_per_worker", 16, dataplane::kMaxDpiSessionsPerWorker,
                       config.dpi_sessions_per_worker));
  }
  if (top.has("neighbours")) {
    GroupReader neighbours(top.get("neighbours"), doc, {"refresh", "retry", "attempts"});
    config.neighbours.refresh_s =
        static_cast<std::uint32_t>(neighbours.integer("refresh", 1, 86400, config.neighbours.refresh_s));
    config.neighbours.retry_ms =
        static_cast<std::uint32_t>(neighbours.integer("retry", 10, 60000, config.neighbours.retry_ms));
    config.neighbours.attempts =
        static_cast<std::uint32_t>(neighbours.integer("attempts", 1, 100, config.neighbours.attempts));
  }
  std::map<std::string, std::size_t> port_names, backend_names;
  read_ports(top, doc, config, port_names);
  read_backends(top, doc, config, port_names, backend_names);
  read_services(top, doc, config, backend_names);
  if (top.has("sync")) read_sync(top, doc, config, port_names);
  if (top.has("ha")) read_ha(top, doc, config);
  if (top.has("announce")) read_announce(top, doc, config, port_names);
  if (top.has("metrics")) read_metrics(top, doc, config);
  if (const auto wrong = eal_problem(config.eal_args, config))
    top.fail(top.get("eal")[static_cast<int>(wrong->index)], wrong->message);
  return config;
}

// libconfig throws its own exceptions for anything GroupReader did not foresee: still name
// the setting rather than abort.
Config read_checked(libconfig::Config& file, std::string_view text, const std::string& source) {
  try {
    return read(file, read_integers(file, text, source));
  } catch (const libconfig::SettingException& e) {
    throw ConfigError(source + ": " + e.getPath() + ": " + e.what());
  }
}

}  // namespace

Config load_config_file(const std::string& path) {
  libconfig::Config file;
  std::string text;
  try {
    text = read_whole_file(path);
    file.readFile(path.c_str());
  } catch (const libconfig::FileIOException&) {
    throw ConfigError(path + ": cannot read the file");
  } catch (const libconfig::ParseException& e) {
    throw ConfigError(std::string(e.getFile() ? e.getFile() : path.c_str()) + ":" +
                      std::to_string(e.getLine()) + ": syntax error: " + e.getError());
  }
  return read_checked(file, text, path);
}

Config load_config_text(const std::string& text, const std::string& name) {
  libconfig::Config file;
  try {
    file.readString(text);
  } catch (const libconfig::ParseException& e) {
    throw ConfigError(name + ":" + std::to_string(e.getLine()) + ": syntax error: " + e.getError());
  }
  return read_checked(file, text, name);
}

}  // namespace tether
