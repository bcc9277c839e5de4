// A worker's own flow table: normalised 5-tuple -> backend, with idle expiry.
//
// One per worker and used by that worker alone, so the rte_hash needs no concurrency flags.
// rte_hash stores keys; the values live in a flat array indexed by the key's position, which
// lets a hit refresh its deadline without a second hash operation. Expiry is an incremental
// sweep of a bounded number of slots per call, so no burst ever pays for the whole table.
// A copy of each key, by position, lets the sweep delete without asking rte_hash for the key
// (rte_hash_get_key_with_position validates it with a lookup of its own, one bucket fetched
// from memory in turn per expired flow) and fetch the buckets of a whole slice at once.
#pragma once

#include <rte_hash_crc.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dataplane/crc32c.hpp"
#include "dataplane/limits.hpp"
#include "parsers/packet.hpp"

struct rte_hash;

namespace tether::dataplane {

// 8-byte aligned: rte_hash_crc reads keys 8 bytes at a time. 48 bytes, not the 40 the
// fields need: rte_hash compares 16/32/48/64-byte keys with vector instructions and any
// other length with memcmp, a call on every lookup.
struct alignas(8) FlowKey {
  parsers::IpBytes src;
  parsers::IpBytes dst;
  std::uint16_t src_port;
  std::uint16_t dst_port;
  std::uint8_t ip_proto;
  std::uint8_t pad[11];  // zeroed, so the key's bytes are a function of the 5-tuple alone
};
static_assert(sizeof(FlowKey) == 48);
// The bytes the 5-tuple occupies: what flow_signature hashes.
inline constexpr std::size_t kFlowKeyHashedBytes = 40;

// Fixed, so that every tether instance hashes a flow alike ("teth").
inline constexpr std::uint32_t kFlowHashSeed = 0x74657468;

// The one hash of a flow: it indexes the flow table and the Maglev table, so it must be the
// same on every worker and every tether instance. Inline: every packet is hashed.
inline std::uint32_t flow_signature(const FlowKey& key) {
  return rte_hash_crc(&key, kFlowKeyHashedBytes, kFlowHashSeed);
}

// Fills `key` from a parsed 5-tuple and returns flow_signature(key), hashing the words it
// stores rather than reading them back. The addresses come as the 8-byte words the key holds
// them in, and the key is written in the 8-byte words rte_hash_crc reads: a load that spans
// several narrower stores still in flight cannot take its bytes from them and waits for them
// to reach the cache, a stall on every packet.
inline std::uint32_t fill_flow_key(FlowKey& key, parsers::AddressWords src,
                                   parsers::AddressWords dst, std::uint16_t src_port,
                                   std::uint16_t dst_port, std::uint8_t ip_proto) {
  const std::uint64_t words[kFlowKeyHashedBytes / 8] = {
      src.high, src.low, dst.high, dst.low,
      // src_port, dst_port, ip_proto and the first pad bytes, in the key's little-endian layout
      src_port | std::uint64_t{dst_port} << 16 | std::uint64_t{ip_proto} << 32};
  static_assert(offsetof(FlowKey, src_port) == 32 && offsetof(FlowKey, dst_port) == 34 &&
                offsetof(FlowKey, ip_proto) == 36 && offsetof(FlowKey, pad) == 37);
  auto* out = reinterpret_cast<unsigned char*>(&key);
  std::uint64_t signature = kFlowHashSeed;
  for (unsigned i = 0; i < kFlowKeyHashedBytes / 8; ++i) {
    std::memcpy(out + 8 * i, &words[i], 8);
    signature = crc32c_8byte(words[i], signature);
  }
  std::memset(out + kFlowKeyHashedBytes, 0, sizeof(FlowKey) - kFlowKeyHashedBytes);
  return static_cast<std::uint32_t>(signature);
}

inline std::uint32_t fill_flow_key(FlowKey& key, const parsers::IpBytes& src,
                                   const parsers::IpBytes& dst, std::uint16_t src_port,
                                   std::uint16_t dst_port, std::uint8_t ip_proto) {
  return fill_flow_key(key, parsers::address_words(src), parsers::address_words(dst), src_port,
                       dst_port, ip_proto);
}

// 16 bytes, four to a cache line: the expiry sweep reads the entries array end to end, and
// every packet reads and writes its flow's entry.
struct FlowEntry {
  std::uint64_t deadline_tsc;  // kFreeSlot once the sweep deleted the entry
  std::uint16_t backend;
  std::uint16_t service : 15;  // below kMaxServices
  // A TCP connection its SYN opened: counted in the backend's live connections
  // (dataplane/live_counts.hpp) until the entry goes.
  std::uint16_t connection : 1;
  std::uint32_t closing : 1;  // TCP FIN or RST seen: the entry lives for fin_timeout only
  // Inspected control connection: its stream state + 1; 0 if none.
  std::uint32_t stream : 25;
  // State sync: the flow's packets, counted to the sync threshold and then cycling through
  // the sync period (Worker::count_for_sync).
  std::uint32_t sync_packets : 6;
};
static_assert(sizeof(FlowEntry) == 16);
static_assert(kMaxServices <= 1u << 15);
// What FlowEntry::stream holds: a stream's index + 1.
inline constexpr std::uint32_t kFlowStreamMask = 0x1ffffff;
static_assert(kMaxDpiSessionsPerWorker < kFlowStreamMask);

class FlowTable {
 public:
  static constexpr unsigned kMaxBulk = 64;
  // The deadline of a slot that holds no entry: in the past for every walk.
  static constexpr std::uint64_t kFreeSlot = 0;

