#include "control/neighbours.hpp"

#include <rte_mbuf.h>

#include "control/log.hpp"

namespace tether {

NeighbourResolver::NeighbourResolver(const Config& config, const ControlPorts& ports,
                                     std::uint64_t tsc_hz)
    : ports_(ports), tsc_hz_(tsc_hz) {
  update(config);
}

NeighbourResolver::Entry NeighbourResolver::entry_for(const Config& config, const BackendConfig& backend) {
  // The next hop's MAC: the backend's own on the port's segment, else its gateway's.
  Entry entry{backend.name, next_hop(config.ports[backend.port], backend.address), backend.port};
  entry.removed = backend.removed;
  if (backend.mac) {
    entry.is_static = entry.known = true;
    entry.mac = *backend.mac;
  }
  return entry;
}

void NeighbourResolver::update(const Config& config) {
  timers_ = config.neighbours;
  std::vector<Entry> entries;
  for (const auto& backend : config.backends) {
    Entry entry = entry_for(config, backend);
    // A removed backend keeps its index but is no longer asked for.
    if (!entry.is_static && !entry.removed)
      for (const auto& old : entries_)
        if (!old.is_static && !old.removed && old.name == entry.name && old.address == entry.address &&
            old.port == entry.port)
          entry = old;
    entries.push_back(entry);
  }
  entries_ = std::move(entries);
}

bool NeighbourResolver::tick(std::uint64_t now) {
  bool lost = false;
  for (auto& entry : entries_) {
    if (entry.is_static || entry.removed || now < entry.next_request) continue;
    if (entry.unanswered >= timers_.attempts) {
      if (entry.known) {
        entry.known = false;
        lost = true;
        TETHER_LOG(warning, "backend %s: MAC %s given up, %u requests unanswered: down until it answers",
                   entry.name.c_str(), format_mac(entry.mac).c_str(), entry.unanswered);
      } else if (entry.unanswered == timers_.attempts) {
        TETHER_LOG(warning, "backend %s: %s unanswered %u times, still asking",
                   entry.name.c_str(), parsers::is_ipv4_mapped(entry.address) ? "ARP" : "neighbour solicitation",
                   entry.unanswered);
      }
    }
    request(entry);
    entry.unanswered++;
    entry.next_request = now + timers_.retry_ms * tsc_hz_ / 1000;
  }
  return lost;
}

void NeighbourResolver::request(Entry& entry) {
  const auto source = ports_.source_for(entry.port, entry.address);
  if (!source) return;  // the configuration guarantees one; a reload cannot remove it
  rte_mbuf* mbuf = ports_.allocate(entry.port);
  if (mbuf == nullptr) return;  // counts as unanswered
  auto* frame = rte_pktmbuf_mtod(mbuf, std::uint8_t*);
  const MacBytes& our_mac = ports_[entry.port].mac;
  const std::size_t room = rte_pktmbuf_tailroom(mbuf);
  const std::size_t length =
      parsers::is_ipv4_mapped(entry.address)
          ? dataplane::build_arp_request(frame, room, our_mac, *source, entry.address)
          : dataplane::build_neighbour_solicitation(frame, room, our_mac, *source, entry.address);
  if (length == 0 || rte_pktmbuf_append(mbuf, static_cast<std::uint16_t>(length)) == nullptr) {
    rte_pktmbuf_free(mbuf);
    return;
  }
  requests_sent_++;
  ports_.transmit(entry.port, mbuf);
}

bool NeighbourResolver::receive(const dataplane::NeighbourAnswer& answer, std::size_t port,
                                std::uint64_t now) {
  bool changed = false, matched = false;
  for (auto& entry : entries_) {
    if (entry.is_static || entry.removed || entry.address != answer.address || entry.port != port)
      continue;
    // Only the answer to a request of ours, solicited, counts: an on-link host must not move
    // a backend's traffic by sending replies nobody asked for. Replacing a known MAC also
    // needs the advertisement's override flag.
    if (entry.unanswered == 0 || !answer.solicited || (entry.known && !answer.override)) continue;
    matched = true;
    if (!entry.known || entry.mac != answer.mac) {
      TETHER_LOG(info, "backend %s is at %s (%s)", entry.name.c_str(), format_mac(answer.mac).c_str(),
                 entry.known ? "changed" : parsers::is_ipv4_mapped(entry.address) ? "ARP" : "ND");
      changed = true;
    }
    entry.known = true;
    entry.mac = answer.mac;
    entry.confirmed_at = now;
    entry.unanswered = 0;
    entry.next_request = now + std::uint64_t{timers_.refresh_s} * tsc_hz_;
  }
  if (!matched) answers_unmatched_++;
  return changed;
}

bool NeighbourResolver::resolved(std::size_t backend) const { return entries_[backend].known; }

const char* NeighbourResolver::source(std::size_t backend) const {
  const Entry& entry = entries_[backend];
  if (entry.is_static) return "static";
  if (!entry.known) return "unresolved";
  return parsers::is_ipv4_mapped(entry.address) ? "arp" : "nd";
}

std::uint64_t NeighbourResolver::age_ms(std::size_t backend, std::uint64_t now) const {
  const Entry& entry = entries_[backend];
  if (entry.is_static || !entry.known) return 0;
  return (now - entry.confirmed_at) * 1000 / tsc_hz_;
}

}  // namespace tether
