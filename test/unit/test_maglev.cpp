// Weighted Maglev (control/maglev.hpp): shares follow the weights, removing a backend moves
// about 1/N of the flows, and the table depends only on the members, not on their order.
//
// Flows are hashed exactly as the dataplane does: flow_signature() of the FlowKey, then the
// multiply-shift of Worker::pick_backend maps the 32-bit hash onto a slot.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "control/config.hpp"
#include "control/maglev.hpp"
#include "dataplane/flow_table.hpp"

namespace {

using tether::build_maglev_table;
using tether::kNoBackend;
using tether::MaglevMember;

constexpr std::size_t kKeys = 1'000'000;
constexpr std::uint32_t kTableSize = 65537;

// Set TETHER_TEST_FIGURES=1 to print the measured shares and remap fractions.
bool print_figures() { return std::getenv("TETHER_TEST_FIGURES") != nullptr; }

// One million client flows to one VIP:port, as a service sees them: random client address
// and source port, fixed destination.
const std::vector<std::uint32_t>& flow_hashes() {
  static const std::vector<std::uint32_t> hashes = [] {
    std::vector<std::uint32_t> out;
    out.reserve(kKeys);
    std::mt19937_64 rng(0x7465746865724d47ULL);
    const std::uint8_t vip[4] = {192, 0, 2, 100};
    for (std::size_t i = 0; i < kKeys; ++i) {
      const std::uint64_t r = rng();
      const std::uint8_t client[4] = {
          static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(r >> 8),
          static_cast<std::uint8_t>(r >> 16), static_cast<std::uint8_t>(r >> 24)};
      tether::dataplane::FlowKey key{};
      key.src = tether::parsers::ipv4_mapped(client);
      key.dst = tether::parsers::ipv4_mapped(vip);
      key.src_port = static_cast<std::uint16_t>(1024 + (r >> 32) % 64512);
      key.dst_port = 5060;
      key.ip_proto = (r >> 63) ? tether::parsers::kProtoUdp : tether::parsers::kProtoTcp;
      out.push_back(tether::dataplane::flow_signature(key));
    }
    return out;
  }();
  return hashes;
}

// Worker::pick_backend for a five-tuple service.
std::uint16_t pick(const std::vector<std::uint16_t>& table, std::uint32_t hash) {
  return table[static_cast<std::size_t>((static_cast<std::uint64_t>(hash) * table.size()) >> 32)];
}

// Members named "backend-<i>" with backend index i. The names must outlive the members.
struct Pool {
  std::vector<std::string> names;
  std::vector<MaglevMember> members;

  explicit Pool(const std::vector<std::uint32_t>& weights) {
    names.reserve(weights.size());
    for (std::size_t i = 0; i < weights.size(); ++i) names.push_back("backend-" + std::to_string(i));
    for (std::size_t i = 0; i < weights.size(); ++i)
      members.push_back({names[i], weights[i], static_cast<std::uint16_t>(i)});
  }
};

void check_shares(const std::vector<std::uint32_t>& weights) {
  const Pool pool(weights);
  const auto table = build_maglev_table(pool.members, kTableSize);
  REQUIRE(table.size() == kTableSize);

  std::vector<std::size_t> slots(weights.size(), 0);
  std::size_t invalid = 0;
  for (const auto b : table) {
    if (b < weights.size()) ++slots[b];
    else ++invalid;
  }
  REQUIRE(invalid == 0);  // every slot is filled with a configured backend
  std::vector<std::size_t> keys(weights.size(), 0);
  for (const auto h : flow_hashes()) ++keys[pick(table, h)];

  double total = 0;
  for (const auto w : weights) total += w;
  std::ostringstream figures;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const double expected = weights[i] / total;
    const double slot_share = static_cast<double>(slots[i]) / kTableSize;
    const double key_share = static_cast<double>(keys[i]) / kKeys;
    figures << "  backend " << i << " weight " << weights[i] << ": expected "
            << 100 * expected << "%, slots " << 100 * slot_share << "%, keys "
            << 100 * key_share << "%\n";
    INFO("backend " << i << " weight " << weights[i] << " expected " << expected << " slots "
                    << slot_share << " keys " << key_share);
    CHECK(std::abs(slot_share - expected) <= 0.02);
    CHECK(std::abs(key_share - expected) <= 0.02);
    // The slot split is deterministic and much tighter than 2 points: within 5% of the share
    // itself (plus one slot), which also holds for a weight-1 backend next to weight 100.
    CHECK(std::abs(slot_share - expected) <= 0.05 * expected + 1.0 / kTableSize);
    CHECK(slots[i] > 0);
  }
  if (print_figures()) WARN("Maglev shares, table " << kTableSize << ", " << kKeys << " keys:\n" << figures.str());
}

}  // namespace

