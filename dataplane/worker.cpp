#include "dataplane/worker.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_hash_crc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "parsers/sip.hpp"
#include "parsers/sip_response.hpp"

namespace tether::dataplane {
namespace {

constexpr std::size_t kMinFrame = 60;  // Ethernet minimum without the FCS
// Fixed, so that every worker and every tether instance maps a Call-ID to the same backend.
constexpr std::uint64_t kCallIdSeed = 0x63616c6c2d6964ULL;  // "call-id"
constexpr std::uint32_t kClientHashSeed = 0x73726368;

std::string table_name(unsigned index) { return "flows_w" + std::to_string(index); }

bool is_multicast(const parsers::MacBytes& mac) { return (mac[0] & 1) != 0; }

bool is_other_protocol(parsers::ParseStatus status) {
  using parsers::ParseStatus;
  return status == ParseStatus::unsupported_ethertype || status == ParseStatus::unsupported_arp ||
         status == ParseStatus::unsupported_l4;
}

bool is_truncation(parsers::ParseStatus status) {
  using parsers::ParseStatus;
  switch (status) {
    case ParseStatus::truncated_ethernet:
    case ParseStatus::truncated_vlan:
    case ParseStatus::truncated_arp:
    case ParseStatus::truncated_ipv4:
    case ParseStatus::truncated_ipv6:
    case ParseStatus::truncated_tcp:
    case ParseStatus::truncated_udp:
    case ParseStatus::truncated_icmp:
      return true;
    default:
      return false;
  }
}

std::span<const std::uint8_t> payload_of(rte_mbuf* mbuf, std::uint16_t offset, std::uint16_t length) {
  return {rte_pktmbuf_mtod(mbuf, const std::uint8_t*) + offset, length};
}

std::uint32_t fold(std::uint64_t digest) {
  return static_cast<std::uint32_t>(digest ^ (digest >> 32));
}

// The SIP start line, for content rules: from the method to the line end.
std::string_view start_line(const parsers::sip::Message& message,
                            std::span<const std::uint8_t> payload) {
  const char* begin = message.method_name.data();
  const char* end = reinterpret_cast<const char*>(payload.data() + payload.size());
  const char* cursor = begin;
  while (cursor < end && *cursor != '\r' && *cursor != '\n') ++cursor;
  return {begin, static_cast<std::size_t>(cursor - begin)};
}

std::string_view sip_header(const void* message, std::string_view name) {
  auto value = parsers::sip::find_header(*static_cast<const parsers::sip::Message*>(message), name);
  return value ? *value : std::string_view{};
}

// 16 bits of the digest of a message's From tag, never 0 (0: no tag). The tag of a call's
// opening INVITE is random and new for each call (RFC 3261 19.3), and the same in that INVITE's
// retransmissions.
std::uint16_t from_tag_digest(const parsers::sip::Message& message) {
  const auto tag = parsers::sip::tag_parameter(message.from);
  if (!tag || tag->empty()) return 0;
  const std::uint64_t digest = parsers::sip::hash_unfolded(*tag, kCallIdSeed);
  const auto folded = static_cast<std::uint16_t>(digest ^ digest >> 16 ^ digest >> 32 ^ digest >> 48);
  return folded != 0 ? folded : 1;
}

// The backend whose configured passive port range holds an FTP data connection's port.
std::uint16_t passive_range_backend(const ServiceView& service, std::uint16_t port) {
  for (const PassiveRange& range : service.passive_ranges)
    if (port >= range.first && port <= range.last) return range.backend;
  return kNoBackend;
}

}  // namespace

Worker::Worker(const WorkerSetup& setup, const Snapshot* snapshot, const WorkerLinks& links)
    : index_(setup.index),
      queue_(setup.queue),
      snapshot_(snapshot),
      sessions_(links.sessions),
      connections_(*links.connections),
      admission_(links.admission),
      channel_(links.snapshots),
      exceptions_(links.exceptions),
      outbound_(links.outbound),
      to_kernel_(links.to_kernel),
      flow_samples_(*links.flow_samples),
      counters_(*links.counters),
      backend_counters_(links.backend_counters),
      service_counters_(links.service_counters),
      stop_(*links.stop),
      flows_(table_name(setup.index).c_str(), setup.flow_capacity, setup.socket),
      sync_events_(links.sync_events, *links.counters),
      sync_dump_(links.sync_dump),
      inspection_(setup.stream_capacity, setup.buffer_capacity, *links.sessions, *links.counters,
                  links.backend_counters, sync_events_),
      fragments_(links.fragments),
      handoffs_(links.fragment_handoffs),
      held_(setup.fragments.buffer_per_worker, setup.fragments.per_source),
      fragment_timeout_tsc_(rte_get_tsc_hz() / 1000 * setup.fragments.timeout_ms),
      reassembled_(kMaxReassembledBytes),
      tx_(snapshot->ports.size()),
      kernel_allowance_(snapshot->ports.size()),
      too_big_cost_tsc_(std::max<std::uint64_t>(1, rte_get_tsc_hz() / 1000)),
      refusal_memory_tsc_(kRefusalMemory_s * rte_get_tsc_hz()) {}

Worker::~Worker() = default;

void Worker::run() {
  sessions_->register_reader(index_, &counters_);  // its contention counted with the rest
  fragments_->register_reader(index_);
  while (!stop_.load(std::memory_order_relaxed)) poll_once();
  flush();
  fragments_->unregister_reader(index_);
  sessions_->unregister_reader(index_);
}

bool Worker::poll_once() {
  const std::uint64_t start = rte_rdtsc();
  // Between bursts: the only place this worker lets go of its snapshot.
  if (channel_ != nullptr)
    if (const Snapshot* next = channel_->receive()) snapshot_ = next;
  if (outbound_ != nullptr) {
    void* packets[kBurst];
    const unsigned count = rte_ring_sc_dequeue_burst(outbound_, packets, kBurst, nullptr);
    for (unsigned i = 0; i < count; ++i) {
      auto* mbuf = static_cast<rte_mbuf*>(packets[i]);
      if (mbuf->port < snapshot_->ports.size()) send(mbuf->port, mbuf);
      else rte_pktmbuf_free(mbuf);
    }
    if (count > 0) flush();
  }
  bool busy = false;
  // One clock for the whole pass: a TSC read is slow in a VM, and a loop's packets are
  // microseconds apart.
  now_ = start;
  for (std::uint16_t p = 0; p < snapshot_->ports.size(); ++p) busy |= poll_port(p, now_);
  counters_.flows_expired += flows_.expire(now_, kExpiryBudget, end_expired_entry, this);
  if (handoffs_ != nullptr) serve_handed_fragments(now_);
  if (!held_.empty()) [[unlikely]] {
    serve_held_fragments(now_);
    flush();
  }
  counters_.flows_in_table.set(flows_.size());
  if (flow_samples_.asked()) flow_samples_.serve(flows_, now_);
  if (sync_events_.enabled()) {
    serve_sync_dump();
    sync_events_.flush();
  }
  ++(busy ? counters_.busy_polls : counters_.idle_polls);
  const std::uint64_t spent = rte_rdtsc() - start;
  counters_.loop_cycles += spent;
  if (busy) counters_.busy_cycles += spent;
  // Outside any burst this worker holds no session table entry: deleted ones may be reused.
  sessions_->quiescent(index_);
  fragments_->quiescent(index_);
  return busy;
}

bool Worker::poll_port(std::uint16_t port_index, std::uint64_t now) {
  rte_mbuf* received[kBurst];
  const std::uint16_t count =
      rte_eth_rx_burst(snapshot_->ports[port_index].port_id, queue_, received, kBurst);
  if (count == 0) return false;

  Burst& burst = burst_;
  burst.flow_count = 0;
  burst.call_count = 0;
  burst.icmp_error_count = 0;
  burst.fragment_count = 0;
  counters_.rx_packets += count;
  for (std::uint16_t i = 0; i < count; ++i) {
    counters_.rx_bytes += rte_pktmbuf_pkt_len(received[i]);
    classify(received[i], port_index, burst);
  }

  if (burst.call_count > 0) {
    // The session table is shared and large: looked up one call at a time, each message
    // waits for its cache misses in turn. One bulk pass brings them all in at once.
    const SessionKey* keys[kBurst];
    std::uint32_t signatures[kBurst];
    for (unsigned i = 0; i < burst.call_count; ++i) {
      keys[i] = &burst.calls[i].key;
      signatures[i] = burst.calls[i].signature;
    }
    sessions_->warm(keys, signatures, burst.call_count);
    for (unsigned i = 0; i < burst.call_count; ++i) route_sip_call(burst.calls[i], now);
  }

  if (burst.flow_count > 0) {
    const FlowKey* keys[kBurst];
    std::uint32_t signatures[kBurst];
    std::int32_t positions[kBurst];
    for (unsigned i = 0; i < burst.flow_count; ++i) {
      keys[i] = &burst.flows[i].key;
      signatures[i] = burst.flows[i].signature;
    }
    flows_.lookup_bulk(keys, signatures, burst.flow_count, positions);
    inserted_in_burst_ = {};
    for (unsigned i = 0; i < burst.flow_count; ++i) {
      // A miss stays a miss unless this burst inserted a flow of the same signature bits
      // since the bulk lookup: a SYN storm's new flows skip forward()'s second lookup.
      const std::uint32_t signature = burst.flows[i].signature;
      if (positions[i] < 0 && !inserted_in_burst_[signature % inserted_in_burst_.size()])
        positions[i] = kNotInTable;
      forward(burst.flows[i], positions[i], now);
    }
  }

  // After the flows: an error about a flow this burst opened finds its entry.
  for (unsigned i = 0; i < burst.icmp_error_count; ++i) steer_icmp_error(burst.icmp_errors[i], now);
  // Last: a first fragment finds the flow its burst opened, and routes the later fragments.
  for (unsigned i = 0; i < burst.fragment_count; ++i) route_fragment(burst.fragments[i], now);

  flush();
  return true;
}

void Worker::classify(rte_mbuf* mbuf, std::uint16_t port_index, Burst& burst) {
  const std::span<const std::uint8_t> frame{rte_pktmbuf_mtod(mbuf, const std::uint8_t*),
                                            rte_pktmbuf_data_len(mbuf)};
  parsers::Ipv4Transport common;
  if (parsers::parse_ipv4_transport(frame, common) &&
      parsers::same_mac(common.dst_mac, snapshot_->ports[port_index].mac)) {
    const ServiceMatch found = find_service(common.dst_ip, common.dst_port, common.l4_proto);
    if (found.service != ServiceIndex::kNone)
      return queue_for_lookup(mbuf, found, common, burst);
  }
  classify_any(mbuf, port_index, frame, burst);
}

void Worker::classify_any(rte_mbuf* mbuf, std::uint16_t port_index,
                          std::span<const std::uint8_t> frame, Burst& burst) {
  const Snapshot& snapshot = *snapshot_;
  parsers::ParsedFrame parsed;
  const auto status = parsers::parse_frame(frame, parsed);
  if ((status == parsers::ParseStatus::ipv4_fragment || status == parsers::ParseStatus::ipv6_fragment) &&
      classify_fragment(mbuf, port_index, frame, parsed, burst))
    return;
  if (status != parsers::ParseStatus::ok) {
    if (is_truncation(status) && rte_pktmbuf_pkt_len(mbuf) > rte_pktmbuf_data_len(mbuf))
      return drop(mbuf, DropReason::multi_segment);
    // Well-formed, only not what tetherd handles (LLDP, VRRP, OSPF, other ARP hardware): the
    // kernel interface's, when the port has one and the frame is addressed to the port.
    if (snapshot.ports[port_index].kernel && is_other_protocol(status) &&
        (is_multicast(parsed.dst_mac) || parsers::same_mac(parsed.dst_mac, snapshot.ports[port_index].mac)))
      return to_kernel_or_drop(mbuf, port_index, kernel_class(frame, status, parsed), DropReason::no_service);
    counters_.parse_errors[static_cast<std::size_t>(status)]++;
    rte_pktmbuf_free(mbuf);
    return;
  }
  if (!is_multicast(parsed.dst_mac) &&
      !parsers::same_mac(parsed.dst_mac, snapshot.ports[port_index].mac))
    return drop(mbuf, DropReason::not_our_mac);

  if (parsed.l3 == parsers::L3Kind::arp) return answer_locally(mbuf, port_index, parsed);

  const ServiceMatch found =
      find_service(parsers::address_words(parsed.dst_ip), parsed.dst_port, parsed.l4_proto);
  if (found.service != ServiceIndex::kNone) return queue_for_lookup(mbuf, found, parsed, burst);
  // An ICMP error to a VIP is about a packet a backend sent from it: the backend's. At the
  // ports' own addresses, errors stay the kernel's.
  if (parsers::is_steered_icmp_error(parsed.l4_proto, parsed.icmp_type) &&
      snapshot.is_local_address(port_index, parsed.dst_ip) &&
      !snapshot.is_interface_address(port_index, parsed.dst_ip))
    return queue_icmp_error(mbuf, parsed, burst);
  answer_locally(mbuf, port_index, parsed);
}

namespace {

DropReason icmp_error_drop(parsers::IcmpErrorStatus status) {
  using parsers::IcmpErrorStatus;
  switch (status) {
    case IcmpErrorStatus::truncated: return DropReason::icmp_error_truncated;
    case IcmpErrorStatus::bad_quoted_header: return DropReason::icmp_error_bad_quote;
    case IcmpErrorStatus::quotes_icmp: return DropReason::icmp_error_quotes_icmp;
    case IcmpErrorStatus::quotes_fragment: return DropReason::icmp_error_quotes_fragment;
    case IcmpErrorStatus::quotes_extension_header: return DropReason::icmp_error_quotes_extension;
    case IcmpErrorStatus::quotes_other_protocol: return DropReason::icmp_error_quotes_other;
    default: return DropReason::icmp_not_handled;  // not_steered: classify_any checked the type
  }
}

}  // namespace

void Worker::queue_icmp_error(rte_mbuf* mbuf, const parsers::ParsedFrame& parsed, Burst& burst) {
  if (snapshot_->standby) [[unlikely]]
    return drop(mbuf, DropReason::ha_standby);
  parsers::QuotedPacket quoted;
  const auto status = parsers::parse_icmp_error(
      payload_of(mbuf, parsed.l4_offset, static_cast<std::uint16_t>(parsed.l3_end - parsed.l4_offset)),
      parsed.l4_proto, quoted);
  if (status != parsers::IcmpErrorStatus::ok) return drop(mbuf, icmp_error_drop(status));
  // The quoted packet left this VIP from one of its services' ports (or, for an inspecting
  // service, from any port: a related flow's reply). Anything else was not a backend's.
  if (quoted.src_ip != parsed.dst_ip) return drop(mbuf, DropReason::icmp_error_not_a_service);
  const ServiceMatch found =
      find_service(parsers::address_words(quoted.src_ip), quoted.src_port, quoted.l4_proto);
  if (found.service == ServiceIndex::kNone) return drop(mbuf, DropReason::icmp_error_not_a_service);

  FlowPacket& error = burst.icmp_errors[burst.icmp_error_count++];
  error.mbuf = mbuf;
  // The client's flow: the quoted 5-tuple reversed.
  error.signature = fill_flow_key(error.key, quoted.dst_ip, quoted.src_ip, quoted.dst_port,
                                  quoted.src_port, quoted.l4_proto);
  error.service = found.service;
  error.related = found.related;
  error.tcp_flags = 0;  // not a SYN: a synced flow may place it
  error.tcp_seq = 0;
  error.payload_offset = 0;
  error.payload_length = 0;
}

void Worker::steer_icmp_error(const FlowPacket& error, std::uint64_t now) {
  std::uint16_t backend = kNoBackend;
  const std::int32_t position = flows_.lookup(error.key, error.signature);
  if (position >= 0) {
    const FlowEntry& entry = flows_.at(position);
    if (entry.deadline_tsc >= now && !is_down(entry.backend)) backend = entry.backend;
  }
  if (backend == kNoBackend) {
    backend = placement_of_unknown_flow(error, snapshot_->services[error.service], now);
    if (backend == kNoBackend)
      return drop(error.mbuf, error.related ? DropReason::no_expectation : DropReason::no_backend);
    counters_.icmp_errors_flow_unknown++;
  }
  if (transmit_to_backend(error.mbuf, backend, snapshot_->services[error.service].forwarding, error.signature))
    counters_.icmp_errors_forwarded++;
}

std::uint16_t Worker::placement_of_unknown_flow(const FlowPacket& packet, const ServiceView& service,
                                                std::uint64_t now) const {
  if (sync_events_.enabled()) {
    const std::uint16_t synced = synced_flow_backend(packet, now);
    if (synced != kNoBackend) return synced;
  }
  if (!packet.related) return pick_backend(service, service.pools[0], new_flow_hash(packet, service));
  SessionRoute route;
  if (service.dpi == SessionInspection::rtsp)
    return find_rtp_expectation(*sessions_, packet.service, packet.key.src, packet.key.src_port, now,
                                route) >= 0 && !is_down(route.backend)
               ? route.backend
               : kNoBackend;
  // An FTP data connection's expectation was used up by its SYN: without a passive range,
  // only its flow entry knew.
  return passive_range_backend(service, packet.key.dst_port);
}

std::uint32_t Worker::new_flow_hash(const FlowPacket& packet, const ServiceView& service) const {
  return service.hash_input == HashInput::five_tuple
             ? packet.signature
             : rte_hash_crc(packet.key.src.data(), static_cast<std::uint32_t>(packet.key.src.size()),
                            kClientHashSeed);
}

Worker::ServiceMatch Worker::find_service(parsers::AddressWords vip, std::uint16_t port,
                                          std::uint8_t ip_proto) const {
  const ServiceIndex& index = snapshot_->service_index;
  std::uint16_t value = index.find(vip, port, ip_proto);
  if (value == ServiceIndex::kNone) {
    value = index.find(vip, 0, ip_proto);
    if (value == ServiceIndex::kNone || (value & ServiceIndex::kRelated) == 0)
      return {ServiceIndex::kNone, false};
  }
  // The index's entries carry the related flag in the service number's top bit.
  return {static_cast<std::uint16_t>(value & ~ServiceIndex::kRelated),
          (value & ServiceIndex::kRelated) != 0};
}

template <typename Fields>
void Worker::queue_for_lookup(rte_mbuf* mbuf, ServiceMatch found, const Fields& fields,
                              Burst& burst) {
  // A standby instance's VIPs are the master's (Snapshot::standby): the one branch HA adds.
  if (snapshot_->standby) [[unlikely]]
    return drop(mbuf, DropReason::ha_standby);
  const bool related = found.related;
  const std::uint16_t service = found.service;
  if (!related && snapshot_->services[service].dpi == SessionInspection::sip_calls &&
      read_sip_call(mbuf, fields.payload_offset, fields.payload_length, service,
                    burst.calls[burst.call_count])) {
    note_origin(burst.calls[burst.call_count++], fields.src_ip, fields.src_port, fields.dst_port);
    return;
  }

  fill_flow_packet(burst.flows[burst.flow_count++], mbuf, found, fields);
}

template <typename Fields>
void Worker::fill_flow_packet(FlowPacket& p, rte_mbuf* mbuf, ServiceMatch found, const Fields& fields) {
  p.mbuf = mbuf;
  p.signature = fill_flow_key(p.key, fields.src_ip, fields.dst_ip, fields.src_port,
                              fields.dst_port, fields.l4_proto);
  p.service = found.service;
  p.related = found.related;
  p.tcp_flags = fields.tcp_flags;
  p.tcp_seq = fields.tcp_seq;
  p.payload_offset = fields.payload_offset;
  p.payload_length = fields.payload_length;
}

// The burst path's inlined steps, out of line for the fragments' file
// (dataplane/worker_fragments.cpp), whose packets are few.
Worker::ServiceMatch Worker::fragment_service(const parsers::Fragment& fragment) const {
  return find_service(parsers::address_words(fragment.dst_ip), fragment.dst_port, fragment.l4_proto);
}
void Worker::queue_whole_fragment(rte_mbuf* mbuf, ServiceMatch found, const parsers::Fragment& fragment,
                                  Burst& burst) {
  queue_for_lookup(mbuf, found, fragment, burst);
}
std::uint16_t Worker::forward_first_fragment(rte_mbuf* mbuf, ServiceMatch found,
                                             const parsers::Fragment& fragment, std::uint64_t now) {
  FlowPacket packet;
  fill_flow_packet(packet, mbuf, found, fragment);
  return forward(packet, -1, now);
}
// A later fragment's tunnel entropy is its datagram's hash (it has no ports): its GUE source
// port may differ from its first fragment's, which only the backend's reassembly sees.
void Worker::send_fragment(rte_mbuf* mbuf, std::uint16_t backend, Forwarding forwarding, std::uint32_t datagram_hash) {
  if (transmit_to_backend(mbuf, backend, forwarding, datagram_hash)) counters_.fragments_followed++;
}

// A SIP datagram goes where its call goes, whatever flow carries it. False hands the packet
// back to flow-level balancing (not SIP, no Call-ID, a keepalive).
bool Worker::read_sip_call(rte_mbuf* mbuf, std::uint16_t payload_offset,
                           std::uint16_t payload_length, std::uint16_t service, SipCall& call,
                           bool first_fragment) {
  call.payload = payload_of(mbuf, payload_offset, payload_length);
  return read_sip_message(mbuf, service, call, first_fragment);
}

bool Worker::read_sip_message(rte_mbuf* mbuf, std::uint16_t service, SipCall& call, bool first_fragment) {
  namespace sip = parsers::sip;
  // Constructed in place from parse()'s result: a message is too large to copy per datagram.
  std::construct_at(&call.message, sip::parse(call.payload));
  const sip::Message& message = call.message;
  // A first fragment's body is cut short by design; its headers, when whole, are all there.
  const bool headers_whole = first_fragment && message.reason == sip::Reason::body_truncated;
  if (message.status != parsers::Status::parsed && !headers_whole) {
    if (first_fragment && sip_headers_cut(message)) return false;  // reassembled, then read again
    if (message.status == parsers::Status::not_this_protocol) fallback(DpiFallback::not_sip);
    else if (message.reason == sip::Reason::call_id_missing) fallback(DpiFallback::sip_no_call_id);
    else fallback(DpiFallback::sip_malformed);
    return false;
  }
  if (message.kind == sip::Kind::keepalive) return false;
  counters_.messages_inspected[static_cast<std::size_t>(SessionProtocol::sip)]++;
  call.mbuf = mbuf;
  call.service = service;
  call.signature = fill_sip_call_key(call.key, service, sip::hash_unfolded(message.call_id, kCallIdSeed));
  return true;
}

std::uint16_t Worker::route_sip_call(SipCall& call, std::uint64_t now) {
  namespace sip = parsers::sip;
  const sip::Message& message = call.message;
  const SessionKey& key = call.key;
  const std::uint32_t signature = call.signature;
  const std::uint16_t service = call.service;
  rte_mbuf* const mbuf = call.mbuf;
  const ServiceView& view = snapshot_->services[service];
  SessionTable::CallFound found;
  std::int32_t position = sessions_->find_call(key, signature, now, found);
  const SessionRoute route = found.route;
  // A call that is over holds nothing for a message that starts a new one under its Call-ID:
  // past its deadline, any message; ended and lingering, an INVITE outside any dialog with a
  // From tag other than the one that opened the call (the lingering call keeps its ACK, BYE
  // retransmissions, in-dialog requests and its own INVITE's late copies). The new call is
  // scheduled afresh, by today's weights, health and rules, and counted; one worker reopens it.
  bool reopening = false;
  if (position >= 0 &&
      (found.expired ||
       (found.ended && message.method == sip::Method::INVITE && sip::outside_dialog(message) &&
        (found.opener == 0 || found.opener != from_tag_digest(message))))) {
    reopening = sessions_->reopen_call(position, now);
    if (reopening || found.expired) position = -ENOENT;
  }
  const bool lingering = position >= 0 && found.ended;
  bool rescheduled = false;
  if (position >= 0 && is_down(route.backend)) {
    counters_.rescheduled++;
    rescheduled = true;
    position = -ENOENT;  // schedule the call afresh; add() moves it
  }
  const bool known = position >= 0;
  std::uint16_t backend = route.backend;
  // Admission: a request that opens a session, outside any dialog, not a call the table holds.
  // Everything else of a call (in-dialog requests, responses, an admitted INVITE's
  // retransmissions, which the table holds) passes.
  bool new_session = false;
  if (!known && !rescheduled && view.admission.active && message.kind == sip::Kind::request) [[unlikely]] {
    if (message.method == sip::Method::ACK) {
      // The ACK for tetherd's own 503 carries the To tag it added (RFC 3261 17.1.1.3).
      char tag[17];
      refusal_to_tag(key.digest, tag);
      const auto to = sip::find_header(message, "To");
      const auto to_tag = to ? sip::tag_parameter(*to) : std::nullopt;
      if (to_tag && *to_tag == std::string_view(tag, 16)) {
        counters_.sip_acks_absorbed++;
        rte_pktmbuf_free(mbuf);
        return kAnswered;
      }
    }
    new_session = (view.admission.sip_methods >> static_cast<unsigned>(message.method) & 1) != 0 &&
                  sip::outside_dialog(message);
    if (new_session && refused_calls_.holds(key.digest, now)) {
      refuse_call(call, view, true);
      return kAnswered;
    }
  }
  if (!known) {
    std::size_t pool = 0;
    if (view.rules && message.kind == sip::Kind::request) {
      const MessageFields fields{start_line(message, call.payload), message.request_uri, sip_header,
                                 &message};
      const int matched = view.rules->match(fields, snapshot_->rule_scratch[index_]);
      if (matched >= 0) pool = static_cast<std::size_t>(matched);
    }
    const std::uint32_t hash = fold(key.digest);
    // least-sessions places calls as they start. A later message of a call the table does not
    // hold (refused when it was full, or lost) goes by the consistent hash, where that call's
    // first messages went if the table refused them.
    backend = view.least_sessions && sip::outside_dialog(message)
                  ? least_loaded<PoolMember>(view.pools[pool].members, sessions_->live_calls())
                  : pick_backend(view, view.pools[pool], hash);
    if (backend == kNoBackend) {
      drop(mbuf, DropReason::no_backend);
      return kNoBackend;
    }
    // A call holds a session on its backend (live_calls: max_sessions and least-sessions)
    // when a method that opens one started it (admission.methods; RFC 3261 12: INVITE makes
    // dialogs, OPTIONS and REGISTER are transactions of their own).
    SessionTable::CallCount call_count =
        message.kind == sip::Kind::request && (view.admission.sip_methods >> static_cast<unsigned>(message.method) & 1) != 0
            ? SessionTable::CallCount::held
            : SessionTable::CallCount::not_held;
    if (new_session) [[unlikely]] {
      const Admission admission = admit(view, service, view.pools[pool], backend, hash, call.client, now);
      if (admission.refused != Refusal::none) {
        refused_calls_.remember(key.digest, now + refusal_memory_tsc_);
        refuse_call(call, view, false);
        return kAnswered;
      }
      backend = admission.backend;
      if (admission.reserved) call_count = SessionTable::CallCount::reserved;
    }
    bool created = false;
    // A call rescheduled while it lingers keeps its linger.
    const std::uint64_t deadline = now + (lingering ? view.linger_tsc : view.session_timeout_tsc);
    position = sessions_->add(key, signature, {backend, service}, deadline, &created, call_count);
    if (reopening && position >= 0) {
      sessions_->set_opener(position, from_tag_digest(message));
      sessions_->reopened(position);
      created = true;
    } else if (created) {
      sessions_->set_opener(position, from_tag_digest(message));
    }
    if (position == -ENOSPC) {
      fallback(DpiFallback::session_table_full);
      // Not in the table, the call is not counted on its backend, so least-sessions would
      // send every refused call to the same one. The consistent hash spreads them by weight
      // and sends each refused call's later messages where it sent the first.
      if (view.least_sessions) backend = pick_backend(view, view.pools[pool], hash);
    } else if (created) {  // not created: another worker added the call at the same moment
      counters_.sessions_created[static_cast<std::size_t>(SessionProtocol::sip)]++;
      backend_counters_[backend].sessions++;
    }
    // Placed, moved or reopened: the peers learn where.
    if (position >= 0 && sync_events_.enabled())
      sync_events_.emit(sip_call_event(service, key.digest, backend, lingering, sessions_->holds_call(position)));
  }
  if (position >= 0) {
    const bool ends_call = message.kind == sip::Kind::request &&
                           (message.method == sip::Method::BYE || message.method == sip::Method::CANCEL);
    if (ends_call) {
      // Counted once per call: not for retransmissions, the other side's BYE, BYE after CANCEL.
      if (sessions_->end_call(position, now + view.linger_tsc)) {
        counters_.sessions_ended[static_cast<std::size_t>(SessionProtocol::sip)]++;
        if (sync_events_.enabled())
          sync_events_.emit(sip_call_event(service, key.digest, backend, true, sessions_->holds_call(position)));
      }
    } else if (known && !lingering) {  // an ended call's late messages do not extend its linger
      sessions_->refresh(position, now + view.session_timeout_tsc);
      // A request inside the call (a session timer's re-INVITE or UPDATE, RFC 4028) extends
      // the peers' copy too; ACKs and responses, a few per call, are not worth a record.
      if (sync_events_.enabled() && message.kind == sip::Kind::request && message.method != sip::Method::ACK)
        sync_events_.emit(sip_call_event(service, key.digest, backend, false, sessions_->holds_call(position)));
    }
  }
  transmit_to_backend(mbuf, backend, view.forwarding, signature);
  return backend;
}

std::uint16_t Worker::forward(FlowPacket& packet, std::int32_t position, std::uint64_t now) {
  const ServiceView& service = snapshot_->services[packet.service];
  const bool closing = (packet.tcp_flags & (parsers::kTcpFin | parsers::kTcpRst)) != 0;
  // A TCP connection starts with a SYN without ACK (tcp_flags are 0 for UDP).
  const bool opens = packet.key.ip_proto == parsers::kProtoTcp &&
                     (packet.tcp_flags & (parsers::kTcpSyn | parsers::kTcpAck)) == parsers::kTcpSyn;
  std::uint16_t backend;
  FlowEntry* entry = nullptr;
  bool reserved = false;  // admission reserved the new session's count (Admission::reserved)
  // The bulk lookup ran before this burst's inserts: an earlier packet of the same new flow
  // in this burst may have added it since.
  if (position < 0 && position != kNotInTable) position = flows_.lookup(packet.key, packet.signature);

  bool known = position >= 0 && (entry = &flows_.at(position))->deadline_tsc >= now &&
               !is_down(entry->backend);
  bool reopened = false;
  // A related flow's entry stands only while its session does: checked on the packet, as
  // the flow may sit on another worker than its control connection. Established flows of
  // the services themselves never take this branch.
  if (known && packet.related) [[unlikely]] {
    switch (follow_related(packet, *entry, service, now)) {
      case RelatedFlow::follows:
        break;
      case RelatedFlow::reopened:
        known = false;
        reopened = true;
        break;
      case RelatedFlow::ended:
        entry->deadline_tsc = now - 1;  // expired: the sweep deletes it
        drop(packet.mbuf, DropReason::no_expectation);
        return kNoBackend;
    }
  }
  if (known) {
    backend = entry->backend;
  } else {
    if (entry != nullptr && entry->deadline_tsc >= now && !reopened) counters_.rescheduled++;
    // A new flow, or one whose entry expired but was not swept yet: schedule it afresh,
    // unless a peer synced it (this instance took over from it).
    const std::uint16_t synced =
        sync_events_.enabled() && !reopened ? synced_flow_backend(packet, now) : kNoBackend;
    if (synced != kNoBackend) {
      backend = synced;
      counters_.flows_from_sync++;
    } else if (packet.related) {
      backend = resolve_related(packet, service, now);
    } else if (service.least_connections && opens) {
      backend = least_loaded<PoolMember>(service.pools[0].members, connections_);
    } else {
      // Also least-connections' choice for a connection whose SYN it did not see (the flow
      // table was full, or another instance placed it): where the consistent hash sends it.
      backend = pick_backend(service, service.pools[0], new_flow_hash(packet, service));
    }
    // Admission: a SYN opens a connection; nothing else of a flow the table lost is refused.
    if (service.admission.active && opens && synced == kNoBackend && !packet.related &&
        backend != kNoBackend) [[unlikely]] {
      const Admission admission = admit(service, packet.service, service.pools[0], backend,
                                        new_flow_hash(packet, service), packet.key.src, now);
      if (admission.refused != Refusal::none) {
        refuse_connection(packet, service);
        return kNoBackend;
      }
      backend = admission.backend;
      reserved = admission.reserved;
    }
    if (backend == kNoBackend) {
      drop(packet.mbuf, packet.related ? DropReason::no_expectation : DropReason::no_backend);
      return kNoBackend;
    }
    counters_.new_flows++;
    backend_counters_[backend].flows++;
    const FlowEntry fresh{0, backend, static_cast<std::uint16_t>(packet.service & 0x7fff), opens, 0, 0, 0};
    if (entry == nullptr) {
      const std::int32_t inserted = flows_.insert(packet.key, packet.signature, fresh);
      inserted_in_burst_[packet.signature % inserted_in_burst_.size()] = true;
      // A full table costs state, not packets: the consistent hash already chose the backend.
      if (inserted >= 0) entry = &flows_.at(inserted);
      else counters_.flow_table_full++;
    } else {
      if (entry->stream != 0) inspection_.end_stream(*entry, now);
      if (entry->connection) connections_.remove(entry->backend);
      *entry = fresh;
    }
    // Counted while the entry lives: a SYN the full table refused opens nothing countable.
    // Admission's reservation is the count of a connection (max_connections), or of an RTSP
    // or FTP control connection, which inspect() takes over below.
    const bool reserved_connection = reserved && service.dpi == SessionInspection::none;
    if (opens && entry != nullptr) {
      if (!reserved_connection) connections_.add(backend);
    } else if (reserved) {
      held_counts(service).remove(backend);
      reserved = false;
    }
    if (reserved_connection) reserved = false;
  }
  if (entry != nullptr) {
    const bool closes = closing && !entry->closing;
    if (closing) entry->closing = 1;
    entry->deadline_tsc = now + (entry->closing ? service.fin_timeout_tsc : service.idle_timeout_tsc);
    // RTP and RTCP follow their synced expectation; every other flow is synced itself.
    if (sync_events_.enabled() && !(packet.related && service.dpi == SessionInspection::rtsp))
      count_for_sync(packet, *entry, closes);
  }

  if (!packet.related && (service.dpi == SessionInspection::rtsp || service.dpi == SessionInspection::ftp)) {
    if (entry != nullptr)
      inspection_.inspect(*entry,
                          {packet.key.src, packet.service, packet.tcp_flags, packet.tcp_seq,
                           payload_of(packet.mbuf, packet.payload_offset, packet.payload_length), reserved},
                          service, now);
    else if (packet.payload_length > 0) fallback(DpiFallback::no_flow_entry);
  }
  transmit_to_backend(packet.mbuf, backend, service.forwarding, packet.signature);
  return backend;
}

// The backend of a flow an inspecting service expects: RTP/RTCP from an RTSP client's
// announced ports, or an FTP data connection (by the backend's passive port range when
// configured, else by the oldest outstanding PASV/EPSV of the client address).
std::uint16_t Worker::resolve_related(const FlowPacket& packet, const ServiceView& service,
                                      std::uint64_t now) {
  SessionRoute route;
  if (service.dpi == SessionInspection::rtsp) {
    const std::int32_t position = find_rtp_expectation(*sessions_, packet.service, packet.key.src,
                                                       packet.key.src_port, now, route);
    if (position < 0 || is_down(route.backend)) return kNoBackend;
    sessions_->extend(position, now, now + service.session_timeout_tsc);
    counters_.expectations_used[static_cast<std::size_t>(Expectation::rtp)]++;
    return route.backend;
  }
  if (const std::uint16_t configured = passive_range_backend(service, packet.key.dst_port);
      configured != kNoBackend)
    return configured;
  // Only a SYN opens a data connection; anything else of an unknown one is stray.
  if ((packet.tcp_flags & (parsers::kTcpSyn | parsers::kTcpAck)) != parsers::kTcpSyn)
    return kNoBackend;
  // Data connections claim the client address's expectations in the order the PASVs came.
  // An expectation on a backend that went down is used up all the same: its data
  // connection is lost either way, and the next one must not take it.
  if (!sessions_->claim_ftp_expectation(packet.service, packet.key.src, now, route)) return kNoBackend;
  if (sync_events_.enabled())  // used up: the peers' oldest expectation of the client goes too
    sync_events_.emit(expectation_event(SessionKind::ftp_expectation, packet.service, packet.key.src, 0,
                                        route.backend, true));
  if (is_down(route.backend)) return kNoBackend;
  counters_.expectations_used[static_cast<std::size_t>(Expectation::ftp_data)]++;
  return route.backend;
}

// A related flow whose entry is live. RTP/RTCP: its expectation decides, looked up on every
// packet (one find in the shared table; media is tens of packets a second per stream): a
// SETUP from the same client ports on another control connection re-points the flow to
// that connection's backend, and once TEARDOWN or the end of the control connection ended
// the expectation (or it expired), the flow has ended too. The lookup also keeps the
// expectation alive while media flows. FTP data: the expectation was used up by the SYN
// that opened the connection, so only the connection's own state speaks: a SYN on an entry
// that saw FIN or RST opens a new connection from a reused port, resolved afresh; a SYN on
// an open entry is that connection's retransmitted SYN and follows it (claiming another
// expectation would steal the one of the client's next data connection).
Worker::RelatedFlow Worker::follow_related(const FlowPacket& packet, FlowEntry& entry,
                                           const ServiceView& service, std::uint64_t now) {
  if (service.dpi == SessionInspection::rtsp) {
    SessionRoute route;
    const std::int32_t position = find_rtp_expectation(*sessions_, packet.service, packet.key.src,
                                                       packet.key.src_port, now, route);
    if (position < 0 || is_down(route.backend)) return RelatedFlow::ended;
    sessions_->extend(position, now, now + service.session_timeout_tsc);
    if (route.backend != entry.backend) {
      if (entry.connection) {  // RTP is UDP: never so today, but a count follows its entry
        connections_.remove(entry.backend);
        connections_.add(route.backend);
      }
      entry.backend = route.backend;
      counters_.related_repointed++;
    }
    return RelatedFlow::follows;
  }
  if (entry.closing &&
      (packet.tcp_flags & (parsers::kTcpSyn | parsers::kTcpAck)) == parsers::kTcpSyn)
    return RelatedFlow::reopened;
  return RelatedFlow::follows;
}

std::uint16_t Worker::synced_flow_backend(const FlowPacket& packet, std::uint64_t now) const {
  const bool tcp = packet.key.ip_proto == parsers::kProtoTcp;
  // A SYN opens a connection: nothing synced can be its. RTP and RTCP go by expectation.
  if ((tcp && (packet.tcp_flags & (parsers::kTcpSyn | parsers::kTcpAck)) == parsers::kTcpSyn) ||
      (packet.related && !tcp))
    return kNoBackend;
  const SessionKey key = synced_flow_key(packet.service, packet.key.src, packet.key.src_port, packet.key.dst_port);
  SessionRoute route;
  if (sessions_->find(key, session_signature(key), now, route) < 0 || is_down(route.backend))
    return kNoBackend;
  return route.backend;
}

void Worker::count_for_sync(const FlowPacket& packet, FlowEntry& entry, bool closes) {
  const unsigned threshold = snapshot_->sync_flow_threshold;
  const bool reported_before = entry.sync_packets >= threshold;
  unsigned count = entry.sync_packets + 1u;
  if (count == threshold + snapshot_->sync_flow_period) count = threshold;
  entry.sync_packets = count & 0x3f;
  if (count == threshold || (closes && reported_before)) sync_events_.emit(flow_event(packet.key, entry));
}

void Worker::serve_sync_dump() {
  const std::uint64_t requested = sync_dump_->requested.load(std::memory_order_acquire);
  if (requested == sync_dump_->done.load(std::memory_order_relaxed)) return;
  if (requested != dump_serving_) {
    dump_serving_ = requested;
    dump_walked_ = 0;
  }
  // Only what fits beside the live events, which must not be lost to a dump.
  constexpr unsigned kReportsPerPass = 256;
  if (sync_events_.room() < 4 * kReportsPerPass) return;
  constexpr std::uint32_t kSlotsPerPass = 4096;
  const unsigned threshold = snapshot_->sync_flow_threshold;
  unsigned reported = 0;
  const std::uint32_t slots = std::min(kSlotsPerPass, flows_.slot_count() - dump_walked_);
  dump_walked_ += flows_.walk(now_, slots, dump_cursor_, [&](std::int32_t position, const FlowEntry& entry) {
    if (entry.sync_packets < threshold) return true;  // not reported yet: nor now
    if (const FlowKey* key = flows_.key_at(position)) sync_events_.emit(flow_event(*key, entry));
    return ++reported < kReportsPerPass;
  });
  if (dump_walked_ < flows_.slot_count()) return;
  sync_events_.flush();
  sync_dump_->done.store(requested, std::memory_order_release);
}

std::uint16_t Worker::pick_backend(const ServiceView&, const PoolView& pool,
                                   std::uint32_t hash) const {
  // Lemire's multiply-shift maps the hash onto [0, size) without a division.
  const std::size_t slot =
      static_cast<std::size_t>((static_cast<std::uint64_t>(hash) * pool.maglev.size()) >> 32);
  return pool.maglev[slot];
}

LiveCounts& Worker::held_counts(const ServiceView& view) {
  switch (view.dpi) {
    case SessionInspection::sip_calls: return sessions_->live_calls();
    case SessionInspection::rtsp: return sessions_->control_connections(SessionTable::ControlProtocol::rtsp);
    case SessionInspection::ftp: return sessions_->control_connections(SessionTable::ControlProtocol::ftp);
    case SessionInspection::none: break;
  }
  return connections_;  // max_connections: live TCP connections
}

Worker::Admission Worker::admit(const ServiceView& view, std::uint16_t service, const PoolView& pool,
                                std::uint16_t chosen, std::uint32_t hash, const parsers::IpBytes& client,
                                std::uint64_t now) {
  const AdmissionView& limits = view.admission;
  if (limits.client_interval_tsc != 0 && !admission_->clients.conforms(client, now, limits.tolerance_tsc))
    return refuse(Refusal::client_rate, service, chosen);
  if (limits.interval_tsc != 0 && !admission_->services[service].conforms(now, limits.tolerance_tsc))
    return refuse(Refusal::service_rate, service, chosen);
  std::uint16_t backend = chosen;
  bool reserved = false;
  const PoolMember* picked = nullptr;
  for (const PoolMember& member : pool.members)
    if (member.backend == chosen) picked = &member;
  if (picked != nullptr && picked->capacity != 0) {
    // Reserved, not read: workers admitting at once never take a backend past its capacity.
    LiveCounts& held = held_counts(view);
    reserved = held.try_add(chosen, picked->capacity);
    if (!reserved) {
      // The chosen backend is full: the members with room share the session by weight, picked
      // by the same hash, so that one session's flows choose alike while nothing changes.
      std::uint64_t total = 0;
      for (const PoolMember& member : pool.members)
        if (member.weight > 0 && has_room(view, member)) total += member.weight;
      if (total == 0) return refuse(Refusal::full, service, chosen);
      std::uint64_t target = (static_cast<std::uint64_t>(hash) * total) >> 32;
      backend = kNoBackend;
      for (const PoolMember& member : pool.members) {
        if (member.weight == 0 || !has_room(view, member)) continue;
        if (target < member.weight) {
          // Room may go meanwhile: then the session is refused, as when every backend is full.
          if (member.capacity == 0 || (reserved = held.try_add(member.backend, member.capacity)))
            backend = member.backend;
          break;
        }
        target -= member.weight;
      }
      if (backend == kNoBackend) return refuse(Refusal::full, service, chosen);
    }
  }
  if (limits.client_interval_tsc != 0) admission_->clients.charge(client, now, limits.client_interval_tsc);
  if (limits.interval_tsc != 0) admission_->services[service].charge(now, limits.interval_tsc);
  counters_.sessions_admitted++;
  service_counters_[service].admitted++;
  backend_counters_[backend].admitted++;
  return {backend, Refusal::none, reserved};
}

Worker::Admission Worker::refuse(Refusal why, std::uint16_t service, std::uint16_t chosen) {
  switch (why) {
    case Refusal::full: counters_.refused_full++; break;
    case Refusal::service_rate: counters_.refused_service_rate++; break;
    case Refusal::client_rate: counters_.refused_client_rate++; break;
    case Refusal::none: return {chosen, why};
  }
  // RefusalReason lists the reasons in Refusal's order, after `none`.
  static_assert(static_cast<int>(RefusalReason::full) == static_cast<int>(Refusal::full) - 1 &&
                static_cast<int>(RefusalReason::client_rate) == static_cast<int>(Refusal::client_rate) - 1);
  const auto reason = static_cast<std::size_t>(why) - 1;
  service_counters_[service].refused[reason]++;
  backend_counters_[chosen].refused[reason]++;
  return {kNoBackend, why};
}

std::uint16_t Worker::port_index_of(const rte_mbuf* mbuf) const {
  for (std::uint16_t p = 0; p < snapshot_->ports.size(); ++p)
    if (snapshot_->ports[p].port_id == mbuf->port) return p;
  return 0;
}

void Worker::refuse_call(SipCall& call, const ServiceView& view, bool retransmission) {
  rte_mbuf* const mbuf = call.mbuf;
  parsers::ParsedFrame frame;
  // The head of a reassembled datagram is its first fragment: parse_frame stops at its IP
  // header, having read the addresses; the ports came with the call.
  const parsers::ParseStatus parsed =
      view.admission.reject && mbuf->nb_segs == 1
          ? parsers::parse_frame({rte_pktmbuf_mtod(mbuf, const std::uint8_t*), rte_pktmbuf_data_len(mbuf)}, frame)
          : parsers::ParseStatus::unsupported_l4;
  if (parsed != parsers::ParseStatus::ok && parsed != parsers::ParseStatus::ipv4_fragment &&
      parsed != parsers::ParseStatus::ipv6_fragment) {
    counters_.refusals_dropped++;
    rte_pktmbuf_free(mbuf);
    return;
  }
  frame.src_port = call.client_port;
  frame.dst_port = call.vip_port;
  char address[INET6_ADDRSTRLEN];
  const bool v4 = frame.l3 == parsers::L3Kind::ipv4;
  inet_ntop(v4 ? AF_INET : AF_INET6, call.client.data() + (v4 ? 12 : 0), address, sizeof address);
  char tag[17];
  refusal_to_tag(call.key.digest, tag);
  parsers::sip::Refusal refusal;
  refusal.retry_after_s = view.admission.retry_after_s;
  refusal.to_tag = std::string_view(tag, 16);
  // Built aside: the request's views point into the frame the answer overwrites.
  const parsers::sip::BuiltResponse built =
      parsers::sip::build_response(call.message, {address, call.client_port}, refusal, reply_);
  const ReplyElsewhere maddr{built.maddr, built.maddr_multicast, built.ttl};
  const std::uint16_t port = port_index_of(mbuf);
  const std::size_t length =
      built.size == 0 ? 0
                      : write_udp_reply(rte_pktmbuf_mtod(mbuf, std::uint8_t*), mbuf->buf_len - mbuf->data_off, frame,
                                        snapshot_->ports[port].mac, built.port, {reply_, built.size},
                                        built.to_maddr ? &maddr : nullptr);
  if (length == 0) {
    counters_.refusals_dropped++;
    rte_pktmbuf_free(mbuf);
    return;
  }
  counters_.sip_unavailable_sent++;
  if (retransmission) counters_.sip_unavailable_retransmitted++;
  send_reply(port, mbuf, length);
}

void Worker::refuse_connection(FlowPacket& packet, const ServiceView& view) {
  rte_mbuf* const mbuf = packet.mbuf;
  parsers::ParsedFrame frame;
  std::size_t length = 0;
  const std::uint16_t port = port_index_of(mbuf);
  if (view.admission.reject && mbuf->nb_segs == 1 &&
      parsers::parse_frame({rte_pktmbuf_mtod(mbuf, const std::uint8_t*), rte_pktmbuf_data_len(mbuf)}, frame) ==
          parsers::ParseStatus::ok)
    length = write_tcp_reset(rte_pktmbuf_mtod(mbuf, std::uint8_t*), mbuf->buf_len - mbuf->data_off, frame,
                             snapshot_->ports[port].mac);
  if (length == 0) {
    counters_.refusals_dropped++;
    rte_pktmbuf_free(mbuf);
    return;
  }
  counters_.tcp_resets_sent++;
  send_reply(port, mbuf, length);
}

void Worker::end_expired_entry(void* worker, FlowEntry& entry) {
  auto* self = static_cast<Worker*>(worker);
  if (entry.stream != 0) self->inspection_.end_stream(entry, self->now_);
  if (entry.connection) self->connections_.remove(entry.backend);
}

bool Worker::transmit_to_backend(rte_mbuf* mbuf, std::uint16_t backend, Forwarding forwarding,
                                 std::uint32_t flow_hash) {
  const BackendView& target = snapshot_->backends[backend];
  if (forwarding != Forwarding::dsr && !encapsulate(mbuf, target.tunnel, forwarding, flow_hash)) [[unlikely]]
    return false;
  std::memcpy(rte_pktmbuf_mtod(mbuf, std::uint8_t*), target.ethernet_addresses.data(),
              target.ethernet_addresses.size());
  BackendCounters& stats = backend_counters_[backend];
  stats.packets++;
  stats.bytes += rte_pktmbuf_pkt_len(mbuf);
  counters_.forwarded++;
  send(target.port, mbuf);
  return true;
}

void Worker::send_reply(std::uint16_t port_index, rte_mbuf* mbuf, std::size_t length) {
  if (length < kMinFrame) {
    auto* frame = rte_pktmbuf_mtod(mbuf, std::uint8_t*);
    std::memset(frame + length, 0, kMinFrame - length);
    length = kMinFrame;
  }
  mbuf->data_len = static_cast<std::uint16_t>(length);
  mbuf->pkt_len = static_cast<std::uint32_t>(length);
  send(port_index, mbuf);
}

void Worker::send(std::uint16_t port_index, rte_mbuf* mbuf) {
  TxBuffer& tx = tx_[port_index];
  tx.mbufs[tx.count++] = mbuf;
  tx.bytes += rte_pktmbuf_pkt_len(mbuf);
  if (tx.count == kBurst) flush();
}

void Worker::drop(rte_mbuf* mbuf, DropReason reason) {
  counters_.drops[static_cast<std::size_t>(reason)]++;
  rte_pktmbuf_free(mbuf);
}

void Worker::flush() {
  for (std::uint16_t p = 0; p < tx_.size(); ++p) {
    TxBuffer& tx = tx_[p];
    if (tx.count == 0) continue;
    std::uint64_t bytes = tx.bytes;
    const std::uint16_t sent = rte_eth_tx_burst(snapshot_->ports[p].port_id, queue_, tx.mbufs, tx.count);
    for (std::uint16_t i = sent; i < tx.count; ++i) {
      bytes -= rte_pktmbuf_pkt_len(tx.mbufs[i]);
      drop(tx.mbufs[i], DropReason::tx_queue_full);
    }
    counters_.tx_packets += sent;
    counters_.tx_bytes += bytes;
    tx.count = 0;
    tx.bytes = 0;
  }
}

}  // namespace tether::dataplane
