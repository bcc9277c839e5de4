#include <algorithm>
#include <bitset>
#include <variant>

#include "control/config.hpp"
#include "dataplane/port.hpp"

namespace tether {
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

}  // namespace tether
