// The active-standby pair's state in tetherd: the `ha` settings, the role and its
// announcements' schedule, the workers' progress that `ha check` judges, and what the
// snapshot tells the workers.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "control/config.hpp"
#include "control/ha.hpp"
#include "control/snapshot_builder.hpp"

using Catch::Contains;
using tether::HaConfig;
using tether::HaRole;
using tether::HaStatus;
using tether::WorkerProgress;

namespace {

const std::string kBase =
    "ports = ( { name = \"lan0\"; device = \"net_null0\"; addresses = [\"192.0.2.1\"]; } );\n"
    "backends = ( { name = \"b1\"; address = \"10.0.0.1\"; mac = \"02:00:00:00:00:11\"; } );\n"
    "services = (\n"
    "  { name = \"web\"; vip = \"192.0.2.100\"; port = 80; protocol = \"tcp\"; backends = ( { name = \"b1\"; } ); },\n"
    "  { name = \"dns\"; vip = \"192.0.2.100\"; port = 53; protocol = \"udp\"; backends = ( { name = \"b1\"; } ); },\n"
    "  { name = \"web6\"; vip = \"2001:db8::100\"; port = 80; protocol = \"tcp\"; backends = ( { name = \"b1\"; } ); }\n"
    ");\n";

tether::Config load(const std::string& text) { return tether::load_config_text(text, "test.cfg"); }

constexpr std::uint64_t kHz = 1000000;  // one tick a microsecond: ms = 1000 ticks

}  // namespace

TEST_CASE("ha config: absent means standalone; defaults; limits", "[config][ha]") {
  CHECK_FALSE(load(kBase).ha.has_value());
  CHECK_THAT(tether::describe(load(kBase)), Contains("standalone: always forwards"));

  const tether::Config paired = load(kBase + "ha = {};\n");
  REQUIRE(paired.ha.has_value());
  CHECK(paired.ha->initial == HaRole::backup);
  CHECK(paired.ha->gratuitous_count == 5);
  CHECK(paired.ha->gratuitous_interval_ms == 200);
  CHECK_THAT(tether::describe(paired), Contains("active-standby: starts as backup"));

  const tether::Config set =
      load(kBase + "ha = { initial = \"master\"; gratuitous = { count = 3; interval = 50; }; };\n");
  CHECK(set.ha->initial == HaRole::master);
  CHECK(set.ha->gratuitous_count == 3);
  CHECK(set.ha->gratuitous_interval_ms == 50);

  const auto refused = [](const std::string& ha, const std::string& message) {
    INFO(ha);
    CHECK_THROWS_WITH(load(kBase + "ha = " + ha + ";\n"), Contains(message));
  };
  refused("{ initial = \"fault\"; }", "test.cfg:8: ha.initial: 'fault' is not one of: backup, master");
  refused("{ initial = \"active\"; }", "'active' is not one of: backup, master");
  refused("{ gratuitous = { count = 0; }; }", "ha.gratuitous.count: 0 is out of range 1..100");
  refused("{ gratuitous = { count = 101; }; }", "101 is out of range 1..100");
  refused("{ gratuitous = { interval = 9; }; }", "ha.gratuitous.interval: 9 is out of range 10..10000");
  refused("{ gratuitous = { interval_ms = 100; }; }", "unknown setting");
  refused("{ priority = 100; }", "ha.priority: unknown setting");
}

TEST_CASE("ha config: a reload cannot change it", "[config][ha][reload]") {
  const tether::Config running = load(kBase + "ha = {};\n");
  CHECK_THROWS_WITH(tether::merge_running(running, load(kBase)), Contains("ha changed: restart tetherd"));
  CHECK_THROWS_WITH(tether::merge_running(running, load(kBase + "ha = { gratuitous = { count = 2; }; };\n")),
                    Contains("ha changed"));
  CHECK_NOTHROW(tether::merge_running(running, load(kBase + "ha = { initial = \"backup\"; };\n")));
}

