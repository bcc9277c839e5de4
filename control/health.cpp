#include "control/health.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstring>
#include <string>

#include "control/log.hpp"
#include "control/neighbours.hpp"
#include "dataplane/limits.hpp"
#include "parsers/sip.hpp"

namespace tether {
namespace {


void store16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void store32(std::uint8_t* p, std::uint32_t v) {
  store16(p, static_cast<std::uint16_t>(v >> 16));
  store16(p + 2, static_cast<std::uint16_t>(v));
}

// Globally unique as RFC 3261 8.1.1.4 asks, with the probe's source address as its host
// part: two instances probing one backend (a pair, a tier) never share a Call-ID, which a
// UAS that remembers Call-IDs (sipp's) would answer to the first sender only.
std::string probe_call_id(std::size_t index, std::uint32_t sequence, const IpBytes& source) {
  return "tether-probe-" + std::to_string(index) + "-" + std::to_string(sequence) + "@" + format_ip(source);
}

// An address as a SIP URI or Via host: IPv6 in brackets (RFC 3261 25.1, RFC 5118).
std::string sip_host(const IpBytes& address) {
  std::string host = format_ip(address);
  if (!parsers::is_ipv4_mapped(address)) {
    host.insert(host.begin(), '[');
    host.push_back(']');
  }
  return host;
}

bool same_settings(const LatencyWeightSettings& a, const LatencyWeightSettings& b) {
  return a.threshold == b.threshold && a.tolerance_us == b.tolerance_us && a.floor_percent == b.floor_percent;
}

bool same_check(const HealthCheckConfig& a, const HealthCheckConfig& b) {
  return a.type == b.type && a.interval_ms == b.interval_ms && a.timeout_ms == b.timeout_ms &&
         a.rise == b.rise && a.fall == b.fall;
}

}  // namespace

HealthChecker::HealthChecker(const Config& config, const ControlPorts& ports,
                             const NeighbourResolver& neighbours, std::uint64_t tsc_hz)
    : config_(config), ports_(ports), neighbours_(neighbours), tsc_hz_(tsc_hz) {
  update();
}

void HealthChecker::update() {
  std::vector<Probe> probes;
  for (std::size_t s = 0; s < config_.services.size(); ++s) {
    const ServiceConfig& service = config_.services[s];
    if (!service.health_check) continue;
    for (const auto& member : service.backends) {
      const BackendConfig& backend = config_.backends[member.backend];
      const auto source = ports_.source_for(backend.port, backend.address);
      if (!source) {
        TETHER_LOG(warning, "service %s: backend %s is not checked (port %s has no %s address)",
                   service.name.c_str(), backend.name.c_str(), config_.ports[backend.port].name.c_str(),
                   parsers::is_ipv4_mapped(backend.address) ? "IPv4" : "IPv6");
        continue;
      }
      Probe probe{s, member.backend, *service.health_check, *source,
                  static_cast<std::uint16_t>(dataplane::kFirstProbePort + probes.size()), service.port};
      if (service.adaptive_weight) probe.latency.emplace(*service.adaptive_weight);
      // Indices are stable across reloads: the same check on the same backend keeps its
      // verdict and counts; a probe in flight is dropped (its source port may have moved).
      for (const auto& old : probes_)
        if (old.service == s && old.backend == member.backend && old.service_port == probe.service_port &&
            old.source == probe.source && same_check(old.check, probe.check)) {
          probe.healthy = old.healthy;
          probe.successes = old.successes;
          probe.failures = old.failures;
          probe.sequence = old.sequence;
          probe.next_send = old.next_send;
          if (probe.latency && old.latency && same_settings(*service.adaptive_weight, old.latency->settings()))
            probe.latency = old.latency;
        }
      probes.push_back(probe);
    }
  }
  probes_ = std::move(probes);
}

bool HealthChecker::healthy(std::size_t backend) const {
  for (const auto& probe : probes_)
    if (probe.backend == backend && !probe.healthy) return false;
  return true;
}

std::uint32_t HealthChecker::weight_percent(std::size_t service, std::size_t backend) const {
  const LatencyWeight* latency = latency_weight(service, backend);
  return latency != nullptr ? latency->percent() : 100;
}

const LatencyWeight* HealthChecker::latency_weight(std::size_t service, std::size_t backend) const {
  for (const auto& probe : probes_)
    if (probe.service == service && probe.backend == backend && probe.latency) return &*probe.latency;
  return nullptr;
}

bool HealthChecker::record_latency(Probe& probe) {
  if (!probe.latency) return false;
  // Measured by the control thread: the answer waits on the exception ring for the loop's
  // next pass (up to its 10 ms poll), which the tolerance allows for.
  const double latency_us = static_cast<double>(rte_rdtsc() - probe.sent_at) * 1e6 / static_cast<double>(tsc_hz_);
  LatencyWeight& weight = *probe.latency;
  const bool was_lowered = weight.lowered();
  if (!weight.sample(latency_us)) return false;
  if (weight.lowered() != was_lowered || weight.percent() == 100)
    TETHER_LOG(info, "backend %s: weight in service %s at %u%% (check latency %.1f ms, usual %.1f ms)",
               config_.backends[probe.backend].name.c_str(), config_.services[probe.service].name.c_str(),
               weight.percent(), weight.fast_us() / 1000, weight.baseline_us() / 1000);
  return true;
}

bool HealthChecker::tick(std::uint64_t now) {
  bool changed = false;
  for (auto& probe : probes_) {
    if (probe.waiting && now - probe.sent_at > probe.check.timeout_ms * tsc_hz_ / 1000) {
      probe.waiting = false;
      changed |= record(probe, false, "no answer within the timeout");
    }
    if (!probe.waiting && now >= probe.next_send) send(probe, now);
  }
  return changed;
}

bool HealthChecker::record(Probe& probe, bool success, const char* reason) {
  if (success) {
    probe.failures = 0;
    if (!probe.healthy && ++probe.successes >= probe.check.rise) {
      probe.healthy = true;
      TETHER_LOG(info, "backend %s up: %s check for service %s passed %u times",
                 config_.backends[probe.backend].name.c_str(), to_string(probe.check.type),
                 config_.services[probe.service].name.c_str(), probe.check.rise);
      return true;
    }
  } else {
    probe.successes = 0;
    if (probe.healthy && ++probe.failures >= probe.check.fall) {
      probe.healthy = false;
      TETHER_LOG(warning, "backend %s down: %s check for service %s failed %u times (last: %s)",
                 config_.backends[probe.backend].name.c_str(), to_string(probe.check.type),
                 config_.services[probe.service].name.c_str(), probe.check.fall, reason);
      return true;
    }
  }
  return false;
}

// Ethernet + IP header of a probe packet toward the probe's backend; returns the L4 start.
std::uint8_t* HealthChecker::start_packet(rte_mbuf* mbuf, const Probe& probe, std::uint8_t protocol,
                                          std::size_t l4_length) {
  const BackendConfig& backend = config_.backends[probe.backend];
  const bool ipv4 = parsers::is_ipv4_mapped(backend.address);
  const std::size_t ip_length = ipv4 ? 20 : 40;
  const std::size_t length = 14 + ip_length + l4_length;
  auto* frame = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(mbuf, static_cast<std::uint16_t>(length)));
  if (frame == nullptr) return nullptr;
  std::memset(frame, 0, length);
  std::memcpy(frame, neighbours_.mac(probe.backend).data(), 6);
  std::memcpy(frame + 6, ports_[backend.port].mac.data(), 6);
  std::uint8_t* ip = frame + 14;
  if (ipv4) {
    store16(frame + 12, 0x0800);
    ip[0] = 0x45;
    store16(ip + 2, static_cast<std::uint16_t>(20 + l4_length));
    store16(ip + 6, 0x4000);  // don't fragment
    ip[8] = 64;
    ip[9] = protocol;
    std::memcpy(ip + 12, probe.source.data() + 12, 4);
    std::memcpy(ip + 16, backend.address.data() + 12, 4);
    const std::uint16_t checksum = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip));
    std::memcpy(ip + 10, &checksum, 2);
  } else {
    store16(frame + 12, 0x86dd);
    ip[0] = 0x60;
    store16(ip + 4, static_cast<std::uint16_t>(l4_length));
    ip[6] = protocol;
    ip[7] = 64;
    std::memcpy(ip + 8, probe.source.data(), 16);
    std::memcpy(ip + 24, backend.address.data(), 16);
  }
  return ip + ip_length;
}

