// tether's counters in DPDK telemetry (dpdk-telemetry.py: /tether/counters, /tether/drops,
// /tether/backends), read from the telemetry thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dataplane/worker.hpp"

namespace tether {

// The workers and backend names must outlive the registration, until withdraw_telemetry().
void register_telemetry(const std::vector<std::unique_ptr<dataplane::Worker>>* workers,
                        const std::vector<std::string>* backend_names);
void withdraw_telemetry();

}  // namespace tether
