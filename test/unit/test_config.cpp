// Configuration loading (control/config.hpp): values and defaults of valid files, and for each
// class of error a message naming the file, the line and the setting's path.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "control/address.hpp"
#include "control/config.hpp"

using Catch::Contains;
using tether::Config;
using tether::ConfigError;
using tether::load_config_file;
using tether::load_config_text;

namespace {

// One setting per line, so that each error's line number identifies the setting.
const std::string kBase =
    "# test configuration\n"              // 1
    "ports = (\n"                          // 2
    "  {\n"                                // 3
    "    name = \"lan0\";\n"               // 4
    "    device = \"net_null0\";\n"        // 5
    "  }\n"                                // 6
    ");\n"                                 // 7
    "backends = (\n"                       // 8
    "  {\n"                                // 9
    "    name = \"b1\";\n"                 // 10
    "    address = \"10.0.0.1\";\n"        // 11
    "    mac = \"02:00:00:00:00:11\";\n"   // 12
    "  },\n"                               // 13
    "  {\n"                                // 14
    "    name = \"b2\";\n"                 // 15
    "    address = \"2001:db8::2\";\n"     // 16
    "    mac = \"02:00:00:00:00:12\";\n"   // 17
    "  }\n"                                // 18
    ");\n"                                 // 19
    "services = (\n"                       // 20
    "  {\n"                                // 21
    "    name = \"web\";\n"                // 22
    "    vip = \"192.0.2.100\";\n"         // 23
    "    port = 80;\n"                     // 24
    "    protocol = \"tcp\";\n"            // 25
    "    backends = (\n"                   // 26
    "      { name = \"b1\"; weight = 2; },\n"  // 27
    "      { name = \"b2\"; }\n"           // 28
    "    );\n"                             // 29
    "  }\n"                                // 30
    ");\n";                                // 31

// kBase with `from` (which must occur exactly once) replaced by `to`.
std::string with(const std::string& from, const std::string& to, const std::string& text = kBase) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  REQUIRE(text.find(from, at + 1) == std::string::npos);
  std::string out = text;
  out.replace(at, from.size(), to);
  return out;
}

Config load(const std::string& text) { return load_config_text(text, "test.cfg"); }

// The repository root, from this file's path: <root>/test/unit/test_config.cpp.
// The source tree, from meson (test/meson.build): tests may run from any directory.
std::string repo_root() { return TETHER_SOURCE_ROOT; }

tether::IpBytes ip(const char* text) {
  auto parsed = tether::parse_ip(text);
  REQUIRE(parsed);
  return *parsed;
}

tether::MacBytes mac(const char* text) {
  auto parsed = tether::parse_mac(text);
  REQUIRE(parsed);
  return *parsed;
}

}  // namespace

TEST_CASE("config: a minimal file loads with every default", "[config]") {
  const Config c = load(kBase);
  CHECK(c.source == "test.cfg");
  CHECK(c.workers == 1);
  CHECK(c.eal_args.empty());
  CHECK(c.log_level == "info");
  CHECK(c.flows_per_worker == 262144);
  CHECK(c.maglev_size == 65537);
  CHECK(c.mbufs_per_port == 8191);
  CHECK(c.sessions == 262144);
  CHECK(c.dpi_streams_per_worker == 4096);

  REQUIRE(c.ports.size() == 1);
  CHECK(c.ports[0].name == "lan0");
  CHECK(c.ports[0].device == "net_null0");
  CHECK_FALSE(c.ports[0].mac.has_value());
  CHECK(c.ports[0].addresses.empty());

  REQUIRE(c.backends.size() == 2);
  CHECK(c.backends[0].name == "b1");
  CHECK(c.backends[0].address == ip("10.0.0.1"));
  CHECK(tether::parsers::is_ipv4_mapped(c.backends[0].address));
  CHECK(c.backends[0].mac == mac("02:00:00:00:00:11"));
  CHECK(c.backends[0].port == 0);  // the only port
  CHECK(c.backends[1].name == "b2");
  CHECK(c.backends[1].address == ip("2001:db8::2"));
  CHECK_FALSE(tether::parsers::is_ipv4_mapped(c.backends[1].address));
  CHECK(c.backends[1].port == 0);

  REQUIRE(c.services.size() == 1);
  const auto& s = c.services[0];
  CHECK(s.name == "web");
  CHECK(s.vip == ip("192.0.2.100"));
  CHECK(s.port == 80);
  CHECK(s.protocol == tether::Protocol::tcp);
  CHECK(s.scheduler == tether::Scheduler::maglev);
  CHECK(s.forwarding == tether::Forwarding::dsr);
  CHECK(s.idle_timeout_ms == 300000);  // tcp default
  CHECK(s.fin_timeout_s == 10);
  CHECK(!s.dpi.has_value());
  CHECK(s.session_timeout_s == 300);
  CHECK(s.linger_s == 32);
  CHECK(s.expectation_timeout_s == 30);
  CHECK(s.pools.empty());
  CHECK(s.rules.empty());
  REQUIRE(s.backends.size() == 2);
  CHECK(s.backends[0].passive_first == 0);
  CHECK(s.backends[0].passive_last == 0);
  CHECK(s.backends[0].backend == 0);
  CHECK(s.backends[0].weight == 2);
  CHECK(s.backends[1].backend == 1);
  CHECK(s.backends[1].weight == 1);  // default weight

  SECTION("udp's default idle timeout is 60 s") {
    const Config u = load(with("protocol = \"tcp\";", "protocol = \"udp\";"));
    CHECK(u.services[0].protocol == tether::Protocol::udp);
    CHECK(u.services[0].idle_timeout_ms == 60000);
  }
  SECTION("describe() summarises it") {
    const std::string text = tether::describe(c);
    CHECK_THAT(text, Contains("configuration test.cfg: valid"));
    CHECK_THAT(text, Contains("192.0.2.100:80/tcp"));
    CHECK_THAT(text, Contains("b1  weight 2"));
  }
}

TEST_CASE("config: every setting given", "[config]") {
  const std::string text = R"(
workers = 4;
eal = ["--no-huge", "-m", "512"];
log_level = "debug";
tables = { flows_per_worker = 1024; maglev_size = 1009; mbufs_per_port = 1023; };
ports = (
  { name = "lan0"; device = "net_pcap0,rx_pcap=in.pcap"; mac = "02:AA:bb:cc:dd:ee";
    addresses = ["192.0.2.1", "2001:db8::1"]; },
  { name = "lan1"; device = "0000:03:00.0"; }
);
backends = (
  { name = "media-1.a_b:c"; address = "192.0.2.11"; mac = "02:00:00:00:01:01"; port = "lan1"; },
  { name = "media-2"; address = "192.0.2.12"; mac = "02:00:00:00:01:02"; port = "lan0"; }
);
services = (
  { name = "sip"; vip = "2001:db8::100"; port = 5060; protocol = "udp"; scheduler = "source-hash";
    forwarding = "dsr"; idle_timeout = 86400; fin_timeout = 0;
    backends = ( { name = "media-2"; weight = 0; }, { name = "media-1.a_b:c"; weight = 65535; } ); },
  { name = "sip-tcp"; vip = "2001:db8::100"; port = 5060; protocol = "tcp"; idle_timeout = 1;
    fin_timeout = 3600; backends = ( { name = "media-1.a_b:c"; } ); }
);
)";
  const Config c = load(text);
  CHECK(c.workers == 4);
  CHECK(c.eal_args == std::vector<std::string>{"--no-huge", "-m", "512"});
  CHECK(c.log_level == "debug");
  CHECK(c.flows_per_worker == 1024);
  CHECK(c.maglev_size == 1009);
  CHECK(c.mbufs_per_port == 1023);
  REQUIRE(c.ports.size() == 2);
  CHECK(c.ports[0].device == "net_pcap0,rx_pcap=in.pcap");
  REQUIRE(c.ports[0].mac.has_value());
  CHECK(*c.ports[0].mac == tether::MacBytes{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee});
  CHECK(c.ports[0].addresses == std::vector<tether::IpBytes>{ip("192.0.2.1"), ip("2001:db8::1")});
  CHECK(c.backends[0].name == "media-1.a_b:c");
  CHECK(c.backends[0].port == 1);
  CHECK(c.backends[1].port == 0);
  REQUIRE(c.services.size() == 2);
  CHECK(c.services[0].vip == ip("2001:db8::100"));
  CHECK(c.services[0].protocol == tether::Protocol::udp);
  CHECK(c.services[0].scheduler == tether::Scheduler::source_hash);
  CHECK(c.services[0].idle_timeout_ms == 86400000);
  CHECK(c.services[0].fin_timeout_s == 0);
  CHECK(c.services[0].backends[0].backend == 1);
  CHECK(c.services[0].backends[0].weight == 0);
  CHECK(c.services[0].backends[1].backend == 0);
  CHECK(c.services[0].backends[1].weight == 65535);
  // Same VIP and port over another protocol is another service.
  CHECK(c.services[1].protocol == tether::Protocol::tcp);
  CHECK(c.services[1].idle_timeout_ms == 1000);
  CHECK(c.services[1].fin_timeout_s == 3600);
}

TEST_CASE("config: syntax errors name the line", "[config]") {
  CHECK_THROWS_AS(load(with("    port = 80;\n", "    port = ;\n")), ConfigError);
  CHECK_THROWS_WITH(load(with("    port = 80;\n", "    port = ;\n")), Contains("test.cfg:24: syntax error"));
  CHECK_THROWS_WITH(load(with("\"10.0.0.1\"", "10.0.0.1")), Contains("test.cfg:11: syntax error"));
  CHECK_THROWS_WITH(load(with("    name = \"b2\";\n", "    name == \"b2\";\n")), Contains("test.cfg:15: syntax error"));
  CHECK_THROWS_WITH(load("workers = 1;\n\n\nworkers 2;\n"), Contains("test.cfg:4: syntax error"));
  CHECK_THROWS_WITH(load("workers = 1;\nworkers = 2;\n" + kBase), Contains("test.cfg:2: syntax error: duplicate setting name"));
  CHECK_THROWS_WITH(load("services = ( { name = \"x\" }\n"), Contains("test.cfg:2: syntax error"));  // at the end
}

