// Flow samples: how the control thread sees into the workers' own flow tables.
//
// A flow table belongs to its worker alone (its rte_hash has no concurrency flags), so the
// control thread never reads one. It asks instead, through the worker's mailbox: it writes
// a request and bumps the request generation; the worker notices between bursts (one
// relaxed load per loop), walks its table in bounded slices over as many loops as it
// needs, copies the matching entries into the mailbox's buffer and publishes the
// generation as answered.
//
// The control thread writes a request only while the mailbox is idle (its last request
// answered) and reads the buffer only once its own generation is answered. A request it
// stopped waiting for is still answered later into the same buffer, which nobody reads
// meanwhile (the mailbox is not idle, so no new request is written), and the buffer lives
// as long as the worker: a late answer never writes into freed or reused memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/flow_table.hpp"

namespace tether::dataplane {

struct FlowSample {
  FlowKey key;
  std::uint64_t deadline_tsc;
  std::uint16_t service;
  std::uint16_t backend;
  bool closing;
};

struct FlowSampleRequest {
  static constexpr std::uint16_t kAny = 0xffff;
  std::uint32_t limit = 1;
  std::uint16_t service = kAny;
  std::uint16_t backend = kAny;
  // The worker answers with what it found by then, so a busy worker walking a huge table
  // still answers in time.
  std::uint64_t deadline_tsc = 0;
};

class FlowSampleMailbox {
 public:
  static constexpr std::uint32_t kMaxSamples = 10000;
  // Per worker loop: slots walked and entries copied (a key copy costs a hash lookup).
  // Bounded, so the burst loop keeps its rhythm while it answers.
  static constexpr std::uint32_t kSlotsPerLoop = 1024;
  static constexpr std::uint32_t kCopiesPerLoop = 64;

  // --- control thread ---
  // The last request was answered: a new one may be written.
  bool idle() const { return answered_.load(std::memory_order_acquire) == asked_; }
  // Requires idle(). Returns the generation answered() waits for.
  std::uint64_t ask(const FlowSampleRequest& request);
  bool answered(std::uint64_t generation) const {
    return answered_.load(std::memory_order_acquire) == generation;
  }
  // The answer, valid once answered() and until the next ask().
  std::span<const FlowSample> samples() const { return {buffer_.data(), count_}; }
  // Every slot of the table was walked: the sample holds every match (up to the limit).
  bool walked_all() const { return walked_all_; }

  // --- worker ---
  bool asked() const { return requested_.load(std::memory_order_relaxed) != served_; }
  // One bounded slice of the walk; publishes the answer once the limit, the whole table or
  // the request's deadline is reached.
  void serve(FlowTable& table, std::uint64_t now_tsc);

 private:
  // Written by the control thread, read by the worker.
  alignas(64) std::atomic<std::uint64_t> requested_{0};
  FlowSampleRequest request_;
  std::vector<FlowSample> buffer_;  // kMaxSamples once the first request comes
  std::uint64_t asked_ = 0;         // the control thread's copy of requested_

  // Written by the worker, read by the control thread after answered_.
  alignas(64) std::atomic<std::uint64_t> answered_{0};
  std::uint32_t count_ = 0;
  bool walked_all_ = false;
  // The worker's own progress.
  std::uint64_t served_ = 0;   // generation it answered last
  std::uint64_t serving_ = 0;  // generation it is walking for
  std::uint32_t walked_ = 0;   // slots walked for it so far
};

}  // namespace tether::dataplane
