#include "control/commands.hpp"

#include <rte_cycles.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <sstream>
#include <thread>

#include "control/cli_server.hpp"
#include "control/listing_filter.hpp"
#include "control/log.hpp"

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

std::string show_services(const ControlState& state) {
  std::ostringstream out;
  out << "{\"services\":[";
  for (std::size_t s = 0; s < state.config.services.size(); ++s) {
    const ServiceConfig& service = state.config.services[s];
    out << (s ? "," : "") << "{\"name\":" << json_string(service.name)
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
  }
  out << "]}";
  return out.str();
}

std::string show_backends(const ControlState& state) {
  const Totals totals = state.totals();
  std::ostringstream out;
  out << "{\"backends\":[";
  for (std::size_t b = 0; b < state.config.backends.size(); ++b) {
    const BackendConfig& backend = state.config.backends[b];
    const auto& c = totals.backends[b];
    out << (b ? "," : "") << "{\"name\":" << json_string(backend.name)
        << ",\"address\":" << json_string(format_ip(backend.address))
        << ",\"mac\":" << json_string(format_mac(backend.mac)) << ",\"state\":\""
        << dataplane::to_string(state.effective(b)) << "\",\"admin\":\""
        << dataplane::to_string(state.states[b]) << "\",\"healthy\":"
        << (state.health == nullptr || state.health->healthy(b) ? "true" : "false")
        << ",\"live_calls\":"
        << state.sessions->live_calls(static_cast<std::uint16_t>(b)) << ",\"packets\":" << c.packets
        << ",\"bytes\":" << c.bytes << ",\"flows\":" << c.flows << ",\"sessions\":" << c.sessions
        << "}";
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
        << ",\"flows\":" << workers[w]->flow_count() << "}";
  }
  out << "],\"snapshot_generation\":" << state.publisher->generation()
      << ",\"snapshots_live\":" << state.publisher->live_count() << "}";
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
  if (w.size() < 3) return error("usage: backend weight NAME WEIGHT [SERVICE] | backend drain|enable|disable NAME");
  const auto named = index_named(state.config.backends, w[2]);
  if (!named) return error("no backend named '" + w[2] + "'");
  const std::size_t backend = *named;
  if (w[1] == "weight") {
    if (w.size() < 4 || w.size() > 5) return error("usage: backend weight NAME WEIGHT [SERVICE]");
    char* end = nullptr;
    const unsigned long weight = std::strtoul(w[3].c_str(), &end, 10);
    if (w[3].empty() || *end != '\0' || weight > kMaxWeight)
      return error("weight must be a number from 0 to " + std::to_string(kMaxWeight));
    unsigned changed = 0;
    for (auto& service : state.config.services) {
      if (w.size() == 5 && service.name != w[4]) continue;
      for (auto& member : service.backends)
        if (member.backend == backend) {
          member.weight = static_cast<std::uint32_t>(weight);
          ++changed;
        }
    }
    if (changed == 0) return error("backend '" + w[2] + "' is in no such service");
    TETHER_LOG(info, "backend %s: weight %lu in %u service(s)", w[2].c_str(), weight, changed);
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
  return "{\"ok\":true,\"snapshot_generation\":" + std::to_string(state.publisher->generation()) + "}";
}

}  // namespace

Totals ControlState::totals() const {
  Totals t = add_up(*workers, config.backends.size());
  t.sessions_expired = *expired;
  t.sessions_in_table = sessions->size();
  return t;
}

dataplane::BackendState ControlState::effective(std::size_t backend) const {
  if (health != nullptr && !health->healthy(backend)) return dataplane::BackendState::down;
  return states[backend];
}

void ControlState::republish() {
  std::vector<dataplane::BackendState> now(states.size());
  for (std::size_t b = 0; b < states.size(); ++b) now[b] = effective(b);
  publisher->publish(build_snapshot(config, ports, tsc_hz, static_cast<unsigned>(workers->size()), now));
}

std::string run_command(ControlState& state, const std::string& line) {
  const std::vector<std::string> w = words(line);
  if (w.empty()) return error("empty command; try 'help'");
  if (w[0] == "help")
    return "{\"commands\":[\"show services\",\"show backends\",\"show counters\",\"show workers\","
           "\"show sessions [service NAME] [protocol sip|rtsp|ftp] [backend NAME] [limit N]\","
           "\"show flows [worker N] [service NAME] [backend NAME] [limit N]\","
           "\"backend weight NAME WEIGHT [SERVICE]\",\"backend drain NAME\",\"backend enable NAME\","
           "\"backend disable NAME\",\"metrics\"]}";
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
  if (w[0] == "metrics" && w.size() == 1)
    return "{\"metrics\":" + json_string(prometheus_metrics(state)) + "}";
  return error("unknown command '" + line.substr(0, 64) + "'; try 'help'");
}

std::string prometheus_metrics(const ControlState& state) {
  const Totals totals = state.totals();
  std::ostringstream out;
  const auto& w = totals.workers;
  out << "# TYPE tether_packets_total counter\n"
      << "tether_rx_packets_total " << w.rx_packets << "\n"
      << "tether_tx_packets_total " << w.tx_packets << "\n"
      << "tether_forwarded_total " << w.forwarded << "\n"
      << "tether_new_flows_total " << w.new_flows << "\n"
      << "tether_flow_table_full_total " << w.flow_table_full << "\n"
      << "tether_flows_expired_total " << w.flows_expired << "\n"
      << "tether_rescheduled_total " << w.rescheduled << "\n"
      << "tether_sessions_in_table " << totals.sessions_in_table << "\n";
  out << "# TYPE tether_backend_packets_total counter\n";
  for (std::size_t b = 0; b < state.config.backends.size(); ++b) {
    const auto& name = state.config.backends[b].name;
    const auto& c = totals.backends[b];
    out << "tether_backend_packets_total{backend=\"" << name << "\"} " << c.packets << "\n"
        << "tether_backend_bytes_total{backend=\"" << name << "\"} " << c.bytes << "\n"
        << "tether_backend_flows_total{backend=\"" << name << "\"} " << c.flows << "\n"
        << "tether_backend_sessions_total{backend=\"" << name << "\"} " << c.sessions << "\n"
        << "tether_backend_up{backend=\"" << name << "\"} "
        << (state.effective(b) == dataplane::BackendState::up ? 1 : 0) << "\n";
  }
  for (std::size_t i = 0; i < dataplane::kDropReasonCount; ++i)
    out << "tether_drops_total{reason=\"" << to_string(static_cast<dataplane::DropReason>(i))
        << "\"} " << totals.workers.drops[i] << "\n";
  return out.str();
}

}  // namespace tether
