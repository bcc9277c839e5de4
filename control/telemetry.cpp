#include "control/telemetry.hpp"

#include <rte_telemetry.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <memory>
#include <mutex>

#include "control/report.hpp"

namespace tether {
namespace {

using Workers = std::vector<std::unique_ptr<dataplane::Worker>>;
using Json = nlohmann::ordered_json;

constexpr const char kPrefix[] = "/tether/";

// DPDK's telemetry callbacks take no context: the one running tetherd's state is global.
// A callback holds the lock while it reads, so that withdraw_telemetry() returns only once
// no callback can still be reading workers that are about to be destroyed.
std::mutex registration;
const Workers* registered_workers = nullptr;     // guarded by `registration`
std::shared_ptr<const Config> registered_config;  // guarded by `registration`
// The control thread's own counters, as it last published them: this thread may not read
// the session table's sweep counts while the control thread adds to them.
Totals published_control;  // guarded by `registration`: its control-thread counts only

// A JSON array or object of numbers as telemetry data (array or dictionary of u64), or of
// such objects (the backends: a dictionary of dictionaries).
int fill(rte_tel_data* data, const Json& section) {
  if (section.is_array()) {
    rte_tel_data_start_array(data, RTE_TEL_U64_VAL);
    for (const auto& value : section) rte_tel_data_add_array_u64(data, value.get<std::uint64_t>());
    return 0;
  }
  rte_tel_data_start_dict(data);
  for (const auto& [name, value] : section.items()) {
    if (value.is_object()) {
      rte_tel_data* inner = rte_tel_data_alloc();
      if (inner == nullptr) return -1;
      rte_tel_data_start_dict(inner);
      for (const auto& [field, number] : value.items())
        rte_tel_data_add_dict_u64(inner, field.c_str(), number.get<std::uint64_t>());
      if (rte_tel_data_add_dict_container(data, name.c_str(), inner, 0) != 0)
        rte_tel_data_free(inner);  // the dictionary is full: kept only when added
    } else {
      rte_tel_data_add_dict_u64(data, name.c_str(), value.get<std::uint64_t>());
    }
  }
  return 0;
}

// Every command: add the workers' counters up and answer with the command's section of the
// stats file's document.
int answer(const char* command, const char*, rte_tel_data* data) {
  const std::lock_guard lock(registration);
  if (registered_workers == nullptr || registered_config == nullptr) return -1;
  // The control thread's counts as it published them, the workers' added as they are now.
  Totals totals = published_control;
  totals.backends.assign(registered_config->backends.size(), {});
  totals.services.assign(registered_config->services.size(), {});
  for (const auto& worker : *registered_workers) add_worker(totals, *worker);
  const Json all = counters_document(*registered_config, totals);
  const auto section = all.find(command + std::strlen(kPrefix));
  if (section == all.end()) return -1;
  return fill(data, *section);
}

}  // namespace

void register_telemetry(const Workers* workers, const Config& config) {
  {
    const std::lock_guard lock(registration);
    registered_workers = workers;
  }
  set_telemetry_backends(config);
  const Json sections = counters_document(config, Totals{});
  for (const auto& [section, _] : sections.items()) {
    const std::string command = kPrefix + section;
    const std::string help = "tether's " + section + ", as in the stats file";
    rte_telemetry_register_cmd(command.c_str(), answer, help.c_str());
  }
}

void set_telemetry_backends(const Config& config) {
  auto copy = std::make_shared<const Config>(config);
  const std::lock_guard lock(registration);
  registered_config = std::move(copy);
}

void set_telemetry_control_counts(const Totals& control) {
  const std::lock_guard lock(registration);
  published_control = control;
}

void withdraw_telemetry() {
  const std::lock_guard lock(registration);
  registered_workers = nullptr;
  registered_config.reset();
}

}  // namespace tether
