#include "dataplane/stream_buffer.hpp"

#include <algorithm>
#include <cstring>

namespace tether::dataplane {

// Copies source's bytes for offsets [begin, end) into the window where no held range has
// them already: the first copy of a byte wins.
void StreamBuffer::copy_missing(std::uint32_t begin, std::uint32_t end, const std::uint8_t* source) {
  std::uint32_t cursor = begin;
  for (unsigned i = 0; i < held_count_ && cursor < end; ++i) {
    const Range& range = held_[i];
    if (range.end <= cursor) continue;
    if (range.begin >= end) break;
    if (range.begin > cursor) std::memcpy(bytes_ + cursor, source + (cursor - begin), range.begin - cursor);
    cursor = std::max(cursor, range.end);
  }
  if (cursor < end) std::memcpy(bytes_ + cursor, source + (cursor - begin), end - cursor);
}

StreamBuffer::Result StreamBuffer::add(std::uint32_t seq, std::span<const std::uint8_t> payload) {
  if (payload.empty()) return Result::ok;
  if (!synced_) {
    synced_ = true;
    base_seq_ = seq;
  }
  // Sequence arithmetic modulo 2^32: a segment before base_seq_ has a negative offset.
  std::int64_t offset = static_cast<std::int32_t>(seq - base_seq_);
  if (offset < 0) {
    const auto skip = static_cast<std::uint64_t>(-offset);
    if (skip >= payload.size()) return Result::ok;  // an old retransmission
    payload = payload.subspan(skip);
    offset = 0;
  }
  const std::uint64_t end64 = static_cast<std::uint64_t>(offset) + payload.size();
  if (end64 <= length_) return Result::ok;  // retransmitted bytes we already have
  if (end64 > kCapacity) return Result::overflow;
  const auto end = static_cast<std::uint32_t>(end64);
  auto begin = static_cast<std::uint32_t>(offset);
  if (begin < length_) {  // the head is in order already
    payload = payload.subspan(length_ - begin);
    begin = length_;
  }

  // The held ranges [first, last) this segment overlaps or touches merge with it.
  unsigned first = 0;
  while (first < held_count_ && held_[first].end < begin) ++first;
  unsigned last = first;
  while (last < held_count_ && held_[last].begin <= end) ++last;
  if (begin > length_ && first == last && held_count_ == kMaxHeldRanges) return Result::gap;

  copy_missing(begin, end, payload.data());
  Range merged{begin, end};
  if (first < last) {
    merged.begin = std::min(merged.begin, held_[first].begin);
    merged.end = std::max(merged.end, held_[last - 1].end);
  }
  // Replace held_[first, last) by `merged`, or by nothing when it joins the in-order bytes.
  const bool in_order = merged.begin == length_;
  const unsigned replacement = in_order ? 0 : 1;
  std::memmove(held_ + first + replacement, held_ + last, (held_count_ - last) * sizeof(Range));
  held_count_ = static_cast<std::uint8_t>(held_count_ - (last - first) + replacement);
  if (!in_order) {
    held_[first] = merged;
    return Result::ok;
  }
  // Only held ranges after the merged one remain, and none touches it.
  length_ = merged.end;
  return Result::ok;
}

void StreamBuffer::consume(std::uint32_t count) {
  count = std::min(count, length_);
  if (count == 0) return;
  const std::uint32_t stored = held_count_ != 0 ? held_[held_count_ - 1].end : length_;
  std::memmove(bytes_, bytes_ + count, stored - count);
  base_seq_ += count;
  length_ -= count;
  for (unsigned i = 0; i < held_count_; ++i) held_[i].begin -= count, held_[i].end -= count;
}

}  // namespace tether::dataplane
