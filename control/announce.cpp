#include "control/announce.hpp"

#include <algorithm>
#include <cstring>

#include "control/kernel_interfaces.hpp"
#include "control/log.hpp"

namespace tether {

bool service_can_serve(const ServiceConfig& service,
                       const std::function<dataplane::BackendState(std::size_t)>& state) {
  const auto any_up = [&](const std::vector<ServiceBackend>& members) {
    return std::any_of(members.begin(), members.end(), [&](const ServiceBackend& m) {
      return m.weight > 0 && state(m.backend) == dataplane::BackendState::up;
    });
  };
  return any_up(service.backends) ||
         std::any_of(service.pools.begin(), service.pools.end(),
                     [&](const PoolConfig& pool) { return any_up(pool.backends); });
}

std::vector<VipDecision> decide_announcements(const Config& config, const InstanceCondition& instance,
                                              const std::vector<bool>& can_serve) {
  const AnnounceReason instance_reason = !instance.workers_progress ? AnnounceReason::workers_stalled
                                         : !instance.master         ? AnnounceReason::not_master
                                         : instance.draining        ? AnnounceReason::draining
                                         : instance.bulk_pending    ? AnnounceReason::bulk_pending
                                                                    : AnnounceReason::announced;
  std::vector<VipDecision> decisions;
  for (std::size_t s = 0; s < config.services.size(); ++s) {
    const ServiceConfig& service = config.services[s];
    if (service.removed) continue;
    auto same = std::find_if(decisions.begin(), decisions.end(),
                             [&](const VipDecision& d) { return d.vip == service.vip; });
    if (same == decisions.end()) {
      decisions.push_back({service.vip, AnnounceReason::no_backend_up, {}});
      same = decisions.end() - 1;
    }
    same->services.push_back(s);
    if (s < can_serve.size() && can_serve[s]) same->reason = AnnounceReason::announced;
  }
  if (instance_reason != AnnounceReason::announced)
    for (VipDecision& decision : decisions) decision.reason = instance_reason;
  return decisions;
}

bool bulk_awaited(bool bulk_received, std::uint64_t last_heard, std::uint64_t started, std::uint64_t now,
                  std::uint64_t wait) {
  if (bulk_received) return false;
  return now - std::max(started, last_heard) < wait;
}

Drain::Drain(std::uint64_t start, std::uint64_t placed, std::uint32_t quiet_s, std::uint32_t timeout_s,
             std::uint64_t tsc_hz)
    : active_(true),
      start_(start),
      last_change_(start),
      start_placed_(placed),
      last_placed_(placed),
      quiet_s_(quiet_s),
      timeout_s_(timeout_s),
      tsc_hz_(tsc_hz) {}

void Drain::observe(std::uint64_t placed, std::uint64_t now) {
  if (!active_ || placed == last_placed_) return;
  last_placed_ = placed;
  last_change_ = now;
}

bool Drain::quiet(std::uint64_t now) const {
  return active_ && now - last_change_ >= quiet_s_ * tsc_hz_;
}

bool Drain::timed_out(std::uint64_t now) const {
  return active_ && now - start_ >= timeout_s_ * tsc_hz_;
}

Announcer::Announcer(const Config& config, std::uint64_t tsc_hz)
    : config_(*config.announce),
      interface_(config.ports[config.announce->port].kernel->name),
      tsc_hz_(tsc_hz) {}

void Announcer::withdraw_all() {
  for (const IpBytes& vip : installed_)
    if (set_route(vip, false)) TETHER_LOG(info, "announce: withdrawing %s (stopping)", format_ip(vip).c_str());
  installed_.clear();
}

bool Announcer::set_route(const IpBytes& vip, bool present) {
  const int error = set_host_route(interface_, vip, kAnnounceRouteProtocol, present);
  if (error != 0) {
    ++totals_.route_failures;
    TETHER_LOG(warning, "announce: %s the route to %s on %s: %s", present ? "adding" : "removing",
               format_ip(vip).c_str(), interface_.c_str(), std::strerror(-error));
    return false;
  }
  ++(present ? totals_.routes_added : totals_.routes_removed);
  return true;
}

void Announcer::apply(std::vector<VipDecision> decisions, std::uint64_t now) {
  const bool retry = now >= retry_at_;
  bool refused = false;
  for (const VipDecision& decision : decisions) {
    const auto installed = std::find(installed_.begin(), installed_.end(), decision.vip);
    const bool present = installed != installed_.end();
    if (decision.announced() == present) continue;
    const auto before = std::find_if(decisions_.begin(), decisions_.end(),
                                     [&](const VipDecision& d) { return d.vip == decision.vip; });
    const bool new_decision = before == decisions_.end() || before->reason != decision.reason;
    if (!new_decision && !retry) continue;  // refused a moment ago: wait before asking again
    if (new_decision)
      TETHER_LOG(info, "announce: %s %s (%s)", decision.announced() ? "announcing" : "withdrawing",
                 format_ip(decision.vip).c_str(), to_string(decision.reason));
    if (!set_route(decision.vip, decision.announced())) {
      refused = true;
      continue;
    }
    if (decision.announced())
      installed_.push_back(decision.vip);
    else
      installed_.erase(installed);
  }
  // A VIP no service has any more (reload, service removed).
  for (auto it = installed_.begin(); it != installed_.end();) {
    const bool listed = std::any_of(decisions.begin(), decisions.end(),
                                    [&](const VipDecision& d) { return d.vip == *it; });
    if (listed || !retry) {
      ++it;
    } else if (set_route(*it, false)) {
      TETHER_LOG(info, "announce: withdrawing %s (no service)", format_ip(*it).c_str());
      it = installed_.erase(it);
    } else {
      refused = true;
      ++it;
    }
  }
  if (refused && retry) retry_at_ = now + tsc_hz_;
  decisions_ = std::move(decisions);
}

bool Announcer::installed(const IpBytes& vip) const {
  return std::find(installed_.begin(), installed_.end(), vip) != installed_.end();
}

void Announcer::start_drain(std::uint64_t placed, std::uint64_t now) {
  drain_ = Drain(now, placed, config_.drain_quiet_s, config_.drain_timeout_s, tsc_hz_);
  ++totals_.drains;
}

AnnounceTotals Announcer::totals() const {
  AnnounceTotals totals = totals_;
  totals.announced = installed_.size();
  return totals;
}

}  // namespace tether
