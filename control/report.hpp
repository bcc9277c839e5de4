// Counters of all workers added up: the exit summary and its JSON form.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "control/config.hpp"
#include "dataplane/session_table.hpp"
#include "dataplane/worker.hpp"

namespace tether {

struct Totals {
  dataplane::WorkerCounters workers;
  std::vector<dataplane::BackendCounters> backends;
  std::uint64_t flows_in_tables = 0;
  std::vector<std::uint64_t> rx_per_worker;  // shows how RSS spread the traffic
  dataplane::SweepResult sessions_expired;  // counted by the control thread's sweep
  std::uint64_t sessions_in_table = 0;
  // Heap bytes of the tables and their entries: the memory per flow and per session.
  std::uint64_t flow_table_bytes = 0, flow_table_entries = 0;
  std::uint64_t session_table_bytes = 0, session_table_entries = 0;
};

Totals add_up(const std::vector<std::unique_ptr<dataplane::Worker>>& workers,
              std::size_t backend_count);
// add_up plus what the control thread owns: the session table and its sweep's counts.
Totals add_up(const std::vector<std::unique_ptr<dataplane::Worker>>& workers,
              std::size_t backend_count, const dataplane::SessionTable& sessions,
              const dataplane::SweepResult& expired);
std::string summary_text(const Config& config, const Totals& totals);
std::string counters_json(const Config& config, const Totals& totals);

}  // namespace tether
