#include "dataplane/snapshot.hpp"

#include <algorithm>
#include <bit>

namespace tether::dataplane {

void ServiceIndex::build(
    const std::vector<std::pair<std::tuple<IpBytes, std::uint16_t, std::uint8_t>, std::uint16_t>>&
        entries) {
  const std::uint32_t capacity = std::bit_ceil(static_cast<std::uint32_t>(entries.size()) * 2 + 2);
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  for (const auto& [key, service] : entries) {
    const auto& [vip, port, proto] = key;
    const parsers::AddressWords words = parsers::address_words(vip);
    std::uint32_t i = hash(words, port, proto) & mask_;
    while (slots_[i].service != kNone) i = (i + 1) & mask_;
    slots_[i] = Slot{words, port, proto, service};
  }
}

Snapshot::~Snapshot() {
  for (hs_scratch* scratch : rule_scratch)
    if (scratch != nullptr) RuleSet::free_scratch(scratch);
}

bool Snapshot::is_interface_address(std::uint16_t port, const IpBytes& address) const {
  const auto& own = ports[port].interface_addresses;
  return std::find(own.begin(), own.end(), address) != own.end();
}

bool Snapshot::is_local_address(std::uint16_t port, const IpBytes& address) const {
  const auto& local = ports[port].local_addresses;
  return std::find(local.begin(), local.end(), address) != local.end();
}

}  // namespace tether::dataplane
