#include "control/maglev.hpp"

#include <algorithm>

#include "parsers/mix.hpp"

namespace tether {
namespace {

// FNV-1a then the splitmix64 finaliser: portable and stable, unlike std::hash.
std::uint64_t name_hash(std::string_view name, std::uint64_t seed) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return parsers::mix64(h);
}

}  // namespace

std::vector<std::uint16_t> build_maglev_table(std::span<const MaglevMember> members,
                                              std::uint32_t size) {
  std::vector<std::uint16_t> table(size, kNoBackend);
  std::uint32_t max_weight = 0;
  for (const auto& m : members) max_weight = std::max(max_weight, m.weight);
  if (max_weight == 0 || size == 0) return table;

  // Members take turns in name order, not list order: the turn order decides who wins a
  // contested slot, and the table must not depend on how the configuration lists them.
  std::vector<const MaglevMember*> order;
  for (const auto& m : members) order.push_back(&m);
  std::sort(order.begin(), order.end(),
            [](const MaglevMember* a, const MaglevMember* b) { return a->name < b->name; });

  struct Walk {
    std::uint64_t offset, skip, next, credit;
  };
  std::vector<Walk> walks;
  walks.reserve(order.size());
  for (const auto* m : order)
    walks.push_back({name_hash(m->name, 0x6d61676c65763031ULL) % size,
                     name_hash(m->name, 0x6d61676c65763032ULL) % (size - 1) + 1, 0, 0});

  std::uint32_t filled = 0;
  for (;;) {
    for (std::size_t i = 0; i < order.size(); ++i) {
      Walk& w = walks[i];
      w.credit += order[i]->weight;
      if (w.credit < max_weight) continue;
      w.credit -= max_weight;
      std::uint64_t slot = (w.offset + w.next * w.skip) % size;
      while (table[slot] != kNoBackend) {
        ++w.next;
        slot = (w.offset + w.next * w.skip) % size;
      }
      table[slot] = order[i]->backend;
      ++w.next;
      if (++filled == size) return table;
    }
  }
}

}  // namespace tether
