// A worker: one lcore polling one RX queue on every port, run to completion.
//
// The burst loop reads top to bottom: receive, parse and classify (a SIP datagram is parsed
// for its Call-ID here), route the burst's calls through the shared session table after one
// bulk pass over it, look the burst's flows up in one bulk call, schedule the misses
// (related RTP and FTP data flows through their expectations), inspect control
// connections, steer the burst's ICMP errors to the backends of the flows they quote,
// wrap in the service's tunnel (ipip, gue) and rewrite the MACs, transmit. Everything a worker writes (flow
// table, reassembly buffers, counters, TX buffers) is its own, except session table entries,
// which the table makes safe to share; everything it exchanges with the control thread goes
// through its WorkerLinks (dataplane/links.hpp).
#pragma once

#include <array>
#include <atomic>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "dataplane/admission.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/flow_sample.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/fragments.hpp"
#include "dataplane/links.hpp"
#include "dataplane/session_table.hpp"
#include "dataplane/slow_path.hpp"
#include "dataplane/snapshot.hpp"
#include "dataplane/snapshot_channel.hpp"
#include "dataplane/stream_inspection.hpp"
#include "dataplane/sync_events.hpp"
#include "parsers/fragment.hpp"
#include "parsers/icmp_error.hpp"
#include "parsers/sip.hpp"

struct rte_mbuf;
struct rte_ring;

namespace tether::dataplane {

// 64, not DPDK's usual 32: the per-burst costs (the bulk lookups' setup, the flush, the
// expiry slice, the loop's own accounting) spread over twice the packets. The bulk lookups
// take at most 64.
inline constexpr std::uint16_t kBurst = 64;
static_assert(kBurst <= FlowTable::kMaxBulk);
// Sweep this many flow-table slots per loop: a full sweep of 1M entries takes ~30k loops,
// well under a second when idle and a few seconds under load, far below any idle timeout.
inline constexpr unsigned kExpiryBudget = 32;

struct WorkerSetup {
  unsigned index;  // also the worker's RCU reader id in the session table
  std::uint16_t queue;
  std::uint32_t flow_capacity;
  std::uint32_t buffer_capacity;  // reassembly buffers (tables.dpi_streams_per_worker)
  int socket;
  // Inspected control connections (tables.dpi_sessions_per_worker).
  std::uint32_t stream_capacity = 65536;
  FragmentSettings fragments{};
};

class Worker {
 public:
  // `links`: this worker's end of every exchange with the control thread (Links::worker()).
  Worker(const WorkerSetup& setup, const Snapshot* snapshot, const WorkerLinks& links);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Polls until the control thread stops the workers.
  void run();
  // One pass over every port: true if any packet arrived. run() is a loop of these.
  bool poll_once();

  const WorkerCounters& counters() const { return counters_; }
  std::span<const BackendCounters> backend_counters() const { return backend_counters_; }
  std::span<const ServiceCounters> service_counters() const { return service_counters_; }
  // For the control thread: the size the worker last published in its counters.
  std::uint64_t flow_count() const { return counters_.flows_in_table.read(); }
  const FlowTable& flow_table() const { return flows_; }
  // The control thread's only way into this worker's flow table.
  FlowSampleMailbox& flow_samples() { return flow_samples_; }
  unsigned index() const { return index_; }

 private:
  // A packet queued for the burst's flow-table lookup, with what forward() needs of it.
  struct FlowPacket {
    rte_mbuf* mbuf;
    FlowKey key;
    std::uint32_t signature;
    std::uint16_t service;
    bool related;  // to an inspecting service's VIP on another port: an expected flow
    std::uint8_t tcp_flags;
    std::uint32_t tcp_seq;
    std::uint16_t payload_offset;
    std::uint16_t payload_length;
  };
  // A SIP datagram routed by its Call-ID once the burst's calls are looked up together.
  struct SipCall {
    rte_mbuf* mbuf;
    // Where the request came from and went: a client rate and a 503 need them, and a
    // reassembled datagram's head mbuf is a fragment that parses to no ports.
    parsers::IpBytes client;
    std::uint16_t client_port;
    std::uint16_t vip_port;
    std::span<const std::uint8_t> payload;
    parsers::sip::Message message;
    SessionKey key;
    std::uint32_t signature;
    std::uint16_t service;
  };
  // A fragment of a datagram that is not whole (dataplane/fragments.hpp).
  struct FragmentPacket {
    rte_mbuf* mbuf;
    parsers::Fragment fragment;
  };
  // What classify() makes of a burst: flows for the flow table, calls for the session table,
  // ICMP errors for the backends of the flows they quote (under those flows' keys), and IP
  // fragments, routed after the rest in arrival order (a first fragment before the later ones).
  struct Burst {
    FlowPacket flows[kBurst];
    unsigned flow_count = 0;
    SipCall calls[kBurst];
    unsigned call_count = 0;
    FlowPacket icmp_errors[kBurst];
    unsigned icmp_error_count = 0;
    FragmentPacket fragments[kBurst];
    unsigned fragment_count = 0;
  };
  struct TxBuffer {
    std::uint16_t count = 0;
    // Of the packets in `mbufs`, summed as send() adds them: a pass over the burst in
    // flush() read back the pointers just stored (GCC made it an AVX-512 gather, which
    // waited on those stores).
    std::uint64_t bytes = 0;
    rte_mbuf* mbufs[kBurst];
  };

