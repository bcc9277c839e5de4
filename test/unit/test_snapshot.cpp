// build_snapshot (control/snapshot_builder.hpp): what the workers read, built from a loaded
// configuration.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "control/address.hpp"
#include "control/config.hpp"
#include "control/maglev.hpp"
#include "control/snapshot_builder.hpp"

using tether::dataplane::HashInput;
using tether::dataplane::ServiceIndex;
using tether::parsers::kProtoTcp;
using tether::parsers::kProtoUdp;

namespace {

const char* const kConfig = R"(
tables = { maglev_size = 1009; };
ports = (
  { name = "lan0"; device = "net_null0"; addresses = ["192.0.2.1", "2001:db8::1"]; },
  { name = "lan1"; device = "net_null1"; }
);
backends = (
  { name = "a"; address = "192.0.2.11"; mac = "02:00:00:00:01:0a"; port = "lan0"; },
  { name = "b"; address = "192.0.2.12"; mac = "02:00:00:00:01:0b"; port = "lan1"; },
  { name = "c"; address = "192.0.2.13"; mac = "02:00:00:00:01:0c"; port = "lan0"; },
  { name = "d"; address = "2001:db8::14"; mac = "02:00:00:00:01:0d"; port = "lan1"; }
);
services = (
  { name = "web"; vip = "192.0.2.100"; port = 80; protocol = "tcp"; idle_timeout = 300;
    fin_timeout = 10; backends = ( { name = "a"; weight = 3; }, { name = "c"; weight = 1; } ); },
  { name = "sip"; vip = "192.0.2.100"; port = 80; protocol = "udp"; scheduler = "source-hash";
    idle_timeout = 45; backends = ( { name = "b"; }, { name = "c"; weight = 0; }, { name = "d"; } ); },
  { name = "web6"; vip = "2001:db8::100"; port = 443; protocol = "tcp";
    backends = ( { name = "d"; weight = 7; } ); },
  { name = "dns"; vip = "192.0.2.53"; port = 53; protocol = "udp"; backends = ( { name = "a"; weight = 1; } ); }
);
)";

constexpr std::uint64_t kTscHz = 2'500'000'000ULL;

tether::IpBytes ip(const char* text) {
  auto parsed = tether::parse_ip(text);
  REQUIRE(parsed);
  return *parsed;
}

}  // namespace

