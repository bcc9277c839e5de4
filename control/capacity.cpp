#include "control/capacity.hpp"

#include <algorithm>

namespace tether {

std::vector<CapacityRow> capacity_rows(const Config& config, const dataplane::SessionTable& sessions,
                                       const dataplane::LiveCounts* connections) {
  std::vector<CapacityRow> rows;
  for (const ServiceConfig& service : config.services) {
    if (service.removed) continue;
    const bool calls = service.dpi == SessionProtocol::sip;
    const auto control = service.dpi == SessionProtocol::rtsp ? dataplane::SessionTable::ControlProtocol::rtsp
                                                               : dataplane::SessionTable::ControlProtocol::ftp;
    const auto add = [&](const ServiceBackend& member) {
      const std::uint32_t capacity = member.max_sessions != 0 ? member.max_sessions : member.max_connections;
      if (capacity == 0) return;
      if (std::any_of(rows.begin(), rows.end(), [&](const CapacityRow& row) {
            return row.service == &service && row.backend == member.backend;
          }))
        return;
      const auto backend = static_cast<std::uint16_t>(member.backend);
      const std::int64_t held = member.max_sessions == 0 ? (connections != nullptr ? connections->at(backend) : 0)
                                : calls               ? sessions.live_calls(backend)
                                                      : sessions.control_connections(control).at(backend);
      rows.push_back({&service, member.backend, member.max_sessions != 0 ? "sessions" : "connections",
                      capacity, std::max<std::int64_t>(0, held)});
    };
    for (const ServiceBackend& member : service.backends) add(member);
    for (const PoolConfig& pool : service.pools)
      for (const ServiceBackend& member : pool.backends) add(member);
  }
  return rows;
}

}  // namespace tether
