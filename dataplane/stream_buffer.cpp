#include "dataplane/stream_buffer.hpp"

#include <algorithm>
#include <cstring>

namespace tether::dataplane {

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
  const std::uint64_t end = static_cast<std::uint64_t>(offset) + payload.size();
  if (end <= length_) return Result::ok;  // retransmitted bytes we already have
  if (end > kCapacity) return Result::overflow;

  const auto start = static_cast<std::uint32_t>(offset);
  if (start > length_) {
    if (held_length_ != 0 && start != held_offset_) return Result::gap;
    std::memcpy(bytes_ + start, payload.data(), payload.size());
    held_offset_ = start;
    held_length_ = std::max(held_length_, static_cast<std::uint32_t>(payload.size()));
    return Result::ok;
  }
  std::memcpy(bytes_ + start, payload.data(), payload.size());
  length_ = static_cast<std::uint32_t>(end);
  if (held_length_ != 0 && held_offset_ <= length_) {
    length_ = std::max(length_, held_offset_ + held_length_);
    held_length_ = 0;
  }
  return Result::ok;
}

void StreamBuffer::consume(std::uint32_t count) {
  count = std::min(count, length_);
  const std::uint32_t stored = std::max(length_, held_length_ ? held_offset_ + held_length_ : 0);
  std::memmove(bytes_, bytes_ + count, stored - count);
  base_seq_ += count;
  length_ -= count;
  if (held_length_ != 0) held_offset_ -= count;
}

}  // namespace tether::dataplane
