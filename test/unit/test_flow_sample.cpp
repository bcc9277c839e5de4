// FlowTable::walk and FlowSampleMailbox (dataplane/flow_sample.hpp): bounded slices, the
// persistent cursor, filters, limits, the deadline, and the handshake that keeps a late
// answer away from a buffer the control thread reads.
#include <catch2/catch.hpp>

#include <rte_memory.h>

#include <algorithm>
#include <set>
#include <string>
#include <tuple>

#include "dataplane/flow_sample.hpp"

using tether::dataplane::FlowEntry;
using tether::dataplane::FlowKey;
using tether::dataplane::FlowSampleMailbox;
using tether::dataplane::FlowSampleRequest;
using tether::dataplane::FlowTable;
using tether::dataplane::flow_signature;

namespace {

std::string unique_name() {
  static unsigned counter = 0;
  return "ut_sample_" + std::to_string(counter++);
}

FlowKey key_of(std::uint32_t i) {
  FlowKey key{};
  const std::uint8_t client[4] = {10, 1, static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)};
  const std::uint8_t vip[4] = {192, 0, 2, 100};
  key.src = tether::parsers::ipv4_mapped(client);
  key.dst = tether::parsers::ipv4_mapped(vip);
  key.src_port = static_cast<std::uint16_t>(1024 + i);
  key.dst_port = 80;
  key.ip_proto = tether::parsers::kProtoTcp;
  return key;
}

// Flows 0..n-1 on backends i % 3 of service i % 2, live until `deadline`.
void fill(FlowTable& table, std::uint32_t n, std::uint64_t deadline) {
  for (std::uint32_t i = 0; i < n; ++i) {
    const FlowKey key = key_of(i);
    const FlowEntry entry{deadline, static_cast<std::uint16_t>(i % 3), static_cast<std::uint16_t>(i % 2), 0, 0, 0, 0};
    REQUIRE(table.insert(key, flow_signature(key), entry) >= 0);
  }
}

// Serves until answered; returns the worker loops it took.
unsigned serve_until_answered(FlowSampleMailbox& mailbox, FlowTable& table, std::uint64_t generation,
                              std::uint64_t now) {
  unsigned loops = 0;
  while (!mailbox.answered(generation)) {
    REQUIRE(mailbox.asked());
    mailbox.serve(table, now);
    REQUIRE(++loops <= table.slot_count());
  }
  CHECK_FALSE(mailbox.asked());
  return loops;
}

std::set<std::uint16_t> ports_of(const FlowSampleMailbox& mailbox) {
  std::set<std::uint16_t> ports;
  for (const auto& sample : mailbox.samples()) ports.insert(sample.key.src_port);
  return ports;
}

}  // namespace

TEST_CASE("flow table walk: bounded steps, live entries only, resumes where it stopped", "[sample]") {
  FlowTable table(unique_name().c_str(), 4096, SOCKET_ID_ANY);
  fill(table, 10, 1000);
  const FlowKey stale = key_of(99);
  REQUIRE(table.insert(stale, flow_signature(stale), FlowEntry{5, 0, 0, 0, 0, 0, 0}) >= 0);

  std::set<std::uint16_t> seen;
  std::uint32_t walked = 0;
  while (walked < table.slot_count()) {
    const std::uint32_t slice = std::min<std::uint32_t>(256, table.slot_count() - walked);
    const std::uint32_t step = table.walk(100, slice, [&](std::int32_t position, const FlowEntry&) {
      const FlowKey* key = table.key_at(position);
      REQUIRE(key != nullptr);
      CHECK(seen.insert(key->src_port).second);
      return true;
    });
    CHECK(step == slice);
    walked += step;
  }
  CHECK(walked == table.slot_count());
  CHECK(seen.size() == 10);  // the expired entry is not visited
  CHECK(seen.count(stale.src_port) == 0);

  // Stopping early leaves the cursor after the entry that stopped it.
  std::set<std::uint16_t> firsts;
  for (int i = 0; i < 10; ++i) {
    std::uint32_t steps = 0;
    while (steps < table.slot_count()) {
      bool stopped = false;
      steps += table.walk(100, table.slot_count(), [&](std::int32_t position, const FlowEntry&) {
        firsts.insert(table.key_at(position)->src_port);
        stopped = true;
        return false;
      });
      if (stopped) break;
    }
  }
  CHECK(firsts.size() == 10);
}

