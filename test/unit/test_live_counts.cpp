// Live sessions per backend (dataplane/live_counts.hpp): the counts every worker adds to and
// the least-loaded choice that least-sessions and least-connections make over them; and the
// flow table's expiry, which hands back every counted connection so that its count goes.
#include <catch2/catch.hpp>

#include <rte_cycles.h>
#include <rte_memory.h>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
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

// Lets a thread run on every CPU: the EAL pinned the test's main thread to one core, and a
// thread it starts inherits that, where two threads "at once" would only take turns.
void on_every_cpu(std::thread& thread) {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  for (unsigned cpu = 0; cpu < std::max(2u, std::thread::hardware_concurrency()); ++cpu) CPU_SET(cpu, &cpus);
  pthread_setaffinity_np(thread.native_handle(), sizeof cpus, &cpus);
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

TEST_CASE("live counts: try_add stops at the capacity", "[live_counts]") {
  auto counts = std::make_unique<LiveCounts>();
  CHECK(counts->try_add(2, 2));
  CHECK(counts->try_add(2, 2));
  CHECK_FALSE(counts->try_add(2, 2));
  CHECK(counts->at(2) == 2);  // a refusal leaves the count alone
  counts->remove(2);
  CHECK(counts->try_add(2, 2));
  CHECK_FALSE(counts->try_add(2, 0));
  // Below zero for a moment (a remove seen before its add): room all the same.
  counts->remove(9);
  CHECK(counts->try_add(9, 1));
  CHECK(counts->at(9) == 0);
}

// Admission on two workers at once: in each round both take an empty backend's places as
// fast as they can; together they never hold more than its capacity, and they fill it. A
// relaxed read followed by an add (what admission did before) overshoots here.
TEST_CASE("live counts: two threads reserving at once never pass the capacity", "[live_counts]") {
  auto counts = std::make_unique<LiveCounts>();
  constexpr std::int64_t kCapacity = 8;
  constexpr int kRounds = 2000;
  std::atomic<int> arrived{0};
  // Both threads arrive (two arrivals per barrier), then go on together: spinning a while
  // first, so that both are running when they leave it (yielding at once, on a busy machine,
  // let one thread take every place before the other ran, and nothing raced).
  const auto barrier = [&](int target) {
    arrived.fetch_add(1);
    for (int spin = 0; arrived.load() < target; ++spin)
      if (spin > 100000) std::this_thread::yield();
  };
  std::atomic<std::int64_t> taken[2] = {0, 0};
  const auto take = [&](int me, int round) {
    barrier(4 * round + 2);
    std::int64_t mine = 0;
    // A pause between places, as a worker's admissions have packets between them: the two
    // threads' takes interleave instead of one taking all before the other has started.
    while (counts->try_add(0, kCapacity)) {
      ++mine;
      for (int pause = 0; pause < 200; ++pause) asm volatile("" ::: "memory");
    }
    taken[me] = mine;
    barrier(4 * round + 4);
    return mine;
  };
  int overshoot = 0, underfill = 0, shared = 0;
  // Two new threads free to run on every CPU (see on_every_cpu).
  std::thread first([&] {
    for (int round = 0; round < kRounds; ++round) {
      const std::int64_t mine = take(0, round);
      const std::int64_t held = mine + taken[1];
      overshoot += held > kCapacity;
      underfill += held < kCapacity;
      shared += mine != 0 && mine != kCapacity;  // both took some: they raced
      for (std::int64_t i = 0; i < mine; ++i) counts->remove(0);
    }
  });
  std::thread second([&] {
    for (int round = 0; round < kRounds; ++round) {
      const std::int64_t mine = take(1, round);
      for (std::int64_t i = 0; i < mine; ++i) counts->remove(0);
    }
  });
  on_every_cpu(first);
  on_every_cpu(second);
  first.join();
  second.join();
  CHECK(overshoot == 0);
  CHECK(underfill == 0);
  CHECK(counts->at(0) == 0);
  INFO("rounds in which both threads took places: " << shared << " of " << kRounds);
  CHECK(shared >= 0);
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

// A microbenchmark, not a check (hidden: run it by its tag, `unit_tests "[.live_counts_cost]"`):
// TSC cycles of one connection's count (add at its SYN, remove at its end) on one thread, and
// with a second thread counting on a neighbouring backend (the same cache line) meanwhile,
// as two workers opening connections to backends 0 and 1 at once would.
TEST_CASE("live counts: cycles per connection counted", "[.live_counts_cost]") {
  auto counts = std::make_unique<LiveCounts>();
  constexpr int kRounds = 10'000'000;
  const auto measure = [&](std::uint16_t backend) {
    const std::uint64_t start = rte_rdtsc();
    for (int i = 0; i < kRounds; ++i) {
      counts->add(backend);
      counts->remove(backend);
    }
    return static_cast<double>(rte_rdtsc() - start) / kRounds;
  };
  const double alone = measure(0);
  std::atomic<bool> stop{false};
  std::thread other([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      counts->add(1);
      counts->remove(1);
    }
  });
  const double shared = measure(0);
  stop = true;
  other.join();
  WARN("cycles per connection (add + remove): " << alone << " alone, " << shared
       << " with another thread on the same line");
}

// The same for admission's reservation (try_add at the session's start, remove at its end),
// against a capacity never reached: one compare-and-swap where add() is one `lock xadd`. The
// second thread reserves on a neighbouring backend (the same cache line), as another worker
// admitting to another backend would, or on the same backend, as two workers admitting to
// one backend at once would (the CAS can fail and retry there).
TEST_CASE("live counts: cycles per session reserved", "[.live_counts_cost]") {
  auto counts = std::make_unique<LiveCounts>();
  constexpr int kRounds = 10'000'000;
  constexpr std::int64_t kCapacity = 1'000'000;
  const auto measure = [&](bool reserve) {
    const std::uint64_t start = rte_rdtsc();
    for (int i = 0; i < kRounds; ++i) {
      if (reserve) {
        if (!counts->try_add(0, kCapacity)) FAIL("full");
      } else {
        counts->add(0);
      }
      counts->remove(0);
    }
    return static_cast<double>(rte_rdtsc() - start) / kRounds;
  };
  const auto with_other = [&](std::uint16_t other_backend, bool reserve) {
    std::atomic<bool> stop{false};
    std::thread other([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        if (counts->try_add(other_backend, kCapacity)) counts->remove(other_backend);
      }
    });
    on_every_cpu(other);  // on the other core, as another worker is
    const double cycles = measure(reserve);
    stop = true;
    other.join();
    return cycles;
  };
  const double add_alone = measure(false), reserve_alone = measure(true);
  const double add_line = with_other(1, false), reserve_line = with_other(1, true);
  const double add_same = with_other(0, false), reserve_same = with_other(0, true);
  WARN("cycles per session (count + uncount): add " << add_alone << " / try_add " << reserve_alone
       << " alone; add " << add_line << " / try_add " << reserve_line
       << " with another thread on the same line; add " << add_same << " / try_add " << reserve_same
       << " with another thread on the same backend");
}
