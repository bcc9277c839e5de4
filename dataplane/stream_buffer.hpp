// Bounded reassembly of one direction of a TCP control connection (RTSP, FTP), so a request
// split over segments, retransmitted, or overtaken by the next segment is still read whole.
//
// Holds the in-order bytes from the first segment seen, plus at most one segment that came
// ahead of a gap (the common reordering). A second gap, or more bytes than the buffer holds,
// is reported so the caller can reset and count it: never a wrong byte in the in-order data.
// Plain C++ over byte spans: no DPDK, no allocation.
#pragma once

#include <cstdint>
#include <span>

namespace tether::dataplane {

class StreamBuffer {
 public:
  static constexpr std::uint32_t kCapacity = 2048;
  enum class Result : std::uint8_t { ok, gap, overflow };

  void reset() { synced_ = false, length_ = 0, held_length_ = 0; }
  Result add(std::uint32_t seq, std::span<const std::uint8_t> payload);
  std::span<const std::uint8_t> data() const { return {bytes_, length_}; }
  void consume(std::uint32_t count);
  bool full() const { return length_ == kCapacity; }

 private:
  bool synced_ = false;
  std::uint32_t base_seq_ = 0;  // sequence number of bytes_[0]
  std::uint32_t length_ = 0;    // in-order bytes
  std::uint32_t held_offset_ = 0;
  std::uint32_t held_length_ = 0;  // a segment past a gap, stored at held_offset_
  std::uint8_t bytes_[kCapacity];
};

}  // namespace tether::dataplane
