// Per-worker counters, and the one list of each counter family: the stats file, `show
// counters`, DPDK telemetry and Prometheus are all generated from the lists below, so a
// counter added to a list appears in every output.
//
// Each worker writes only its own counters, aligned to cache lines so no two workers share
// one; the control thread reads them while the worker runs. A Counter is therefore accessed
// through std::atomic_ref with relaxed order: plain loads and stores on x86-64, no lock
// prefix, and no longer a data race by the C++ memory model. (GCC does not fold the relaxed
// load and store into one add to memory as it did for a plain integer: an increment is a
// load, an add and a store where it was one instruction.)
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "parsers/packet.hpp"

namespace tether::dataplane {

// A 64-bit count with a single writer (the owning worker) and any number of readers. The
// writer's increment is a relaxed load and store, not a locked read-modify-write: nobody
// else writes, so no increment is lost, and readers see each value whole.
class Counter {
 public:
  void operator++() { add(1); }
  void operator++(int) { add(1); }
  void operator+=(std::uint64_t n) { add(n); }
  // For a gauge: the writer replaces the value rather than adding to it.
  void set(std::uint64_t n) { std::atomic_ref(value_).store(n, std::memory_order_relaxed); }
  std::uint64_t read() const { return std::atomic_ref(value_).load(std::memory_order_relaxed); }
  operator std::uint64_t() const { return read(); }  // a read wherever a value is wanted

