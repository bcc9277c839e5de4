// The splitmix64 finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number
// generators", 2014): every input bit reaches every output bit. The last step of tether's
// portable digests (Call-IDs, Maglev's backend names), which must agree across instances
// and so cannot use std::hash.
#pragma once

#include <cstdint>

namespace tether::parsers {

constexpr std::uint64_t mix64(std::uint64_t h) {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

}  // namespace tether::parsers
