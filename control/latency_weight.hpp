// Adaptive weights from health-check latency: a backend whose check answers come slower
// than its own usual takes a smaller share of new sessions until they come fast again.
//
// The anchor is Kamailio's latency-based dispatching (dispatcher's ds_ping_latency_stats and
// algorithm 11), which keeps a latency estimate per gateway against its long-run average and
// lowers the share of a gateway whose estimate runs above it. Here, per check (service and
// backend), over each answered `tcp` or `sip-options` probe:
//
// - `fast`: an EWMA over the last few answers (alpha 1/2): what the backend does now.
// - `baseline`: a slow EWMA (alpha 1/32), its usual. It learns only while the weight is not
//   lowered: a slowness that lasts does not become the norm and hand the backend its share
//   back, while a slow drift below the threshold is learnt.
// - Lowered when fast > threshold x baseline + tolerance (the tolerance keeps jitter, such as
//   the control loop's 10 ms poll the answers wait for, from counting as a doubling).
// - Restored when fast < restore = (1 + threshold) / 2 x baseline + tolerance, halfway
//   between the usual and the threshold: hysteresis, so a latency hovering at the threshold
//   does not flap the weight.
// - While lowered, the share is proportional: restore / fast of the configured weight (four
//   times slower than `restore`: a quarter), rounded down to a step of 5 percent, never below
//   `floor` percent. It drops at once on the way down (a step of its own at the threshold),
//   and climbs back by at most 10 percent of the configured weight per answer, so a backend
//   that has just recovered is not handed its whole share at once.
//
// Plain arithmetic over samples, no clock and no DPDK: the control thread's health checker
// owns one per check, and the weight reaches the workers in the next snapshot.
#pragma once

#include <cstdint>

namespace tether {

struct LatencyWeightSettings {
  double threshold = 2.0;            // fast above threshold x baseline lowers the weight
  std::uint32_t tolerance_us = 20000;  // latency differences below this never lower it
  std::uint32_t floor_percent = 10;   // the least share of the configured weight kept
};

class LatencyWeight {
 public:
  static constexpr double kFastAlpha = 1.0 / 2;
  static constexpr double kBaselineAlpha = 1.0 / 32;
  static constexpr std::uint32_t kStepPercent = 5;
  static constexpr std::uint32_t kRecoveryPercent = 10;

  explicit LatencyWeight(const LatencyWeightSettings& settings) : settings_(settings) {}

  // An answered check after `latency_us`: true when percent() changed.
  bool sample(double latency_us);

  // The share of the configured weight the backend has now: floor_percent..100.
  std::uint32_t percent() const { return percent_; }
  bool lowered() const { return lowered_; }
  double fast_us() const { return fast_us_; }
  double baseline_us() const { return baseline_us_; }
  std::uint64_t samples() const { return samples_; }
  const LatencyWeightSettings& settings() const { return settings_; }

 private:
  LatencyWeightSettings settings_;
  double fast_us_ = 0;
  double baseline_us_ = 0;
  std::uint64_t samples_ = 0;
  bool lowered_ = false;
  std::uint32_t percent_ = 100;
};

}  // namespace tether