TEST_CASE("config: unknown settings", "[config]") {
  CHECK_THROWS_WITH(load(kBase + "bogus = 1;\n"),
                    Contains("test.cfg:32: bogus: unknown setting (expected one of: workers, eal, log_level, "
                             "tables, neighbours, ports, backends, services"));
  CHECK_THROWS_WITH(load(with("    protocol = \"tcp\";\n", "    protocol = \"tcp\";\n    colour = \"red\";\n")),
                    Contains("test.cfg:26: services.[0].colour: unknown setting (expected one of: name, vip, port"));
  CHECK_THROWS_WITH(load(with("    address = \"10.0.0.1\";\n", "    address = \"10.0.0.1\";\n    weight = 3;\n")),
                    Contains("test.cfg:12: backends.[0].weight: unknown setting (expected one of: name, "
                             "address, mac, port"));
  CHECK_THROWS_WITH(load(with("    device = \"net_null0\";\n", "    device = \"net_null0\";\n    queues = 2;\n")),
                    Contains("test.cfg:6: ports.[0].queues: unknown setting (expected one of: name, device, "
                             "mac, addresses"));
  CHECK_THROWS_WITH(load(with("{ name = \"b2\"; }", "{ name = \"b2\"; wieght = 2; }")),
                    Contains("test.cfg:28: services.[0].backends.[1].wieght: unknown setting (expected one "
                             "of: name, weight"));
  CHECK_THROWS_WITH(load("tables = { maglev = 101; };\n" + kBase),
                    Contains("test.cfg:1: tables.maglev: unknown setting (expected one of: "
                             "flows_per_worker, maglev_size, mbufs_per_port"));
}

TEST_CASE("config: bad addresses", "[config]") {
  CHECK_THROWS_WITH(load(with("192.0.2.100", "192.0.2.300")),
                    "test.cfg:23: services.[0].vip: '192.0.2.300' is not an IPv4 or IPv6 address");
  CHECK_THROWS_WITH(load(with("192.0.2.100", "2001:db8::zz")),
                    "test.cfg:23: services.[0].vip: '2001:db8::zz' is not an IPv4 or IPv6 address");
  CHECK_THROWS_WITH(load(with("192.0.2.100", "")),
                    "test.cfg:23: services.[0].vip: '' is not an IPv4 or IPv6 address");
  CHECK_THROWS_WITH(load(with("2001:db8::2", "2001:db8:::2")),
                    "test.cfg:16: backends.[1].address: '2001:db8:::2' is not an IPv4 or IPv6 address");
  CHECK_THROWS_WITH(load(with("\"10.0.0.1\"", "\"10.0.0\"")),
                    "test.cfg:11: backends.[0].address: '10.0.0' is not an IPv4 or IPv6 address");
  CHECK_THROWS_WITH(load(with("    vip = \"192.0.2.100\";", "    vip = 3221225572;")),
                    "test.cfg:23: services.[0].vip: expected an IPv4 or IPv6 address string");
  CHECK_THROWS_WITH(
      load(with("    device = \"net_null0\";\n", "    device = \"net_null0\";\n    addresses = [\"192.0.2.1\", \"fe80::1::2\"];\n")),
      "test.cfg:6: ports.[0].addresses.[1]: 'fe80::1::2' is not an IPv4 or IPv6 address");
  // A string far longer than any address.
  CHECK_THROWS_WITH(load(with("192.0.2.100", std::string(200, '1'))),
                    Contains("test.cfg:23: services.[0].vip: '111"));
}

TEST_CASE("config: bad MAC addresses", "[config]") {
  for (const char* bad : {"02:00:00:00:00", "02:00:00:00:00:1", "02-00-00-00-00-11", "02:00:00:00:00:1g",
                          "02:00:00:00:00:110", "0200.0000.0011", ""}) {
    INFO(bad);
    CHECK_THROWS_WITH(load(with("02:00:00:00:00:11", bad)),
                      std::string("test.cfg:12: backends.[0].mac: '") + bad +
                          "' is not a MAC address (like 02:00:00:00:00:01)");
  }
  CHECK_THROWS_WITH(load(with("    mac = \"02:00:00:00:00:11\";", "    mac = 2;")),
                    "test.cfg:12: backends.[0].mac: expected a MAC address string");
  CHECK_THROWS_WITH(load(with("    device = \"net_null0\";\n", "    device = \"net_null0\";\n    mac = \"zz\";\n")),
                    "test.cfg:6: ports.[0].mac: 'zz' is not a MAC address (like 02:00:00:00:00:01)");
}

TEST_CASE("config: duplicate VIP:port/protocol", "[config]") {
  const std::string second =
      "  },\n"
      "  {\n"
      "    name = \"web2\";\n"     // 32
      "    vip = \"192.0.2.100\";\n"  // 33
      "    port = 80;\n"
      "    protocol = \"PROTO\";\n"
      "    backends = ( { name = \"b1\"; } );\n"
      "  }\n"
      ");\n";
  const std::string two = kBase.substr(0, kBase.rfind("  }\n);\n")) + second;
  CHECK_THROWS_WITH(load(with("PROTO", "tcp", two)),
                    "test.cfg:33: services.[1].vip: duplicate VIP:port 192.0.2.100:80/tcp (already used "
                    "by service 'web')");
  // The IPv4-mapped IPv6 spelling is the same address.
  CHECK_THROWS_WITH(load(with("PROTO", "tcp", with("    vip = \"192.0.2.100\";\n    port = 80;\n    protocol = \"PROTO\"",
                                                   "    vip = \"::ffff:192.0.2.100\";\n    port = 80;\n    protocol = \"PROTO\"", two))),
                    Contains("test.cfg:33: services.[1].vip: duplicate VIP:port 192.0.2.100:80/tcp"));
  // Same VIP and port over UDP is a different service.
  const Config c = load(with("PROTO", "udp", two));
  REQUIRE(c.services.size() == 2);
  CHECK(c.services[1].protocol == tether::Protocol::udp);
  CHECK(c.services[1].vip == c.services[0].vip);
  // Same VIP, other port: fine too.
  CHECK_NOTHROW(load(with("    port = 80;\n    protocol = \"PROTO\"", "    port = 81;\n    protocol = \"tcp\"", two)));
}

TEST_CASE("config: idle_timeout in seconds, to the millisecond", "[config]") {
  const auto idle = [](const std::string& value) {
    return load(with("    port = 80;\n", "    port = 80;\n    idle_timeout = " + value + ";\n")).services[0].idle_timeout_ms;
  };
  CHECK(idle("7") == 7000);
  CHECK(idle("0.25") == 250);
  CHECK(idle("0.01") == 10);
  CHECK(idle("1.5") == 1500);
  CHECK(idle("86400") == 86400000);
  CHECK(idle("86400.0") == 86400000);
  CHECK_THROWS_WITH(idle("0.005"), "test.cfg:25: services.[0].idle_timeout: 0.005000 is out of range 0.01..86400 seconds");
  CHECK_THROWS_WITH(idle("0"), "test.cfg:25: services.[0].idle_timeout: 0 is out of range 0.01..86400 seconds");
  CHECK_THROWS_WITH(idle("86401"), "test.cfg:25: services.[0].idle_timeout: 86401 is out of range 0.01..86400 seconds");
  CHECK_THROWS_WITH(idle("-1"), "test.cfg:25: services.[0].idle_timeout: -1 is out of range 0.01..86400 seconds");
  CHECK_THROWS_WITH(idle("0.0125"), "test.cfg:25: services.[0].idle_timeout: 0.012500 is not a whole number of milliseconds");
  CHECK_THROWS_WITH(idle("\"1\""), "test.cfg:25: services.[0].idle_timeout: expected an integer");
  CHECK(tether::seconds_text(250) == "0.25");
  CHECK(tether::seconds_text(1500) == "1.5");
  CHECK(tether::seconds_text(60000) == "60");
  CHECK(tether::seconds_text(10) == "0.01");
}

TEST_CASE("config: metrics.listen is ADDRESS:PORT", "[config]") {
  const auto listen = [](const std::string& text) { return tether::parse_listen(text); };
  REQUIRE(listen("127.0.0.1:9142"));
  CHECK(listen("127.0.0.1:9142")->port == 9142);
  CHECK(listen("127.0.0.1:9142")->address == ip("127.0.0.1"));
  REQUIRE(listen("[::1]:80"));
  CHECK(listen("[::1]:80")->address == ip("::1"));
  CHECK(listen("0.0.0.0:65535")->port == 65535);
  CHECK(listen("[::]:1")->port == 1);
  for (const char* bad : {"", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:09142",
                          "127.0.0.1:91420", "127.0.0.1:+80", "127.0.0.1: 80", "::1:80", "[::1]", "[::1]80",
                          "[127.0.0.1]:80", "[::1:80", "localhost:80", "1.2.3.4.5:80", "127.0.0.1:80:80"})
    CHECK_FALSE(listen(bad));
  const auto config = [](const std::string& metrics) { return load(kBase + metrics); };
  CHECK_FALSE(config("").metrics);
  CHECK(config("metrics = { listen = \"[::1]:9142\"; };\n").metrics->listen == "[::1]:9142");
  CHECK_THROWS_WITH(config("metrics = { listen = \"localhost:9142\"; };\n"),
                    "test.cfg:32: metrics.listen: 'localhost:9142' is not ADDRESS:PORT (an IPv6 address in brackets: [::1]:9142)");
  CHECK_THROWS_WITH(config("metrics = { };\n"), "test.cfg:32: metrics: missing required setting 'listen'");
  CHECK_THROWS_WITH(config("metrics = { listen = \"127.0.0.1:1\"; port = 2; };\n"),
                    Contains("metrics.port: unknown setting (expected one of: listen)"));
}

TEST_CASE("config: weights", "[config]") {
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 70000;")),
                    "test.cfg:27: services.[0].backends.[0].weight: 70000 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = -1;")),
                    "test.cfg:27: services.[0].backends.[0].weight: -1 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 4294967298L;")),
                    "test.cfg:27: services.[0].backends.[0].weight: 4294967298 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 1.5;")),
                    "test.cfg:27: services.[0].backends.[0].weight: expected an integer");
  CHECK(load(with("weight = 2;", "weight = 65535;")).services[0].backends[0].weight == 65535);
  CHECK(load(with("weight = 2;", "weight = 0;")).services[0].backends[0].weight == 0);
  CHECK(load(with("weight = 2;", "weight = 7L;")).services[0].backends[0].weight == 7);
}

