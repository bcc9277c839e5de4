#include "control/report.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <set>
#include <sstream>
#include <string>

namespace tether {
namespace {

using dataplane::Expectation;
using dataplane::SessionKind;

constexpr const char* kCounter = "counter";
constexpr const char* kGauge = "gauge";

// A metric name made at run time, kept for the program's life: Metric holds a const char*.
// The control thread and DPDK's telemetry thread both list the counters.
const char* lasting(std::string name) {
  static std::mutex guard;
  static std::set<std::string> names;  // nodes stay put: their c_str() too
  const std::lock_guard lock(guard);
  return names.insert(std::move(name)).first->c_str();
}

}  // namespace

void add_worker(Totals& t, const dataplane::Worker& worker) {
  dataplane::WorkerCounterValues counters;
  dataplane::add_to(counters, worker.counters());
  dataplane::for_each_pair(t.workers, counters,
                           [](std::uint64_t& sum, std::uint64_t v) { sum += v; });
  for (std::size_t b = 0; b < t.backends.size(); ++b)
    dataplane::add_to(t.backends[b], worker.backend_counters()[b]);
  for (std::size_t s = 0; s < t.services.size(); ++s) dataplane::add_to(t.services[s], worker.service_counters()[s]);
  t.flow_table_bytes += worker.flow_table().memory_bytes();
  t.flow_table_entries += worker.flow_table().capacity();
  t.rx_per_worker.push_back(counters.rx_packets);
}

Totals add_up(const std::vector<std::unique_ptr<dataplane::Worker>>& workers,
              std::size_t backend_count, std::size_t service_count) {
  Totals t;
  t.backends.resize(backend_count);
  t.services.resize(service_count);
  for (const auto& w : workers) add_worker(t, *w);
  return t;
}

SessionTotals read_sessions(const dataplane::SessionTable& sessions,
                            const dataplane::SweepResult& expired) {
  return {.expired = expired,
          .in_table = sessions.size(),
          .table_bytes = sessions.memory_bytes(),
          .table_entries = sessions.capacity()};
}

std::vector<CounterSample> list_counters(const Totals& t) {
  std::vector<CounterSample> out;
  const auto add = [&out](const char* section, std::string name, std::uint64_t value,
                          const Metric& metric) {
    out.push_back({section, std::move(name), value, metric});
  };
  const auto& c = t.workers;

#define TETHER_SCALAR(member, unit, text)                                                  \
  add("counters", #member, c.member,                                                     \
      {.name = #member unit "_total", .type = kCounter, .help = text, .per_worker = true});
  TETHER_WORKER_COUNTERS(TETHER_SCALAR)
#undef TETHER_SCALAR
  add("counters", "flows_in_tables", t.workers.flows_in_table,
      {.name = "flows_in_tables", .type = kGauge, .help = "Flows in the flow tables.",
       .per_worker = true});

  // Session counters by protocol or expectation kind: "sip_sessions_created" or
  // "rtp_expectations_used" in the stats file, a label in Prometheus.
  const char* label = "protocol";
  const char* value = nullptr;
  std::size_t i = 0;
#define TETHER_LABELLED(member, text)                                                      \
  add("sessions", std::string(value) + "_" #member, c.member[i],                          \
      {.name = #member "_total", .type = kCounter, .help = text, .label = label,         \
       .label_value = value, .per_worker = true});
  for (i = 0; i < dataplane::kSessionProtocols; ++i) {
    value = to_string(static_cast<SessionProtocol>(i));
    TETHER_PROTOCOL_COUNTERS(TETHER_LABELLED)
  }
  const auto expired = [&](SessionKind kind) {
    return t.sessions.expired.expired[static_cast<std::size_t>(kind)];
  };
  add("sessions", "sip_sessions_expired", expired(SessionKind::sip_call),
      {.name = "sessions_expired_total", .type = kCounter,
       .help = "Sessions removed by the expiry sweep, by protocol.", .label = "protocol",
       .label_value = to_string(SessionProtocol::sip)});
  label = "kind";
  for (i = 0; i < dataplane::kExpectationKinds; ++i) {
    value = to_string(static_cast<Expectation>(i));
    TETHER_EXPECTATION_COUNTERS(TETHER_LABELLED)
  }
#undef TETHER_LABELLED
  // The session table's kind of each expectation.
  constexpr SessionKind kExpectationEntry[dataplane::kExpectationKinds] = {
      SessionKind::rtp_expectation, SessionKind::ftp_expectation};
  for (i = 0; i < dataplane::kExpectationKinds; ++i) {
    value = to_string(static_cast<Expectation>(i));
    add("sessions", std::string(value) + "_expectations_expired", expired(kExpectationEntry[i]),
        {.name = "expectations_expired_total", .type = kCounter,
         .help = "Expectations removed unused by the expiry sweep, by kind.", .label = label,
         .label_value = value});
  }
  add("sessions", "sessions_in_table", t.sessions.in_table,
      {.name = "sessions_in_table", .type = kGauge, .help = "Entries in the shared session table."});

  // Counters by reason: the reason alone in the stats file, a label in Prometheus.
  const auto by_reason = [&](const char* section, const char* family, const char* help,
                             const char* reason, std::uint64_t v) {
    add(section, reason, v,
        {.name = family, .type = kCounter, .help = help, .label = "reason",
         .label_value = reason, .per_worker = true});
  };
  constexpr const char* kDropsHelp = "Packets dropped, by reason (the parser's statuses included).";
  for (i = 0; i < dataplane::kDropReasonCount; ++i)
    by_reason("drops", "drops_total", kDropsHelp,
              to_string(static_cast<dataplane::DropReason>(i)), c.drops[i]);
  for (i = 1; i < parsers::kParseStatusCount; ++i)  // [0] is ok
    by_reason("drops", "drops_total", kDropsHelp,
              to_string(static_cast<parsers::ParseStatus>(i)), c.parse_errors[i]);
  for (i = 0; i < dataplane::kDpiFallbackCount; ++i)
    by_reason("dpi_fallbacks", "dpi_fallbacks_total",
              "Packets or connections inspection gave up on (forwarded by flow), by reason.",
              to_string(static_cast<dataplane::DpiFallback>(i)), c.dpi_fallbacks[i]);

  // The exception path, as the control thread counted it (the workers count what they
  // handed over, to_kernel, and what their rate limits dropped).
  add("kernel", "kernel_delivered", t.kernel.delivered,
      {.name = "kernel_delivered_frames_total", .type = kCounter,
       .help = "Frames written to the ports' kernel interfaces."});
  add("kernel", "kernel_delivery_failed", t.kernel.delivery_failed,
      {.name = "kernel_delivery_failed_frames_total", .type = kCounter,
       .help = "Frames for a kernel interface that it did not take."});
  add("kernel", "kernel_sent", t.kernel.sent,
      {.name = "kernel_sent_frames_total", .type = kCounter,
       .help = "Frames the kernel sent on the ports' kernel interfaces."});
  add("kernel", "kernel_sent_dropped", t.kernel.sent_dropped,
      {.name = "kernel_sent_dropped_frames_total", .type = kCounter,
       .help = "Frames the kernel sent that the port had no room for."});

  // State sync's receiving side (the control thread's). One family per count rather than a
  // label: the stats file's names and Prometheus's follow one rule.
  const SyncTotals& sync = t.sync;
  add("sync", "sync_received", sync.received,
      {.name = "sync_received_messages_total", .type = kCounter,
       .help = "Datagrams read from the state sync socket."});
  add("sync", "sync_accepted", sync.accepted,
      {.name = "sync_accepted_messages_total", .type = kCounter,
       .help = "Sync messages from a peer with a valid tag and a new sequence number."});
  for (i = 0; i < kSyncRejectReasons; ++i)
    add("sync", std::string("sync_rejected_") + sync_reject_reason(i), sync.rejected[i],
        {.name = lasting(std::string("sync_rejected_") + sync_reject_reason(i) + "_messages_total"),
         .type = kCounter,
         .help = "Sync datagrams rejected, by reason (unknown_peer: from no configured peer)."});
  add("sync", "sync_sequence_gaps", sync.sequence_gaps,
      {.name = "sync_sequence_gaps_total", .type = kCounter,
       .help = "Sequence numbers a peer's accepted sync messages skipped (lost or late)."});
  for (i = 0; i < kSyncRecordKinds; ++i)
    add("sync", std::string("sync_applied_") + sync_record_kind(i), sync.applied[i],
        {.name = lasting(std::string("sync_applied_") + sync_record_kind(i) + "_records_total"),
         .type = kCounter, .help = "Synced records applied to the session table, by kind."});
  add("sync", "sync_refused", sync.refused,
      {.name = "sync_refused_records_total", .type = kCounter,
       .help = "Synced records naming a service or backend this instance does not run so."});
  add("sync", "sync_table_full", sync.table_full,
      {.name = "sync_table_full_records_total", .type = kCounter,
       .help = "Synced records the session table had no room for."});
  add("sync", "sync_bulk_requests_received", sync.bulk_requests_received,
      {.name = "sync_bulk_requests_received_total", .type = kCounter,
       .help = "Peers' requests for this instance's whole state (a starting or rejoining peer)."});
  add("sync", "sync_bulk_ends_received", sync.bulk_ends_received,
      {.name = "sync_bulk_ends_received_total", .type = kCounter,
       .help = "Bulk dumps received whole from peers."});
  add("sync", "sync_senders_refused", sync.senders_refused,
      {.name = "sync_senders_refused_messages_total", .type = kCounter,
       .help = "Valid sync messages from a sender id beyond the bound per peer address."});
  add("sync", "sync_health_transitions_received", sync.health_transitions_received,
      {.name = "sync_health_transitions_received_total", .type = kCounter,
       .help = "Peers' health reports that changed their word on a backend (up or down)."});
  // The sending side.
  add("sync", "sync_sent", sync.sent,
      {.name = "sync_sent_messages_total", .type = kCounter,
       .help = "Sync messages sent, once per peer they went to."});
  for (i = 0; i < kSyncRecordKinds; ++i)
    add("sync", std::string("sync_sent_") + sync_record_kind(i), sync.records_sent[i],
        {.name = lasting(std::string("sync_sent_") + sync_record_kind(i) + "_records_total"),
         .type = kCounter, .help = "Records put into sync messages, by kind."});
  add("sync", "sync_send_failed", sync.send_failed,
      {.name = "sync_send_failed_messages_total", .type = kCounter,
       .help = "Sync messages the socket did not take (buffer full, no route)."});
  add("sync", "sync_throttled", sync.throttled,
      {.name = "sync_throttled_polls_total", .type = kCounter,
       .help = "Sender polls that left events waiting: sync.max_rate, or the 4096 records of a poll."});
  add("sync", "sync_backlog", sync.backlog,
      {.name = "sync_backlog_events", .type = kGauge,
       .help = "Session changes and flows waiting in the workers' sync rings."});
  add("sync", "sync_bulk_requests_sent", sync.bulk_requests_sent,
      {.name = "sync_bulk_requests_sent_total", .type = kCounter,
       .help = "Requests for a peer's whole state this instance sent."});
  add("sync", "sync_bulk_dumps_sent", sync.bulk_dumps_sent,
      {.name = "sync_bulk_dumps_sent_total", .type = kCounter,
       .help = "Bulk dumps of this instance's state sent to its peers."});
  add("sync", "sync_health_transitions_sent", sync.health_transitions_sent,
      {.name = "sync_health_transitions_sent_total", .type = kCounter,
       .help = "Changes of this instance's own health verdicts reported to its peers."});

  // The active-standby pair (the control thread's).
  add("ha", "ha_transitions", t.ha.transitions,
      {.name = "ha_transitions_total", .type = kCounter,
       .help = "Changes of the active-standby state (master, backup, fault) by command."});
  add("ha", "ha_gratuitous_arp_sent", t.ha.gratuitous_arp,
      {.name = "ha_gratuitous_arp_sent_frames_total", .type = kCounter,
       .help = "Gratuitous ARP frames sent for IPv4 VIPs on becoming master."});
  add("ha", "ha_unsolicited_na_sent", t.ha.unsolicited_na,
      {.name = "ha_unsolicited_na_sent_frames_total", .type = kCounter,
       .help = "Unsolicited neighbour advertisements sent for IPv6 VIPs on becoming master."});

  // The VIPs' routes for the routing daemon (the control thread's).
  add("announce", "announce_vips_announced", t.announce.announced,
      {.name = "announce_vips_announced", .type = kGauge,
       .help = "VIPs whose host route is on the kernel interface for the routing daemon to announce."});
  add("announce", "announce_routes_added", t.announce.routes_added,
      {.name = "announce_routes_added_total", .type = kCounter,
       .help = "VIP host routes put on the kernel interface (a VIP announced)."});
  add("announce", "announce_routes_removed", t.announce.routes_removed,
      {.name = "announce_routes_removed_total", .type = kCounter,
       .help = "VIP host routes taken off the kernel interface (a VIP withdrawn)."});
  add("announce", "announce_route_failures", t.announce.route_failures,
      {.name = "announce_route_failures_total", .type = kCounter,
       .help = "Route changes the kernel refused (tried again a second later)."});
  add("announce", "announce_drains", t.announce.drains,
      {.name = "announce_drains_total", .type = kCounter,
       .help = "Graceful drains started by tetherctl drain."});

  // Prometheus's scrapes over HTTP (`metrics.listen`).
  add("metrics", "metrics_scrapes", t.metrics.scrapes,
      {.name = "metrics_scrapes_total", .type = kCounter, .help = "GET /metrics answered over HTTP."});
  add("metrics", "metrics_render_timeouts", t.metrics.render_timeouts,
      {.name = "metrics_render_timeouts_total", .type = kCounter,
       .help = "HTTP scrapes answered 503 because the control thread did not render within 5 s."});
  add("metrics", "metrics_not_found", t.metrics.not_found,
      {.name = "metrics_not_found_total", .type = kCounter,
       .help = "HTTP requests for another path than /metrics (404)."});

  add("memory", "flow_table_bytes", t.flow_table_bytes,
      {.name = "flow_table_bytes", .type = kGauge, .help = "Heap bytes of the flow tables.",
       .per_worker = true});
  add("memory", "flow_table_entries", t.flow_table_entries,
      {.name = "flow_table_entries", .type = kGauge,
       .help = "Entries the flow tables have room for.", .per_worker = true});
  add("memory", "session_table_bytes", t.sessions.table_bytes,
      {.name = "session_table_bytes", .type = kGauge, .help = "Heap bytes of the session table."});
  add("memory", "session_table_entries", t.sessions.table_entries,
      {.name = "session_table_entries", .type = kGauge,
       .help = "Entries the session table has room for."});
  add("memory", "fragment_table_bytes", t.fragment_table_bytes,
      {.name = "fragment_table_bytes", .type = kGauge,
       .help = "Heap bytes of the fragment table, with the bytes-seen bits of its datagrams."});
  add("memory", "fragment_table_entries", t.fragment_table_entries,
      {.name = "fragment_table_entries", .type = kGauge,
       .help = "Datagrams the fragment table has room for."});
  return out;
}

std::string summary_text(const Config& config, const Totals& totals) {
  std::ostringstream out;
  const auto line = [&](const char* indent, const std::string& name, std::uint64_t v) {
    char text[128];
    std::snprintf(text, sizeof text, "%s%-30s %14llu\n", indent, name.c_str(),
                  static_cast<unsigned long long>(v));
    out << text;
  };
  const std::vector<CounterSample> counters = list_counters(totals);
  const auto each_in = [&](std::string_view section, auto visit) {
    for (const auto& c : counters)
      if (c.section == section) visit(c);
  };
  out << "tetherd summary\n";
  each_in("counters", [&](const CounterSample& c) { line("  ", c.name, c.value); });
  const bool inspecting = std::any_of(config.services.begin(), config.services.end(),
                                      [](const ServiceConfig& s) { return s.dpi.has_value(); });
  if (inspecting) {
    out << "  sessions:\n";
    each_in("sessions", [&](const CounterSample& c) { line("    ", c.name, c.value); });
  }
  const auto nonzero_list = [&](const char* title, std::string_view section) {
    std::uint64_t total = 0;
    each_in(section, [&](const CounterSample& c) { total += c.value; });
    out << "  " << title << (total ? ":\n" : ": none\n");
    each_in(section, [&](const CounterSample& c) {
      if (c.value) line("    ", c.name, c.value);
    });
  };
  nonzero_list("drops", "drops");
  if (std::any_of(config.ports.begin(), config.ports.end(), [](const PortConfig& p) { return p.kernel.has_value(); }))
    nonzero_list("kernel interfaces", "kernel");
  if (config.sync) nonzero_list("state sync", "sync");
  if (config.ha) nonzero_list("active-standby", "ha");
  if (config.announce) nonzero_list("announcements", "announce");
  if (config.metrics) nonzero_list("metrics over HTTP", "metrics");
  if (inspecting) nonzero_list("dpi fallbacks", "dpi_fallbacks");

  std::uint64_t total_flows = 0;
  for (const auto& b : totals.backends) total_flows += b.flows;
  out << "  backend                 packets          bytes      flows   share   sessions\n";
  for (std::size_t b = 0; b < totals.backends.size(); ++b) {
    const auto& c = totals.backends[b];
    char text[192];
    std::snprintf(text, sizeof text, "  %-16s %14llu %14llu %10llu  %5.1f%% %10llu\n",
                  config.backends[b].name.c_str(), static_cast<unsigned long long>(c.packets),
                  static_cast<unsigned long long>(c.bytes), static_cast<unsigned long long>(c.flows),
                  total_flows ? 100.0 * static_cast<double>(c.flows) / static_cast<double>(total_flows) : 0.0,
                  static_cast<unsigned long long>(c.sessions));
    out << text;
  }
  return out.str();
}

nlohmann::ordered_json counters_document(const Config& config, const Totals& totals) {
  nlohmann::ordered_json document;
  for (const auto& c : list_counters(totals)) document[c.section][c.name] = c.value;
  document["rx_per_worker"] = totals.rx_per_worker;
  auto& backends = document["backends"] = nlohmann::ordered_json::object();
  for (std::size_t b = 0; b < totals.backends.size(); ++b) {
    const auto& c = totals.backends[b];
    auto& backend = backends[config.backends[b].name];
#define TETHER_BACKEND_FIELD(name, help) backend[#name] = c.name;
    TETHER_BACKEND_COUNTERS(TETHER_BACKEND_FIELD)
#undef TETHER_BACKEND_FIELD
    for (std::size_t r = 0; r < dataplane::kRefusalReasons; ++r)
      backend[std::string("refused_") + to_string(static_cast<dataplane::RefusalReason>(r))] = c.refused[r];
  }
  // Admission per service: what its new sessions met (zero for a service without limits).
  auto& services = document["services"] = nlohmann::ordered_json::object();
  for (std::size_t s = 0; s < config.services.size(); ++s) {
    if (config.services[s].removed) continue;
    const dataplane::ServiceCounterValues c = s < totals.services.size() ? totals.services[s] : dataplane::ServiceCounterValues{};
    auto& service = services[config.services[s].name];
    service["admitted"] = c.admitted;
    for (std::size_t r = 0; r < dataplane::kRefusalReasons; ++r)
      service[std::string("refused_") + to_string(static_cast<dataplane::RefusalReason>(r))] = c.refused[r];
  }
  return document;
}

std::string counters_json(const Config& config, const Totals& totals) {
  return counters_document(config, totals).dump() + "\n";
}

}  // namespace tether
