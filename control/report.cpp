#include "control/report.hpp"

#include <cstdio>
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
  visit("arp_replies", c.arp_replies);
  visit("icmp_echo_replies", c.icmp_echo_replies);
  visit("nd_advertisements", c.nd_advertisements);
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
    sum.arp_replies += c.arp_replies;
    sum.icmp_echo_replies += c.icmp_echo_replies;
    sum.nd_advertisements += c.nd_advertisements;
    sum.busy_polls += c.busy_polls;
    sum.idle_polls += c.idle_polls;
    for (std::size_t i = 0; i < c.drops.size(); ++i) sum.drops[i] += c.drops[i];
    for (std::size_t i = 0; i < c.parse_errors.size(); ++i) sum.parse_errors[i] += c.parse_errors[i];
    for (std::size_t b = 0; b < backend_count; ++b) {
      const auto& bc = w->backend_counters()[b];
      t.backends[b].packets += bc.packets;
      t.backends[b].bytes += bc.bytes;
      t.backends[b].flows += bc.flows;
    }
    t.flows_in_tables += w->flow_count();
  }
  return t;
}

std::string summary_text(const Config& config, const Totals& totals) {
  std::ostringstream out;
  out << "tetherd summary\n";
  each_counter(totals.workers, [&](const char* name, std::uint64_t v) {
    char line[96];
    std::snprintf(line, sizeof line, "  %-22s %14llu\n", name, static_cast<unsigned long long>(v));
    out << line;
  });
  std::uint64_t dropped = 0;
  each_drop(totals.workers, [&](const char*, std::uint64_t v) { dropped += v; });
  out << (dropped ? "  drops:\n" : "  drops: none\n");
  each_drop(totals.workers, [&](const char* name, std::uint64_t v) {
    if (v == 0) return;
    char line[96];
    std::snprintf(line, sizeof line, "    %-30s %12llu\n", name, static_cast<unsigned long long>(v));
    out << line;
  });
  std::uint64_t total_flows = 0;
  for (const auto& b : totals.backends) total_flows += b.flows;
  out << "  backend                 packets          bytes      flows   share\n";
  for (std::size_t b = 0; b < totals.backends.size(); ++b) {
    const auto& c = totals.backends[b];
    char line[160];
    std::snprintf(line, sizeof line, "  %-16s %14llu %14llu %10llu  %5.1f%%\n",
                  config.backends[b].name.c_str(), static_cast<unsigned long long>(c.packets),
                  static_cast<unsigned long long>(c.bytes), static_cast<unsigned long long>(c.flows),
                  total_flows ? 100.0 * static_cast<double>(c.flows) / static_cast<double>(total_flows) : 0.0);
    out << line;
  }
  return out.str();
}

std::string counters_json(const Config& config, const Totals& totals) {
  std::ostringstream out;
  out << "{\"counters\":{";
  bool first = true;
  auto field = [&](const char* name, std::uint64_t v) {
    out << (first ? "" : ",") << '"' << name << "\":" << v;
    first = false;
  };
  each_counter(totals.workers, field);
  field("flows_in_tables", totals.flows_in_tables);
  out << "},\"drops\":{";
  first = true;
  each_drop(totals.workers, field);
  out << "},\"backends\":{";
  for (std::size_t b = 0; b < totals.backends.size(); ++b) {
    const auto& c = totals.backends[b];
    out << (b ? "," : "") << '"' << config.backends[b].name << "\":{\"packets\":" << c.packets
        << ",\"bytes\":" << c.bytes << ",\"flows\":" << c.flows << '}';
  }
  out << "}}\n";
  return out.str();
}

}  // namespace tether
