#include "control/sync_receiver.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "control/log.hpp"

namespace tether {
namespace {

// A sync message is one UDP datagram: no datagram is larger.
constexpr std::size_t kLargestDatagram = 65535;

// `ms` in TSC cycles, without overflow for any lifetime a record can carry.
std::uint64_t cycles(std::uint32_t ms, std::uint64_t tsc_hz) {
  return ms / 1000 * tsc_hz + ms % 1000 * tsc_hz / 1000;
}

// The lifetime a record asks for, but never more than this instance's own setting gives
// such an entry: a peer cannot make an entry outlive what the configuration allows.
std::uint32_t capped_ms(std::uint32_t remaining_ms, std::uint32_t limit_s) {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(remaining_ms, std::uint64_t{limit_s} * 1000));
}

// The service the record names, if this instance runs it and inspects it with `dpi`.
const ServiceConfig* inspecting_service(const Config& running, std::uint16_t index, SessionProtocol dpi) {
  if (index >= running.services.size()) return nullptr;
  const ServiceConfig& service = running.services[index];
  if (service.removed || service.dpi != dpi) return nullptr;
  // SIP calls are tracked by Call-ID over UDP only; RTSP and FTP inspect TCP (the reader
  // allows no other).
  if (dpi == SessionProtocol::sip && service.protocol != Protocol::udp) return nullptr;
  return &service;
}

// Whether `backend` is a live backend of `service`, in its default pool or another.
bool serves(const Config& running, const ServiceConfig& service, std::uint16_t backend) {
  if (backend >= running.backends.size() || running.backends[backend].removed) return false;
  const auto in = [backend](const std::vector<ServiceBackend>& members) {
    return std::any_of(members.begin(), members.end(),
                       [backend](const ServiceBackend& m) { return m.backend == backend; });
  };
  return in(service.backends) ||
         std::any_of(service.pools.begin(), service.pools.end(),
                     [&](const PoolConfig& pool) { return in(pool.backends); });
}

// The service a flow record names, if this instance runs it for that flow: its VIP and
// protocol, and its port (or any port, for an FTP service's data connections).
const ServiceConfig* flow_service(const Config& running, const sync::FlowRecord& flow) {
  if (flow.service >= running.services.size()) return nullptr;
  const ServiceConfig& service = running.services[flow.service];
  const std::uint8_t protocol = service.protocol == Protocol::udp ? parsers::kProtoUdp : parsers::kProtoTcp;
  if (service.removed || service.vip != flow.vip || flow.protocol != protocol) return nullptr;
  const bool any_port = service.port == 0 || service.dpi == SessionProtocol::ftp;
  return any_port || service.port == flow.vip_port ? &service : nullptr;
}

IpBytes source_address(const sockaddr_storage& from) {
  IpBytes address{};
  if (from.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(from);
    address = parsers::ipv4_mapped(reinterpret_cast<const std::uint8_t*>(&v4.sin_addr));
  } else if (from.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(from);
    std::memcpy(address.data(), &v6.sin6_addr, address.size());
  }
  return address;
}

}  // namespace

const char* sync_reject_reason(std::size_t index) {
  if (index == 0) return "unknown_peer";
  return sync::to_string(static_cast<sync::SyncStatus>(index));
}

const char* sync_record_kind(std::size_t index) {
  constexpr const char* kKinds[kSyncRecordKinds] = {"sip_call", "rtp_expectation", "ftp_expectation",
                                                    "flow", "backend_health"};
  return index < kSyncRecordKinds ? kKinds[index] : "?";
}

