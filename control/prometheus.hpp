// Every counter in Prometheus text exposition format (`tetherctl metrics`).
#pragma once

#include <string>

namespace tether {

struct ControlState;

std::string prometheus_metrics(const ControlState& state);

}  // namespace tether
