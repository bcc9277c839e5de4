#include "control/config.hpp"

#include "dataplane/limits.hpp"

#include <libconfig.h++>

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <map>
#include <sstream>
#include <tuple>

namespace tether {
namespace {

// Bytes a SIP OPTIONS probe takes (about 370 with IPv6 addresses), rounded up.
constexpr std::uint16_t kSipProbeRoom = 512;

using libconfig::Setting;

// Reads one group of settings, checking names and types, and turns every problem into a
// ConfigError that names file, line and path.
class GroupReader {
 public:
  GroupReader(const Setting& group, const std::string& source,
              std::initializer_list<const char*> known)
      : group_(group), source_(source) {
    if (!group.isGroup()) fail(group, "expected a group { ... }");
    for (int i = 0; i < group.getLength(); ++i) {
      const Setting& child = group[i];
      const char* name = child.getName();
      if (name == nullptr) continue;
      if (std::none_of(known.begin(), known.end(),
                       [&](const char* k) { return std::string_view(k) == name; })) {
        std::string list;
        for (const char* k : known) list += list.empty() ? k : std::string(", ") + k;
        fail(child, std::string("unknown setting (expected one of: ") + list + ")");
      }
    }
  }

  [[noreturn]] void fail(const Setting& setting, const std::string& message) const {
    throw ConfigError(where(setting) + message);
  }
  [[noreturn]] void fail_group(const std::string& message) const { fail(group_, message); }

  std::string where(const Setting& setting) const {
    const char* file = setting.getSourceFile();
    std::string path = setting.getPath();
    return std::string(file ? file : source_) + ":" + std::to_string(setting.getSourceLine()) +
           ": " + (path.empty() ? std::string("(top level)") : path) + ": ";
  }

  bool has(const char* name) const { return group_.exists(name); }
  const Setting& get(const char* name) const {
    if (!group_.exists(name)) fail_group(std::string("missing required setting '") + name + "'");
    return group_[name];
  }

  std::string string(const char* name, std::optional<std::string> fallback = {}) const {
    if (!has(name) && fallback) return *fallback;
    const Setting& s = get(name);
    if (s.getType() != Setting::TypeString) fail(s, "expected a string");
    return s.c_str();
  }

  long long integer(const char* name, long long min, long long max,
                    std::optional<long long> fallback = {}) const {
    if (!has(name) && fallback) return *fallback;
    const Setting& s = get(name);
    if (s.getType() != Setting::TypeInt && s.getType() != Setting::TypeInt64)
      fail(s, "expected an integer");
    const long long value = s.getType() == Setting::TypeInt ? static_cast<long long>(static_cast<int>(s))
                                                            : static_cast<long long>(s);
    if (value < min || value > max)
      fail(s, std::to_string(value) + " is out of range " + std::to_string(min) + ".." +
                  std::to_string(max));
    return value;
  }

  IpBytes ip(const Setting& s) const {
    if (s.getType() != Setting::TypeString) fail(s, "expected an IPv4 or IPv6 address string");
    auto parsed = parse_ip(s.c_str());
    if (!parsed) fail(s, std::string("'") + s.c_str() + "' is not an IPv4 or IPv6 address");
    return *parsed;
  }
  IpBytes ip(const char* name) const { return ip(get(name)); }

  MacBytes mac(const char* name) const {
    const Setting& s = get(name);
    if (s.getType() != Setting::TypeString) fail(s, "expected a MAC address string");
    auto parsed = parse_mac(s.c_str());
    if (!parsed)
      fail(s, std::string("'") + s.c_str() + "' is not a MAC address (like 02:00:00:00:00:01)");
    return *parsed;
  }

  template <typename Enum>
  Enum choice(const char* name, std::initializer_list<std::pair<const char*, Enum>> options,
              std::optional<Enum> fallback = {}) const {
    if (!has(name) && fallback) return *fallback;
    const std::string value = string(name);
    std::string list;
    for (const auto& [text, e] : options) {
      if (value == text) return e;
      list += list.empty() ? text : std::string(", ") + text;
    }
    fail(get(name), "'" + value + "' is not one of: " + list);
  }

  const Setting& list(const char* name) const {
    const Setting& s = get(name);
    if (!s.isList() && !s.isArray()) fail(s, "expected a list ( ... ) or array [ ... ]");
    return s;
  }

  const Setting& group() const { return group_; }

 private:
  const Setting& group_;
  const std::string& source_;
};

}  // namespace

bool is_valid_name(const std::string& name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == ':';
  });
}

