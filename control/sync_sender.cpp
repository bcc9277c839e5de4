#include "control/sync_sender.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "control/log.hpp"

namespace tether {
namespace {

// How often a peer that has not answered is asked again for its state: it may be starting.
constexpr double kBulkRequestInterval_s = 2.0;

sync::SessionState state_of(bool ended) { return ended ? sync::SessionState::ended : sync::SessionState::live; }

}  // namespace

SyncSender::SyncSender(const Config& config, SyncReceiver& receiver, dataplane::Links& links,
                       std::uint64_t tsc_hz)
    : receiver_(receiver),
      links_(links),
      mac_(std::make_unique<sync::HmacSha256>(config.sync->key)),
      sender_id_(config.sync->sender_id),
      epoch_(sync::start_epoch()),
      tsc_hz_(tsc_hz),
      max_rate_(config.sync->max_rate) {
  for (const IpBytes& address : config.sync->peers) peers_.push_back({address});
  start(changes_, sync::MessageKind::records);
  start(dump_, sync::MessageKind::records);
}

void SyncSender::start(Outgoing& out, sync::MessageKind kind) {
  out.kind = kind;
  sync::MessageHeader header;
  header.kind = kind;
  header.sender = sender_id_;
  header.epoch = epoch_;  // the sequence is each peer's: MessageWriter::reseal
  out.writer = std::make_unique<sync::MessageWriter>(out.buffer, header);
}

void SyncSender::append(Outgoing& out, const sync::Record& record) {
  if (!out.writer->append(record)) {
    send(out, out.kind == sync::MessageKind::bulk_end ? sync::MessageKind::records : out.kind);
    out.writer->append(record);  // an empty message takes any record
  }
  ++counts_.records[record.index()];
}

void SyncSender::send(Outgoing& out, sync::MessageKind next) {
  if (out.writer->empty() && out.kind == sync::MessageKind::records) {  // nothing to say
    if (next != out.kind) start(out, next);
    return;
  }
  if (out.writer->seal(*mac_).empty()) {
    ++counts_.send_failed;
  } else {
    for (Peer& peer : peers_) {
      if (out.to != nullptr && out.to != &peer) continue;
      const std::span<const std::uint8_t> message = out.writer->reseal(++peer.sequence, *mac_);
      if (message.empty()) ++counts_.send_failed;
      else send_to(peer, message);
    }
  }
  start(out, next);
}

void SyncSender::send_to(const Peer& peer, std::span<const std::uint8_t> message) {
  sockaddr_storage to{};
  socklen_t length;
  if (parsers::is_ipv4_mapped(peer.address)) {
    auto& v4 = reinterpret_cast<sockaddr_in&>(to);
    v4.sin_family = AF_INET;
    std::memcpy(&v4.sin_addr, peer.address.data() + 12, 4);
    length = sizeof v4;
  } else {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(to);
    v6.sin6_family = AF_INET6;
    std::memcpy(&v6.sin6_addr, peer.address.data(), 16);
    length = sizeof v6;
  }
  // Peers listen on the port this instance listens on: one setting for the whole group.
  reinterpret_cast<sockaddr_in&>(to).sin_port = htons(receiver_.listen_port());
  if (::sendto(receiver_.socket(), message.data(), message.size(), MSG_DONTWAIT,
               reinterpret_cast<const sockaddr*>(&to), length) == static_cast<ssize_t>(message.size()))
    ++counts_.messages;
  else
    ++counts_.send_failed;  // a full socket buffer, or no route yet: the next change resends
}

std::uint32_t SyncSender::remaining_ms(std::uint64_t deadline, std::uint64_t now) const {
  if (deadline <= now) return 0;
  return static_cast<std::uint32_t>(std::min<std::uint64_t>((deadline - now) / (tsc_hz_ / 1000), UINT32_MAX));
}

sync::Record SyncSender::record_of(const dataplane::SyncEvent& event, const Config& running) const {
  using dataplane::SessionKind;
  // The lifetime the state the event gives has here, from the service's settings; 0 for a
  // service a reload removed meanwhile (the peer refuses the record anyway).
  const ServiceConfig* service = event.service < running.services.size() ? &running.services[event.service] : nullptr;
  const auto ms = [&](std::uint32_t ServiceConfig::*live, std::uint32_t ServiceConfig::*ended) -> std::uint32_t {
    if (service == nullptr) return 0;
    const std::uint32_t seconds = event.ended ? (ended ? service->*ended : 0) : service->*live;
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(std::uint64_t{seconds} * 1000, UINT32_MAX));
  };
  switch (event.kind) {
    case SessionKind::sip_call:
      return sync::SipCallRecord{event.service, event.digest, event.backend, state_of(event.ended),
                                 ms(&ServiceConfig::session_timeout_s, &ServiceConfig::linger_s),
                                 event.holds_call};
    case SessionKind::rtp_expectation:  // a TEARDOWN ends it at once
      return sync::RtpExpectationRecord{event.service, event.client, event.client_port, event.backend,
                                        state_of(event.ended), ms(&ServiceConfig::session_timeout_s, nullptr)};
    case SessionKind::ftp_expectation:  // used: no lifetime left
      return sync::FtpExpectationRecord{event.service, event.client, event.backend, state_of(event.ended),
                                        ms(&ServiceConfig::expectation_timeout_s, nullptr)};
    case SessionKind::synced_flow:
    case SessionKind::fragment:  // the fragment table's alone; never synced
    case SessionKind::count_:
      break;
  }
  return sync::FlowRecord{event.client,
                          service != nullptr ? service->vip : IpBytes{},
                          event.client_port,
                          event.vip_port,
                          event.protocol,
                          event.ended,
                          event.service,
                          event.backend,
                          service != nullptr ? flow_lifetime_ms(*service, event.ended) : 0};
}