TEST_CASE("config: backends", "[config]") {
  SECTION("without mac: resolved by ARP/ND from a port address of the same family") {
    CHECK_THROWS_WITH(load(with("    mac = \"02:00:00:00:00:12\";\n", "")),
                      "test.cfg:14: backends.[1]: backend 'b2' needs 'mac', or an IPv6 address on "
                      "port 'lan0' to resolve it by neighbour discovery");
    CHECK_THROWS_WITH(load(with("    mac = \"02:00:00:00:00:11\";\n", "")),
                      "test.cfg:9: backends.[0]: backend 'b1' needs 'mac', or an IPv4 address on "
                      "port 'lan0' to resolve it by ARP");
    const Config c = load(with("    mac = \"02:00:00:00:00:12\";\n", "",
                               with("    device = \"net_null0\";\n",
                                    "    device = \"net_null0\"; addresses = [\"10.0.0.254\", \"2001:db8::fe\"];\n")));
    CHECK_FALSE(c.backends[1].mac.has_value());
    CHECK(c.backends[0].mac.has_value());
  }
  SECTION("neighbour timers") {
    const Config defaults = load(kBase);
    CHECK(defaults.neighbours.refresh_s == 30);
    CHECK(defaults.neighbours.retry_ms == 1000);
    CHECK(defaults.neighbours.attempts == 3);
    const Config c = load(kBase + "neighbours = { refresh = 5; retry = 200; attempts = 2; };\n");
    CHECK(c.neighbours.refresh_s == 5);
    CHECK(c.neighbours.retry_ms == 200);
    CHECK(c.neighbours.attempts == 2);
    CHECK_THROWS_WITH(load(kBase + "neighbours = { retry = 5; };\n"),
                      "test.cfg:32: neighbours.retry: 5 is out of range 10..60000");
    CHECK_THROWS_WITH(load(kBase + "neighbours = { refresh = 0; };\n"),
                      "test.cfg:32: neighbours.refresh: 0 is out of range 1..86400");
    CHECK_THROWS_WITH(load(kBase + "neighbours = { every = 1; };\n"),
                      Contains("test.cfg:32: neighbours.every: unknown setting"));
  }
  SECTION("unknown name in a service") {
    CHECK_THROWS_WITH(load(with("{ name = \"b2\"; }", "{ name = \"b3\"; }")),
                      "test.cfg:28: services.[0].backends.[1].name: no backend named 'b3'");
  }
  SECTION("listed twice in a service") {
    CHECK_THROWS_WITH(load(with("{ name = \"b2\"; }", "{ name = \"b1\"; }")),
                      "test.cfg:28: services.[0].backends.[1].name: backend 'b1' is listed twice");
  }
  SECTION("a service without backends") {
    CHECK_THROWS_WITH(load(with("      { name = \"b1\"; weight = 2; },\n      { name = \"b2\"; }\n", "")),
                      Contains("test.cfg:26: services.[0].backends: a service needs at least one backend"));
  }
  SECTION("no port when there are two ports") {
    const std::string two_ports = with("  }\n);\nbackends", "  },\n  { name = \"lan1\"; device = \"net_null1\"; }\n);\nbackends");
    CHECK_THROWS_WITH(load(two_ports),
                      "test.cfg:10: backends.[0]: backend 'b1' needs 'port' when there are several ports");
    const std::string both = with("    mac = \"02:00:00:00:00:11\";\n", "    mac = \"02:00:00:00:00:11\";\n    port = \"lan1\";\n", two_ports);
    CHECK_THROWS_WITH(load(both),
                      "test.cfg:16: backends.[1]: backend 'b2' needs 'port' when there are several ports");
    const Config c = load(with("    mac = \"02:00:00:00:00:12\";\n", "    mac = \"02:00:00:00:00:12\";\n    port = \"lan0\";\n", both));
    CHECK(c.backends[0].port == 1);
    CHECK(c.backends[1].port == 0);
  }
  SECTION("a port that does not exist") {
    CHECK_THROWS_WITH(load(with("    mac = \"02:00:00:00:00:11\";\n", "    mac = \"02:00:00:00:00:11\";\n    port = \"lan9\";\n")),
                      "test.cfg:13: backends.[0].port: no port named 'lan9'");
  }
}

TEST_CASE("config: names", "[config]") {
  SECTION("duplicate backend") {
    CHECK_THROWS_WITH(load(with("    name = \"b2\";\n", "    name = \"b1\";\n")),
                      "test.cfg:15: backends.[1].name: duplicate backend name 'b1'");
  }
  SECTION("duplicate service") {
    const std::string text = kBase.substr(0, kBase.rfind("  }\n);\n")) +
                             "  },\n  { name = \"web\"; vip = \"192.0.2.101\"; port = 80; protocol = \"tcp\";\n"
                             "    backends = ( { name = \"b1\"; } ); }\n);\n";
    CHECK_THROWS_WITH(load(text), "test.cfg:31: services.[1].name: duplicate service name 'web'");
  }
  SECTION("duplicate port") {
    CHECK_THROWS_WITH(load(with("  }\n);\nbackends", "  },\n  { name = \"lan0\"; device = \"net_null1\"; }\n);\nbackends")),
                      "test.cfg:7: ports.[1].name: duplicate port name 'lan0'");
  }
  SECTION("a backend may share a service's or port's name") {
    CHECK_NOTHROW(load(with("    name = \"web\";\n", "    name = \"b1\";\n")));
  }
  SECTION("bad characters and lengths") {
    const std::string too_long(33, 'a');
    for (const std::string& bad : {std::string("b 1"), std::string("b/1"), std::string(""), too_long,
                                   std::string("caf\xc3\xa9"), std::string("b\"1")}) {
      INFO(bad);
      std::string escaped;
      for (char ch : bad) {
        if (ch == '"') escaped += '\\';
        escaped += ch;
      }
      CHECK_THROWS_WITH(load(with("    name = \"b2\";\n", "    name = \"" + escaped + "\";\n")),
                        "test.cfg:15: backends.[1].name: backend name '" + bad +
                            "' must be 1 to 32 letters, digits, '.', '_', '-' or ':'");
    }
    CHECK_THROWS_WITH(load(with("    name = \"web\";\n", "    name = \"web site\";\n")),
                      Contains("test.cfg:22: services.[0].name: service name 'web site' must be 1 to 32"));
    CHECK_THROWS_WITH(load(with("    name = \"lan0\";\n", "    name = \"lan#0\";\n")),
                      Contains("test.cfg:4: ports.[0].name: port name 'lan#0' must be 1 to 32"));
    CHECK(load(with("    name = \"b2\";\n", "    name = \"" + std::string(32, 'z') + "\";\n",
                    with("{ name = \"b2\"; }", "{ name = \"" + std::string(32, 'z') + "\"; }")))
              .backends[1].name == std::string(32, 'z'));
  }
}

TEST_CASE("config: DPI streams per worker fit a flow entry's stream field", "[config]") {
  CHECK_THROWS_WITH(load("tables = {\n  dpi_streams_per_worker = 1048577;\n};\n" + kBase),
                    "test.cfg:2: tables.dpi_streams_per_worker: 1048577 is out of range 16..1048576");
  CHECK(load("tables = {\n  dpi_streams_per_worker = 1048576;\n};\n" + kBase).dpi_streams_per_worker ==
        1048576);
}

TEST_CASE("config: DPI sessions per worker, apart from the buffers", "[config]") {
  CHECK(load(kBase).dpi_sessions_per_worker == 65536);
  CHECK_THROWS_WITH(load("tables = {\n  dpi_sessions_per_worker = 16777217;\n};\n" + kBase),
                    "test.cfg:2: tables.dpi_sessions_per_worker: 16777217 is out of range 16..16777216");
  CHECK_THROWS_WITH(load("tables = {\n  dpi_sessions_per_worker = 15;\n};\n" + kBase),
                    "test.cfg:2: tables.dpi_sessions_per_worker: 15 is out of range 16..16777216");
  const auto c = load("tables = {\n  dpi_streams_per_worker = 16;\n  dpi_sessions_per_worker = 10000;\n};\n" + kBase);
  CHECK(c.dpi_streams_per_worker == 16);
  CHECK(c.dpi_sessions_per_worker == 10000);
}

TEST_CASE("config: Maglev table size", "[config]") {
  CHECK_THROWS_WITH(load("tables = {\n  maglev_size = 65536;\n};\n" + kBase),
                    "test.cfg:2: tables.maglev_size: 65536 is not prime (Maglev needs a prime table size)");
  CHECK_THROWS_WITH(load("tables = {\n  maglev_size = 100;\n};\n" + kBase),
                    "test.cfg:2: tables.maglev_size: 100 is out of range 101..16777213");
  CHECK_THROWS_WITH(load("tables = {\n  maglev_size = 16777259;\n};\n" + kBase),
                    "test.cfg:2: tables.maglev_size: 16777259 is out of range 101..16777213");
  // Two backends need 200 slots.
  CHECK_THROWS_WITH(load("tables = {\n  maglev_size = 197;\n};\n" + kBase),
                    "test.cfg:29: services.[0].backends: tables.maglev_size 197 is below 100 x the "
                    "service's 2 backends");
  CHECK(load("tables = {\n  maglev_size = 211;\n};\n" + kBase).maglev_size == 211);
  CHECK(load("tables = {\n  maglev_size = 101;\n};\n" + with("      { name = \"b2\"; }\n", "", with("weight = 2; },", "weight = 2; }")))
            .maglev_size == 101);
}

TEST_CASE("config: wrong types", "[config]") {
  CHECK_THROWS_WITH(load("workers = \"2\";\n" + kBase), "test.cfg:1: workers: expected an integer");
  CHECK_THROWS_WITH(load(with("port = 80;", "port = \"80\";")), "test.cfg:24: services.[0].port: expected an integer");
  CHECK_THROWS_WITH(load(with("port = 80;", "port = true;")), "test.cfg:24: services.[0].port: expected an integer");
  CHECK_THROWS_WITH(load(with("    name = \"web\";", "    name = 5;")), "test.cfg:22: services.[0].name: expected a string");
  CHECK_THROWS_WITH(load(with("protocol = \"tcp\";", "protocol = 6;")), "test.cfg:25: services.[0].protocol: expected a string");
  CHECK_THROWS_WITH(load("log_level = 3;\n" + kBase), "test.cfg:1: log_level: expected a string");
  CHECK_THROWS_WITH(load("eal = [\"--no-huge\", \"-m\"];\neal2 = 1;\n" + kBase), Contains("test.cfg:2: eal2: unknown setting"));
  CHECK_THROWS_WITH(load("eal = ( \"--no-huge\", 512 );\n" + kBase), "test.cfg:1: eal.[1]: expected a string");
  CHECK_THROWS_WITH(load("eal = \"--no-huge\";\n" + kBase), "test.cfg:1: eal: expected a list ( ... ) or array [ ... ]");
  CHECK_THROWS_WITH(load(with("ports = (\n  {\n    name = \"lan0\";\n    device = \"net_null0\";\n  }\n);",
                              "ports = \"lan0\";\n\n\n\n\n")),
                    "test.cfg:2: ports: expected a list ( ... ) or array [ ... ]");
  // `tables` must be a group: a scalar or a list there is a mistake, not "all defaults".
  CHECK_THROWS_WITH(load("tables = 5;\n" + kBase), Contains("test.cfg:1: tables: expected a group"));
  CHECK_THROWS_WITH(load("tables = [1009];\n" + kBase), Contains("test.cfg:1: tables: expected a group"));
  CHECK_THROWS_WITH(load("tables = { flows_per_worker = 1e6; };\n" + kBase),
                    "test.cfg:1: tables.flows_per_worker: expected an integer");
  CHECK_THROWS_WITH(load(with("    backends = (\n      { name = \"b1\"; weight = 2; },\n      { name = \"b2\"; }\n    );\n",
                              "    backends = 3;\n\n\n\n")),
                    "test.cfg:26: services.[0].backends: expected a list ( ... ) or array [ ... ]");
}

