#include "control/config.hpp"

#include "dataplane/limits.hpp"
#include "dataplane/port.hpp"

#include <libconfig.h++>

#include <algorithm>
#include <bitset>
#include <cctype>
#include <climits>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <sstream>
#include <tuple>
#include <variant>

namespace tether {
namespace {

// Bytes a SIP OPTIONS probe takes (about 370 with IPv6 addresses), rounded up.
constexpr std::uint16_t kSipProbeRoom = 512;

using libconfig::Setting;

// An integer literal as the file spells it. Debian's libconfig 1.5 keeps only the low 32 bits
// of a literal without `L` (`4294967296` reads as 0, `4294967297` as 1, `-4294967295` as 1, and
// `0x100000000` as 0) and saturates beyond 64 bits before that, so no range check on its value
// can be trusted: every integer setting is read again from its text.
struct IntegerLiteral {
  std::string text;
  std::optional<long long> value;  // none: beyond 64 bits
};

// The file as read, and the exact value of each of its integer settings.
struct Document {
  std::string source;
  std::map<const Setting*, IntegerLiteral> integers;
};

// libconfig's include depth limit (scanctx.h MAX_INCLUDE_DEPTH).
constexpr int kMaxIncludeDepth = 10;

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '*'; }
bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '*';
}
bool is_number_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '-';
}

// The value of one number token, or nothing for a float. libconfig's scanner (lib/scanner.l)
// tells them apart so: a hex integer is `0x` digits, a decimal one an optional sign and
// digits, either with an optional `L` or `LL`; anything else (a `.`, or an exponent) is a
// float. The token comes from a file libconfig parsed without error, so it is one of these.
std::optional<IntegerLiteral> integer_literal(std::string_view token) {
  std::string_view digits = token;
  while (!digits.empty() && digits.back() == 'L') digits.remove_suffix(1);
  bool negative = false;
  unsigned base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  } else if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty()) return std::nullopt;
  unsigned long long magnitude = 0;
  bool overflow = false;
  for (char c : digits) {
    unsigned digit;
    if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F') digit = static_cast<unsigned>(c - 'A' + 10);
    else return std::nullopt;  // a float: `1e3`, `1.5`
    if (magnitude > (ULLONG_MAX - digit) / base) overflow = true;
    else magnitude = magnitude * base + digit;
  }
  IntegerLiteral literal{std::string(token), std::nullopt};
  if (!overflow && magnitude <= static_cast<unsigned long long>(LLONG_MAX))
    literal.value = negative ? -static_cast<long long>(magnitude) : static_cast<long long>(magnitude);
  else if (!overflow && negative && magnitude == static_cast<unsigned long long>(LLONG_MAX) + 1)
    literal.value = LLONG_MIN;
  return literal;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the file");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Appends the integer literals of `text`, in the order libconfig's scanner meets them:
// comments and strings skipped, `@include` files read in place (relative to the working
// directory, as libconfig does without an include directory).
void scan_integer_literals(std::string_view text, const std::string& name, int depth,
                           std::vector<IntegerLiteral>& out) {
  std::size_t i = 0;
  bool line_start = true;
  const auto at = [&](std::size_t k) { return k < text.size() ? text[k] : '\0'; };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '\n') {
      line_start = true;
      ++i;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\f') {
      line_start &= c == ' ' || c == '\t';  // flex's `^[ \t]*@include`
      ++i;
      continue;
    }
    const bool at_line_start = line_start;
    line_start = false;
    if (c == '@' && at_line_start && text.substr(i, 8) == "@include") {
      std::size_t k = i + 8;
      while (at(k) == ' ' || at(k) == '\t') ++k;
      if (k > i + 8 && at(k) == '"') {
        std::string file;
        for (++k; k < text.size() && text[k] != '"'; ++k) {
          if (text[k] == '\\' && (at(k + 1) == '\\' || at(k + 1) == '"')) ++k;
          file += text[k];
        }
        if (depth >= kMaxIncludeDepth) throw ConfigError(name + ": includes nest too deep");
        scan_integer_literals(read_whole_file(file), file, depth + 1, out);
        i = k + 1;
        continue;
      }
    }
    if (c == '#' || (c == '/' && at(i + 1) == '/')) {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (c == '/' && at(i + 1) == '*') {
      const std::size_t end = text.find("*/", i + 2);
      i = end == std::string_view::npos ? text.size() : end + 2;
    } else if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;  // `\"` and `\\` stay inside; other escapes are harmless
      ++i;
    } else if (is_name_start(c)) {
      while (i < text.size() && is_name_char(text[i])) ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.') {
      const std::size_t start = i;
      while (i < text.size() && is_number_char(text[i])) {
        // an exponent's sign belongs to the number; any other sign starts the next token
        if ((text[i] == '+' || text[i] == '-') && i > start && text[i - 1] != 'e' && text[i - 1] != 'E') break;
        ++i;
      }
      if (auto literal = integer_literal(text.substr(start, i - start))) out.push_back(std::move(*literal));
    } else {
      ++i;  // punctuation: = : ; , { } ( ) [ ]
    }
  }
}

