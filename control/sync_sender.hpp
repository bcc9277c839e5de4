// The sending side of state sync (docs/design.md "State sync"), on the control thread.
//
// Each poll drains the workers' sync event rings (dataplane/sync_events.hpp) within the
// configured rate, turns each event into a record, packs records into messages of at most
// kMessageBytes (one unfragmented datagram on any Ethernet path), signs each and sends it to
// every peer from the sync socket, the one SyncReceiver reads: the kernel interface of the
// sync port carries them, so the dataplane needs no sync code of its own. Each peer has its
// own sequence numbers, so that its receiver's gaps mean loss, not messages for others.
//
// Bulk dumps: at start, and every kBulkRequestInterval until a peer answered one, the sender
// asks each peer for its state (a bulk_request message). A peer that is asked walks its
// session table, sending what it finds to the asker alone (an FTP expectation added twice
// would be claimed twice), asks its workers to report their synced flows again (to every
// peer: a flow record only refreshes a flow), and then sends the asker bulk_end: the asker
// knows it holds everything the peer held.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "control/config.hpp"
#include "control/sync_receiver.hpp"
#include "dataplane/links.hpp"
#include "dataplane/session_table.hpp"
#include "sync/hmac.hpp"
#include "sync/wire.hpp"

namespace tether {

class SyncSender {
 public:
  // `receiver` owns the socket the messages leave from; `links` the workers' event rings.
  SyncSender(const Config& config, SyncReceiver& receiver, dataplane::Links& links, std::uint64_t tsc_hz);

  // Sends what the workers reported since the last poll (within the rate), answers a bulk
  // request, and asks peers that have not answered for theirs.
  // `running`: the running configuration, whose timeouts give the records' lifetimes.
  void poll(const Config& running, const dataplane::SessionTable& sessions, std::uint64_t now);

  // This instance's own health verdicts (control/peer_health.hpp: health_view), given every
  // control loop pass: sent to every peer at once when one changed, again every
  // kHealthReportInterval_ms (a peer that joined or lost a message learns them), and at the
  // end of every bulk dump, before bulk_end.
  void report_health(std::vector<sync::BackendHealthRecord> view, std::uint64_t now);

  // Adds the sender's counts to the receiver's, for every output.
  void add_totals(SyncTotals& totals) const;
  // The TSC of the last bulk dump this instance sent (0: none) and of the last it received
  // whole, from any peer (0: none).
  std::uint64_t last_bulk_sent() const { return last_bulk_sent_; }

  // A datagram is at most this big: 1500-byte MTU less IPv6 and UDP headers, with room.
  static constexpr std::size_t kMessageBytes = 1400;
  // Records a poll may send at once, whatever credit the rate gave: one poll a millisecond
  // leaves the control thread its other work.
  static constexpr std::uint32_t kMaxRecordsPerPoll = 4096;
  // Session table slots a bulk dump walks per poll.
  static constexpr std::uint32_t kBulkSlotsPerPoll = 8192;

 private:
  struct Peer {
    IpBytes address;
    std::uint64_t sequence = 0;  // of the last message sent to it
  };
  // A message being filled, and whom it goes to (every peer, or one).
  struct Outgoing {
    std::vector<std::uint8_t> buffer = std::vector<std::uint8_t>(kMessageBytes);
    std::unique_ptr<sync::MessageWriter> writer;
    sync::MessageKind kind = sync::MessageKind::records;
    Peer* to = nullptr;  // null: every peer
  };
  // Appends the record to `out`, sending that first when it is full.
  void append(Outgoing& out, const sync::Record& record);
  // Signs and sends `out` if it holds records (or is not plain records); starts the next,
  // of kind `next`.
  void send(Outgoing& out, sync::MessageKind next = sync::MessageKind::records);
  void start(Outgoing& out, sync::MessageKind kind);
  void send_to(const Peer& peer, std::span<const std::uint8_t> message);
  sync::Record record_of(const dataplane::SyncEvent& event, const Config& running) const;
  // A record of a live session table entry (bulk dumps), or false for what is not sent.
  bool record_of(const dataplane::SessionEntry& entry, std::uint64_t now, sync::Record& record) const;
  std::uint32_t remaining_ms(std::uint64_t deadline, std::uint64_t now) const;
  void request_bulk(std::uint64_t now);
  void continue_bulk(const dataplane::SessionTable& sessions, std::uint64_t now);
  void append_health(Outgoing& out);

  SyncReceiver& receiver_;
  dataplane::Links& links_;
  std::vector<Peer> peers_;
  std::unique_ptr<sync::HmacSha256> mac_;
  std::uint32_t sender_id_;
  std::uint64_t epoch_;
  std::uint64_t tsc_hz_;
  std::uint32_t max_rate_;
  // The rate: records' worth of credit, refilled by elapsed time, capped at a second's worth.
  double credit_ = 0;
  std::uint64_t last_refill_ = 0;

  Outgoing changes_;  // the workers' events, to every peer
  Outgoing dump_;     // a bulk dump's session table walk, to the asker

  // A bulk dump in progress (dump_.to is the asker): where the session table walk stands,
  // and the dump requests made of the workers.
  bool dumping_ = false;
  std::uint32_t dump_cursor_ = 0;
  std::uint64_t dump_generation_ = 0;
  std::uint64_t last_bulk_sent_ = 0;
  std::uint64_t last_bulk_request_ = 0;

  std::vector<sync::BackendHealthRecord> health_view_;
  std::uint64_t next_health_report_ = 0;

  struct Counts {
    std::uint64_t messages = 0;
    std::uint64_t records[kSyncRecordKinds] = {};
    std::uint64_t send_failed = 0;
    std::uint64_t throttled = 0;  // polls that left events waiting (the rate, or the poll's cap)
    std::uint64_t bulk_requests_sent = 0;
    std::uint64_t bulk_dumps_sent = 0;
    std::uint64_t health_transitions = 0;  // own verdicts that changed
    std::uint64_t backlog = 0;  // events waiting in the rings after the last poll (a gauge)
  } counts_;
};

// Both sides' counts; zero without sync.
SyncTotals sync_totals(const SyncReceiver* receiver, const SyncSender* sender);

}  // namespace tether