bool SyncSender::record_of(const dataplane::SessionEntry& entry, std::uint64_t now, sync::Record& record) const {
  using dataplane::SessionKind;
  const dataplane::SessionKey& key = entry.key;
  const std::uint32_t remaining = remaining_ms(entry.deadline, now);
  switch (key.kind) {
    case SessionKind::sip_call:
      record = sync::SipCallRecord{key.service, key.digest, entry.route.backend, state_of(entry.ended), remaining,
                                   entry.holds_call};
      return true;
    case SessionKind::rtp_expectation:
      record = sync::RtpExpectationRecord{key.service, key.address, key.port, entry.route.backend,
                                          sync::SessionState::live, remaining};
      return true;
    case SessionKind::ftp_expectation:
      record = sync::FtpExpectationRecord{key.service, key.address, entry.route.backend,
                                          sync::SessionState::live, remaining};
      return true;
    case SessionKind::synced_flow:  // a peer's: the workers report this instance's own flows
    case SessionKind::fragment:
    case SessionKind::count_:
      break;
  }
  return false;
}

void SyncSender::poll(const Config& running, const dataplane::SessionTable& sessions, std::uint64_t now) {
  // The rate's credit, at most a second's worth.
  if (last_refill_ != 0)
    credit_ = std::min<double>(max_rate_, credit_ + static_cast<double>(now - last_refill_) * max_rate_ /
                                                        static_cast<double>(tsc_hz_));
  else
    credit_ = max_rate_ / 100.0;
  last_refill_ = now;

  std::uint32_t budget = static_cast<std::uint32_t>(std::min<double>(credit_, kMaxRecordsPerPoll));
  std::uint32_t taken = 0;
  std::uint64_t waiting = 0;
  for (unsigned w = 0; w < links_.worker_count(); ++w) {
    rte_ring* ring = links_.sync_events(w);
    dataplane::SyncEvent events[64];
    while (taken < budget) {
      const unsigned want = std::min<unsigned>(64, budget - taken);
      const unsigned got = rte_ring_sc_dequeue_burst_elem(ring, events, sizeof(dataplane::SyncEvent), want, nullptr);
      for (unsigned i = 0; i < got; ++i) append(changes_, record_of(events[i], running));
      taken += got;
      if (got < want) break;
    }
    waiting += rte_ring_count(ring);
  }
  if (waiting > 0 && taken == budget) ++counts_.throttled;
  counts_.backlog = waiting;
  credit_ -= taken;

  // One dump at a time: the receiver keeps the other askers waiting.
  if (IpBytes asker; !dumping_ && receiver_.take_bulk_request(asker)) {
    const auto peer = std::find_if(peers_.begin(), peers_.end(), [&](const Peer& p) { return p.address == asker; });
    if (peer != peers_.end()) {  // the receiver takes requests from configured peers only
      dumping_ = true;
      dump_.to = &*peer;
      dump_cursor_ = 0;
      ++dump_generation_;
      for (unsigned w = 0; w < links_.worker_count(); ++w)
        links_.sync_dump(w).requested.store(dump_generation_, std::memory_order_release);
      TETHER_LOG(info, "sync: %s asked for this instance's state: sending a bulk dump",
                 format_ip(peer->address).c_str());
    }
  }
  if (dumping_) continue_bulk(sessions, now);
  send(changes_);  // what this poll gathered, as one message where it fits
  send(dump_);
  request_bulk(now);
}

