// The receiving side of state sync (docs/design.md "State sync"): a UDP socket in tetherd's
// network namespace, bound to the sync port's first address, so that the kernel interface
// of that port carries the messages (the kernel does ARP, IP and UDP; no dataplane code).
//
// Each poll reads what waits on the socket, within a bound, and for each datagram: the
// source must be a configured peer; sync::open_message checks it whole and its HMAC; a
// replay window per peer address and sender id refuses repeats and older epochs; then each
// record is checked against the running configuration and applied to the shared session
// table. The control thread adds to the table itself (it is MULTI_WRITER_ADD, and the control
// thread is the only deleter), so nothing new passes between threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <variant>
#include <vector>

#include "control/config.hpp"
#include "control/peer_health.hpp"
#include "dataplane/session_table.hpp"
#include "sync/hmac.hpp"
#include "sync/replay_window.hpp"
#include "sync/wire.hpp"

namespace tether {

// Why a datagram was not accepted: unknown_peer, then sync::SyncStatus's reasons.
inline constexpr std::size_t kSyncRejectReasons = static_cast<std::size_t>(sync::SyncStatus::replayed) + 1;
// Index 0 (SyncStatus::ok) counts datagrams from a source that is no configured peer.
const char* sync_reject_reason(std::size_t index);

// The record kinds a receiver applies, in the order of sync::Record's alternatives.
inline constexpr std::size_t kSyncRecordKinds = std::variant_size_v<sync::Record>;
const char* sync_record_kind(std::size_t index);

struct SyncTotals {
  std::uint64_t received = 0;  // datagrams read from the socket
  std::uint64_t accepted = 0;  // messages whose records were applied
  std::uint64_t rejected[kSyncRejectReasons] = {};
  std::uint64_t sequence_gaps = 0;  // sequence numbers a peer's accepted messages skipped
  std::uint64_t applied[kSyncRecordKinds] = {};
  // Records naming a service or backend this instance does not run as the record says, or
  // of a kind the service does not inspect: skipped.
  std::uint64_t refused = 0;
  std::uint64_t table_full = 0;   // records the session table had no room for
  std::uint64_t bulk_requests_received = 0;
  std::uint64_t bulk_ends_received = 0;
  // Accepted messages from a sender id beyond kMaxSendersPerPeer of one peer address: dropped.
  std::uint64_t senders_refused = 0;
  // Peers' health reports that changed their word on a backend (control/peer_health.hpp).
  std::uint64_t health_transitions_received = 0;
  // The sending side's (SyncSender::add_totals).
  std::uint64_t sent = 0;  // messages, counted once per peer they went to
  std::uint64_t records_sent[kSyncRecordKinds] = {};
  std::uint64_t send_failed = 0;
  std::uint64_t throttled = 0;  // sender polls that left events waiting (max_rate, or the poll's cap)
  std::uint64_t bulk_requests_sent = 0;
  std::uint64_t bulk_dumps_sent = 0;
  std::uint64_t health_transitions_sent = 0;  // this instance's own verdicts that changed
  std::uint64_t backlog = 0;  // events waiting in the workers' rings (a gauge)
  // TSC of the last bulk dump received whole and sent (0: none yet), for `show sync`.
  std::uint64_t last_bulk_received_tsc = 0;
  std::uint64_t last_bulk_sent_tsc = 0;
};

// One sender as `show sync` lists it.
struct SyncPeerView {
  IpBytes address;
  std::uint32_t sender;
  std::uint64_t epoch;
  std::uint64_t last_sequence;
  std::uint64_t accepted;
  std::uint64_t last_accepted_tsc;
  std::uint64_t last_bulk_end_tsc;  // 0: no bulk dump received from it
};

class SyncReceiver {
 public:
  // Opens and binds the socket; throws std::runtime_error saying why it could not.
  explicit SyncReceiver(const Config& config);
  ~SyncReceiver();
  SyncReceiver(const SyncReceiver&) = delete;
  SyncReceiver& operator=(const SyncReceiver&) = delete;

  // Reads and applies what waits on the socket, at most kDatagramsPerPoll datagrams.
  // `running` is the running configuration, against which every record is checked.
  void poll(const Config& running, dataplane::SessionTable& sessions, std::uint64_t now,
            std::uint64_t tsc_hz);

  const SyncTotals& totals() const { return totals_; }
  std::vector<SyncPeerView> peers() const;

  // For the sender, which sends from the same socket.
  int socket() const { return socket_; }
  std::uint16_t listen_port() const { return listen_port_; }
  // The next peer that asked for a bulk dump, oldest first: false when none is waiting. A
  // run of a peer (its epoch) is answered once, unless it asks again kBulkRepeatAfter_s
  // later (its bulk_end was lost): a dump adds FTP expectations, which must not pile up.
  bool take_bulk_request(IpBytes& asker);
  // Whether `peer` completed a bulk dump to this instance since it started.
  bool bulk_received_from(const IpBytes& peer) const;
  // The TSC of the last message accepted from any sender at `peer` (0: none yet).
  std::uint64_t last_heard_from(const IpBytes& peer) const;

  // What the live peers' health checks say (control/peer_health.hpp).
  const PeerHealth& peer_health() const { return peer_health_; }
  // Forgets the reports of peers silent for kPeerHealthExpiry_ms; true when a peer's word on
  // a backend changed since the last call (the caller publishes a new snapshot).
  bool take_health_changed(std::uint64_t now, std::uint64_t tsc_hz);

  static constexpr unsigned kDatagramsPerPoll = 256;
  static constexpr std::uint64_t kBulkRepeatAfter_s = 10;
  // Sender ids one peer address may hold replay windows for: instances restarted under new
  // names, or several instances behind one address; bounded so state cannot grow without end.
  static constexpr std::size_t kMaxSendersPerPeer = 16;

 private:
  struct PeerState {
    sync::ReplayWindow window;
    std::uint64_t accepted = 0;
    std::uint64_t last_accepted_tsc = 0;
    std::uint64_t last_bulk_end_tsc = 0;
    std::uint64_t answered_epoch = 0;  // the run whose bulk request was last taken
    std::uint64_t answered_tsc = 0;
  };
  void receive(std::span<const std::uint8_t> datagram, const IpBytes& source,
               const Config& running, dataplane::SessionTable& sessions, std::uint64_t now,
               std::uint64_t tsc_hz);
  // A peer's backend_health record, checked against the running configuration.
  void apply_health(const SyncSenderKey& peer, const sync::BackendHealthRecord& report, const Config& running);
  void apply(const sync::Record& record, const Config& running, dataplane::SessionTable& sessions,
             std::uint64_t now, std::uint64_t tsc_hz);

  int socket_ = -1;
  std::uint16_t listen_port_;
  std::vector<std::uint8_t> buffer_;  // one datagram
  std::vector<IpBytes> peers_;
  std::unique_ptr<sync::HmacSha256> mac_;
  // One window per peer address and sender id: an address may host several instances.
  std::map<SyncSenderKey, PeerState> senders_;
  SyncTotals totals_;
  std::vector<IpBytes> bulk_askers_;
  PeerHealth peer_health_;
  bool health_changed_ = false;
};

}  // namespace tether
