// IP fragments: parse_fragment (parsers/fragment.hpp) on every status and on every prefix of
// good fragments, fragment_key, a worker's FragmentBuffer and the shared FragmentTable's
// coverage and progress, and the workers' handoff rings (dataplane/fragments.hpp).
#include <catch2/catch.hpp>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_memory.h>

#include <cstring>

#include "dataplane/fragments.hpp"
#include "frame_builder.hpp"
#include "parsers/fragment.hpp"
#include "parsers/packet.hpp"

using namespace test_frames;
using tether::dataplane::FragmentBuffer;
using tether::dataplane::fragment_key;
using tether::parsers::Fragment;
using tether::parsers::FragmentStatus;
using tether::parsers::ParsedFrame;
using tether::parsers::ParseStatus;

namespace tether::parsers {
inline std::ostream& operator<<(std::ostream& os, FragmentStatus s) { return os << to_string(s); }
}  // namespace tether::parsers

namespace {

// parse_frame, which must stop at the fragment, then parse_fragment on an exact-size copy.
FragmentStatus parse(const Bytes& frame, Fragment& out) {
  ParsedFrame parsed;
  const ParseStatus status = parse_exact(frame, parsed);
  REQUIRE((status == ParseStatus::ipv4_fragment || status == ParseStatus::ipv6_fragment));
  const Bytes copy(frame.begin(), frame.end());
  return tether::parsers::parse_fragment(std::span<const std::uint8_t>(copy.data(), copy.size()),
                                         parsed.l3_offset, status == ParseStatus::ipv6_fragment, out);
}

// An IPv6 fragment header: next header, offset in bytes (a multiple of 8), M, identification.
Bytes fragment_header(std::uint8_t next, unsigned offset, bool more, std::uint32_t id) {
  Bytes b;
  put8(b, next);
  put8(b, 0);
  put16(b, offset | (more ? 1 : 0));
  put32(b, id);
  return b;
}

Bytes ipv4_fragment(std::uint8_t proto, const Bytes& data, unsigned offset, bool more) {
  return ethernet(0x0800, ipv4(proto, data, kClient4, kVip4,
                               {.flags_fragment = static_cast<std::uint16_t>((more ? 0x2000 : 0) | offset / 8)}));
}

}  // namespace

TEST_CASE("parse_fragment: an IPv4 UDP datagram's first and later fragments", "[fragment]") {
  const Bytes sip = sequence_bytes(40, 0x30);
  Bytes datagram = udp(5070, 5060, sip, 8 + 100);  // UDP says 108 bytes: 60 more to come
  Fragment first;
  REQUIRE(parse(ipv4_fragment(17, datagram, 0, true), first) == FragmentStatus::ok);
  CHECK(first.first());
  CHECK_FALSE(first.whole());
  CHECK(first.more);
  CHECK(first.id == 0x1234);
  CHECK(first.protocol == 17);
  CHECK(first.l4_proto == 17);
  CHECK(first.src_ip == mapped(kClient4));
  CHECK(first.dst_ip == mapped(kVip4));
  CHECK(first.src_port == 5070);
  CHECK(first.dst_port == 5060);
  CHECK(first.udp_length == 108);
  CHECK(first.offset == 0);
  CHECK(first.length == 48);
  CHECK(first.data_offset == 14 + 20);
  CHECK(first.payload_offset == 14 + 20 + 8);
  CHECK(first.payload_length == 40);
  CHECK(first.header_end == 8);

  Fragment later;
  REQUIRE(parse(ipv4_fragment(17, sequence_bytes(60), 48, false), later) == FragmentStatus::ok);
  CHECK_FALSE(later.first());
  CHECK_FALSE(later.more);
  CHECK(later.offset == 48);
  CHECK(later.length == 60);
  CHECK(later.src_port == 0);
  const auto first_key = fragment_key(first);
  const auto later_key = fragment_key(later);
  CHECK(FragmentBuffer::same_datagram(first_key, later_key));  // one datagram, one key
}

