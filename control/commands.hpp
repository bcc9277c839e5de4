// The control socket's commands: what an operator sees and changes in a running tetherd.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "control/config.hpp"
#include "control/health.hpp"
#include "control/report.hpp"
#include "control/snapshot_builder.hpp"
#include "dataplane/session_table.hpp"
#include "dataplane/snapshot_channel.hpp"
#include "dataplane/worker.hpp"

namespace tether {

// Everything the control thread owns that commands read or change.
struct ControlState {
  Config config;  // the running configuration, with the weights commands changed
  std::vector<dataplane::BackendState> states;  // as the operator set them
  const HealthChecker* health;
  std::vector<PortIdentity> ports;
  std::uint64_t tsc_hz;
  dataplane::SnapshotPublisher* publisher;
  const std::vector<std::unique_ptr<dataplane::Worker>>* workers;
  const dataplane::SessionTable* sessions;
  const dataplane::SweepResult* expired;

  Totals totals() const;
  // What the workers see: the operator's state, and down while a health check fails.
  dataplane::BackendState effective(std::size_t backend) const;
  // Builds a snapshot from the configuration and states, and publishes it.
  void republish();
};

// One command line in, one JSON document out (an {"error": ...} for anything wrong).
std::string run_command(ControlState& state, const std::string& line);

// Every counter in Prometheus text exposition format.
std::string prometheus_metrics(const ControlState& state);

}  // namespace tether
