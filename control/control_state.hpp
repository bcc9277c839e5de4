// The control thread's state: the running configuration, what the operator set, and the
// handles it publishes snapshots through.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "control/announce.hpp"
#include "control/config.hpp"
#include "control/ha.hpp"
#include "control/health.hpp"
#include "control/neighbours.hpp"
#include "control/peer_health.hpp"
#include "control/report.hpp"
#include "control/snapshot_builder.hpp"
#include "control/sync_sender.hpp"
#include "dataplane/session_table.hpp"
#include "dataplane/snapshot_channel.hpp"
#include "dataplane/worker.hpp"

namespace tether {

// Everything the control thread owns that commands read or change.
struct ControlState {
  Config config;  // the running configuration, with the weights commands changed
  std::vector<dataplane::BackendState> states;  // as the operator set them
  HealthChecker* health;  // null until checks start
  NeighbourResolver* neighbours;
  std::string config_path;  // what `reload` reads
  std::vector<PortIdentity> ports;
  std::uint64_t tsc_hz;
  dataplane::SnapshotPublisher* publisher;
  const std::vector<std::unique_ptr<dataplane::Worker>>* workers;
  const dataplane::SessionTable* sessions;
  const dataplane::SweepResult* expired;
  const KernelInterfaces* kernel;  // null: no port has a kernel interface
  const SyncReceiver* sync = nullptr;  // null: no `sync`
  const SyncSender* sync_sender = nullptr;
  HaStatus* ha = nullptr;  // null: no `ha`, standalone and always forwarding
  const WorkerProgress* progress = nullptr;  // null until the workers run
  Announcer* announcer = nullptr;  // null: no `announce`
  std::uint64_t started_tsc = 0;   // when the control loop started: bulk sync's wait counts from it
  // Set once no sync peer's bulk dump was awaited any more, and never cleared: the wait is a
  // starting instance's; a peer that joins later must not withdraw a serving one.
  bool bulk_synced = false;
  // Per backend: whether the peers' health reports hold it down (control/peer_health.hpp),
  // as of the last snapshot published.
  std::vector<PeerHold> peer_holds = {};
  const MetricsServer* metrics_server = nullptr;  // null: no `metrics`
  // Live TCP connections per backend, every worker's (dataplane/live_counts.hpp).
  const dataplane::LiveCounts* connections = nullptr;
  const dataplane::FragmentTable* fragments = nullptr;  // the shared fragment table

  Totals totals() const;
  // Sets the counts the control thread keeps itself in `t` (the session table's, the kernel
  // path's, sync, ha, announcements, metrics), leaving the workers' as they are.
  void set_control_counts(Totals& t) const;
  // The ports' MACs as opened, for validate().
  std::vector<MacBytes> device_macs() const;
  // What the workers see: own_state, and down while a live sync peer's checks say so
  // (peer_holds).
  dataplane::BackendState effective(std::size_t backend) const;
  // By this instance alone: the operator's state, and down while its own health check fails
  // or the MAC is unknown.
  dataplane::BackendState own_state(std::size_t backend) const;
  // The configured sync peers this instance still waits for before it announces anything:
  // no bulk dump from them yet and heard from within announce.bulk_wait (see bulk_awaited);
  // none once bulk_synced.
  std::vector<IpBytes> bulk_awaited_peers(std::uint64_t now) const;
  // What each VIP's announcement should be now (see control/announce.hpp); sets bulk_synced.
  std::vector<VipDecision> announcement_decisions(std::uint64_t now);
  // New flows and sessions placed on backends so far: what a drain watches.
  std::uint64_t placed() const;
  // A snapshot of the configuration, effective states and resolved MACs.
  std::unique_ptr<dataplane::Snapshot> build() const;
  // Builds a snapshot and publishes it, after deciding peer_holds afresh.
  void republish();
  // Makes `desired` the running configuration (see merge_running) and publishes it. Throws
  // ConfigError, changing nothing, when it cannot be applied without a restart or breaks a
  // rule a file must keep (validate).
  void adopt(const Config& desired);
};

}  // namespace tether