TEST_CASE("parse_fragment: refuses what RFC 1858, 3128 and 7112 refuse", "[fragment]") {
  Fragment f;
  SECTION("a first fragment without the whole TCP header, options included") {
    const Bytes options{0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07};
    Bytes segment = tcp(40000, 80, 0x02, {}, {{}, options});
    segment.resize(24);  // 20 of 28 header bytes, padded to a multiple of 8
    CHECK(parse(ipv4_fragment(6, segment, 0, true), f) == FragmentStatus::tiny_first);
    segment.resize(16);
    CHECK(parse(ipv4_fragment(6, segment, 0, true), f) == FragmentStatus::tiny_first);
  }
  SECTION("a TCP fragment at offset 8 (FO=1) rewrites the ports and flags") {
    CHECK(parse(ipv4_fragment(6, Bytes(16, 0), 8, true), f) == FragmentStatus::tcp_offset_one);
    CHECK(parse(ipv4_fragment(17, Bytes(16, 0), 8, true), f) == FragmentStatus::ok);  // UDP's header is 8
  }
  SECTION("lengths") {
    CHECK(parse(ipv4_fragment(17, Bytes(12, 0), 16, true), f) == FragmentStatus::bad_length);  // not x8
    CHECK(parse(ipv4_fragment(17, Bytes(12, 0), 16, false), f) == FragmentStatus::ok);        // last
    CHECK(parse(ipv4_fragment(17, Bytes{}, 16, false), f) == FragmentStatus::bad_length);      // empty
    // Beyond 65,535 bytes of datagram (the ping of death).
    CHECK(parse(ipv4_fragment(1, Bytes(16, 0), 65528, false), f) == FragmentStatus::bad_length);
    CHECK(parse(ipv4_fragment(1, Bytes(7, 0), 65528, false), f) == FragmentStatus::ok);
    // A UDP length shorter than the first fragment's own bytes.
    CHECK(parse(ipv4_fragment(17, udp(1, 2, Bytes(16, 0), 9), 0, true), f) == FragmentStatus::bad_length);
  }
  SECTION("IPv6: the first fragment holds the whole header chain (RFC 7112)") {
    Bytes chain = fragment_header(60, 0, true, 7);
    Bytes options = ipv6_extension(17, 1);  // 16 bytes of destination options, then UDP
    append(chain, options);
    Bytes cut = chain;  // the UDP header would be in the next fragment
    CHECK(parse(ethernet(0x86dd, ipv6(44, cut)), f) == FragmentStatus::tiny_first);
    append(chain, udp(5070, 5060, Bytes(16, 0), 400));
    REQUIRE(parse(ethernet(0x86dd, ipv6(44, chain)), f) == FragmentStatus::ok);
    CHECK(f.ipv6);
    CHECK(f.protocol == 60);  // what every fragment's header says: the key's protocol
    CHECK(f.l4_proto == 17);
    CHECK(f.dst_port == 5060);
    CHECK(f.header_end == 16 + 8);
    CHECK(f.id == 7);
  }
  SECTION("IPv6: a fragment header after the unfragmentable part; a later fragment") {
    Bytes hop = ipv6_extension(44);
    append(hop, fragment_header(17, 1232, false, 0xdeadbeef));
    append(hop, Bytes(100, 0));
    REQUIRE(parse(ethernet(0x86dd, ipv6(0, hop)), f) == FragmentStatus::ok);
    CHECK(f.offset == 1232);
    CHECK(f.length == 100);
    CHECK(f.id == 0xdeadbeef);
    CHECK(f.data_offset == 14 + 40 + 8 + 8);
  }
}

TEST_CASE("parse_fragment: never reads past the frame, for every prefix", "[fragment]") {
  Bytes v6 = fragment_header(60, 0, true, 9);
  append(v6, ipv6_extension(6, 0));
  append(v6, tcp(1, 2, 0x02, Bytes(12, 0)));  // 8 + 32 bytes: a multiple of 8, as M wants
  const Bytes frames[] = {ipv4_fragment(17, udp(1, 2, Bytes(32, 0), 200), 0, true),
                          ipv4_fragment(6, tcp(1, 2, 0x10, Bytes(12, 0)), 0, true),
                          ethernet(0x86dd, ipv6(44, v6))};
  for (const Bytes& frame : frames) {
    ParsedFrame parsed;
    const ParseStatus status = parse_exact(frame, parsed);
    REQUIRE((status == ParseStatus::ipv4_fragment || status == ParseStatus::ipv6_fragment));
    for (std::size_t size = 0; size <= frame.size(); ++size) {
      const Bytes prefix(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(size));
      Fragment f;
      const auto result = tether::parsers::parse_fragment(
          std::span<const std::uint8_t>(prefix.data(), prefix.size()), parsed.l3_offset,
          status == ParseStatus::ipv6_fragment, f);
      if (size < frame.size()) CHECK(result != FragmentStatus::ok);  // the IP lengths say more
      else CHECK(result == FragmentStatus::ok);
    }
  }
}