namespace {

std::string unique_name(const GroupReader& reader, const char* what,
                        std::map<std::string, std::size_t>& seen, std::size_t index) {
  std::string name = reader.string("name");
  if (!is_valid_name(name))
    reader.fail(reader.get("name"), std::string(what) + " name '" + name +
                                        "' must be 1 to 32 letters, digits, '.', '_', '-' or ':'");
  if (!seen.emplace(name, index).second)
    reader.fail(reader.get("name"), std::string("duplicate ") + what + " name '" + name + "'");
  return name;
}

void read_ports(const GroupReader& top, const std::string& source, Config& config,
                std::map<std::string, std::size_t>& names) {
  const Setting& ports = top.list("ports");
  if (ports.getLength() == 0) top.fail(ports, "at least one port is required");
  for (int i = 0; i < ports.getLength(); ++i) {
    GroupReader r(ports[i], source, {"name", "device", "mac", "addresses", "mbufs"});
    PortConfig port;
    port.name = unique_name(r, "port", names, config.ports.size());
    port.device = r.string("device");
    if (port.device.empty()) r.fail(r.get("device"), "device is empty");
    if (r.has("mac")) port.mac = r.mac("mac");
    if (r.has("mbufs")) port.mbufs = static_cast<std::uint32_t>(r.integer("mbufs", 1023, 1 << 24, 0));
    if (r.has("addresses")) {
      const Setting& addresses = r.list("addresses");
      for (int j = 0; j < addresses.getLength(); ++j) port.addresses.push_back(r.ip(addresses[j]));
    }
    config.ports.push_back(std::move(port));
  }
}

void read_backends(const GroupReader& top, const std::string& source, Config& config,
                   const std::map<std::string, std::size_t>& port_names,
                   std::map<std::string, std::size_t>& names) {
  const Setting& backends = top.list("backends");
  if (backends.getLength() > static_cast<int>(dataplane::kMaxBackends))
    top.fail(backends, "at most " + std::to_string(dataplane::kMaxBackends) + " backends");
  for (int i = 0; i < backends.getLength(); ++i) {
    GroupReader r(backends[i], source, {"name", "address", "mac", "port"});
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
      r.fail_group("backend '" + backend.name + "' needs 'port' when there are several ports");
    }
    // DSR rewrites the destination MAC to the backend's: without a static one, it is asked
    // for by ARP/ND from the port's own address of the same family.
    const auto& addresses = config.ports[backend.port].addresses;
    const bool ipv4 = parsers::is_ipv4_mapped(backend.address);
    const bool can_resolve = std::any_of(addresses.begin(), addresses.end(), [ipv4](const IpBytes& a) {
      return parsers::is_ipv4_mapped(a) == ipv4;
    });
    if (!backend.mac && !can_resolve)
      r.fail_group("backend '" + backend.name + "' needs 'mac', or an " + (ipv4 ? "IPv4" : "IPv6") +
                   " address on port '" + config.ports[backend.port].name +
                   "' to resolve it by " + (ipv4 ? "ARP" : "neighbour discovery"));
    config.backends.push_back(std::move(backend));
  }
}

std::vector<ServiceBackend> read_members(const GroupReader& r, const std::string& source,
                                         const Setting& members,
                                         const std::map<std::string, std::size_t>& backend_names) {
  if (members.getLength() == 0) r.fail(members, "needs at least one backend");
  std::vector<ServiceBackend> result;
  for (int j = 0; j < members.getLength(); ++j) {
    GroupReader m(members[j], source, {"name", "weight", "passive_ports"});
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
      if (range.getLength() != 2 || range[0].getType() != Setting::TypeInt ||
          range[1].getType() != Setting::TypeInt)
        m.fail(range, "expected [first, last] port numbers");
      const int first = range[0], last = range[1];
      if (first < 1024 || last > 65535 || first > last)
        m.fail(range, "passive port range " + std::to_string(first) + ".." +
                          std::to_string(last) + " must lie within 1024..65535, first <= last");
      member.passive_first = static_cast<std::uint16_t>(first);
      member.passive_last = static_cast<std::uint16_t>(last);
    }
    result.push_back(member);
  }
  return result;
}

