// tether's counters in DPDK telemetry (dpdk-telemetry.py): /tether/<section> for each section
// of the stats file (/tether/counters, /tether/drops, /tether/backends...), with its names,
// read from the telemetry thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "control/config.hpp"
#include "control/report.hpp"
#include "dataplane/worker.hpp"

namespace tether {

// The workers must outlive the registration: withdraw_telemetry() waits for any callback
// still reading them, and none reads them after it.
void register_telemetry(const std::vector<std::unique_ptr<dataplane::Worker>>* workers,
                        const Config& config);
// After a reload or a backend command: the backends' names by index.
void set_telemetry_backends(const Config& config);
// From the control thread's loop: the session table's counters, which only it may read.
// The control thread's own counts, from `control` (ControlState::set_control_counts; its
// worker counters are not read).
void set_telemetry_control_counts(const Totals& control);
void withdraw_telemetry();

}  // namespace tether
