#include "control/peer_health.hpp"

#include <algorithm>

#include "control/announce.hpp"

namespace tether {

bool PeerHealth::any_down(const Peer& peer) {
  return std::any_of(peer.up.begin(), peer.up.end(), [](const auto& entry) { return !entry.second; });
}

bool PeerHealth::heard(const SyncSenderKey& key, std::uint64_t epoch, std::uint64_t now) {
  Peer& peer = peers_[key];
  bool forgot = false;
  if (peer.epoch != epoch) {  // a restarted peer checks afresh: its old run's word is void
    forgot = any_down(peer);
    peer.up.clear();
    peer.epoch = epoch;
  }
  peer.last_heard = now;
  return forgot;
}

bool PeerHealth::report(const SyncSenderKey& key, std::uint16_t backend, bool up) {
  Peer& peer = peers_[key];
  const auto [entry, added] = peer.up.try_emplace(backend, up);
  // A backend first heard of counts as a transition only when it is down: up is what a
  // receiver assumes of a peer it knows nothing about.
  const bool changed = added ? !up : entry->second != up;
  entry->second = up;
  if (changed) ++transitions_;
  return changed;
}

bool PeerHealth::expire(std::uint64_t now, std::uint64_t silence) {
  bool forgot = false;
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (now - it->second.last_heard >= silence) {
      forgot |= any_down(it->second);
      it = peers_.erase(it);
    } else {
      ++it;
    }
  }
  return forgot;
}

std::vector<SyncSenderKey> PeerHealth::reporting_down(std::size_t backend) const {
  std::vector<SyncSenderKey> down;
  for (const auto& [key, peer] : peers_)
    if (const auto it = peer.up.find(static_cast<std::uint16_t>(backend)); it != peer.up.end() && !it->second)
      down.push_back(key);
  return down;
}

std::vector<std::uint16_t> PeerHealth::down_of(const SyncSenderKey& key) const {
  std::vector<std::uint16_t> down;
  if (const auto peer = peers_.find(key); peer != peers_.end())
    for (const auto& [backend, up] : peer->second.up)
      if (!up) down.push_back(backend);
  return down;
}

std::vector<PeerHold> decide_peer_holds(const Config& config, const std::vector<dataplane::BackendState>& own,
                                        const std::function<bool(std::size_t)>& reported_down) {
  using dataplane::BackendState;
  std::vector<PeerHold> holds(own.size(), PeerHold::none);
  for (std::size_t b = 0; b < own.size(); ++b)
    if (own[b] == BackendState::up && reported_down(b)) holds[b] = PeerHold::held;
  const auto own_state = [&](std::size_t b) { return b < own.size() ? own[b] : BackendState::down; };
  const auto with_holds = [&](std::size_t b) {
    return b < holds.size() && holds[b] == PeerHold::held ? BackendState::down : own_state(b);
  };
  // Judged against the holds before any release, so that the outcome does not depend on
  // the order of the services.
  std::vector<bool> release(own.size(), false);
  for (const ServiceConfig& service : config.services) {
    if (service.removed || !service_can_serve(service, own_state) || service_can_serve(service, with_holds))
      continue;
    const auto mark = [&](const std::vector<ServiceBackend>& members) {
      for (const ServiceBackend& m : members)
        if (m.backend < release.size()) release[m.backend] = true;
    };
    mark(service.backends);
    for (const PoolConfig& pool : service.pools) mark(pool.backends);
  }
  for (std::size_t b = 0; b < holds.size(); ++b)
    if (holds[b] == PeerHold::held && release[b]) holds[b] = PeerHold::last_backend_kept;
  return holds;
}

std::vector<sync::BackendHealthRecord> health_view(const Config& config,
                                                    const std::function<bool(std::size_t)>& healthy) {
  std::vector<sync::BackendHealthRecord> view;
  for (std::size_t b = 0; b < config.backends.size(); ++b)
    if (!config.backends[b].removed)
      view.push_back({static_cast<std::uint16_t>(b), healthy(b), sync_sender_id(config.backends[b].name)});
  return view;
}

}  // namespace tether
