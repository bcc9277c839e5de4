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
  arp_not_for_us,     // ARP request for an address we do not own, or an ARP reply
  icmp_not_handled,   // ICMP to a VIP or interface address that is not an echo request/NS
  multi_segment,      // headers not in the first segment
  tx_queue_full,      // the NIC did not take the packet
  count_
};
inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::count_);
const char* to_string(DropReason reason);

struct alignas(64) WorkerCounters {
  std::uint64_t rx_packets = 0;
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_packets = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t forwarded = 0;  // packets sent to a backend
  std::uint64_t new_flows = 0;
  std::uint64_t flow_table_full = 0;  // new flows forwarded by the stateless hash alone
  std::uint64_t flows_expired = 0;
  std::uint64_t arp_replies = 0;
  std::uint64_t icmp_echo_replies = 0;
  std::uint64_t nd_advertisements = 0;
  std::uint64_t busy_polls = 0;  // loop iterations that received something
  std::uint64_t idle_polls = 0;
  std::array<std::uint64_t, kDropReasonCount> drops{};
  std::array<std::uint64_t, parsers::kParseStatusCount> parse_errors{};  // [ok] unused
};

struct alignas(64) BackendCounters {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t flows = 0;
};

}  // namespace tether::dataplane
