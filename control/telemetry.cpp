#include "control/telemetry.hpp"

#include <rte_telemetry.h>

#include <memory>
#include <mutex>

#include "control/report.hpp"

namespace tether {
namespace {

using Workers = std::vector<std::unique_ptr<dataplane::Worker>>;
using BackendNames = std::vector<std::string>;

// DPDK's telemetry callbacks take no context: the one running tetherd's state is global.
// A callback holds the lock while it reads, so that withdraw_telemetry() returns only once
// no callback can still be reading workers that are about to be destroyed.
std::mutex registration;
const Workers* registered_workers = nullptr;     // guarded by `registration`
std::shared_ptr<const BackendNames> registered_backends;  // guarded by `registration`

// Every callback: add the workers' counters up and fill a dictionary from the totals.
template <typename Fill>
int answer(rte_tel_data* data, Fill&& fill) {
  const std::lock_guard lock(registration);
  if (registered_workers == nullptr || registered_backends == nullptr) return -1;
  const Totals totals = add_up(*registered_workers, registered_backends->size());
  rte_tel_data_start_dict(data);
  fill(totals, *registered_backends);
  return 0;
}

int counters(const char*, const char*, rte_tel_data* data) {
  return answer(data, [data](const Totals& totals, const BackendNames&) {
    const auto& c = totals.workers;
    for (const auto& [name, value] :
         {std::pair{"rx_packets", c.rx_packets}, {"tx_packets", c.tx_packets},
          {"forwarded", c.forwarded}, {"new_flows", c.new_flows},
          {"flow_table_full", c.flow_table_full}, {"flows_expired", c.flows_expired},
          {"rescheduled", c.rescheduled}, {"flows_in_tables", totals.flows_in_tables}})
      rte_tel_data_add_dict_u64(data, name, value);
  });
}

int drops(const char*, const char*, rte_tel_data* data) {
  return answer(data, [data](const Totals& totals, const BackendNames&) {
    for (std::size_t i = 0; i < dataplane::kDropReasonCount; ++i)
      rte_tel_data_add_dict_u64(data, to_string(static_cast<dataplane::DropReason>(i)),
                                totals.workers.drops[i]);
    for (std::size_t i = 1; i < parsers::kParseStatusCount; ++i)
      rte_tel_data_add_dict_u64(data, to_string(static_cast<parsers::ParseStatus>(i)),
                                totals.workers.parse_errors[i]);
  });
}

int backend_packets(const char*, const char*, rte_tel_data* data) {
  return answer(data, [data](const Totals& totals, const BackendNames& backends) {
    for (std::size_t b = 0; b < backends.size(); ++b)
      rte_tel_data_add_dict_u64(data, backends[b].c_str(), totals.backends[b].packets);
  });
}

}  // namespace

void register_telemetry(const Workers* workers, const Config& config) {
  {
    const std::lock_guard lock(registration);
    registered_workers = workers;
  }
  set_telemetry_backends(config);
  rte_telemetry_register_cmd("/tether/counters", counters, "tether packet and flow counters");
  rte_telemetry_register_cmd("/tether/drops", drops, "tether drops by reason");
  rte_telemetry_register_cmd("/tether/backends", backend_packets, "packets sent to each backend");
}

void set_telemetry_backends(const Config& config) {
  auto names = std::make_shared<BackendNames>();
  for (const auto& backend : config.backends) names->push_back(backend.name);
  const std::lock_guard lock(registration);
  registered_backends = std::move(names);
}

void withdraw_telemetry() {
  const std::lock_guard lock(registration);
  registered_workers = nullptr;
  registered_backends.reset();
}

}  // namespace tether