SyncReceiver::SyncReceiver(const Config& config) {
  const SyncConfig& settings = config.sync.value();
  const PortConfig& port = config.ports[settings.port];
  const IpBytes& address = port.addresses.at(0);
  peers_ = settings.peers;
  listen_port_ = settings.listen_port;
  buffer_.resize(kLargestDatagram);
  mac_ = std::make_unique<sync::HmacSha256>(settings.key);

  const bool ipv4 = parsers::is_ipv4_mapped(address);
  sockaddr_storage local{};
  socklen_t length;
  if (ipv4) {
    auto& v4 = reinterpret_cast<sockaddr_in&>(local);
    v4.sin_family = AF_INET;
    v4.sin_port = htons(settings.listen_port);
    std::memcpy(&v4.sin_addr, address.data() + 12, 4);
    length = sizeof v4;
  } else {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(local);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(settings.listen_port);
    std::memcpy(&v6.sin6_addr, address.data(), 16);
    length = sizeof v6;
  }
  const std::string where = format_ip(address) + ":" + std::to_string(settings.listen_port);
  socket_ = ::socket(ipv4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (socket_ < 0) throw std::runtime_error("sync: cannot open a UDP socket: " + std::string(std::strerror(errno)));
  // An IPv6 address is tentative on a new interface until duplicate address detection ends:
  // bind to it anyway, the kernel delivers once it is usable.
  const int yes = 1;
  if (ipv4) ::setsockopt(socket_, IPPROTO_IP, IP_FREEBIND, &yes, sizeof yes);
  else ::setsockopt(socket_, IPPROTO_IPV6, IPV6_FREEBIND, &yes, sizeof yes);
  if (::bind(socket_, reinterpret_cast<const sockaddr*>(&local), length) != 0) {
    const int error = errno;
    ::close(socket_);
    throw std::runtime_error("sync: cannot bind UDP " + where + ": " + std::strerror(error));
  }
  TETHER_LOG(info, "sync: receiving on UDP %s (kernel interface %s), %zu peer(s)", where.c_str(),
             port.kernel->name.c_str(), peers_.size());
}

SyncReceiver::~SyncReceiver() {
  if (socket_ >= 0) ::close(socket_);
}

void SyncReceiver::poll(const Config& running, dataplane::SessionTable& sessions, std::uint64_t now,
                        std::uint64_t tsc_hz) {
  for (unsigned i = 0; i < kDatagramsPerPoll; ++i) {
    sockaddr_storage from{};
    socklen_t from_length = sizeof from;
    const ssize_t size = ::recvfrom(socket_, buffer_.data(), buffer_.size(), MSG_DONTWAIT,
                                    reinterpret_cast<sockaddr*>(&from), &from_length);
    if (size < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        TETHER_LOG(warning, "sync: receive failed: %s", std::strerror(errno));
      return;
    }
    ++totals_.received;
    receive({buffer_.data(), static_cast<std::size_t>(size)}, source_address(from), running, sessions,
            now, tsc_hz);
  }
}

void SyncReceiver::receive(std::span<const std::uint8_t> datagram, const IpBytes& source,
                           const Config& running, dataplane::SessionTable& sessions, std::uint64_t now,
                           std::uint64_t tsc_hz) {
  if (std::find(peers_.begin(), peers_.end(), source) == peers_.end()) {
    ++totals_.rejected[0];
    return;
  }
  sync::ReceivedMessage message;
  const sync::SyncStatus status = sync::open_message(datagram, *mac_, message);
  if (status != sync::SyncStatus::ok) {
    ++totals_.rejected[static_cast<std::size_t>(status)];
    return;
  }
  // Only after the tag: a forger cannot make windows for made-up sender ids, and a key
  // holder only a bounded number.
  const SyncSenderKey id{source, message.header.sender};
  if (!senders_.contains(id)) {
    const auto of_peer = std::count_if(senders_.begin(), senders_.end(),
                                       [&](const auto& entry) { return entry.first.first == source; });
    if (static_cast<std::size_t>(of_peer) >= kMaxSendersPerPeer) {
      ++totals_.senders_refused;
      return;
    }
  }
  PeerState& peer = senders_[id];
  const sync::ReplayWindow::Verdict verdict =
      peer.window.accept(message.header.epoch, message.header.sequence);
  if (verdict.status != sync::SyncStatus::ok) {
    ++totals_.rejected[static_cast<std::size_t>(verdict.status)];
    return;
  }
  ++totals_.accepted;
  totals_.sequence_gaps += verdict.skipped;
  ++peer.accepted;
  peer.last_accepted_tsc = now;
  health_changed_ |= peer_health_.heard(id, message.header.epoch, now);
  sync::RecordCursor records = message.records();
  sync::Record record;
  while (records.next(record)) {
    if (const auto* health = std::get_if<sync::BackendHealthRecord>(&record))
      apply_health(id, *health, running);
    else
      apply(record, running, sessions, now, tsc_hz);
  }
  if (message.header.kind == sync::MessageKind::bulk_request) {
    ++totals_.bulk_requests_received;
    if (peer.answered_epoch != message.header.epoch || now - peer.answered_tsc >= kBulkRepeatAfter_s * tsc_hz) {
      peer.answered_epoch = message.header.epoch;
      peer.answered_tsc = now;
      if (std::find(bulk_askers_.begin(), bulk_askers_.end(), source) == bulk_askers_.end())
        bulk_askers_.push_back(source);
    }
  } else if (message.header.kind == sync::MessageKind::bulk_end) {
    ++totals_.bulk_ends_received;
    if (peer.last_bulk_end_tsc == 0)  // the first of this run: what a starting instance waits for
      TETHER_LOG(info, "sync: bulk dump from %s received whole", format_ip(source).c_str());
    peer.last_bulk_end_tsc = now;
    totals_.last_bulk_received_tsc = now;
  }
}

bool SyncReceiver::take_bulk_request(IpBytes& asker) {
  if (bulk_askers_.empty()) return false;
  asker = bulk_askers_.front();
  bulk_askers_.erase(bulk_askers_.begin());
  return true;
}

bool SyncReceiver::bulk_received_from(const IpBytes& peer) const {
  for (const auto& [id, state] : senders_)
    if (id.first == peer && state.last_bulk_end_tsc != 0) return true;
  return false;
}

std::uint64_t SyncReceiver::last_heard_from(const IpBytes& peer) const {
  std::uint64_t last = 0;
  for (const auto& [id, state] : senders_)
    if (id.first == peer) last = std::max(last, state.last_accepted_tsc);
  return last;
}

bool SyncReceiver::take_health_changed(std::uint64_t now, std::uint64_t tsc_hz) {
  bool changed = peer_health_.expire(now, kPeerHealthExpiry_ms * tsc_hz / 1000);
  changed |= std::exchange(health_changed_, false);
  totals_.health_transitions_received = peer_health_.transitions();
  return changed;
}

void SyncReceiver::apply_health(const SyncSenderKey& peer, const sync::BackendHealthRecord& report,
                                const Config& running) {
  constexpr std::size_t kind = sync::Record(sync::BackendHealthRecord{}).index();
  // The same backend here as on the peer: present, live, and by the same name.
  if (report.backend >= running.backends.size() || running.backends[report.backend].removed ||
      sync_sender_id(running.backends[report.backend].name) != report.name_digest) {
    ++totals_.refused;
    return;
  }
  health_changed_ |= peer_health_.report(peer, report.backend, report.up);
  ++totals_.applied[kind];
}

void SyncReceiver::apply(const sync::Record& record, const Config& running,
                         dataplane::SessionTable& sessions, std::uint64_t now, std::uint64_t tsc_hz) {
  const std::size_t kind = record.index();
  bool applied = false, full = false;
  if (const auto* call = std::get_if<sync::SipCallRecord>(&record)) {
    const ServiceConfig* service = inspecting_service(running, call->service, SessionProtocol::sip);
    if (service != nullptr && serves(running, *service, call->backend)) {
      const bool ended = call->state == sync::SessionState::ended;
      const std::uint64_t deadline =
          now + cycles(capped_ms(call->remaining_ms, ended ? service->linger_s : service->session_timeout_s), tsc_hz);
      const dataplane::SessionKey key = dataplane::sip_call_key(call->service, call->call_id_digest);
      // A transaction outside any call (OPTIONS, REGISTER) is kept as the sender keeps it,
      // not counted against its backend's max_sessions or in least-sessions.
      const std::int32_t position =
          sessions.add(key, dataplane::session_signature(key), {call->backend, call->service}, deadline, nullptr,
                       call->holds_call ? dataplane::SessionTable::CallCount::held
                                        : dataplane::SessionTable::CallCount::not_held);
      if (position >= 0 && ended) sessions.end_call(position, deadline);
      applied = position >= 0;
      full = position == -ENOSPC;
    }
  } else if (const auto* rtp = std::get_if<sync::RtpExpectationRecord>(&record)) {
    const ServiceConfig* service = inspecting_service(running, rtp->service, SessionProtocol::rtsp);
    if (service != nullptr && serves(running, *service, rtp->backend)) {
      // Ended (TEARDOWN): the sender's remaining time is what is left, 0 or near it.
      const std::uint64_t deadline =
          now + cycles(capped_ms(rtp->remaining_ms, service->session_timeout_s), tsc_hz);
      const dataplane::SessionKey key = dataplane::rtp_expectation_key(rtp->service, rtp->client, rtp->client_port);
      const std::int32_t position =
          sessions.add(key, dataplane::session_signature(key), {rtp->backend, rtp->service}, deadline);
      applied = position >= 0;
      full = position == -ENOSPC;
    }
  } else if (const auto* ftp = std::get_if<sync::FtpExpectationRecord>(&record)) {
    const ServiceConfig* service = inspecting_service(running, ftp->service, SessionProtocol::ftp);
    if (service != nullptr && serves(running, *service, ftp->backend)) {
      if (ftp->state == sync::SessionState::ended) {
        // Used on the sender: data connections claim a client's expectations oldest first,
        // so the oldest here is the one that was used.
        dataplane::SessionRoute route;
        sessions.claim_ftp_expectation(ftp->service, ftp->client, now, route);
        applied = true;
      } else {
        const std::uint64_t deadline =
            now + cycles(capped_ms(ftp->remaining_ms, service->expectation_timeout_s), tsc_hz);
        const dataplane::FtpExpectationAdd added =
            sessions.add_ftp_expectation(ftp->service, ftp->client, ftp->backend, now, deadline);
        applied = added == dataplane::FtpExpectationAdd::added;
        full = !applied;
      }
    }
  } else if (const auto* flow = std::get_if<sync::FlowRecord>(&record)) {
    if (const ServiceConfig* service = flow_service(running, *flow);
        service != nullptr && serves(running, *service, flow->backend)) {
      const std::uint64_t deadline =
          now + cycles(std::min(flow->remaining_ms, flow_lifetime_ms(*service, flow->closing)), tsc_hz);
      const dataplane::SessionKey key =
          dataplane::synced_flow_key(flow->service, flow->client, flow->client_port, flow->vip_port);
      const std::int32_t position =
          sessions.add(key, dataplane::session_signature(key), {flow->backend, flow->service}, deadline);
      applied = position >= 0;
      full = position == -ENOSPC;
    }
  }
  if (applied) ++totals_.applied[kind];
  else if (full) ++totals_.table_full;
  else ++totals_.refused;
}

std::vector<SyncPeerView> SyncReceiver::peers() const {
  std::vector<SyncPeerView> views;
  for (const auto& [id, peer] : senders_)
    views.push_back({id.first, id.second, peer.window.epoch(), peer.window.highest(), peer.accepted,
                     peer.last_accepted_tsc, peer.last_bulk_end_tsc});
  return views;
}

}  // namespace tether
