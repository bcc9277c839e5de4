#include "control/snapshot_builder.hpp"

#include "control/maglev.hpp"
#include "parsers/packet.hpp"

namespace tether {

std::unique_ptr<dataplane::Snapshot> build_snapshot(const Config& config,
                                                    const std::vector<PortIdentity>& ports,
                                                    std::uint64_t tsc_hz) {
  auto snapshot = std::make_unique<dataplane::Snapshot>();

  for (std::size_t i = 0; i < config.ports.size(); ++i) {
    dataplane::PortView view{ports[i].port_id, ports[i].mac, config.ports[i].addresses};
    // A VIP is answered for on every port: clients may reach the balancer through any.
    for (const auto& service : config.services) view.local_addresses.push_back(service.vip);
    snapshot->ports.push_back(std::move(view));
  }

  for (const auto& backend : config.backends)
    snapshot->backends.push_back({backend.mac, static_cast<std::uint16_t>(backend.port)});

  std::vector<std::pair<std::tuple<IpBytes, std::uint16_t, std::uint8_t>, std::uint16_t>> index;
  for (const auto& service : config.services) {
    dataplane::ServiceView view;
    view.ip_proto = service.protocol == Protocol::tcp ? parsers::kProtoTcp : parsers::kProtoUdp;
    view.hash_input = service.scheduler == Scheduler::source_hash
                          ? dataplane::HashInput::client_address
                          : dataplane::HashInput::five_tuple;
    view.idle_timeout_tsc = service.idle_timeout_s * tsc_hz;
    view.fin_timeout_tsc = service.fin_timeout_s * tsc_hz;
    std::vector<MaglevMember> members;
    for (const auto& member : service.backends)
      members.push_back({config.backends[member.backend].name, member.weight,
                         static_cast<std::uint16_t>(member.backend)});
    view.maglev = build_maglev_table(members, config.maglev_size);
    index.push_back({{service.vip, service.port, view.ip_proto},
                     static_cast<std::uint16_t>(snapshot->services.size())});
    snapshot->services.push_back(std::move(view));
  }
  snapshot->service_index.build(index);
  return snapshot;
}

}  // namespace tether
