// Health-aware VIP announcement: the `announce` settings, which VIPs are announced and why
// not, and the graceful drain's end.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "control/announce.hpp"
#include "control/config.hpp"

using Catch::Contains;
using tether::AnnounceReason;
using tether::dataplane::BackendState;

namespace {

// Three VIPs: 192.0.2.100 carries two services (web on b1, dns on b2), 192.0.2.101 one with
// a pool (sip: b1, pool b3), 2001:db8::100 one (web6 on b2).
const std::string kBase =
    "ports = ( { name = \"lan0\"; device = \"net_null0\"; addresses = [\"192.0.2.1/24\"];\n"
    "            kernel = { name = \"lan0\"; }; },\n"
    "          { name = \"lan1\"; device = \"net_null1\"; addresses = [\"192.0.3.1\"]; } );\n"
    "backends = ( { name = \"b1\"; address = \"10.0.0.1\"; mac = \"02:00:00:00:00:11\"; port = \"lan0\"; },\n"
    "             { name = \"b2\"; address = \"10.0.0.2\"; mac = \"02:00:00:00:00:12\"; port = \"lan0\"; },\n"
    "             { name = \"b3\"; address = \"10.0.0.3\"; mac = \"02:00:00:00:00:13\"; port = \"lan0\"; } );\n"
    "services = (\n"
    "  { name = \"web\"; vip = \"192.0.2.100\"; port = 80; protocol = \"tcp\"; backends = ( { name = \"b1\"; } ); },\n"
    "  { name = \"dns\"; vip = \"192.0.2.100\"; port = 53; protocol = \"udp\"; backends = ( { name = \"b2\"; } ); },\n"
    "  { name = \"sip\"; vip = \"192.0.2.101\"; port = 5060; protocol = \"udp\"; dpi = \"sip\";\n"
    "    backends = ( { name = \"b1\"; } ); pools = ( { name = \"p\"; backends = ( { name = \"b3\"; } ); } );\n"
    "    rules = ( { field = \"request-line\"; match = \"^REGISTER \"; pool = \"p\"; } ); },\n"
    "  { name = \"web6\"; vip = \"2001:db8::100\"; port = 80; protocol = \"tcp\"; backends = ( { name = \"b2\"; } ); }\n"
    ");\n";

tether::Config load(const std::string& text) { return tether::load_config_text(text, "test.cfg"); }

constexpr std::uint64_t kHz = 1000;  // one tick a millisecond

// The decisions with the backends in `states` (b1, b2, b3) and the instance as given.
std::vector<tether::VipDecision> decide(const tether::Config& config, std::vector<BackendState> states,
                                        tether::InstanceCondition instance = {}) {
  std::vector<bool> can_serve;
  for (const auto& service : config.services)
    can_serve.push_back(tether::service_can_serve(service, [&](std::size_t b) { return states[b]; }));
  return tether::decide_announcements(config, instance, can_serve);
}

std::vector<AnnounceReason> reasons(const std::vector<tether::VipDecision>& decisions) {
  std::vector<AnnounceReason> out;
  for (const auto& d : decisions) out.push_back(d.reason);
  return out;
}

}  // namespace

