#include "control/latency_weight.hpp"

#include <algorithm>
#include <cmath>

namespace tether {

bool LatencyWeight::sample(double latency_us) {
  latency_us = std::max(0.0, latency_us);
  if (samples_++ == 0) {
    fast_us_ = baseline_us_ = latency_us;
    return false;
  }
  fast_us_ += kFastAlpha * (latency_us - fast_us_);
  const double tolerance = settings_.tolerance_us;
  // Where the share is whole again: halfway between the usual and the threshold.
  const double restore_us = (1 + settings_.threshold) / 2 * baseline_us_ + tolerance;
  if (!lowered_ && fast_us_ > settings_.threshold * baseline_us_ + tolerance)
    lowered_ = true;
  else if (lowered_ && fast_us_ < restore_us)
    lowered_ = false;
  if (!lowered_) baseline_us_ += kBaselineAlpha * (latency_us - baseline_us_);

  std::uint32_t target = 100;
  if (lowered_) {
    const double share = 100 * restore_us / fast_us_;
    // Down to a multiple of the step: a share moves the weights only step by step.
    target = static_cast<std::uint32_t>(std::floor(share / kStepPercent)) * kStepPercent;
    target = std::clamp(target, settings_.floor_percent, 100u);
  }
  const std::uint32_t before = percent_;
  // Down at once, up by at most kRecoveryPercent an answer.
  percent_ = target <= percent_ ? target : std::min(target, percent_ + kRecoveryPercent);
  return percent_ != before;
}

}  // namespace tether
