// Backend MACs by ARP (IPv4) and neighbour discovery (IPv6), owned by the control thread.
// A backend's MAC is its next hop's (control/config.hpp next_hop): its own on the port's
// segment, its gateway's when it is routed.
//
// A backend without a static MAC is asked for from its port's own address of the same
// family, every `retry` until it answers; an answered MAC is confirmed again every `refresh`
// (the request goes out at once, the known MAC stays in use meanwhile) and given up after
// `attempts` unanswered requests. A backend whose MAC is unknown is down for the workers:
// DSR cannot reach it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/config.hpp"
#include "control/control_ports.hpp"
#include "dataplane/slow_path.hpp"

namespace tether {

class NeighbourResolver {
 public:
  NeighbourResolver(const Config& config, const ControlPorts& ports, std::uint64_t tsc_hz);

  // Adopts a changed backend list (reload, backend add/remove): what is known of a backend
  // with the same name, address and port is kept.
  void update(const Config& config);
  // Sends due requests. True when a MAC was given up (the caller republishes).
  bool tick(std::uint64_t now);
  // An answer that arrived on port `port`. True when a MAC was learnt or changed.
  bool receive(const dataplane::NeighbourAnswer& answer, std::size_t port, std::uint64_t now);

  bool resolved(std::size_t backend) const;
  const MacBytes& mac(std::size_t backend) const { return entries_[backend].mac; }
  // "static", "arp", "nd", or "unresolved".
  const char* source(std::size_t backend) const;
  // Milliseconds since the MAC was last confirmed; 0 for static ones.
  std::uint64_t age_ms(std::size_t backend, std::uint64_t now) const;
  std::uint64_t requests_sent() const { return requests_sent_; }
  std::uint64_t answers_unmatched() const { return answers_unmatched_; }

 private:
  struct Entry {
    std::string name;
    IpBytes address;
    std::size_t port;
    bool is_static = false;
    bool removed = false;  // kept for its index only
    bool known = false;  // `mac` holds a static or answered MAC
    MacBytes mac{};
    std::uint64_t confirmed_at = 0;
    std::uint64_t next_request = 0;  // 0: now
    std::uint32_t unanswered = 0;
  };

  static Entry entry_for(const Config& config, const BackendConfig& backend);
  void request(Entry& entry);

  const ControlPorts& ports_;
  std::uint64_t tsc_hz_;
  NeighbourConfig timers_;
  std::vector<Entry> entries_;  // by backend index
  std::uint64_t requests_sent_ = 0;
  std::uint64_t answers_unmatched_ = 0;
};

}  // namespace tether