TEST_CASE("config: missing required settings", "[config]") {
  const auto without = [](const std::string& from, const std::string& to = "") { return with(from, to); };
  CHECK_THROWS_WITH(load(kBase.substr(kBase.find("backends = ("))),
                    "test.cfg:0: (top level): missing required setting 'ports'");
  CHECK_THROWS_WITH(load(kBase.substr(0, kBase.find("services = ("))),
                    Contains(": (top level): missing required setting 'services'"));
  CHECK_THROWS_WITH(load(without("    device = \"net_null0\";\n")),
                    "test.cfg:3: ports.[0]: missing required setting 'device'");
  CHECK_THROWS_WITH(load(without("    vip = \"192.0.2.100\";\n")),
                    "test.cfg:21: services.[0]: missing required setting 'vip'");
  CHECK_THROWS_WITH(load(without("    port = 80;\n")), "test.cfg:21: services.[0]: missing required setting 'port'");
  CHECK_THROWS_WITH(load(without("    protocol = \"tcp\";\n")),
                    "test.cfg:21: services.[0]: missing required setting 'protocol'");
  CHECK_THROWS_WITH(load(without("    address = \"10.0.0.1\";\n")),
                    "test.cfg:9: backends.[0]: missing required setting 'address'");
  CHECK_THROWS_WITH(load(without("    name = \"lan0\";\n")), "test.cfg:3: ports.[0]: missing required setting 'name'");
  CHECK_THROWS_WITH(load(without("{ name = \"b1\"; weight = 2; }", "{ weight = 2; }")),
                    "test.cfg:27: services.[0].backends.[0]: missing required setting 'name'");
  CHECK_THROWS_WITH(load(without("    device = \"net_null0\";\n", "    device = \"\";\n")),
                    "test.cfg:5: ports.[0].device: device is empty");
  CHECK_THROWS_WITH(load(with("ports = (\n  {\n    name = \"lan0\";\n    device = \"net_null0\";\n  }\n);", "ports = ();")),
                    "test.cfg:2: ports: at least one port is required");
  CHECK_THROWS_WITH(load(kBase.substr(0, kBase.find("services = (")) + "services = ();\n"),
                    "test.cfg:20: services: at least one service is required");
  CHECK_THROWS_WITH(load(""), Contains("missing required setting 'ports'"));
}

TEST_CASE("config: choices and ranges", "[config]") {
  CHECK_THROWS_WITH(load(with("protocol = \"tcp\";", "protocol = \"sctp\";")),
                    "test.cfg:25: services.[0].protocol: 'sctp' is not one of: tcp, udp");
  CHECK_THROWS_WITH(load(with("protocol = \"tcp\";", "protocol = \"TCP\";")),
                    "test.cfg:25: services.[0].protocol: 'TCP' is not one of: tcp, udp");
  CHECK_THROWS_WITH(load(with("    protocol = \"tcp\";\n", "    protocol = \"tcp\";\n    scheduler = \"round-robin\";\n")),
                    Contains("test.cfg:26: services.[0].scheduler: 'round-robin' is not one of: maglev, source-hash"));
  CHECK_THROWS_WITH(load(with("    protocol = \"tcp\";\n", "    protocol = \"tcp\";\n    forwarding = \"nat\";\n")),
                    "test.cfg:26: services.[0].forwarding: 'nat' is not one of: dsr, ipip, gue");
  CHECK_THROWS_WITH(load("log_level = \"verbose\";\n" + kBase),
                    "test.cfg:1: log_level: 'verbose' is not one of: error, warning, info, debug");
  CHECK_THROWS_WITH(load("workers = 0;\n" + kBase), "test.cfg:1: workers: 0 is out of range 1..64");
  CHECK_THROWS_WITH(load("workers = 65;\n" + kBase), "test.cfg:1: workers: 65 is out of range 1..64");
  CHECK(load("workers = 64;\n" + kBase).workers == 64);
  CHECK_THROWS_WITH(load(with("port = 80;", "port = 0;")), "test.cfg:24: services.[0].port: 0 is out of range 1..65535");
  CHECK_THROWS_WITH(load(with("port = 80;", "port = 65536;")),
                    "test.cfg:24: services.[0].port: 65536 is out of range 1..65535");
  CHECK_THROWS_WITH(load(with("    protocol = \"tcp\";\n", "    protocol = \"tcp\";\n    idle_timeout = 0;\n")),
                    "test.cfg:26: services.[0].idle_timeout: 0 is out of range 0.01..86400 seconds");
  CHECK_THROWS_WITH(load(with("    protocol = \"tcp\";\n", "    protocol = \"tcp\";\n    fin_timeout = 3601;\n")),
                    "test.cfg:26: services.[0].fin_timeout: 3601 is out of range 0..3600");
  CHECK_THROWS_WITH(load("tables = { flows_per_worker = 1023; };\n" + kBase),
                    "test.cfg:1: tables.flows_per_worker: 1023 is out of range 1024..134217728");
  CHECK_THROWS_WITH(load("tables = { mbufs_per_port = 16777217; };\n" + kBase),
                    "test.cfg:1: tables.mbufs_per_port: 16777217 is out of range 1023..16777216");
}

TEST_CASE("config: load_config_file", "[config]") {
  SECTION("a missing file") {
    CHECK_THROWS_AS(load_config_file("/nonexistent/tether.cfg"), ConfigError);
    CHECK_THROWS_WITH(load_config_file("/nonexistent/tether.cfg"), "/nonexistent/tether.cfg: cannot read the file");
  }
  SECTION("conf/reference.cfg") {
    const std::string path = repo_root() + "/conf/reference.cfg";
    const Config c = load_config_file(path);
    CHECK(c.source == path);
    CHECK(c.workers == 1);
    CHECK(c.eal_args == std::vector<std::string>{"--in-memory"});
    CHECK(c.log_level == "info");
    CHECK(c.flows_per_worker == 262144);
    CHECK(c.maglev_size == 65537);
    CHECK(c.mbufs_per_port == 8191);
    REQUIRE(c.ports.size() == 1);
    CHECK(c.ports[0].name == "lan0");
    CHECK(c.ports[0].device == "0000:03:00.0");
    REQUIRE(c.ports[0].mac.has_value());
    CHECK(*c.ports[0].mac == mac("02:00:00:00:00:01"));
    CHECK(c.ports[0].addresses == std::vector<tether::IpBytes>{ip("192.0.2.1"), ip("2001:db8::1")});
    REQUIRE(c.backends.size() == 2);
    CHECK(c.backends[0].name == "media-1");
    CHECK(c.backends[0].address == ip("192.0.2.11"));
    CHECK(c.backends[0].mac == mac("02:00:00:00:01:01"));
    CHECK(c.backends[1].name == "media-2");
    CHECK(c.backends[1].address == ip("192.0.2.12"));
    CHECK(c.backends[1].port == 0);
    CHECK(c.sessions == 262144);
    CHECK(c.dpi_streams_per_worker == 4096);
    REQUIRE(c.services.size() == 3);

    const auto& sip = c.services[0];
    CHECK(sip.name == "sip");
    CHECK(sip.vip == ip("192.0.2.100"));
    CHECK(sip.port == 5060);
    CHECK(sip.protocol == tether::Protocol::udp);
    CHECK(sip.scheduler == tether::Scheduler::maglev);
    CHECK(sip.forwarding == tether::Forwarding::dsr);
    CHECK(sip.idle_timeout_ms == 60000);
    CHECK(sip.fin_timeout_s == 10);
    CHECK(sip.dpi == tether::SessionProtocol::sip);
    CHECK(sip.session_timeout_s == 1800);
    CHECK(sip.linger_s == 32);
    REQUIRE(sip.backends.size() == 2);
    CHECK(sip.backends[0].backend == 0);
    CHECK(sip.backends[0].weight == 2);
    CHECK(sip.backends[1].backend == 1);
    CHECK(sip.backends[1].weight == 1);
    REQUIRE(sip.pools.size() == 1);
    CHECK(sip.pools[0].name == "registrars");
    REQUIRE(sip.pools[0].backends.size() == 1);
    CHECK(sip.pools[0].backends[0].backend == 1);
    REQUIRE(sip.rules.size() == 2);
    CHECK(sip.rules[0].field == tether::dataplane::RuleField::request_line);
    CHECK(sip.rules[0].pattern == "^REGISTER ");
    CHECK_FALSE(sip.rules[0].caseless);
    CHECK(sip.rules[0].pool == 1);
    CHECK(sip.rules[1].field == tether::dataplane::RuleField::header);
    CHECK(sip.rules[1].header == "User-Agent");
    CHECK(sip.rules[1].caseless);

    const auto& ftp = c.services[1];
    CHECK(ftp.name == "ftp");
    CHECK(ftp.port == 21);
    CHECK(ftp.protocol == tether::Protocol::tcp);
    CHECK(ftp.idle_timeout_ms == 300000);
    CHECK(ftp.dpi == tether::SessionProtocol::ftp);
    CHECK(ftp.expectation_timeout_s == 30);
    REQUIRE(ftp.backends.size() == 2);
    CHECK(ftp.backends[0].weight == 1);
    CHECK(ftp.backends[0].passive_first == 30000);
    CHECK(ftp.backends[0].passive_last == 30999);
    CHECK(ftp.backends[1].passive_first == 31000);
    CHECK(ftp.backends[1].passive_last == 31999);

    const auto& rtsp = c.services[2];
    CHECK(rtsp.name == "rtsp");
    CHECK(rtsp.port == 554);
    CHECK(rtsp.dpi == tether::SessionProtocol::rtsp);
    CHECK(rtsp.session_timeout_s == 300);
    CHECK(rtsp.backends.size() == 2);
  }
  SECTION("errors in a file name the file") {
    char path[] = "/tmp/tether-test-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    {
      std::ofstream out(path);
      out << with("port = 80;", "port = 99999;");
    }
    CHECK_THROWS_WITH(load_config_file(path),
                      std::string(path) + ":24: services.[0].port: 99999 is out of range 1..65535");
    {
      std::ofstream out(path);
      out << "workers = 1;\nworkers = ;\n";
    }
    CHECK_THROWS_WITH(load_config_file(path), Contains(std::string(path) + ":2: syntax error"));
    std::remove(path);
  }
}