 private:
  void add(std::uint64_t n) {
    std::atomic_ref cell(value_);
    cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // mutable: atomic_ref needs a non-const object, and read() must work on a const Counter.
  alignas(std::atomic_ref<std::uint64_t>::required_alignment) mutable std::uint64_t value_ = 0;
};

// An enum and its names from one list: X(enumerator) for each.
#define TETHER_ENUMERATOR(name) name,
#define TETHER_ENUMERATOR_NAME(name) #name,

// Why a packet produced no output (besides the parser's own statuses).
#define TETHER_DROP_REASONS(X)                                                                  \
  X(not_our_mac)          /* unicast to another station's MAC */                              \
  X(no_service)           /* IP packet to no (VIP, port, protocol) service and no local address */ \
  X(no_backend)           /* the service has no backend with a positive weight */             \
  X(no_expectation)       /* to an RTSP/FTP VIP's other port, matching no expectation */      \
  X(arp_not_for_us)       /* ARP request for an address we do not own, or an ARP reply */     \
  X(icmp_not_handled)     /* ICMP to a VIP or interface address: not an echo request/NS, nor an error to steer */ \
  X(multi_segment)        /* headers not in the first segment */                              \
  X(tx_queue_full)        /* the NIC did not take the packet */                               \
  X(exception_ring_full)  /* a probe reply the control thread had no room for */               \
  X(kernel_rate_limited)  /* for a port's kernel interface, beyond its rate */                 \
  X(kernel_ring_full)     /* for a port's kernel interface, the control thread had no room */ \
  X(ha_standby)           /* to a VIP while this instance is an active-standby pair's backup */ \
  /* an ICMP error to a VIP (parsers/icmp_error.hpp) whose quoted packet cannot be steered: */ \
  X(icmp_error_truncated)         /* quotes less than an IP header and the 8 bytes after it */ \
  X(icmp_error_bad_quote)         /* quotes another IP version, or a bad IPv4 header length */ \
  X(icmp_error_quotes_icmp)       /* about an ICMP message */                                \
  X(icmp_error_quotes_fragment)   /* about a non-first fragment, which has no ports */       \
  X(icmp_error_quotes_extension)  /* about an IPv6 packet with extension headers */          \
  X(icmp_error_quotes_other)      /* about neither TCP nor UDP */                            \
  X(icmp_error_not_a_service)     /* about a packet not sent from this VIP by one of its services */ \
  /* an IP fragment to a VIP (dataplane/fragments.hpp): */                                    \
  X(fragment_malformed)     /* a length not a multiple of 8 before the last, empty, or beyond 65,535 */ \
  X(fragment_tiny)          /* a first fragment without the whole transport header / IPv6 header chain */ \
  X(fragment_overlap)       /* overlaps another of its datagram, or the header its route was chosen by */ \
  X(fragment_too_many)      /* more than 64 fragments of one datagram */                      \
  X(fragment_timeout)       /* waited for its first fragment or its reassembly longer than the timeout */ \
  X(fragment_buffer_full)   /* the worker held as many fragments as its buffer takes */       \
  X(fragment_source_limit)  /* the worker held per_source fragments from its source address */ \
  X(fragment_too_large)     /* a SIP datagram to reassemble longer than 16 KB */ \
  X(fragment_handoff_full)  /* for the worker reassembling its datagram, whose handoff ring was full */ \
  X(fragment_answered)      /* of a SIP datagram tetherd answered itself: a refused session's 503, an absorbed ACK */ \
  /* a packet of an ipip or gue service (dataplane/tunnel.hpp) that could not be wrapped: */  \
  X(tunnel_too_big_rate_limited)  /* over the port's MTU once wrapped, the ICMP error beyond its rate */ \
  X(tunnel_too_big_unanswerable)  /* over the MTU, an ICMP error or later fragment: no error about it */ \
  X(tunnel_unwrappable)           /* no headroom in its buffer, or no whole IP packet to wrap */

#define TETHER_SESSION_PROTOCOLS(X) X(sip) X(rtsp) X(ftp)

#define TETHER_EXPECTATIONS(X) X(rtp) X(ftp_data)

// Why admission refused a new session (docs/design.md "Admission"): every backend with room
// gone, the service's rate, the client address's rate.
#define TETHER_REFUSAL_REASONS(X) X(full) X(service_rate) X(client_rate)

// Why inspection gave up on a packet or a connection; the packet is still forwarded,
// flow by flow, so these count sessions that may split, not lost packets.
#define TETHER_DPI_FALLBACKS(X)                                                                 \
  X(not_sip)                /* a datagram to a SIP service that is not SIP */                 \
  X(sip_malformed)                                                                            \
  X(sip_no_call_id)                                                                           \
  X(session_table_full)     /* a new session found no room: routed by the consistent hash alone */ \
  X(stream_gap)             /* TCP segments missing in more places than a buffer holds ranges */ \
  X(stream_overflow)        /* a request longer than the reassembly buffer, or a segment beyond it */ \
  X(no_stream_state)        /* every inspection state of the worker in use (dpi_sessions_per_worker) */ \
  X(no_flow_entry)          /* control connection without a flow entry (flow table full) */   \
  X(rtsp_malformed)                                                                           \
  X(ftp_malformed)                                                                            \
  X(too_many_streams)       /* an RTSP connection set up more RTP ports than it can track */  \
  X(stream_evicted)         /* a partial request lost: its buffer went to a newer connection */ \
  X(too_many_expectations)  /* a PASV/EPSV of a client address with kFtpExpectationsPerClient outstanding */

enum class DropReason : std::uint8_t { TETHER_DROP_REASONS(TETHER_ENUMERATOR) count_ };
enum class SessionProtocol : std::uint8_t { TETHER_SESSION_PROTOCOLS(TETHER_ENUMERATOR) count_ };
enum class Expectation : std::uint8_t { TETHER_EXPECTATIONS(TETHER_ENUMERATOR) count_ };
enum class DpiFallback : std::uint8_t { TETHER_DPI_FALLBACKS(TETHER_ENUMERATOR) count_ };
enum class RefusalReason : std::uint8_t { TETHER_REFUSAL_REASONS(TETHER_ENUMERATOR) count_ };

inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::count_);
inline constexpr std::size_t kSessionProtocols = static_cast<std::size_t>(SessionProtocol::count_);
inline constexpr std::size_t kExpectationKinds = static_cast<std::size_t>(Expectation::count_);
inline constexpr std::size_t kDpiFallbackCount = static_cast<std::size_t>(DpiFallback::count_);
inline constexpr std::size_t kRefusalReasons = static_cast<std::size_t>(RefusalReason::count_);

namespace names {
inline constexpr std::array<const char*, kDropReasonCount> drop_reason{
    TETHER_DROP_REASONS(TETHER_ENUMERATOR_NAME)};
inline constexpr std::array<const char*, kSessionProtocols> dpi_protocol{
    TETHER_SESSION_PROTOCOLS(TETHER_ENUMERATOR_NAME)};
inline constexpr std::array<const char*, kExpectationKinds> expectation{
    TETHER_EXPECTATIONS(TETHER_ENUMERATOR_NAME)};
inline constexpr std::array<const char*, kDpiFallbackCount> dpi_fallback{
    TETHER_DPI_FALLBACKS(TETHER_ENUMERATOR_NAME)};
inline constexpr std::array<const char*, kRefusalReasons> refusal_reason{
    TETHER_REFUSAL_REASONS(TETHER_ENUMERATOR_NAME)};

template <typename Enum, std::size_t N>
constexpr const char* of(const std::array<const char*, N>& table, Enum value) {
  const auto index = static_cast<std::size_t>(value);
  return index < N ? table[index] : "unknown";
}
}  // namespace names

constexpr const char* to_string(DropReason reason) { return names::of(names::drop_reason, reason); }
constexpr const char* to_string(SessionProtocol protocol) { return names::of(names::dpi_protocol, protocol); }
constexpr const char* to_string(Expectation kind) { return names::of(names::expectation, kind); }
constexpr const char* to_string(DpiFallback reason) { return names::of(names::dpi_fallback, reason); }
constexpr const char* to_string(RefusalReason reason) { return names::of(names::refusal_reason, reason); }

// A worker's scalar counters: X(name, unit, help). The unit goes into the Prometheus name
// (tether_<name><unit>_total) where the name does not already say what it counts.
#define TETHER_WORKER_COUNTERS(X)                                                               \
  X(rx_packets, "", "Packets received from the ports.")                                      \
  X(rx_bytes, "", "Bytes received from the ports.")                                          \
  X(tx_packets, "", "Packets the ports took for transmission.")                              \
  X(tx_bytes, "", "Bytes the ports took for transmission.")                                  \
  X(forwarded, "_packets", "Packets sent to a backend.")                                     \
  X(new_flows, "", "Flows seen for the first time.")                                         \
  X(flow_table_full, "", "New flows forwarded by the stateless hash alone: the flow table was full.") \
  X(flows_expired, "", "Flows removed from the flow table after their idle timeout.")        \
  X(rescheduled, "", "Flows and SIP calls moved off a backend that went down.")              \
  X(related_repointed, "",                                                                    \
    "RTP/RTCP flows moved to the backend a newer SETUP from the same client ports named.")    \
  X(to_control, "_packets", "Probe replies and neighbour answers handed to the control thread.") \
  X(to_kernel, "_packets", "Frames handed to the control thread for a port's kernel interface.") \
  X(arp_replies, "", "ARP replies sent for the VIPs and the ports' addresses.")               \
  X(icmp_echo_replies, "", "ICMP and ICMPv6 echo replies sent.")                             \
  X(icmp_errors_forwarded, "",                                                                \
    "ICMP errors to a VIP sent to the backend of the flow they quote.")                      \
  X(icmp_errors_flow_unknown, "",                                                             \
    "ICMP errors forwarded for a flow not in the worker's table: placed as a new flow would be.") \
  X(nd_advertisements, "", "IPv6 neighbour advertisements sent.")                            \
  X(fragments_followed, "", "IP fragments sent after their first fragment, to its backend.") \
  X(fragments_held, "", "IP fragments that waited for their first fragment or a reassembly.") \
  X(fragments_reassembled, "_datagrams",                                                     \
    "SIP datagrams reassembled to read a Call-ID beyond their first fragment.")              \
  X(fragment_table_full, "",                                                                  \
    "First fragments routed with no room in the fragment table: their datagram's rest times out.") \
  X(fragments_handed, "",                                                                     \
    "IP fragments handed to the worker reassembling their SIP datagram.")                    \
  X(fragment_ids_reused, "_datagrams",                                                        \
    "Fragmented datagrams started under the identification of a complete one still in the fragment table.") \
  X(tunnelled, "_packets", "Packets sent to a backend wrapped in a tunnel (ipip or gue).")    \
  X(icmp_too_big_sent, "",                                                                    \
    "ICMP fragmentation-needed and ICMPv6 packet-too-big errors sent to clients whose packet would exceed the port's MTU once wrapped.") \
  X(sync_events, "", "Session changes and flows queued for state sync.")                    \
  X(sync_events_lost, "", "Session changes and flows for state sync the ring had no room for.") \
  X(flows_from_sync, "", "Flows new to this instance placed where a peer's synced flow says.") \
  /* admission (docs/design.md "Admission"): new sessions of services with capacities or rates */ \
  X(sessions_admitted, "", "New sessions admitted by a service with capacities or rate limits.") \
  X(refused_full, "_sessions", "New sessions refused: every backend of the service or pool was full.") \
  X(refused_service_rate, "_sessions", "New sessions refused: over the service's rate.")       \
  X(refused_client_rate, "_sessions", "New sessions refused: over the client address's rate.") \
  X(sip_unavailable_sent, "_responses", "503 Service Unavailable answers sent for refused SIP requests, retransmissions included.") \
  X(sip_unavailable_retransmitted, "_responses", "503 answers to retransmissions of a refused SIP request.") \
  X(sip_acks_absorbed, "", "ACKs for tetherd's own 503, consumed.")                           \
  X(tcp_resets_sent, "", "RSTs sent for refused TCP connections (overload 'reject').")       \
  X(refusals_dropped, "_sessions", "Refused new sessions dropped: overload 'drop', or no answer could be built.") \
  /* the shared session table under concurrent use (docs/performance.md, "More than one core") */ \
  X(session_table_adds, "", "Adds to the shared session table: new SIP calls and expectations, calls moved.") \
  X(session_table_cas_failed, "",                                                               \
    "Compare-and-swaps on a shared session entry lost to another thread: a retry, or a race another worker won.") \
  X(session_table_adds_timed, "", "Adds to the shared session table timed with the TSC: one in 16.") \
  X(session_table_add_cycles, "", "TSC cycles of the timed adds to the shared session table.") \
  X(busy_polls, "", "Worker loop iterations that received something.")                       \
  X(idle_polls, "", "Worker loop iterations that received nothing.")                         \
  /* per received packet: the cost of the whole loop, and of processing alone */              \
  X(loop_cycles, "", "TSC cycles of all worker loop iterations.")                            \
  X(busy_cycles, "", "TSC cycles of the worker loop iterations that received something.")

// Counters per inspected protocol (sip, rtsp, ftp): X(name, help).
#define TETHER_PROTOCOL_COUNTERS(X)                                                             \
  X(messages_inspected, "Signalling messages inspected, by protocol.")                       \
  X(sessions_created, "SIP calls, RTSP sessions and FTP control connections first seen, by protocol.") \
  X(sessions_ended, "Sessions ended by BYE/CANCEL, TEARDOWN or the connection's close, by protocol.")

// Counters per expectation kind (rtp, ftp_data): X(name, help).
#define TETHER_EXPECTATION_COUNTERS(X)                                                          \
  X(expectations_created, "Expected related flows announced by signalling, by kind.")        \
  X(expectations_used, "Related flows that matched an expectation, by kind.")

// A backend's counters: X(name, help).
#define TETHER_BACKEND_COUNTERS(X)                                                              \
  X(packets, "Packets sent to the backend.")                                                 \
  X(bytes, "Bytes sent to the backend.")                                                     \
  X(flows, "New flows sent to the backend.")                                                 \
  X(sessions, "SIP calls, RTSP sessions and FTP data connections sent to the backend.")       \
  X(admitted, "New sessions admitted to the backend by a service with capacities or rates.")

// Cell is Counter in a worker, and std::uint64_t in what the control thread reads and adds.
template <typename Cell>
struct alignas(64) WorkerCountersOf {
#define TETHER_SCALAR_MEMBER(name, unit, help) Cell name{};
  TETHER_WORKER_COUNTERS(TETHER_SCALAR_MEMBER)
#undef TETHER_SCALAR_MEMBER
  std::array<Cell, kDropReasonCount> drops{};
  std::array<Cell, parsers::kParseStatusCount> parse_errors{};  // [ok] unused
#define TETHER_PROTOCOL_MEMBER(name, help) std::array<Cell, kSessionProtocols> name{};
  TETHER_PROTOCOL_COUNTERS(TETHER_PROTOCOL_MEMBER)
#undef TETHER_PROTOCOL_MEMBER
#define TETHER_EXPECTATION_MEMBER(name, help) std::array<Cell, kExpectationKinds> name{};
  TETHER_EXPECTATION_COUNTERS(TETHER_EXPECTATION_MEMBER)
#undef TETHER_EXPECTATION_MEMBER
  std::array<Cell, kDpiFallbackCount> dpi_fallbacks{};
  // A gauge, not a count: the worker sets it to its flow table's size once a loop pass, so
  // the control thread never reads the rte_hash the worker writes. Summed over the workers
  // it is the stats file's flows_in_tables.
  Cell flows_in_table{};
};

template <typename Cell>
struct alignas(64) BackendCountersOf {
#define TETHER_BACKEND_MEMBER(name, help) Cell name{};
  TETHER_BACKEND_COUNTERS(TETHER_BACKEND_MEMBER)
#undef TETHER_BACKEND_MEMBER
  // New sessions refused, by reason, that the scheduler had chosen this backend for: for
  // `full`, the backend it chose was full and so was every other member with weight.
  std::array<Cell, kRefusalReasons> refused{};
};

// Admission per service (a worker's own, like its backends'): the new sessions it admitted
// and refused by reason. 32 bytes, in a per-worker array indexed by service.
template <typename Cell>
struct ServiceCountersOf {
  Cell admitted{};
  std::array<Cell, kRefusalReasons> refused{};
};

using WorkerCounters = WorkerCountersOf<Counter>;
using WorkerCounterValues = WorkerCountersOf<std::uint64_t>;
using BackendCounters = BackendCountersOf<Counter>;
using BackendCounterValues = BackendCountersOf<std::uint64_t>;
static_assert(sizeof(BackendCounterValues) == 64, "one cache line per backend per worker");
using ServiceCounters = ServiceCountersOf<Counter>;
using ServiceCounterValues = ServiceCountersOf<std::uint64_t>;

// Calls pair(to's cell, from's cell) for every counter of two counter sets.
#define TETHER_PAIR_SCALAR(name, ...) pair(to.name, from.name);
#define TETHER_PAIR_ARRAY(name, ...) \
  for (std::size_t i = 0; i < to.name.size(); ++i) pair(to.name[i], from.name[i]);
template <typename To, typename From, typename Pair>
void for_each_pair(WorkerCountersOf<To>& to, const WorkerCountersOf<From>& from, Pair&& pair) {
  TETHER_WORKER_COUNTERS(TETHER_PAIR_SCALAR)
  TETHER_PAIR_ARRAY(drops)
  TETHER_PAIR_ARRAY(parse_errors)
  TETHER_PROTOCOL_COUNTERS(TETHER_PAIR_ARRAY)
  TETHER_EXPECTATION_COUNTERS(TETHER_PAIR_ARRAY)
  TETHER_PAIR_ARRAY(dpi_fallbacks)
  TETHER_PAIR_SCALAR(flows_in_table)
}

template <typename To, typename From, typename Pair>
void for_each_pair(BackendCountersOf<To>& to, const BackendCountersOf<From>& from, Pair&& pair) {
  TETHER_BACKEND_COUNTERS(TETHER_PAIR_SCALAR)
  TETHER_PAIR_ARRAY(refused)
}

template <typename To, typename From, typename Pair>
void for_each_pair(ServiceCountersOf<To>& to, const ServiceCountersOf<From>& from, Pair&& pair) {
  TETHER_PAIR_SCALAR(admitted)
  TETHER_PAIR_ARRAY(refused)
}
#undef TETHER_PAIR_SCALAR
#undef TETHER_PAIR_ARRAY

// Adds a worker's (or backend's) live counters to plain values: what the control thread
// reads while the worker runs.
template <template <typename> class Set>
void add_to(Set<std::uint64_t>& sum, const Set<Counter>& counters) {
  for_each_pair(sum, counters, [](std::uint64_t& s, const Counter& c) { s += c.read(); });
}

}  // namespace tether::dataplane
