// The immutable view of services and backends that workers read.
//
// The control thread builds a Snapshot from the configuration and hands workers a pointer;
// workers never write to it. A worker holds one snapshot for a whole burst, so it never sees
// a half-built table.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <tuple>
#include <vector>

#include "control/maglev.hpp"
#include "dataplane/content_rules.hpp"
#include "dataplane/crc32c.hpp"
#include "dataplane/limits.hpp"
#include "dataplane/tunnel.hpp"
#include "parsers/enum_names.hpp"
#include "parsers/packet.hpp"

namespace tether::dataplane {

using parsers::IpBytes;
using parsers::MacBytes;

// What the scheduler hashes to pick a backend from the Maglev table.
enum class HashInput : std::uint8_t { five_tuple, client_address };

struct PortView {
  std::uint16_t port_id;
  MacBytes mac;
  std::vector<IpBytes> local_addresses;  // interface addresses and every VIP: ARP/ND/ICMP
  std::vector<IpBytes> interface_addresses;  // replies to the control thread's probes come here
  // With a kernel interface, the kernel owns the interface addresses (they are not local
  // addresses then) and takes every frame tetherd does not consume: each worker passes one
  // frame per `kernel_cost_tsc` on average, and up to `kernel_credit_cap_tsc` worth at once.
  bool kernel = false;
  std::uint64_t kernel_cost_tsc = 0;
  std::uint64_t kernel_credit_cap_tsc = 0;
  std::uint16_t sync_port = 0;  // state sync's UDP port on this port's kernel interface; 0: none
};

// up: takes new flows and sessions. draining: keeps what it has, takes nothing new (an
// operator's drain, or weight 0). down: failed or disabled; what was pinned to it moves on
// its next packet.
#define TETHER_BACKEND_STATES(X) X(up, "up") X(draining, "draining") X(down, "down")
enum class BackendState : std::uint8_t { TETHER_BACKEND_STATES(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(BackendState, TETHER_BACKEND_STATES)

struct BackendView {
  MacBytes mac;
  std::uint16_t port;  // index into Snapshot::ports
  BackendState state = BackendState::up;
  // The DSR rewrite of a frame's first 12 bytes: this backend's MAC, then its port's. Every
  // forwarded packet gets it, as one copy from one place.
  std::array<std::uint8_t, 12> ethernet_addresses{};
  // Of an ipip or gue service's packets (dataplane/tunnel.hpp); `mac` is then the next hop's.
  TunnelEndpoint tunnel{};
};

enum class SessionInspection : std::uint8_t { none, sip_calls, rtsp, ftp };

struct PoolMember {
  std::uint16_t backend;
  std::uint32_t weight;
};

struct PoolView {
  std::vector<std::uint16_t> maglev;  // backend index per slot, kNoBackend if none
  std::vector<PoolMember> members;    // for least-sessions
};

struct PassiveRange {
  std::uint16_t first;
  std::uint16_t last;
  std::uint16_t backend;
};

struct ServiceView {
  std::uint8_t ip_proto;
  HashInput hash_input;
  SessionInspection dpi;
  bool least_sessions;
  Forwarding forwarding = Forwarding::dsr;
  std::uint64_t idle_timeout_tsc;
  std::uint64_t fin_timeout_tsc;
  std::uint64_t session_timeout_tsc;
  std::uint64_t linger_tsc;
  std::uint64_t expectation_timeout_tsc;
  std::vector<PoolView> pools;  // [0] is the service's own backend list
  std::vector<PassiveRange> passive_ranges;
  std::unique_ptr<RuleSet> rules;  // null without content rules
};

// (VIP, port, protocol) -> service index, open addressing: a handful of services, looked up
// for every packet, so one short probe in a flat array beats a general hash table.
class ServiceIndex {
 public:
  static constexpr std::uint16_t kNone = 0xffff;
  // Set on the entry (VIP, port 0, protocol) of flows related to an inspecting service: RTP
  // and RTCP of an RTSP service, data connections of an FTP service.
  static constexpr std::uint16_t kRelated = 0x8000;
  void build(const std::vector<std::pair<std::tuple<IpBytes, std::uint16_t, std::uint8_t>,
                                         std::uint16_t>>& entries);
  // Inline, like its helpers: every packet asks the index once or twice.
  std::uint16_t find(parsers::AddressWords vip, std::uint16_t port, std::uint8_t ip_proto) const {
    if (slots_.empty()) return kNone;
    for (std::uint32_t i = hash(vip, port, ip_proto) & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.service == kNone) return kNone;
      if (slot.port == port && slot.ip_proto == ip_proto && slot.vip == vip)
        return slot.service;
    }
  }
  std::uint16_t find(const IpBytes& vip, std::uint16_t port, std::uint8_t ip_proto) const {
    return find(parsers::address_words(vip), port, ip_proto);
  }

 private:
  // Three CRC instructions.
  static std::uint32_t hash(parsers::AddressWords vip, std::uint16_t port, std::uint8_t ip_proto) {
    const std::uint64_t h = crc32c_8byte(vip.low, crc32c_8byte(vip.high, 0x7e7e));
    return crc32c_4byte(static_cast<std::uint32_t>(port) << 8 | ip_proto,
                        static_cast<std::uint32_t>(h));
  }

  struct Slot {
    parsers::AddressWords vip;
    std::uint16_t port;
    std::uint8_t ip_proto;
    std::uint16_t service = kNone;
  };
  std::vector<Slot> slots_;
  std::uint32_t mask_ = 0;
};

struct Snapshot {
  Snapshot() = default;
  ~Snapshot();
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;

  std::uint64_t generation = 0;  // set by the SnapshotPublisher
  std::vector<PortView> ports;
  std::vector<BackendView> backends;
  std::vector<ServiceView> services;
  ServiceIndex service_index;
  // An active-standby pair's backup (or fault): the VIPs are the master's. Workers drop what
  // comes for them (`ha_standby`) and do not answer ARP/ND or echo for them; the ports' own
  // addresses, probes and the kernel interface work as ever. One branch per packet already
  // classified to a service, on a line the worker reads anyway.
  bool standby = false;
  // State sync (dataplane/sync_events.hpp): a flow is reported on its sync_flow_threshold-th
  // packet and every sync_flow_period packets after; 0: sync is off.
  std::uint8_t sync_flow_threshold = 0;
  std::uint8_t sync_flow_period = 0;
  // Hyperscan scratch space per worker, sized for every service's rules (null without rules).
  std::vector<hs_scratch*> rule_scratch;

  bool is_local_address(std::uint16_t port, const IpBytes& address) const;
  bool is_interface_address(std::uint16_t port, const IpBytes& address) const;
  // A VIP while this instance is standby: local, and not one of the port's own addresses.
  bool is_standby_vip(std::uint16_t port, const IpBytes& address) const {
    return standby && !is_interface_address(port, address);
  }
};

}  // namespace tether::dataplane
