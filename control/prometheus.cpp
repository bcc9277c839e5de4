#include "control/prometheus.hpp"

#include <sstream>

#include "control/commands.hpp"

namespace tether {

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
      << "tether_related_repointed_total " << w.related_repointed << "\n"
      << "tether_sessions_in_table " << totals.sessions_in_table << "\n";
  out << "# TYPE tether_backend_packets_total counter\n";
  for (std::size_t b = 0; b < state.config.backends.size(); ++b) {
    if (state.config.backends[b].removed) continue;
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
