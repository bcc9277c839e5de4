#include "control/commands.hpp"

#include <rte_cycles.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "control/capacity.hpp"
#include "control/listing_filter.hpp"
#include "control/log.hpp"
#include "control/prometheus.hpp"

namespace tether {
namespace {

// Answers keep their keys in the order they are written.
using Json = nlohmann::ordered_json;
// A command's words after its name.
using Args = std::span<const std::string>;

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

// One line of ASCII JSON. An error may quote the command line, which may be any bytes: what is
// not UTF-8 becomes U+FFFD rather than an exception.
std::string text_of(const Json& answer) {
  return answer.dump(-1, ' ', true, Json::error_handler_t::replace);
}

std::string error(const std::string& message) { return text_of({{"error", message}}); }

std::string ok(const ControlState& state) {
  return text_of({{"ok", true}, {"snapshot_generation", state.publisher->generation()}});
}

// The usage line of a command, as `help` lists it (defined with the command table).
std::string usage(std::string_view group, std::string_view name);

std::optional<std::size_t> backend_named(const Config& config, const std::string& name) {
  for (std::size_t b = 0; b < config.backends.size(); ++b)
    if (!config.backends[b].removed && config.backends[b].name == name) return b;
  return std::nullopt;
}

ServiceConfig* service_named(Config& config, const std::string& name) {
  for (auto& service : config.services)
    if (!service.removed && service.name == name) return &service;
  return nullptr;
}

// Admission's counts: admitted, and refused by reason ("refused_full", ...).
template <typename Counts>
Json admission_counts(const Counts& c) {
  Json counts = {{"admitted", c.admitted}};
  for (std::size_t r = 0; r < dataplane::kRefusalReasons; ++r)
    counts[std::string("refused_") + dataplane::to_string(static_cast<dataplane::RefusalReason>(r))] = c.refused[r];
  return counts;
}

std::string show_services(ControlState& state, Args) {
  const Totals totals = state.totals();
  Json services = Json::array();
  for (std::size_t s = 0; s < state.config.services.size(); ++s) {
    const ServiceConfig& service = state.config.services[s];
    if (service.removed) continue;
    Json backends = Json::array();
    for (const ServiceBackend& member : service.backends)
      backends.push_back({{"name", state.config.backends[member.backend].name},
                          {"weight", member.weight},
                          {"state", dataplane::to_string(state.effective(member.backend))}});
    services.push_back({{"name", service.name},
                        {"vip", format_ip(service.vip)},
                        {"port", service.port},
                        {"protocol", to_string(service.protocol)},
                        {"scheduler", to_string(service.scheduler)},
                        {"dpi", to_string(service.dpi)},
                        {"backends", std::move(backends)},
                        {"admission", admission_counts(totals.services.at(s))}});
  }
  return text_of({{"services", std::move(services)}});
}

// The sync peers whose latest health report says `backend` is down ("address" or
// "address/instance id" where one address runs several).
Json reported_down_by(const ControlState& state, std::size_t backend) {
  Json peers = Json::array();
  if (state.sync != nullptr)
    for (const SyncSenderKey& peer : state.sync->peer_health().reporting_down(backend))
      peers.push_back({{"address", format_ip(peer.first)}, {"sender", peer.second}});
  return peers;
}

// The backend's weight in each service that lists it: as configured (or set by `backend
// weight`) and as the workers have it now, with adaptive_weight's check latency against the
// backend's usual.
Json weights_of(const ControlState& state, std::size_t backend) {
  Json weights = Json::array();
  for (std::size_t s = 0; s < state.config.services.size(); ++s) {
    const ServiceConfig& service = state.config.services[s];
    if (service.removed) continue;
    for (const ServiceBackend& member : service.backends) {
      if (member.backend != backend) continue;
      const LatencyWeight* latency = state.health != nullptr ? state.health->latency_weight(s, backend) : nullptr;
      const std::uint32_t percent = latency != nullptr ? latency->percent() : 100;
      Json entry = {{"service", service.name},
                    {"weight", member.weight},
                    {"effective_weight", static_cast<double>(member.weight) * percent / 100}};
      if (service.adaptive_weight) {
        entry["weight_percent"] = percent;
        entry["lowered"] = latency != nullptr && latency->lowered();
        const bool sampled = latency != nullptr && latency->samples() > 0;
        entry["latency_ms"] = sampled ? Json(latency->fast_us() / 1000) : Json(nullptr);
        entry["baseline_ms"] = sampled ? Json(latency->baseline_us() / 1000) : Json(nullptr);
      }
      weights.push_back(std::move(entry));
    }
  }
  return weights;
}

std::string show_backends(ControlState& state, Args) {
  const Totals totals = state.totals();
  const NeighbourResolver& neighbours = *state.neighbours;
  Json backends = Json::array();
  const std::vector<CapacityRow> capacities = capacity_rows(state.config, *state.sessions, state.connections);
  for (std::size_t b = 0; b < state.config.backends.size(); ++b) {
    const BackendConfig& backend = state.config.backends[b];
    if (backend.removed) continue;
    const auto& c = totals.backends[b];
    Json capacity = Json::array();  // per service that sets one: admission's view
    for (const CapacityRow& row : capacities)
      if (row.backend == b)
        capacity.push_back({{"service", row.service->name}, {"counts", row.counts},
                            {"capacity", row.capacity}, {"held", row.held}});
    backends.push_back(
        {{"name", backend.name},
         {"address", format_ip(backend.address)},
         {"mac", neighbours.resolved(b) ? Json(format_mac(neighbours.mac(b))) : Json(nullptr)},
         {"mac_source", neighbours.source(b)},
         {"mac_age_ms", neighbours.age_ms(b, rte_rdtsc())},
         {"state", dataplane::to_string(state.effective(b))},
         {"admin", dataplane::to_string(state.states[b])},
         {"healthy", state.health == nullptr || state.health->healthy(b)},
         {"peer_hold", to_string(b < state.peer_holds.size() ? state.peer_holds[b] : PeerHold::none)},
         {"reported_down_by", reported_down_by(state, b)},
         {"live_calls", state.sessions->live_calls(static_cast<std::uint16_t>(b))},
         {"connections", state.connections != nullptr ? state.connections->at(static_cast<std::uint16_t>(b)) : 0},
         {"weights", weights_of(state, b)},
         {"live_rtsp_connections",
          state.sessions->control_connections(dataplane::SessionTable::ControlProtocol::rtsp).at(static_cast<std::uint16_t>(b))},
         {"live_ftp_connections",
          state.sessions->control_connections(dataplane::SessionTable::ControlProtocol::ftp).at(static_cast<std::uint16_t>(b))},
         {"capacity", std::move(capacity)},
         {"packets", c.packets},
         {"bytes", c.bytes},
         {"flows", c.flows},
         {"sessions", c.sessions},
         {"admission", admission_counts(c)},
         {"admitted", c.admitted}});
  }
  return text_of({{"backends", std::move(backends)}});
}

std::string show_counters(ControlState& state, Args) {
  return counters_json(state.config, state.totals());
}

// The sync receiver: each configured peer with the senders heard from it, and its counters.
std::string show_sync(ControlState& state, Args) {
  if (!state.config.sync || state.sync == nullptr) return text_of({{"enabled", false}});
  const SyncConfig& sync = *state.config.sync;
  const std::uint64_t now = rte_rdtsc();
  const std::vector<SyncPeerView> heard = state.sync->peers();
  // Milliseconds since `tsc`, or null for never.
  const auto age_ms = [&](std::uint64_t tsc) -> Json {
    return tsc == 0 ? Json(nullptr) : Json((now - tsc) * 1000 / state.tsc_hz);
  };
  // What a sender's latest health reports hold down (empty once it expired).
  const auto backends_down = [&](const SyncSenderKey& sender) {
    Json names = Json::array();
    for (std::uint16_t b : state.sync->peer_health().down_of(sender))
      if (b < state.config.backends.size()) names.push_back(state.config.backends[b].name);
    return names;
  };
  Json peers = Json::array();
  for (const IpBytes& address : sync.peers) {
    bool any = false;
    for (const SyncPeerView& sender : heard) {
      if (sender.address != address) continue;
      any = true;
      peers.push_back({{"address", format_ip(address)},
                       {"sender", sender.sender},
                       {"epoch", sender.epoch},
                       {"last_sequence", sender.last_sequence},
                       {"accepted", sender.accepted},
                       {"last_message_age_ms", (now - sender.last_accepted_tsc) * 1000 / state.tsc_hz},
                       {"last_bulk_age_ms", age_ms(sender.last_bulk_end_tsc)},
                       {"backends_down", backends_down({address, sender.sender})}});
    }
    if (!any)  // nothing accepted from it yet
      peers.push_back({{"address", format_ip(address)}, {"sender", nullptr}, {"epoch", nullptr},
                       {"last_sequence", nullptr}, {"accepted", 0}, {"last_message_age_ms", nullptr},
                       {"last_bulk_age_ms", nullptr}});
  }
  Json counters = Json::object();
  const Totals all = state.totals();
  const SyncTotals& totals = all.sync;
  for (const CounterSample& c : list_counters(all))
    if (std::string_view(c.section) == "sync") counters[c.name] = c.value;
  const PortConfig& port = state.config.ports[sync.port];
  return text_of({{"enabled", true},
                  {"listen", format_ip(port.addresses[0]) + ":" + std::to_string(sync.listen_port)},
                  {"interface", port.kernel->name},
                  {"instance", sync.instance},
                  {"sender_id", sync.sender_id},
                  {"peers", std::move(peers)},
                  {"last_bulk_received_age_ms", age_ms(totals.last_bulk_received_tsc)},
                  {"last_bulk_sent_age_ms", age_ms(totals.last_bulk_sent_tsc)},
                  {"backends_held", std::count(state.peer_holds.begin(), state.peer_holds.end(), PeerHold::held)},
                  {"counters", std::move(counters)}});
}

std::string show_workers(ControlState& state, Args) {
  Json workers = Json::array();
  for (std::size_t w = 0; w < state.workers->size(); ++w) {
    const dataplane::Worker& worker = *(*state.workers)[w];
    const auto& c = worker.counters();
    workers.push_back({{"worker", w},
                       {"rx_packets", c.rx_packets.read()},
                       {"tx_packets", c.tx_packets.read()},
                       {"forwarded", c.forwarded.read()},
                       {"busy_polls", c.busy_polls.read()},
                       {"idle_polls", c.idle_polls.read()},
                       {"loop_cycles", c.loop_cycles.read()},
                       {"busy_cycles", c.busy_cycles.read()},
                       {"flows", worker.flow_count()}});
  }
  return text_of({{"workers", std::move(workers)},
                  {"snapshot_generation", state.publisher->generation()},
                  {"snapshots_live", state.publisher->live_count()}});
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

std::string list_sessions(const ControlState& state, const ListingFilter& filter) {
  const std::uint64_t now = rte_rdtsc();
  std::uint64_t total = 0;
  std::uint64_t matched = 0;
  std::map<std::string, std::uint64_t> by_protocol;  // whatever the filter: `tetherctl top` reads it
  Json sessions = Json::array();
  state.sessions->for_each_live(now, [&](const dataplane::SessionEntry& entry) {
    ++total;
    ++by_protocol[protocol_name(entry.key.kind)];
    if (!filter.admits(entry) || matched++ >= filter.max_entries) return;
    const dataplane::SessionKey& key = entry.key;
    Json row = {{"kind", dataplane::to_string(key.kind)},
                {"protocol", protocol_name(key.kind)},
                {"service", name_of_service(state, key.service)},
                {"backend", name_of_backend(state, entry.route.backend)},
                {"expires_in_ms", milliseconds_until(state, entry.deadline, now)}};
    if (key.kind == dataplane::SessionKind::sip_call) {
      char digest[17];
      std::snprintf(digest, sizeof digest, "%016" PRIx64, key.digest);
      row["call_id_digest"] = digest;
    } else {
      row["client"] = format_ip(key.address);
      if (key.kind == dataplane::SessionKind::rtp_expectation ||
          key.kind == dataplane::SessionKind::synced_flow)
        row["client_port"] = key.port;
      if (key.kind == dataplane::SessionKind::synced_flow) row["vip_port"] = key.vip_port;
    }
    sessions.push_back(std::move(row));
  });
  return text_of({{"sessions", std::move(sessions)},
                  {"matched", matched},
                  {"total", total},
                  {"live_by_protocol", by_protocol},
                  {"truncated", matched > filter.max_entries}});
}

// Asks every worker (or the one filtered) for a sample of its flow table and waits, bounded,
// for the answers; dataplane/flow_sample.hpp says why an answer that comes late is harmless.
std::string list_flows(const ControlState& state, const ListingFilter& filter) {
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
  Json flows = Json::array();
  Json answers = Json::array();
  std::uint32_t sampled = 0;
  bool truncated = false;
  for (const Asked& a : asked) {
    const char* status = a.answer == Answer::answered ? "answered"
                         : a.answer == Answer::busy   ? "busy"
                                                      : "no answer";
    Json answer = {{"worker", a.worker},
                   {"status", status},
                   {"flows_in_table", workers[a.worker]->flow_count()}};
    if (a.answer != Answer::answered) {
      truncated = true;
      answers.push_back(std::move(answer));
      continue;
    }
    const auto samples = a.mailbox->samples();
    answer["sampled"] = samples.size();
    answer["walked_all"] = a.mailbox->walked_all();
    answers.push_back(std::move(answer));
    if (!a.mailbox->walked_all()) truncated = true;
    for (const dataplane::FlowSample& flow : samples) {
      if (sampled == filter.max_entries) {
        truncated = true;
        break;
      }
      ++sampled;
      flows.push_back({{"worker", a.worker},
                       {"protocol", flow.key.ip_proto == parsers::kProtoTcp ? "tcp" : "udp"},
                       {"client", format_ip(flow.key.src)},
                       {"client_port", flow.key.src_port},
                       {"vip", format_ip(flow.key.dst)},
                       {"port", flow.key.dst_port},
                       {"service", name_of_service(state, flow.service)},
                       {"backend", name_of_backend(state, flow.backend)},
                       {"expires_in_ms", milliseconds_until(state, flow.deadline_tsc, now)},
                       {"closing", flow.closing}});
    }
  }
  return text_of({{"flows", std::move(flows)},
                  {"workers", std::move(answers)},
                  {"sampled", sampled},
                  {"truncated", truncated}});
}

// `show sessions` and `show flows`: the filters `allowed` in `args`, then the listing.
template <unsigned allowed, std::string (*list)(const ControlState&, const ListingFilter&)>
std::string show_filtered(ControlState& state, Args args) {
  const auto parsed = parse_listing_filter(args, allowed, state.config);
  if (const auto* wrong = std::get_if<std::string>(&parsed)) return error(*wrong);
  return list(state, std::get<ListingFilter>(parsed));
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
std::string add_backend(ControlState& state, Args args) {
  if ((args.size() - 3) % 2 != 0) return usage("backend", "add");
  Config desired = state.config;
  const std::string& name = args[0];
  if (const std::string wrong = name_problem("backend", name); !wrong.empty()) return error(wrong);
  const auto address = parse_ip(args[1]);
  if (!address) return error("'" + args[1] + "' is not an IP address");
  ServiceConfig* service = service_named(desired, args[2]);
  if (service == nullptr) return error("no service named '" + args[2] + "'");
  std::uint32_t weight = 1;
  std::optional<MacBytes> mac;
  std::optional<std::size_t> port;
  for (std::size_t i = 3; i < args.size(); i += 2) {
    const std::string& value = args[i + 1];
    if (args[i] == "weight") {
      const auto parsed = parse_weight(value);
      if (!parsed) return bad_weight(value);
      weight = *parsed;
    } else if (args[i] == "mac") {
      mac = parse_mac(value);
      if (!mac) return error(not_a_mac(value));
    } else if (args[i] == "port") {
      port = index_named(desired.ports, value);
      if (!port) return error("no port named '" + value + "'");
    } else {
      return usage("backend", "add");
    }
  }
  std::optional<std::size_t> backend = backend_named(desired, name);
  if (backend) {  // an existing backend joins another service
    const BackendConfig& existing = desired.backends[*backend];
    if (existing.address != *address || (mac && existing.mac != mac) || (port && existing.port != *port))
      return error("backend '" + name + "' exists with another address, MAC or port");
    for (const auto& member : service->backends)
      if (member.backend == *backend)
        return error("backend '" + name + "' is in service '" + service->name + "' already");
  } else {
    if (!port && desired.ports.size() != 1) return error(port_needed(name));
    // Its address, MAC and the service's weights and table size are checked with the rest
    // of the configuration, by ControlState::adopt.
    desired.backends.push_back(BackendConfig{name, *address, mac, port.value_or(0)});
    backend = desired.backends.size() - 1;
  }
  service->backends.push_back({*backend, weight});
  TETHER_LOG(info, "backend %s: added to service %s with weight %u by command", name.c_str(),
             service->name.c_str(), weight);
  return adopt(state, desired);
}

// backend remove NAME [SERVICE]: out of one service, or out of all and gone.
std::string remove_backend(ControlState& state, Args args) {
  Config desired = state.config;
  const std::string& name = args[0];
  const auto backend = backend_named(desired, name);
  if (!backend) return error("no backend named '" + name + "'");
  const std::string* only = args.size() == 2 ? &args[1] : nullptr;  // the one service
  if (only != nullptr && service_named(desired, *only) == nullptr) return error("no service named '" + *only + "'");
  unsigned left_services = 0;
  for (auto& service : desired.services) {
    if (service.removed || (only != nullptr && service.name != *only)) continue;
    auto drop_from = [&](std::vector<ServiceBackend>& members) {
      const auto before = members.size();
      std::erase_if(members, [&](const ServiceBackend& m) { return m.backend == *backend; });
      return members.size() != before;
    };
    bool member = drop_from(service.backends);
    for (auto& pool : service.pools) member |= drop_from(pool.backends);
    if (!member) continue;
    ++left_services;
    if (service.backends.empty() ||
        std::any_of(service.pools.begin(), service.pools.end(), [](const PoolConfig& p) { return p.backends.empty(); }))
      return error("removing '" + name + "' would leave service '" + service.name +
                   "' or one of its pools without backends");
  }
  if (only != nullptr && left_services == 0) return error("backend '" + name + "' is not in service '" + *only + "'");
  if (only == nullptr) desired.backends[*backend].removed = true;
  TETHER_LOG(info, "backend %s: removed from %s by command", name.c_str(),
             only != nullptr ? ("service " + *only).c_str() : "every service");
  return adopt(state, desired);
}

// backend weight NAME WEIGHT [SERVICE]: in every service of the backend, or in one.
std::string set_weight(ControlState& state, Args args) {
  const std::string& name = args[0];
  const auto backend = backend_named(state.config, name);
  if (!backend) return error("no backend named '" + name + "'");
  const auto weight = parse_weight(args[1]);
  if (!weight) return bad_weight(args[1]);
  Config desired = state.config;
  unsigned changed = 0;
  for (auto& service : desired.services) {
    if (service.removed || (args.size() == 3 && service.name != args[2])) continue;
    for (auto& member : service.backends)
      if (member.backend == *backend) {
        member.weight = *weight;
        ++changed;
      }
  }
  if (changed == 0) return error("backend '" + name + "' is in no such service");
  try {
    validate(desired, state.device_macs());  // a file's rules: a service keeps a weight above 0
  } catch (const ConfigError& e) {
    return error(e.what());
  }
  state.config = std::move(desired);
  TETHER_LOG(info, "backend %s: weight %u in %u service(s)", name.c_str(), *weight, changed);
  state.republish();
  return ok(state);
}

// backend drain|enable|disable NAME: the operator's state, which health and ARP/ND may
// still override (ControlState::effective).
template <dataplane::BackendState admin>
std::string set_admin_state(ControlState& state, Args args) {
  const auto backend = backend_named(state.config, args[0]);
  if (!backend) return error("no backend named '" + args[0] + "'");
  state.states[*backend] = admin;
  TETHER_LOG(info, "backend %s: %s by command", args[0].c_str(), dataplane::to_string(admin));
  state.republish();
  return ok(state);
}

// The active-standby pair (README "Active-standby pair"): keepalived's notify hooks and
// vrrp_script call these through tetherctl.
std::string no_ha() {
  return error("no 'ha' section in the configuration: this tetherd is standalone and always forwards");
}

std::string ha_since(const ControlState& state, std::uint64_t now) {
  const auto age = std::chrono::milliseconds((now - state.ha->since_tsc()) * 1000 / state.tsc_hz);
  const std::time_t at = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() - age);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&at));
  return text;
}

std::string show_ha(ControlState& state, Args) {
  if (state.ha == nullptr) return text_of({{"enabled", false}, {"state", "standalone"}, {"forwarding", true}});
  const HaStatus& ha = *state.ha;
  const std::uint64_t now = rte_rdtsc();
  return text_of({{"enabled", true},
                  {"state", to_string(ha.role())},
                  {"forwarding", ha.forwarding()},
                  {"since", ha_since(state, now)},
                  {"since_ms", (now - ha.since_tsc()) * 1000 / state.tsc_hz},
                  {"transitions", ha.transitions()},
                  {"released", ha.released()},
                  {"announcements_pending", ha.announcements_pending()},
                  {"gratuitous_arp_sent", ha.sent().gratuitous_arp},
                  {"unsolicited_na_sent", ha.sent().unsolicited_na},
                  {"vips", announced_addresses(state.config).size()}});
}

// ha master|backup|fault: what keepalived's notify_master, notify_backup and notify_fault say.
template <HaRole role>
std::string set_ha_role(ControlState& state, Args) {
  if (state.ha == nullptr) return no_ha();
  const HaRole before = state.ha->role();
  const bool changed = state.ha->set_role(role, rte_rdtsc());
  if (changed) {
    TETHER_LOG(info, "ha: %s -> %s by command%s", to_string(before), to_string(role),
               role == HaRole::master ? ": forwarding, announcing the VIPs" : ": not forwarding");
    state.republish();
  }
  return text_of({{"ok", true},
                  {"state", to_string(role)},
                  {"changed", changed},
                  {"snapshot_generation", state.publisher->generation()}});
}

// ha release|claim: the graceful handover's flag, which only `ha check` reads.
template <bool released>
std::string set_ha_released(ControlState& state, Args) {
  if (state.ha == nullptr) return no_ha();
  const bool changed = state.ha->set_released(released);
  if (changed)
    TETHER_LOG(info, "ha: %s by command", released ? "released (ha check fails until 'ha claim')"
                                                    : "claimed (ha check passes again)");
  return text_of({{"ok", true}, {"state", to_string(state.ha->role())}, {"released", released},
                  {"changed", changed}});
}

// ha check: keepalived's vrrp_script. Healthy when every worker's loop turns and, in a pair,
// the instance was not released. Not a function of the role: a healthy backup must pass to
// be able to take over.
std::string ha_check(ControlState& state, Args) {
  Json problems = Json::array();
  if (state.progress != nullptr)
    for (unsigned w : state.progress->stalled(rte_rdtsc()))
      problems.push_back("worker " + std::to_string(w) + " has not polled for " +
                         std::to_string(WorkerProgress::kStallMs) + " ms");
  if (state.ha != nullptr && state.ha->released())
    problems.push_back("released for a handover ('ha claim' takes it back)");
  return text_of({{"healthy", problems.empty()},
                  {"state", state.ha != nullptr ? to_string(state.ha->role()) : "standalone"},
                  {"released", state.ha != nullptr && state.ha->released()},
                  {"problems", std::move(problems)}});
}

// Announcing the VIPs by BGP (README "Announcing the VIPs by BGP").
std::string no_announce() {
  return error("no 'announce' section in the configuration: tetherd announces nothing (stop it with SIGTERM)");
}

Json drain_json(const Drain& drain, std::uint64_t now) {
  if (!drain.active()) return nullptr;
  return {{"elapsed_ms", drain.elapsed_ms(now)},
          {"quiet_ms", drain.quiet_ms(now)},
          {"quiet_s", drain.quiet_s()},
          {"timeout_s", drain.timeout_s()},
          {"placed", drain.placed_since_start()}};
}

std::string show_announce(ControlState& state, Args) {
  if (state.announcer == nullptr) return text_of({{"enabled", false}, {"vips", Json::array()}});
  const Announcer& announcer = *state.announcer;
  const std::uint64_t now = rte_rdtsc();
  Json vips = Json::array();
  for (const VipDecision& decision : announcer.decisions()) {
    Json services = Json::array();
    for (std::size_t s : decision.services) services.push_back(state.config.services[s].name);
    vips.push_back({{"vip", format_ip(decision.vip)},
                    {"announced", decision.announced()},
                    {"reason", to_string(decision.reason)},
                    {"route_installed", announcer.installed(decision.vip)},
                    {"services", std::move(services)}});
  }
  const AnnounceTotals totals = announcer.totals();
  Json awaited = Json::array();  // the sync peers whose bulk dump the start still waits for
  for (const IpBytes& peer : state.bulk_awaited_peers(now)) awaited.push_back(format_ip(peer));
  return text_of({{"enabled", true},
                  {"interface", announcer.interface()},
                  {"route_protocol", kAnnounceRouteProtocol},
                  {"draining", announcer.drain().active()},
                  {"drain", drain_json(announcer.drain(), now)},
                  {"bulk_awaited", std::move(awaited)},
                  {"vips", std::move(vips)},
                  {"routes_added", totals.routes_added},
                  {"routes_removed", totals.routes_removed},
                  {"route_failures", totals.route_failures}});
}

// drain: withdraw every VIP at once, then stop once the routers moved the traffic away (no
// new flow or session for announce.drain_quiet seconds) or announce.drain_timeout passed.
std::string drain(ControlState& state, Args) {
  if (state.announcer == nullptr) return no_announce();
  Announcer& announcer = *state.announcer;
  const std::uint64_t now = rte_rdtsc();
  const bool started = !announcer.drain().active();
  if (started) {
    announcer.start_drain(state.placed(), now);
    announcer.apply(state.announcement_decisions(now), now);  // withdrawn before the answer
    TETHER_LOG(info, "drain: every VIP withdrawn; stopping once no new flow or session for %u s (at most %u s)",
               announcer.drain().quiet_s(), announcer.drain().timeout_s());
  }
  return text_of({{"ok", true},
                  {"changed", started},
                  {"announced", announcer.totals().announced},
                  {"drain", drain_json(announcer.drain(), now)}});
}

std::string reload(ControlState& state, Args) {
  auto live_names = [](const Config& config) {
    std::vector<std::string> names;
    for (const auto& b : config.backends) if (!b.removed) names.push_back(b.name);
    return names;
  };
  const auto before = live_names(state.config);
  try {
    state.adopt(load_config_file(state.config_path));
  } catch (const ConfigError& e) {
    TETHER_LOG(warning, "reload refused: %s", e.what());
    return error(e.what());
  }
  const auto after = live_names(state.config);
  // Names in `names` but not in `other`.
  auto missing_from = [](const std::vector<std::string>& names, const std::vector<std::string>& other) {
    Json missing = Json::array();
    for (const auto& name : names)
      if (std::find(other.begin(), other.end(), name) == other.end()) missing.push_back(name);
    return missing;
  };
  TETHER_LOG(info, "reloaded %s: %zu backend(s), snapshot %llu", state.config_path.c_str(), after.size(),
             static_cast<unsigned long long>(state.publisher->generation()));
  return text_of({{"ok", true},
                  {"snapshot_generation", state.publisher->generation()},
                  {"backends_added", missing_from(after, before)},
                  {"backends_removed", missing_from(before, after)}});
}

std::string metrics(ControlState& state, Args) {
  return text_of({{"metrics", prometheus_metrics(state)}});
}

constexpr unsigned kSessionFilters =
    ListingFilter::service | ListingFilter::protocol | ListingFilter::backend | ListingFilter::limit;
constexpr unsigned kFlowFilters =
    ListingFilter::worker | ListingFilter::service | ListingFilter::backend | ListingFilter::limit;
constexpr std::size_t kAnyCount = SIZE_MAX;

// Every command: `group name` selects it (name empty: the group word alone), and its
// arguments are counted before it runs. `help` lists them in this order.
struct Command {
  std::string_view group;
  std::string_view name;
  std::string_view arguments;  // as `help` shows them
  std::size_t min_arguments;
  std::size_t max_arguments;
  std::string (*run)(ControlState& state, Args arguments);
};

constexpr Command kCommands[] = {
    {"show", "services", "", 0, 0, show_services},
    {"show", "backends", "", 0, 0, show_backends},
    {"show", "counters", "", 0, 0, show_counters},
    {"show", "workers", "", 0, 0, show_workers},
    {"show", "sync", "", 0, 0, show_sync},
    {"show", "ha", "", 0, 0, show_ha},
    {"show", "announce", "", 0, 0, show_announce},
    {"show", "sessions", "[service NAME] [protocol sip|rtsp|ftp|flow] [backend NAME] [limit N]", 0,
     kAnyCount, show_filtered<kSessionFilters, list_sessions>},
    {"show", "flows", "[worker N] [service NAME] [backend NAME] [limit N]", 0, kAnyCount,
     show_filtered<kFlowFilters, list_flows>},
    {"backend", "weight", "NAME WEIGHT [SERVICE]", 2, 3, set_weight},
    {"backend", "drain", "NAME", 1, 1, set_admin_state<dataplane::BackendState::draining>},
    {"backend", "enable", "NAME", 1, 1, set_admin_state<dataplane::BackendState::up>},
    {"backend", "disable", "NAME", 1, 1, set_admin_state<dataplane::BackendState::down>},
    {"backend", "add", "NAME ADDRESS SERVICE [weight W] [mac MAC] [port PORT]", 3, kAnyCount,
     add_backend},
    {"backend", "remove", "NAME [SERVICE]", 1, 2, remove_backend},
    {"ha", "master", "", 0, 0, set_ha_role<HaRole::master>},
    {"ha", "backup", "", 0, 0, set_ha_role<HaRole::backup>},
    {"ha", "fault", "", 0, 0, set_ha_role<HaRole::fault>},
    {"ha", "release", "", 0, 0, set_ha_released<true>},
    {"ha", "claim", "", 0, 0, set_ha_released<false>},
    {"ha", "check", "", 0, 0, ha_check},
    {"drain", "", "", 0, 0, drain},
    {"reload", "", "", 0, 0, reload},
    {"metrics", "", "", 0, 0, metrics},
};

// "backend weight NAME WEIGHT [SERVICE]"
std::string usage_line(const Command& command) {
  std::string line(command.group);
  for (std::string_view part : {command.name, command.arguments})
    if (!part.empty()) line.append(" ").append(part);
  return line;
}

std::string usage(std::string_view group, std::string_view name) {
  for (const Command& command : kCommands)
    if (command.group == group && command.name == name) return error("usage: " + usage_line(command));
  return error("usage: " + std::string(group) + " " + std::string(name));
}

std::string help() {
  Json commands = Json::array();
  for (const Command& command : kCommands) commands.push_back(usage_line(command));
  return text_of({{"commands", std::move(commands)}});
}

}  // namespace

std::string run_command(ControlState& state, const std::string& line) {
  const std::vector<std::string> w = words(line);
  if (w.empty()) return error("empty command; try 'help'");
  if (w[0] == "help") return help();
  const Args all(w);
  std::string group_usage;  // the group's commands, when its word is right and the rest is not
  for (const Command& command : kCommands) {
    if (command.group != w[0]) continue;
    group_usage += (group_usage.empty() ? "usage: " : " | ") + usage_line(command);
    const bool named = command.name.empty() || (w.size() > 1 && command.name == w[1]);
    if (!named) continue;
    const Args arguments = all.subspan(command.name.empty() ? 1 : 2);
    if (arguments.size() < command.min_arguments || arguments.size() > command.max_arguments)
      return usage(command.group, command.name);
    return command.run(state, arguments);
  }
  if (!group_usage.empty()) return error(group_usage);
  return error("unknown command '" + line.substr(0, 64) + "'; try 'help'");
}

}  // namespace tether