  FlowTable(const char* name, std::uint32_t capacity, int socket);
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // positions[i] >= 0 is a hit; negative is a miss. n <= kMaxBulk.
  void lookup_bulk(const FlowKey* const* keys, const std::uint32_t* signatures, unsigned n,
                   std::int32_t* positions) const;
  std::int32_t lookup(const FlowKey& key, std::uint32_t signature) const;
  // The new entry's position, or a negative errno (-ENOSPC when the table is full).
  std::int32_t insert(const FlowKey& key, std::uint32_t signature, const FlowEntry& entry);
  FlowEntry& at(std::int32_t position) { return entries_[position]; }

  // Examines up to `budget` slots from where the last call stopped and deletes the entries
  // past their deadline, calling on_expire(context, entry) first for those with stream
  // state or a counted connection. Returns how many it deleted.
  // A slot whose deadline is not kFreeSlot holds a key: only this sweep deletes.
  using ExpireCallback = void (*)(void* context, FlowEntry& entry);
  unsigned expire(std::uint64_t now_tsc, unsigned budget, ExpireCallback on_expire = nullptr,
                  void* context = nullptr);

  // Walks up to `slots` positions from where the last walk stopped and calls
  // visit(position, entry) for each live entry (deadline not passed) until visit returns
  // false. Returns the positions walked. Positions rather than rte_hash_iterate(): that
  // skips free slots inside one call, so on a sparse table a single call could cross
  // millions of them; here every call costs at most `slots` steps. Expired entries are
  // dead whether swept or not, and the sweep deletes nothing else, so a free slot never
  // holds a live deadline.
  template <typename Visit>
  std::uint32_t walk(std::uint64_t now_tsc, std::uint32_t slots, Visit&& visit) {
    return walk(now_tsc, slots, walk_cursor_, visit);
  }
  // The same from a cursor of the caller's: two walks of one table keep their own places.
  template <typename Visit>
  std::uint32_t walk(std::uint64_t now_tsc, std::uint32_t slots, std::uint32_t& cursor, Visit&& visit) {
    std::uint32_t walked = 0;
    while (walked < slots) {
      const std::uint32_t position = cursor;
      cursor = cursor + 1 == slot_count_ ? 0 : cursor + 1;
      ++walked;
      const FlowEntry& entry = entries_[position];
      if (entry.deadline_tsc >= now_tsc && !visit(static_cast<std::int32_t>(position), entry)) break;
    }
    return walked;
  }
  // The key at `position`, or null for a free slot.
  const FlowKey* key_at(std::int32_t position) const {
    return entries_[position].deadline_tsc == kFreeSlot ? nullptr : &keys_[position];
  }

  std::uint32_t size() const;
  std::uint32_t capacity() const { return capacity_; }
  // Bytes the table took from the DPDK heaps: hash buckets, keys, free-slot ring, entries
  // and the keys' copies.
  std::uint64_t memory_bytes() const { return memory_bytes_; }
  // Positions rte_hash may hand out: at least the capacity.
  std::uint32_t slot_count() const { return slot_count_; }

 private:
  rte_hash* hash_ = nullptr;
  FlowEntry* entries_ = nullptr;
  // Apart from the entries, which every packet reads: only inserts write a key, and only the
  // sweep, flow samples and sync dumps read one.
  FlowKey* keys_ = nullptr;
  std::uint32_t capacity_;
  std::uint64_t memory_bytes_ = 0;
  std::uint32_t slot_count_ = 0;
  std::uint32_t sweep_cursor_ = 0;
  std::uint32_t walk_cursor_ = 0;
};

}  // namespace tether::dataplane
