// SyncReceiver (control/sync_receiver.hpp) on a real UDP socket on the loopback interface
// and a real SessionTable: what each record does to the table, what the running
// configuration refuses, lifetimes capped by the service's own, gaps, unknown peers.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_memory.h>

#include <cstring>
#include <vector>

#include "control/address.hpp"
#include "control/log.hpp"
#include "control/sync_receiver.hpp"

using tether::Config;
using tether::SyncReceiver;
using namespace tether::sync;
namespace dataplane = tether::dataplane;

namespace {

constexpr std::uint64_t kHz = 1000;  // TSC cycles per second: a cycle is a millisecond
constexpr std::uint64_t kNow = 1'000'000;
const std::vector<std::uint8_t> kKey(32, 0x5a);

tether::IpBytes ip(const char* text) { return *tether::parse_ip(text); }

tether::ServiceConfig service(const char* name, tether::Protocol protocol, tether::SessionProtocol dpi,
                              std::vector<std::size_t> backends) {
  tether::ServiceConfig s{};
  s.name = name;
  s.protocol = protocol;
  s.dpi = dpi;
  s.session_timeout_s = 60;
  s.linger_s = 5;
  s.expectation_timeout_s = 30;
  s.idle_timeout_ms = 300000;
  s.fin_timeout_s = 10;
  for (std::size_t b : backends) s.backends.push_back({b, 1});
  return s;
}

// Services: 0 sip (b0, b1), 1 rtsp (b0), 2 ftp (b1), 3 sip removed. Backend 2 removed.
Config running(std::uint16_t listen_port) {
  Config config;
  tether::PortConfig port;
  port.name = "lan0";
  port.addresses = {ip("127.0.0.1")};
  port.kernel = tether::KernelInterfaceConfig{"lo"};
  config.ports.push_back(port);
  for (const char* name : {"b0", "b1", "b2"}) config.backends.push_back({name, ip("10.0.0.1"), {}, 0});
  config.backends[2].removed = true;
  using P = tether::Protocol;
  using D = tether::SessionProtocol;
  config.services = {service("sip", P::udp, D::sip, {0, 1}), service("rtsp", P::tcp, D::rtsp, {0}),
                     service("ftp", P::tcp, D::ftp, {1}), service("old", P::udp, D::sip, {0})};
  config.services[3].removed = true;
  tether::SyncConfig sync;
  sync.listen_port = listen_port;
  sync.key = kKey;
  sync.peers = {ip("127.0.0.1")};
  sync.instance = "unit";
  config.sync = sync;
  return config;
}

// A UDP socket on `source` that sends messages to the receiver.
class Peer {
 public:
  Peer(const char* source, std::uint16_t to) {
    socket_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, source, &local.sin_addr);
    REQUIRE(::bind(socket_, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0);
    to_.sin_family = AF_INET;
    to_.sin_port = htons(to);
    inet_pton(AF_INET, "127.0.0.1", &to_.sin_addr);
  }
  ~Peer() { ::close(socket_); }
  void send(std::uint64_t sequence, const std::vector<Record>& records, std::uint64_t epoch = 7) {
    std::vector<std::uint8_t> buffer(2048);
    MessageWriter writer(buffer, {MessageKind::records, 42, epoch, sequence, 0, 0});
    for (const Record& r : records) REQUIRE(writer.append(r));
    const HmacSha256 mac(kKey);
    const auto message = writer.seal(mac);
    REQUIRE(::sendto(socket_, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&to_),
                     sizeof to_) == static_cast<ssize_t>(message.size()));
  }

 private:
  int socket_;
  sockaddr_in to_{};
};

}  // namespace

