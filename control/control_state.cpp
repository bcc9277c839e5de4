#include "control/control_state.hpp"

#include <algorithm>

#include "control/log.hpp"
#include "control/telemetry.hpp"

namespace tether {

std::vector<MacBytes> ControlState::device_macs() const {
  std::vector<MacBytes> macs;
  for (const auto& port : ports) macs.push_back(port.mac);
  return macs;
}

Totals ControlState::totals() const {
  Totals t = add_up(*workers, config.backends.size(), config.services.size());
  set_control_counts(t);
  return t;
}

void ControlState::set_control_counts(Totals& t) const {
  t.sessions = read_sessions(*sessions, *expired);
  if (fragments != nullptr) {
    t.fragment_table_bytes = fragments->memory_bytes();
    t.fragment_table_entries = fragments->capacity();
  }
  if (kernel != nullptr) t.kernel = kernel->totals();
  t.sync = sync_totals(sync, sync_sender);
  if (ha != nullptr) t.ha = ha->totals();
  if (announcer != nullptr) t.announce = announcer->totals();
  if (metrics_server != nullptr) t.metrics = metrics_server->totals();
}

dataplane::BackendState ControlState::effective(std::size_t backend) const {
  if (backend < peer_holds.size() && peer_holds[backend] == PeerHold::held) return dataplane::BackendState::down;
  return own_state(backend);
}

dataplane::BackendState ControlState::own_state(std::size_t backend) const {
  if (config.backends[backend].removed) return dataplane::BackendState::down;
  if (health != nullptr && !health->healthy(backend)) return dataplane::BackendState::down;
  if (!neighbours->resolved(backend)) return dataplane::BackendState::down;
  return states[backend];
}

std::vector<VipDecision> ControlState::announcement_decisions(std::uint64_t now) {
  InstanceCondition instance;
  instance.workers_progress = progress == nullptr || progress->stalled(now).empty();
  instance.master = ha == nullptr || ha->role() == HaRole::master;
  instance.draining = announcer != nullptr && announcer->drain().active();
  if (!bulk_synced) bulk_synced = bulk_awaited_peers(now).empty();
  instance.bulk_pending = !bulk_synced;
  std::vector<bool> can_serve(config.services.size());
  for (std::size_t s = 0; s < config.services.size(); ++s)
    can_serve[s] = service_can_serve(config.services[s], [this](std::size_t b) { return effective(b); });
  return decide_announcements(config, instance, can_serve);
}

std::uint64_t ControlState::placed() const {
  const Totals t = add_up(*workers, config.backends.size());
  std::uint64_t sum = 0;
  for (const auto& backend : t.backends) sum += backend.flows + backend.sessions;
  return sum;
}

std::unique_ptr<dataplane::Snapshot> ControlState::build() const {
  std::vector<dataplane::BackendState> now(states.size());
  std::vector<MacBytes> macs(states.size());
  for (std::size_t b = 0; b < states.size(); ++b) {
    now[b] = effective(b);
    macs[b] = neighbours->mac(b);
  }
  return build_snapshot(config, ports, tsc_hz, config.workers, now, macs,
                        ha != nullptr && !ha->forwarding(), [this](std::size_t service, std::size_t backend) {
                          return health != nullptr ? health->weight_percent(service, backend) : 100u;
                        });
}

std::vector<IpBytes> ControlState::bulk_awaited_peers(std::uint64_t now) const {
  std::vector<IpBytes> awaited;
  if (bulk_synced || !config.sync || sync == nullptr || !config.announce) return awaited;
  const std::uint64_t wait = std::uint64_t{config.announce->bulk_wait_s} * tsc_hz;
  for (const IpBytes& peer : config.sync->peers)
    if (bulk_awaited(sync->bulk_received_from(peer), sync->last_heard_from(peer), started_tsc, now, wait))
      awaited.push_back(peer);
  return awaited;
}

void ControlState::republish() {
  std::vector<PeerHold> holds;
  if (sync != nullptr) {
    std::vector<dataplane::BackendState> own(config.backends.size());
    for (std::size_t b = 0; b < own.size(); ++b) own[b] = own_state(b);
    holds = decide_peer_holds(config, own, [&](std::size_t b) { return !sync->peer_health().reporting_down(b).empty(); });
  }
  for (std::size_t b = 0; b < std::max(holds.size(), peer_holds.size()); ++b) {
    const PeerHold before = b < peer_holds.size() ? peer_holds[b] : PeerHold::none;
    const PeerHold after = b < holds.size() ? holds[b] : PeerHold::none;
    if (before != after && b < config.backends.size())
      TETHER_LOG(info, "backend %s: %s", config.backends[b].name.c_str(),
                 after == PeerHold::none ? "no peer reports it down any more" : to_string(after));
  }
  peer_holds = std::move(holds);
  publisher->publish(build());
}

void ControlState::adopt(const Config& desired) {
  Config merged = merge_running(config, desired);
  validate(merged, device_macs());  // a command's change meets the rules a file must
  for (std::size_t b = 0; b < merged.backends.size(); ++b)
    if (b >= states.size() || (config.backends[b].removed && !merged.backends[b].removed)) {
      states.resize(std::max(states.size(), b + 1), dataplane::BackendState::up);
      states[b] = dataplane::BackendState::up;  // new, or back after a removal
    }
  config = std::move(merged);
  neighbours->update(config);
  if (health != nullptr) health->update();
  set_telemetry_backends(config);
  republish();
}

}  // namespace tether