void SyncSender::continue_bulk(const dataplane::SessionTable& sessions, std::uint64_t now) {
  if (dump_cursor_ < sessions.slot_count()) {
    const std::uint32_t budget = static_cast<std::uint32_t>(std::max(0.0, credit_));
    std::uint32_t sent = 0;
    sync::Record record;
    dump_cursor_ = sessions.for_each_live_in(dump_cursor_, kBulkSlotsPerPoll, now,
                                             [&](const dataplane::SessionEntry& entry) {
                                               if (record_of(entry, now, record)) {
                                                 append(dump_, record);
                                                 ++sent;
                                               }
                                               return sent < budget;
                                             });
    credit_ -= sent;
    return;
  }
  // The workers' flows: done once each has walked its table and its ring is drained.
  for (unsigned w = 0; w < links_.worker_count(); ++w)
    if (links_.sync_dump(w).done.load(std::memory_order_acquire) != dump_generation_ ||
        rte_ring_count(links_.sync_events(w)) != 0)
      return;
  send(changes_);                        // the flows, to every peer
  append_health(dump_);                  // the asker knows this instance's view on bulk_end
  send(dump_, sync::MessageKind::bulk_end);  // the rest of the walk, then the end marker
  send(dump_);
  dumping_ = false;
  ++counts_.bulk_dumps_sent;
  last_bulk_sent_ = now;
  TETHER_LOG(info, "sync: bulk dump sent");
}

void SyncSender::append_health(Outgoing& out) {
  for (const sync::BackendHealthRecord& record : health_view_) append(out, record);
}

void SyncSender::report_health(std::vector<sync::BackendHealthRecord> view, std::uint64_t now) {
  const bool changed = view != health_view_;
  if (!changed && now < next_health_report_) return;
  if (changed && next_health_report_ != 0)  // the first view is no transition
    for (const sync::BackendHealthRecord& record : view) {
      const auto before = std::find_if(health_view_.begin(), health_view_.end(), [&](const auto& r) {
        return r.backend == record.backend && r.name_digest == record.name_digest;
      });
      if (before != health_view_.end() && before->up != record.up) ++counts_.health_transitions;
    }
  health_view_ = std::move(view);
  next_health_report_ = now + kHealthReportInterval_ms * tsc_hz_ / 1000;
  append_health(changes_);
  send(changes_);
}

void SyncSender::request_bulk(std::uint64_t now) {
  if (last_bulk_request_ != 0 &&
      static_cast<double>(now - last_bulk_request_) < kBulkRequestInterval_s * static_cast<double>(tsc_hz_))
    return;
  last_bulk_request_ = now;
  for (Peer& peer : peers_) {
    if (receiver_.bulk_received_from(peer.address)) continue;
    Outgoing request;
    request.to = &peer;
    start(request, sync::MessageKind::bulk_request);
    send(request);
    ++counts_.bulk_requests_sent;
  }
}

void SyncSender::add_totals(SyncTotals& totals) const {
  totals.sent = counts_.messages;
  for (std::size_t k = 0; k < kSyncRecordKinds; ++k) totals.records_sent[k] = counts_.records[k];
  totals.send_failed = counts_.send_failed;
  totals.throttled = counts_.throttled;
  totals.bulk_requests_sent = counts_.bulk_requests_sent;
  totals.bulk_dumps_sent = counts_.bulk_dumps_sent;
  totals.health_transitions_sent = counts_.health_transitions;
  totals.backlog = counts_.backlog;
  totals.last_bulk_sent_tsc = last_bulk_sent_;
}

SyncTotals sync_totals(const SyncReceiver* receiver, const SyncSender* sender) {
  SyncTotals totals;
  if (receiver != nullptr) totals = receiver->totals();
  if (sender != nullptr) sender->add_totals(totals);
  return totals;
}

}  // namespace tether
