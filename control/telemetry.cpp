#include "control/telemetry.hpp"

#include <rte_telemetry.h>

#include <atomic>
#include <memory>

#include "control/report.hpp"

namespace tether {
namespace {

// DPDK's telemetry callbacks take no context: the one running tetherd's state is global.
std::atomic<const std::vector<std::unique_ptr<dataplane::Worker>>*> registered_workers{nullptr};
// Replaced whole by the control thread when backends change; a reader keeps its copy alive.
std::atomic<std::shared_ptr<const std::vector<std::string>>> registered_backends;

int counters(const char*, const char*, rte_tel_data* data) {
  const auto* workers = registered_workers.load();
  const auto backends = registered_backends.load();
  if (workers == nullptr || backends == nullptr) return -1;
  const Totals totals = add_up(*workers, backends->size());
  rte_tel_data_start_dict(data);
  const auto& c = totals.workers;
  for (const auto& [name, value] :
       {std::pair{"rx_packets", c.rx_packets}, {"tx_packets", c.tx_packets},
        {"forwarded", c.forwarded}, {"new_flows", c.new_flows},
        {"flow_table_full", c.flow_table_full}, {"flows_expired", c.flows_expired},
        {"rescheduled", c.rescheduled}, {"flows_in_tables", totals.flows_in_tables}})
    rte_tel_data_add_dict_u64(data, name, value);
  return 0;
}

int drops(const char*, const char*, rte_tel_data* data) {
  const auto* workers = registered_workers.load();
  const auto backends = registered_backends.load();
  if (workers == nullptr || backends == nullptr) return -1;
  const Totals totals = add_up(*workers, backends->size());
  rte_tel_data_start_dict(data);
  for (std::size_t i = 0; i < dataplane::kDropReasonCount; ++i)
    rte_tel_data_add_dict_u64(data, to_string(static_cast<dataplane::DropReason>(i)),
                              totals.workers.drops[i]);
  for (std::size_t i = 1; i < parsers::kParseStatusCount; ++i)
    rte_tel_data_add_dict_u64(data, to_string(static_cast<parsers::ParseStatus>(i)),
                              totals.workers.parse_errors[i]);
  return 0;
}

int backend_packets(const char*, const char*, rte_tel_data* data) {
  const auto* workers = registered_workers.load();
  const auto backends = registered_backends.load();
  if (workers == nullptr || backends == nullptr) return -1;
  const Totals totals = add_up(*workers, backends->size());
  rte_tel_data_start_dict(data);
  for (std::size_t b = 0; b < backends->size(); ++b)
    rte_tel_data_add_dict_u64(data, (*backends)[b].c_str(), totals.backends[b].packets);
  return 0;
}

}  // namespace

void register_telemetry(const std::vector<std::unique_ptr<dataplane::Worker>>* workers,
                        const Config& config) {
  registered_workers = workers;
  set_telemetry_backends(config);
  rte_telemetry_register_cmd("/tether/counters", counters, "tether packet and flow counters");
  rte_telemetry_register_cmd("/tether/drops", drops, "tether drops by reason");
  rte_telemetry_register_cmd("/tether/backends", backend_packets, "packets sent to each backend");
}

void set_telemetry_backends(const Config& config) {
  auto names = std::make_shared<std::vector<std::string>>();
  for (const auto& backend : config.backends) names->push_back(backend.name);
  registered_backends = std::move(names);
}

void withdraw_telemetry() {
  registered_workers = nullptr;
  registered_backends = std::shared_ptr<const std::vector<std::string>>();
}

}  // namespace tether