TEST_CASE("flow samples: limit, filters and slices", "[sample]") {
  FlowTable table(unique_name().c_str(), 1 << 15, SOCKET_ID_ANY);
  fill(table, 300, 1000);
  FlowSampleMailbox mailbox;
  CHECK(mailbox.idle());
  CHECK_FALSE(mailbox.asked());

  SECTION("everything, over several loops of bounded work") {
    FlowSampleRequest request;
    request.limit = 10000;
    request.deadline_tsc = ~0ULL;
    const auto generation = mailbox.ask(request);
    CHECK_FALSE(mailbox.idle());
    const unsigned loops = serve_until_answered(mailbox, table, generation, 100);
    // A loop ends after kSlotsPerLoop slots or kCopiesPerLoop copies, whichever comes first.
    const unsigned slices = (table.slot_count() + FlowSampleMailbox::kSlotsPerLoop - 1) /
                            FlowSampleMailbox::kSlotsPerLoop;
    CHECK(loops >= slices);
    CHECK(loops <= slices + 300 / FlowSampleMailbox::kCopiesPerLoop + 1);
    CHECK(mailbox.idle());
    CHECK(mailbox.walked_all());
    CHECK(mailbox.samples().size() == 300);
    CHECK(ports_of(mailbox).size() == 300);
  }
  SECTION("a limit stops the walk, and the next request continues after it") {
    FlowSampleRequest request;
    request.limit = 7;
    request.deadline_tsc = ~0ULL;
    serve_until_answered(mailbox, table, mailbox.ask(request), 100);
    CHECK_FALSE(mailbox.walked_all());
    const auto first = ports_of(mailbox);
    CHECK(first.size() == 7);
    serve_until_answered(mailbox, table, mailbox.ask(request), 100);
    const auto second = ports_of(mailbox);
    CHECK(second.size() == 7);
    for (auto port : second) CHECK(first.count(port) == 0);
  }
  SECTION("service and backend filters apply before the limit") {
    FlowSampleRequest request;
    request.limit = 10000;
    request.service = 1;
    request.backend = 2;
    request.deadline_tsc = ~0ULL;
    serve_until_answered(mailbox, table, mailbox.ask(request), 100);
    CHECK(mailbox.samples().size() == 50);  // i % 2 == 1 and i % 3 == 2: i % 6 == 5
    for (const auto& sample : mailbox.samples()) {
      CHECK(sample.service == 1);
      CHECK(sample.backend == 2);
      CHECK(sample.deadline_tsc == 1000);
      CHECK((sample.key.src_port - 1024) % 6 == 5);
    }
  }
  SECTION("past its deadline a request is answered with what was found") {
    FlowSampleRequest request;
    request.limit = 10000;
    request.deadline_tsc = 50;
    const auto generation = mailbox.ask(request);
    mailbox.serve(table, 100);  // one slice, then the deadline has passed
    CHECK(mailbox.answered(generation));
    CHECK_FALSE(mailbox.walked_all());
    CHECK(mailbox.samples().size() <= FlowSampleMailbox::kCopiesPerLoop);
  }
  SECTION("an unanswered request keeps the mailbox busy until the worker answers it") {
    FlowSampleRequest request;
    request.limit = 10000;
    request.deadline_tsc = ~0ULL;
    const auto abandoned = mailbox.ask(request);
    mailbox.serve(table, 100);
    CHECK_FALSE(mailbox.answered(abandoned));
    CHECK_FALSE(mailbox.idle());  // the control thread may not write a new request yet
    serve_until_answered(mailbox, table, abandoned, 100);
    CHECK(mailbox.idle());
    const auto next = mailbox.ask(request);
    CHECK(next == abandoned + 1);
    CHECK_FALSE(mailbox.answered(next));
    serve_until_answered(mailbox, table, next, 100);
    CHECK(mailbox.samples().size() == 300);
  }
}
