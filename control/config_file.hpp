// The libconfig file as tetherd reads it: every integer setting's exact value (Document), and
// GroupReader, which checks a group's setting names, types and ranges and names file, line and
// path in every error.
#pragma once

#include <libconfig.h++>

#include <algorithm>
#include <climits>
#include <cmath>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "control/config.hpp"

namespace tether {

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

std::string read_whole_file(const std::string& path);
Document read_integers(const libconfig::Config& file, std::string_view text, const std::string& source);

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

  // A duration in seconds, an integer or a float such as 0.25, as whole milliseconds within
  // min_ms..max_ms.
  std::uint32_t milliseconds(const char* name, std::uint32_t min_ms, std::uint32_t max_ms,
                             std::uint32_t fallback_ms) const {
    if (!has(name)) return fallback_ms;
    const Setting& s = get(name);
    const auto range = [&] {
      return " is out of range " + seconds_text(min_ms) + ".." + seconds_text(max_ms) + " seconds";
    };
    if (s.getType() == Setting::TypeFloat) {
      const double seconds = static_cast<double>(s);
      const double ms = seconds * 1000.0;
      if (!(ms >= min_ms && ms <= max_ms)) fail(s, std::to_string(seconds) + range());
      const double whole = std::round(ms);
      if (std::fabs(ms - whole) > 1e-6) fail(s, std::to_string(seconds) + " is not a whole number of milliseconds");
      return static_cast<std::uint32_t>(whole);
    }
    const long long seconds = integer(s, -(LLONG_MAX / 1000), LLONG_MAX / 1000);
    if (seconds * 1000 < min_ms || seconds * 1000 > max_ms) fail(s, std::to_string(seconds) + range());
    return static_cast<std::uint32_t>(seconds * 1000);
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
    if (!parsed) fail(s, not_a_mac(s.c_str()));
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

// control/config_admission.cpp: a service member's max_sessions and max_connections, and,
// once the service's dpi is known, its `admission` group and the capacities' checks.
void read_capacities(const GroupReader& member, ServiceBackend& backend);
void read_admission(const GroupReader& service_reader, const Document& doc, ServiceConfig& service);

}  // namespace tether
