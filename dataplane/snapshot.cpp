#include "dataplane/snapshot.hpp"

#include <rte_hash_crc.h>

#include <algorithm>
#include <cstring>
#include <bit>

namespace tether::dataplane {
namespace {

// Three CRC instructions, inline: every packet asks the index once.
inline std::uint32_t service_hash(const IpBytes& vip, std::uint16_t port, std::uint8_t ip_proto) {
  std::uint64_t high, low;
  std::memcpy(&high, vip.data(), 8);
  std::memcpy(&low, vip.data() + 8, 8);
  const std::uint32_t h = rte_hash_crc_8byte(low, rte_hash_crc_8byte(high, 0x7e7e));
  return rte_hash_crc_4byte(static_cast<std::uint32_t>(port) << 8 | ip_proto, h);
}

// Two 8-byte comparisons, inline: std::array's == calls memcmp on every packet.
bool same_address(const IpBytes& a, const IpBytes& b) {
  std::uint64_t a_high, a_low, b_high, b_low;
  std::memcpy(&a_high, a.data(), 8);
  std::memcpy(&a_low, a.data() + 8, 8);
  std::memcpy(&b_high, b.data(), 8);
  std::memcpy(&b_low, b.data() + 8, 8);
  return ((a_high ^ b_high) | (a_low ^ b_low)) == 0;
}

}  // namespace

void ServiceIndex::build(
    const std::vector<std::pair<std::tuple<IpBytes, std::uint16_t, std::uint8_t>, std::uint16_t>>&
        entries) {
  const std::uint32_t capacity = std::bit_ceil(static_cast<std::uint32_t>(entries.size()) * 2 + 2);
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  for (const auto& [key, service] : entries) {
    const auto& [vip, port, proto] = key;
    std::uint32_t i = service_hash(vip, port, proto) & mask_;
    while (slots_[i].service != kNone) i = (i + 1) & mask_;
    slots_[i] = Slot{vip, port, proto, service};
  }
}

std::uint16_t ServiceIndex::find(const IpBytes& vip, std::uint16_t port,
                                 std::uint8_t ip_proto) const {
  if (slots_.empty()) return kNone;
  for (std::uint32_t i = service_hash(vip, port, ip_proto) & mask_;; i = (i + 1) & mask_) {
    const Slot& slot = slots_[i];
    if (slot.service == kNone) return kNone;
    if (slot.port == port && slot.ip_proto == ip_proto && same_address(slot.vip, vip)) return slot.service;
  }
}

Snapshot::~Snapshot() {
  for (hs_scratch* scratch : rule_scratch)
    if (scratch != nullptr) RuleSet::free_scratch(scratch);
}

const char* to_string(BackendState state) {
  switch (state) {
    case BackendState::up: return "up";
    case BackendState::draining: return "draining";
    case BackendState::down: return "down";
  }
  return "?";
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
