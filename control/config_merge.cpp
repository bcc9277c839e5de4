#include <algorithm>
#include <cstdint>

#include "control/config.hpp"
#include "dataplane/limits.hpp"

namespace tether {
namespace {

// Where each of `desired`'s live entries goes in the merged list: the index of the running
// entry with its name, or a new index after all running ones.
template <typename Entry>
std::vector<std::size_t> place_by_name(const std::vector<Entry>& running, const std::vector<Entry>& desired,
                                       std::size_t limit, const char* what) {
  std::vector<std::size_t> place(desired.size(), SIZE_MAX);
  std::size_t next = running.size();
  for (std::size_t d = 0; d < desired.size(); ++d) {
    if (desired[d].removed) continue;
    for (std::size_t r = 0; r < running.size(); ++r)
      if (running[r].name == desired[d].name) place[d] = r;
    if (place[d] == SIZE_MAX) place[d] = next++;
  }
  if (next > limit)
    throw ConfigError(std::string("too many ") + what + " since start (" + std::to_string(next) +
                      ", removed ones included; at most " + std::to_string(limit) +
                      "): restart tetherd to apply");
  return place;
}

}  // namespace

Config merge_running(const Config& running, const Config& desired) {
  const auto restart_only = [&](bool same, const char* what) {
    if (!same) throw ConfigError(std::string(what) + " changed: restart tetherd to apply it");
  };
  restart_only(running.workers == desired.workers, "workers");
  restart_only(running.eal_args == desired.eal_args, "eal");
  restart_only(running.flows_per_worker == desired.flows_per_worker &&
                   running.maglev_size == desired.maglev_size &&
                   running.mbufs_per_port == desired.mbufs_per_port &&
                   running.mbuf_data_size == desired.mbuf_data_size &&
                   running.sessions == desired.sessions &&
                   running.dpi_streams_per_worker == desired.dpi_streams_per_worker &&
                   running.dpi_sessions_per_worker == desired.dpi_sessions_per_worker,
               "tables");
  restart_only(running.fragments == desired.fragments, "fragments");
  restart_only(running.ports == desired.ports, "ports");
  // The socket, key and peers are set up once, at start (the key file is read again with
  // the configuration: a new key needs a restart too).
  restart_only(running.sync == desired.sync, "sync");
  // Standalone or paired, and the announcements' pace, are set at start.
  restart_only(running.ha == desired.ha, "ha");
  restart_only(running.announce == desired.announce, "announce");
  // The HTTP server binds its socket once, at start.
  restart_only(running.metrics == desired.metrics, "metrics");

  Config merged = desired;
  const auto backend_place =
      place_by_name(running.backends, desired.backends, dataplane::kMaxBackends, "backends");
  const auto service_place = place_by_name(running.services, desired.services,
                                           dataplane::kMaxServices, "services");

  std::size_t backends = running.backends.size(), services = running.services.size();
  for (auto p : backend_place) if (p != SIZE_MAX) backends = std::max(backends, p + 1);
  for (auto p : service_place) if (p != SIZE_MAX) services = std::max(services, p + 1);

  merged.backends.assign(backends, BackendConfig{});
  for (std::size_t r = 0; r < running.backends.size(); ++r) {
    merged.backends[r] = running.backends[r];
    merged.backends[r].removed = true;  // unless the desired list has it
  }
  for (std::size_t d = 0; d < desired.backends.size(); ++d)
    if (backend_place[d] != SIZE_MAX) merged.backends[backend_place[d]] = desired.backends[d];

  const auto remap = [&](std::vector<ServiceBackend>& members) {
    for (auto& member : members) member.backend = backend_place[member.backend];
  };
  merged.services.assign(services, ServiceConfig{});
  for (std::size_t r = 0; r < running.services.size(); ++r) {
    ServiceConfig gone = running.services[r];
    gone.removed = true;
    gone.backends.clear();
    gone.pools.clear();
    gone.rules.clear();
    gone.health_check.reset();
    merged.services[r] = std::move(gone);
  }
  for (std::size_t d = 0; d < desired.services.size(); ++d) {
    if (service_place[d] == SIZE_MAX) continue;
    ServiceConfig service = desired.services[d];
    remap(service.backends);
    for (auto& pool : service.pools) remap(pool.backends);
    merged.services[service_place[d]] = std::move(service);
  }
  return merged;
}

}  // namespace tether