// TCP, UDP and ICMPv6 checksums cover a pseudo-header; ICMPv4's covers the message alone.
void HealthChecker::finish_l4_checksum(rte_mbuf* mbuf, const Probe& probe, std::size_t checksum_offset) {
  auto* ip = rte_pktmbuf_mtod_offset(mbuf, std::uint8_t*, 14);
  std::uint16_t checksum;
  if (parsers::is_ipv4_mapped(config_.backends[probe.backend].address)) {
    std::uint8_t* l4 = ip + 20;
    if (ip[9] == parsers::kProtoIcmp) {
      const std::size_t length = rte_pktmbuf_data_len(mbuf) - 14 - 20;
      checksum = static_cast<std::uint16_t>(~rte_raw_cksum(l4, length));
    } else {
      checksum = rte_ipv4_udptcp_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip), l4);
    }
    std::memcpy(l4 + checksum_offset, &checksum, 2);
  } else {
    std::uint8_t* l4 = ip + 40;
    checksum = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ip), l4);
    std::memcpy(l4 + checksum_offset, &checksum, 2);
  }
}

void HealthChecker::transmit(const Probe& probe, rte_mbuf* mbuf) {
  ports_.transmit(config_.backends[probe.backend].port, mbuf);
}

void HealthChecker::send(Probe& probe, std::uint64_t now) {
  const std::size_t index = static_cast<std::size_t>(&probe - probes_.data());
  probe.sequence++;
  probe.sent_at = now;
  probe.waiting = true;
  probe.next_send = now + probe.check.interval_ms * tsc_hz_ / 1000;
  // Without a MAC the backend is down for the workers anyway: wait for the resolver rather
  // than count failures it is not to blame for.
  if (!neighbours_.resolved(probe.backend)) {
    probe.waiting = false;
    return;
  }
  rte_mbuf* mbuf = ports_.allocate(config_.backends[probe.backend].port);
  if (mbuf == nullptr) return;  // counts as a timeout
  const bool ipv4 = parsers::is_ipv4_mapped(config_.backends[probe.backend].address);
  switch (probe.check.type) {
    case HealthCheckType::icmp: {
      static constexpr char kPayload[] = "tether health check";
      std::uint8_t* icmp = start_packet(mbuf, probe, ipv4 ? parsers::kProtoIcmp : parsers::kProtoIcmpv6,
                                        8 + sizeof kPayload);
      if (icmp == nullptr) break;
      icmp[0] = ipv4 ? 8 : 128;  // echo request
      store16(icmp + 4, probe.source_port);
      store16(icmp + 6, static_cast<std::uint16_t>(probe.sequence));
      std::memcpy(icmp + 8, kPayload, sizeof kPayload);
      finish_l4_checksum(mbuf, probe, 2);
      return transmit(probe, mbuf);
    }
    case HealthCheckType::tcp: {
      std::uint8_t* tcp = start_packet(mbuf, probe, parsers::kProtoTcp, 20);
      if (tcp == nullptr) break;
      store16(tcp, probe.source_port);
      store16(tcp + 2, probe.service_port);
      store32(tcp + 4, probe.sequence);
      tcp[12] = 5 << 4;
      tcp[13] = parsers::kTcpSyn;
      store16(tcp + 14, 65535);
      finish_l4_checksum(mbuf, probe, 16);
      return transmit(probe, mbuf);
    }
    case HealthCheckType::sip_options: {
      const BackendConfig& backend = config_.backends[probe.backend];
      const std::string source = sip_host(probe.source), target = sip_host(backend.address);
      const std::string call_id = probe_call_id(index, probe.sequence, probe.source);
      const std::string message =
          "OPTIONS sip:" + target + ":" + std::to_string(probe.service_port) + " SIP/2.0\r\n"
          "Via: SIP/2.0/UDP " + source + ":" + std::to_string(probe.source_port) +
          ";branch=z9hG4bK-" + call_id.substr(0, call_id.find('@')) + "\r\nMax-Forwards: 70\r\nFrom: <sip:tether@" + source +
          ">;tag=tether\r\nTo: <sip:" + target + ">\r\nCall-ID: " + call_id + "\r\nCSeq: " +
          std::to_string(probe.sequence) + " OPTIONS\r\nContent-Length: 0\r\n\r\n";
      std::uint8_t* udp = start_packet(mbuf, probe, parsers::kProtoUdp, 8 + message.size());
      if (udp == nullptr) break;
      store16(udp, probe.source_port);
      store16(udp + 2, probe.service_port);
      store16(udp + 4, static_cast<std::uint16_t>(8 + message.size()));
      std::memcpy(udp + 8, message.data(), message.size());
      finish_l4_checksum(mbuf, probe, 6);
      return transmit(probe, mbuf);
    }
  }
  rte_pktmbuf_free(mbuf);
}

