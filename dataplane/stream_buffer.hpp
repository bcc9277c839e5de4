// Bounded reassembly of one direction of a TCP control connection (RTSP, FTP), so a request
// split over segments, retransmitted, or overtaken by later segments is still read whole.
//
// Holds the in-order bytes from the stream's start (the SYN's sequence number + 1 when the
// caller saw the SYN, else the first segment seen), plus up to kMaxHeldRanges byte ranges
// that came ahead of a gap, each stored at its place in the window. Overlapping segments and
// retransmissions add only the bytes not held yet: the first copy of a byte wins, as a
// receiver that already queued it would keep it, so a later, different copy cannot change
// what was read. A segment that would need one more range, or that ends beyond the
// kCapacity window, is refused whole and reported, so the caller can reset and count it:
// never a wrong byte in the in-order data. Sequence numbers compare modulo 2^32.
// Plain C++ over byte spans: no DPDK, no allocation.
#pragma once

#include <cstdint>
#include <span>

namespace tether::dataplane {

class StreamBuffer {
 public:
  static constexpr std::uint32_t kCapacity = 2048;
  // Out-of-order ranges held at once: a reordering of n segments leaves at most n - 1 holes
  // before the first one arrives; four covers the reorderings and retransmission bursts of
  // real paths while keeping the walk over them a few compares.
  static constexpr unsigned kMaxHeldRanges = 4;
  enum class Result : std::uint8_t { ok, gap, overflow };

  // Forgets everything; the next segment's sequence number becomes the stream's start.
  void reset() { synced_ = false, length_ = 0, held_count_ = 0; }
  // Forgets everything; the stream's next byte is `seq`, bytes before it are old.
  void start(std::uint32_t seq) { synced_ = true, base_seq_ = seq, length_ = 0, held_count_ = 0; }
  Result add(std::uint32_t seq, std::span<const std::uint8_t> payload);
  std::span<const std::uint8_t> data() const { return {bytes_, length_}; }
  void consume(std::uint32_t count);
  bool full() const { return length_ == kCapacity; }
  // Nothing in order and nothing held: the buffer may be given back.
  bool empty() const { return length_ == 0 && held_count_ == 0; }
  // The sequence number of the first byte not yet in order (once synced).
  std::uint32_t next_seq() const { return base_seq_ + length_; }

 private:
  struct Range {
    std::uint32_t begin;  // offsets from base_seq_, begin > length_: a gap lies before it
    std::uint32_t end;
  };
  void copy_missing(std::uint32_t begin, std::uint32_t end, const std::uint8_t* source);

  bool synced_ = false;
  std::uint8_t held_count_ = 0;
  std::uint32_t base_seq_ = 0;  // sequence number of bytes_[0]
  std::uint32_t length_ = 0;    // in-order bytes
  Range held_[kMaxHeldRanges];  // sorted, disjoint, not touching each other
  std::uint8_t bytes_[kCapacity];
};

}  // namespace tether::dataplane
