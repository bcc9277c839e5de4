#include "control/report.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <sstream>

namespace tether {
namespace {

using dataplane::DropReason;
using parsers::ParseStatus;

// Every counter once, with its name: the text summary and the JSON both walk this list.
template <typename Visit>
void each_counter(const dataplane::WorkerCounters& c, Visit visit) {
  visit("rx_packets", c.rx_packets);
  visit("rx_bytes", c.rx_bytes);
  visit("tx_packets", c.tx_packets);
  visit("tx_bytes", c.tx_bytes);
  visit("forwarded", c.forwarded);
  visit("new_flows", c.new_flows);
  visit("flow_table_full", c.flow_table_full);
  visit("flows_expired", c.flows_expired);
  visit("rescheduled", c.rescheduled);
  visit("related_repointed", c.related_repointed);
  visit("to_control", c.to_control);
  visit("arp_replies", c.arp_replies);
  visit("icmp_echo_replies", c.icmp_echo_replies);
  visit("nd_advertisements", c.nd_advertisements);
  visit("busy_polls", c.busy_polls);
  visit("idle_polls", c.idle_polls);
  visit("loop_cycles", c.loop_cycles);
  visit("busy_cycles", c.busy_cycles);
}

// Session counters, named like "sip_sessions_created" or "rtp_expectations_used".
template <typename Visit>
void each_session_counter(const Totals& t, Visit visit) {
  using dataplane::SessionProtocol;
  using dataplane::Expectation;
  const auto& c = t.workers;
  std::string name;
  for (std::size_t p = 0; p < dataplane::kSessionProtocols; ++p) {
    const std::string protocol = to_string(static_cast<SessionProtocol>(p));
    visit((protocol + "_messages_inspected").c_str(), c.messages_inspected[p]);
    visit((protocol + "_sessions_created").c_str(), c.sessions_created[p]);
    visit((protocol + "_sessions_ended").c_str(), c.sessions_ended[p]);
  }
  const auto expired = [&](dataplane::SessionKind kind) {
    return t.sessions_expired.expired[static_cast<std::size_t>(kind)];
  };
  visit("sip_sessions_expired", expired(dataplane::SessionKind::sip_call));
  for (std::size_t e = 0; e < dataplane::kExpectationKinds; ++e) {
    const std::string kind = to_string(static_cast<Expectation>(e));
    visit((kind + "_expectations_created").c_str(), c.expectations_created[e]);
    visit((kind + "_expectations_used").c_str(), c.expectations_used[e]);
  }
  visit("rtp_expectations_expired", expired(dataplane::SessionKind::rtp_expectation));
  visit("ftp_data_expectations_expired", expired(dataplane::SessionKind::ftp_expectation));
  visit("sessions_in_table", t.sessions_in_table);
}

template <typename Visit>
void each_fallback(const dataplane::WorkerCounters& c, Visit visit) {
  for (std::size_t i = 0; i < dataplane::kDpiFallbackCount; ++i)
    visit(to_string(static_cast<dataplane::DpiFallback>(i)), c.dpi_fallbacks[i]);
}

template <typename Visit>
void each_drop(const dataplane::WorkerCounters& c, Visit visit) {
  for (std::size_t i = 0; i < dataplane::kDropReasonCount; ++i)
    visit(to_string(static_cast<DropReason>(i)), c.drops[i]);
  for (std::size_t i = 1; i < parsers::kParseStatusCount; ++i)
    visit(to_string(static_cast<ParseStatus>(i)), c.parse_errors[i]);
}

}  // namespace

Totals add_up(const std::vector<std::unique_ptr<dataplane::Worker>>& workers,
              std::size_t backend_count) {
  Totals t;
  t.backends.resize(backend_count);
  auto& sum = t.workers;
  for (const auto& w : workers) {
    const auto& c = w->counters();
    sum.rx_packets += c.rx_packets;
    sum.rx_bytes += c.rx_bytes;
    sum.tx_packets += c.tx_packets;
    sum.tx_bytes += c.tx_bytes;
    sum.forwarded += c.forwarded;
    sum.new_flows += c.new_flows;
    sum.flow_table_full += c.flow_table_full;
    sum.flows_expired += c.flows_expired;
    sum.rescheduled += c.rescheduled;
    sum.related_repointed += c.related_repointed;
    sum.to_control += c.to_control;
    sum.arp_replies += c.arp_replies;
    sum.icmp_echo_replies += c.icmp_echo_replies;
    sum.nd_advertisements += c.nd_advertisements;
    sum.busy_polls += c.busy_polls;
    sum.idle_polls += c.idle_polls;
    sum.loop_cycles += c.loop_cycles;
    sum.busy_cycles += c.busy_cycles;
    for (std::size_t i = 0; i < c.drops.size(); ++i) sum.drops[i] += c.drops[i];
    for (std::size_t i = 0; i < c.parse_errors.size(); ++i) sum.parse_errors[i] += c.parse_errors[i];
    for (std::size_t i = 0; i < c.sessions_created.size(); ++i) {
      sum.sessions_created[i] += c.sessions_created[i];
      sum.sessions_ended[i] += c.sessions_ended[i];
      sum.messages_inspected[i] += c.messages_inspected[i];
    }
    for (std::size_t i = 0; i < c.expectations_created.size(); ++i) {
      sum.expectations_created[i] += c.expectations_created[i];
      sum.expectations_used[i] += c.expectations_used[i];
    }
    for (std::size_t i = 0; i < c.dpi_fallbacks.size(); ++i) sum.dpi_fallbacks[i] += c.dpi_fallbacks[i];
    for (std::size_t b = 0; b < backend_count; ++b) {
      const auto& bc = w->backend_counters()[b];
      t.backends[b].packets += bc.packets;
      t.backends[b].bytes += bc.bytes;
      t.backends[b].flows += bc.flows;
      t.backends[b].sessions += bc.sessions;
    }
    t.flows_in_tables += w->flow_count();
    t.flow_table_bytes += w->flow_table().memory_bytes();
    t.flow_table_entries += w->flow_table().capacity();
    t.rx_per_worker.push_back(c.rx_packets);
  }
  return t;
}

Totals add_up(const std::vector<std::unique_ptr<dataplane::Worker>>& workers,
              std::size_t backend_count, const dataplane::SessionTable& sessions,
              const dataplane::SweepResult& expired) {
  Totals t = add_up(workers, backend_count);
  t.sessions_expired = expired;
  t.sessions_in_table = sessions.size();
  t.session_table_bytes = sessions.memory_bytes();
  t.session_table_entries = sessions.capacity();
  return t;
}

std::string summary_text(const Config& config, const Totals& totals) {
  std::ostringstream out;
  const auto line = [&](const char* indent, const char* name, std::uint64_t v) {
    char text[128];
    std::snprintf(text, sizeof text, "%s%-30s %14llu\n", indent, name, static_cast<unsigned long long>(v));
    out << text;
  };
  out << "tetherd summary\n";
  each_counter(totals.workers, [&](const char* name, std::uint64_t v) { line("  ", name, v); });
  const bool inspecting = std::any_of(config.services.begin(), config.services.end(),
                                      [](const ServiceConfig& s) { return s.dpi != SessionProtocol::none; });
  if (inspecting) {
    out << "  sessions:\n";
    each_session_counter(totals, [&](const char* name, std::uint64_t v) { line("    ", name, v); });
  }
  const auto nonzero_list = [&](const char* title, auto each) {
    std::uint64_t total = 0;
    each([&](const char*, std::uint64_t v) { total += v; });
    out << "  " << title << (total ? ":\n" : ": none\n");
    each([&](const char* name, std::uint64_t v) {
      if (v) line("    ", name, v);
    });
  };
  nonzero_list("drops", [&](auto visit) { each_drop(totals.workers, visit); });
  if (inspecting)
    nonzero_list("dpi fallbacks", [&](auto visit) { each_fallback(totals.workers, visit); });

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

std::string counters_json(const Config& config, const Totals& totals) {
  std::ostringstream out;
  bool first = true;
  auto field = [&](const char* name, std::uint64_t v) {
    out << (first ? "" : ",") << '"' << name << "\":" << v;
    first = false;
  };
  out << "{\"counters\":{";
  each_counter(totals.workers, field);
  field("flows_in_tables", totals.flows_in_tables);
  out << "},\"sessions\":{";
  first = true;
  each_session_counter(totals, field);
  out << "},\"drops\":{";
  first = true;
  each_drop(totals.workers, field);
  out << "},\"dpi_fallbacks\":{";
  first = true;
  each_fallback(totals.workers, field);
  out << "},\"memory\":{\"flow_table_bytes\":" << totals.flow_table_bytes
      << ",\"flow_table_entries\":" << totals.flow_table_entries
      << ",\"session_table_bytes\":" << totals.session_table_bytes
      << ",\"session_table_entries\":" << totals.session_table_entries;
  out << "},\"rx_per_worker\":[";
  for (std::size_t w = 0; w < totals.rx_per_worker.size(); ++w)
    out << (w ? "," : "") << totals.rx_per_worker[w];
  out << "],\"backends\":{";
  for (std::size_t b = 0; b < totals.backends.size(); ++b) {
    const auto& c = totals.backends[b];
    out << (b ? "," : "") << '"' << config.backends[b].name << "\":{\"packets\":" << c.packets
        << ",\"bytes\":" << c.bytes << ",\"flows\":" << c.flows << ",\"sessions\":" << c.sessions
        << '}';
  }
  out << "}}\n";
  return out.str();
}

}  // namespace tether