TEST_CASE("config: is_prime agrees with the table sizes it allows", "[config]") {
  CHECK(tether::is_prime(65537));
  CHECK(tether::is_prime(101));
  CHECK(tether::is_prime(16777213));
  CHECK_FALSE(tether::is_prime(65536));
}

TEST_CASE("merge_running: indices stay with names across reloads", "[config][reload]") {
  using tether::merge_running;
  const Config running = load(kBase);

  SECTION("the same file: nothing moves") {
    const Config merged = merge_running(running, running);
    REQUIRE(merged.backends.size() == 2);
    CHECK(merged.backends[0].name == "b1");
    CHECK_FALSE(merged.backends[0].removed);
    CHECK(merged.services[0].backends[1].backend == 1);
  }
  SECTION("a new backend listed first still goes after the running ones") {
    const Config desired = load(with(");\nbackends = (\n",
                                     ");\nbackends = (\n  { name = \"b0\"; address = \"10.0.0.9\"; mac = \"02:00:00:00:00:19\"; },\n",
                                     with("      { name = \"b2\"; }\n", "      { name = \"b2\"; },\n      { name = \"b0\"; }\n")));
    REQUIRE(desired.backends[0].name == "b0");
    const Config merged = merge_running(running, desired);
    REQUIRE(merged.backends.size() == 3);
    CHECK(merged.backends[0].name == "b1");
    CHECK(merged.backends[1].name == "b2");
    CHECK(merged.backends[2].name == "b0");
    const auto& members = merged.services[0].backends;
    REQUIRE(members.size() == 3);
    CHECK(members[0].backend == 0);
    CHECK(members[1].backend == 1);
    CHECK(members[2].backend == 2);
  }
  SECTION("a vanished backend keeps its index as removed, and gets it back when it returns") {
    const std::string without_b2 =
        with("      { name = \"b1\"; weight = 2; },\n      { name = \"b2\"; }\n", "      { name = \"b1\"; weight = 2; }\n",
             with("  },\n  {\n    name = \"b2\";\n    address = \"2001:db8::2\";\n    mac = \"02:00:00:00:00:12\";\n  }\n", "  }\n"));
    const Config merged = merge_running(running, load(without_b2));
    REQUIRE(merged.backends.size() == 2);
    CHECK(merged.backends[1].name == "b2");
    CHECK(merged.backends[1].removed);
    REQUIRE(merged.services[0].backends.size() == 1);
    CHECK(merged.services[0].backends[0].backend == 0);
    const Config back = merge_running(merged, running);
    REQUIRE(back.backends.size() == 2);
    CHECK_FALSE(back.backends[1].removed);
    CHECK(back.services[0].backends[1].backend == 1);
  }
  SECTION("a vanished service stays as removed, without backends; a new one is appended") {
    const Config desired = load(with("    name = \"web\";\n    vip = \"192.0.2.100\";\n", "    name = \"web2\";\n    vip = \"192.0.2.101\";\n"));
    const Config merged = merge_running(running, desired);
    REQUIRE(merged.services.size() == 2);
    CHECK(merged.services[0].name == "web");
    CHECK(merged.services[0].removed);
    CHECK(merged.services[0].backends.empty());
    CHECK(merged.services[1].name == "web2");
    CHECK_FALSE(merged.services[1].removed);
  }
  SECTION("what only a restart can change is refused") {
    CHECK_THROWS_WITH(merge_running(running, load("workers = 2;\n" + kBase)),
                      "workers changed: restart tetherd to apply it");
    CHECK_THROWS_WITH(merge_running(running, load("tables = { sessions = 4096; };\n" + kBase)),
                      "tables changed: restart tetherd to apply it");
    CHECK_THROWS_WITH(merge_running(running, load(with("net_null0", "net_null1"))),
                      "ports changed: restart tetherd to apply it");
  }
}

TEST_CASE("config: health checks", "[config]") {
  const std::string udp = with("    protocol = \"tcp\";\n", "    protocol = \"udp\";\n");
  auto checked = [](const std::string& text, const std::string& check) {
    return with("    port = 80;\n", "    port = 80;\n    health_check = " + check + ";\n", text);
  };
  const Config c = load(checked(udp, "{ type = \"sip-options\"; interval = 500; timeout = 200; rise = 1; fall = 4; }"));
  REQUIRE(c.services[0].health_check.has_value());
  CHECK(c.services[0].health_check->type == tether::HealthCheckType::sip_options);
  CHECK(c.services[0].health_check->interval_ms == 500);
  CHECK(c.services[0].health_check->timeout_ms == 200);
  CHECK(c.services[0].health_check->rise == 1);
  CHECK(c.services[0].health_check->fall == 4);
  CHECK_THROWS_WITH(load(checked(kBase, "{ type = \"sip-options\"; }")),
                    Contains("a 'sip-options' check needs a udp service"));
  CHECK_THROWS_WITH(load("tables = { mbuf_size = 256; };\n" + checked(udp, "{ type = \"sip-options\"; }")),
                    Contains("a 'sip-options' probe needs tables.mbuf_size of at least 512"));
  CHECK(load("tables = { mbuf_size = 256; };\n" + checked(udp, "{ type = \"icmp\"; }")).mbuf_data_size == 256);
}

TEST_CASE("config: a port's own mbuf count", "[config]") {
  CHECK_FALSE(load(kBase).ports[0].mbufs.has_value());
  const Config c = load(with("    device = \"net_null0\";\n", "    device = \"net_null0\"; mbufs = 4095;\n"));
  CHECK(c.ports[0].mbufs == 4095u);
  CHECK_THROWS_WITH(load(with("    device = \"net_null0\";\n", "    device = \"net_null0\"; mbufs = 5;\n")),
                    Contains("ports.[0].mbufs: 5 is out of range 1023..16777216"));
}

TEST_CASE("config: integers are read as written, whatever their size, base or suffix", "[config][integers]") {
  // Debian's libconfig 1.5 keeps the low 32 bits of these: 4294967296 would read as 0,
  // 4294967297 as 1, and pass every range check.
  const std::string weight = "test.cfg:27: services.[0].backends.[0].weight: ";
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 4294967296;")), weight + "4294967296 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 4294967297;")), weight + "4294967297 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 0x100000000;")), weight + "4294967296 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 0xFFFFFFFF;")), weight + "4294967295 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 0x100000001L;")), weight + "4294967297 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 99999999999999999999;")),
                    weight + "99999999999999999999 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 99999999999999999999L;")),
                    weight + "99999999999999999999L is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 0x1FFFFFFFFFFFFFFFF;")),
                    weight + "0x1FFFFFFFFFFFFFFFF is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = -4294967295;")), weight + "-4294967295 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = -9223372036854775808;")),
                    weight + "-9223372036854775808 is out of range 0..65535");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 1e3;")), weight + "expected an integer");
  CHECK_THROWS_WITH(load(with("weight = 2;", "weight = 2.0;")), weight + "expected an integer");

  CHECK_THROWS_WITH(load("workers = 4294967297;\n" + kBase), "test.cfg:1: workers: 4294967297 is out of range 1..64");
  CHECK_THROWS_WITH(load("workers = -4294967295;\n" + kBase), "test.cfg:1: workers: -4294967295 is out of range 1..64");
  CHECK_THROWS_WITH(load(with("port = 80;", "port = 4294967376;")),  // 2^32 + 80
                    "test.cfg:24: services.[0].port: 4294967376 is out of range 1..65535");
  CHECK_THROWS_WITH(load("tables = {\n  maglev_size = 4295032833;\n};\n" + kBase),  // 2^32 + 65537
                    "test.cfg:2: tables.maglev_size: 4295032833 is out of range 101..16777213");
  CHECK_THROWS_WITH(load(kBase + "neighbours = { attempts = 4294967299; };\n"),
                    "test.cfg:32: neighbours.attempts: 4294967299 is out of range 1..100");

  // In range, any spelling libconfig has is its value.
  CHECK(load(with("weight = 2;", "weight = 0x10;")).services[0].backends[0].weight == 16);
  CHECK(load(with("weight = 2;", "weight = 0x10L;")).services[0].backends[0].weight == 16);
  CHECK(load(with("weight = 2;", "weight = +5;")).services[0].backends[0].weight == 5);
  CHECK(load(with("weight = 2;", "weight = -0;")).services[0].backends[0].weight == 0);
  CHECK(load(with("weight = 2;", "weight = 007;")).services[0].backends[0].weight == 7);  // libconfig: decimal
  CHECK(load("workers = 3LL;\n" + kBase).workers == 3);

  SECTION("several integers on a line, among comments, strings and floats") {
    const std::string text =
        "# 4294967296 in a comment\n"
        "/* 4294967297\n 0x100000000 */ workers = 2; // 4294967296\n"
        "eal = [\"-m\", \"4294967296\", \"--file-prefix\", \"1e3\\\"5\"];\n" +
        with("{ name = \"b1\"; weight = 2; }", "{ name = \"b1\"; weight = 3; }, { name = \"b9\"; weight = 4294967296; }",
             with("  },\n  {\n    name = \"b2\";",
                  "  },\n  { name = \"b9\"; address = \"10.0.0.9\"; mac = \"02:00:00:00:00:19\"; },\n  {\n    name = \"b2\";"));
    CHECK_THROWS_WITH(load(text), Contains("services.[0].backends.[1].weight: 4294967296 is out of range 0..65535"));
    const Config c = load(with("weight = 4294967296;", "weight = 4;", text));
    CHECK(c.workers == 2);
    CHECK(c.services[0].backends[0].weight == 3);
    CHECK(c.services[0].backends[1].weight == 4);
  }
  SECTION("passive port ranges") {
    const std::string ftp = with("    protocol = \"tcp\";\n", "    protocol = \"tcp\";\n    dpi = \"ftp\";\n");
    const Config c = load(with("{ name = \"b2\"; }", "{ name = \"b2\"; passive_ports = [30000, 0x7595]; }", ftp));
    CHECK(c.services[0].backends[1].passive_first == 30000);
    CHECK(c.services[0].backends[1].passive_last == 30101);
    CHECK_THROWS_WITH(load(with("{ name = \"b2\"; }", "{ name = \"b2\"; passive_ports = [4294968320, 4294968330]; }", ftp)),
                      "test.cfg:29: services.[0].backends.[1].passive_ports.[0]: 4294968320 is out of range 1024..65535");
    CHECK_THROWS_WITH(load(with("{ name = \"b2\"; }", "{ name = \"b2\"; passive_ports = [30000, 4294997296]; }", ftp)),
                      "test.cfg:29: services.[0].backends.[1].passive_ports.[1]: 4294997296 is out of range 1024..65535");
    CHECK_THROWS_WITH(load(with("{ name = \"b2\"; }", "{ name = \"b2\"; passive_ports = ( 30000, 3e4 ); }", ftp)),
                      "test.cfg:29: services.[0].backends.[1].passive_ports.[1]: expected an integer");
  }
  SECTION("a file, and a file it includes") {
    char dir[] = "/tmp/tether-include-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    const std::string included = std::string(dir) + "/tables.cfg";
    const std::string main_file = std::string(dir) + "/main.cfg";
    {
      std::ofstream out(included);
      out << "tables = {\n  flows_per_worker = 4294968320;\n};\n";  // 2^32 + 1024
    }
    {
      std::ofstream out(main_file);
      out << "workers = 2;\n@include \"" << included << "\"\n" << with("weight = 2;", "weight = 5;");
    }
    CHECK_THROWS_WITH(load_config_file(main_file),
                      included + ":2: tables.flows_per_worker: 4294968320 is out of range 1024..134217728");
    {
      std::ofstream out(included);
      out << "tables = {\n  flows_per_worker = 0x800;\n};\n";
    }
    const Config c = load_config_file(main_file);
    CHECK(c.flows_per_worker == 2048);
    CHECK(c.services[0].backends[0].weight == 5);
    {
      std::ofstream out(main_file);
      out << with("weight = 2;", "weight = 4294967298;");
    }
    CHECK_THROWS_WITH(load_config_file(main_file),
                      main_file + ":27: services.[0].backends.[0].weight: 4294967298 is out of range 0..65535");
    std::remove(included.c_str());
    std::remove(main_file.c_str());
    rmdir(dir);
  }
}

