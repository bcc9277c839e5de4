// Health-aware VIP announcement (README "Announcing the VIPs by BGP").
//
// tetherd decides what the routers learn; a routing daemon in its namespace (BIRD, FRR) only
// carries it. For every VIP that this instance can serve, the control thread keeps a host
// route (/32, /128) on the `announce.port`'s kernel interface with route protocol
// kAnnounceRouteProtocol; BIRD's kernel protocol learns those routes and BGP exports them.
// A VIP is announced while every worker's loop turns, one of its services has a backend up,
// the instance is not draining and, in an active-standby pair, it is master. When tetherd
// dies its kernel interface disappears and the kernel drops the routes with it; BFD on the
// same interface tells the router within a fraction of a second, as BFD's packets pass
// through the workers.
//
// decide_announcements and Drain are plain logic, for unit tests; Announcer puts the
// decisions into the kernel.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "control/config.hpp"
#include "dataplane/snapshot.hpp"

namespace tether {

// Why a VIP is or is not announced: the first reason that holds, instance-wide ones first.
#define TETHER_ANNOUNCE_REASONS(X)                                                         \
  X(announced, "announced") X(workers_stalled, "worker stalled") X(not_master, "not master") \
  X(draining, "draining") X(bulk_pending, "awaiting bulk sync") X(no_backend_up, "no backend up")
enum class AnnounceReason : std::uint8_t { TETHER_ANNOUNCE_REASONS(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(AnnounceReason, TETHER_ANNOUNCE_REASONS)

// The instance-wide conditions, as the control thread sees them now.
struct InstanceCondition {
  bool workers_progress = true;  // every worker's loop turned within WorkerProgress::kStallMs
  bool master = true;            // without `ha`: always
  bool draining = false;
  bool bulk_pending = false;  // a sync peer's bulk dump is still awaited (bulk_awaited)
};

// Sync among N: a starting instance announces nothing until it holds its peers' state, so
// that the first flows the routers send it find their sessions. It waits for `peer` until
// the peer's bulk dump arrived whole (`bulk_received`), or until the peer has been silent
// for `wait` cycles, counted from this instance's start or from the peer's last message
// (`last_heard`, 0: never), whichever is later: a dead peer delays the start by `wait`
// (announce.bulk_wait), a live one that is still sending its dump is waited for.
bool bulk_awaited(bool bulk_received, std::uint64_t last_heard, std::uint64_t started, std::uint64_t now,
                  std::uint64_t wait);

struct VipDecision {
  IpBytes vip;
  AnnounceReason reason;
  std::vector<std::size_t> services;  // the live services on this VIP
  bool announced() const { return reason == AnnounceReason::announced; }
};

// Whether `service` can place a new flow: a member of its backends or of one of its pools is
// up with a positive weight. `state(b)` is backend b's effective state.
bool service_can_serve(const ServiceConfig& service,
                       const std::function<dataplane::BackendState(std::size_t)>& state);

// One decision per VIP of the live services, in configuration order. A VIP is announced when
// the instance can serve and at least one of its services can: withdrawing a VIP because one
// of its services lost its backends would take the others' traffic away too.
std::vector<VipDecision> decide_announcements(const Config& config, const InstanceCondition& instance,
                                              const std::vector<bool>& service_can_serve);

// `tetherctl drain`: after the withdrawal, wait until the routers moved the traffic (no new
// flow or session for `quiet` seconds), or until `timeout`, then stop. Over TSC instants.
class Drain {
 public:
  Drain() = default;
  Drain(std::uint64_t start, std::uint64_t placed, std::uint32_t quiet_s, std::uint32_t timeout_s,
        std::uint64_t tsc_hz);
  bool active() const { return active_; }
  // `placed`: new flows and sessions placed so far (any count that only grows). Updates the
  // quiet period.
  void observe(std::uint64_t placed, std::uint64_t now);
  // Whether tetherd should stop now: quiet long enough, or out of time.
  bool quiet(std::uint64_t now) const;
  bool timed_out(std::uint64_t now) const;
  bool done(std::uint64_t now) const { return active_ && (quiet(now) || timed_out(now)); }
  std::uint64_t placed_since_start() const { return last_placed_ - start_placed_; }
  std::uint64_t elapsed_ms(std::uint64_t now) const { return (now - start_) * 1000 / tsc_hz_; }
  std::uint64_t quiet_ms(std::uint64_t now) const { return (now - last_change_) * 1000 / tsc_hz_; }
  std::uint32_t quiet_s() const { return quiet_s_; }
  std::uint32_t timeout_s() const { return timeout_s_; }

 private:
  bool active_ = false;
  std::uint64_t start_ = 0, last_change_ = 0;
  std::uint64_t start_placed_ = 0, last_placed_ = 0;
  std::uint32_t quiet_s_ = 0, timeout_s_ = 0;
  std::uint64_t tsc_hz_ = 1;
};

// Every output's `announce` section (stats file, show counters, telemetry, Prometheus).
struct AnnounceTotals {
  std::uint64_t announced = 0;        // VIPs announced now (a gauge)
  std::uint64_t routes_added = 0;     // host routes put on the kernel interface
  std::uint64_t routes_removed = 0;   // and taken off
  std::uint64_t route_failures = 0;   // requests the kernel refused (retried)
  std::uint64_t drains = 0;           // `tetherctl drain` commands that started a drain
};

// The control thread's end: keeps the kernel's routes equal to the decisions.
class Announcer {
 public:
  Announcer(const Config& config, std::uint64_t tsc_hz);
  ~Announcer() { withdraw_all(); }
  // Removes every route (tetherd stops: nothing to announce).
  void withdraw_all();
  Announcer(const Announcer&) = delete;
  Announcer& operator=(const Announcer&) = delete;

  // Installs the routes of VIPs newly announced, removes those of VIPs withdrawn, and logs
  // each change with its reason. A route the kernel refused is tried again a second later.
  void apply(std::vector<VipDecision> decisions, std::uint64_t now);
  const std::vector<VipDecision>& decisions() const { return decisions_; }
  const std::string& interface() const { return interface_; }
  // Whether the route to `vip` is in the kernel (an announced VIP whose route the kernel
  // refused is not, until a retry succeeds).
  bool installed(const IpBytes& vip) const;

  Drain& drain() { return drain_; }
  const Drain& drain() const { return drain_; }
  void start_drain(std::uint64_t placed, std::uint64_t now);
  AnnounceTotals totals() const;

 private:
  bool set_route(const IpBytes& vip, bool present);

  const AnnounceConfig config_;
  std::string interface_;
  std::uint64_t tsc_hz_;
  std::vector<VipDecision> decisions_;
  std::vector<IpBytes> installed_;
  std::uint64_t retry_at_ = 0;  // a refused route is tried again from then on
  AnnounceTotals totals_;
  Drain drain_;
};

}  // namespace tether
