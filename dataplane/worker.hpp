// A worker: one lcore polling one RX queue on every port, run to completion.
//
// The burst loop reads top to bottom: receive, parse and classify (a SIP datagram is parsed
// for its Call-ID here), route the burst's calls through the shared session table after one
// bulk pass over it, look the burst's flows up in one bulk call, schedule the misses
// (related RTP and FTP data flows through their expectations), inspect control
// connections, rewrite for DSR, transmit. Everything a worker writes (flow
// table, reassembly buffers, counters, TX buffers) is its own, except session table entries,
// which the table makes safe to share; everything it exchanges with the control thread goes
// through its WorkerLinks (dataplane/links.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/counters.hpp"
#include "dataplane/flow_sample.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/links.hpp"
#include "dataplane/session_table.hpp"
#include "dataplane/snapshot.hpp"
#include "dataplane/snapshot_channel.hpp"
#include "dataplane/stream_buffer.hpp"
#include "parsers/sip.hpp"

struct rte_mbuf;
struct rte_ring;

namespace tether::dataplane {

// 64, not DPDK's usual 32: the per-burst costs (the bulk lookups' setup, the flush, the
// expiry slice, the loop's own accounting) spread over twice the packets, ~3% of the
// instructions per packet on established flows. The bulk lookups take at most 64.
inline constexpr std::uint16_t kBurst = 64;
static_assert(kBurst <= FlowTable::kMaxBulk);
// Sweep this many flow-table slots per loop: a full sweep of 1M entries takes ~30k loops,
// well under a second when idle and a few seconds under load, far below any idle timeout.
inline constexpr unsigned kExpiryBudget = 32;
// RTP/RTCP ports one RTSP connection may set up (e.g. 4 media x RTP+RTCP).
inline constexpr unsigned kMaxRtpPorts = 8;

struct WorkerSetup {
  unsigned index;  // also the worker's RCU reader id in the session table
  std::uint16_t queue;
  std::uint32_t flow_capacity;
  std::uint32_t buffer_capacity;  // reassembly buffers (tables.dpi_streams_per_worker)
  int socket;
  // Inspected control connections (tables.dpi_sessions_per_worker).
  std::uint32_t stream_capacity = 65536;
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
  std::uint32_t flow_count() const { return flows_.size(); }
  const FlowTable& flow_table() const { return flows_; }
  // The control thread's only way into this worker's flow table.
  FlowSampleMailbox& flow_samples() { return flow_samples_; }
  unsigned index() const { return index_; }

 private:
  struct Pending {
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
    std::span<const std::uint8_t> payload;
    parsers::sip::message message;
    SessionKey key;
    std::uint32_t signature;
    std::uint16_t service;
  };
  // What classify() makes of a burst: flows for the flow table, calls for the session table.
  struct Burst {
    Pending flows[kBurst];
    unsigned flow_count = 0;
    SipCall calls[kBurst];
    unsigned call_count = 0;
  };
  struct TxBuffer {
    std::uint16_t count = 0;
    // Of the packets in `mbufs`, summed as send() adds them: a pass over the burst in
    // flush() read back the pointers just stored (GCC made it an AVX-512 gather, which
    // waited on those stores), ~2.5 ns a packet.
    std::uint64_t bytes = 0;
    rte_mbuf* mbufs[kBurst];
  };
  // An inspected control connection (RTSP or FTP): what it set up, so that TEARDOWN or its
  // end can undo it, and where its next unread byte is. 48 bytes, one per connection from
  // its SYN to its end (tables.dpi_sessions_per_worker of them). A 2 KB reassembly buffer
  // is borrowed only while the connection holds a partial request or segments past a gap:
  // a request that arrives whole is read straight from its packet.
  struct Stream {
    parsers::IpBytes client;
    std::uint32_t next_seq;  // the first byte not read yet, once `anchored`
    std::uint32_t buffer;    // its reassembly buffer's index + 1; 0 while it needs none
    std::uint16_t service;
    std::uint16_t backend;
    DpiKind dpi;
    // next_seq is known: from the client's SYN (ISN + 1), else from the first segment seen
    // since the connection was picked up or its inspection lost its place.
    bool anchored;
    bool session_counted;
    std::uint8_t rtp_port_count;
    std::uint16_t rtp_ports[kMaxRtpPorts];
  };
  static_assert(sizeof(Stream) <= 64);  // 48 today: a few dozen bytes per connection
  // A reassembly buffer and its place on the list by last use, which eviction takes from.
  struct BufferSlot {
    StreamBuffer buffer;
    std::uint32_t owner;  // index of the stream it is lent to
    std::uint32_t older;  // neighbours on the list by last use; kNoSlot at the ends
    std::uint32_t newer;
  };
  static constexpr std::uint32_t kNoSlot = UINT32_MAX;
  // What read_rtsp and read_ftp return when the stream cannot be read on from here.
  static constexpr std::size_t kUnreadable = SIZE_MAX;