  bool poll_port(std::uint16_t port_index, std::uint64_t now);
  // Queues the packet in `burst` for a flow or a call lookup, or answers or drops it.
  // Inlined, as are forward(), transmit_to_backend() and send(): once per packet each.
  // The common frame shape takes parse_ipv4_transport's short path to queue_for_lookup();
  // every other frame, and one that path cannot place, takes classify_any() and parse_frame.
  [[gnu::always_inline]] inline void classify(rte_mbuf* mbuf, std::uint16_t port_index,
                                              Burst& burst);
  void classify_any(rte_mbuf* mbuf, std::uint16_t port_index, std::span<const std::uint8_t> frame,
                    Burst& burst);
  // The service a packet is for, and whether as one of its related flows.
  struct ServiceMatch {
    std::uint16_t service;  // ServiceIndex::kNone: no service
    bool related;  // to an inspecting service's VIP on any other port: an expected flow
  };
  // By VIP, port and protocol, else an inspecting service's related flows on any port of
  // the VIP.
  [[gnu::always_inline]] inline ServiceMatch find_service(parsers::AddressWords vip,
                                                          std::uint16_t port,
                                                          std::uint8_t ip_proto) const;
  // Queues a packet for `found`'s service for its call or its flow.
  // Fields: parsers::Ipv4Transport or parsers::ParsedFrame, which name their fields alike
  // (addresses as AddressWords in the one, IpBytes in the other: fill_flow_key takes both).
  template <typename Fields>
  [[gnu::always_inline]] inline void queue_for_lookup(rte_mbuf* mbuf, ServiceMatch found,
                                                      const Fields& fields, Burst& burst);
  template <typename Fields>
  [[gnu::always_inline]] inline void fill_flow_packet(FlowPacket& p, rte_mbuf* mbuf, ServiceMatch found,
                                                      const Fields& fields);
  // An ICMP error to a VIP: queued under the flow it quotes, or dropped for what is wrong with
  // its quote.
  void queue_icmp_error(rte_mbuf* mbuf, const parsers::ParsedFrame& parsed, Burst& burst);
  // To the backend of the quoted flow, or where that flow would go if it were new. Creates,
  // refreshes and claims nothing: anyone can send an ICMP error.
  void steer_icmp_error(const FlowPacket& error, std::uint64_t now);
  // A flow the table does not hold, placed without changing any state: by a peer's synced
  // flow, a related flow's expectation or passive range, else the consistent hash.
  std::uint16_t placement_of_unknown_flow(const FlowPacket& packet, const ServiceView& service,
                                          std::uint64_t now) const;
  // `first_fragment`: the payload is a first fragment's, cut short: a body cut short is
  // expected, and a header block cut short returns false uncounted (to be reassembled).
  bool read_sip_call(rte_mbuf* mbuf, std::uint16_t payload_offset, std::uint16_t payload_length,
                     std::uint16_t service, SipCall& call, bool first_fragment = false);
  // read_sip_call over `call.payload`, set by the caller.
  bool read_sip_message(rte_mbuf* mbuf, std::uint16_t service, SipCall& call, bool first_fragment);
  // The backend it sent the call's datagram to, kAnswered (admission refused it with a 503,
  // or it was the ACK for one), or kNoBackend (dropped).
  std::uint16_t route_sip_call(SipCall& call, std::uint64_t now);
  static constexpr std::uint16_t kAnswered = 0xfffe;  // no backend's number (kMaxBackends)
  // Where a call's datagram came from and went (SipCall::client), from the frame's fields or
  // from its datagram's first fragment.
  static void note_origin(SipCall& call, const parsers::IpBytes& client, std::uint16_t client_port,
                          std::uint16_t vip_port) {
    call.client = client;
    call.client_port = client_port;
    call.vip_port = vip_port;
  }
  static void note_origin(SipCall& call, parsers::AddressWords client, std::uint16_t client_port,
                          std::uint16_t vip_port) {
    std::memcpy(call.client.data(), &client.high, 8);
    std::memcpy(call.client.data() + 8, &client.low, 8);
    call.client_port = client_port;
    call.vip_port = vip_port;
  }
  static void note_origin(SipCall& call, const parsers::Fragment& first) {
    note_origin(call, first.src_ip, first.src_port, first.dst_port);
  }

