// Every counter in Prometheus text exposition format (`tetherctl metrics`): the families of
// report.hpp's list_counters, each worker's counters with a worker label, and the backends'.
#pragma once

#include <string>

namespace tether {

struct ControlState;

std::string prometheus_metrics(const ControlState& state);

}  // namespace tether