TEST_CASE("is_prime", "[maglev][config]") {
  for (std::uint32_t n : {0u, 1u, 4u, 9u, 15u, 25u, 100u, 65535u, 65536u, 65541u, 16777215u,
                          4294967295u, 4294836225u /* 65535^2 */,
                          4293001441u /* 65521^2 */})
  {
    INFO(n);
    CHECK_FALSE(tether::is_prime(n));
  }
  for (std::uint32_t n : {2u, 3u, 5u, 7u, 11u, 101u, 251u, 65521u, 65537u, 65539u, 16777213u,
                          4294967291u}) {
    INFO(n);
    CHECK(tether::is_prime(n));
  }
  // Cross-check against trial division for the first few thousand numbers.
  std::size_t primes = 0;
  for (std::uint32_t n = 0; n < 10000; ++n)
    if (tether::is_prime(n)) ++primes;
  CHECK(primes == 1229);
}

TEST_CASE("Maglev: slot and flow shares follow the weights", "[maglev]") {
  SECTION("1, 2, 3") { check_shares({1, 2, 3}); }
  SECTION("5, 1") { check_shares({5, 1}); }
  SECTION("100, 50, 25, 10, 1") { check_shares({100, 50, 25, 10, 1}); }
  SECTION("10 equal") { check_shares(std::vector<std::uint32_t>(10, 1)); }
  SECTION("10 equal, large weights") { check_shares(std::vector<std::uint32_t>(10, 65535)); }
  SECTION("one backend takes everything") { check_shares({7}); }
}

TEST_CASE("Maglev: removing one of N backends moves about 1/N of the flows", "[maglev]") {
  const auto& hashes = flow_hashes();
  std::ostringstream figures;
  for (const std::size_t n : {3u, 5u, 10u, 20u}) {
    const Pool pool(std::vector<std::uint32_t>(n, 1));
    const auto before = build_maglev_table(pool.members, kTableSize);
    std::vector<std::uint16_t> owner(hashes.size());
    for (std::size_t k = 0; k < hashes.size(); ++k) owner[k] = pick(before, hashes[k]);

    double worst = 0, worst_unneeded = 0;
    for (std::size_t removed = 0; removed < n; ++removed) {
      std::vector<MaglevMember> remaining;
      for (std::size_t i = 0; i < n; ++i)
        if (i != removed) remaining.push_back(pool.members[i]);
      const auto after = build_maglev_table(remaining, kTableSize);

      std::size_t moved = 0, moved_unneeded = 0, on_removed = 0, invalid = 0;
      for (std::size_t k = 0; k < hashes.size(); ++k) {
        const std::uint16_t now = pick(after, hashes[k]);
        if (now == removed || now >= n) ++invalid;
        if (owner[k] == removed) ++on_removed;
        if (now != owner[k]) {
          ++moved;
          if (owner[k] != removed) ++moved_unneeded;
        }
      }
      const double fraction = static_cast<double>(moved) / kKeys;
      const double unneeded = static_cast<double>(moved_unneeded) / kKeys;
      worst = std::max(worst, fraction);
      worst_unneeded = std::max(worst_unneeded, unneeded);
      INFO("N " << n << ", removed backend " << removed << ": moved " << fraction
                << " of the keys (" << unneeded << " of them not on the removed backend)");
      CHECK(invalid == 0);  // nothing still goes to the removed backend
      CHECK(on_removed > 0);
      CHECK(moved - moved_unneeded == on_removed);  // every key of the removed backend moved
      CHECK(fraction <= 1.0 / static_cast<double>(n) + 0.03);
      CHECK(unneeded <= 0.03);
    }
    figures << "  N " << n << ": 1/N " << 100.0 / static_cast<double>(n)
            << "%, worst moved " << 100 * worst << "% (of which not from the removed backend "
            << 100 * worst_unneeded << "%)\n";
  }
  if (print_figures()) WARN("Maglev remap on removal (worst over the removed backend):\n" << figures.str());
}

TEST_CASE("Maglev: adding a backend also moves only about 1/(N+1)", "[maglev]") {
  const auto& hashes = flow_hashes();
  const Pool pool(std::vector<std::uint32_t>(6, 1));
  const std::vector<MaglevMember> five(pool.members.begin(), pool.members.begin() + 5);
  const auto before = build_maglev_table(five, kTableSize);
  const auto after = build_maglev_table(pool.members, kTableSize);
  std::size_t moved = 0, moved_elsewhere = 0;
  for (const auto h : hashes) {
    const auto a = pick(before, h), b = pick(after, h);
    if (a != b) {
      ++moved;
      if (b != 5) ++moved_elsewhere;
    }
  }
  const double fraction = static_cast<double>(moved) / kKeys;
  INFO("moved " << fraction << ", to an old backend " << static_cast<double>(moved_elsewhere) / kKeys);
  CHECK(fraction <= 1.0 / 6 + 0.03);
  CHECK(static_cast<double>(moved_elsewhere) / kKeys <= 0.03);
}

