// What a worker reports for state sync (docs/design.md "State sync"): every change of a
// shared session (a SIP call placed, moved or ended; an RTSP or FTP expectation created or
// ended) and every established flow that crossed the sync threshold. The worker queues them
// on its own single-producer ring; the control thread turns them into signed sync records
// for the peers (control/sync_sender.*).
//
// A worker never waits on sync: events are gathered per loop pass and enqueued in one
// burst, and what the ring has no room for is counted (sync_events_lost) and lost. A lost
// event costs the peer that one change until the session's next change, the flow's next
// period, or a bulk dump.
#pragma once

#include <cstdint>

#include "dataplane/counters.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/session_table.hpp"
#include "parsers/packet.hpp"

struct rte_ring;

namespace tether::dataplane {

// 32 bytes, two to a cache line: every event's line crosses from the worker's core to the
// control thread's, the sync path's main cost on the worker. What the control thread can
// tell for itself is left out: a flow's VIP (its service's) and every lifetime (the service's
// timeout for the state the event gives: the event is a millisecond old when it is read).
struct SyncEvent {
  SessionKind kind = SessionKind::sip_call;  // synced_flow: an established flow of the worker's own table
  // SIP: BYE or CANCEL ended the call; RTP: TEARDOWN; FTP: the expectation was used;
  // flow: FIN or RST seen.
  bool ended = false;
  std::uint8_t protocol = 0;  // flows: IPPROTO_TCP or IPPROTO_UDP
  // SIP: counted on its backend as a call; false for a transaction outside any call
  // (sync::SipCallRecord::holds_call).
  bool holds_call = true;
  std::uint16_t service = 0;
  std::uint16_t backend = 0;
  std::uint16_t client_port = 0;
  std::uint16_t vip_port = 0;
  std::uint32_t pad1 = 0;
  union {
    parsers::IpBytes client{};  // expectations and flows
    std::uint64_t digest;       // SIP calls: the Call-ID digest
  };
};
static_assert(sizeof(SyncEvent) == 32);

inline SyncEvent sip_call_event(std::uint16_t service, std::uint64_t call_id_digest,
                                std::uint16_t backend, bool ended, bool holds_call) {
  SyncEvent event{};
  event.kind = SessionKind::sip_call;
  event.service = service;
  event.digest = call_id_digest;
  event.backend = backend;
  event.ended = ended;
  event.holds_call = holds_call;
  return event;
}

// An RTP expectation (client_port: the announced port) or an FTP one (client_port unused).
inline SyncEvent expectation_event(SessionKind kind, std::uint16_t service, const parsers::IpBytes& client,
                                   std::uint16_t client_port, std::uint16_t backend, bool ended) {
  SyncEvent event{};
  event.kind = kind;
  event.service = service;
  event.client = client;
  event.client_port = client_port;
  event.backend = backend;
  event.ended = ended;
  return event;
}

// A flow of the worker's table; its key is in the client-to-VIP direction.
inline SyncEvent flow_event(const FlowKey& key, const FlowEntry& entry) {
  SyncEvent event{};
  event.kind = SessionKind::synced_flow;
  event.client = key.src;
  event.client_port = key.src_port;
  event.vip_port = key.dst_port;
  event.protocol = key.ip_proto;
  event.service = entry.service;
  event.backend = entry.backend;
  event.ended = entry.closing != 0;
  return event;
}

// Slots of each worker's event ring: about a second of events at 16k session changes a
// second, far more than the control thread's millisecond polls let pile up.
inline constexpr unsigned kSyncEventRingSize = 16384;

// The worker's side: events gathered in the pass, flushed once per pass.
class SyncEventQueue {
 public:
  // `ring` null: sync is off, and enabled() is false.
  SyncEventQueue(rte_ring* ring, WorkerCounters& counters) : ring_(ring), counters_(counters) {}
  bool enabled() const { return ring_ != nullptr; }
  void emit(const SyncEvent& event) {
    if (count_ == kPending) flush();
    pending_[count_++] = event;
  }
  // Enqueues what the pass gathered; counts what did not fit.
  void flush();
  // Free slots of the ring: a bulk walk reports only what fits beside the live events.
  unsigned room() const;

 private:
  static constexpr unsigned kPending = 64;
  rte_ring* ring_;
  WorkerCounters& counters_;
  unsigned count_ = 0;
  SyncEvent pending_[kPending];
};

}  // namespace tether::dataplane
