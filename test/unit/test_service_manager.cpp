// tetherd under systemd: when the watchdog is petted. A worker whose loop stops turning
// stops the pets, so that systemd restarts a tetherd whose control thread still answers.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "control/ha.hpp"
#include "control/service_manager.hpp"

using tether::WatchdogPetting;
using tether::WorkerProgress;

namespace {
constexpr std::uint64_t kHz = 1000000;  // one TSC cycle per microsecond
}

TEST_CASE("WatchdogPetting: no WatchdogSec, no pets", "[service_manager]") {
  WorkerProgress progress(kHz);
  WatchdogPetting watchdog(0, kHz);
  CHECK_FALSE(watchdog.enabled());
  CHECK_FALSE(watchdog.due(progress, 0));
  CHECK_FALSE(watchdog.due(progress, 10 * kHz));
}

TEST_CASE("WatchdogPetting: pets every half interval while every worker turns", "[service_manager]") {
  WorkerProgress progress(kHz);
  WatchdogPetting watchdog(4000000, kHz);  // WatchdogSec=4s: a pet every 2 s
  REQUIRE(watchdog.enabled());
  std::vector<std::uint64_t> loops{1, 1};
  progress.observe(loops, 0);
  CHECK(watchdog.due(progress, 0));  // the first pass pets at once
  CHECK_FALSE(watchdog.due(progress, 500000));
  loops = {2, 2};
  progress.observe(loops, 900000);
  CHECK_FALSE(watchdog.due(progress, 1999999));
  loops = {3, 3};
  progress.observe(loops, 1800000);
  CHECK(watchdog.due(progress, 2000000));
  CHECK_FALSE(watchdog.due(progress, 2000001));  // sent: the next one is 2 s later
}

TEST_CASE("WatchdogPetting: a stalled worker stops the pets until it turns again", "[service_manager]") {
  WorkerProgress progress(kHz);
  WatchdogPetting watchdog(2000000, kHz);  // a pet every second
  std::vector<std::uint64_t> loops{1, 1};
  progress.observe(loops, 0);
  CHECK(watchdog.due(progress, 0));
  // Worker 1 stops at 0; worker 0 goes on. Past WorkerProgress::kStallMs, no pet however late.
  for (std::uint64_t t = 100000; t <= 5000000; t += 100000) {
    loops[0] += 1;
    progress.observe(loops, t);
    const bool stalled = !progress.stalled(t).empty();
    CHECK(stalled == (t > WorkerProgress::kStallMs * kHz / 1000));
    if (stalled) CHECK_FALSE(watchdog.due(progress, t));
  }
  // Worker 1 turns again: the pet is overdue, so it is sent at once.
  loops[1] += 1;
  progress.observe(loops, 5100000);
  CHECK(watchdog.due(progress, 5100000));
}
