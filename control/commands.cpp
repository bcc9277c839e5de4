#include "control/commands.hpp"

#include <rte_cycles.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <sstream>
#include <thread>

#include "control/cli_server.hpp"
#include "control/listing_filter.hpp"
#include "control/log.hpp"
#include "control/prometheus.hpp"
#include "control/telemetry.hpp"

namespace tether {
namespace {

// How long `show flows` waits for the workers. A running worker answers within its next
// few loops; one that has not answered by then is reported rather than waited for. Workers
// stop walking a little earlier, so a busy one with a huge table still answers in time.
constexpr std::chrono::milliseconds kFlowSampleWait{200};
constexpr std::uint64_t kFlowSampleWalkMs = 150;

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string error(const std::string& message) { return "{\"error\":" + json_string(message) + "}"; }

int backend_named(const Config& config, const std::string& name) {
  for (std::size_t b = 0; b < config.backends.size(); ++b)
    if (!config.backends[b].removed && config.backends[b].name == name) return static_cast<int>(b);
  return -1;
}

ServiceConfig* service_named(Config& config, const std::string& name) {
  for (auto& service : config.services)
    if (!service.removed && service.name == name) return &service;
  return nullptr;
}

std::string ok(const ControlState& state) {
  return "{\"ok\":true,\"snapshot_generation\":" + std::to_string(state.publisher->generation()) + "}";
}

std::string show_services(const ControlState& state) {
  std::ostringstream out;
  out << "{\"services\":[";
  bool first = true;
  for (std::size_t s = 0; s < state.config.services.size(); ++s) {
    const ServiceConfig& service = state.config.services[s];
    if (service.removed) continue;
    out << (first ? "" : ",") << "{\"name\":" << json_string(service.name)
        << ",\"vip\":" << json_string(format_ip(service.vip)) << ",\"port\":" << service.port
        << ",\"protocol\":\"" << to_string(service.protocol) << "\",\"scheduler\":\""
        << to_string(service.scheduler) << "\",\"dpi\":\"" << to_string(service.dpi)
        << "\",\"backends\":[";
    for (std::size_t m = 0; m < service.backends.size(); ++m) {
      const ServiceBackend& member = service.backends[m];
      out << (m ? "," : "") << "{\"name\":" << json_string(state.config.backends[member.backend].name)
          << ",\"weight\":" << member.weight << ",\"state\":\""
          << dataplane::to_string(state.effective(member.backend)) << "\"}";
    }
    out << "]}";
    first = false;
  }
  out << "]}";
  return out.str();
}

std::string show_backends(const ControlState& state) {
  const Totals totals = state.totals();
  std::ostringstream out;
  out << "{\"backends\":[";
  bool first = true;
  for (std::size_t b = 0; b < state.config.backends.size(); ++b) {
    const BackendConfig& backend = state.config.backends[b];
    if (backend.removed) continue;
    const auto& c = totals.backends[b];
    out << (first ? "" : ",") << "{\"name\":" << json_string(backend.name)
        << ",\"address\":" << json_string(format_ip(backend.address))
        << ",\"mac\":"
        << (state.neighbours->resolved(b) ? json_string(format_mac(state.neighbours->mac(b))) : "null")
        << ",\"mac_source\":\"" << state.neighbours->source(b) << "\",\"mac_age_ms\":"
        << state.neighbours->age_ms(b, rte_rdtsc()) << ",\"state\":\""
        << dataplane::to_string(state.effective(b)) << "\",\"admin\":\""
        << dataplane::to_string(state.states[b]) << "\",\"healthy\":"
        << (state.health == nullptr || state.health->healthy(b) ? "true" : "false")
        << ",\"live_calls\":"
        << state.sessions->live_calls(static_cast<std::uint16_t>(b)) << ",\"packets\":" << c.packets
        << ",\"bytes\":" << c.bytes << ",\"flows\":" << c.flows << ",\"sessions\":" << c.sessions
        << "}";
    first = false;
  }
  out << "]}";
  return out.str();
}

std::string show_workers(const ControlState& state) {
  std::ostringstream out;
  out << "{\"workers\":[";
  const auto& workers = *state.workers;
  for (std::size_t w = 0; w < workers.size(); ++w) {
    const auto& c = workers[w]->counters();
    out << (w ? "," : "") << "{\"worker\":" << w << ",\"rx_packets\":" << c.rx_packets
        << ",\"tx_packets\":" << c.tx_packets << ",\"forwarded\":" << c.forwarded
        << ",\"busy_polls\":" << c.busy_polls << ",\"idle_polls\":" << c.idle_polls
        << ",\"loop_cycles\":" << c.loop_cycles << ",\"busy_cycles\":" << c.busy_cycles
        << ",\"flows\":" << workers[w]->flow_count() << "}";
  }
  out << "],\"snapshot_generation\":" << state.publisher->generation()
      << ",\"snapshots_live\":" << state.publisher->live_count() << "}";
  return out.str();
}

std::string bad_weight(const std::string& text) {
  return error("weight must be a number from 0 to " + std::to_string(kMaxWeight) +
               " in plain decimal digits, not '" + text.substr(0, 32) + "'");
}

// Applies a changed copy of the running configuration.
std::string adopt(ControlState& state, const Config& desired) {
  try {
    state.adopt(desired);
  } catch (const ConfigError& e) {
    return error(e.what());
  }
  return ok(state);
}

// backend add NAME ADDRESS SERVICE [weight W] [mac MAC] [port PORT]
std::string add_backend(ControlState& state, const std::vector<std::string>& w) {
  static const std::string usage = "usage: backend add NAME ADDRESS SERVICE [weight W] [mac MAC] [port PORT]";
  if (w.size() < 5 || (w.size() - 5) % 2 != 0) return error(usage);
  Config desired = state.config;
  const std::string& name = w[2];
  if (!is_valid_name(name)) return error("backend name '" + name + "' must be 1 to 32 letters, digits, '.', '_', '-' or ':'");
  const auto address = parse_ip(w[3]);
  if (!address) return error("'" + w[3] + "' is not an IP address");
  ServiceConfig* service = service_named(desired, w[4]);
  if (service == nullptr) return error("no service named '" + w[4] + "'");
  std::uint32_t weight = 1;
  std::optional<MacBytes> mac;
  std::optional<std::size_t> port;
  for (std::size_t i = 5; i < w.size(); i += 2) {
    if (w[i] == "weight") {
      const auto parsed = parse_weight(w[i + 1]);
      if (!parsed) return bad_weight(w[i + 1]);
      weight = *parsed;
    } else if (w[i] == "mac") {
      mac = parse_mac(w[i + 1]);
      if (!mac) return error("'" + w[i + 1] + "' is not a MAC address (like 02:00:00:00:00:01)");
    } else if (w[i] == "port") {
      for (std::size_t p = 0; p < desired.ports.size(); ++p)
        if (desired.ports[p].name == w[i + 1]) port = p;
      if (!port) return error("no port named '" + w[i + 1] + "'");
    } else {
      return error(usage);
    }
  }
  int backend = backend_named(desired, name);
  if (backend >= 0) {  // an existing backend joins another service
    const BackendConfig& existing = desired.backends[static_cast<std::size_t>(backend)];
    if (existing.address != *address || (mac && existing.mac != mac) || (port && existing.port != *port))
      return error("backend '" + name + "' exists with another address, MAC or port");
    for (const auto& member : service->backends)
      if (member.backend == static_cast<std::size_t>(backend))
        return error("backend '" + name + "' is in service '" + service->name + "' already");
  } else {
    if (!port && desired.ports.size() != 1) return error("backend '" + name + "' needs 'port' when there are several ports");
    // Its address, MAC and the service's weights and table size are checked with the rest
    // of the configuration, by ControlState::adopt.
    desired.backends.push_back(BackendConfig{name, *address, mac, port.value_or(0)});
    backend = static_cast<int>(desired.backends.size() - 1);
  }
  service->backends.push_back({static_cast<std::size_t>(backend), weight});
  TETHER_LOG(info, "backend %s: added to service %s with weight %u by command", name.c_str(),
             service->name.c_str(), weight);
  return adopt(state, desired);
}

// backend remove NAME [SERVICE]: out of one service, or out of all and gone.
std::string remove_backend(ControlState& state, const std::vector<std::string>& w) {
  if (w.size() < 3 || w.size() > 4) return error("usage: backend remove NAME [SERVICE]");
  Config desired = state.config;
  const int found = backend_named(desired, w[2]);
  if (found < 0) return error("no backend named '" + w[2] + "'");
  const auto backend = static_cast<std::size_t>(found);
  if (w.size() == 4 && service_named(desired, w[3]) == nullptr) return error("no service named '" + w[3] + "'");
  unsigned left_services = 0;
  for (auto& service : desired.services) {
    if (service.removed || (w.size() == 4 && service.name != w[3])) continue;
    auto drop_from = [&](std::vector<ServiceBackend>& members) {
      const auto before = members.size();
      std::erase_if(members, [&](const ServiceBackend& m) { return m.backend == backend; });
      return members.size() != before;
    };
    bool member = drop_from(service.backends);
    for (auto& pool : service.pools) member |= drop_from(pool.backends);
    if (!member) continue;
    ++left_services;
    if (service.backends.empty() ||
        std::any_of(service.pools.begin(), service.pools.end(), [](const PoolConfig& p) { return p.backends.empty(); }))
      return error("removing '" + w[2] + "' would leave service '" + service.name +
                   "' or one of its pools without backends");
  }
  if (w.size() == 4 && left_services == 0) return error("backend '" + w[2] + "' is not in service '" + w[3] + "'");
  if (w.size() == 3) desired.backends[backend].removed = true;
  TETHER_LOG(info, "backend %s: removed from %s by command", w[2].c_str(),
             w.size() == 4 ? ("service " + w[3]).c_str() : "every service");
  return adopt(state, desired);
}

std::string reload(ControlState& state) {
  Config desired;
  try {
    desired = load_config_file(state.config_path);
  } catch (const ConfigError& e) {
    TETHER_LOG(warning, "reload refused: %s", e.what());
    return error(e.what());
  }
  auto live_names = [](const Config& config) {
    std::vector<std::string> names;
    for (const auto& b : config.backends) if (!b.removed) names.push_back(b.name);
    return names;
  };
  const auto before = live_names(state.config);
  const std::string answer = adopt(state, desired);
  if (answer.rfind("{\"error\"", 0) == 0) {
    TETHER_LOG(warning, "reload refused: %s", answer.c_str());
    return answer;
  }
  const auto after = live_names(state.config);
  // Names in `names` but not in `other`, as a JSON array.
  auto missing_from = [](const std::vector<std::string>& names, const std::vector<std::string>& other) {
    std::ostringstream out;
    out << '[';
    bool first = true;
    for (const auto& name : names)
      if (std::find(other.begin(), other.end(), name) == other.end()) {
        out << (first ? "" : ",") << json_string(name);
        first = false;
      }
    out << ']';
    return out.str();
  };
  TETHER_LOG(info, "reloaded %s: %zu backend(s), snapshot %llu", state.config_path.c_str(), after.size(),
             static_cast<unsigned long long>(state.publisher->generation()));
  std::ostringstream out;
  out << "{\"ok\":true,\"snapshot_generation\":" << state.publisher->generation()
      << ",\"backends_added\":" << missing_from(after, before)
      << ",\"backends_removed\":" << missing_from(before, after) << "}";
  return out.str();
}

// An index past the configuration's: added by a later snapshot.
std::string unnamed(std::uint16_t index) {
  std::string text(1, '#');
  return text.append(std::to_string(index));
}

std::string name_of_service(const ControlState& state, std::uint16_t index) {
  return index < state.config.services.size() ? state.config.services[index].name
                                              : unnamed(index);
}

std::string name_of_backend(const ControlState& state, std::uint16_t index) {
  return index < state.config.backends.size() ? state.config.backends[index].name
                                              : unnamed(index);
}

std::uint64_t milliseconds_until(const ControlState& state, std::uint64_t deadline_tsc,
                                 std::uint64_t now_tsc) {
  return deadline_tsc > now_tsc ? (deadline_tsc - now_tsc) * 1000 / state.tsc_hz : 0;
}

std::string show_sessions(const ControlState& state, const ListingFilter& filter) {
  const std::uint64_t now = rte_rdtsc();
  std::uint64_t total = 0;
  std::uint64_t matched = 0;
  std::ostringstream rows;
  state.sessions->for_each_live(now, [&](const dataplane::SessionEntry& entry) {
    ++total;
    if (!filter.admits(entry) || matched++ >= filter.max_entries) return;
    const dataplane::SessionKey& key = entry.key;
    rows << (matched > 1 ? "," : "") << "{\"kind\":\"" << dataplane::to_string(key.kind)
         << "\",\"protocol\":\"" << protocol_name(key.kind)
         << "\",\"service\":" << json_string(name_of_service(state, key.service))
         << ",\"backend\":" << json_string(name_of_backend(state, entry.route.backend))
         << ",\"expires_in_ms\":" << milliseconds_until(state, entry.deadline, now);
    if (key.kind == dataplane::SessionKind::sip_call) {
      char digest[17];
      std::snprintf(digest, sizeof digest, "%016" PRIx64, key.digest);
      rows << ",\"call_id_digest\":\"" << digest << "\"";
    } else {
      rows << ",\"client\":" << json_string(format_ip(key.address));
      if (key.kind == dataplane::SessionKind::rtp_expectation) rows << ",\"client_port\":" << key.port;
    }
    rows << "}";
  });
  return "{\"sessions\":[" + rows.str() + "],\"matched\":" + std::to_string(matched) +
         ",\"total\":" + std::to_string(total) +
         ",\"truncated\":" + (matched > filter.max_entries ? "true" : "false") + "}";
}

// Asks every worker (or the one filtered) for a sample of its flow table and waits, bounded,
// for the answers; dataplane/flow_sample.hpp says why an answer that comes late is harmless.
std::string show_flows(ControlState& state, const ListingFilter& filter) {
  enum class Answer { waiting, answered, busy };
  struct Asked {
    unsigned worker;
    dataplane::FlowSampleMailbox* mailbox;
    std::uint64_t generation;
    Answer answer;
  };
  dataplane::FlowSampleRequest request;
  request.limit = filter.max_entries;
  if (filter.service_index) request.service = *filter.service_index;
  if (filter.backend_index) request.backend = *filter.backend_index;
  request.deadline_tsc = rte_rdtsc() + state.tsc_hz * kFlowSampleWalkMs / 1000;

  std::vector<Asked> asked;
  const auto& workers = *state.workers;
  for (unsigned w = 0; w < workers.size(); ++w) {
    if (filter.worker_index && *filter.worker_index != w) continue;
    dataplane::FlowSampleMailbox& mailbox = workers[w]->flow_samples();
    // Still walking for a request nobody waits for any more: its buffer is not ours yet.
    if (!mailbox.idle()) asked.push_back({w, &mailbox, 0, Answer::busy});
    else asked.push_back({w, &mailbox, mailbox.ask(request), Answer::waiting});
  }
  const auto give_up = std::chrono::steady_clock::now() + kFlowSampleWait;
  for (bool waiting = true; waiting;) {
    waiting = false;
    for (Asked& a : asked)
      if (a.answer == Answer::waiting) {
        if (a.mailbox->answered(a.generation)) a.answer = Answer::answered;
        else waiting = true;
      }
    if (!waiting || std::chrono::steady_clock::now() >= give_up) break;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }

  const std::uint64_t now = rte_rdtsc();
  std::ostringstream rows;
  std::ostringstream answers;
  std::uint32_t sampled = 0;
  bool truncated = false;
  for (const Asked& a : asked) {
    const char* status = a.answer == Answer::answered ? "answered"
                         : a.answer == Answer::busy   ? "busy"
                                                      : "no answer";
    answers << (&a == &asked.front() ? "" : ",") << "{\"worker\":" << a.worker
            << ",\"status\":\"" << status << "\",\"flows_in_table\":"
            << workers[a.worker]->flow_count();
    if (a.answer != Answer::answered) {
      truncated = true;
      answers << "}";
      continue;
    }
    const auto samples = a.mailbox->samples();
    answers << ",\"sampled\":" << samples.size()
            << ",\"walked_all\":" << (a.mailbox->walked_all() ? "true" : "false") << "}";
    if (!a.mailbox->walked_all()) truncated = true;
    for (const dataplane::FlowSample& flow : samples) {
      if (sampled == filter.max_entries) {
        truncated = true;
        break;
      }
      rows << (sampled++ ? "," : "") << "{\"worker\":" << a.worker << ",\"protocol\":\""
           << (flow.key.ip_proto == parsers::kProtoTcp ? "tcp" : "udp")
           << "\",\"client\":" << json_string(format_ip(flow.key.src))
           << ",\"client_port\":" << flow.key.src_port
           << ",\"vip\":" << json_string(format_ip(flow.key.dst))
           << ",\"port\":" << flow.key.dst_port
           << ",\"service\":" << json_string(name_of_service(state, flow.service))
           << ",\"backend\":" << json_string(name_of_backend(state, flow.backend))
           << ",\"expires_in_ms\":" << milliseconds_until(state, flow.deadline_tsc, now)
           << ",\"closing\":" << (flow.closing ? "true" : "false") << "}";
    }
  }
  return "{\"flows\":[" + rows.str() + "],\"workers\":[" + answers.str() +
         "],\"sampled\":" + std::to_string(sampled) +
         ",\"truncated\":" + (truncated ? "true" : "false") + "}";
}

std::string change_backend(ControlState& state, const std::vector<std::string>& w) {
  // backend weight NAME WEIGHT [SERVICE] | backend drain|enable|disable NAME
  if (w.size() >= 2 && w[1] == "add") return add_backend(state, w);
  if (w.size() >= 2 && w[1] == "remove") return remove_backend(state, w);
  if (w.size() < 3) return error("usage: backend weight NAME WEIGHT [SERVICE] | backend drain|enable|disable NAME");
  const int b = backend_named(state.config, w[2]);
  if (b < 0) return error("no backend named '" + w[2] + "'");
  const auto backend = static_cast<std::size_t>(b);
  if (w[1] == "weight") {
    if (w.size() < 4 || w.size() > 5) return error("usage: backend weight NAME WEIGHT [SERVICE]");
    const auto weight = parse_weight(w[3]);
    if (!weight) return bad_weight(w[3]);
    Config desired = state.config;
    unsigned changed = 0;
    for (auto& service : desired.services) {
      if (service.removed || (w.size() == 5 && service.name != w[4])) continue;
      for (auto& member : service.backends)
        if (member.backend == backend) {
          member.weight = *weight;
          ++changed;
        }
    }
    if (changed == 0) return error("backend '" + w[2] + "' is in no such service");
    try {
      validate(desired, state.device_macs());  // a file's rules: a service keeps a weight above 0
    } catch (const ConfigError& e) {
      return error(e.what());
    }
    state.config = std::move(desired);
    TETHER_LOG(info, "backend %s: weight %u in %u service(s)", w[2].c_str(), *weight, changed);
  } else if (w[1] == "drain" || w[1] == "enable" || w[1] == "disable") {
    if (w.size() != 3) return error("usage: backend " + w[1] + " NAME");
    state.states[backend] = w[1] == "drain"    ? dataplane::BackendState::draining
                            : w[1] == "enable" ? dataplane::BackendState::up
                                               : dataplane::BackendState::down;
    TETHER_LOG(info, "backend %s: %s by command", w[2].c_str(), dataplane::to_string(state.states[backend]));
  } else {
    return error("unknown backend command '" + w[1] + "'");
  }
  state.republish();
  return ok(state);
}

}  // namespace

std::vector<MacBytes> ControlState::device_macs() const {
  std::vector<MacBytes> macs;
  for (const auto& port : ports) macs.push_back(port.mac);
  return macs;
}

Totals ControlState::totals() const {
  return add_up(*workers, config.backends.size(), *sessions, *expired);
}

dataplane::BackendState ControlState::effective(std::size_t backend) const {
  if (config.backends[backend].removed) return dataplane::BackendState::down;
  if (health != nullptr && !health->healthy(backend)) return dataplane::BackendState::down;
  if (!neighbours->resolved(backend)) return dataplane::BackendState::down;
  return states[backend];
}

std::unique_ptr<dataplane::Snapshot> ControlState::build() const {
  std::vector<dataplane::BackendState> now(states.size());
  std::vector<MacBytes> macs(states.size());
  for (std::size_t b = 0; b < states.size(); ++b) {
    now[b] = effective(b);
    macs[b] = neighbours->mac(b);
  }
  return build_snapshot(config, ports, tsc_hz, config.workers, now, macs);
}

void ControlState::republish() { publisher->publish(build()); }

void ControlState::adopt(const Config& desired) {
  Config merged = merge_running(config, desired);
  validate(merged, device_macs());  // a command's change meets the rules a file must
  for (std::size_t b = 0; b < merged.backends.size(); ++b)
    if (b >= states.size() || (config.backends[b].removed && !merged.backends[b].removed)) {
      states.resize(std::max(states.size(), b + 1), dataplane::BackendState::up);
      states[b] = dataplane::BackendState::up;  // new, or back after a removal
    }
  config = std::move(merged);
  neighbours->update(config);
  if (health != nullptr) health->update();
  set_telemetry_backends(config);
  republish();
}

std::string run_command(ControlState& state, const std::string& line) {
  const std::vector<std::string> w = words(line);
  if (w.empty()) return error("empty command; try 'help'");
  if (w[0] == "help")
    return "{\"commands\":[\"show services\",\"show backends\",\"show counters\",\"show workers\","
           "\"show sessions [service NAME] [protocol sip|rtsp|ftp] [backend NAME] [limit N]\","
           "\"show flows [worker N] [service NAME] [backend NAME] [limit N]\","
           "\"backend weight NAME WEIGHT [SERVICE]\",\"backend drain NAME\",\"backend enable NAME\","
           "\"backend disable NAME\",\"backend add NAME ADDRESS SERVICE [weight W] [mac MAC] [port PORT]\","
           "\"backend remove NAME [SERVICE]\",\"reload\",\"metrics\"]}";
  if (w[0] == "show" && w.size() >= 2 && (w[1] == "sessions" || w[1] == "flows")) {
    const bool sessions = w[1] == "sessions";
    const unsigned allowed = sessions ? ListingFilter::service | ListingFilter::protocol |
                                            ListingFilter::backend | ListingFilter::limit
                                      : ListingFilter::worker | ListingFilter::service |
                                            ListingFilter::backend | ListingFilter::limit;
    auto parsed = parse_listing_filter(std::span(w).subspan(2), allowed, state.config);
    if (const auto* wrong = std::get_if<std::string>(&parsed)) return error(*wrong);
    const auto& filter = std::get<ListingFilter>(parsed);
    return sessions ? show_sessions(state, filter) : show_flows(state, filter);
  }
  if (w[0] == "show" && w.size() == 2) {
    if (w[1] == "services") return show_services(state);
    if (w[1] == "backends") return show_backends(state);
    if (w[1] == "counters") return counters_json(state.config, state.totals());
    if (w[1] == "workers") return show_workers(state);
  }
  if (w[0] == "backend") return change_backend(state, w);
  if (w[0] == "reload" && w.size() == 1) return reload(state);
  if (w[0] == "metrics" && w.size() == 1)
    return "{\"metrics\":" + json_string(prometheus_metrics(state)) + "}";
  return error("unknown command '" + line.substr(0, 64) + "'; try 'help'");
}

}  // namespace tether