  // --- IP fragments (dataplane/worker_fragments.cpp) ---
  // Out of line (worker.cpp): the burst path's inlined steps for a fragment.
  ServiceMatch fragment_service(const parsers::Fragment& fragment) const;
  void queue_whole_fragment(rte_mbuf* mbuf, ServiceMatch found, const parsers::Fragment& fragment,
                            Burst& burst);
  std::uint16_t forward_first_fragment(rte_mbuf* mbuf, ServiceMatch found, const parsers::Fragment& fragment,
                                       std::uint64_t now);
  // The one way a later fragment leaves for its backend, counted as followed: the
  // fragments' file cannot call the inlined transmit_to_backend() itself.
  void send_fragment(rte_mbuf* mbuf, std::uint16_t backend, Forwarding forwarding, std::uint32_t datagram_hash);
  // A fragment to a VIP: queued in `burst.fragments`, or dropped for what is wrong with it.
  // False for a fragment to anything else, which classify_any counts as before.
  bool classify_fragment(rte_mbuf* mbuf, std::uint16_t port_index, std::span<const std::uint8_t> frame,
                         const parsers::ParsedFrame& parsed, Burst& burst);
  void route_fragment(FragmentPacket& packet, std::uint64_t now);
  void route_first_fragment(rte_mbuf* mbuf, const parsers::Fragment& fragment, const SessionKey& key,
                            std::uint32_t signature, std::uint64_t now);
  // A later fragment: to its datagram's backend by the table, or held until the route comes.
  void follow_fragment(const FragmentBuffer::Piece& piece, std::uint64_t now);
  // A piece of a SIP datagram worker `owner` reassembles: through its handoff ring, or held
  // here if this worker is the owner (or the piece came from another worker already).
  void hand_to_reassembly(const FragmentBuffer::Piece& piece, std::uint16_t owner, std::uint64_t now);
  // Once a loop pass: the pieces other workers handed this one.
  void serve_handed_fragments(std::uint64_t now);
  // Every byte of the datagram went through: its identification may start a new one.
  void mark_complete(const SessionKey& key, std::uint32_t signature, std::uint64_t now);
  void hold_fragment(const FragmentBuffer::Piece& piece, std::uint64_t now);
  // Into the buffer (true), or dropped for why it did not fit (false).
  bool hold_or_drop(FragmentBuffer::Piece piece, std::uint64_t now);
  // The datagram is dropped: every held fragment of it now, every later one by the table.
  void refuse_datagram(const SessionKey& key, std::uint32_t signature, DropReason reason, std::uint64_t now);
  void start_reassembly(const FragmentBuffer::Piece& first, const parsers::Fragment& fragment,
                        std::uint16_t service, std::uint64_t now);
  // Routes and sends the datagram of reassembly `slot` if all of it is held.
  void try_reassembly(unsigned slot, std::uint64_t now);
  // Once a loop pass while fragments wait: time them out, forward those whose route came.
  void serve_held_fragments(std::uint64_t now);
  // The route of a datagram whose first fragment this worker sent to `backend` (kNoBackend:
  // dropped; kAnswered: answered here), and the held fragments that waited for it. `previous`: the position of a
  // complete datagram's entry under the same key, taken over, or negative.
  void record_fragment_route(const SessionKey& key, std::uint32_t signature, std::uint16_t backend,
                             Forwarding forwarding, const parsers::Fragment& first, std::int32_t previous,
                             std::uint64_t now);
  void hand_to_control(rte_mbuf* mbuf);  // over the exception ring
  // A frame tetherd does not consume: to the port's kernel interface within this worker's
  // share of its rate for the frame's class, or dropped for `reason` on a port without one.
  void to_kernel_or_drop(rte_mbuf* mbuf, std::uint16_t port_index, KernelClass kind, DropReason reason);
  void answer_locally(rte_mbuf* mbuf, std::uint16_t port_index,
                      const parsers::ParsedFrame& parsed);
  // The backend it sent the packet to, or kNoBackend (dropped). `position`: the flow's in the
  // table, kNotInTable, or another negative value (not known: looked up).
  [[gnu::always_inline]] inline std::uint16_t forward(FlowPacket& packet, std::int32_t position,
                                                      std::uint64_t now);
  static constexpr std::int32_t kNotInTable = INT32_MIN;
  std::uint16_t resolve_related(const FlowPacket& packet, const ServiceView& service,
                                std::uint64_t now);
  // What a related flow's live entry is worth: see follow_related().
  enum class RelatedFlow : std::uint8_t {
    follows,   // the entry stands (re-pointed if the session moved)
    reopened,  // a new connection on the 5-tuple of a closed one: resolve it afresh
    ended,     // its session ended: the flow ends with it
  };
  RelatedFlow follow_related(const FlowPacket& packet, FlowEntry& entry, const ServiceView& service,
                             std::uint64_t now);
  // State sync. A packet that misses the flow table and opens nothing: the backend a peer's
  // synced flow names, or kNoBackend.
  std::uint16_t synced_flow_backend(const FlowPacket& packet, std::uint64_t now) const;
  // Counts the flow's packet toward its sync threshold and period; reports it when one is
  // reached, or when `closes` (its first FIN or RST) and it was reported before.
  void count_for_sync(const FlowPacket& packet, FlowEntry& entry, bool closes);
  // A bulk dump the control thread asked for: a slice of the flow table per loop pass.
  void serve_sync_dump();
  std::uint16_t pick_backend(const ServiceView& service, const PoolView& pool,
                             std::uint32_t hash) const;
  // The consistent hash's input for a new flow of `service`: the 5-tuple's or the client's.
  [[gnu::always_inline]] inline std::uint32_t new_flow_hash(const FlowPacket& packet,
                                                            const ServiceView& service) const;

