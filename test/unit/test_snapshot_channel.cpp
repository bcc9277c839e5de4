// The snapshot exchange: workers switch between bursts, acknowledge, and the control thread
// frees a snapshot only when no worker can still read it. The stress test runs under the
// ASan build of tools/test, where reading a freed snapshot is a reported error.
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "dataplane/snapshot_channel.hpp"

using tether::dataplane::ServiceView;
using tether::dataplane::Snapshot;
using tether::dataplane::SnapshotChannel;
using tether::dataplane::SnapshotPublisher;

namespace {

// A snapshot whose every field tells its own build number, so a reader can check that it
// sees one whole snapshot and not a mix.
std::unique_ptr<Snapshot> numbered(std::uint64_t n) {
  auto snapshot = std::make_unique<Snapshot>();
  snapshot->services.resize(1 + n % 5);
  for (auto& service : snapshot->services) {
    service.idle_timeout_tsc = n;
    service.fin_timeout_tsc = n * 3;
  }
  return snapshot;
}

bool whole(const Snapshot& snapshot, std::uint64_t n) {
  if (snapshot.services.size() != 1 + n % 5) return false;
  for (const auto& service : snapshot.services)
    if (service.idle_timeout_tsc != n || service.fin_timeout_tsc != n * 3) return false;
  return true;
}

}  // namespace

TEST_CASE("snapshot exchange: a worker takes the newest and old ones are freed after", "[snapshot]") {
  SnapshotPublisher publisher(2, 0);
  const Snapshot* first = publisher.initial(numbered(1));
  CHECK(first->generation == 1);
  REQUIRE(publisher.publish(numbered(2)));
  REQUIRE(publisher.publish(numbered(3)));
  CHECK(publisher.live_count() == 3);  // nobody acknowledged: all may be in use

  const Snapshot* seen = publisher.channel(0).receive();
  REQUIRE(seen != nullptr);
  CHECK(seen->generation == 3);  // the newest, skipping 2
  CHECK(publisher.channel(0).receive() == nullptr);
  publisher.collect();
  CHECK(publisher.live_count() == 3);  // worker 1 still reads generation 1

  REQUIRE(publisher.channel(1).receive()->generation == 3);
  publisher.collect();
  CHECK(publisher.live_count() == 1);
  CHECK(publisher.freed() == 2);
  CHECK(publisher.current()->generation == 3);
}

TEST_CASE("snapshot exchange: many swaps under concurrent readers", "[snapshot]") {
  constexpr unsigned kWorkers = 2;
  constexpr std::uint64_t kPublishes = 20000;
  SnapshotPublisher publisher(kWorkers, 0);
  const Snapshot* first = publisher.initial(numbered(1));
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bad{0};
  std::vector<std::uint64_t> switches(kWorkers, 0), reads(kWorkers, 0);

  std::vector<std::thread> workers;
  for (unsigned w = 0; w < kWorkers; ++w)
    workers.emplace_back([&, w] {
      const Snapshot* current = first;
      SnapshotChannel& channel = publisher.channel(w);
      std::uint64_t last = 1;
      while (!stop.load(std::memory_order_relaxed)) {
        if (const Snapshot* next = channel.receive()) {
          if (next->generation <= last) bad++;
          last = next->generation;
          current = next;
          switches[w]++;
        }
        // a "burst": read the whole snapshot
        if (!whole(*current, current->generation)) bad++;
        reads[w]++;
      }
    });

  std::uint64_t refused = 0;
  for (std::uint64_t n = 2; n <= kPublishes; ++n) {
    auto snapshot = numbered(n);
    // publish() stamps the generation; build the content for the number it will get.
    REQUIRE(publisher.generation() + 1 == n);
    if (!publisher.publish(std::move(snapshot))) refused++;
    if (n % 64 == 0) std::this_thread::yield();
  }
  while (publisher.live_count() > 1) {
    publisher.collect();
    std::this_thread::yield();
  }
  stop = true;
  for (auto& t : workers) t.join();
  publisher.collect();

  INFO("switches " << switches[0] << "/" << switches[1] << ", reads " << reads[0] << "/"
                   << reads[1] << ", refused sends " << refused << ", freed " << publisher.freed());
  CHECK(bad == 0);
  CHECK(publisher.live_count() == 1);
  CHECK(publisher.freed() == kPublishes - 1);
  CHECK(switches[0] > 0);
  CHECK(switches[1] > 0);
}
