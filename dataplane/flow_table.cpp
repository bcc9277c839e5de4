#include "dataplane/flow_table.hpp"

#include "dataplane/dpdk_objects.hpp"
#include "dataplane/heap.hpp"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_malloc.h>

#include <cerrno>
#include <stdexcept>
#include <string>

namespace tether::dataplane {
namespace {

// rte_hash's own hash of a key (for deletes and position lookups) must equal the signature
// the workers look it up with: both cover the 5-tuple's bytes only, not the compare padding.
std::uint32_t hash_flow_key(const void* key, std::uint32_t, std::uint32_t seed) {
  return rte_hash_crc(key, kFlowKeyHashedBytes, seed);
}

static_assert(FlowTable::kMaxBulk == RTE_HASH_LOOKUP_BULK_MAX);

}  // namespace

FlowTable::FlowTable(const char* name, std::uint32_t capacity, int socket) : capacity_(capacity) {
  const std::uint64_t heap_before = heap_bytes_allocated();
  hash_ = make_hash("flow table", name, capacity, sizeof(FlowKey), hash_flow_key, kFlowHashSeed,
                    socket);
  // rte_hash positions run up to the number of key slots it allocated, which is at least
  // `entries`; ask it rather than assume.
  slot_count_ = static_cast<std::uint32_t>(rte_hash_max_key_id(hash_)) + 1;
  entries_ = static_cast<FlowEntry*>(
      rte_zmalloc_socket(name, sizeof(FlowEntry) * slot_count_,
                         RTE_CACHE_LINE_SIZE, socket));
  keys_ = static_cast<FlowKey*>(
      rte_malloc_socket(name, sizeof(FlowKey) * slot_count_, RTE_CACHE_LINE_SIZE, socket));
  if (entries_ == nullptr || keys_ == nullptr) {
    rte_free(keys_);
    rte_free(entries_);
    rte_hash_free(hash_);
    throw std::runtime_error(std::string("cannot allocate flow entries for ") + name);
  }
  memory_bytes_ = heap_bytes_allocated() - heap_before;
}

FlowTable::~FlowTable() {
  rte_free(keys_);
  rte_free(entries_);
  rte_hash_free(hash_);
}

void FlowTable::lookup_bulk(const FlowKey* const* keys, const std::uint32_t* signatures,
                            unsigned n, std::int32_t* positions) const {
  rte_hash_lookup_with_hash_bulk(hash_, reinterpret_cast<const void**>(const_cast<const FlowKey**>(keys)),
                                 const_cast<hash_sig_t*>(signatures), n, positions);
}

std::int32_t FlowTable::lookup(const FlowKey& key, std::uint32_t signature) const {
  return rte_hash_lookup_with_hash(hash_, &key, signature);
}

std::int32_t FlowTable::insert(const FlowKey& key, std::uint32_t signature,
                               const FlowEntry& entry) {
  const std::int32_t position = rte_hash_add_key_with_hash(hash_, &key, signature);
  if (position >= 0) {
    entries_[position] = entry;
    keys_[position] = key;
  }
  return position;
}

unsigned FlowTable::expire(std::uint64_t now_tsc, unsigned budget, ExpireCallback on_expire,
                           void* context) {
  // A walk over the entries array by position: sequential, one comparison per free or live
  // slot, and bounded on a sparse table (rte_hash_iterate would skip free slots unbounded).
  // Only an expired entry costs hash operations.
  // The cursor in a local: as a member, the calls below made the compiler store and reload
  // it on every slot, a chain through memory of a few cycles per slot.
  unsigned deleted = 0;
  std::uint32_t cursor = sweep_cursor_;
  // The slots of the next call, fetched now. A few dozen slots a call is too short a run for
  // the hardware prefetcher: each call waited on its cache lines in turn.
  constexpr std::uint32_t kEntriesPerLine = RTE_CACHE_LINE_SIZE / sizeof(FlowEntry);
  for (std::uint32_t ahead = cursor + budget; ahead <= cursor + 2 * budget && ahead < slot_count_;
       ahead += kEntriesPerLine)
    __builtin_prefetch(&entries_[ahead]);
  // A slice never holds a position twice (its entry would be ended twice): at most the
  // table's slots, which rte_hash makes at least as many as the bulk size anyway.
  const unsigned slice_limit = slot_count_ < kMaxBulk ? slot_count_ : kMaxBulk;
  while (budget > 0) {
    const unsigned slice = budget < slice_limit ? budget : slice_limit;
    budget -= slice;
    std::uint32_t expired[kMaxBulk];
    unsigned count = 0;
    for (unsigned examined = 0; examined < slice; ++examined) {
      const std::uint32_t position = cursor;
      cursor = cursor + 1 == slot_count_ ? 0 : cursor + 1;
      const FlowEntry& entry = entries_[position];
      if (entry.deadline_tsc != kFreeSlot && entry.deadline_tsc < now_tsc) expired[count++] = position;
    }
    if (count == 0) continue;
    // One bulk lookup fetches the buckets of all the slice's deletes at once (and checks
    // each key is where its copy says); deleted one by one from cold buckets, each delete
    // waited for its bucket in turn: 38% of a SYN storm's time.
    const FlowKey* keys[kMaxBulk];
    hash_sig_t signatures[kMaxBulk];
    std::int32_t found[kMaxBulk];
    for (unsigned i = 0; i < count; ++i) {
      keys[i] = &keys_[expired[i]];
      signatures[i] = flow_signature(*keys[i]);
    }
    rte_hash_lookup_with_hash_bulk(hash_, reinterpret_cast<const void**>(keys), signatures, count, found);
    for (unsigned i = 0; i < count; ++i) {
      FlowEntry& entry = entries_[expired[i]];
      if (found[i] == static_cast<std::int32_t>(expired[i])) {
        if ((entry.stream != 0 || entry.connection) && on_expire != nullptr) on_expire(context, entry);
        rte_hash_del_key_with_hash(hash_, keys[i], signatures[i]);
        ++deleted;
      }
      entry.deadline_tsc = kFreeSlot;
    }
  }
  sweep_cursor_ = cursor;
  return deleted;
}

std::uint32_t FlowTable::size() const { return static_cast<std::uint32_t>(rte_hash_count(hash_)); }

}  // namespace tether::dataplane
