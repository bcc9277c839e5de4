#include "dataplane/fragments.hpp"

#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "dataplane/heap.hpp"

namespace tether::dataplane {

FragmentTable::FragmentTable(const char* name, std::uint32_t capacity, unsigned readers, int socket)
    : SessionTable(name, capacity, readers, socket) {
  const std::uint64_t heap_before = heap_bytes_allocated();
  coverage_ = static_cast<std::atomic<std::uint64_t>*>(rte_zmalloc_socket(
      name, sizeof(std::atomic<std::uint64_t>) * kCoverageWords * slot_count(), RTE_CACHE_LINE_SIZE, socket));
  progress_ = static_cast<std::atomic<std::uint64_t>*>(
      rte_zmalloc_socket(name, sizeof(std::atomic<std::uint64_t>) * slot_count(), RTE_CACHE_LINE_SIZE, socket));
  if (coverage_ == nullptr || progress_ == nullptr) {
    rte_free(coverage_);
    rte_free(progress_);
    throw std::runtime_error(std::string("cannot allocate the coverage of ") + name);
  }
  own_bytes_ = heap_bytes_allocated() - heap_before;
}

FragmentTable::~FragmentTable() {
  rte_free(coverage_);
  rte_free(progress_);
}

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

FragmentTable::Progress FragmentTable::count_bytes(std::int32_t position, std::uint32_t offset,
                                                   std::uint32_t length, bool last) {
  std::atomic<std::uint64_t>& progress = progress_[static_cast<std::uint32_t>(position)];
  const std::uint32_t end = offset + length;
  std::uint64_t seen = progress.load(std::memory_order_relaxed);
  std::uint32_t total;
  std::uint32_t through;
  do {
    total = static_cast<std::uint32_t>(seen >> 32);  // the length + 1, or 0
    through = static_cast<std::uint32_t>(seen) + length;
    if (last) {
      if (total != 0) return Progress::contradicts;
      total = end + 1;
    }
    if (total != 0 && (end >= total || through >= total)) return Progress::contradicts;
  } while (!progress.compare_exchange_weak(seen, std::uint64_t{total} << 32 | through, std::memory_order_relaxed));
  return total != 0 && through == total - 1 ? Progress::complete : Progress::partial;
}

bool FragmentTable::complete(std::int32_t position) const {
  const std::uint64_t seen = progress_[static_cast<std::uint32_t>(position)].load(std::memory_order_relaxed);
  const std::uint32_t total = static_cast<std::uint32_t>(seen >> 32);
  return total != 0 && static_cast<std::uint32_t>(seen) == total - 1;
}

void FragmentTable::restart(std::int32_t position) {
  restart_fragment_count(position);
  progress_[static_cast<std::uint32_t>(position)].store(0, std::memory_order_relaxed);
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

static_assert(sizeof(FragmentBuffer::Piece) % 4 == 0, "rte_ring elements are multiples of 4 bytes");

FragmentHandoffs::FragmentHandoffs(unsigned workers, std::uint32_t capacity, int socket) {
  const std::uint64_t heap_before = heap_bytes_allocated();
  for (unsigned w = 0; w < workers; ++w) {
    const std::string name = "fragment_handoff" + std::to_string(w);
    rte_ring* ring = rte_ring_create_elem(name.c_str(), sizeof(FragmentBuffer::Piece), capacity, socket,
                                          RING_F_SC_DEQ | RING_F_EXACT_SZ);
    if (ring == nullptr) {
      free_rings();
      throw std::runtime_error("cannot create ring " + name + ": " + rte_strerror(rte_errno));
    }
    rings_.push_back(ring);
  }
  memory_bytes_ = heap_bytes_allocated() - heap_before;
}

FragmentHandoffs::~FragmentHandoffs() { free_rings(); }

void FragmentHandoffs::free_rings() {
  for (rte_ring* ring : rings_) {
    FragmentBuffer::Piece piece;
    while (rte_ring_dequeue_elem(ring, &piece, sizeof piece) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(piece.packet));
    rte_ring_free(ring);
  }
  rings_.clear();
}

bool FragmentHandoffs::hand(unsigned owner, FragmentBuffer::Piece piece) {
  // The ring's enqueue orders the mbuf's bytes, written before, ahead of the owner's dequeue.
  return rte_ring_mp_enqueue_elem(rings_[owner], &piece, sizeof piece) == 0;
}

unsigned FragmentHandoffs::take(unsigned owner, FragmentBuffer::Piece* pieces, unsigned n) {
  return rte_ring_sc_dequeue_burst_elem(rings_[owner], pieces, sizeof *pieces, n, nullptr);
}

}  // namespace tether::dataplane