  // Admission (dataplane/admission.hpp, docs/design.md "Admission"), for new sessions of a
  // service whose AdmissionView is active.
  enum class Refusal : std::uint8_t { none, full, service_rate, client_rate };
  struct Admission {
    std::uint16_t backend;
    Refusal refused;
    // The session's count on `backend` was taken (LiveCounts::try_add) against its capacity:
    // the place that counts the session keeps it, or gives it back (LiveCounts::remove).
    bool reserved = false;
  };
  // Where the new session goes: `chosen` (the scheduler's pick) if it has room, else a member
  // with room by weight; or why it is refused. Charges the rates and counts the admission or
  // refusal, per service and per backend (a refusal on `chosen`).
  Admission admit(const ServiceView& view, std::uint16_t service, const PoolView& pool,
                  std::uint16_t chosen, std::uint32_t hash, const parsers::IpBytes& client,
                  std::uint64_t now);
  // The sessions each backend holds, as the service's capacities count them.
  LiveCounts& held_counts(const ServiceView& view);
  bool has_room(const ServiceView& view, const PoolMember& member) {
    return member.capacity == 0 || held_counts(view).at(member.backend) < member.capacity;
  }
  Admission refuse(Refusal why, std::uint16_t service, std::uint16_t chosen);
  // Answers a refused SIP request with a 503 (or drops it, overload 'drop').
  void refuse_call(SipCall& call, const ServiceView& view, bool retransmission);
  // Answers a refused SYN with a RST (or drops it).
  void refuse_connection(FlowPacket& packet, const ServiceView& view);
  // The port index a received mbuf came in on.
  std::uint16_t port_index_of(const rte_mbuf* mbuf) const;

  // The flow table's expiry callback: an expired control connection's inspection ends, and
  // an expired connection leaves its backend's count.
  static void end_expired_entry(void* worker, FlowEntry& entry);