// Pairs each integer setting, in document order, with its literal and checks that libconfig
// read the same low bits: a disagreement would mean the scan above misread the file.
void pair_integer_literals(const Setting& setting, const std::vector<IntegerLiteral>& literals,
                           std::size_t& next, Document& doc) {
  if (setting.getType() == Setting::TypeInt || setting.getType() == Setting::TypeInt64) {
    if (next == literals.size())
      throw ConfigError(doc.source + ": " + setting.getPath() + ": cannot find this integer in the text");
    const IntegerLiteral& literal = literals[next++];
    const bool agrees =
        !literal.value ||
        (setting.getType() == Setting::TypeInt
             ? static_cast<int>(setting) == static_cast<std::int32_t>(static_cast<std::uint32_t>(*literal.value))
             : static_cast<long long>(setting) == *literal.value);
    if (!agrees)
      throw ConfigError(doc.source + ": " + setting.getPath() + ": cannot read '" + literal.text +
                        "' back from the text");
    doc.integers.emplace(&setting, literal);
    return;
  }
  if (setting.isAggregate())
    for (int i = 0; i < setting.getLength(); ++i) pair_integer_literals(setting[i], literals, next, doc);
}

Document read_integers(const libconfig::Config& file, std::string_view text, const std::string& source) {
  std::vector<IntegerLiteral> literals;
  scan_integer_literals(text, source, 0, literals);
  Document doc{source, {}};
  std::size_t next = 0;
  pair_integer_literals(file.getRoot(), literals, next, doc);
  if (next != literals.size())
    throw ConfigError(source + ": " + std::to_string(literals.size() - next) +
                      " integer(s) in the text that no setting holds");
  return doc;
}

// Reads one group of settings, checking names and types, and turns every problem into a
// ConfigError that names file, line and path.
class GroupReader {
 public:
  GroupReader(const Setting& group, const Document& doc, std::initializer_list<const char*> known)
      : group_(group), doc_(doc) {
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
  // Fails if `found` is a problem, naming the setting it blames.
  void check(const Problem& found) const {
    if (!found) return;
    if (found.setting == nullptr || !has(found.setting)) fail(group_, found.message);
    const Setting& s = get(found.setting);
    if (found.element >= 0 && s.isAggregate() && found.element < s.getLength()) fail(s[found.element], found.message);
    fail(s, found.message);
  }

  std::string where(const Setting& setting) const {
    const char* file = setting.getSourceFile();
    std::string path = setting.getPath();
    return std::string(file ? file : doc_.source) + ":" + std::to_string(setting.getSourceLine()) +
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
    return integer(get(name), min, max);
  }

  // Every integer setting is read here: its value as written (see IntegerLiteral), whatever
  // its size, base or suffix, within min..max.
  long long integer(const Setting& s, long long min, long long max) const {
    if (s.getType() != Setting::TypeInt && s.getType() != Setting::TypeInt64)
      fail(s, "expected an integer");
    const auto literal = doc_.integers.find(&s);
    if (literal == doc_.integers.end()) fail(s, "cannot find this integer in the text");
    const std::optional<long long> value = literal->second.value;
    if (!value || *value < min || *value > max)
      fail(s, (value ? std::to_string(*value) : literal->second.text) + " is out of range " +
                  std::to_string(min) + ".." + std::to_string(max));
    return *value;
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
  const Document& doc_;
};

}  // namespace

bool is_valid_name(const std::string& name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == ':';
  });
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
  // DSR rewrites the destination MAC to the backend's: without a static one, it is asked
  // for by ARP/ND from the port's own address of the same family.
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