  bool poll_port(std::uint16_t port_index, std::uint64_t now);
  // Queues the packet in `burst` for a flow or a call lookup, or answers or drops it.
  // Inlined, as are forward(), transmit_to_backend() and send(): once per packet each.
  // The common frame shape takes parse_ipv4_transport's short path to admit(); every other
  // frame, and one that path cannot place, takes classify_any() and parse_frame.
  [[gnu::always_inline]] inline void classify(rte_mbuf* mbuf, std::uint16_t port_index,
                                              Burst& burst);
  void classify_any(rte_mbuf* mbuf, std::uint16_t port_index, std::span<const std::uint8_t> frame,
                    Burst& burst);
  // The service a packet is for: by VIP, port and protocol, else an inspecting service's
  // related flows on any port of the VIP (ServiceIndex::kRelated set); kNone for neither.
  [[gnu::always_inline]] inline std::uint16_t find_service(parsers::AddressWords vip,
                                                           std::uint16_t port,
                                                           std::uint8_t ip_proto) const;
  // Queues a packet of service `found` (as find_service gives it) for its call or its flow.
  // Fields: parsers::Ipv4Transport or parsers::ParsedFrame, which name their fields alike
  // (addresses as AddressWords in the one, IpBytes in the other: fill_flow_key takes both).
  template <typename Fields>
  [[gnu::always_inline]] inline void admit(rte_mbuf* mbuf, std::uint16_t found,
                                           const Fields& fields, Burst& burst);
  bool read_sip_call(rte_mbuf* mbuf, std::uint16_t payload_offset, std::uint16_t payload_length,
                     std::uint16_t service, SipCall& call);
  void route_sip_call(SipCall& call, std::uint64_t now);
  void hand_to_control(rte_mbuf* mbuf);  // over the exception ring
  void answer_locally(rte_mbuf* mbuf, std::uint16_t port_index,
                      const parsers::ParsedFrame& parsed);
  [[gnu::always_inline]] inline void forward(Pending& packet, std::int32_t position,
                                             std::uint64_t now);
  std::uint16_t resolve_related(const Pending& packet, const ServiceView& service,
                                std::uint64_t now);
  // What a related flow's live entry is worth: see follow_related().
  enum class RelatedFlow : std::uint8_t {
    follows,   // the entry stands (re-pointed if the session moved)
    reopened,  // a new connection on the 5-tuple of a closed one: resolve it afresh
    ended,     // its session ended: the flow ends with it
  };
  RelatedFlow follow_related(const Pending& packet, FlowEntry& entry, const ServiceView& service,
                             std::uint64_t now);
  std::uint16_t pick_backend(const ServiceView& service, const PoolView& pool,
                             std::uint32_t hash) const;
  std::uint16_t least_sessions(const PoolView& pool) const;

  void inspect(FlowEntry& entry, const Pending& packet, const ServiceView& service,
               std::uint64_t now);
  void read_segment(Stream& stream, std::uint32_t seq, std::span<const std::uint8_t> payload,
                    const ServiceView& service, std::uint64_t now);
  // Read the whole requests at the start of `data`: the bytes they take, or kUnreadable.
  std::size_t read_rtsp(Stream& stream, std::span<const std::uint8_t> data,
                        const ServiceView& service, std::uint64_t now);
  std::size_t read_ftp(Stream& stream, std::span<const std::uint8_t> data,
                       const ServiceView& service, std::uint64_t now);
  // The stream lost its place (a gap or request it cannot hold, a malformed request): its
  // buffer goes back and its next segment starts it again.
  void lose_place(Stream& stream);
  StreamBuffer& borrow_buffer(Stream& stream);
  void release_buffer(Stream& stream);
  void unlink_buffer(std::uint32_t index);
  void link_newest_buffer(std::uint32_t index);
  template <typename Apply>
  void for_each_rtp_expectation(const Stream& stream, std::uint64_t now, Apply apply);
  void end_rtp_expectations(Stream& stream, std::uint64_t now);
  void end_stream(FlowEntry& entry, std::uint64_t now);
  static void end_expired_stream(void* worker, FlowEntry& entry);

  bool is_down(std::uint16_t backend) const {
    return snapshot_->backends[backend].state == BackendState::down;
  }
  [[gnu::always_inline]] inline void transmit_to_backend(rte_mbuf* mbuf, std::uint16_t backend);
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
  SnapshotChannel* channel_;
  rte_ring* exceptions_;
  rte_ring* outbound_;
  FlowSampleMailbox& flow_samples_;
  WorkerCounters& counters_;
  std::span<BackendCounters> backend_counters_;  // kMaxBackends: snapshots may add backends
  const std::atomic<bool>& stop_;
  FlowTable flows_;
  std::vector<Stream> streams_;
  std::vector<std::uint32_t> free_streams_;
  std::vector<BufferSlot> buffers_;
  std::vector<std::uint32_t> free_buffers_;
  std::uint32_t oldest_buffer_ = kNoSlot;  // the ends of the lent buffers' list by last use
  std::uint32_t newest_buffer_ = kNoSlot;
  std::uint64_t now_ = 0;  // of the current loop, for the expiry callback
  std::vector<TxBuffer> tx_;
  // Scratch for the burst in hand: a member, not on the stack, so that a poll does not
  // construct a burst's worth of SIP message records it may never fill.
  Burst burst_;
};

}  // namespace tether::dataplane
