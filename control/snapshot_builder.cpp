#include "control/snapshot_builder.hpp"

#include "control/maglev.hpp"
#include "parsers/packet.hpp"

#include <algorithm>
#include <cstring>

namespace tether {

namespace {

static_assert(static_cast<int>(dataplane::Forwarding::dsr) == static_cast<int>(Forwarding::dsr) &&
              static_cast<int>(dataplane::Forwarding::ipip) == static_cast<int>(Forwarding::ipip) &&
              static_cast<int>(dataplane::Forwarding::gue) == static_cast<int>(Forwarding::gue));

using WeightPercent = std::function<std::uint32_t(std::size_t service, std::size_t backend)>;

dataplane::PoolView build_pool(const Config& config, std::size_t service,
                               const std::vector<ServiceBackend>& members,
                               const std::vector<dataplane::BackendState>& states,
                               const WeightPercent& weight_percent) {
  dataplane::PoolView pool;
  std::vector<MaglevMember> maglev;
  const bool adaptive = config.services[service].adaptive_weight.has_value();
  for (const auto& member : members) {
    const auto backend = static_cast<std::uint16_t>(member.backend);
    const bool up = states.empty() || states[member.backend] == dataplane::BackendState::up;
    const std::uint32_t scale = !adaptive ? 1 : weight_percent ? weight_percent(service, member.backend) : 100;
    const std::uint32_t weight = up ? member.weight * scale : 0;
    maglev.push_back({config.backends[member.backend].name, weight, backend});
    pool.members.push_back({backend, weight, member.max_sessions != 0 ? member.max_sessions : member.max_connections});
  }
  pool.maglev = build_maglev_table(maglev, config.maglev_size);
  return pool;
}

dataplane::AdmissionView admission_view(const ServiceConfig& service, std::uint64_t tsc_hz) {
  const AdmissionConfig& config = service.admission;
  dataplane::AdmissionView view;
  bool capacities = false;
  for (const auto& member : service.backends) capacities |= member.max_sessions != 0 || member.max_connections != 0;
  for (const auto& pool : service.pools)
    for (const auto& member : pool.backends) capacities |= member.max_sessions != 0 || member.max_connections != 0;
  view.active = capacities || config.rate != 0 || config.client_rate != 0;
  view.reject = config.overload == OverloadPolicy::reject;
  view.retry_after_s = config.retry_after_s;
  view.sip_methods = config.sip_methods;
  view.interval_tsc = config.rate != 0 ? std::max<std::uint64_t>(1, tsc_hz / config.rate) : 0;
  view.client_interval_tsc = config.client_rate != 0 ? std::max<std::uint64_t>(1, tsc_hz / config.client_rate) : 0;
  view.tolerance_tsc = tsc_hz;
  return view;
}

dataplane::SessionInspection session_inspection(const ServiceConfig& service) {
  if (!service.dpi) return dataplane::SessionInspection::none;
  switch (*service.dpi) {
    case SessionProtocol::sip:  // SIP over TCP is balanced per connection
      return service.protocol == Protocol::udp ? dataplane::SessionInspection::sip_calls
                                               : dataplane::SessionInspection::none;
    case SessionProtocol::rtsp: return dataplane::SessionInspection::rtsp;
    case SessionProtocol::ftp: return dataplane::SessionInspection::ftp;
    case SessionProtocol::count_: break;
  }
  return dataplane::SessionInspection::none;
}

}  // namespace

std::unique_ptr<dataplane::Snapshot> build_snapshot(
    const Config& config, const std::vector<PortIdentity>& ports, std::uint64_t tsc_hz,
    unsigned workers, const std::vector<dataplane::BackendState>& states,
    const std::vector<MacBytes>& macs, bool standby, const WeightPercent& weight_percent) {
  auto snapshot = std::make_unique<dataplane::Snapshot>();
  snapshot->standby = standby;

  for (std::size_t i = 0; i < config.ports.size(); ++i) {
    const PortConfig& port = config.ports[i];
    dataplane::PortView view{ports[i].port_id, ports[i].mac, port.addresses, port.addresses};
    if (port.kernel) {
      view.local_addresses.clear();
      view.kernel = true;
      // The port's rate split evenly: RSS spreads a flood over the workers, or lands it on one.
      const std::uint64_t rate_per_worker = std::max<std::uint64_t>(1, port.kernel->rate / workers);
      const std::uint64_t burst_per_worker = std::max<std::uint64_t>(1, port.kernel->burst / workers);
      view.kernel_cost_tsc = std::max<std::uint64_t>(1, tsc_hz / rate_per_worker);
      view.kernel_credit_cap_tsc = view.kernel_cost_tsc * burst_per_worker;
      if (config.sync && config.sync->port == i) view.sync_port = config.sync->listen_port;
    }
    // A VIP is answered for on every port: clients may reach the balancer through any.
    for (const auto& service : config.services)
      if (!service.removed) view.local_addresses.push_back(service.vip);
    snapshot->ports.push_back(std::move(view));
  }

  for (std::size_t b = 0; b < config.backends.size(); ++b) {
    dataplane::BackendView view{macs.empty() ? config.backends[b].mac.value_or(MacBytes{}) : macs[b],
                                static_cast<std::uint16_t>(config.backends[b].port),
                                states.empty() ? dataplane::BackendState::up : states[b]};
    std::memcpy(view.ethernet_addresses.data(), view.mac.data(), 6);
    std::memcpy(view.ethernet_addresses.data() + 6, snapshot->ports.at(view.port).mac.data(), 6);
    const PortConfig& port = config.ports[view.port];
    const IpBytes& address = config.backends[b].address;
    view.tunnel = dataplane::make_tunnel_endpoint(
        tunnel_source(port, parsers::is_ipv4_mapped(address)).value_or(IpBytes{}), address, port.mtu, port.gue_port);
    snapshot->backends.push_back(view);
  }

  std::vector<std::pair<std::tuple<IpBytes, std::uint16_t, std::uint8_t>, std::uint16_t>> index;
  bool any_rules = false;
  for (const auto& service : config.services) {
    const auto number = static_cast<std::uint16_t>(snapshot->services.size());
    dataplane::ServiceView view;
    view.ip_proto = service.protocol == Protocol::tcp ? parsers::kProtoTcp : parsers::kProtoUdp;
    view.hash_input = service.scheduler == Scheduler::source_hash
                          ? dataplane::HashInput::client_address
                          : dataplane::HashInput::five_tuple;
    view.dpi = session_inspection(service);
    view.least_sessions = service.scheduler == Scheduler::least_sessions;
    view.least_connections = service.scheduler == Scheduler::least_connections;
    view.forwarding = static_cast<dataplane::Forwarding>(service.forwarding);
    view.idle_timeout_tsc = service.idle_timeout_ms * tsc_hz / 1000;
    view.fin_timeout_tsc = service.fin_timeout_s * tsc_hz;
    view.session_timeout_tsc = service.session_timeout_s * tsc_hz;
    view.linger_tsc = service.linger_s * tsc_hz;
    view.expectation_timeout_tsc = service.expectation_timeout_s * tsc_hz;
    view.pools.push_back(build_pool(config, number, service.backends, states, weight_percent));
    view.admission = admission_view(service, tsc_hz);
    for (const auto& pool : service.pools)
      view.pools.push_back(build_pool(config, number, pool.backends, states, weight_percent));
    for (const auto& member : service.backends)
      if (member.passive_first != 0)
        view.passive_ranges.push_back({member.passive_first, member.passive_last,
                                       static_cast<std::uint16_t>(member.backend)});
    if (!service.rules.empty()) {
      std::vector<dataplane::ContentRule> rules;
      for (const auto& rule : service.rules)
        rules.push_back({rule.field, rule.header, rule.pattern, rule.caseless,
                         static_cast<std::uint16_t>(rule.pool)});
      view.rules = std::make_unique<dataplane::RuleSet>(rules);
      any_rules = true;
    }

    if (service.removed) {  // keeps its index, receives nothing
      snapshot->services.push_back(std::move(view));
      continue;
    }
    index.push_back({{service.vip, service.port, view.ip_proto}, number});
    if (view.dpi == dataplane::SessionInspection::rtsp)
      index.push_back({{service.vip, 0, parsers::kProtoUdp},
                       static_cast<std::uint16_t>(number | dataplane::ServiceIndex::kRelated)});
    if (view.dpi == dataplane::SessionInspection::ftp)
      index.push_back({{service.vip, 0, parsers::kProtoTcp},
                       static_cast<std::uint16_t>(number | dataplane::ServiceIndex::kRelated)});
    snapshot->services.push_back(std::move(view));
  }
  snapshot->service_index.build(index);
  if (config.sync) {
    snapshot->sync_flow_threshold = static_cast<std::uint8_t>(config.sync->flow_threshold);
    snapshot->sync_flow_period = static_cast<std::uint8_t>(config.sync->flow_period);
  }

  snapshot->rule_scratch.assign(workers, nullptr);
  if (any_rules)
    for (auto& scratch : snapshot->rule_scratch)
      for (const auto& service : snapshot->services)
        if (service.rules) {
          hs_scratch* grown = service.rules->make_scratch_from(scratch);
          scratch = grown;
        }
  return snapshot;
}

}  // namespace tether
