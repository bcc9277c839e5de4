// FlowTable (dataplane/flow_table.hpp): bulk lookups, the entry array, incremental expiry,
// a full table, and flow_signature.
#include <catch2/catch.hpp>

#include <rte_log.h>
#include <rte_memory.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "dataplane/flow_table.hpp"

using tether::dataplane::FlowEntry;
using tether::dataplane::FlowKey;
using tether::dataplane::FlowTable;
using tether::dataplane::flow_signature;

namespace {

// rte_hash names are global to the process: every table gets its own.
std::string unique_name() {
  static unsigned counter = 0;
  return "ut_flows_" + std::to_string(counter++);
}

FlowKey make_key(std::uint32_t i) {
  FlowKey key{};
  const std::uint8_t client[4] = {10, static_cast<std::uint8_t>(i >> 16), static_cast<std::uint8_t>(i >> 8),
                                  static_cast<std::uint8_t>(i)};
  const std::uint8_t vip[4] = {192, 0, 2, 100};
  key.src = tether::parsers::ipv4_mapped(client);
  key.dst = tether::parsers::ipv4_mapped(vip);
  key.src_port = static_cast<std::uint16_t>(1024 + i % 50000);
  key.dst_port = 80;
  key.ip_proto = tether::parsers::kProtoTcp;
  return key;
}

FlowEntry entry_for(std::uint32_t i, std::uint64_t deadline, std::uint32_t stream = 0) {
  FlowEntry e{};
  e.deadline_tsc = deadline;
  e.backend = static_cast<std::uint16_t>(i % 1000);
  e.service = (i % 7) & 0x7fff;  // 15 bits: the field's width
  e.closing = static_cast<std::uint8_t>(i % 2);
  e.stream = stream & tether::dataplane::kFlowStreamMask;
  return e;
}

// Looks up keys [first, first + n) in bulks of up to 64, returning the positions.
std::vector<std::int32_t> lookup_all(const FlowTable& table, std::uint32_t first, std::uint32_t n) {
  std::vector<std::int32_t> positions(n);
  for (std::uint32_t done = 0; done < n;) {
    const unsigned bulk = std::min<std::uint32_t>(FlowTable::kMaxBulk, n - done);
    std::vector<FlowKey> keys(bulk);
    std::vector<const FlowKey*> pointers(bulk);
    std::vector<std::uint32_t> signatures(bulk);
    for (unsigned j = 0; j < bulk; ++j) {
      keys[j] = make_key(first + done + j);
      pointers[j] = &keys[j];
      signatures[j] = flow_signature(keys[j]);
    }
    table.lookup_bulk(pointers.data(), signatures.data(), bulk, positions.data() + done);
    done += bulk;
  }
  return positions;
}

// Independent CRC32C (Castagnoli, reflected, no final inversion): what rte_hash_crc computes
// on any CPU, with or without SSE4.2.
std::uint32_t crc32c(const void* data, std::size_t length, std::uint32_t crc) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i < length; ++i) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  return crc;
}

}  // namespace

