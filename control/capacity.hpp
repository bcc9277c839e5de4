// Each backend's capacity in each service that sets one, beside the sessions it holds: what
// `show backends` and the Prometheus metrics report of admission (docs/design.md "Admission").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/config.hpp"
#include "dataplane/live_counts.hpp"
#include "dataplane/session_table.hpp"

namespace tether {

struct CapacityRow {
  const ServiceConfig* service;
  std::size_t backend;
  const char* counts;  // "sessions" (max_sessions) or "connections" (max_connections)
  std::uint32_t capacity;
  std::int64_t held;  // what the dataplane's admission compares with the capacity
};

// In service order, each member (default pool, then the others) with a capacity, once.
// `connections`: live TCP connections per backend (null: none counted).
std::vector<CapacityRow> capacity_rows(const Config& config, const dataplane::SessionTable& sessions,
                                       const dataplane::LiveCounts* connections);

}  // namespace tether
