#include "sync/replay_window.hpp"

namespace tether::sync {

ReplayWindow::Verdict ReplayWindow::accept(std::uint64_t epoch, std::uint64_t sequence) {
  Verdict verdict;
  if (!started_ || epoch > epoch_) {
    started_ = true;
    epoch_ = epoch;
    highest_ = sequence;
    seen_ = 1;
    return verdict;
  }
  if (epoch < epoch_) {
    verdict.status = SyncStatus::replayed;
    return verdict;
  }
  if (sequence > highest_) {
    const std::uint64_t ahead = sequence - highest_;
    verdict.skipped = ahead - 1;
    seen_ = ahead < kWindow ? seen_ << ahead | 1 : 1;
    highest_ = sequence;
    return verdict;
  }
  const std::uint64_t behind = highest_ - sequence;
  const std::uint64_t bit = std::uint64_t{1} << (behind < kWindow ? behind : 0);
  if (behind >= kWindow || (seen_ & bit) != 0) {
    verdict.status = SyncStatus::replayed;
    return verdict;
  }
  seen_ |= bit;
  verdict.late = true;
  return verdict;
}

}  // namespace tether::sync
