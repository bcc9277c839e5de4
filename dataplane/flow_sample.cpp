#include "dataplane/flow_sample.hpp"

#include <algorithm>

namespace tether::dataplane {

std::uint64_t FlowSampleMailbox::ask(const FlowSampleRequest& request) {
  // Allocated here, by the control thread, so a tetherd nobody asks never pays for it.
  if (buffer_.empty()) buffer_.resize(kMaxSamples);
  request_ = request;
  request_.limit = std::clamp<std::uint32_t>(request.limit, 1, kMaxSamples);
  requested_.store(++asked_, std::memory_order_release);  // publishes request_
  return asked_;
}

void FlowSampleMailbox::serve(FlowTable& table, std::uint64_t now_tsc) {
  const std::uint64_t generation = requested_.load(std::memory_order_acquire);
  if (generation != serving_) {
    serving_ = generation;
    count_ = 0;
    walked_ = 0;
  }
  const FlowSampleRequest& request = request_;
  std::uint32_t copies = 0;
  const std::uint32_t slots = std::min(kSlotsPerLoop, table.slot_count() - walked_);
  walked_ += table.walk(now_tsc, slots, [&](std::int32_t position, const FlowEntry& entry) {
    if ((request.service != FlowSampleRequest::kAny && entry.service != request.service) ||
        (request.backend != FlowSampleRequest::kAny && entry.backend != request.backend))
      return true;
    const FlowKey* key = table.key_at(position);
    if (key == nullptr) return true;
    buffer_[count_++] = {*key, entry.deadline_tsc, entry.service, entry.backend, entry.closing != 0};
    return count_ < request.limit && ++copies < kCopiesPerLoop;
  });
  const bool whole_table = walked_ == table.slot_count();
  if (count_ < request.limit && !whole_table && now_tsc < request.deadline_tsc) return;
  walked_all_ = whole_table;
  served_ = generation;
  answered_.store(generation, std::memory_order_release);  // publishes the buffer
}

}  // namespace tether::dataplane