TEST_CASE("FragmentBuffer: overlaps, limits and completeness", "[fragment]") {
  Fragment f{};
  f.src_ip = mapped(kClient4);
  f.dst_ip = mapped(kVip4);
  f.id = 1;
  f.protocol = 17;
  const auto key_a = fragment_key(f);
  f.id = 2;
  const auto key_b = fragment_key(f);
  int packets[64];
  const auto piece = [&](const tether::dataplane::SessionKey& key, std::uint32_t offset, std::uint16_t length,
                         bool more, int n = 0) {
    return FragmentBuffer::Piece{&packets[n], key, 0, offset, length, more, 34, 0};
  };

  FragmentBuffer buffer(8, 5);
  CHECK(buffer.hold(piece(key_a, 16, 16, true)) == FragmentBuffer::Admit::held);
  CHECK(buffer.complete_length(key_a) == 0);
  CHECK(buffer.hold(piece(key_a, 24, 16, true)) == FragmentBuffer::Admit::overlap);
  CHECK(buffer.hold(piece(key_a, 8, 16, true)) == FragmentBuffer::Admit::overlap);
  CHECK(buffer.hold(piece(key_a, 16, 16, true)) == FragmentBuffer::Admit::overlap);  // a duplicate
  CHECK(buffer.hold(piece(key_b, 16, 16, true)) == FragmentBuffer::Admit::held);     // another datagram
  CHECK(buffer.hold(piece(key_a, 40, 5, false)) == FragmentBuffer::Admit::held);
  CHECK(buffer.complete_length(key_a) == 0);  // 0-16 and 32-40 missing
  // A second last fragment, or one past the last's end, contradicts the length.
  CHECK(buffer.hold(piece(key_a, 48, 8, false)) == FragmentBuffer::Admit::overlap);
  CHECK(buffer.hold(piece(key_a, 48, 8, true)) == FragmentBuffer::Admit::overlap);
  CHECK(buffer.hold(piece(key_a, 32, 8, true)) == FragmentBuffer::Admit::held);
  CHECK(buffer.hold(piece(key_a, 0, 16, true)) == FragmentBuffer::Admit::held);
  CHECK(buffer.complete_length(key_a) == 45);
  CHECK(buffer.size() == 5);
  CHECK(buffer.hold(piece(key_b, 0, 8, true)) == FragmentBuffer::Admit::source_limit);  // 5 from the client
  unsigned removed = 0;
  buffer.remove_if([&](const FragmentBuffer::Piece& p, std::uint32_t) {
    const bool mine = FragmentBuffer::same_datagram(p.key, key_a);
    removed += mine;
    return mine;
  });
  CHECK(removed == 4);
  CHECK(buffer.size() == 1);

  SECTION("full") {
    FragmentBuffer small(2, 2);
    CHECK(small.hold(piece(key_a, 0, 8, true)) == FragmentBuffer::Admit::held);
    f.src_ip = mapped(kVip4);  // another source
    const auto other = fragment_key(f);
    CHECK(small.hold(piece(other, 0, 8, true)) == FragmentBuffer::Admit::held);
    CHECK(small.hold(piece(other, 8, 8, true)) == FragmentBuffer::Admit::full);
  }
  SECTION("too many pieces of one datagram") {
    FragmentBuffer large(100, 100);
    for (unsigned i = 0; i < tether::dataplane::kMaxFragmentsPerDatagram; ++i)
      REQUIRE(large.hold(piece(key_a, i * 8, 8, true)) == FragmentBuffer::Admit::held);
    CHECK(large.hold(piece(key_a, 1000, 8, true)) == FragmentBuffer::Admit::too_many);
  }
}

TEST_CASE("FragmentTable: what went through, overlaps, the fragment count, reuse", "[fragment]") {
  using tether::dataplane::FragmentTable;
  using tether::dataplane::SessionRoute;
  FragmentTable table("ut_fragments", 64, 1, SOCKET_ID_ANY);
  Fragment f{};
  f.src_ip = mapped(kClient4);
  f.dst_ip = mapped(kVip4);
  f.id = 77;
  f.protocol = 17;
  const auto key = fragment_key(f);
  const auto signature = tether::dataplane::session_signature(key);
  bool created = false;
  const std::int32_t position = table.add(key, signature, SessionRoute{2, 8}, 100, &created);
  REQUIRE(position >= 0);
  REQUIRE(created);
  table.restart(position);
  CHECK(table.cover(position, 0, 1480));
  CHECK(table.cover(position, 1480, 1480));
  CHECK(table.cover(position, 2960, 45));         // a last fragment, not a multiple of 8
  CHECK_FALSE(table.cover(position, 2960, 8));    // a duplicate
  CHECK_FALSE(table.cover(position, 1472, 16));   // across two fragments that went through
  CHECK(table.cover(position, 4096, 8));          // a word boundary (unit 512)
  CHECK(table.cover(position, 65528, 7));         // the datagram's last unit
  CHECK_FALSE(table.cover(position, 65528, 7));
  CHECK(table.count_fragment(position) == 1);
  CHECK(table.count_fragment(position) == 2);

  // Expired but not swept, added again: restarted, a new datagram starts from nothing.
  REQUIRE(table.add(key, signature, SessionRoute{1, 8}, 150, &created) == position);
  CHECK_FALSE(created);
  table.restart(position);
  CHECK(table.cover(position, 2960, 8));
  CHECK(table.count_fragment(position) == 1);
  // Expired, swept, added again: the same.
  table.sweep(200, 1u << 20);
  const std::int32_t again = table.add(key, signature, SessionRoute{1, 8}, 300, &created);
  REQUIRE(again >= 0);
  REQUIRE(created);
  table.restart(again);
  CHECK(table.cover(again, 0, 1480));
  CHECK(table.count_fragment(again) == 1);
}