void read_rules(const GroupReader& r, const std::string& source, ServiceConfig& service) {
  const Setting& rules = r.list("rules");
  for (int i = 0; i < rules.getLength(); ++i) {
    GroupReader rule(rules[i], source, {"field", "match", "caseless", "pool"});
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

void read_dpi(const GroupReader& r, const std::string& source, ServiceConfig& service,
              const std::map<std::string, std::size_t>& backend_names) {
  service.dpi = r.choice<Dpi>(
      "dpi", {{"none", Dpi::none}, {"sip", Dpi::sip}, {"rtsp", Dpi::rtsp}, {"ftp", Dpi::ftp}},
      Dpi::none);
  if ((service.dpi == Dpi::rtsp || service.dpi == Dpi::ftp) && service.protocol != Protocol::tcp)
    r.fail(r.get("dpi"), std::string("dpi '") + to_string(service.dpi) + "' needs protocol 'tcp'");
  const bool sip_calls = service.dpi == Dpi::sip && service.protocol == Protocol::udp;
  if (service.scheduler == Scheduler::least_sessions && !sip_calls)
    r.fail(r.get("scheduler"), "'least-sessions' counts SIP calls: it needs dpi 'sip' over udp");
  service.session_timeout_s = static_cast<std::uint32_t>(
      r.integer("session_timeout", 1, 86400, service.dpi == Dpi::sip ? 1800 : 300));
  service.linger_s = static_cast<std::uint32_t>(r.integer("linger", 0, 3600, 32));
  service.expectation_timeout_s =
      static_cast<std::uint32_t>(r.integer("expectation_timeout", 1, 3600, 30));

  if (r.has("pools")) {
    const Setting& pools = r.list("pools");
    for (int i = 0; i < pools.getLength(); ++i) {
      GroupReader p(pools[i], source, {"name", "backends"});
      PoolConfig pool;
      pool.name = p.string("name");
      if (pool.name == "default") p.fail(p.get("name"), "'default' names the service's backends");
      for (const auto& other : service.pools)
        if (other.name == pool.name) p.fail(p.get("name"), "duplicate pool name '" + pool.name + "'");
      pool.backends = read_members(p, source, p.list("backends"), backend_names);
      service.pools.push_back(std::move(pool));
    }
  }
  if (r.has("rules")) {
    // An RTSP or SIP-over-TCP connection is balanced at its SYN, before any request is seen,
    // and in one-way mode the backend completes the handshake: no later choice is possible.
    if (service.dpi != Dpi::sip || service.protocol != Protocol::udp)
      r.fail(r.get("rules"), "content rules need dpi 'sip' over udp (a TCP connection is "
                             "balanced at its SYN, before any request can be read)");
    read_rules(r, source, service);
  }

  bool any_passive = false;
  for (const auto& member : service.backends) any_passive |= member.passive_first != 0;
  if (any_passive && service.dpi != Dpi::ftp)
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

void read_services(const GroupReader& top, const std::string& source, Config& config,
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
    GroupReader r(services[i], source,
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
    service.forwarding =
        r.choice<Forwarding>("forwarding", {{"dsr", Forwarding::dsr}}, Forwarding::dsr);
    const long long default_idle = service.protocol == Protocol::tcp ? 300 : 60;
    service.idle_timeout_s = static_cast<std::uint32_t>(r.integer("idle_timeout", 1, 86400, default_idle));
    service.fin_timeout_s = static_cast<std::uint32_t>(r.integer("fin_timeout", 0, 3600, 10));

    auto [existing, inserted] =
        endpoints.emplace(std::make_tuple(service.vip, service.port, service.protocol), service.name);
    if (!inserted)
      r.fail(r.get("vip"), "duplicate VIP:port " + format_ip(service.vip) + ":" +
                               std::to_string(service.port) + "/" + to_string(service.protocol) +
                               " (already used by service '" + existing->second + "')");

    const Setting& members = r.list("backends");
    if (members.getLength() == 0) r.fail(members, "a service needs at least one backend");
    service.backends = read_members(r, source, members, backend_names);
    read_dpi(r, source, service, backend_names);

    if (r.has("health_check")) {
      GroupReader h(r.get("health_check"), source, {"type", "interval", "timeout", "rise", "fall"});
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

    std::size_t largest_pool = service.backends.size();
    for (const auto& pool : service.pools) largest_pool = std::max(largest_pool, pool.backends.size());
    if (config.maglev_size < 100 * largest_pool)
      r.fail(members, "tables.maglev_size " + std::to_string(config.maglev_size) +
                          " is below 100 x the service's " + std::to_string(largest_pool) +
                          " backends");

    if (service.dpi == Dpi::rtsp || service.dpi == Dpi::ftp) {
      const Protocol related_protocol = service.dpi == Dpi::rtsp ? Protocol::udp : Protocol::tcp;
      auto [other, fresh] = related.emplace(std::make_pair(service.vip, related_protocol), service.name);
      if (!fresh)
        r.fail(r.get("dpi"), "service '" + other->second + "' already claims " +
                                 to_string(related_protocol) + " flows related to VIP " +
                                 format_ip(service.vip) + ": one rtsp and one ftp service per VIP");
    }
    config.services.push_back(std::move(service));
  }
}

Config read(libconfig::Config& file, const std::string& source) {
  Config config;
  config.source = source;
  GroupReader top(file.getRoot(), source,
                  {"workers", "eal", "log_level", "tables", "neighbours", "ports", "backends",
                   "services"});
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
    GroupReader tables(top.get("tables"), source,
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
    GroupReader neighbours(top.get("neighbours"), source, {"refresh", "retry", "attempts"});
    config.neighbours.refresh_s =
        static_cast<std::uint32_t>(neighbours.integer("refresh", 1, 86400, config.neighbours.refresh_s));
    config.neighbours.retry_ms =
        static_cast<std::uint32_t>(neighbours.integer("retry", 10, 60000, config.neighbours.retry_ms));
    config.neighbours.attempts =
        static_cast<std::uint32_t>(neighbours.integer("attempts", 1, 100, config.neighbours.attempts));
  }
  std::map<std::string, std::size_t> port_names, backend_names;
  read_ports(top, source, config, port_names);
  read_backends(top, source, config, port_names, backend_names);
  read_services(top, source, config, backend_names);
  return config;
}

// libconfig throws its own exceptions for anything GroupReader did not foresee: still name
// the setting rather than abort.
Config read_checked(libconfig::Config& file, const std::string& source) {
  try {
    return read(file, source);
  } catch (const libconfig::SettingException& e) {
    throw ConfigError(source + ": " + e.getPath() + ": " + e.what());
  }
}

}  // namespace

Config load_config_file(const std::string& path) {
  libconfig::Config file;
  try {
    file.readFile(path.c_str());
  } catch (const libconfig::FileIOException&) {
    throw ConfigError(path + ": cannot read the file");
  } catch (const libconfig::ParseException& e) {
    throw ConfigError(std::string(e.getFile() ? e.getFile() : path.c_str()) + ":" +
                      std::to_string(e.getLine()) + ": syntax error: " + e.getError());
  }
  return read_checked(file, path);
}

Config load_config_text(const std::string& text, const std::string& name) {
  libconfig::Config file;
  try {
    file.readString(text);
  } catch (const libconfig::ParseException& e) {
    throw ConfigError(name + ":" + std::to_string(e.getLine()) + ": syntax error: " + e.getError());
  }
  return read_checked(file, name);
}

bool is_prime(std::uint32_t n) {
  if (n < 2) return false;
  for (std::uint32_t d = 2; d <= n / d; ++d)
    if (n % d == 0) return false;
  return true;
}

const char* to_string(Protocol protocol) { return protocol == Protocol::tcp ? "tcp" : "udp"; }
const char* to_string(Scheduler scheduler) {
  switch (scheduler) {
    case Scheduler::maglev: return "maglev";
    case Scheduler::source_hash: return "source-hash";
    case Scheduler::least_sessions: return "least-sessions";
  }
  return "?";
}
const char* to_string(Dpi dpi) {
  switch (dpi) {
    case Dpi::none: return "none";
    case Dpi::sip: return "sip";
    case Dpi::rtsp: return "rtsp";
    case Dpi::ftp: return "ftp";
  }
  return "?";
}
const char* to_string(Forwarding) { return "dsr"; }

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
    for (const auto& a : port.addresses) out << "  " << format_ip(a);
    out << '\n';
  }
  out << "backends:\n";
  for (const auto& backend : config.backends)
    out << "  " << backend.name << "  " << format_ip(backend.address) << "  mac "
        << (backend.mac ? format_mac(*backend.mac)
                        : std::string(parsers::is_ipv4_mapped(backend.address) ? "(by ARP)" : "(by ND)"))
        << "  via " << config.ports[backend.port].name << '\n';
  out << "services:\n";
  for (const auto& service : config.services) {
    out << "  " << service.name << "  " << format_ip(service.vip) << ":" << service.port << "/"
        << to_string(service.protocol) << "  scheduler " << to_string(service.scheduler)
        << "  forwarding " << to_string(service.forwarding) << "  idle " << service.idle_timeout_s
        << "s";
    if (service.protocol == Protocol::tcp) out << "  fin " << service.fin_timeout_s << "s";
    out << "  dpi " << to_string(service.dpi);
    if (service.dpi == Dpi::sip && service.protocol == Protocol::udp)
      out << " (calls by Call-ID, session " << service.session_timeout_s << "s, linger "
          << service.linger_s << "s)";
    if (service.dpi == Dpi::sip && service.protocol == Protocol::tcp)
      out << " (over TCP: per connection)";
    if (service.dpi == Dpi::rtsp)
      out << " (RTP/RTCP follow SETUP, session " << service.session_timeout_s << "s)";
    if (service.dpi == Dpi::ftp)
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

namespace tether {
namespace {

bool same_port(const PortConfig& a, const PortConfig& b) {
  return a.name == b.name && a.device == b.device && a.mac == b.mac && a.addresses == b.addresses &&
         a.mbufs == b.mbufs;
}

// Where each of `desired`'s live entries goes in the merged list: the index of the running
// entry with its name, or a new index after all running ones.
template <typename Entry>
std::vector<std::size_t> place_by_name(const std::vector<Entry>& running, const std::vector<Entry>& desired,
                                       std::size_t limit, const char* what) {
  std::vector<std::size_t> place(desired.size(), SIZE_MAX);
  std::size_t next = running.size();
  for (std::size_t d = 0; d < desired.size(); ++d) {
    if (desired[d].removed) continue;
    for (std::size_t r = 0; r < running.size(); ++r)
      if (running[r].name == desired[d].name) place[d] = r;
    if (place[d] == SIZE_MAX) place[d] = next++;
  }
  if (next > limit)
    throw ConfigError(std::string("too many ") + what + " since start (" + std::to_string(next) +
                      ", removed ones included; at most " + std::to_string(limit) +
                      "): restart tetherd to apply");
  return place;
}

}  // namespace

Config merge_running(const Config& running, const Config& desired) {
  const auto restart_only = [&](bool same, const char* what) {
    if (!same) throw ConfigError(std::string(what) + " changed: restart tetherd to apply it");
  };
  restart_only(running.workers == desired.workers, "workers");
  restart_only(running.eal_args == desired.eal_args, "eal");
  restart_only(running.flows_per_worker == desired.flows_per_worker &&
                   running.maglev_size == desired.maglev_size &&
                   running.mbufs_per_port == desired.mbufs_per_port &&
                   running.mbuf_data_size == desired.mbuf_data_size &&
                   running.sessions == desired.sessions &&
                   running.dpi_streams_per_worker == desired.dpi_streams_per_worker &&
                   running.dpi_sessions_per_worker == desired.dpi_sessions_per_worker,
               "tables");
  restart_only(std::equal(running.ports.begin(), running.ports.end(), desired.ports.begin(),
                          desired.ports.end(), same_port),
               "ports");

  Config merged = desired;
  const auto backend_place =
      place_by_name(running.backends, desired.backends, dataplane::kMaxBackends, "backends");
  const auto service_place = place_by_name(running.services, desired.services,
                                           dataplane::kMaxServices, "services");

  std::size_t backends = running.backends.size(), services = running.services.size();
  for (auto p : backend_place) if (p != SIZE_MAX) backends = std::max(backends, p + 1);
  for (auto p : service_place) if (p != SIZE_MAX) services = std::max(services, p + 1);

  merged.backends.assign(backends, BackendConfig{});
  for (std::size_t r = 0; r < running.backends.size(); ++r) {
    merged.backends[r] = running.backends[r];
    merged.backends[r].removed = true;  // unless the desired list has it
  }
  for (std::size_t d = 0; d < desired.backends.size(); ++d)
    if (backend_place[d] != SIZE_MAX) merged.backends[backend_place[d]] = desired.backends[d];

  const auto remap = [&](std::vector<ServiceBackend>& members) {
    for (auto& member : members) member.backend = backend_place[member.backend];
  };
  merged.services.assign(services, ServiceConfig{});
  for (std::size_t r = 0; r < running.services.size(); ++r) {
    ServiceConfig gone = running.services[r];
    gone.removed = true;
    gone.backends.clear();
    gone.pools.clear();
    gone.rules.clear();
    gone.health_check.reset();
    merged.services[r] = std::move(gone);
  }
  for (std::size_t d = 0; d < desired.services.size(); ++d) {
    if (service_place[d] == SIZE_MAX) continue;
    ServiceConfig service = desired.services[d];
    remap(service.backends);
    for (auto& pool : service.pools) remap(pool.backends);
    merged.services[service_place[d]] = std::move(service);
  }
  return merged;
}

}  // namespace tether
