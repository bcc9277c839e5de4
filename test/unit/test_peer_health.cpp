// Health consistency across instances (control/peer_health.hpp): what the live peers report,
// when their reports are forgotten, and the merge rule (down wins, but never a service's last
// backend).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "control/config.hpp"
#include "control/peer_health.hpp"

using tether::PeerHealth;
using tether::PeerHold;
using tether::SyncSenderKey;
using tether::dataplane::BackendState;

namespace {

// web: b1, b2; dns: b3 alone; sip: b1 with a pool of b3.
const std::string kConfig =
    "ports = ( { name = \"lan0\"; device = \"net_null0\"; addresses = [\"192.0.2.1/24\"]; } );\n"
    "backends = ( { name = \"b1\"; address = \"10.0.0.1\"; mac = \"02:00:00:00:00:11\"; port = \"lan0\"; },\n"
    "             { name = \"b2\"; address = \"10.0.0.2\"; mac = \"02:00:00:00:00:12\"; port = \"lan0\"; },\n"
    "             { name = \"b3\"; address = \"10.0.0.3\"; mac = \"02:00:00:00:00:13\"; port = \"lan0\"; } );\n"
    "services = (\n"
    "  { name = \"web\"; vip = \"192.0.2.100\"; port = 80; protocol = \"tcp\"; backends = ( { name = \"b1\"; }, { name = \"b2\"; } ); },\n"
    "  { name = \"dns\"; vip = \"192.0.2.101\"; port = 53; protocol = \"udp\"; backends = ( { name = \"b3\"; } ); },\n"
    "  { name = \"sip\"; vip = \"192.0.2.102\"; port = 5060; protocol = \"udp\"; dpi = \"sip\";\n"
    "    backends = ( { name = \"b1\"; } ); pools = ( { name = \"p\"; backends = ( { name = \"b3\"; } ); } );\n"
    "    rules = ( { field = \"request-line\"; match = \"^REGISTER \"; pool = \"p\"; } ); }\n"
    ");\n";

const SyncSenderKey kPeerA{*tether::parse_ip("192.0.2.2"), 1};
const SyncSenderKey kPeerB{*tether::parse_ip("192.0.2.3"), 2};

std::vector<PeerHold> holds(const tether::Config& config, std::vector<BackendState> own,
                            std::vector<bool> reported_down) {
  return tether::decide_peer_holds(config, own, [&](std::size_t b) { return reported_down[b]; });
}

}  // namespace

TEST_CASE("decide_peer_holds: a backend is used only while this instance and every live peer say up",
          "[peer_health]") {
  const tether::Config config = tether::load_config_text(kConfig, "test.cfg");
  using S = BackendState;
  const std::vector<S> up{S::up, S::up, S::up};
  CHECK(holds(config, up, {false, false, false}) == std::vector{PeerHold::none, PeerHold::none, PeerHold::none});
  // A peer reports b2 down: held, web still has b1.
  CHECK(holds(config, up, {false, true, false}) == std::vector{PeerHold::none, PeerHold::held, PeerHold::none});
  // b1 down by a peer: web keeps b2, sip keeps its pool's b3.
  CHECK(holds(config, up, {true, false, false}) == std::vector{PeerHold::held, PeerHold::none, PeerHold::none});
  // What this instance already has down needs no hold (its own state says it).
  CHECK(holds(config, {S::down, S::up, S::up}, {true, false, false})[0] == PeerHold::none);
  CHECK(holds(config, {S::draining, S::up, S::up}, {true, false, false})[0] == PeerHold::none);
}