namespace {

// The client's UDP datagram to the VIP under identification `id`.
tether::dataplane::SessionKey client_datagram(std::uint32_t id) {
  Fragment f{};
  f.src_ip = mapped(kClient4);
  f.dst_ip = mapped(kVip4);
  f.id = id;
  f.protocol = 17;
  return fragment_key(f);
}

}  // namespace

TEST_CASE("FragmentTable: the bytes that went through complete a datagram once", "[fragment]") {
  using tether::dataplane::FragmentTable;
  using Progress = FragmentTable::Progress;
  FragmentTable table("ut_fragment_progress", 64, 1, SOCKET_ID_ANY);
  const auto key = client_datagram(78);
  const auto signature = tether::dataplane::session_signature(key);
  const std::int32_t position = table.add(key, signature, {1, 8}, 100);
  REQUIRE(position >= 0);
  table.restart(position);
  CHECK(table.memory_bytes() > 64u * 1024);  // the coverage: 1 KB a slot

  // The last fragment first (its length known), then the rest: the one that fills it completes.
  CHECK(table.count_bytes(position, 2960, 45, true) == Progress::partial);
  CHECK_FALSE(table.complete(position));
  CHECK(table.count_bytes(position, 0, 1480, false) == Progress::partial);
  CHECK(table.count_bytes(position, 1480, 1480, false) == Progress::complete);
  CHECK(table.complete(position));
  // Past the end, or a second last fragment: contradicts the length, changes nothing.
  CHECK(table.count_bytes(position, 3008, 8, false) == Progress::contradicts);
  CHECK(table.count_bytes(position, 2960, 45, true) == Progress::contradicts);
  CHECK(table.complete(position));

  SECTION("in order, the last fragment completes it") {
    table.restart(position);
    CHECK_FALSE(table.complete(position));
    CHECK(table.count_bytes(position, 0, 1480, false) == Progress::partial);
    CHECK(table.count_bytes(position, 1480, 1480, false) == Progress::partial);
    CHECK(table.count_bytes(position, 2960, 45, true) == Progress::complete);
  }
  SECTION("a gap: never complete") {
    table.restart(position);
    CHECK(table.count_bytes(position, 0, 1480, false) == Progress::partial);
    CHECK(table.count_bytes(position, 2960, 45, true) == Progress::partial);
    CHECK_FALSE(table.complete(position));
  }
}

TEST_CASE("FragmentHandoffs: each worker's ring, bounded, owning what it holds", "[fragment]") {
  using tether::dataplane::FragmentHandoffs;
  rte_mempool* pool = rte_pktmbuf_pool_create("ut_handoff_pool", 63, 0, 0, 256, SOCKET_ID_ANY);
  REQUIRE(pool != nullptr);
  const auto key = client_datagram(79);
  {
    FragmentHandoffs handoffs(2, 8, SOCKET_ID_ANY);
    REQUIRE(handoffs.workers() == 2);
    CHECK(handoffs.memory_bytes() >= 2 * 8 * sizeof(FragmentBuffer::Piece));
    for (std::uint32_t i = 0; i < 8; ++i) {
      FragmentBuffer::Piece piece{rte_pktmbuf_alloc(pool), key, 5, i * 8, 8, true, 34, 1000 + i};
      piece.handed = true;
      REQUIRE(handoffs.hand(1, piece));
    }
    rte_mbuf* spare = rte_pktmbuf_alloc(pool);
    CHECK_FALSE(handoffs.hand(1, FragmentBuffer::Piece{spare, key, 5, 64, 8, true, 34, 0}));  // full
    rte_pktmbuf_free(spare);
    FragmentBuffer::Piece taken[4];
    CHECK(handoffs.take(0, taken, 4) == 0);  // worker 0's ring is its own
    REQUIRE(handoffs.take(1, taken, 4) == 4);
    for (std::uint32_t i = 0; i < 4; ++i) {  // in order, whole
      CHECK(taken[i].offset == i * 8);
      CHECK(taken[i].arrived == 1000 + i);
      CHECK(taken[i].handed);
      CHECK(FragmentBuffer::same_datagram(taken[i].key, key));
      rte_pktmbuf_free(static_cast<rte_mbuf*>(taken[i].packet));
    }
    CHECK(rte_mempool_in_use_count(pool) == 4);
  }  // the 4 pieces still in the ring go back to their pool
  CHECK(rte_mempool_in_use_count(pool) == 0);
  rte_mempool_free(pool);
}