TEST_CASE("announce config: port with a kernel interface, drain settings, described, restart only",
          "[config][announce]") {
  CHECK_FALSE(load(kBase).announce.has_value());
  const tether::Config config = load(kBase + "announce = { port = \"lan0\"; };\n");
  REQUIRE(config.announce.has_value());
  CHECK(config.announce->port == 0);
  CHECK(config.announce->drain_quiet_s == 5);
  CHECK(config.announce->drain_timeout_s == 60);
  CHECK(config.announce->bulk_wait_s == 10);
  CHECK_THAT(tether::describe(config), !Contains("bulk dump"));  // without sync, no peer to wait for
  CHECK_THAT(tether::describe(config), Contains("announce: a host route (proto 250) per VIP on lan0 (port lan0)"));
  CHECK_THAT(tether::describe(config), Contains("drain exits after 5 s without a new flow or session, at most 60 s"));

  const tether::Config set = load(kBase + "announce = { port = \"lan0\"; drain_quiet = 2; drain_timeout = 9; };\n");
  CHECK(set.announce->drain_quiet_s == 2);
  CHECK(set.announce->drain_timeout_s == 9);

  const auto refused = [](const std::string& announce, const std::string& message) {
    INFO(announce);
    CHECK_THROWS_WITH(load(kBase + "announce = " + announce + ";\n"), Contains(message));
  };
  refused("{ port = \"lan1\"; }", "announce.port: port 'lan1' has no kernel interface");
  refused("{ port = \"wan\"; }", "no port named 'wan'");
  refused("{ }", "announce: missing required setting 'port'");
  refused("{ port = \"lan0\"; drain_quiet = 0; }", "announce.drain_quiet: 0 is out of range 1..3600");
  refused("{ port = \"lan0\"; drain_timeout = 86401; }", "86401 is out of range 1..86400");
  refused("{ port = \"lan0\"; drain_quiet = 10; drain_timeout = 5; }", "drain_timeout 5 is below drain_quiet 10");
  refused("{ port = \"lan0\"; protocol = 251; }", "announce.protocol: unknown setting");
  refused("{ port = \"lan0\"; bulk_wait = 3601; }", "announce.bulk_wait: 3601 is out of range 0..3600");
  CHECK(load(kBase + "announce = { port = \"lan0\"; bulk_wait = 0; };\n").announce->bulk_wait_s == 0);

  CHECK_THROWS_WITH(tether::merge_running(config, load(kBase)), Contains("announce changed: restart tetherd"));
  CHECK_NOTHROW(tether::merge_running(config, load(kBase + "announce = { port = \"lan0\"; };\n")));
}

TEST_CASE("decide_announcements: a VIP per address, announced while one of its services can serve",
          "[announce]") {
  const tether::Config config = load(kBase);
  using S = BackendState;
  const auto all_up = decide(config, {S::up, S::up, S::up});
  REQUIRE(all_up.size() == 3);
  CHECK(tether::format_ip(all_up[0].vip) == "192.0.2.100");
  CHECK(all_up[0].services == std::vector<std::size_t>{0, 1});
  CHECK(tether::format_ip(all_up[1].vip) == "192.0.2.101");
  CHECK(tether::format_ip(all_up[2].vip) == "2001:db8::100");
  CHECK(reasons(all_up) == std::vector{AnnounceReason::announced, AnnounceReason::announced,
                                       AnnounceReason::announced});

  // b1 down: web cannot serve, but dns on the same VIP can; sip still has its pool's b3.
  CHECK(reasons(decide(config, {S::down, S::up, S::up})) ==
        std::vector{AnnounceReason::announced, AnnounceReason::announced, AnnounceReason::announced});
  // b1 and b3 down: sip has nowhere to go.
  CHECK(reasons(decide(config, {S::down, S::up, S::down})) ==
        std::vector{AnnounceReason::announced, AnnounceReason::no_backend_up, AnnounceReason::announced});
  // Draining backends take no new flow: not enough to be announced.
  CHECK(reasons(decide(config, {S::draining, S::draining, S::draining})) ==
        std::vector{AnnounceReason::no_backend_up, AnnounceReason::no_backend_up, AnnounceReason::no_backend_up});
  // Everything down.
  const auto none = decide(config, {S::down, S::down, S::down});
  CHECK(std::none_of(none.begin(), none.end(), [](const auto& d) { return d.announced(); }));
}

TEST_CASE("decide_announcements: weight 0 and removed services do not count", "[announce]") {
  tether::Config config = load(kBase);
  using S = BackendState;
  config.services[1].backends[0].weight = 0;  // dns: b2 takes no new flow
  CHECK(reasons(decide(config, {S::down, S::up, S::up}))[0] == AnnounceReason::no_backend_up);
  config.services[3].removed = true;  // web6 gone: its VIP is not listed at all
  CHECK(decide(config, {S::up, S::up, S::up}).size() == 2);
}