TEST_CASE("HaStatus: roles, transitions and the announcements' schedule", "[ha]") {
  const HaConfig config{HaRole::backup, 3, 200};
  HaStatus ha(config, 1000, kHz);
  CHECK(ha.role() == HaRole::backup);
  CHECK_FALSE(ha.forwarding());
  CHECK(ha.announcements_pending() == 0);
  CHECK(ha.next_announcement_ms(5000) == -1);
  CHECK_FALSE(ha.announcement_due(5000));

  CHECK_FALSE(ha.set_role(HaRole::backup, 2000));  // no change, no transition
  CHECK(ha.transitions() == 0);
  CHECK(ha.since_tsc() == 1000);

  REQUIRE(ha.set_role(HaRole::master, 10000));
  CHECK(ha.forwarding());
  CHECK(ha.transitions() == 1);
  CHECK(ha.since_tsc() == 10000);
  CHECK(ha.announcements_pending() == 3);
  CHECK(ha.next_announcement_ms(10000) == 0);
  CHECK(ha.announcement_due(10000));  // the first round at once
  CHECK_FALSE(ha.announcement_due(10000));
  CHECK(ha.next_announcement_ms(10000) == 200);
  CHECK_FALSE(ha.announcement_due(10000 + 199999));
  CHECK(ha.announcement_due(10000 + 200000));
  // A late loop pass does not push the next round later: it is due at 400 ms, not 650.
  CHECK(ha.next_announcement_ms(10000 + 250000) == 150);
  CHECK(ha.announcement_due(10000 + 400000));
  CHECK(ha.announcements_pending() == 0);
  CHECK_FALSE(ha.announcement_due(10000 + 10000000));

  // Leaving mastership cancels what is still due; coming back schedules a full series.
  REQUIRE(ha.set_role(HaRole::master, 20000000) == false);
  REQUIRE(ha.set_role(HaRole::fault, 20000000));
  CHECK_FALSE(ha.forwarding());
  REQUIRE(ha.set_role(HaRole::master, 21000000));
  CHECK(ha.announcement_due(21000000));
  REQUIRE(ha.set_role(HaRole::backup, 21000001));
  CHECK(ha.announcements_pending() == 0);
  CHECK_FALSE(ha.announcement_due(30000000));
  CHECK(ha.transitions() == 4);
}

TEST_CASE("HaStatus: starting as master announces at once; release is a flag", "[ha]") {
  HaStatus ha(HaConfig{HaRole::master, 2, 100}, 500, kHz);
  CHECK(ha.forwarding());
  CHECK(ha.transitions() == 0);
  CHECK(ha.announcement_due(500));
  CHECK(ha.announcement_due(500 + 100000));
  CHECK_FALSE(ha.announcement_due(500 + 900000));

  CHECK_FALSE(ha.released());
  CHECK(ha.set_released(true));
  CHECK_FALSE(ha.set_released(true));
  CHECK(ha.released());
  CHECK(ha.forwarding());  // a released master forwards until the peer takes over
  CHECK(ha.set_released(false));
  CHECK_FALSE(ha.released());
}

TEST_CASE("WorkerProgress: a worker whose loop stops turning for a second is stalled", "[ha]") {
  WorkerProgress progress(kHz);
  CHECK(progress.stalled(0).empty());  // nothing observed yet
  std::vector<std::uint64_t> loops{10, 20};
  progress.observe(loops, 0);
  CHECK(progress.stalled(999999).empty());
  loops = {11, 20};
  progress.observe(loops, 900000);
  CHECK(progress.stalled(1000000).empty());
  CHECK(progress.stalled(1000001) == std::vector<unsigned>{1});
  loops = {11, 21};
  progress.observe(loops, 1500000);
  CHECK(progress.stalled(1600000).empty());
  CHECK(progress.stalled(1900001) == std::vector<unsigned>{0});
}

TEST_CASE("ha: the VIPs announced, once each; the snapshot's standby flag", "[ha][snapshot]") {
  const tether::Config config = load(kBase);
  const auto vips = tether::announced_addresses(config);
  REQUIRE(vips.size() == 2);  // 192.0.2.100 serves two services
  CHECK(vips[0] == *tether::parse_ip("192.0.2.100"));
  CHECK(vips[1] == *tether::parse_ip("2001:db8::100"));

  const std::vector<tether::PortIdentity> ports{{0, {0x02, 0, 0, 0, 0, 1}}};
  const auto active = tether::build_snapshot(config, ports, kHz);
  CHECK_FALSE(active->standby);
  const auto standby = tether::build_snapshot(config, ports, kHz, 1, {}, {}, true);
  CHECK(standby->standby);
  // A VIP is the master's; the port's own address stays this instance's.
  CHECK(standby->is_standby_vip(0, *tether::parse_ip("192.0.2.100")));
  CHECK_FALSE(standby->is_standby_vip(0, *tether::parse_ip("192.0.2.1")));
  CHECK_FALSE(active->is_standby_vip(0, *tether::parse_ip("192.0.2.100")));
}
