// Live sessions per backend (dataplane/live_counts.hpp): the counts every worker adds to and
// the least-loaded choice that least-sessions and least-connections make over them; and the
// flow table's expiry, which hands back every counted connection so that its count goes.
#include <catch2/catch.hpp>

#include <rte_memory.h>

#include <array>
#include <atomic>
#include <memory>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/flow_table.hpp"
#include "dataplane/live_counts.hpp"
#include "dataplane/snapshot.hpp"

using tether::kNoBackend;
using tether::dataplane::FlowEntry;
using tether::dataplane::FlowKey;
using tether::dataplane::FlowTable;
using tether::dataplane::LiveCounts;
using tether::dataplane::PoolMember;
using tether::dataplane::flow_signature;
using tether::dataplane::least_loaded;

namespace {

std::uint16_t pick(const std::vector<PoolMember>& members, const LiveCounts& counts) {
  return least_loaded<PoolMember>(members, counts);
}

}  // namespace

TEST_CASE("live counts: add, remove, and adds from several threads at once", "[live_counts]") {
  auto counts = std::make_unique<LiveCounts>();
  counts->add(3);
  counts->add(3);
  counts->remove(3);
  CHECK(counts->at(3) == 1);
  CHECK(counts->at(4) == 0);
  // A remove seen before its add (another worker's) shows below zero for a moment.
  counts->remove(5);
  CHECK(counts->at(5) == -1);
  counts->add(5);
  CHECK(counts->at(5) == 0);

  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&counts] {
      for (int i = 0; i < 100000; ++i) {
        counts->add(7);
        if (i % 2 == 0) counts->remove(7);
      }
    });
  for (auto& thread : threads) thread.join();
  CHECK(counts->at(7) == 4 * 50000);
}

TEST_CASE("least_loaded: fewest live sessions per unit of weight", "[live_counts]") {
  auto counts = std::make_unique<LiveCounts>();
  const std::vector<PoolMember> members{{1, 1}, {2, 1}, {3, 2}};
  CHECK(pick(members, *counts) == 1);  // all empty: the first listed
  counts->add(1);
  CHECK(pick(members, *counts) == 2);
  counts->add(2);
  CHECK(pick(members, *counts) == 3);
  counts->add(3);
  CHECK(pick(members, *counts) == 3);  // 1 of weight 2 is half of 1 of weight 1
  counts->add(3);
  CHECK(pick(members, *counts) == 1);  // 1/1 = 1/1 = 2/2: the first listed
  // Placing each new session where least_loaded says keeps count/weight equal within one
  // session (a backend takes the next only when its ratio is the smallest).
  for (int i = 0; i < 400; ++i) counts->add(pick(members, *counts));
  CHECK(counts->at(1) + counts->at(2) + counts->at(3) == 404);
  CHECK(counts->at(1) == 101);
  CHECK(counts->at(2) == 101);
  CHECK(counts->at(3) == 202);
}

TEST_CASE("least_loaded: weight 0 takes nothing, a negative count is taken as 0", "[live_counts]") {
  auto counts = std::make_unique<LiveCounts>();
  CHECK(pick({{1, 0}, {2, 0}}, *counts) == kNoBackend);
  CHECK(pick({}, *counts) == kNoBackend);
  for (int i = 0; i < 5; ++i) counts->add(2);
  CHECK(pick({{1, 0}, {2, 3}}, *counts) == 2);
  counts->remove(1);
  counts->remove(1);
  counts->add(4);
  // Backend 1 at -2 ranks as 0, below backend 4's 1.
  CHECK(pick({{4, 1}, {1, 1}}, *counts) == 1);
  counts->remove(4);  // 4 at 0 and 1 at -2 (0): a tie, the first listed
  CHECK(pick({{4, 1}, {1, 1}}, *counts) == 4);
}

TEST_CASE("FlowTable: expire calls back for every expired counted connection", "[live_counts][flow_table]") {
  static unsigned tables = 0;
  FlowTable table(("ut_live_flows_" + std::to_string(tables++)).c_str(), 1024, SOCKET_ID_ANY);
  auto counts = std::make_unique<LiveCounts>();
  // 0..59 expired, 60..99 live; connections on the even ones, backends 0..2.
  for (std::uint32_t i = 0; i < 100; ++i) {
    FlowKey key{};
    key.src = tether::parsers::ipv4_mapped(std::array<std::uint8_t, 4>{10, 0, 0, static_cast<std::uint8_t>(i)}.data());
    key.src_port = static_cast<std::uint16_t>(2000 + i);
    key.dst_port = 80;
    key.ip_proto = tether::parsers::kProtoTcp;
    FlowEntry entry{};
    entry.deadline_tsc = i < 60 ? 10 : 1000;
    entry.backend = static_cast<std::uint16_t>(i % 3);
    entry.connection = i % 2 == 0;
    if (entry.connection) counts->add(entry.backend);
    REQUIRE(table.insert(key, flow_signature(key), entry) >= 0);
  }
  const auto uncount = [](void* context, FlowEntry& entry) {
    if (entry.connection) static_cast<LiveCounts*>(context)->remove(entry.backend);
  };
  unsigned deleted = 0;
  for (int i = 0; i < 100; ++i) deleted += table.expire(500, 16, uncount, counts.get());
  CHECK(deleted == 60);
  // Left: the live even ones, 60..98: 20 connections.
  std::map<std::uint16_t, std::int64_t> expected;
  for (std::uint32_t i = 60; i < 100; i += 2) expected[static_cast<std::uint16_t>(i % 3)]++;
  for (std::uint16_t b = 0; b < 3; ++b) CHECK(counts->at(b) == expected[b]);
}