  bool is_down(std::uint16_t backend) const {
    return snapshot_->backends[backend].state == BackendState::down;
  }
  // The one place a packet leaves for its backend: DSR's MAC rewrite, after the service's
  // tunnel wrapped it (`flow_hash` gives GUE its source port and IPv6 its flow label).
  // False: too big for the tunnel, answered or dropped and counted.
  [[gnu::always_inline]] inline bool transmit_to_backend(rte_mbuf* mbuf, std::uint16_t backend,
                                                         Forwarding forwarding, std::uint32_t flow_hash);
  // Wraps the packet in the backend's tunnel (dataplane/worker_tunnel.cpp). False: it was
  // too big for the port's MTU and answered with an ICMP error, or dropped, and counted.
  bool encapsulate(rte_mbuf* mbuf, const TunnelEndpoint& endpoint, Forwarding forwarding,
                   std::uint32_t flow_hash);
  // encapsulate()'s path for an untagged frame in one segment that fits; false: not such a
  // frame, left as it was.
  template <bool kOuterIpv4, Forwarding kForwarding>
  bool wrap_common_frame(rte_mbuf* mbuf, const TunnelEndpoint& endpoint, std::uint32_t flow_hash);
  // Turns the packet (its IP packet at `l2_length`) into the ICMP too-big error back to its
  // client, within the rate; otherwise drops it.
  void refuse_too_big(rte_mbuf* mbuf, std::size_t l2_length, std::size_t ip_length, std::uint16_t mtu);
  [[gnu::always_inline]] inline void send(std::uint16_t port_index, rte_mbuf* mbuf);
  void send_reply(std::uint16_t port_index, rte_mbuf* mbuf, std::size_t length);
  void drop(rte_mbuf* mbuf, DropReason reason);
  void fallback(DpiFallback reason) { counters_.dpi_fallbacks[static_cast<std::size_t>(reason)]++; }
  void flush();

  unsigned index_;
  std::uint16_t queue_;
  const Snapshot* snapshot_;
  // The links' ends (dataplane/links.hpp), under the names the burst loop uses.
  SessionTable* sessions_;
  LiveCounts& connections_;
  AdmissionLimits* admission_;
  SnapshotChannel* channel_;
  rte_ring* exceptions_;
  rte_ring* outbound_;
  rte_ring* to_kernel_;
  FlowSampleMailbox& flow_samples_;
  WorkerCounters& counters_;
  std::span<BackendCounters> backend_counters_;  // kMaxBackends: snapshots may add backends
  std::span<ServiceCounters> service_counters_;  // kMaxServices
  const std::atomic<bool>& stop_;
  FlowTable flows_;
  SyncEventQueue sync_events_;  // enabled() only with state sync on
  SyncDumpRequest* sync_dump_;
  std::uint64_t dump_serving_ = 0;  // the dump request in hand, and how far it walked
  std::uint32_t dump_walked_ = 0;
  std::uint32_t dump_cursor_ = 0;
  StreamInspector inspection_;  // this worker's RTSP and FTP control connections
  // IP fragments: the shared table, this worker's held fragments and reassemblies.
  FragmentTable* fragments_;
  FragmentHandoffs* handoffs_;  // null with one worker
  FragmentBuffer held_;
  std::uint64_t fragment_timeout_tsc_;
  std::uint32_t held_cursor_ = 0;  // where the next pass's table lookups of held fragments start
  struct Reassembly {
    bool used = false;
    SessionKey key;
    std::uint32_t signature;
    std::uint16_t service;
    parsers::Fragment first;  // its ports route the datagram if it is not SIP after all
    std::uint64_t started;
  };
  std::array<Reassembly, kReassembliesPerWorker> reassemblies_{};
  // Signatures (modulo 512) of the flows forward() inserted since the burst's bulk lookup: a
  // miss whose bit is clear is still a miss (kNotInTable), without a second lookup.
  std::bitset<512> inserted_in_burst_;
  std::vector<std::uint8_t> reassembled_;  // kMaxReassembledBytes: the datagram being read
  std::uint64_t now_ = 0;  // of the current loop, for the expiry callback
  std::vector<TxBuffer> tx_;
  // Per port and class, this worker's token bucket toward the kernel interface, in TSC cycles.
  struct KernelAllowance {
    std::uint64_t credit = 0;
    std::uint64_t last = 0;
  };
  std::vector<std::array<KernelAllowance, kKernelClasses>> kernel_allowance_;
  // The token bucket of ICMP too-big errors, in TSC cycles (Linux's icmp_msgs_per_sec and
  // icmp_msgs_burst: 1000 a second, 50 at once), per worker.
  KernelAllowance too_big_allowance_;
  std::uint64_t too_big_cost_tsc_ = 0;
  // Scratch for the burst in hand: a member, not on the stack, so that a poll does not
  // construct a burst's worth of SIP message records it may never fill. On its own cache
  // lines, as it was while the worker held its counters.
  alignas(64) Burst burst_;
  RefusedCalls refused_calls_;
  std::uint64_t refusal_memory_tsc_;
  char reply_[2048];  // a 503 being built
};

}  // namespace tether::dataplane