TEST_CASE("decide_announcements: the instance's own state withdraws every VIP, first reason first",
          "[announce]") {
  const tether::Config config = load(kBase);
  using S = BackendState;
  const std::vector<S> up{S::up, S::up, S::up};
  const auto all = [&](tether::InstanceCondition instance) {
    const auto decisions = decide(config, up, instance);
    std::vector<AnnounceReason> out = reasons(decisions);
    REQUIRE(out.size() == 3);
    CHECK(out[0] == out[1]);
    CHECK(out[1] == out[2]);
    return out[0];
  };
  CHECK(all({}) == AnnounceReason::announced);
  CHECK(all({.workers_progress = false}) == AnnounceReason::workers_stalled);
  CHECK(all({.master = false}) == AnnounceReason::not_master);
  CHECK(all({.draining = true}) == AnnounceReason::draining);
  CHECK(all({.workers_progress = false, .master = false, .draining = true}) == AnnounceReason::workers_stalled);
  CHECK(all({.master = false, .draining = true}) == AnnounceReason::not_master);
  CHECK(all({.bulk_pending = true}) == AnnounceReason::bulk_pending);
  CHECK(all({.draining = true, .bulk_pending = true}) == AnnounceReason::draining);
  CHECK(std::string(tether::to_string(AnnounceReason::bulk_pending)) == "awaiting bulk sync");
  CHECK(std::string(tether::to_string(AnnounceReason::no_backend_up)) == "no backend up");
}

TEST_CASE("bulk_awaited: a peer is waited for until its dump arrived or it was silent for bulk_wait",
          "[announce][sync]") {
  constexpr std::uint64_t kStart = 100'000, kWait = 10'000;  // started at 100 s, bulk_wait 10 s
  // Never heard from (dead, unreachable): waited for bulk_wait from the start, no longer.
  CHECK(tether::bulk_awaited(false, 0, kStart, kStart, kWait));
  CHECK(tether::bulk_awaited(false, 0, kStart, kStart + kWait - 1, kWait));
  CHECK_FALSE(tether::bulk_awaited(false, 0, kStart, kStart + kWait, kWait));
  // Heard from (it is sending its dump): waited for while it speaks, until bulk_wait after
  // its last message.
  CHECK(tether::bulk_awaited(false, kStart + 25'000, kStart, kStart + 30'000, kWait));
  CHECK_FALSE(tether::bulk_awaited(false, kStart + 25'000, kStart, kStart + 35'000, kWait));
  // Its dump arrived: done, at once.
  CHECK_FALSE(tether::bulk_awaited(true, kStart + 1, kStart, kStart + 2, kWait));
  // A message from before this instance's start (none can be; but a stale time) counts from
  // the start.
  CHECK(tether::bulk_awaited(false, 1, kStart, kStart + kWait - 1, kWait));
  // bulk_wait 0: nobody is waited for.
  CHECK_FALSE(tether::bulk_awaited(false, kStart, kStart, kStart, 0));
}

TEST_CASE("Drain: stops once quiet for the quiet period, or at the timeout", "[announce][drain]") {
  const tether::Drain idle;
  CHECK_FALSE(idle.active());
  CHECK_FALSE(idle.done(1000000));

  tether::Drain drain(10000, 500, 2, 10, kHz);  // started at 10 s with 500 placed
  CHECK(drain.active());
  drain.observe(500, 11000);
  CHECK_FALSE(drain.done(11999));
  drain.observe(503, 11500);  // three new flows at 11.5 s: the quiet period starts again
  CHECK(drain.placed_since_start() == 3);
  CHECK_FALSE(drain.done(12500));
  CHECK(drain.quiet_ms(13000) == 1500);
  CHECK_FALSE(drain.done(13499));
  CHECK(drain.done(13500));
  CHECK(drain.quiet(13500));
  CHECK_FALSE(drain.timed_out(13500));

  // Traffic that never stops: the timeout ends it.
  tether::Drain busy(0, 0, 2, 10, kHz);
  for (std::uint64_t t = 0; t < 10000; t += 500) {
    busy.observe(t, t);
    CHECK_FALSE(busy.done(t));
  }
  busy.observe(10000, 10000);
  CHECK_FALSE(busy.quiet(10000));
  CHECK(busy.timed_out(10000));
  CHECK(busy.done(10000));
  CHECK(busy.elapsed_ms(10000) == 10000);
}