TEST_CASE("decide_peer_holds: peers' reports never take a service's last backend", "[peer_health]") {
  const tether::Config config = tether::load_config_text(kConfig, "test.cfg");
  using S = BackendState;
  const std::vector<S> up{S::up, S::up, S::up};
  // b3 is dns's only backend: a peer that cannot reach it must not take dns off this
  // instance too (it withdraws dns's VIP itself).
  CHECK(holds(config, up, {false, false, true})[2] == PeerHold::last_backend_kept);
  // Every backend reported down (a peer that lost its backend network): nothing held.
  CHECK(holds(config, up, {true, true, true}) ==
        std::vector{PeerHold::last_backend_kept, PeerHold::last_backend_kept, PeerHold::last_backend_kept});
  // b1 and b2 reported down: web would have nothing, so both stay; b3 is dns's last too.
  CHECK(holds(config, up, {true, true, false}) ==
        std::vector{PeerHold::last_backend_kept, PeerHold::last_backend_kept, PeerHold::none});
  // b2 down here already, b1 reported down by a peer: web's last backend, kept.
  CHECK(holds(config, {S::up, S::down, S::up}, {true, false, false})[0] == PeerHold::last_backend_kept);
  // A service this instance cannot serve anyway releases nothing: dns (b3 down here) does
  // not keep anything, and web, which b1 still serves, lets b2 be held.
  CHECK(holds(config, {S::up, S::up, S::down}, {false, true, false}) ==
        std::vector{PeerHold::none, PeerHold::held, PeerHold::none});
  CHECK(std::string(tether::to_string(PeerHold::held)) == "a peer reports it down");
}

TEST_CASE("PeerHealth: reports, transitions, a new epoch and silence forget a peer's word",
          "[peer_health]") {
  PeerHealth peers;
  CHECK_FALSE(peers.heard(kPeerA, 7, 1000));
  CHECK_FALSE(peers.report(kPeerA, 0, true));  // up, first heard: what was assumed
  CHECK(peers.report(kPeerA, 1, false));       // down: a transition
  CHECK_FALSE(peers.report(kPeerA, 1, false)); // the periodic repeat changes nothing
  CHECK(peers.transitions() == 1);
  CHECK(peers.reporting_down(1) == std::vector{kPeerA});
  CHECK(peers.reporting_down(0).empty());
  CHECK(peers.down_of(kPeerA) == std::vector<std::uint16_t>{1});

  CHECK_FALSE(peers.heard(kPeerB, 9, 1500));
  CHECK(peers.report(kPeerB, 1, false));
  CHECK(peers.reporting_down(1) == std::vector{kPeerA, kPeerB});
  CHECK(peers.report(kPeerB, 1, true));  // back up on B: still down on A
  CHECK(peers.reporting_down(1) == std::vector{kPeerA});
  CHECK(peers.transitions() == 3);

  // A restarted (new epoch): its old run's reports are void, and forgetting them is a change.
  CHECK(peers.heard(kPeerA, 8, 2000));
  CHECK(peers.reporting_down(1).empty());
  CHECK_FALSE(peers.heard(kPeerA, 8, 2100));  // same run: nothing forgotten
  CHECK(peers.report(kPeerA, 2, false));

  // Silence: A last heard at 2100, B at 1500. Expiry after 3000 forgets B (nothing down: no
  // change), then A (b2 down: a change).
  CHECK_FALSE(peers.expire(4499, 3000));
  CHECK(peers.reporting_down(2) == std::vector{kPeerA});
  CHECK_FALSE(peers.expire(4500, 3000));  // B goes; it reported nothing down
  CHECK(peers.expire(5100, 3000));        // A goes with its b2 down
  CHECK(peers.reporting_down(2).empty());
  CHECK(peers.down_of(kPeerA).empty());
}

TEST_CASE("health_view: one record per live backend, named by its digest", "[peer_health]") {
  tether::Config config = tether::load_config_text(kConfig, "test.cfg");
  config.backends[1].removed = true;
  const auto view = tether::health_view(config, [](std::size_t b) { return b != 2; });
  REQUIRE(view.size() == 2);
  CHECK(view[0] == tether::sync::BackendHealthRecord{0, true, tether::sync_sender_id("b1")});
  CHECK(view[1] == tether::sync::BackendHealthRecord{2, false, tether::sync_sender_id("b3")});
}
