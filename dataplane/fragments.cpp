#include "dataplane/fragments.hpp"

#include <rte_malloc.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace tether::dataplane {

FragmentTable::FragmentTable(const char* name, std::uint32_t capacity, unsigned readers, int socket)
    : SessionTable(name, capacity, readers, socket) {
  coverage_ = static_cast<std::atomic<std::uint64_t>*>(rte_zmalloc_socket(
      name, sizeof(std::atomic<std::uint64_t>) * kCoverageWords * slot_count(), RTE_CACHE_LINE_SIZE, socket));
  if (coverage_ == nullptr) throw std::runtime_error(std::string("cannot allocate the coverage of ") + name);
}

FragmentTable::~FragmentTable() { rte_free(coverage_); }

bool FragmentTable::cover(std::int32_t position, std::uint32_t offset, std::uint32_t length) {
  std::atomic<std::uint64_t>* words = coverage_ + std::size_t{kCoverageWords} * static_cast<std::uint32_t>(position);
  // Units `first` to `last` inclusive; a last fragment's length need not be a multiple of 8.
  const std::uint32_t first = offset / 8;
  const std::uint32_t last = std::min<std::uint32_t>((offset + length - 1) / 8, kMaxDatagramUnits - 1);
  bool fresh = true;
  for (std::uint32_t word = first / 64; word <= last / 64; ++word) {
    const std::uint32_t low = word == first / 64 ? first % 64 : 0;
    const std::uint32_t high = word == last / 64 ? last % 64 : 63;
    const std::uint64_t mask = (high == 63 ? ~std::uint64_t{0} : (std::uint64_t{1} << (high + 1)) - 1) &
                               ~((std::uint64_t{1} << low) - 1);
    fresh &= (words[word].fetch_or(mask, std::memory_order_relaxed) & mask) == 0;
  }
  return fresh;
}

void FragmentTable::restart(std::int32_t position) {
  restart_fragment_count(position);
  std::atomic<std::uint64_t>* words = coverage_ + std::size_t{kCoverageWords} * static_cast<std::uint32_t>(position);
  for (std::uint32_t word = 0; word < kCoverageWords; ++word) words[word].store(0, std::memory_order_relaxed);
}

SessionKey fragment_key(const parsers::Fragment& fragment) {
  SessionKey key{};  // no implicit padding: every byte defined, as rte_hash compares them all
  key.kind = SessionKind::fragment;
  key.pad0 = fragment.protocol;
  key.port = static_cast<std::uint16_t>(fragment.id >> 16);
  key.vip_port = static_cast<std::uint16_t>(fragment.id);
  const parsers::AddressWords destination = parsers::address_words(fragment.dst_ip);
  key.digest = destination.high ^ destination.low;
  key.address = fragment.src_ip;
  return key;
}

FragmentBuffer::FragmentBuffer(std::uint32_t capacity, std::uint32_t per_source)
    : capacity_(capacity), per_source_(per_source) {
  pieces_.reserve(capacity);
}

bool FragmentBuffer::same_datagram(const SessionKey& a, const SessionKey& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

FragmentBuffer::Admit FragmentBuffer::hold(const Piece& piece) {
  std::uint32_t from_source = 0;
  unsigned of_datagram = 0;
  const std::uint32_t end = piece.offset + piece.length;
  for (const Piece& held : pieces_) {
    if (held.key.address == piece.key.address) ++from_source;
    if (!same_datagram(held.key, piece.key)) continue;
    ++of_datagram;
    if (piece.offset < held.offset + held.length && held.offset < end) return Admit::overlap;
    // Two last fragments, or a piece beyond the end a last one set, disagree on the length.
    if ((!held.more && (end > held.offset + held.length || !piece.more)) ||
        (!piece.more && held.offset + held.length > end))
      return Admit::overlap;
  }
  if (of_datagram >= kMaxFragmentsPerDatagram) return Admit::too_many;
  if (from_source >= per_source_) return Admit::source_limit;
  if (pieces_.size() >= capacity_) return Admit::full;
  pieces_.push_back(piece);
  return Admit::held;
}

std::uint32_t FragmentBuffer::complete_length(const SessionKey& key) const {
  // At most kMaxFragmentsPerDatagram pieces: sort their places and walk them.
  struct Place {
    std::uint32_t offset;
    std::uint32_t end;
  };
  Place places[kMaxFragmentsPerDatagram];
  unsigned count = 0;
  bool last_seen = false;
  for (const Piece& piece : pieces_) {
    if (!same_datagram(piece.key, key) || count == kMaxFragmentsPerDatagram) continue;
    places[count++] = {piece.offset, piece.offset + piece.length};
    last_seen |= !piece.more;
  }
  if (!last_seen) return 0;
  std::sort(places, places + count, [](const Place& a, const Place& b) { return a.offset < b.offset; });
  std::uint32_t covered = 0;
  for (unsigned i = 0; i < count; ++i) {
    if (places[i].offset != covered) return 0;
    covered = places[i].end;
  }
  return covered;
}

}  // namespace tether::dataplane
