// Counters of all workers added up, and every output made of them: the exit summary, the
// stats file and `show counters` (one JSON document), and the list DPDK telemetry and
// Prometheus walk. All of them come from the lists in dataplane/counters.hpp.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "control/announce.hpp"
#include "control/metrics_server.hpp"
#include "control/config.hpp"
#include "control/ha.hpp"
#include "control/kernel_interfaces.hpp"
#include "control/sync_receiver.hpp"
#include "dataplane/session_table.hpp"
#include "dataplane/worker.hpp"

namespace tether {

// What the control thread counts itself: the shared session table and its expiry sweep.
struct SessionTotals {
  dataplane::SweepResult expired;
  std::uint64_t in_table = 0;
  std::uint64_t table_bytes = 0, table_entries = 0;
};

struct Totals {
  dataplane::WorkerCounterValues workers;
  std::vector<dataplane::BackendCounterValues> backends;
  std::vector<dataplane::ServiceCounterValues> services;  // admission's, by service index
  std::vector<std::uint64_t> rx_per_worker;  // shows how RSS spread the traffic
  // Heap bytes of the tables and their entries: the memory per flow and per session.
  std::uint64_t flow_table_bytes = 0, flow_table_entries = 0;
  SessionTotals sessions;
  std::uint64_t fragment_table_bytes = 0, fragment_table_entries = 0;  // the control thread's
  KernelPathTotals kernel;  // the control thread's end of the kernel interfaces
  SyncTotals sync;          // the state sync receiver's (zero without `sync`)
  HaTotals ha;              // the active-standby state's (zero without `ha`)
  AnnounceTotals announce;  // the VIP routes' (zero without `announce`)
  MetricsServerTotals metrics;  // the HTTP server's (zero without `metrics`)
};

// Adds one worker's counters (and its flow table's size) to `totals`, whose `backends`
// has room for every backend (and `services` for the services it wants counted).
void add_worker(Totals& totals, const dataplane::Worker& worker);
Totals add_up(const std::vector<std::unique_ptr<dataplane::Worker>>& workers,
              std::size_t backend_count, std::size_t service_count = 0);
// On the control thread, which owns the session table and sweeps it.
SessionTotals read_sessions(const dataplane::SessionTable& sessions,
                            const dataplane::SweepResult& expired);

// What a counter is in Prometheus: the family tether_<name>, and the label that tells the
// counter from the family's others, if any.
struct Metric {
  const char* name;
  const char* type;  // "counter" or "gauge"
  const char* help;
  const char* label = nullptr;  // "protocol", "kind" or "reason"
  const char* label_value = nullptr;
  bool per_worker = false;  // a worker's own count: exported once per worker
};

// One value of a name-value section of the stats file.
struct CounterSample {
  const char* section;  // "counters", "sessions", "drops", "dpi_fallbacks", "kernel", "sync", "ha", "announce", "metrics" or "memory"
  std::string name;
  std::uint64_t value;
  Metric metric;
};

// Every name-value counter of the stats file, in its order.
std::vector<CounterSample> list_counters(const Totals& totals);

std::string summary_text(const Config& config, const Totals& totals);
// The stats file and `show counters`: the sections of list_counters, then rx_per_worker
// and the backends' counters by name.
nlohmann::ordered_json counters_document(const Config& config, const Totals& totals);
std::string counters_json(const Config& config, const Totals& totals);

}  // namespace tether
