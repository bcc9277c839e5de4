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
      peers_(config.sync->peers),
      mac_(std::make_unique<sync::HmacSha256>(config.sync->key)),
      sender_id_(config.sync->sender_id),
      epoch_(sync::start_epoch()),
      tsc_hz_(tsc_hz),
      max_rate_(config.sync->max_rate),
      buffer_(kMessageBytes) {
  start_message(sync::MessageKind::records);
}

void SyncSender::start_message(sync::MessageKind kind) {
  kind_ = kind;
  sync::MessageHeader header;
  header.kind = kind;
  header.sender = sender_id_;
  header.epoch = epoch_;
  header.sequence = sequence_ + 1;  // taken when it is sent: no gap for a message never sent
  writer_ = std::make_unique<sync::MessageWriter>(buffer_, header);
}

void SyncSender::append(const sync::Record& record) {
  if (!writer_->append(record)) {
    send(kind_ == sync::MessageKind::bulk_end ? sync::MessageKind::records : kind_);
    writer_->append(record);  // an empty message takes any record
  }
  ++counts_.records[record.index()];
}

void SyncSender::send(sync::MessageKind next) {
  if (writer_->empty() && kind_ == sync::MessageKind::records) {  // nothing to say
    if (next != kind_) start_message(next);
    return;
  }
  const std::span<const std::uint8_t> message = writer_->seal(*mac_);
  ++sequence_;
  if (message.empty()) {
    ++counts_.send_failed;
  } else {
    for (const IpBytes& peer : peers_) send_to(peer, message);
  }
  start_message(next);
}

void SyncSender::send_to(const IpBytes& peer, std::span<const std::uint8_t> message) {
  sockaddr_storage to{};
  socklen_t length;
  if (parsers::is_ipv4_mapped(peer)) {
    auto& v4 = reinterpret_cast<sockaddr_in&>(to);
    v4.sin_family = AF_INET;
    std::memcpy(&v4.sin_addr, peer.data() + 12, 4);
    length = sizeof v4;
  } else {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(to);
    v6.sin6_family = AF_INET6;
    std::memcpy(&v6.sin6_addr, peer.data(), 16);
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

sync::Record SyncSender::record_of(const dataplane::SyncEvent& event, std::uint64_t now) const {
  using dataplane::SessionKind;
  const std::uint32_t remaining = remaining_ms(event.deadline_tsc, now);
  switch (event.kind) {
    case SessionKind::sip_call:
      return sync::SipCallRecord{event.service, event.digest, event.backend, state_of(event.ended), remaining};
    case SessionKind::rtp_expectation:
      return sync::RtpExpectationRecord{event.service, event.client, event.client_port, event.backend,
                                        state_of(event.ended), remaining};
    case SessionKind::ftp_expectation:
      return sync::FtpExpectationRecord{event.service, event.client, event.backend, state_of(event.ended),
                                        remaining};
    case SessionKind::synced_flow:
    case SessionKind::count_:
      break;
  }
  return sync::FlowRecord{event.client, event.vip,     event.client_port, event.vip_port, event.protocol,
                          event.ended,  event.service, event.backend,     remaining};
}

bool SyncSender::record_of(const dataplane::SessionEntry& entry, std::uint64_t now, sync::Record& record) const {
  using dataplane::SessionKind;
  const dataplane::SessionKey& key = entry.key;
  const std::uint32_t remaining = remaining_ms(entry.deadline, now);
  switch (key.kind) {
    case SessionKind::sip_call:
      record = sync::SipCallRecord{key.service, key.digest, entry.route.backend, state_of(entry.ended), remaining};
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
    case SessionKind::count_:
      break;
  }
  return false;
}

void SyncSender::poll(const dataplane::SessionTable& sessions, std::uint64_t now) {
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
      for (unsigned i = 0; i < got; ++i) append(record_of(events[i], now));
      taken += got;
      if (got < want) break;
    }
    waiting += rte_ring_count(ring);
  }
  if (waiting > 0 && taken == budget) ++counts_.throttled;
  counts_.backlog = waiting;
  credit_ -= taken;

  if (receiver_.take_bulk_request() && !dumping_) {
    dumping_ = true;
    dump_cursor_ = 0;
    ++dump_generation_;
    for (unsigned w = 0; w < links_.worker_count(); ++w)
      links_.sync_dump(w).requested.store(dump_generation_, std::memory_order_release);
    TETHER_LOG(info, "sync: a peer asked for this instance's state: sending a bulk dump");
  }
  if (dumping_) continue_bulk(sessions, now);
  send();  // what this poll gathered, as one message where it fits
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
                                                 append(record);
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
  send(sync::MessageKind::bulk_end);  // what is in hand, then the end marker
  send();
  dumping_ = false;
  ++counts_.bulk_dumps_sent;
  last_bulk_sent_ = now;
  TETHER_LOG(info, "sync: bulk dump sent");
}

void SyncSender::request_bulk(std::uint64_t now) {
  if (last_bulk_request_ != 0 &&
      static_cast<double>(now - last_bulk_request_) < kBulkRequestInterval_s * static_cast<double>(tsc_hz_))
    return;
  last_bulk_request_ = now;
  send();  // what is in hand goes first, with the sequence it was given
  for (const IpBytes& peer : peers_) {
    if (receiver_.bulk_received_from(peer)) continue;
    // A message of its own, sent to that peer only.
    sync::MessageHeader header;
    header.kind = sync::MessageKind::bulk_request;
    header.sender = sender_id_;
    header.epoch = epoch_;
    header.sequence = ++sequence_;
    std::uint8_t bytes[sync::kHeaderSize + sync::kTagSize];
    sync::MessageWriter request(bytes, header);
    const std::span<const std::uint8_t> message = request.seal(*mac_);
    if (message.empty()) {
      ++counts_.send_failed;
      continue;
    }
    send_to(peer, message);
    ++counts_.bulk_requests_sent;
  }
  start_message(sync::MessageKind::records);  // after the requests' sequence numbers
}

void SyncSender::add_totals(SyncTotals& totals) const {
  totals.sent = counts_.messages;
  for (std::size_t k = 0; k < kSyncRecordKinds; ++k) totals.records_sent[k] = counts_.records[k];
  totals.send_failed = counts_.send_failed;
  totals.throttled = counts_.throttled;
  totals.bulk_requests_sent = counts_.bulk_requests_sent;
  totals.bulk_dumps_sent = counts_.bulk_dumps_sent;
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