void HealthChecker::send_reset(const Probe& probe, std::uint32_t sequence) {
  rte_mbuf* mbuf = ports_.allocate(config_.backends[probe.backend].port);
  if (mbuf == nullptr) return;
  std::uint8_t* tcp = start_packet(mbuf, probe, parsers::kProtoTcp, 20);
  if (tcp == nullptr) {
    rte_pktmbuf_free(mbuf);
    return;
  }
  store16(tcp, probe.source_port);
  store16(tcp + 2, probe.service_port);
  store32(tcp + 4, sequence);
  tcp[12] = 5 << 4;
  tcp[13] = parsers::kTcpRst;
  finish_l4_checksum(mbuf, probe, 16);
  transmit(probe, mbuf);
}

HealthChecker::Received HealthChecker::receive(std::span<const std::uint8_t> frame,
                                               const parsers::ParsedFrame& parsed) {
  const std::uint8_t* data = frame.data();
  bool changed = false;
  bool matched = false;
  const bool icmp = parsed.l4_proto == parsers::kProtoIcmp || parsed.l4_proto == parsers::kProtoIcmpv6;
  const std::uint8_t echo_reply = parsed.l3 == parsers::L3Kind::ipv4 ? 0 : 129;
  if (parsed.l3 == parsers::L3Kind::ipv4 || parsed.l3 == parsers::L3Kind::ipv6) {
    // ICMP replies carry our identifier; TCP and UDP come back to our source port.
    const std::uint16_t ours = icmp ? parsed.src_port : parsed.dst_port;
    const std::size_t index = static_cast<std::size_t>(ours - dataplane::kFirstProbePort);
    if (ours >= dataplane::kFirstProbePort && index < probes_.size()) {
      Probe& probe = probes_[index];
      const BackendConfig& backend = config_.backends[probe.backend];
      if (probe.waiting && parsed.src_ip == backend.address) {
        const std::uint8_t* l4 = data + parsed.l4_offset;
        if (probe.check.type == HealthCheckType::icmp && icmp && parsed.icmp_type == echo_reply &&
            ((l4[6] << 8) | l4[7]) == static_cast<int>(probe.sequence & 0xffff)) {
          matched = true;
          probe.waiting = false;
          changed = record(probe, true, "");
        } else if (probe.check.type == HealthCheckType::tcp && parsed.l4_proto == parsers::kProtoTcp &&
                   parsed.src_port == probe.service_port) {
          matched = true;
          probe.waiting = false;
          if ((parsed.tcp_flags & (parsers::kTcpSyn | parsers::kTcpAck)) ==
              (parsers::kTcpSyn | parsers::kTcpAck)) {
            // Close the half-open connection: RST with the sequence number it acknowledged.
            send_reset(probe, static_cast<std::uint32_t>(l4[8]) << 24 | l4[9] << 16 | l4[10] << 8 | l4[11]);
            changed = record_latency(probe);
            changed |= record(probe, true, "");
          } else {
            changed = record(probe, false, "connection refused");
          }
        } else if (probe.check.type == HealthCheckType::sip_options &&
                   parsed.l4_proto == parsers::kProtoUdp) {
          const auto message = parsers::sip::parse(frame.subspan(parsed.payload_offset, parsed.payload_length));
          if (message.status == parsers::Status::parsed &&
              message.kind == parsers::sip::Kind::response &&
              parsers::sip::equal_unfolded(message.call_id, probe_call_id(index, probe.sequence, probe.source))) {
            matched = true;
            probe.waiting = false;
            changed = record_latency(probe);
            changed |= record(probe, true, "");
          }
        }
      }
    }
  }
  if (!matched) unmatched_++;
  return {matched, changed};
}

}  // namespace tether