void read_ports(const GroupReader& top, const Document& doc, Config& config,
                std::map<std::string, std::size_t>& names) {
  const Setting& ports = top.list("ports");
  if (ports.getLength() == 0) top.fail(ports, "at least one port is required");
  for (int i = 0; i < ports.getLength(); ++i) {
    GroupReader r(ports[i], doc, {"name", "device", "mac", "addresses", "mbufs"});
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
    r.check(port_problem(config, config.ports.size() - 1));
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
      r.fail_group("backend '" + backend.name + "' needs 'port' when there are several ports");
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
  service.dpi = r.choice<SessionProtocol>(
      "dpi", {{"none", SessionProtocol::none}, {"sip", SessionProtocol::sip}, {"rtsp", SessionProtocol::rtsp}, {"ftp", SessionProtocol::ftp}},
      SessionProtocol::none);
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

Config read(libconfig::Config& file, const Document& doc) {
  Config config;
  config.source = doc.source;
  GroupReader top(file.getRoot(), doc,
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

namespace {

// DPDK 22.11's EAL options (lib/eal/common/eal_common_options.c: eal_short_options,
// eal_long_options): whether each takes no value, needs one, or takes one only after `=`.
enum class EalValue : std::uint8_t { none, required, optional };
struct EalOption {
  const char* name;
  char short_name;  // 0: long only
  EalValue value;
};
constexpr EalOption kEalOptions[] = {
    {"allow", 'a', EalValue::required},        {"block", 'b', EalValue::required},
    {nullptr, 'c', EalValue::required},        {nullptr, 's', EalValue::required},
    {nullptr, 'd', EalValue::required},        {"help", 'h', EalValue::none},
    {nullptr, 'l', EalValue::required},        {nullptr, 'S', EalValue::required},
    {nullptr, 'm', EalValue::required},        {nullptr, 'n', EalValue::required},
    {nullptr, 'r', EalValue::required},        {nullptr, 'v', EalValue::none},
    {"base-virtaddr", 0, EalValue::required},  {"create-uio-dev", 0, EalValue::none},
    {"file-prefix", 0, EalValue::required},    {"huge-dir", 0, EalValue::required},
    {"huge-unlink", 0, EalValue::optional},    {"iova-mode", 0, EalValue::required},
    {"lcores", 0, EalValue::required},         {"log-level", 0, EalValue::required},
    {"trace", 0, EalValue::required},          {"trace-dir", 0, EalValue::required},
    {"trace-bufsz", 0, EalValue::required},    {"trace-mode", 0, EalValue::required},
    {"main-lcore", 0, EalValue::required},     {"mbuf-pool-ops-name", 0, EalValue::required},
    {"no-hpet", 0, EalValue::none},            {"no-huge", 0, EalValue::none},
    {"no-pci", 0, EalValue::none},             {"no-shconf", 0, EalValue::none},
    {"in-memory", 0, EalValue::none},          {"proc-type", 0, EalValue::required},
    {"socket-mem", 0, EalValue::required},     {"socket-limit", 0, EalValue::required},
    {"syslog", 0, EalValue::required},         {"vdev", 0, EalValue::required},
    {"vfio-intr", 0, EalValue::required},      {"vfio-vf-token", 0, EalValue::required},
    {"vmware-tsc-map", 0, EalValue::none},     {"legacy-mem", 0, EalValue::none},
    {"single-file-segments", 0, EalValue::none}, {"match-allocations", 0, EalValue::none},
    {"telemetry", 0, EalValue::none},          {"no-telemetry", 0, EalValue::none},
    {"force-max-simd-bitwidth", 0, EalValue::required}, {"huge-worker-stack", 0, EalValue::optional},
};

// One option as getopt_long would return it.
struct EalArgument {
  const EalOption* option;
  std::size_t index;  // of the argument that names it
  std::string value;
  bool has_value;
};

using LcoreSet = std::bitset<1024>;

// "a", "a-b": into `set`. False when it is neither.
bool add_lcore_range(std::string_view text, LcoreSet& set) {
  const auto number = [](std::string_view digits, std::size_t& out) {
    while (!digits.empty() && (digits.front() == ' ' || digits.front() == '\t')) digits.remove_prefix(1);
    while (!digits.empty() && (digits.back() == ' ' || digits.back() == '\t')) digits.remove_suffix(1);
    if (digits.empty() || digits.size() > 4) return false;
    out = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + static_cast<std::size_t>(c - '0');
    }
    return out < LcoreSet().size();
  };
  const std::size_t dash = text.find('-');
  std::size_t first = 0, last = 0;
  if (!number(text.substr(0, dash), first)) return false;
  last = first;
  if (dash != std::string_view::npos && !number(text.substr(dash + 1), last)) return false;
  if (first > last) return false;
  for (std::size_t l = first; l <= last; ++l) set.set(l);
  return true;
}

// -l and -S: "0-3,5".
bool parse_corelist(std::string_view text, LcoreSet& set) {
  if (text.empty()) return false;
  for (std::size_t start = 0;;) {
    const std::size_t comma = text.find(',', start);
    if (!add_lcore_range(text.substr(start, comma - start), set)) return false;
    if (comma == std::string_view::npos) return true;
    start = comma + 1;
  }
}

// -c and -s: a hexadecimal mask.
bool parse_coremask(std::string_view text, LcoreSet& set) {
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
  if (text.empty() || text.size() > LcoreSet().size() / 4) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[text.size() - 1 - i];
    unsigned digit;
    if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') digit = static_cast<unsigned>(c - 'A' + 10);
    else return false;
    for (unsigned bit = 0; bit < 4; ++bit)
      if (digit & (1u << bit)) set.set(i * 4 + bit);
  }
  return true;
}

// --lcores: elements "lcores[@cpus]" separated by commas, where lcores and cpus are a number,
// a range or a parenthesised list of both. Only the lcores count here.
bool parse_lcore_map(std::string_view text, LcoreSet& set) {
  if (text.empty()) return false;
  std::size_t i = 0;
  while (i < text.size()) {
    std::string_view lcores;
    if (text[i] == '(') {
      const std::size_t close = text.find(')', i);
      if (close == std::string_view::npos) return false;
      lcores = text.substr(i + 1, close - i - 1);
      i = close + 1;
    } else {
      const std::size_t end = text.find_first_of("@,", i);
      lcores = text.substr(i, end - i);
      i = end == std::string_view::npos ? text.size() : end;
    }
    if (!parse_corelist(lcores, set)) return false;
    if (i < text.size() && text[i] == '@') {  // the CPUs: skip them, parenthesised or not
      ++i;
      if (i < text.size() && text[i] == '(') {
        const std::size_t close = text.find(')', i);
        if (close == std::string_view::npos) return false;
        i = close + 1;
      } else {
        while (i < text.size() && text[i] != ',') ++i;
      }
    }
    if (i < text.size()) {
      if (text[i] != ',' || i + 1 == text.size()) return false;
      ++i;
    }
  }
  return true;
}

// Reads `args` as getopt_long (GNU, as DPDK calls it) would: long options by their whole
// name or an unambiguous prefix, short options clustered, values attached or in the next word.
std::variant<std::vector<EalArgument>, EalProblem> read_eal_arguments(const std::vector<std::string>& args) {
  std::vector<EalArgument> out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--")
      return EalProblem{i, "'--' ends the EAL's options: DPDK would leave what follows unread"};
    if (arg.size() < 2 || arg[0] != '-')
      return EalProblem{i, "'" + arg + "' is not an option: DPDK would leave it unread (does the option before it take no value?)"};
    if (arg[1] == '-') {
      const std::size_t equals = arg.find('=');
      const std::string_view name = std::string_view(arg).substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
      const EalOption* found = nullptr;
      std::string candidates;
      for (const EalOption& option : kEalOptions) {
        if (option.name == nullptr) continue;
        const std::string_view full = option.name;
        if (full == name) {
          found = &option;
          candidates.clear();
          break;
        }
        if (!name.empty() && full.substr(0, name.size()) == name) {
          candidates += candidates.empty() ? "--" + std::string(full) : ", --" + std::string(full);
          found = found == nullptr ? &option : found;
        }
      }
      if (found == nullptr) return EalProblem{i, "unknown EAL option '" + arg.substr(0, equals) + "'"};
      if (candidates.find(',') != std::string::npos)
        return EalProblem{i, "EAL option '" + arg.substr(0, equals) + "' is ambiguous (" + candidates + ")"};
      EalArgument read{found, i, {}, equals != std::string::npos};
      if (read.has_value) read.value = arg.substr(equals + 1);
      if (found->value == EalValue::none && read.has_value)
        return EalProblem{i, "EAL option '--" + std::string(found->name) + "' takes no value"};
      if (found->value == EalValue::required && !read.has_value) {
        if (i + 1 == args.size())
          return EalProblem{i, "EAL option '--" + std::string(found->name) + "' needs a value"};
        read.value = args[++i];
        read.has_value = true;
      }
      out.push_back(std::move(read));
      continue;
    }
    for (std::size_t j = 1; j < arg.size(); ++j) {
      const EalOption* found = nullptr;
      for (const EalOption& option : kEalOptions)
        if (option.short_name == arg[j]) found = &option;
      if (found == nullptr) return EalProblem{i, "unknown EAL option '-" + std::string(1, arg[j]) + "'"};
      EalArgument read{found, i, {}, false};
      if (found->value != EalValue::none) {
        if (j + 1 < arg.size()) {
          read.value = arg.substr(j + 1);
        } else if (i + 1 < args.size()) {
          read.value = args[++i];
        } else {
          return EalProblem{i, "EAL option '-" + std::string(1, arg[j]) + "' needs a value"};
        }
        read.has_value = true;
        out.push_back(std::move(read));
        break;
      }
      out.push_back(std::move(read));
    }
  }
  return out;
}

bool is(const EalArgument& a, const char* name) { return a.option->name != nullptr && std::string_view(a.option->name) == name; }
bool is(const EalArgument& a, char short_name) { return a.option->short_name == short_name; }
std::string spelling(const EalArgument& a) {
  return a.option->short_name ? std::string("-") + a.option->short_name : std::string("--") + a.option->name;
}

}  // namespace

bool eal_sets_lcores(const std::vector<std::string>& args) {
  const auto read = read_eal_arguments(args);
  if (const auto* options = std::get_if<std::vector<EalArgument>>(&read))
    return std::any_of(options->begin(), options->end(),
                       [](const EalArgument& a) { return is(a, 'c') || is(a, 'l') || is(a, "lcores"); });
  // Unreadable arguments (refused by eal_problem): look for the option's usual spellings.
  return std::any_of(args.begin(), args.end(), [](const std::string& a) {
    return a.rfind("-l", 0) == 0 || a.rfind("-c", 0) == 0 || a.rfind("--lcores", 0) == 0;
  });
}

std::optional<EalProblem> eal_problem(const std::vector<std::string>& args, const Config& config) {
  auto read = read_eal_arguments(args);
  if (auto* wrong = std::get_if<EalProblem>(&read)) return *wrong;
  const auto& options = std::get<std::vector<EalArgument>>(read);

  const PortConfig* pci_port = nullptr;
  for (const auto& port : config.ports)
    if (dataplane::device_argument_flag(port.device) == "-a" && pci_port == nullptr) pci_port = &port;
  const EalArgument* lcores = nullptr;
  const EalArgument* allow = nullptr;
  const EalArgument* block = nullptr;
  const EalArgument* main_lcore = nullptr;
  const EalArgument* service_cores = nullptr;
  LcoreSet chosen, service;
  for (const EalArgument& a : options) {
    const std::string flag = spelling(a);
    if (is(a, 'h')) return EalProblem{a.index, flag + ": DPDK would print its usage and exit"};
    if (is(a, "proc-type") && a.value != "primary")
      return EalProblem{a.index, "--proc-type " + a.value + ": tetherd runs as the primary process"};
    if (is(a, 'a') || is(a, 'b') || is(a, "vdev")) {
      const std::string device = dataplane::device_name(a.value);
      for (const auto& port : config.ports)
        if (dataplane::device_name(port.device) == device)
          return EalProblem{a.index, flag + " " + device + ": port '" + port.name +
                                         "' is this device; tetherd adds it to the EAL arguments itself"};
      if (is(a, 'a')) allow = &a;
      if (is(a, 'b')) block = &a;
    }
    if (is(a, 'c') || is(a, 'l') || is(a, "lcores")) {
      if (lcores != nullptr)
        return EalProblem{a.index, flag + " after " + spelling(*lcores) +
                                       ": give one of -c, -l and --lcores (DPDK ignores all but the first)"};
      lcores = &a;
      const bool readable = is(a, 'c') ? parse_coremask(a.value, chosen)
                            : is(a, 'l') ? parse_corelist(a.value, chosen)
                                         : parse_lcore_map(a.value, chosen);
      if (!readable || chosen.none()) return EalProblem{a.index, flag + " " + a.value + ": not a valid lcore " + (is(a, 'c') ? "mask" : "list")};
    }
    if (is(a, 's') || is(a, 'S')) {
      service_cores = &a;
      if (!(is(a, 's') ? parse_coremask(a.value, service) : parse_corelist(a.value, service)))
        return EalProblem{a.index, flag + " " + a.value + ": not a valid lcore " + (is(a, 's') ? "mask" : "list")};
    }
    if (is(a, "main-lcore")) main_lcore = &a;
  }
  if (block != nullptr && allow != nullptr)
    return EalProblem{block->index, "-b/--block cannot be used together with -a/--allow"};
  if (block != nullptr && pci_port != nullptr)
    return EalProblem{block->index, "-b/--block cannot be used together with the -a tetherd adds for port '" +
                                        pci_port->name + "'"};
  if (lcores == nullptr)  // tetherd's own choice: lcores 0 to workers (see tetherd.cpp)
    for (unsigned l = 0; l <= config.workers; ++l) chosen.set(l);
  const std::string lcores_text = lcores != nullptr ? spelling(*lcores) + " " + lcores->value
                                                    : "tetherd's -l 0-" + std::to_string(config.workers);
  const LcoreSet usable = chosen & ~service;
  const std::size_t needed = std::size_t{config.workers} + 1;
  if (usable.count() < needed)
    return EalProblem{lcores != nullptr ? lcores->index : service_cores->index,
                      lcores_text + " gives " + std::to_string(usable.count()) + " lcore(s)" +
                          (service.any() ? " besides service cores" : "") + "; tetherd needs " +
                          std::to_string(needed) + " (the control thread and " + std::to_string(config.workers) +
                          " worker(s))"};
  if (main_lcore != nullptr) {
    LcoreSet one;
    if (main_lcore->value.find('-') != std::string::npos || !add_lcore_range(main_lcore->value, one))
      return EalProblem{main_lcore->index, "--main-lcore " + main_lcore->value + ": not an lcore number"};
    std::size_t id = 0;
    while (!one.test(id)) ++id;
    if (!usable.test(id))
      return EalProblem{main_lcore->index,
                        "--main-lcore " + main_lcore->value + " is not among the lcores of " + lcores_text};
  }
  return std::nullopt;
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
const char* to_string(SessionProtocol dpi) {
  switch (dpi) {
    case SessionProtocol::none: return "none";
    case SessionProtocol::sip: return "sip";
    case SessionProtocol::rtsp: return "rtsp";
    case SessionProtocol::ftp: return "ftp";
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
