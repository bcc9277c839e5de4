// Replay protection for the messages of one peer (one sender id), as IPsec's anti-replay
// window (RFC 4303, 3.4.3): fed only messages whose tag open_message() verified, so a forger
// cannot move it.
//
// A message is accepted when its (epoch, sequence) is new:
// - a higher epoch is a restart of the sender: the window starts afresh at its sequence;
// - within the epoch, a sequence above the highest seen moves the window on, and one within
//   the kWindow below it is accepted once (UDP may reorder), the bitmap remembering which;
// - an older epoch, a repeat, or a sequence kWindow or more below the highest is a replay.
// An attacker cannot forge a higher epoch: the tag covers it. The window's own limit: a
// receiver that starts knows no epoch yet, so until the sender's current messages reach it,
// messages recorded from an earlier run of the sender would be accepted (once each).
#pragma once

#include <cstdint>

#include "sync/wire.hpp"

namespace tether::sync {

class ReplayWindow {
 public:
  static constexpr std::uint64_t kWindow = 64;  // the bitmap's width

  struct Verdict {
    SyncStatus status = SyncStatus::ok;  // ok or replayed
    // Sequence numbers jumped over when this message moved the window on: messages lost, or
    // late ones still to come (which then arrive with `late` set). 0 for the first message
    // of an epoch: a receiver that starts or a sender that restarts has no gap to report.
    std::uint64_t skipped = 0;
    bool late = false;  // accepted from within the window, behind the highest sequence
  };

  // Judges the message and, when it is accepted, remembers it.
  Verdict accept(std::uint64_t epoch, std::uint64_t sequence);

  bool started() const { return started_; }
  std::uint64_t epoch() const { return epoch_; }
  std::uint64_t highest() const { return highest_; }

 private:
  bool started_ = false;
  std::uint64_t epoch_ = 0;
  std::uint64_t highest_ = 0;  // the highest sequence accepted in this epoch
  std::uint64_t seen_ = 0;     // bit i: highest_ - i was accepted
};

}  // namespace tether::sync
