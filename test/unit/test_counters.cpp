// The counter lists and what is generated from them: enum names, the control thread's reads
// and sums, and the one list every output walks.
#include <catch2/catch.hpp>

#include <regex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "control/report.hpp"
#include "dataplane/counters.hpp"

using namespace tether;
using namespace tether::dataplane;

TEST_CASE("a counter counts, and reads whole while its worker writes", "[counters]") {
  Counter c;
  c++;
  ++c;
  c += 40;
  CHECK(c.read() == 42);
  const std::uint64_t as_value = c;
  CHECK(as_value == 42);
  c.set(7);  // a gauge: replaced, not added to
  CHECK(c.read() == 7);

  Counter shared;
  constexpr std::uint64_t kAdds = 200000;
  std::thread worker([&] {
    for (std::uint64_t i = 0; i < kAdds; ++i) shared += 3;
  });
  std::uint64_t last = 0;
  for (int i = 0; i < 10000; ++i) {
    const std::uint64_t now = shared.read();
    REQUIRE(now % 3 == 0);  // never half a store
    REQUIRE(now >= last);   // one writer: never backwards
    last = now;
  }
  worker.join();
  CHECK(shared.read() == 3 * kAdds);
}

TEST_CASE("enum names come from the lists, in order", "[counters]") {
  CHECK(std::string(to_string(DropReason::not_our_mac)) == "not_our_mac");
  CHECK(std::string(to_string(DropReason::exception_ring_full)) == "exception_ring_full");
  CHECK(std::string(to_string(SessionProtocol::rtsp)) == "rtsp");
  CHECK(std::string(to_string(Expectation::ftp_data)) == "ftp_data");
  CHECK(std::string(to_string(DpiFallback::too_many_expectations)) == "too_many_expectations");
  CHECK(std::string(to_string(DpiFallback::count_)) == "unknown");
  static_assert(to_string(DropReason::tx_queue_full)[0] == 't');  // usable at compile time
}

TEST_CASE("the control thread adds workers' counters up, every one of them", "[counters]") {
  WorkerCounters a, b;
  a.rx_packets += 5;
  b.rx_packets += 7;
  a.drops[static_cast<std::size_t>(DropReason::no_backend)]++;
  b.dpi_fallbacks[kDpiFallbackCount - 1] += 2;
  b.expectations_used[static_cast<std::size_t>(Expectation::rtp)]++;
  b.busy_cycles += 9;
  WorkerCounterValues sum;
  add_to(sum, a);
  add_to(sum, b);
  CHECK(sum.rx_packets == 12);
  CHECK(sum.drops[static_cast<std::size_t>(DropReason::no_backend)] == 1);
  CHECK(sum.dpi_fallbacks[kDpiFallbackCount - 1] == 2);
  CHECK(sum.expectations_used[static_cast<std::size_t>(Expectation::rtp)] == 1);
  CHECK(sum.busy_cycles == 9);

  // Every cell is visited once, and no member is left out (only alignment pads the struct).
  WorkerCounterValues marks;
  std::size_t cells = 0;
  for_each_pair(marks, WorkerCounters{}, [&](std::uint64_t& v, const Counter&) {
    ++v;
    ++cells;
  });
  for_each_pair(marks, WorkerCounters{}, [](std::uint64_t& v, const Counter&) { CHECK(v == 1); });
  CHECK(cells * sizeof(std::uint64_t) + 64 > sizeof(WorkerCounterValues));
}

TEST_CASE("every counter is listed once, under a well-formed Prometheus name", "[counters]") {
  Totals totals;
  totals.workers.rx_bytes = 1234;
  totals.workers.parse_errors[static_cast<std::size_t>(parsers::ParseStatus::ipv6_fragment)] = 5;
  totals.sessions.expired.expired[static_cast<std::size_t>(SessionKind::rtp_expectation)] = 6;
  const auto counters = list_counters(totals);

  std::set<std::pair<std::string, std::string>> names, samples;
  const std::regex metric_name("[a-z][a-z_]*[a-z]");
  for (const auto& c : counters) {
    INFO(c.section << " " << c.name);
    CHECK(names.emplace(c.section, c.name).second);
    const std::string family = c.metric.name;
    CHECK(std::regex_match(family, metric_name));
    const bool counter = std::string(c.metric.type) == "counter";
    CHECK((counter || std::string(c.metric.type) == "gauge"));
    CHECK(counter == family.ends_with("_total"));
    CHECK((c.metric.label == nullptr) == (c.metric.label_value == nullptr));
    const std::string label = c.metric.label ? std::string(c.metric.label) + "=" + c.metric.label_value : "";
    CHECK(samples.emplace(family, label).second);  // two counters never share a sample
  }
  const auto value_of = [&](const char* section, const char* name) {
    for (const auto& c : counters)
      if (c.section == std::string(section) && c.name == name) return c.value;
    FAIL("no counter " << section << "." << name);
    return std::uint64_t{0};
  };
  CHECK(value_of("counters", "rx_bytes") == 1234);
  CHECK(value_of("drops", "ipv6_fragment") == 5);
  CHECK(value_of("sessions", "rtp_expectations_expired") == 6);
  CHECK(names.count({"drops", "ok"}) == 0);  // the parser's ok is no drop
#define TETHER_ONE(...) +1
  constexpr std::size_t kWorkerScalarCount = 0 TETHER_WORKER_COUNTERS(TETHER_ONE);
#undef TETHER_ONE
  CHECK(names.size() == kWorkerScalarCount + 1 + 3 * kSessionProtocols + 1 + 3 * kExpectationKinds +
                           1 + kDropReasonCount + parsers::kParseStatusCount - 1 +
                           kDpiFallbackCount + 4 /* kernel path */ +
                           2 + tether::kSyncRejectReasons + 1 + tether::kSyncRecordKinds + 2 + 4 /* sync received */ +
                           1 + tether::kSyncRecordKinds + 6 /* sync sent */ +
                           3 /* ha */ + 5 /* announce */ + 3 /* metrics over HTTP */ + 6 /* memory: the flow, session and fragment tables */);
  CHECK(names.count({"ha", "ha_gratuitous_arp_sent"}) == 1);
  CHECK(names.count({"metrics", "metrics_render_timeouts"}) == 1);
  CHECK(names.count({"announce", "announce_vips_announced"}) == 1);
  CHECK(names.count({"drops", "ha_standby"}) == 1);
  CHECK(names.count({"memory", "fragment_table_bytes"}) == 1);
  CHECK(names.count({"memory", "fragment_table_entries"}) == 1);
  // Sync: rejections by reason, unknown_peer first; records applied and sent by kind.
  CHECK(names.count({"sync", "sync_rejected_unknown_peer"}) == 1);
  CHECK(names.count({"sync", "sync_rejected_bad_mac"}) == 1);
  CHECK(names.count({"sync", "sync_rejected_replayed"}) == 1);
  CHECK(names.count({"sync", "sync_rejected_ok"}) == 0);
  CHECK(names.count({"sync", "sync_applied_ftp_expectation"}) == 1);
  CHECK(names.count({"sync", "sync_applied_flow"}) == 1);
  CHECK(names.count({"sync", "sync_sent_sip_call"}) == 1);
  CHECK(names.count({"sync", "sync_backlog"}) == 1);
}