TEST_CASE("config: meaningless VIPs are refused", "[config][addresses]") {
  for (const char* vip : {"0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "239.255.255.250", "240.0.0.1",
                          "127.0.0.1", "169.254.1.1", "::", "::1", "ff02::1", "ff05::2", "fe80::1"}) {
    INFO(vip);
    CHECK_THROWS_WITH(load(with("192.0.2.100", vip)),
                      Catch::StartsWith("test.cfg:23: services.[0].vip: VIP " + tether::format_ip(ip(vip)) + " is "));
  }
  CHECK_THROWS_WITH(load(with("192.0.2.100", "224.0.0.1")), Contains("is multicast (224.0.0.0/4)"));
  CHECK_THROWS_WITH(load(with("192.0.2.100", "255.255.255.255")), Contains("is the broadcast address"));
  CHECK_THROWS_WITH(load(with("192.0.2.100", "::")), Contains("is unspecified (::)"));
  // A VIP must not be a port's or a backend's own address.
  CHECK_THROWS_WITH(load(with("192.0.2.100", "10.0.0.1")),
                    "test.cfg:23: services.[0].vip: VIP 10.0.0.1 is backend 'b1''s address");
  CHECK_THROWS_WITH(load(with("192.0.2.100", "::ffff:10.0.0.1")),
                    "test.cfg:23: services.[0].vip: VIP 10.0.0.1 is backend 'b1''s address");
  CHECK_THROWS_WITH(load(with("    device = \"net_null0\";\n", "    device = \"net_null0\"; addresses = [\"192.0.2.100\"];\n")),
                    "test.cfg:23: services.[0].vip: VIP 192.0.2.100 is port 'lan0''s own address");
  // Ordinary unicast VIPs, IPv4 and IPv6, private or global.
  for (const char* vip : {"10.1.2.3", "198.51.100.7", "2001:db8::100", "fd00::100", "100.64.0.1"})
    CHECK(load(with("192.0.2.100", vip)).services[0].vip == ip(vip));
}

TEST_CASE("config: meaningless backend and port addresses are refused", "[config][addresses]") {
  for (const char* address : {"0.0.0.0", "255.255.255.255", "224.0.0.5", "127.0.0.1", "240.1.1.1"}) {
    INFO(address);
    CHECK_THROWS_WITH(load(with("\"10.0.0.1\"", std::string("\"") + address + "\"")),
                      Catch::StartsWith("test.cfg:11: backends.[0].address: backend address " + std::string(address) + " is "));
  }
  for (const char* address : {"::", "::1", "ff02::1"}) {
    INFO(address);
    CHECK_THROWS_WITH(load(with("2001:db8::2", address)),
                      Catch::StartsWith("test.cfg:16: backends.[1].address: backend address " + std::string(address) + " is "));
  }
  // A backend on the port's link may have a link-local address: ND and DSR work on-link.
  CHECK(load(with("2001:db8::2", "fe80::2")).backends[1].address == ip("fe80::2"));
  CHECK_THROWS_WITH(load(with("    device = \"net_null0\";\n", "    device = \"net_null0\"; addresses = [\"10.0.0.1\"];\n")),
                    "test.cfg:11: backends.[0].address: backend address 10.0.0.1 is port 'lan0''s own");

  const std::string addresses = "    device = \"net_null0\";\n";
  for (const char* address : {"0.0.0.0", "255.255.255.255", "239.1.1.1", "127.0.0.2", "::", "ff02::1", "::1"}) {
    INFO(address);
    CHECK_THROWS_WITH(load(with(addresses, addresses + "    addresses = [\"192.0.2.1\", \"" + address + "\"];\n")),
                      Catch::StartsWith("test.cfg:6: ports.[0].addresses.[1]: " + tether::format_ip(ip(address)) + " is "));
  }
  SECTION("duplicate port addresses, within a port and across ports") {
    CHECK_THROWS_WITH(load(with(addresses, addresses + "    addresses = [\"192.0.2.1\", \"2001:db8::1\", \"::ffff:192.0.2.1\"];\n")),
                      "test.cfg:6: ports.[0].addresses.[2]: 192.0.2.1 is listed twice");
    const std::string two_ports =
        with("  }\n);\nbackends",
             "    addresses = [\"192.0.2.1\"];\n  },\n  { name = \"lan1\"; device = \"net_null1\"; addresses = [\"2001:db8::1\", \"192.0.2.1\"]; }\n);\nbackends");
    CHECK_THROWS_WITH(load(two_ports), "test.cfg:8: ports.[1].addresses.[1]: 192.0.2.1 is port 'lan0''s address too");
  }
}