TEST_CASE("sync receiver: records applied to the session table, checked against the configuration",
          "[sync][receiver]") {
  const auto listen_port = static_cast<std::uint16_t>(20000 + getpid() % 20000);
  const Config config = running(listen_port);
  dataplane::SessionTable table("ut_sync_rx", 1024, 1, SOCKET_ID_ANY);
  const tether::log::Quiet quiet;  // the receiver says where it listens
  SyncReceiver receiver(config);
  Peer peer("127.0.0.1", listen_port);
  const auto client = ip("198.51.100.7");

  peer.send(1, {SipCallRecord{0, 0x1111, 1, SessionState::live, 1'000'000'000},  // capped: 60 s
                SipCallRecord{0, 0x2222, 0, SessionState::ended, 1'000'000},      // linger: 5 s
                RtpExpectationRecord{1, client, 6970, 0, SessionState::live, 20'000},
                FtpExpectationRecord{2, client, 1, SessionState::live, 20'000},
                FtpExpectationRecord{2, client, 1, SessionState::live, 20'000},
                FtpExpectationRecord{2, client, 1, SessionState::ended, 0},  // one used
                // An FTP data connection (any port of the FTP service's VIP), closing.
                FlowRecord{client, {}, 40000, 30001, IPPROTO_TCP, true, 2, 1, 60'000}});
  receiver.poll(config, table, kNow, kHz);
  const auto& totals = receiver.totals();
  CHECK(totals.received == 1);
  CHECK(totals.accepted == 1);
  CHECK(totals.applied[0] == 2);
  CHECK(totals.applied[1] == 1);
  CHECK(totals.applied[2] == 3);
  CHECK(totals.applied[3] == 1);
  CHECK(totals.refused == 0);

  const auto call = [&](std::uint64_t digest, std::uint64_t now, dataplane::SessionTable::CallFound& found) {
    const auto key = dataplane::sip_call_key(0, digest);
    return table.find_call(key, dataplane::session_signature(key), now, found);
  };
  dataplane::SessionTable::CallFound found;
  REQUIRE(call(0x1111, kNow + 60'000, found) >= 0);
  CHECK(found.route.backend == 1);
  CHECK_FALSE(found.ended);
  CHECK_FALSE(found.expired);
  REQUIRE(call(0x1111, kNow + 60'001, found) >= 0);
  CHECK(found.expired);  // the service's session_timeout, not the record's 11 days
  REQUIRE(call(0x2222, kNow + 5'000, found) >= 0);
  CHECK(found.ended);
  CHECK_FALSE(found.expired);
  CHECK(found.route.backend == 0);
  REQUIRE(call(0x2222, kNow + 5'001, found) >= 0);
  CHECK(found.expired);  // the linger, not the record's 1000 s

  dataplane::SessionRoute route;
  const auto rtp = dataplane::rtp_expectation_key(1, client, 6970);
  CHECK(table.find(rtp, dataplane::session_signature(rtp), kNow, route) >= 0);
  CHECK(route.backend == 0);
  CHECK(table.claim_ftp_expectation(2, client, kNow, route));  // two added, one used
  CHECK(route.backend == 1);
  CHECK_FALSE(table.claim_ftp_expectation(2, client, kNow, route));
  const auto flow = dataplane::synced_flow_key(2, client, 40000, 30001);
  CHECK(table.find(flow, dataplane::session_signature(flow), kNow + 10'000, route) >= 0);
  CHECK(route.backend == 1);
  CHECK(route.service == 2);
  CHECK(table.find(flow, dataplane::session_signature(flow), kNow + 10'001, route) < 0);  // fin_timeout

  // Refused: what this instance does not run as the record says. Nothing is added.
  const std::uint32_t before = table.size();
  peer.send(4, {SipCallRecord{9, 1, 0, SessionState::live, 1000},    // no service 9
                SipCallRecord{3, 1, 0, SessionState::live, 1000},    // removed service
                SipCallRecord{0, 1, 2, SessionState::live, 1000},    // removed backend
                SipCallRecord{0, 1, 7, SessionState::live, 1000},    // no backend 7
                SipCallRecord{1, 1, 0, SessionState::live, 1000},    // rtsp tracks no calls
                RtpExpectationRecord{0, client, 1, 0, SessionState::live, 1000},  // sip: no RTP
                FtpExpectationRecord{2, client, 0, SessionState::live, 1000},     // b0 is not ftp's
                FlowRecord{client, {}, 40000, 30001, IPPROTO_UDP, false, 2, 1, 1000},  // ftp is TCP
                FlowRecord{client, ip("192.0.2.9"), 40000, 21, IPPROTO_TCP, false, 2, 1, 1000},  // not its VIP
                FlowRecord{client, {}, 40000, 5060, IPPROTO_UDP, false, 0, 2, 1000}});  // removed backend
  receiver.poll(config, table, kNow, kHz);
  CHECK(totals.accepted == 2);
  CHECK(totals.refused == 10);
  CHECK(totals.sequence_gaps == 2);  // 2 and 3 skipped
  CHECK(table.size() == before);

  // From a source that is no peer: rejected before anything else, even with the right key.
  Peer stranger("127.0.0.2", listen_port);
  stranger.send(5, {SipCallRecord{0, 0x3333, 1, SessionState::live, 1000}});
  peer.send(4, {SipCallRecord{0, 0x3333, 1, SessionState::live, 1000}});  // a replay
  peer.send(9, {SipCallRecord{0, 0x3333, 1, SessionState::live, 1000}}, 6);  // an older epoch
  receiver.poll(config, table, kNow, kHz);
  CHECK(totals.received == 5);
  CHECK(totals.rejected[0] == 1);  // unknown_peer
  CHECK(totals.rejected[static_cast<std::size_t>(SyncStatus::replayed)] == 2);
  CHECK(call(0x3333, kNow, found) < 0);

  const auto peers = receiver.peers();
  REQUIRE(peers.size() == 1);
  CHECK(peers[0].address == ip("127.0.0.1"));
  CHECK(peers[0].sender == 42);
  CHECK(peers[0].epoch == 7);
  CHECK(peers[0].last_sequence == 4);
  CHECK(peers[0].accepted == 2);
  CHECK(peers[0].last_accepted_tsc == kNow);
}

// A receiver on a port of its own (`offset` apart from the other tests'), its session table,
// and a peer sending to it from 127.0.0.1.
struct Receiving {
  Receiving(const char* table_name, int offset)
      : listen_port(static_cast<std::uint16_t>(20000 + (getpid() + offset) % 20000)),
        config(running(listen_port)),
        table(table_name, 1024, 1, SOCKET_ID_ANY),
        receiver(config),
        peer("127.0.0.1", listen_port) {}
  std::uint16_t listen_port;
  Config config;
  dataplane::SessionTable table;
  tether::log::Quiet quiet;  // the receiver says where it listens
  SyncReceiver receiver;
  Peer peer;
};

TEST_CASE("sync receiver: peers' health reports, checked by backend name, forgotten when the peer falls silent",
          "[sync][receiver][peer_health]") {
  Receiving setup("ut_sync_rx_health", 1);
  auto& [listen_port, config, table, quiet, receiver, peer] = setup;
  const tether::SyncSenderKey sender{ip("127.0.0.1"), 42};
  const std::uint32_t b0 = tether::sync_sender_id("b0"), b1 = tether::sync_sender_id("b1");

  peer.send(1, {BackendHealthRecord{0, true, b0}, BackendHealthRecord{1, false, b1},
                BackendHealthRecord{1, false, b0},                          // another backend's name
                BackendHealthRecord{2, false, tether::sync_sender_id("b2")},  // removed here
                BackendHealthRecord{7, false, b0}});                         // no backend 7
  receiver.poll(config, table, kNow, kHz);
  const auto& totals = receiver.totals();
  constexpr std::size_t kHealth = 4;  // backend_health's index among the record kinds
  CHECK(std::string(tether::sync_record_kind(kHealth)) == "backend_health");
  CHECK(totals.applied[kHealth] == 2);
  CHECK(totals.refused == 3);
  CHECK(receiver.take_health_changed(kNow, kHz));
  CHECK_FALSE(receiver.take_health_changed(kNow, kHz));  // taken
  CHECK(totals.health_transitions_received == 1);
  CHECK(receiver.peer_health().reporting_down(1) == std::vector{sender});
  CHECK(receiver.peer_health().reporting_down(0).empty());
  CHECK(receiver.last_heard_from(ip("127.0.0.1")) == kNow);

  // The periodic repeat, 1 s later: no change.
  peer.send(2, {BackendHealthRecord{0, true, b0}, BackendHealthRecord{1, false, b1}});
  receiver.poll(config, table, kNow + 1000, kHz);
  CHECK_FALSE(receiver.take_health_changed(kNow + 1000, kHz));
  // Silent for kPeerHealthExpiry_ms since its last message: forgotten, and that is a change.
  CHECK_FALSE(receiver.take_health_changed(kNow + 1000 + tether::kPeerHealthExpiry_ms - 1, kHz));
  CHECK(receiver.take_health_changed(kNow + 1000 + tether::kPeerHealthExpiry_ms, kHz));
  CHECK(receiver.peer_health().reporting_down(1).empty());
}

TEST_CASE("sync receiver: a peer's SIP calls count on their backend for least-sessions",
          "[sync][receiver]") {
  Receiving setup("ut_sync_rx_calls", 2);
  auto& [listen_port, config, table, quiet, receiver, peer] = setup;
  peer.send(1, {SipCallRecord{0, 0x10, 1, SessionState::live, 60'000}, SipCallRecord{0, 0x11, 1, SessionState::live, 60'000},
                SipCallRecord{0, 0x12, 0, SessionState::live, 60'000}});
  receiver.poll(config, table, kNow, kHz);
  CHECK(table.live_calls(0) == 1);
  CHECK(table.live_calls(1) == 2);
  // The same calls again (a refresh, or the bulk dump): counted once.
  peer.send(2, {SipCallRecord{0, 0x10, 1, SessionState::live, 60'000}, SipCallRecord{0, 0x11, 1, SessionState::live, 60'000}});
  receiver.poll(config, table, kNow + 10, kHz);
  CHECK(table.live_calls(1) == 2);
  // Moved by the peer (its backend failed): counted on the new one.
  peer.send(3, {SipCallRecord{0, 0x11, 0, SessionState::live, 60'000}});
  receiver.poll(config, table, kNow + 20, kHz);
  CHECK(table.live_calls(0) == 2);
  CHECK(table.live_calls(1) == 1);
  // Ended: counted while it lingers, as this instance's own calls are, until the sweep.
  peer.send(4, {SipCallRecord{0, 0x10, 1, SessionState::ended, 1000}});
  receiver.poll(config, table, kNow + 30, kHz);
  CHECK(table.live_calls(1) == 1);
  table.sweep(kNow + 30 + 5'001, 1024);
  CHECK(table.live_calls(1) == 0);
  // A transaction outside any call (an OPTIONS): kept, so its responses follow it, but no call.
  peer.send(5, {SipCallRecord{0, 0x20, 1, SessionState::live, 32'000, false}});
  receiver.poll(config, table, kNow + 40, kHz);
  const dataplane::SessionKey options = dataplane::sip_call_key(0, 0x20);
  dataplane::SessionRoute route;
  const std::int32_t position = table.find(options, dataplane::session_signature(options), kNow + 40, route);
  REQUIRE(position >= 0);
  CHECK(route.backend == 1);
  CHECK(!table.holds_call(position));
  CHECK(table.live_calls(1) == 0);
  CHECK(table.live_calls(0) == 2);
}
