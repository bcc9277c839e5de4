#include "sync/replay_window.hpp"

#include <catch2/catch.hpp>

using tether::sync::ReplayWindow;
using tether::sync::SyncStatus;

namespace {

bool accepted(ReplayWindow& window, std::uint64_t epoch, std::uint64_t sequence) {
  return window.accept(epoch, sequence).status == SyncStatus::ok;
}

}  // namespace

TEST_CASE("replay window: in order, repeats", "[sync]") {
  ReplayWindow window;
  CHECK_FALSE(window.started());
  for (std::uint64_t sequence = 0; sequence < 200; ++sequence) {
    const auto verdict = window.accept(5, sequence);
    CHECK(verdict.status == SyncStatus::ok);
    CHECK(verdict.skipped == 0);
    CHECK_FALSE(verdict.late);
  }
  CHECK(window.highest() == 199);
  CHECK(window.accept(5, 199).status == SyncStatus::replayed);
  CHECK(window.accept(5, 150).status == SyncStatus::replayed);
  CHECK(window.accept(5, 0).status == SyncStatus::replayed);
  CHECK(window.highest() == 199);
}

TEST_CASE("replay window: late but unseen within the window, once", "[sync]") {
  ReplayWindow window;
  REQUIRE(accepted(window, 1, 100));
  const auto jump = window.accept(1, 110);
  CHECK(jump.status == SyncStatus::ok);
  CHECK(jump.skipped == 9);
  for (std::uint64_t late : {105, 101, 109}) {
    const auto verdict = window.accept(1, late);
    CHECK(verdict.status == SyncStatus::ok);
    CHECK(verdict.late);
    CHECK(verdict.skipped == 0);
    CHECK(window.accept(1, late).status == SyncStatus::replayed);
  }
  CHECK(window.accept(1, 100).status == SyncStatus::replayed);
  CHECK(window.highest() == 110);
}

TEST_CASE("replay window: the window's edge", "[sync]") {
  ReplayWindow window;
  REQUIRE(accepted(window, 1, 1000));
  // 63 behind the highest is the oldest the bitmap holds; 64 behind is too old.
  CHECK(accepted(window, 1, 1000 - (ReplayWindow::kWindow - 1)));
  CHECK(window.accept(1, 1000 - ReplayWindow::kWindow).status == SyncStatus::replayed);
  // A jump of exactly the window's width keeps nothing of the old bitmap.
  CHECK(window.accept(1, 1000 + ReplayWindow::kWindow).skipped == ReplayWindow::kWindow - 1);
  CHECK(accepted(window, 1, 1001));
  CHECK(window.accept(1, 1000).status == SyncStatus::replayed);
  // A large jump: the gap counts every sequence number skipped.
  CHECK(window.accept(1, 1'000'000).skipped == 1'000'000 - 1064 - 1);
  CHECK(accepted(window, 1, 999'999));
}

TEST_CASE("replay window: bits move with the window", "[sync]") {
  ReplayWindow window;
  REQUIRE(accepted(window, 1, 10));
  REQUIRE(accepted(window, 1, 12));  // 11 skipped
  REQUIRE(accepted(window, 1, 20));  // 13..19 skipped
  CHECK(window.accept(1, 12).status == SyncStatus::replayed);
  CHECK(window.accept(1, 10).status == SyncStatus::replayed);
  CHECK(accepted(window, 1, 11));
  CHECK(accepted(window, 1, 19));
  CHECK(window.accept(1, 19).status == SyncStatus::replayed);
}

TEST_CASE("replay window: epochs", "[sync]") {
  ReplayWindow window;
  REQUIRE(accepted(window, 100, 500));
  SECTION("a higher epoch starts afresh, without a gap") {
    const auto restart = window.accept(200, 0);
    CHECK(restart.status == SyncStatus::ok);
    CHECK(restart.skipped == 0);
    CHECK(window.epoch() == 200);
    CHECK(window.highest() == 0);
    CHECK(accepted(window, 200, 1));
    // The old run's messages are replays now, however new their sequence.
    CHECK(window.accept(100, 501).status == SyncStatus::replayed);
    CHECK(window.accept(100, 500).status == SyncStatus::replayed);
    CHECK(window.accept(200, 0).status == SyncStatus::replayed);
  }
  SECTION("an older epoch is a replay and leaves the window alone") {
    CHECK(window.accept(99, 1'000'000).status == SyncStatus::replayed);
    CHECK(window.epoch() == 100);
    CHECK(window.highest() == 500);
    CHECK(accepted(window, 100, 501));
  }
}