TEST_CASE("FlowTable: inserts, bulk hits and misses, entry array", "[flow_table]") {
  FlowTable table(unique_name().c_str(), 4096, SOCKET_ID_ANY);
  CHECK(table.capacity() == 4096);
  CHECK(table.size() == 0);

  // Insert the even keys 0, 2, ..., 254.
  std::vector<std::int32_t> inserted(256, -1);
  for (std::uint32_t i = 0; i < 256; i += 2) {
    const FlowKey key = make_key(i);
    inserted[i] = table.insert(key, flow_signature(key), entry_for(i, 1000 + i));
    REQUIRE(inserted[i] >= 0);
  }
  CHECK(table.size() == 128);
  {
    std::set<std::int32_t> distinct;
    for (std::uint32_t i = 0; i < 256; i += 2) distinct.insert(inserted[i]);
    CHECK(distinct.size() == 128);
  }

  // Four bulks of 64 mixed keys: each even key hits at the position insert returned, each odd
  // key misses, and the entry at the position is the one inserted for that key.
  const auto positions = lookup_all(table, 0, 256);
  std::size_t hits = 0, misses = 0, wrong_position = 0, wrong_entry = 0;
  for (std::uint32_t i = 0; i < 256; ++i) {
    if (i % 2 == 0) {
      if (positions[i] < 0) continue;
      ++hits;
      if (positions[i] != inserted[i]) ++wrong_position;
      const FlowEntry& e = table.at(positions[i]);
      const FlowEntry expected = entry_for(i, 1000 + i);
      if (e.deadline_tsc != expected.deadline_tsc || e.backend != expected.backend ||
          e.service != expected.service || e.closing != expected.closing)
        ++wrong_entry;
    } else if (positions[i] < 0) {
      ++misses;
      CHECK(positions[i] == -ENOENT);
    }
  }
  CHECK(hits == 128);
  CHECK(misses == 128);
  CHECK(wrong_position == 0);
  CHECK(wrong_entry == 0);

  SECTION("at() gives a reference: writes are seen by the next lookup") {
    table.at(positions[10]).backend = 4242;
    table.at(positions[10]).deadline_tsc = 99;
    const auto again = lookup_all(table, 10, 1);
    REQUIRE(again[0] == positions[10]);
    CHECK(table.at(again[0]).backend == 4242);
    CHECK(table.at(again[0]).deadline_tsc == 99);
  }
  SECTION("inserting an existing key updates it in place") {
    const FlowKey key = make_key(4);
    const std::int32_t position = table.insert(key, flow_signature(key), entry_for(5, 7));
    CHECK(position == inserted[4]);
    CHECK(table.size() == 128);
    CHECK(table.at(position).deadline_tsc == 7);
    CHECK(table.at(position).backend == 5);
  }
  SECTION("a bulk of one and a bulk of exactly kMaxBulk") {
    CHECK(lookup_all(table, 2, 1)[0] == inserted[2]);
    CHECK(lookup_all(table, 3, 1)[0] < 0);
    const auto full = lookup_all(table, 100, 64);
    for (std::uint32_t j = 0; j < 64; ++j) {
      if ((100 + j) % 2 == 0) CHECK(full[j] == inserted[100 + j]);
      else CHECK(full[j] < 0);
    }
  }
}

TEST_CASE("FlowTable: a key differing in any field misses", "[flow_table]") {
  FlowTable table(unique_name().c_str(), 1024, SOCKET_ID_ANY);
  const FlowKey key = make_key(1);
  REQUIRE(table.insert(key, flow_signature(key), entry_for(1, 1)) >= 0);
  std::vector<FlowKey> variants(6, key);
  variants[0].src[15] ^= 1;
  variants[1].dst[15] ^= 1;
  variants[2].src_port = static_cast<std::uint16_t>(variants[2].src_port + 1);
  variants[3].dst_port = 81;
  variants[4].ip_proto = tether::parsers::kProtoUdp;
  variants[5] = key;  // the original: a hit
  std::vector<const FlowKey*> pointers;
  std::vector<std::uint32_t> signatures;
  for (const auto& v : variants) {
    pointers.push_back(&v);
    signatures.push_back(flow_signature(v));
  }
  std::int32_t positions[6];
  table.lookup_bulk(pointers.data(), signatures.data(), 6, positions);
  for (int i = 0; i < 5; ++i) CHECK(positions[i] < 0);
  CHECK(positions[5] >= 0);
}

