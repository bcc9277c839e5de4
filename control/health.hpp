// Active health checks, run by the control thread through the dataplane ports: ICMP echo,
// TCP SYN (SYN-ACK: up, then RST; RST: down) and SIP OPTIONS over UDP (any response with
// the probe's Call-ID: up), with interval, timeout, rise and fall as in keepalived/HAProxy.
//
// Probes leave through ControlPorts from the port's first address of the backend's family
// (IPv4 or IPv6); replies reach that address and the workers hand them over on the exception
// ring. A backend is healthy while every check on it (one per service that lists it) passes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "control/config.hpp"
#include "control/control_ports.hpp"
#include "control/latency_weight.hpp"
#include "parsers/packet.hpp"

struct rte_mbuf;

namespace tether {

class NeighbourResolver;

class HealthChecker {
 public:
  // Probes go to the MACs `neighbours` knows; a backend whose MAC is unknown is not probed.
  HealthChecker(const Config& config, const ControlPorts& ports, const NeighbourResolver& neighbours,
                std::uint64_t tsc_hz);

  // Follows a changed configuration (the same Config object, changed in place).
  void update();
  bool empty() const { return probes_.empty(); }
  // Sends due probes and times out the late ones. True when a backend's health changed (the
  // caller publishes a new snapshot).
  bool tick(std::uint64_t now);
  struct Received {
    bool matched;  // the reply of a probe in flight
    bool changed;  // a backend's health changed
  };
  // A packet the workers handed over: a probe's reply, or not ours.
  Received receive(std::span<const std::uint8_t> frame, const parsers::ParsedFrame& parsed);
  bool healthy(std::size_t backend) const;
  // Adaptive weights (a service's adaptive_weight): the share of its configured weight the
  // backend has in `service` now, 100 without adaptive_weight or a check.
  std::uint32_t weight_percent(std::size_t service, std::size_t backend) const;
  // The latency controller of that check, or null.
  const LatencyWeight* latency_weight(std::size_t service, std::size_t backend) const;
  std::uint64_t replies_unmatched() const { return unmatched_; }

 private:
  struct Probe {
    std::size_t service;
    std::size_t backend;
    HealthCheckConfig check;
    IpBytes source;         // the port address probes come from
    std::uint16_t source_port;  // TCP/UDP, and the ICMP identifier
    std::uint16_t service_port;
    std::uint64_t next_send = 0;
    std::uint64_t sent_at = 0;
    std::uint32_t sequence = 0;
    bool waiting = false;
    bool healthy = true;  // start up: a restart must not empty the pool until checks run
    std::uint32_t successes = 0;
    std::uint32_t failures = 0;
    std::optional<LatencyWeight> latency = std::nullopt;  // with the service's adaptive_weight
  };

  void send(Probe& probe, std::uint64_t now);
  bool record(Probe& probe, bool success, const char* reason);
  // An answer that passed, for the adaptive weight: true when the backend's share changed.
  bool record_latency(Probe& probe);
  void send_reset(const Probe& probe, std::uint32_t sequence);
  std::uint8_t* start_packet(rte_mbuf* mbuf, const Probe& probe, std::uint8_t protocol,
                             std::size_t l4_length);
  void finish_l4_checksum(rte_mbuf* mbuf, const Probe& probe, std::size_t checksum_offset);
  void transmit(const Probe& probe, rte_mbuf* mbuf);

  const Config& config_;
  const ControlPorts& ports_;
  const NeighbourResolver& neighbours_;
  std::uint64_t tsc_hz_;
  std::vector<Probe> probes_;
  std::uint64_t unmatched_ = 0;
};

}  // namespace tether