TEST_CASE("build_snapshot: ports, backends and services", "[snapshot]") {
  tether::Config config = tether::load_config_text(kConfig, "snapshot.cfg");
  // A file may not leave a service without any weight; a snapshot must still cope with one.
  config.services[3].backends[0].weight = 0;
  const std::vector<tether::PortIdentity> identities = {
      {3, {0x02, 0, 0, 0, 0, 0x33}},
      {7, {0x02, 0, 0, 0, 0, 0x77}},
  };
  const auto snapshot = tether::build_snapshot(config, identities, kTscHz);
  REQUIRE(snapshot);

  SECTION("ports carry the device identity and answer for interface addresses and all VIPs") {
    REQUIRE(snapshot->ports.size() == 2);
    CHECK(snapshot->ports[0].port_id == 3);
    CHECK(snapshot->ports[0].mac == identities[0].mac);
    CHECK(snapshot->ports[1].port_id == 7);
    CHECK(snapshot->ports[1].mac == identities[1].mac);
    for (const char* a : {"192.0.2.1", "2001:db8::1", "192.0.2.100", "2001:db8::100", "192.0.2.53"}) {
      INFO(a);
      CHECK(snapshot->is_local_address(0, ip(a)));
    }
    for (const char* a : {"192.0.2.100", "2001:db8::100", "192.0.2.53"}) {
      INFO(a);
      CHECK(snapshot->is_local_address(1, ip(a)));
    }
    // lan0's interface addresses belong to lan0 only; backends are not local.
    CHECK_FALSE(snapshot->is_local_address(1, ip("192.0.2.1")));
    CHECK_FALSE(snapshot->is_local_address(1, ip("2001:db8::1")));
    CHECK_FALSE(snapshot->is_local_address(0, ip("192.0.2.11")));
    CHECK_FALSE(snapshot->is_local_address(0, ip("192.0.2.101")));
    const auto& local0 = snapshot->ports[0].local_addresses;
    CHECK(std::set<tether::IpBytes>(local0.begin(), local0.end()).size() == 5);
  }

  SECTION("backends keep their MAC and port index") {
    REQUIRE(snapshot->backends.size() == 4);
    CHECK(snapshot->backends[0].mac == tether::MacBytes{0x02, 0, 0, 0, 0x01, 0x0a});
    CHECK(snapshot->backends[0].port == 0);
    CHECK(snapshot->backends[1].port == 1);
    CHECK(snapshot->backends[2].port == 0);
    CHECK(snapshot->backends[3].mac == tether::MacBytes{0x02, 0, 0, 0, 0x01, 0x0d});
    CHECK(snapshot->backends[3].port == 1);
  }

  SECTION("each backend's DSR rewrite is its MAC, then its port's") {
    for (const auto& backend : snapshot->backends) {
      std::array<std::uint8_t, 12> expected{};
      std::copy(backend.mac.begin(), backend.mac.end(), expected.begin());
      const auto& port_mac = snapshot->ports[backend.port].mac;
      std::copy(port_mac.begin(), port_mac.end(), expected.begin() + 6);
      CHECK(backend.ethernet_addresses == expected);
    }
    CHECK(snapshot->ports[0].mac != snapshot->ports[1].mac);  // so the port's half is told apart
  }

  SECTION("the service index finds each (VIP, port, protocol) and nothing else") {
    const auto& index = snapshot->service_index;
    REQUIRE(snapshot->services.size() == 4);
    CHECK(index.find(ip("192.0.2.100"), 80, kProtoTcp) == 0);
    CHECK(index.find(ip("192.0.2.100"), 80, kProtoUdp) == 1);
    CHECK(index.find(ip("2001:db8::100"), 443, kProtoTcp) == 2);
    CHECK(index.find(ip("192.0.2.53"), 53, kProtoUdp) == 3);

    CHECK(index.find(ip("192.0.2.100"), 81, kProtoTcp) == ServiceIndex::kNone);        // port
    CHECK(index.find(ip("192.0.2.100"), 8080, kProtoTcp) == ServiceIndex::kNone);
    CHECK(index.find(ip("192.0.2.53"), 53, kProtoTcp) == ServiceIndex::kNone);         // protocol
    CHECK(index.find(ip("2001:db8::100"), 443, kProtoUdp) == ServiceIndex::kNone);
    CHECK(index.find(ip("192.0.2.100"), 80, tether::parsers::kProtoIcmp) == ServiceIndex::kNone);
    CHECK(index.find(ip("192.0.2.101"), 80, kProtoTcp) == ServiceIndex::kNone);        // address
    CHECK(index.find(ip("192.0.2.1"), 80, kProtoTcp) == ServiceIndex::kNone);
    CHECK(index.find(ip("2001:db8::101"), 443, kProtoTcp) == ServiceIndex::kNone);
    CHECK(index.find(ip("2001:db8::100"), 80, kProtoTcp) == ServiceIndex::kNone);     // IPv6, v4 port
    CHECK(index.find(ip("::c000:264"), 80, kProtoTcp) == ServiceIndex::kNone);        // v4-compatible, not mapped
    CHECK(index.find(ip("::ffff:192.0.2.100"), 80, kProtoTcp) == 0);                   // the mapped form is the same
    CHECK(index.find(tether::IpBytes{}, 0, 0) == ServiceIndex::kNone);
  }

  SECTION("service views: protocol, hash input, timeouts in TSC cycles") {
    const auto& s = snapshot->services;
    CHECK(s[0].ip_proto == kProtoTcp);
    CHECK(s[0].hash_input == HashInput::five_tuple);
    CHECK(s[0].idle_timeout_tsc == 300 * kTscHz);
    CHECK(s[0].fin_timeout_tsc == 10 * kTscHz);
    CHECK(s[1].ip_proto == kProtoUdp);
    CHECK(s[1].hash_input == HashInput::client_address);
    CHECK(s[1].idle_timeout_tsc == 45 * kTscHz);
    CHECK(s[2].idle_timeout_tsc == 300 * kTscHz);  // tcp default
    CHECK(s[3].idle_timeout_tsc == 60 * kTscHz);   // udp default
    CHECK(s[3].fin_timeout_tsc == 10 * kTscHz);
    for (const auto& view : s) {
      CHECK(view.dpi == tether::dataplane::SessionInspection::none);
      CHECK_FALSE(view.least_sessions);
      CHECK(view.rules == nullptr);
    }
  }

  SECTION("each Maglev table holds only its service's backends with positive weight") {
    const auto& s = snapshot->services;
    for (const auto& view : s) {
      REQUIRE(view.pools.size() == 1);  // no content-rule pools: just the service's backends
      REQUIRE(view.pools[0].maglev.size() == 1009);
    }
    auto count = [](const std::vector<std::uint16_t>& table) {
      std::vector<std::size_t> n(5, 0);  // backends 0..3, then kNoBackend
      for (const auto b : table) ++n[b == tether::kNoBackend ? 4 : std::min<std::size_t>(b, 4)];
      return n;
    };
    const auto web = count(s[0].pools[0].maglev);  // a (3), c (1)
    CHECK(web[0] + web[2] == 1009);
    CHECK(web[1] == 0);
    CHECK(web[3] == 0);
    CHECK(static_cast<double>(web[0]) / 1009 == Approx(0.75).margin(0.02));
    const auto sip = count(s[1].pools[0].maglev);  // b (1), c (0), d (1)
    CHECK(sip[2] == 0);  // weight 0
    CHECK(sip[0] == 0);
    CHECK(sip[1] + sip[3] == 1009);
    CHECK(static_cast<double>(sip[1]) / 1009 == Approx(0.5).margin(0.02));
    const auto web6 = count(s[2].pools[0].maglev);  // d only
    CHECK(web6[3] == 1009);
    const auto dns = count(s[3].pools[0].maglev);  // a with weight 0: nothing to pick
    CHECK(dns[4] == 1009);
  }

  SECTION("the table is the one build_maglev_table gives for the same members") {
    const std::vector<tether::MaglevMember> members = {{"a", 3, 0}, {"c", 1, 2}};
    CHECK(snapshot->services[0].pools[0].maglev == tether::build_maglev_table(members, 1009));
    // The member list (for schedulers that count) mirrors the configuration, weight 0 included.
    const auto& sip = snapshot->services[1].pools[0].members;
    REQUIRE(sip.size() == 3);
    CHECK(sip[0].backend == 1);
    CHECK(sip[0].weight == 1);
    CHECK(sip[1].backend == 2);
    CHECK(sip[1].weight == 0);
    CHECK(sip[2].backend == 3);
    CHECK(sip[2].weight == 1);
  }
}