TEST_CASE("FlowTable: expire deletes past-deadline entries over repeated calls", "[flow_table]") {
  FlowTable table(unique_name().c_str(), 4096, SOCKET_ID_ANY);
  constexpr std::uint32_t kFlows = 1000;
  constexpr std::uint64_t kNow = 10'000;
  // Every third flow is live (deadline in the future or exactly now); the rest expired.
  std::uint32_t expired = 0;
  for (std::uint32_t i = 0; i < kFlows; ++i) {
    const FlowKey key = make_key(i);
    std::uint64_t deadline;
    if (i % 3 == 0) deadline = (i % 2) ? kNow : kNow + 1 + i;  // deadline == now is not past
    else {
      deadline = kNow - 1 - (i % 100);
      ++expired;
    }
    REQUIRE(table.insert(key, flow_signature(key), entry_for(i, deadline)) >= 0);
  }
  REQUIRE(table.size() == kFlows);

  SECTION("the budget bounds the entries examined per call") {
    // All 1000 entries are occupied, and two thirds expired: a call with budget 10 examines
    // 10 occupied slots, so it deletes at most 10.
    unsigned total = 0, calls = 0, max_per_call = 0;
    while (total < expired && calls < 10'000) {
      const unsigned deleted = table.expire(kNow, 10);
      max_per_call = std::max(max_per_call, deleted);
      total += deleted;
      ++calls;
    }
    CHECK(max_per_call <= 10);
    CHECK(max_per_call >= 1);
    CHECK(total == expired);
    // Examining 1000 entries 10 at a time takes at least 100 calls.
    CHECK(calls >= 100);
    CHECK(table.size() == kFlows - expired);
  }

  SECTION("budget 1 deletes at most one") {
    unsigned deleted = 0;
    for (int i = 0; i < 30; ++i) {
      const unsigned d = table.expire(kNow, 1);
      CHECK(d <= 1);
      deleted += d;
    }
    CHECK(deleted >= 10);  // two thirds of any 30 consecutive entries are expired, roughly
    CHECK(table.size() == kFlows - deleted);
  }

  SECTION("budget 0 does nothing") {
    CHECK(table.expire(kNow, 0) == 0);
    CHECK(table.size() == kFlows);
  }

  SECTION("sweeps restart at the beginning: large budgets finish in a few calls") {
    unsigned total = 0;
    for (int i = 0; i < 3; ++i) total += table.expire(kNow, 100'000);
    CHECK(total == expired);
  }

  SECTION("nothing expires before its deadline") {
    unsigned total = 0;
    for (int i = 0; i < 5; ++i) total += table.expire(kNow - 1000, 100'000);
    CHECK(total == 0);
    CHECK(table.size() == kFlows);
  }

  // Whatever the budget, once the sweep is complete the live flows are found with their
  // entries, and the expired ones are gone.
  for (int i = 0; i < 4; ++i) table.expire(kNow, 100'000);
  const auto positions = lookup_all(table, 0, kFlows);
  std::size_t live_found = 0, live_missing = 0, expired_found = 0, wrong_entry = 0;
  for (std::uint32_t i = 0; i < kFlows; ++i) {
    if (i % 3 == 0) {
      if (positions[i] < 0) {
        ++live_missing;
        continue;
      }
      ++live_found;
      const std::uint64_t deadline = (i % 2) ? kNow : kNow + 1 + i;
      if (table.at(positions[i]).deadline_tsc != deadline ||
          table.at(positions[i]).backend != i % 1000)
        ++wrong_entry;
    } else if (positions[i] >= 0) {
      ++expired_found;
    }
  }
  CHECK(live_found == kFlows - expired);
  CHECK(live_missing == 0);
  CHECK(expired_found == 0);
  CHECK(wrong_entry == 0);
  CHECK(table.size() == kFlows - expired);

  // Freed room is reused: the expired flows can be inserted again.
  std::size_t reinserted = 0;
  for (std::uint32_t i = 0; i < kFlows; ++i) {
    if (i % 3 == 0) continue;
    const FlowKey key = make_key(i);
    if (table.insert(key, flow_signature(key), entry_for(i, kNow + 50)) >= 0) ++reinserted;
  }
  CHECK(reinserted == expired);
  CHECK(table.size() == kFlows);
}

TEST_CASE("FlowTable: the sweep deletes by the key copy of a position rte_hash reused", "[flow_table]") {
  // Positions freed by the sweep go back to rte_hash and come out again for other keys: the
  // sweep deletes by its own copy of each key, so the copy must follow every insert.
  FlowTable table(unique_name().c_str(), 1024, SOCKET_ID_ANY);
  constexpr std::uint32_t kFlows = 700;
  for (std::uint32_t generation = 0; generation < 4; ++generation) {
    const std::uint32_t first = generation * kFlows;
    const std::uint64_t deadline = 100 + generation * 100;
    for (std::uint32_t i = first; i < first + kFlows; ++i) {
      const FlowKey key = make_key(i);
      const std::int32_t position = table.insert(key, flow_signature(key), entry_for(i, deadline));
      REQUIRE(position >= 0);
      const FlowKey* copy = table.key_at(position);
      REQUIRE(copy != nullptr);
      CHECK(std::memcmp(copy, &key, sizeof key) == 0);
    }
    REQUIRE(table.size() == kFlows);
    unsigned deleted = 0;
    // Budgets above and below the bulk size, and one that is not a multiple of it.
    for (unsigned calls = 0; calls < 100 && deleted < kFlows; ++calls)
      deleted += table.expire(deadline + 1, generation % 2 ? 67 : 1000);
    CHECK(deleted == kFlows);
    CHECK(table.size() == 0);
    const auto positions = lookup_all(table, first, kFlows);
    CHECK(std::count_if(positions.begin(), positions.end(), [](std::int32_t p) { return p >= 0; }) == 0);
  }
  for (std::uint32_t position = 0; position < table.slot_count(); ++position)
    CHECK(table.key_at(static_cast<std::int32_t>(position)) == nullptr);
}

TEST_CASE("FlowTable: expire calls back for expired entries with stream state", "[flow_table]") {
  FlowTable table(unique_name().c_str(), 1024, SOCKET_ID_ANY);
  // 0..99: expired, streams 1..100 on the even ones; 100..199: live, all with streams.
  for (std::uint32_t i = 0; i < 200; ++i) {
    const FlowKey key = make_key(i);
    const std::uint32_t stream = i >= 100 || i % 2 == 0 ? i + 1 : 0;
    REQUIRE(table.insert(key, flow_signature(key), entry_for(i, i < 100 ? 10 : 1000, stream)) >= 0);
  }
  struct Seen {
    std::set<std::uint32_t> streams;
    std::size_t calls = 0;
    std::size_t live = 0;
  } seen;
  const auto callback = [](void* context, FlowEntry& entry) {
    auto& s = *static_cast<Seen*>(context);
    ++s.calls;
    s.streams.insert(entry.stream);
    if (entry.deadline_tsc >= 500) ++s.live;
  };
  unsigned deleted = 0;
  for (int i = 0; i < 50; ++i) deleted += table.expire(500, 16, callback, &seen);
  CHECK(deleted == 100);
  CHECK(seen.calls == 50);  // the even expired ones only
  CHECK(seen.live == 0);
  std::set<std::uint32_t> expected;
  for (std::uint32_t i = 0; i < 100; i += 2) expected.insert(i + 1);
  CHECK(seen.streams == expected);
  CHECK(table.size() == 100);
}

TEST_CASE("FlowTable: expire on an empty table", "[flow_table]") {
  FlowTable table(unique_name().c_str(), 1024, SOCKET_ID_ANY);
  CHECK(table.expire(1'000'000, 64) == 0);
  CHECK(table.expire(1'000'000, 64) == 0);
  CHECK(table.size() == 0);
}

TEST_CASE("FlowTable: filling a small table ends with -ENOSPC, not a crash", "[flow_table]") {
  FlowTable table(unique_name().c_str(), 1024, SOCKET_ID_ANY);
  std::uint32_t inserted = 0;
  std::int32_t last = 0;
  std::set<std::int32_t> positions;
  std::uint32_t i = 0;
  for (; i < 4096; ++i) {
    const FlowKey key = make_key(i);
    last = table.insert(key, flow_signature(key), entry_for(i, i));
    if (last < 0) break;
    positions.insert(last);
    ++inserted;
  }
  INFO("inserted " << inserted << " of capacity 1024 before " << last);
  CHECK(last == -ENOSPC);
  CHECK(inserted <= 1024);
  CHECK(inserted >= 900);  // cuckoo hashing fills well over 90% before failing
  CHECK(positions.size() == inserted);
  CHECK(*positions.rbegin() < 1024);
  CHECK(table.size() == inserted);

  // A failed insert changes nothing: every stored flow is still found with its entry.
  const auto found = lookup_all(table, 0, inserted);
  std::size_t missing = 0, wrong = 0;
  for (std::uint32_t k = 0; k < inserted; ++k) {
    if (found[k] < 0) ++missing;
    else if (table.at(found[k]).deadline_tsc != k) ++wrong;
  }
  CHECK(missing == 0);
  CHECK(wrong == 0);
  // Further inserts keep failing cleanly.
  for (std::uint32_t k = i + 1; k < i + 100; ++k) {
    const FlowKey key = make_key(k);
    const std::int32_t r = table.insert(key, flow_signature(key), entry_for(k, k));
    if (r < 0) CHECK(r == -ENOSPC);
  }
}

TEST_CASE("FlowTable: names are process-global", "[flow_table]") {
  const std::string name = unique_name();
  FlowTable first(name.c_str(), 1024, SOCKET_ID_ANY);
  // DPDK logs the failed ring and hash creation at error level: keep the test output clean.
  const std::uint32_t log_level = rte_log_get_global_level();
  rte_log_set_global_level(RTE_LOG_CRIT);
  CHECK_THROWS_WITH(FlowTable(name.c_str(), 1024, SOCKET_ID_ANY),
                    Catch::Contains("cannot create flow table " + name));
  rte_log_set_global_level(log_level);
  // The first table is unharmed.
  const FlowKey key = make_key(1);
  CHECK(first.insert(key, flow_signature(key), entry_for(1, 1)) >= 0);
  CHECK(first.size() == 1);
}

TEST_CASE("flow_signature", "[flow_table]") {
  const FlowKey a = make_key(77);
  FlowKey b;
  std::memset(&b, 0xab, sizeof b);  // dirty memory, as in a reused mbuf area or stack slot
  b.src = a.src;
  b.dst = a.dst;
  b.src_port = a.src_port;
  b.dst_port = a.dst_port;
  b.ip_proto = a.ip_proto;

  SECTION("value-initialised keys have zero pad bytes") {
    CHECK(a.pad[0] == 0);
    CHECK(a.pad[1] == 0);
    CHECK(a.pad[2] == 0);
  }
  SECTION("the pad bytes take part in the hash, so they must be zeroed") {
    CHECK(flow_signature(b) != flow_signature(a));
    std::memset(b.pad, 0, sizeof b.pad);
    CHECK(std::memcmp(&a, &b, sizeof a) == 0);
    CHECK(flow_signature(b) == flow_signature(a));
  }
  SECTION("equal keys, equal signatures; any field change, another signature") {
    CHECK(flow_signature(make_key(77)) == flow_signature(a));
    FlowKey c = a;
    c.src_port = static_cast<std::uint16_t>(c.src_port ^ 1);
    CHECK(flow_signature(c) != flow_signature(a));
    c = a;
    c.ip_proto = tether::parsers::kProtoUdp;
    CHECK(flow_signature(c) != flow_signature(a));
    c = a;
    c.dst[0] ^= 0x80;
    CHECK(flow_signature(c) != flow_signature(a));
  }
  SECTION("the signature is CRC32C of the 40 5-tuple bytes with seed 0x74657468 on every machine") {
    for (std::uint32_t i : {0u, 1u, 77u, 65536u, 0xffffffu}) {
      const FlowKey k = make_key(i);
      CHECK(flow_signature(k) == crc32c(&k, tether::dataplane::kFlowKeyHashedBytes, 0x74657468));
    }
    CHECK(tether::dataplane::kFlowKeyHashedBytes == 40);  // what other tether versions hash
  }
}

TEST_CASE("flow_signature: keys at any address FlowKey's alignment allows", "[flow_table]") {
  // rte_hash_crc (flow_signature, the rte_hash itself) reads the 40-byte key as five
  // uint64_t loads. FlowKey's own alignment is only 2, so a key in a packet-context array may
  // sit at an address that is not 8-aligned: undefined behaviour, which UBSan reports as
  // "load of misaligned address" in rte_hash_crc.h. The key type should be 8-aligned.
  CHECK(alignof(FlowKey) >= alignof(std::uint64_t));

  const FlowKey reference = make_key(5);
  const std::uint32_t expected = flow_signature(reference);
  alignas(8) unsigned char storage[sizeof(FlowKey) + 8];
  for (std::size_t offset = 0; offset < 8; offset += alignof(FlowKey)) {
    auto* key = new (storage + offset) FlowKey(reference);
    INFO("key at offset " << offset << " from an 8-aligned address");
    CHECK(flow_signature(*key) == expected);
  }
}

TEST_CASE("fill_flow_key: the key and signature the classifier makes", "[flow_table]") {
  using tether::dataplane::fill_flow_key;
  for (std::uint32_t i : {0u, 1u, 77u, 65535u, 0xffffffu}) {
    const FlowKey expected = make_key(i);
    FlowKey key;
    std::memset(&key, 0xab, sizeof key);  // dirty memory, as in the burst's reused records
    const std::uint32_t signature = fill_flow_key(key, expected.src, expected.dst, expected.src_port,
                                                  expected.dst_port, expected.ip_proto);
    INFO("flow " << i);
    CHECK(std::memcmp(&key, &expected, sizeof key) == 0);
    CHECK(signature == flow_signature(expected));
  }
  SECTION("every field reaches the signature") {
    const FlowKey a = make_key(9);
    const std::uint32_t base = flow_signature(a);
    FlowKey scratch;
    CHECK(fill_flow_key(scratch, a.src, a.dst, a.src_port, a.dst_port, tether::parsers::kProtoUdp) != base);
    CHECK(fill_flow_key(scratch, a.src, a.dst, a.src_port,
                        static_cast<std::uint16_t>(a.dst_port + 1), a.ip_proto) != base);
    CHECK(fill_flow_key(scratch, a.src, a.dst, static_cast<std::uint16_t>(a.src_port + 1),
                        a.dst_port, a.ip_proto) != base);
    CHECK(fill_flow_key(scratch, a.dst, a.src, a.src_port, a.dst_port, a.ip_proto) != base);
  }
}

TEST_CASE("fill_flow_key: IPv6 addresses and the short path's address words", "[flow_table]") {
  using tether::dataplane::fill_flow_key;
  using tether::parsers::address_words;
  SECTION("IPv6: all four address words, each in its place") {
    FlowKey expected{};
    for (std::uint8_t b = 0; b < 16; ++b) {
      expected.src[b] = static_cast<std::uint8_t>(0x20 + b);
      expected.dst[b] = static_cast<std::uint8_t>(0xa0 + b);
    }
    expected.src_port = 40000;
    expected.dst_port = 443;
    expected.ip_proto = tether::parsers::kProtoTcp;
    FlowKey key;
    std::memset(&key, 0xab, sizeof key);
    const std::uint32_t signature = fill_flow_key(key, address_words(expected.src),
                                                  address_words(expected.dst), expected.src_port,
                                                  expected.dst_port, expected.ip_proto);
    CHECK(std::memcmp(&key, &expected, sizeof key) == 0);
    CHECK(signature == flow_signature(expected));
  }
  SECTION("ipv4_mapped_words makes the key ipv4_mapped makes") {
    const FlowKey expected = make_key(0x123456);
    const std::uint8_t client[4] = {10, 0x12, 0x34, 0x56};
    const std::uint8_t vip[4] = {192, 0, 2, 100};
    FlowKey key;
    std::memset(&key, 0xab, sizeof key);
    const std::uint32_t signature =
        fill_flow_key(key, tether::parsers::ipv4_mapped_words(client),
                      tether::parsers::ipv4_mapped_words(vip), expected.src_port,
                      expected.dst_port, expected.ip_proto);
    CHECK(std::memcmp(&key, &expected, sizeof key) == 0);
    CHECK(signature == flow_signature(expected));
  }
}

TEST_CASE("crc32c helpers: the CRC32C rte_hash_crc computes", "[flow_table]") {
  using tether::dataplane::crc32c_4byte;
  using tether::dataplane::crc32c_8byte;
  const std::uint64_t values[] = {0, 1, 0xffffffffffffffffull, 0x0123456789abcdefull,
                                  0xffff00000a000001ull, 0x8000000000000000ull};
  const std::uint32_t seeds[] = {0, 0x7e7e, 0x74657468, 0xffffffffu};
  for (std::uint64_t value : values)
    for (std::uint32_t seed : seeds) {
      INFO("value " << value << " seed " << seed);
      CHECK(crc32c_8byte(value, seed) == rte_hash_crc_8byte(value, seed));
      CHECK(crc32c_4byte(static_cast<std::uint32_t>(value), seed) ==
            rte_hash_crc_4byte(static_cast<std::uint32_t>(value), seed));
      // A chain through the 64-bit state: the upper half never leaks into the next step.
      CHECK(static_cast<std::uint32_t>(crc32c_8byte(value, crc32c_8byte(~value, seed))) ==
            rte_hash_crc_8byte(value, rte_hash_crc_8byte(~value, seed)));
    }
}
