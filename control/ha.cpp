#include "control/ha.hpp"

#include <rte_mbuf.h>

#include <algorithm>

#include "control/control_ports.hpp"
#include "dataplane/slow_path.hpp"

namespace tether {

HaStatus::HaStatus(const HaConfig& config, std::uint64_t now, std::uint64_t tsc_hz)
    : config_(config), tsc_hz_(tsc_hz), role_(config.initial), since_(now) {
  // A tetherd configured to start as master takes the VIPs at once: announce them.
  if (role_ == HaRole::master) {
    rounds_left_ = config_.gratuitous_count;
    next_round_ = now;
  }
}

bool HaStatus::set_role(HaRole role, std::uint64_t now) {
  if (role == role_) return false;
  role_ = role;
  since_ = now;
  ++transitions_;
  rounds_left_ = role == HaRole::master ? config_.gratuitous_count : 0;
  next_round_ = now;
  return true;
}

bool HaStatus::set_released(bool released) {
  if (released == released_) return false;
  released_ = released;
  return true;
}

bool HaStatus::announcement_due(std::uint64_t now) {
  if (rounds_left_ == 0 || now < next_round_) return false;
  --rounds_left_;
  // From the due time, not from now: a late loop pass does not stretch the series.
  next_round_ = std::max(next_round_ + config_.gratuitous_interval_ms * tsc_hz_ / 1000, now);
  return true;
}

std::int64_t HaStatus::next_announcement_ms(std::uint64_t now) const {
  if (rounds_left_ == 0) return -1;
  if (now >= next_round_) return 0;
  return static_cast<std::int64_t>((next_round_ - now) * 1000 / tsc_hz_);
}

void WorkerProgress::observe(std::span<const std::uint64_t> loops, std::uint64_t now) {
  if (loops_.size() != loops.size()) {
    loops_.assign(loops.begin(), loops.end());
    moved_.assign(loops.size(), now);
    return;
  }
  for (std::size_t w = 0; w < loops.size(); ++w)
    if (loops[w] != loops_[w]) {
      loops_[w] = loops[w];
      moved_[w] = now;
    }
}

std::vector<unsigned> WorkerProgress::stalled(std::uint64_t now) const {
  std::vector<unsigned> out;
  const std::uint64_t limit = kStallMs * tsc_hz_ / 1000;
  for (std::size_t w = 0; w < moved_.size(); ++w)
    if (now > moved_[w] && now - moved_[w] > limit) out.push_back(static_cast<unsigned>(w));
  return out;
}

std::vector<IpBytes> announced_addresses(const Config& config) {
  std::vector<IpBytes> vips;
  for (const ServiceConfig& service : config.services)
    if (!service.removed && std::find(vips.begin(), vips.end(), service.vip) == vips.end())
      vips.push_back(service.vip);
  return vips;
}

void announce(const Config& config, const ControlPorts& ports, AnnouncementTotals& sent) {
  const std::vector<IpBytes> vips = announced_addresses(config);
  for (std::size_t p = 0; p < ports.size(); ++p)
    for (const IpBytes& vip : vips) {
      rte_mbuf* mbuf = ports.allocate(p);
      if (mbuf == nullptr) continue;  // the next round tries again
      auto* frame = rte_pktmbuf_mtod(mbuf, std::uint8_t*);
      const std::size_t room = rte_pktmbuf_tailroom(mbuf);
      const bool ipv4 = parsers::is_ipv4_mapped(vip);
      const std::size_t length =
          ipv4 ? dataplane::build_arp_request(frame, room, ports[p].mac, vip, vip)
               : dataplane::build_unsolicited_advertisement(frame, room, ports[p].mac, vip);
      if (length == 0 || rte_pktmbuf_append(mbuf, static_cast<std::uint16_t>(length)) == nullptr) {
        rte_pktmbuf_free(mbuf);
        continue;
      }
      if (ports.transmit(p, mbuf)) ++(ipv4 ? sent.gratuitous_arp : sent.unsolicited_na);
    }
}

}  // namespace tether