TEST_CASE("build_snapshot: tsc_hz scales timeouts without overflow", "[snapshot]") {
  const std::string text = R"(
ports = ( { name = "p"; device = "net_null0"; } );
backends = ( { name = "a"; address = "10.0.0.1"; mac = "02:00:00:00:00:01"; } );
services = ( { name = "s"; vip = "10.0.0.100"; port = 1; protocol = "tcp"; idle_timeout = 86400;
               fin_timeout = 3600; backends = ( { name = "a"; } ); } );
)";
  const tether::Config config = tether::load_config_text(text, "t.cfg");
  const std::uint64_t hz = 5'000'000'000ULL;  // beyond 32 bits
  const auto snapshot = tether::build_snapshot(config, {{0, {}}}, hz);
  CHECK(snapshot->services[0].idle_timeout_tsc == 86400ULL * hz);
  CHECK(snapshot->services[0].fin_timeout_tsc == 3600ULL * hz);
  CHECK(snapshot->services[0].pools[0].maglev.size() == 65537);
  CHECK(snapshot->service_index.find(ip("10.0.0.100"), 1, kProtoTcp) == 0);
}

TEST_CASE("ServiceIndex: empty and crowded", "[snapshot]") {
  ServiceIndex empty;
  CHECK(empty.find(ip("192.0.2.1"), 80, kProtoTcp) == ServiceIndex::kNone);
  empty.build({});
  CHECK(empty.find(ip("192.0.2.1"), 80, kProtoTcp) == ServiceIndex::kNone);

  // Many services on one VIP: every one is found, its neighbours are not confused.
  std::vector<std::pair<std::tuple<tether::IpBytes, std::uint16_t, std::uint8_t>, std::uint16_t>> entries;
  for (std::uint16_t i = 0; i < 300; ++i)
    entries.push_back({{ip("192.0.2.1"), static_cast<std::uint16_t>(1000 + i), i % 2 ? kProtoTcp : kProtoUdp}, i});
  ServiceIndex index;
  index.build(entries);
  std::size_t wrong = 0, false_hits = 0;
  for (std::uint16_t i = 0; i < 300; ++i) {
    const std::uint16_t port = static_cast<std::uint16_t>(1000 + i);
    if (index.find(ip("192.0.2.1"), port, i % 2 ? kProtoTcp : kProtoUdp) != i) ++wrong;
    if (index.find(ip("192.0.2.1"), port, i % 2 ? kProtoUdp : kProtoTcp) != ServiceIndex::kNone) ++false_hits;
    if (index.find(ip("192.0.2.2"), port, i % 2 ? kProtoTcp : kProtoUdp) != ServiceIndex::kNone) ++false_hits;
  }
  CHECK(wrong == 0);
  CHECK(false_hits == 0);
}