TEST_CASE("Maglev: independent builds from the same members are identical", "[maglev]") {
  const Pool pool({3, 1, 4, 1, 5, 9, 2, 6});
  const auto first = build_maglev_table(pool.members, kTableSize);
  const auto second = build_maglev_table(pool.members, kTableSize);
  CHECK(first == second);

  SECTION("copies of the names (no shared storage) give the same table") {
    const Pool other({3, 1, 4, 1, 5, 9, 2, 6});
    CHECK(build_maglev_table(other.members, kTableSize) == first);
  }

  SECTION("member list reversed") {
    std::vector<MaglevMember> reversed(pool.members.rbegin(), pool.members.rend());
    const auto table = build_maglev_table(reversed, kTableSize);
    std::size_t differing = 0;
    for (std::size_t i = 0; i < kTableSize; ++i) differing += table[i] != first[i];
    INFO(differing << " of " << kTableSize << " slots differ");
    CHECK(differing == 0);
  }

  SECTION("member list shuffled") {
    std::vector<MaglevMember> shuffled = pool.members;
    std::mt19937 rng(42);
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    const auto table = build_maglev_table(shuffled, kTableSize);
    std::size_t differing = 0;
    for (std::size_t i = 0; i < kTableSize; ++i) differing += table[i] != first[i];
    INFO(differing << " of " << kTableSize << " slots differ");
    CHECK(differing == 0);
  }

  SECTION("equal weights, list reversed") {
    const Pool equal(std::vector<std::uint32_t>(4, 1));
    const auto forward = build_maglev_table(equal.members, kTableSize);
    std::vector<MaglevMember> reversed(equal.members.rbegin(), equal.members.rend());
    const auto table = build_maglev_table(reversed, kTableSize);
    std::size_t differing = 0;
    for (std::size_t i = 0; i < kTableSize; ++i) differing += table[i] != forward[i];
    INFO(differing << " of " << kTableSize << " slots differ");
    CHECK(differing == 0);
  }
}

TEST_CASE("Maglev: the table is a function of names, not of backend indices' positions", "[maglev]") {
  // Same names and weights, different backend numbers: each slot maps consistently.
  const Pool pool({1, 1, 1});
  std::vector<MaglevMember> renumbered = pool.members;
  for (auto& m : renumbered) m.backend = static_cast<std::uint16_t>(m.backend + 10);
  const auto a = build_maglev_table(pool.members, 1009);
  const auto b = build_maglev_table(renumbered, 1009);
  std::size_t mismatched = 0;
  for (std::size_t i = 0; i < a.size(); ++i) mismatched += b[i] != a[i] + 10;
  CHECK(mismatched == 0);
}

TEST_CASE("Maglev: weight 0", "[maglev]") {
  SECTION("a weight-0 member gets no slot") {
    const Pool pool({2, 0, 1});
    const auto table = build_maglev_table(pool.members, 1009);
    std::vector<std::size_t> count(3, 0);
    for (const auto b : table) {
      REQUIRE(b < 3);
      ++count[b];
    }
    CHECK(count[1] == 0);
    CHECK(count[0] + count[2] == 1009);
    CHECK(std::abs(static_cast<double>(count[0]) / 1009 - 2.0 / 3) <= 0.02);
  }
  SECTION("all weights 0: every slot is kNoBackend") {
    const Pool pool({0, 0, 0});
    const auto table = build_maglev_table(pool.members, 101);
    REQUIRE(table.size() == 101);
    CHECK(std::all_of(table.begin(), table.end(), [](std::uint16_t b) { return b == kNoBackend; }));
  }
  SECTION("no members: every slot is kNoBackend") {
    const auto table = build_maglev_table({}, 101);
    REQUIRE(table.size() == 101);
    CHECK(std::all_of(table.begin(), table.end(), [](std::uint16_t b) { return b == kNoBackend; }));
  }
}

TEST_CASE("Maglev: table sizes", "[maglev]") {
  const Pool pool({1});
  for (const std::uint32_t size : {101u, 65537u}) {
    const auto table = build_maglev_table(pool.members, size);
    REQUIRE(table.size() == size);
    CHECK(std::all_of(table.begin(), table.end(), [](std::uint16_t b) { return b == 0; }));
  }
  SECTION("small prime, several backends: every slot filled, shares close") {
    const Pool three({1, 1, 1});
    const auto table = build_maglev_table(three.members, 101);
    std::vector<std::size_t> count(3, 0);
    for (const auto b : table) {
      REQUIRE(b < 3);
      ++count[b];
    }
    for (const auto c : count) CHECK((c == 33 || c == 34));
  }
  SECTION("the multiply-shift lookup reaches both ends of the table") {
    const auto table = build_maglev_table(pool.members, 101);
    CHECK(pick(table, 0) == 0);
    CHECK(pick(table, 0xffffffffu) == 0);
    CHECK((static_cast<std::uint64_t>(0xffffffffu) * 101 >> 32) == 100);
  }
}
