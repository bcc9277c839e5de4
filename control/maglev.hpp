// Maglev consistent hashing (Eisenbud et al., NSDI 2016) with weights.
//
// Each backend walks its own permutation of the table, seeded only by its name, so two
// tether instances with the same configuration build identical tables whatever the order of
// the list, and removing one of N backends moves only about 1/N of the slots. Weights: in
// every round a backend earns `weight` credits and claims a slot per `max_weight` credits,
// so slot shares follow the weights and a weight-0 backend gets no slot.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace tether {

inline constexpr std::uint16_t kNoBackend = 0xffff;

struct MaglevMember {
  std::string_view name;  // the permutation's seed: stable across restarts and instances
  std::uint32_t weight;
  std::uint16_t backend;  // what the table holds for this member
};

// `size` must be prime. Every slot is kNoBackend when no member has a positive weight.
std::vector<std::uint16_t> build_maglev_table(std::span<const MaglevMember> members,
                                              std::uint32_t size);

}  // namespace tether
