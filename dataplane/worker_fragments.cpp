// A worker's handling of IP fragments to a VIP (dataplane/fragments.hpp says the design).
//
// A first fragment is routed as any packet of its service (by its flow, or, for SIP, by its
// Call-ID) and its route written to the shared fragment table; the later fragments follow it
// from any worker. A fragment whose route is not known yet waits in this worker's buffer; a
// SIP datagram whose header block goes on past its first fragment is reassembled by the worker
// that got its first fragment, to which the others hand its pieces, and routed by the whole
// message. Fragments are forwarded as they came: DSR leaves the IP
// packet untouched, so the backend reassembles what the client sent.
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

#include "dataplane/worker.hpp"

namespace tether::dataplane {
namespace {

using Piece = FragmentBuffer::Piece;

DropReason fragment_drop(parsers::FragmentStatus status) {
  switch (status) {
    case parsers::FragmentStatus::tiny_first: return DropReason::fragment_tiny;
    case parsers::FragmentStatus::tcp_offset_one: return DropReason::fragment_overlap;  // RFC 3128
    default: return DropReason::fragment_malformed;
  }
}

DropReason admit_drop(FragmentBuffer::Admit admit) {
  switch (admit) {
    case FragmentBuffer::Admit::source_limit: return DropReason::fragment_source_limit;
    case FragmentBuffer::Admit::overlap: return DropReason::fragment_overlap;
    case FragmentBuffer::Admit::too_many: return DropReason::fragment_too_many;
    case FragmentBuffer::Admit::full:
    case FragmentBuffer::Admit::held: break;
  }
  return DropReason::fragment_buffer_full;
}

rte_mbuf* mbuf_of(const Piece& piece) { return static_cast<rte_mbuf*>(piece.packet); }

Piece piece_of(rte_mbuf* mbuf, const parsers::Fragment& fragment, const SessionKey& key,
               std::uint32_t signature, std::uint64_t now) {
  return {mbuf, key, signature, fragment.offset, fragment.length, fragment.more, fragment.data_offset, now};
}

}  // namespace

bool Worker::classify_fragment(rte_mbuf* mbuf, std::uint16_t port_index, std::span<const std::uint8_t> frame,
                               const parsers::ParsedFrame& parsed, Burst& burst) {
  const Snapshot& snapshot = *snapshot_;
  // To a VIP only: fragments to a port's own address, or to no address of ours, are counted
  // by the parser's status as before.
  if (!parsers::same_mac(parsed.dst_mac, snapshot.ports[port_index].mac) ||
      !snapshot.is_local_address(port_index, parsed.dst_ip) ||
      snapshot.is_interface_address(port_index, parsed.dst_ip))
    return false;
  if (snapshot.standby) [[unlikely]] {
    drop(mbuf, DropReason::ha_standby);
    return true;
  }
  FragmentPacket& packet = burst.fragments[burst.fragment_count];
  const parsers::FragmentStatus status =
      parsers::parse_fragment(frame, parsed.l3_offset, parsed.l3 == parsers::L3Kind::ipv6, packet.fragment);
  if (status != parsers::FragmentStatus::ok) {
    drop(mbuf, fragment_drop(status));
    return true;
  }
  if (packet.fragment.whole()) {  // RFC 6946's atomic fragment: a whole packet
    const ServiceMatch found = fragment_service(packet.fragment);
    if (found.service == ServiceIndex::kNone) drop(mbuf, DropReason::no_service);
    else queue_whole_fragment(mbuf, found, packet.fragment, burst);
    return true;
  }
  packet.mbuf = mbuf;
  ++burst.fragment_count;
  return true;
}

void Worker::route_fragment(FragmentPacket& packet, std::uint64_t now) {
  const parsers::Fragment& fragment = packet.fragment;
  const SessionKey key = fragment_key(fragment);
  const std::uint32_t signature = session_signature(key);
  if (fragment.first()) return route_first_fragment(packet.mbuf, fragment, key, signature, now);
  follow_fragment(piece_of(packet.mbuf, fragment, key, signature, now), now);
}

void Worker::route_first_fragment(rte_mbuf* mbuf, const parsers::Fragment& fragment, const SessionKey& key,
                                  std::uint32_t signature, std::uint64_t now) {
  const ServiceMatch found = fragment_service(fragment);
  if (found.service == ServiceIndex::kNone) return drop(mbuf, DropReason::no_service);
  SessionRoute known;
  const std::int32_t previous = fragments_->find(key, signature, now, known);
  if (previous >= 0) {
    // A second first fragment: an overlap, unless the datagram was refused already, or was
    // complete (its identification used again: a new datagram).
    if (known.backend == kFragmentRefused) return drop(mbuf, static_cast<DropReason>(known.service));
    if (known.backend != kFragmentComplete) {
      refuse_datagram(key, signature, DropReason::fragment_overlap, now);
      return drop(mbuf, DropReason::fragment_overlap);
    }
    counters_.fragment_ids_reused++;
  }
  std::uint16_t backend;
  const ServiceView& service = snapshot_->services[found.service];
  SipCall& call = burst_.calls[0];  // the burst's calls were routed before its fragments
  if (!found.related && service.dpi == SessionInspection::sip_calls &&
      read_sip_call(mbuf, fragment.payload_offset, fragment.payload_length, found.service, call, true)) {
    note_origin(call, fragment);
    backend = route_sip_call(call, now);
  } else if (!found.related && service.dpi == SessionInspection::sip_calls && sip_headers_cut(call.message)) {
    return start_reassembly(piece_of(mbuf, fragment, key, signature, now), fragment, found.service, now);
  } else {
    backend = forward_first_fragment(mbuf, found, fragment, now);
  }
  record_fragment_route(key, signature, backend, service.forwarding, fragment, previous, now);
}

void Worker::record_fragment_route(const SessionKey& key, std::uint32_t signature, std::uint16_t backend,
                                   Forwarding forwarding, const parsers::Fragment& first, std::int32_t previous,
                                   std::uint64_t now) {
  // A first fragment dropped (no backend) or answered here takes the rest of its datagram with it.
  if (backend == kNoBackend) return refuse_datagram(key, signature, DropReason::no_backend, now);
  if (backend == kAnswered) return refuse_datagram(key, signature, DropReason::fragment_answered, now);
  // A complete datagram's entry taken over: started afresh before the new route is published,
  // so that no worker that finds the route checks a fragment against the old datagram's bytes.
  if (previous >= 0) {
    fragments_->restart(previous);
    fragments_->cover(previous, 0, first.length);
    fragments_->count_bytes(previous, 0, first.length, false);
  }
  const std::int32_t position =
      fragments_->add(key, signature, fragment_route(backend, first.header_end, forwarding), now + fragment_timeout_tsc_);
  if (position < 0) {
    counters_.fragment_table_full++;
    return;  // the held fragments time out: no worker can learn the route
  }
  if (position != previous) {
    // A new entry, or one that expired unswept: no worker followed it since, but for a
    // fragment that found it in the instant since add().
    fragments_->restart(position);
    fragments_->cover(position, 0, first.length);
    fragments_->count_bytes(position, 0, first.length, false);
  }
  // The fragments that came first, held here (those held on other workers find the route
  // in their next pass).
  Piece waiting[kMaxFragmentsPerDatagram];
  unsigned count = 0;
  held_.remove_if([&](const Piece& piece, std::uint32_t) {
    if (count == kMaxFragmentsPerDatagram || !FragmentBuffer::same_datagram(piece.key, key)) return false;
    waiting[count++] = piece;
    return true;
  });
  for (unsigned i = 0; i < count; ++i) follow_fragment(waiting[i], now);
}

void Worker::follow_fragment(const Piece& piece, std::uint64_t now) {
  rte_mbuf* mbuf = mbuf_of(piece);
  SessionRoute route;
  const std::int32_t position = fragments_->find(piece.key, piece.signature, now, route);
  if (position < 0) return hold_fragment(piece, now);
  if (route.backend == kFragmentRefused) return drop(mbuf, static_cast<DropReason>(route.service));
  if (route.backend == kFragmentReassembling) return hand_to_reassembly(piece, route.service, now);
  // Its identification's last datagram is complete: a new datagram's, waiting for its own first.
  if (route.backend == kFragmentComplete) return hold_fragment(piece, now);
  // Bytes the route was chosen by (ports, flags) would be rewritten at the backend: RFC 1858's
  // overlapping fragment attack. The datagram goes, whatever its other fragments.
  if (piece.offset < fragment_header_end(route)) {
    refuse_datagram(piece.key, piece.signature, DropReason::fragment_overlap, now);
    return drop(mbuf, DropReason::fragment_overlap);
  }
  // RFC 5722: an overlap with any fragment that went through, on any worker; unless the
  // datagram was completed since the route was read, when this is the next one's.
  if (!fragments_->cover(position, piece.offset, piece.length)) {
    if (fragments_->complete(position)) return hold_fragment(piece, now);
    refuse_datagram(piece.key, piece.signature, DropReason::fragment_overlap, now);
    return drop(mbuf, DropReason::fragment_overlap);
  }
  const FragmentTable::Progress progress =
      fragments_->count_bytes(position, piece.offset, piece.length, !piece.more);
  if (progress == FragmentTable::Progress::contradicts) {  // a second last fragment, or past it
    refuse_datagram(piece.key, piece.signature, DropReason::fragment_overlap, now);
    return drop(mbuf, DropReason::fragment_overlap);
  }
  if (fragments_->count_fragment(position) >= kMaxFragmentsPerDatagram) {
    refuse_datagram(piece.key, piece.signature, DropReason::fragment_too_many, now);
    return drop(mbuf, DropReason::fragment_too_many);
  }
  if (progress == FragmentTable::Progress::complete) mark_complete(piece.key, piece.signature, now);
  if (is_down(route.backend)) return drop(mbuf, DropReason::no_backend);
  send_fragment(mbuf, route.backend, fragment_forwarding(route), piece.signature);
}

void Worker::mark_complete(const SessionKey& key, std::uint32_t signature, std::uint64_t now) {
  fragments_->add(key, signature, {kFragmentComplete, 0}, now + fragment_timeout_tsc_);
}

void Worker::hand_to_reassembly(const Piece& piece, std::uint16_t owner, std::uint64_t now) {
  // A piece comes at most once from another worker: should two workers each believe the
  // other reassembles (two first fragments at once), it stays with the second.
  if (handoffs_ == nullptr || owner == index_ || piece.handed || owner >= handoffs_->workers())
    return hold_fragment(piece, now);
  Piece handed = piece;
  handed.handed = true;
  if (!handoffs_->hand(owner, handed)) return drop(mbuf_of(piece), DropReason::fragment_handoff_full);
  counters_.fragments_handed++;
}

void Worker::serve_handed_fragments(std::uint64_t now) {
  Piece pieces[kBurst];
  const unsigned count = handoffs_->take(index_, pieces, kBurst);
  if (count == 0) return;
  for (unsigned i = 0; i < count; ++i) follow_fragment(pieces[i], now);
  flush();
}

void Worker::hold_fragment(const Piece& piece, std::uint64_t now) {
  Reassembly* reassembly = nullptr;
  for (Reassembly& r : reassemblies_)
    if (r.used && FragmentBuffer::same_datagram(r.key, piece.key)) reassembly = &r;
  if (reassembly != nullptr && piece.offset + piece.length > kMaxReassembledBytes) {
    refuse_datagram(piece.key, piece.signature, DropReason::fragment_too_large, now);
    return drop(mbuf_of(piece), DropReason::fragment_too_large);
  }
  if (!hold_or_drop(piece, now)) return;
  if (reassembly != nullptr) try_reassembly(static_cast<unsigned>(reassembly - reassemblies_.data()), now);
}

bool Worker::hold_or_drop(Piece piece, std::uint64_t now) {
  const bool counted = piece.counted_held;
  piece.counted_held = true;  // held once, counted once: also when handed on and held again
  const FragmentBuffer::Admit admit = held_.hold(piece);
  if (admit == FragmentBuffer::Admit::held) {
    if (!counted) counters_.fragments_held++;
    return true;
  }
  // RFC 5722: an overlap drops the datagram; so does one fragment too many.
  if (admit == FragmentBuffer::Admit::overlap || admit == FragmentBuffer::Admit::too_many)
    refuse_datagram(piece.key, piece.signature, admit_drop(admit), now);
  drop(mbuf_of(piece), admit_drop(admit));
  return false;
}

void Worker::refuse_datagram(const SessionKey& key, std::uint32_t signature, DropReason reason, std::uint64_t now) {
  fragments_->add(key, signature, {kFragmentRefused, static_cast<std::uint16_t>(reason)},
                  now + fragment_timeout_tsc_);
  held_.remove_if([&](const Piece& piece, std::uint32_t) {
    if (!FragmentBuffer::same_datagram(piece.key, key)) return false;
    drop(mbuf_of(piece), reason);
    return true;
  });
  for (Reassembly& r : reassemblies_)
    if (r.used && FragmentBuffer::same_datagram(r.key, key)) r.used = false;
}

void Worker::start_reassembly(const Piece& first, const parsers::Fragment& fragment, std::uint16_t service,
                              std::uint64_t now) {
  Reassembly* slot = nullptr;
  for (Reassembly& r : reassemblies_)
    if (!r.used || r.started + fragment_timeout_tsc_ < now) slot = &r;
  if (slot == nullptr) return drop(mbuf_of(first), DropReason::fragment_buffer_full);
  if (!hold_or_drop(first, now)) return;
  *slot = {true, first.key, first.signature, service, fragment, now};
  // The other workers hand what they get of it to this one (hand_to_reassembly): a NIC's
  // RSS hashes a fragment by its addresses, so a datagram's pieces share a queue, but a
  // software RSS, or a port's several links, may spread them.
  if (fragments_->add(first.key, first.signature, {kFragmentReassembling, static_cast<std::uint16_t>(index_)},
                      now + fragment_timeout_tsc_) < 0)
    counters_.fragment_table_full++;
  try_reassembly(static_cast<unsigned>(slot - reassemblies_.data()), now);
}

void Worker::try_reassembly(unsigned slot, std::uint64_t now) {
  Reassembly& reassembly = reassemblies_[slot];
  const std::uint32_t length = held_.complete_length(reassembly.key);
  if (length == 0) return;
  if (length > kMaxReassembledBytes) {  // hold_fragment() refuses such pieces; kept as a bound
    refuse_datagram(reassembly.key, reassembly.signature, DropReason::fragment_too_large, now);
    return;
  }
  reassembly.used = false;
  Piece pieces[kMaxFragmentsPerDatagram];
  unsigned count = 0;
  held_.remove_if([&](const Piece& piece, std::uint32_t) {
    if (count == kMaxFragmentsPerDatagram || !FragmentBuffer::same_datagram(piece.key, reassembly.key)) return false;
    pieces[count++] = piece;
    return true;
  });
  std::sort(pieces, pieces + count, [](const Piece& a, const Piece& b) { return a.offset < b.offset; });
  for (unsigned i = 0; i < count; ++i)
    std::memcpy(reassembled_.data() + pieces[i].offset,
                rte_pktmbuf_mtod(mbuf_of(pieces[i]), const std::uint8_t*) + pieces[i].data_offset,
                pieces[i].length);
  counters_.fragments_reassembled++;

  // The UDP payload: after the header the first fragment ended with, as long as UDP says.
  const parsers::Fragment& first = reassembly.first;
  const std::uint32_t udp_start = first.header_end - static_cast<std::uint32_t>(parsers::kUdpHeader);
  const std::uint32_t payload_end = std::min<std::uint32_t>(length, udp_start + first.udp_length);
  SipCall& call = burst_.calls[0];
  call.payload = {reassembled_.data() + first.header_end, payload_end - std::min<std::uint32_t>(payload_end, first.header_end)};
  rte_mbuf* head = mbuf_of(pieces[0]);
  std::uint16_t backend;
  if (read_sip_message(head, reassembly.service, call, false)) {
    note_origin(call, first);
    backend = route_sip_call(call, now);
  } else {  // not SIP after all, or no Call-ID: balanced by its flow, as a whole datagram is
    const ServiceMatch found{reassembly.service, false};
    backend = forward_first_fragment(head, found, first, now);
  }
  if (backend == kNoBackend || backend == kAnswered) {
    const DropReason reason = backend == kNoBackend ? DropReason::no_backend : DropReason::fragment_answered;
    for (unsigned i = 1; i < count; ++i) drop(mbuf_of(pieces[i]), reason);
    return refuse_datagram(reassembly.key, reassembly.signature, reason, now);
  }
  // As the client sent them, first fragment first: the backend reassembles the datagram.
  const Forwarding forwarding = snapshot_->services[reassembly.service].forwarding;
  for (unsigned i = 1; i < count; ++i) send_fragment(mbuf_of(pieces[i]), backend, forwarding, reassembly.signature);
  // Every byte went through: late copies wait for a first fragment of their own, and one
  // starts the next datagram under the identification.
  mark_complete(reassembly.key, reassembly.signature, now);
}

void Worker::serve_held_fragments(std::uint64_t now) {
  for (Reassembly& r : reassemblies_)
    if (r.used && r.started + fragment_timeout_tsc_ < now) r.used = false;
  // A bounded number of table lookups a pass, the next ones in the next pass: a flood of
  // fragments whose first never comes costs each loop at most this.
  constexpr std::uint32_t kLookupsPerPass = 16;
  const std::uint32_t size = held_.size();
  const std::uint32_t start = held_cursor_ < size ? held_cursor_ : 0;
  held_cursor_ = start + kLookupsPerPass;
  Piece ready[kLookupsPerPass];
  unsigned count = 0;
  held_.remove_if([&](const Piece& piece, std::uint32_t index) {
    if (piece.arrived + fragment_timeout_tsc_ < now) {
      drop(mbuf_of(piece), DropReason::fragment_timeout);
      return true;
    }
    if (index < start || index >= start + kLookupsPerPass) return false;
    SessionRoute route;
    const std::int32_t position = fragments_->find(piece.key, piece.signature, now, route);
    // Still waiting: for its first fragment (none yet, or its identification's last datagram
    // complete), or for the rest of a datagram this worker reassembles. The other workers'
    // reassemblies get theirs through follow_fragment().
    if (position < 0 || route.backend == kFragmentComplete) return false;
    if (route.backend == kFragmentReassembling &&
        (handoffs_ == nullptr || route.service == index_ || piece.handed))
      return false;
    ready[count++] = piece;
    return true;
  });
  // Looked up again: one of them may have the datagram refused before the next goes.
  for (unsigned i = 0; i < count; ++i) follow_fragment(ready[i], now);
}

}  // namespace tether::dataplane
