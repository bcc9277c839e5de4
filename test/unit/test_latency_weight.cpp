// The adaptive weight's controller (control/latency_weight.hpp): baseline, proportional
// share, floor, hysteresis on the way down and up, tolerance.
#include <catch2/catch.hpp>

#include "control/latency_weight.hpp"

using tether::LatencyWeight;
using tether::LatencyWeightSettings;

namespace {

LatencyWeightSettings settings(double threshold = 2.0, std::uint32_t tolerance_us = 0, std::uint32_t floor = 10) {
  LatencyWeightSettings s;
  s.threshold = threshold;
  s.tolerance_us = tolerance_us;
  s.floor_percent = floor;
  return s;
}

// n answers of `latency_us` each.
void feed(LatencyWeight& weight, double latency_us, int n) {
  for (int i = 0; i < n; ++i) weight.sample(latency_us);
}

}  // namespace

TEST_CASE("latency weight: a steady backend keeps its whole weight, its baseline follows", "[latency_weight]") {
  LatencyWeight weight(settings());
  CHECK_FALSE(weight.sample(1000));
  CHECK(weight.baseline_us() == 1000);
  feed(weight, 1000, 50);
  CHECK(weight.percent() == 100);
  CHECK_FALSE(weight.lowered());
  // A slow drift below the threshold is learnt (1/32 per answer).
  feed(weight, 1500, 200);
  CHECK(weight.baseline_us() == Approx(1500).epsilon(0.01));
  CHECK(weight.percent() == 100);
}

TEST_CASE("latency weight: slower than threshold x baseline lowers the share in proportion", "[latency_weight]") {
  LatencyWeight weight(settings());
  feed(weight, 1000, 40);
  // 8 ms against a 1 ms usual, threshold 2: fast converges to 8 ms, the share to
  // restore / fast = 1.5 / 8 = 18.75 %, 15 % in steps of 5.
  CHECK(weight.sample(8000));  // fast 4.5 ms > 2 ms: lowered at the first slow answer
  CHECK(weight.lowered());
  CHECK(weight.percent() == 30);  // 1.5 / 4.5
  feed(weight, 8000, 20);
  CHECK(weight.percent() == 15);
  CHECK(weight.percent() % LatencyWeight::kStepPercent == 0);
  // The baseline does not learn the slowness while it lowers the share.
  CHECK(weight.baseline_us() == Approx(1000).epsilon(0.01));
  feed(weight, 8000, 500);
  CHECK(weight.percent() == 15);
}

TEST_CASE("latency weight: the share never goes below the floor", "[latency_weight]") {
  LatencyWeight weight(settings(2.0, 0, 15));
  feed(weight, 1000, 40);
  feed(weight, 1'000'000, 20);
  CHECK(weight.percent() == 15);
  LatencyWeight one(settings(2.0, 0, 1));
  feed(one, 1000, 40);
  feed(one, 10'000'000, 20);
  CHECK(one.percent() == 1);
}

TEST_CASE("latency weight: hysteresis between lowering and restoring", "[latency_weight]") {
  // threshold 3: lowered above 3 x baseline, restored only below 2 x baseline.
  LatencyWeight weight(settings(3.0));
  feed(weight, 1000, 40);
  feed(weight, 2500, 30);  // between 2 and 3 x: not lowered
  CHECK_FALSE(weight.lowered());
  CHECK(weight.percent() == 100);
  LatencyWeight lowered(settings(3.0));
  feed(lowered, 1000, 40);
  feed(lowered, 6000, 10);
  REQUIRE(lowered.lowered());
  const double baseline = lowered.baseline_us();
  feed(lowered, 2500, 30);  // back between 2 and 3 x its usual: still lowered
  CHECK(lowered.lowered());
  CHECK(lowered.percent() < 100);
  CHECK(lowered.baseline_us() == baseline);
  feed(lowered, 1500, 10);  // below 2 x: restored
  CHECK_FALSE(lowered.lowered());
}

TEST_CASE("latency weight: the share climbs back by at most 10 points an answer", "[latency_weight]") {
  LatencyWeight weight(settings(2.0, 0, 10));
  feed(weight, 1000, 40);
  feed(weight, 100'000, 20);
  REQUIRE(weight.percent() == 10);
  std::uint32_t previous = weight.percent();
  int answers = 0;
  while (weight.percent() < 100 && answers < 100) {
    weight.sample(1000);
    CHECK(weight.percent() >= previous);
    CHECK(weight.percent() - previous <= LatencyWeight::kRecoveryPercent);
    previous = weight.percent();
    ++answers;
  }
  CHECK(weight.percent() == 100);
  CHECK(answers >= 9);  // 10 % to 100 % in steps of at most 10
}

TEST_CASE("latency weight: differences within the tolerance never lower the share", "[latency_weight]") {
  // 100 us usual, then 10 ms: ten times slower, but within a 20 ms tolerance.
  LatencyWeight weight(settings(2.0, 20000));
  feed(weight, 100, 40);
  feed(weight, 10'000, 40);
  CHECK_FALSE(weight.lowered());
  CHECK(weight.percent() == 100);
  feed(weight, 200'000, 10);  // 200 ms is not noise
  CHECK(weight.lowered());
  CHECK(weight.percent() < 100);
}