TEST_CASE("config: meaningless MACs are refused", "[config][addresses]") {
  for (const char* bad : {"ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "01:00:5e:00:00:01", "33:33:00:00:00:01", "03:00:00:00:00:11"}) {
    INFO(bad);
    CHECK_THROWS_WITH(load(with("02:00:00:00:00:11", bad)),
                      Catch::StartsWith(std::string("test.cfg:12: backends.[0].mac: backend MAC ") + bad + " is "));
    CHECK_THROWS_WITH(load(with("    device = \"net_null0\";\n", std::string("    device = \"net_null0\";\n    mac = \"") + bad + "\";\n")),
                      Catch::StartsWith(std::string("test.cfg:6: ports.[0].mac: ") + bad + " is "));
  }
  CHECK_THROWS_WITH(load(with("02:00:00:00:00:11", "ff:ff:ff:ff:ff:ff")), Contains("is the broadcast MAC"));
  CHECK_THROWS_WITH(load(with("02:00:00:00:00:11", "00:00:00:00:00:00")), Contains("is all zeros"));
  CHECK_THROWS_WITH(load(with("    device = \"net_null0\";\n", "    device = \"net_null0\";\n    mac = \"02:00:00:00:00:12\";\n")),
                    "test.cfg:18: backends.[1].mac: backend MAC 02:00:00:00:00:12 is port 'lan0''s own");
  CHECK(load(with("02:00:00:00:00:11", "00:1b:21:0a:0b:0c")).backends[0].mac == mac("00:1b:21:0a:0b:0c"));
}

TEST_CASE("config: a service or pool with every weight 0 is refused", "[config][weights]") {
  CHECK_THROWS_WITH(load(with("{ name = \"b2\"; }", "{ name = \"b2\"; weight = 0; }", with("weight = 2;", "weight = 0;"))),
                    "test.cfg:26: services.[0].backends: every backend has weight 0: nowhere to send");
  CHECK_THROWS_WITH(load(with("      { name = \"b2\"; }\n", "", with("weight = 2; },", "weight = 0; }"))),
                    "test.cfg:26: services.[0].backends: its only backend has weight 0: nowhere to send");
  CHECK(load(with("weight = 2;", "weight = 0;")).services[0].backends[0].weight == 0);  // b2 still takes flows
  const std::string pool = with("    protocol = \"tcp\";\n",
                                "    protocol = \"udp\";\n    dpi = \"sip\";\n"
                                "    pools = ( { name = \"p\";\n      backends = ( { name = \"b1\"; weight = 0; } ); } );\n");
  CHECK_THROWS_WITH(load(pool), "test.cfg:28: services.[0].pools.[0].backends: its only backend has weight 0: nowhere to send");
  CHECK(load(with("weight = 0; }", "weight = 1; }", pool)).services[0].pools[0].backends[0].weight == 1);
}

TEST_CASE("validate: the rules over a whole configuration, as commands change it", "[config][addresses]") {
  Config c = load(kBase);
  CHECK_NOTHROW(tether::validate(c));
  SECTION("a backend added with a meaningless address or MAC, or a VIP's") {
    c.backends.push_back({"b3", ip("224.0.0.9"), mac("02:00:00:00:00:13"), 0});
    CHECK_THROWS_WITH(tether::validate(c), "backend 'b3': backend address 224.0.0.9 is multicast (224.0.0.0/4)");
    c.backends.back().address = ip("192.0.2.100");
    CHECK_THROWS_WITH(tether::validate(c), "backend 'b3': backend address 192.0.2.100 is the VIP of service 'web'");
    c.backends.back().address = ip("10.0.0.3");
    c.backends.back().mac = mac("01:00:5e:00:00:09");
    CHECK_THROWS_WITH(tether::validate(c), "backend 'b3': backend MAC 01:00:5e:00:00:09 is a multicast MAC (group bit set)");
    c.backends.back().mac.reset();
    CHECK_THROWS_WITH(tether::validate(c), Contains("backend 'b3' needs 'mac', or an IPv4 address on port 'lan0'"));
    c.backends.back().removed = true;  // gone: no longer judged
    CHECK_NOTHROW(tether::validate(c));
  }
  SECTION("a service's weights all set to 0") {
    for (auto& member : c.services[0].backends) member.weight = 0;
    CHECK_THROWS_WITH(tether::validate(c), "service 'web': every backend has weight 0: nowhere to send");
    c.services[0].removed = true;
    CHECK_NOTHROW(tether::validate(c));
  }
  SECTION("more backends than the Maglev table holds") {
    for (std::size_t b = 2; b < 655; ++b) {
      const std::string name = "x" + std::to_string(b);
      c.backends.push_back({name, ip(("10.1." + std::to_string(b / 250) + "." + std::to_string(b % 250 + 1)).c_str()),
                            mac("02:00:00:00:00:13"), 0});
      c.services[0].backends.push_back({b, 1});
    }
    CHECK_NOTHROW(tether::validate(c));  // 655 backends: 65500 slots
    c.backends.push_back({"x655", ip("10.1.9.9"), mac("02:00:00:00:00:13"), 0});
    c.services[0].backends.push_back({655, 1});
    CHECK_THROWS_WITH(tether::validate(c), "service 'web': tables.maglev_size 65537 is below 100 x the service's 656 backends");
  }
}

TEST_CASE("parse_weight: plain decimal digits from 0 to 65535", "[config][weights]") {
  using tether::parse_weight;
  CHECK(parse_weight("0") == 0u);
  CHECK(parse_weight("5") == 5u);
  CHECK(parse_weight("65535") == 65535u);
  CHECK(parse_weight("00005") == 5u);
  for (const char* bad : {"", "+5", "5x", " 5", "5 ", "-0", "-1", "0x5", "65536", "99999", "000005",
                          "4294967301", "99999999999999999999", "5.0", "1e3", "\xef\xbc\x95"}) {
    INFO(bad);
    CHECK_FALSE(parse_weight(bad).has_value());
  }
}

TEST_CASE("eal_problem: what DPDK 22.11 would refuse only at start, and what fights tetherd's own", "[config][eal]") {
  const Config c = load("workers = 2;\n" + kBase);  // port lan0 is net_null0: 3 lcores needed
  const auto problem = [&](std::vector<std::string> args) {
    const auto found = tether::eal_problem(args, c);
    return found ? std::to_string(found->index) + ": " + found->message : std::string();
  };
  // Accepted: the spellings getopt_long takes.
  for (const auto& ok : std::vector<std::vector<std::string>>{
           {}, {"--no-huge", "--no-shconf", "--no-pci", "-m", "512", "--log-level=lib.*:error"},
           {"--in-memory"}, {"-m512"}, {"-vm", "512"}, {"--file-prefix", "x"}, {"--file=x"},
           {"-l", "0-2"}, {"-l0,1,2"}, {"-c", "0x7"}, {"-c", "f"}, {"--lcores=(0-2)@(0-1)"},
           {"--lcores", "0@0,1@1,2@1"}, {"--lcores=0,(1-2)@1"}, {"--huge-unlink"}, {"--huge-unlink=never"},
           {"--vdev", "net_tap0"}, {"-a", "0000:05:00.0"}, {"-b", "0000:05:00.0"}, {"--main-lcore", "1"},
           {"-l", "0-3", "-S", "3"}, {"--proc-type=primary"}, {"-d", "/usr/lib/dpdk"}}) {
    INFO(Catch::Detail::stringify(ok));
    CHECK(problem(ok).empty());
  }
  CHECK(problem({"--no-huge", "--bogus"}) == "1: unknown EAL option '--bogus'");
  CHECK(problem({"--bogus=1"}) == "0: unknown EAL option '--bogus'");
  CHECK(problem({"-x"}) == "0: unknown EAL option '-x'");
  CHECK(problem({"-vx"}) == "0: unknown EAL option '-x'");
  CHECK(problem({"--huge", "/mnt"}) == "0: EAL option '--huge' is ambiguous (--huge-dir, --huge-unlink, --huge-worker-stack)");
  CHECK(problem({"--no-huge", "-m"}) == "1: EAL option '-m' needs a value");
  CHECK(problem({"--file-prefix"}) == "0: EAL option '--file-prefix' needs a value");
  CHECK(problem({"--no-huge=yes"}) == "0: EAL option '--no-huge' takes no value");
  CHECK_THAT(problem({"--no-huge", "512"}), Catch::StartsWith("1: '512' is not an option: DPDK would leave it unread"));
  CHECK_THAT(problem({"--huge-unlink", "never"}), Catch::StartsWith("1: 'never' is not an option"));
  CHECK_THAT(problem({"--", "-m", "512"}), Catch::StartsWith("0: '--' ends the EAL's options"));
  CHECK(problem({"--vdev", "net_null0"}) ==
        "0: --vdev net_null0: port 'lan0' is this device; tetherd adds it to the EAL arguments itself");
  CHECK_THAT(problem({"--vdev=net_null0,size=64"}), Catch::StartsWith("0: --vdev net_null0: port 'lan0' is this device"));
  CHECK_THAT(problem({"-b", "net_null0"}), Catch::StartsWith("0: -b net_null0: port 'lan0' is this device"));
  CHECK(problem({"-a", "0000:05:00.0", "-b", "0000:06:00.0"}) == "2: -b/--block cannot be used together with -a/--allow");
  CHECK(problem({"-h"}) == "0: -h: DPDK would print its usage and exit");
  CHECK(problem({"--help"}) == "0: -h: DPDK would print its usage and exit");
  CHECK(problem({"--proc-type", "auto"}) == "0: --proc-type auto: tetherd runs as the primary process");
  CHECK(problem({"-l", "0-1"}) == "0: -l 0-1 gives 2 lcore(s); tetherd needs 3 (the control thread and 2 worker(s))");
  CHECK(problem({"-c", "0x5"}) == "0: -c 0x5 gives 2 lcore(s); tetherd needs 3 (the control thread and 2 worker(s))");
  CHECK(problem({"--lcores=(0-1)@0"}) ==
        "0: --lcores (0-1)@0 gives 2 lcore(s); tetherd needs 3 (the control thread and 2 worker(s))");
  CHECK(problem({"-l", "0-2", "-S", "2"}) ==
        "0: -l 0-2 gives 2 lcore(s) besides service cores; tetherd needs 3 (the control thread and 2 worker(s))");
  CHECK(problem({"-S", "2"}) ==
        "0: tetherd's -l 0-2 gives 2 lcore(s) besides service cores; tetherd needs 3 (the control thread and 2 worker(s))");
  CHECK(problem({"-l", "0-2", "--lcores=0-2"}) == "2: --lcores after -l: give one of -c, -l and --lcores (DPDK ignores all but the first)");
  CHECK(problem({"-l", "2-0"}) == "0: -l 2-0: not a valid lcore list");
  CHECK(problem({"-l", "a"}) == "0: -l a: not a valid lcore list");
  CHECK(problem({"-c", "0xg"}) == "0: -c 0xg: not a valid lcore mask");
  CHECK(problem({"--lcores=(0-2"}) == "0: --lcores (0-2: not a valid lcore list");
  CHECK(problem({"--main-lcore", "5"}) == "0: --main-lcore 5 is not among the lcores of tetherd's -l 0-2");
  CHECK(problem({"-l", "1-3", "--main-lcore=0"}) == "2: --main-lcore 0 is not among the lcores of -l 1-3");

  CHECK(tether::eal_sets_lcores({"-l0-2"}));
  CHECK(tether::eal_sets_lcores({"-c", "7"}));
  CHECK(tether::eal_sets_lcores({"--lc=0-2"}));
  CHECK(tether::eal_sets_lcores({"-vc7"}));
  CHECK_FALSE(tether::eal_sets_lcores({"--log-level=lib.*:error", "--no-huge"}));

  SECTION("the file's list: an error with its line") {
    CHECK_THROWS_WITH(load("eal = [\"--no-huge\",\n       \"--no-such-option\"];\n" + kBase),
                      "test.cfg:2: eal.[1]: unknown EAL option '--no-such-option'");
    CHECK_THROWS_WITH(load("eal = [\"--no-huge\", \"-m\"];\n" + kBase), "test.cfg:1: eal.[1]: EAL option '-m' needs a value");
  }
}

TEST_CASE("validate: a running tetherd's device MACs stand in for ports without `mac`", "[config][addresses]") {
  const Config c = load(kBase);  // lan0 has no configured mac
  CHECK_NOTHROW(tether::validate(c, {mac("02:00:00:00:00:99")}));
  CHECK_THROWS_WITH(tether::validate(c, {mac("02:00:00:00:00:12")}),
                    "backend 'b2': backend MAC 02:00:00:00:00:12 is port 'lan0''s own");
  // A configured mac is what the port uses: the device's does not matter.
  const Config configured = load(with("    device = \"net_null0\";\n", "    device = \"net_null0\";\n    mac = \"02:00:00:00:00:01\";\n"));
  CHECK_NOTHROW(tether::validate(configured, {mac("02:00:00:00:00:12")}));
}

TEST_CASE("config: a port's kernel interface and its addresses' prefix lengths", "[config]") {
  const std::string port = "    device = \"net_null0\";\n";
  const auto kernel = [&](const std::string& settings) {
    return with(port, "    device = \"net_null0\";\n    addresses = [\"192.0.2.1/24\", \"2001:db8::1\"]; kernel = { " +
                          settings + " };\n");
  };
  const Config c = load(kernel("name = \"lan0\";"));
  REQUIRE(c.ports[0].kernel.has_value());
  CHECK(c.ports[0].kernel->name == "lan0");
  CHECK(c.ports[0].kernel->rate == 20000);
  CHECK(c.ports[0].kernel->burst == 512);
  CHECK(c.ports[0].kernel->driver == tether::KernelDriver::tap);
  CHECK(c.ports[0].addresses == std::vector<tether::IpBytes>{ip("192.0.2.1"), ip("2001:db8::1")});
  CHECK(c.ports[0].prefix_lengths == std::vector<std::uint8_t>{24, 128});
  CHECK(tether::prefix_length(c.ports[0], 1) == 128);
  CHECK_FALSE(load(kBase).ports[0].kernel.has_value());

  const Config tuned = load(kernel("name = \"x.y-z_0\"; driver = \"virtio-user\"; rate = 100; burst = 1;"));
  CHECK(tuned.ports[0].kernel->driver == tether::KernelDriver::virtio_user);
  CHECK_THROWS_WITH(load(kernel("name = \"lan0\"; driver = \"kni\";")), Contains("'kni' is not one of: tap, virtio-user"));
  CHECK(tuned.ports[0].kernel->rate == 100);
  CHECK(tuned.ports[0].kernel->burst == 1);

  CHECK_THROWS_WITH(load(kernel("name = \"sixteen-letters0\";")),
                    Contains("kernel interface name 'sixteen-letters0' must be 1 to 15"));
  CHECK_THROWS_WITH(load(kernel("name = \"a/b\";")), Contains("must be 1 to 15 letters"));
  CHECK_THROWS_WITH(load(kernel("name = \"\";")), Contains("must be 1 to 15 letters"));
  CHECK_THROWS_WITH(load(kernel("name = \"lan0\"; rate = 0;")), Contains("0 is out of range 1..10000000"));
  CHECK_THROWS_WITH(load(kernel("name = \"lan0\"; burst = 0;")), Contains("0 is out of range 1..1000000"));
  CHECK_THROWS_WITH(load(kernel("rate = 5;")), Contains("missing required setting 'name'"));
  CHECK_THROWS_WITH(load(kernel("name = \"lan0\"; mtu = 9000;")), Contains("unknown setting"));
  for (const char* bad : {"192.0.2.1/33", "192.0.2.1/0", "192.0.2.1/", "192.0.2.1/2x", "2001:db8::1/129",
                          "192.0.2.1/0024"}) {
    INFO(bad);
    CHECK_THROWS_WITH(load(with(port, std::string("    device = \"net_null0\";\n    addresses = [\"") + bad + "\"];\n")),
                      Contains("the prefix length must be"));
  }
  CHECK_THROWS_WITH(load(with(port, "    device = \"net_null0\";\n    addresses = [\"192.0.2.x/24\"];\n")),
                    Contains("'192.0.2.x' is not an IPv4 or IPv6 address"));

  // Two ports cannot share one interface name, and a change to it needs a restart.
  const std::string two_ports = with("  }\n);\nbackends", "  },\n  { name = \"lan1\"; device = \"net_null1\"; kernel = { name = \"lan0\"; }; }\n);\nbackends",
                                     kernel("name = \"lan0\";"));
  CHECK_THROWS_WITH(load(with("    address = \"10.0.0.1\";\n", "    address = \"10.0.0.1\"; port = \"lan0\";\n",
                              with("    address = \"2001:db8::2\";\n", "    address = \"2001:db8::2\"; port = \"lan0\";\n", two_ports))),
                    Contains("kernel interface 'lan0' is port 'lan0''s too"));
  CHECK_THROWS_WITH(tether::merge_running(c, load(kernel("name = \"lan9\";"))),
                    "ports changed: restart tetherd to apply it");
}

TEST_CASE("config: state sync, its key file and its peers", "[config][sync]") {
  char folder_template[] = "/tmp/tether-sync-config-XXXXXX";
  REQUIRE(mkdtemp(folder_template) != nullptr);
  const std::string folder = folder_template;
  const auto key_file = [&](const std::string& name, const std::string& text, unsigned mode = 0600) {
    const std::string path = folder + "/" + name;
    std::ofstream(path) << text;
    REQUIRE(chmod(path.c_str(), mode) == 0);
    return path;
  };
  const std::string hex32 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  const std::string good_key = key_file("good.key", hex32 + "\n");
  const std::string port = "    device = \"net_null0\";\n";
  const std::string with_kernel =
      with(port, "    device = \"net_null0\";\n    addresses = [\"192.0.2.1/24\", \"2001:db8::1\"]; kernel = { name = \"lan0\"; };\n");
  const auto sync = [&](const std::string& settings, const std::string& base = std::string()) {
    return (base.empty() ? with_kernel : base) + "sync = { " + settings + " };\n";
  };
  const std::string key = "key_file = \"" + good_key + "\";";

  const Config c = load(sync("port = \"lan0\"; " + key + " peers = [\"192.0.2.3\", \"198.18.0.3\"];"));
  REQUIRE(c.sync.has_value());
  CHECK(c.sync->port == 0);
  CHECK(c.sync->listen_port == 7788);
  CHECK(c.sync->key.size() == 32);
  CHECK(c.sync->key[1] == 0x11);
  CHECK(c.sync->key[15] == 0xff);
  CHECK(c.sync->peers == std::vector<tether::IpBytes>{ip("192.0.2.3"), ip("198.18.0.3")});
  CHECK(c.sync->instance == "192.0.2.1");  // the port's first address
  CHECK(c.sync->sender_id == tether::sync_sender_id("192.0.2.1"));
  CHECK_FALSE(load(with_kernel).sync.has_value());
  const Config named = load(sync("port = \"lan0\"; listen_port = 9000; " + key +
                                 " peers = [\"192.0.2.3\"]; instance = \"lb-a\";"));
  CHECK(named.sync->listen_port == 9000);
  CHECK(named.sync->instance == "lb-a");
  CHECK(named.sync->sender_id == tether::sync_sender_id("lb-a"));
  CHECK(tether::sync_sender_id("lb-a") != tether::sync_sender_id("lb-b"));
  CHECK_THAT(tether::describe(c), Contains("state sync: UDP 192.0.2.1:7788 on lan0"));
  // Upper case and white space around the digits are fine; 16 and 64 bytes are the limits.
  CHECK(load(sync("port = \"lan0\"; key_file = \"" + key_file("upper.key", "  " + std::string(32, 'A') + "\r\n") +
                  "\"; peers = [\"192.0.2.3\"];")).sync->key.size() == 16);
  CHECK(load(sync("port = \"lan0\"; key_file = \"" + key_file("long.key", std::string(128, 'a')) +
                  "\"; peers = [\"192.0.2.3\"];")).sync->key.size() == 64);

  const auto refused = [&](const std::string& settings, const std::string& message,
                           const std::string& base = std::string()) {
    INFO(settings);
    CHECK_THROWS_WITH(load(sync(settings, base)), Contains(message));
  };
  const std::string peers = " peers = [\"192.0.2.3\"];";
  refused("port = \"lan9\"; " + key + peers, "no port named 'lan9'");
  refused("port = \"lan0\"; " + key + peers, "port 'lan0' has no kernel interface", kBase);
  refused("port = \"lan0\"; " + key + peers, "port 'lan0' has no address",
          with(port, "    device = \"net_null0\";\n    kernel = { name = \"lan0\"; };\n"));
  refused(key + peers, "missing required setting 'port'");
  refused("port = \"lan0\";" + peers, "missing required setting 'key_file'");
  refused("port = \"lan0\"; " + key, "missing required setting 'peers'");
  refused("port = \"lan0\"; " + key + " peers = [];", "at least one peer is required");
  refused("port = \"lan0\"; " + key + " listen_port = 0;" + peers, "0 is out of range 1..65535");
  refused("port = \"lan0\"; " + key + peers + " colour = 1;", "unknown setting");
  refused("port = \"lan0\"; " + key + peers + " instance = \"\";", "instance is empty");
  refused("port = \"lan0\"; key_file = \"\";" + peers, "key_file is empty");
  refused("port = \"lan0\"; key_file = \"" + folder + "/none.key\";" + peers, "cannot read key file");
  refused("port = \"lan0\"; key_file = \"" + folder + "\";" + peers, "not a regular file");
  refused("port = \"lan0\"; key_file = \"" + key_file("open.key", hex32, 0640) + "\";" + peers,
          "is open to group or others");
  refused("port = \"lan0\"; key_file = \"" + key_file("world.key", hex32, 0604) + "\";" + peers,
          "is open to group or others");
  refused("port = \"lan0\"; key_file = \"" + key_file("short.key", std::string(30, 'a')) + "\";" + peers,
          "the key is 15 bytes; 16 to 64 (32 to 128 hex digits) expected");
  refused("port = \"lan0\"; key_file = \"" + key_file("toolong.key", std::string(130, 'a')) + "\";" + peers,
          "the key is 65 bytes");
  refused("port = \"lan0\"; key_file = \"" + key_file("empty.key", "\n") + "\";" + peers, "the key is 0 bytes");
  refused("port = \"lan0\"; key_file = \"" + key_file("odd.key", std::string(33, 'a')) + "\";" + peers,
          "hex digits only");
  refused("port = \"lan0\"; key_file = \"" + key_file("raw.key", "this is not hex, it is a passphrase") + "\";" + peers,
          "hex digits only");
  refused("port = \"lan0\"; " + key + " peers = [\"192.0.2.x\"];", "'192.0.2.x' is not an IPv4 or IPv6 address");
  refused("port = \"lan0\"; " + key + " peers = [\"224.0.0.18\"];", "peer 224.0.0.18 is multicast");
  refused("port = \"lan0\"; " + key + " peers = [\"2001:db8::3\"];",
          "peer 2001:db8::3 is not of the family of 192.0.2.1");
  refused("port = \"lan0\"; " + key + " peers = [\"192.0.2.1\"];", "peer 192.0.2.1 is port 'lan0''s own address");
  refused("port = \"lan0\"; " + key + " peers = [\"192.0.2.3\", \"192.0.2.3\"];", "peer 192.0.2.3 is listed twice");
  // The message names the line of the setting to blame.
  CHECK_THROWS_WITH(load(sync("port = \"lan0\"; " + key + " peers = [\"192.0.2.3\", \"192.0.2.3\"];")),
                    Contains("test.cfg:33: sync.peers.[1]: peer 192.0.2.3 is listed twice"));
  // The key never appears in a message.
  try {
    load(sync("port = \"lan0\"; key_file = \"" + key_file("leak.key", hex32 + "zz") + "\";" + peers));
    FAIL("a key with a non-hex digit loaded");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find(hex32) == std::string::npos);
  }

  // A change needs a restart, the key's included.
  const std::string other_key = key_file("other.key", std::string(64, 'b'));
  CHECK_NOTHROW(tether::merge_running(c, c));
  CHECK_THROWS_WITH(tether::merge_running(c, load(sync("port = \"lan0\"; key_file = \"" + other_key +
                                                       "\"; peers = [\"192.0.2.3\", \"198.18.0.3\"];"))),
                    "sync changed: restart tetherd to apply it");
  CHECK_THROWS_WITH(tether::merge_running(c, load(with_kernel)), "sync changed: restart tetherd to apply it");
  std::filesystem::remove_all(folder);
}
