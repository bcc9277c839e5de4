// Per-worker counters. Each worker writes only its own, aligned to cache lines so no two
// workers share one; the control thread reads them (torn reads of a 64-bit counter cannot
// happen on x86-64) and adds them up.
#pragma once

#include <array>
#include <cstdint>

#include "parsers/packet.hpp"

namespace tether::dataplane {

// Why a packet produced no output (besides the parser's own statuses).
enum class DropReason : std::uint8_t {
  not_our_mac,        // unicast to another station's MAC
  no_service,         // IP packet to no (VIP, port, protocol) service and no local address
  no_backend,         // the service has no backend with a positive weight
  no_expectation,     // to an RTSP/FTP VIP's other port, matching no expectation
  arp_not_for_us,     // ARP request for an address we do not own, or an ARP reply
  icmp_not_handled,   // ICMP to a VIP or interface address that is not an echo request/NS
  multi_segment,      // headers not in the first segment
  tx_queue_full,      // the NIC did not take the packet
  exception_ring_full,  // a probe reply the control thread had no room for
  count_
};
inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::count_);
const char* to_string(DropReason reason);

enum class SessionProtocol : std::uint8_t { sip, rtsp, ftp, count_ };
inline constexpr std::size_t kSessionProtocols = static_cast<std::size_t>(SessionProtocol::count_);
const char* to_string(SessionProtocol protocol);

enum class Expectation : std::uint8_t { rtp, ftp_data, count_ };
inline constexpr std::size_t kExpectationKinds = static_cast<std::size_t>(Expectation::count_);
const char* to_string(Expectation kind);

// Why inspection gave up on a packet or a connection; the packet is still forwarded,
// flow by flow, so these count sessions that may split, not lost packets.
enum class DpiFallback : std::uint8_t {
  not_sip,             // a datagram to a SIP service that is not SIP
  sip_malformed,
  sip_no_call_id,
  session_table_full,  // a new session found no room: routed by the consistent hash alone
  stream_gap,          // TCP segments missing in more places than a buffer holds ranges
  stream_overflow,     // a request longer than the reassembly buffer, or a segment beyond it
  no_stream_state,     // every inspection state of the worker in use (dpi_sessions_per_worker)
  no_flow_entry,       // control connection without a flow entry (flow table full)
  rtsp_malformed,
  ftp_malformed,
  too_many_streams,    // an RTSP connection set up more RTP ports than it can track
  stream_evicted,      // a partial request lost: its buffer went to a newer connection
  too_many_expectations,  // a PASV/EPSV of a client address with kFtpExpectationsPerClient outstanding
  count_
};
inline constexpr std::size_t kDpiFallbackCount = static_cast<std::size_t>(DpiFallback::count_);
const char* to_string(DpiFallback reason);

struct alignas(64) WorkerCounters {
  std::uint64_t rx_packets = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_packets = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t forwarded = 0;  // packets sent to a backend
  std::uint64_t new_flows = 0;
  std::uint64_t flow_table_full = 0;  // new flows forwarded by the stateless hash alone
  std::uint64_t flows_expired = 0;
  std::uint64_t rescheduled = 0;  // flows and SIP calls moved off a backend that went down
  // RTP/RTCP flows moved to the backend a newer SETUP from the same client ports named
  std::uint64_t related_repointed = 0;
  std::uint64_t to_control = 0;   // probe replies and neighbour answers for the control thread
  std::uint64_t arp_replies = 0;
  std::uint64_t icmp_echo_replies = 0;
  std::uint64_t nd_advertisements = 0;
  std::uint64_t busy_polls = 0;  // loop iterations that received something
  std::uint64_t idle_polls = 0;
  // TSC cycles of all loop iterations, and of those that received something: per received
  // packet, the cost of the whole loop and of processing alone.
  std::uint64_t loop_cycles = 0;
  std::uint64_t busy_cycles = 0;
  std::array<std::uint64_t, kDropReasonCount> drops{};
  std::array<std::uint64_t, parsers::kParseStatusCount> parse_errors{};  // [ok] unused
  std::array<std::uint64_t, kSessionProtocols> sessions_created{};
  std::array<std::uint64_t, kSessionProtocols> sessions_ended{};  // BYE/CANCEL, TEARDOWN, close
  std::array<std::uint64_t, kSessionProtocols> messages_inspected{};
  std::array<std::uint64_t, kExpectationKinds> expectations_created{};
  std::array<std::uint64_t, kExpectationKinds> expectations_used{};
  std::array<std::uint64_t, kDpiFallbackCount> dpi_fallbacks{};
};

struct alignas(64) BackendCounters {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t flows = 0;
  std::uint64_t sessions = 0;  // SIP calls, RTSP sessions, FTP data connections sent here
};

}  // namespace tether::dataplane
