// Turns the configuration into the immutable Snapshot the workers read.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "control/config.hpp"
#include "dataplane/snapshot.hpp"

namespace tether {

struct PortIdentity {
  std::uint16_t port_id;
  MacBytes mac;
};

// `ports[i]` is the opened device of config.ports[i]; `tsc_hz` converts timeouts to cycles;
// `workers` is how many workers need their own content-rule scratch space; `states[b]` is
// backend b's state (all up when empty): only up backends get Maglev slots; `macs[b]` is its
// MAC as resolved (when empty: the static MACs of the configuration); `standby`: an
// active-standby pair's backup or fault, which neither forwards nor answers for the VIPs;
// `weight_percent(s, b)`: for a service with adaptive_weight, the share (percent) of b's
// configured weight it has now (100 when not given): such a service's members get their
// weight x percent, so that shares below one configured unit stay exact.
std::unique_ptr<dataplane::Snapshot> build_snapshot(
    const Config& config, const std::vector<PortIdentity>& ports, std::uint64_t tsc_hz,
    unsigned workers = 1, const std::vector<dataplane::BackendState>& states = {},
    const std::vector<MacBytes>& macs = {}, bool standby = false,
    const std::function<std::uint32_t(std::size_t service, std::size_t backend)>& weight_percent = {});

}  // namespace tether
