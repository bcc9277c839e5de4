// The active-standby pair's state inside tetherd (README "Active-standby pair").
//
// keepalived runs VRRP on the exception interface and calls `tetherctl ha master|backup|fault`
// from its notify hooks; tetherd follows. Only the master forwards and answers ARP/ND and
// ICMP echo for the VIPs: the state reaches the workers as Snapshot::standby, like every
// other change. On becoming master the control thread announces every VIP (gratuitous ARP,
// unsolicited neighbour advertisements) `count` times, `interval` apart, from its loop.
//
// HaStatus is plain logic over TSC instants, for unit tests; announce() sends through the
// ports.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "control/config.hpp"

namespace tether {

class ControlPorts;

// What the announcements sent so far add up to: frames the ports took.
struct AnnouncementTotals {
  std::uint64_t gratuitous_arp = 0;
  std::uint64_t unsolicited_na = 0;
};

// Every output's `ha` section (stats file, show counters, telemetry, Prometheus).
struct HaTotals {
  std::uint64_t transitions = 0;
  std::uint64_t gratuitous_arp = 0;
  std::uint64_t unsolicited_na = 0;
};

class HaStatus {
 public:
  HaStatus(const HaConfig& config, std::uint64_t now, std::uint64_t tsc_hz);

  HaRole role() const { return role_; }
  // Whether the workers forward and answer for the VIPs.
  bool forwarding() const { return role_ == HaRole::master; }
  // True when the role changed. Becoming master schedules the announcements, the first round
  // at once; leaving it cancels the rounds still due.
  bool set_role(HaRole role, std::uint64_t now);
  // A graceful handover: tetherd stays master, but `ha check` fails so that keepalived lowers
  // its priority and the peer takes over. True when the flag changed.
  bool set_released(bool released);
  bool released() const { return released_; }

  // Whether a round of announcements is due at `now`: consumes it.
  bool announcement_due(std::uint64_t now);
  // Rounds still to send.
  std::uint32_t announcements_pending() const { return rounds_left_; }
  // Milliseconds until the next round (0: due), or -1 when none is pending.
  std::int64_t next_announcement_ms(std::uint64_t now) const;

  std::uint64_t since_tsc() const { return since_; }
  std::uint64_t transitions() const { return transitions_; }
  AnnouncementTotals& sent() { return sent_; }
  const AnnouncementTotals& sent() const { return sent_; }
  HaTotals totals() const { return {transitions_, sent_.gratuitous_arp, sent_.unsolicited_na}; }

 private:
  HaConfig config_;
  std::uint64_t tsc_hz_;
  HaRole role_;
  std::uint64_t since_;
  std::uint64_t transitions_ = 0;
  bool released_ = false;
  std::uint32_t rounds_left_ = 0;
  std::uint64_t next_round_ = 0;
  AnnouncementTotals sent_;
};

// Whether each worker's loop still turns: `ha check` fails when one has not moved for
// `stall_ms` (a worker stuck in a loop forwards nothing, while keepalived, the kernel
// interface and the control socket all still answer).
class WorkerProgress {
 public:
  static constexpr std::uint64_t kStallMs = 1000;
  explicit WorkerProgress(std::uint64_t tsc_hz) : tsc_hz_(tsc_hz) {}
  // `loops[w]`: worker w's loop passes so far (busy and idle polls).
  void observe(std::span<const std::uint64_t> loops, std::uint64_t now);
  // The workers whose loop count has not changed for kStallMs.
  std::vector<unsigned> stalled(std::uint64_t now) const;

 private:
  std::uint64_t tsc_hz_;
  std::vector<std::uint64_t> loops_;
  std::vector<std::uint64_t> moved_;  // when each worker's count last changed
};

// The unique VIPs of the running services, in configuration order.
std::vector<IpBytes> announced_addresses(const Config& config);

// One round: a gratuitous ARP (IPv4 VIP) or an unsolicited neighbour advertisement (IPv6 VIP)
// for every VIP out of every port (workers answer for a VIP on every port). Counted in `sent`.
void announce(const Config& config, const ControlPorts& ports, AnnouncementTotals& sent);

}  // namespace tether
