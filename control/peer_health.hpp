// Health consistency across instances (README "Consistency across instances").
//
// Every instance checks its backends on its own, so two instances may disagree: a backend
// reachable from one and not the other, a probe lost on one path. Then they would pick
// different backends for the same new flow or call. To bound that, each instance sends its
// own checks' verdicts to its sync peers (sync::BackendHealthRecord: at each change, the whole
// view every kHealthReportInterval_ms and in bulk dumps), and uses a backend only while its
// own view and every live peer's latest report say it is up: down wins, so the instances
// agree on the backend set one sync message after the first of them saw a failure.
//
// Two limits keep one instance's trouble from spreading to the tier:
// - a peer's reports count only while it is alive: silent for kPeerHealthExpiry_ms, or
//   restarted (a new epoch), and its reports are forgotten;
// - peers' reports never take a service's last backend: when holding the backends the peers
//   report down would leave a service that this instance's own view can serve with nothing,
//   the holds on that service's members are released (an instance that lost its backend
//   network must not take the whole tier down with it; it withdraws its own VIPs instead).
//
// PeerHealth and decide_peer_holds are plain logic, for unit tests.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <utility>
#include <vector>

#include "control/config.hpp"
#include "dataplane/snapshot.hpp"
#include "sync/wire.hpp"

namespace tether {

// How often an instance sends its whole health view, and how long a peer's reports count
// after its last message: three report intervals, so one lost message changes nothing.
inline constexpr std::uint64_t kHealthReportInterval_ms = 1000;
inline constexpr std::uint64_t kPeerHealthExpiry_ms = 3000;

// A sending instance: its address and sender id, as the receiver keys its replay windows.
using SyncSenderKey = std::pair<IpBytes, std::uint32_t>;

// What the live peers' own health checks say about the backends.
class PeerHealth {
 public:
  // A message accepted from `peer`: it is alive. A new epoch is a new run, whose reports
  // start afresh. True when that forgot reports of a backend down.
  bool heard(const SyncSenderKey& peer, std::uint64_t epoch, std::uint64_t now);
  // `peer`'s report about `backend`: true when it changed what the peer says (a transition).
  bool report(const SyncSenderKey& peer, std::uint16_t backend, bool up);
  // Forgets the peers silent for `silence` cycles or more: true when that forgot a report of
  // a backend down.
  bool expire(std::uint64_t now, std::uint64_t silence);
  // The live peers whose latest report says `backend` is down.
  std::vector<SyncSenderKey> reporting_down(std::size_t backend) const;
  // The backends `peer` reports down (empty for a peer not heard from or forgotten).
  std::vector<std::uint16_t> down_of(const SyncSenderKey& peer) const;
  // Reports that changed a peer's word on a backend, up or down, since the start.
  std::uint64_t transitions() const { return transitions_; }

 private:
  struct Peer {
    std::uint64_t epoch = 0;
    std::uint64_t last_heard = 0;
    std::map<std::uint16_t, bool> up;  // by backend index, as the peer reported it
  };
  static bool any_down(const Peer& peer);
  std::map<SyncSenderKey, Peer> peers_;
  std::uint64_t transitions_ = 0;
};

// Why a backend this instance would use is held down, or not.
#define TETHER_PEER_HOLDS(X)                                                 \
  X(none, "none") X(held, "a peer reports it down")                          \
  X(last_backend_kept, "a peer reports it down, ignored: last backend of a service")
enum class PeerHold : std::uint8_t { TETHER_PEER_HOLDS(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(PeerHold, TETHER_PEER_HOLDS)

// The merge rule (see above), per backend. `own[b]`: backend b's state by this instance
// alone (operator, MAC, its own checks); `reported_down(b)`: a live peer reports b down.
std::vector<PeerHold> decide_peer_holds(const Config& config, const std::vector<dataplane::BackendState>& own,
                                        const std::function<bool(std::size_t)>& reported_down);

// This instance's own verdicts, one record per live backend, for the peers. `healthy(b)`:
// what its own checks say of backend b.
std::vector<sync::BackendHealthRecord> health_view(const Config& config,
                                                    const std::function<bool(std::size_t)>& healthy);

}  // namespace tether
