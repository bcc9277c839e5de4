#include "dataplane/worker.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_hash_crc.h>
#include <rte_mbuf.h>

#include <cstring>
#include <string>

#include "dataplane/slow_path.hpp"

namespace tether::dataplane {
namespace {

constexpr std::size_t kMinFrame = 60;  // Ethernet minimum without the FCS

std::string table_name(unsigned index) { return "flows_w" + std::to_string(index); }

bool is_multicast(const parsers::MacBytes& mac) { return (mac[0] & 1) != 0; }

bool is_truncation(parsers::ParseStatus status) {
  using parsers::ParseStatus;
  switch (status) {
    case ParseStatus::truncated_ethernet:
    case ParseStatus::truncated_vlan:
    case ParseStatus::truncated_arp:
    case ParseStatus::truncated_ipv4:
    case ParseStatus::truncated_ipv6:
    case ParseStatus::truncated_tcp:
    case ParseStatus::truncated_udp:
    case ParseStatus::truncated_icmp:
      return true;
    default:
      return false;
  }
}

}  // namespace

Worker::Worker(unsigned index, std::uint16_t queue, const Snapshot* snapshot,
               std::uint32_t flow_capacity, int socket)
    : index_(index),
      queue_(queue),
      snapshot_(snapshot),
      flows_(table_name(index).c_str(), flow_capacity, socket),
      backend_counters_(snapshot->backends.size()),
      tx_(snapshot->ports.size()) {}

void Worker::run(const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) poll_once();
  flush();
}

bool Worker::poll_once() {
  bool busy = false;
  for (std::uint16_t p = 0; p < snapshot_->ports.size(); ++p) busy |= poll_port(p, rte_rdtsc());
  counters_.flows_expired += flows_.expire(rte_rdtsc(), kExpiryBudget);
  ++(busy ? counters_.busy_polls : counters_.idle_polls);
  return busy;
}

bool Worker::poll_port(std::uint16_t port_index, std::uint64_t now) {
  rte_mbuf* received[kBurst];
  const std::uint16_t count =
      rte_eth_rx_burst(snapshot_->ports[port_index].port_id, queue_, received, kBurst);
  if (count == 0) return false;

  Pending pending[kBurst];
  unsigned pending_count = 0;
  for (std::uint16_t i = 0; i < count; ++i) {
    counters_.rx_packets++;
    counters_.rx_bytes += rte_pktmbuf_pkt_len(received[i]);
    classify(received[i], port_index, pending, pending_count);
  }

  if (pending_count > 0) {
    const FlowKey* keys[kBurst];
    std::uint32_t signatures[kBurst];
    std::int32_t positions[kBurst];
    for (unsigned i = 0; i < pending_count; ++i) {
      keys[i] = &pending[i].key;
      signatures[i] = pending[i].signature;
    }
    flows_.lookup_bulk(keys, signatures, pending_count, positions);
    for (unsigned i = 0; i < pending_count; ++i) forward(pending[i], positions[i], now);
  }

  flush();
  return true;
}

void Worker::classify(rte_mbuf* mbuf, std::uint16_t port_index, Pending* pending,
                      unsigned& count) {
  const Snapshot& snapshot = *snapshot_;
  parsers::ParsedFrame parsed;
  const auto* data = rte_pktmbuf_mtod(mbuf, const std::uint8_t*);
  const auto status = parsers::parse_frame({data, rte_pktmbuf_data_len(mbuf)}, parsed);
  if (status != parsers::ParseStatus::ok) {
    if (is_truncation(status) && rte_pktmbuf_pkt_len(mbuf) > rte_pktmbuf_data_len(mbuf))
      return drop(mbuf, DropReason::multi_segment);
    counters_.parse_errors[static_cast<std::size_t>(status)]++;
    rte_pktmbuf_free(mbuf);
    return;
  }
  if (!is_multicast(parsed.dst_mac) && parsed.dst_mac != snapshot.ports[port_index].mac)
    return drop(mbuf, DropReason::not_our_mac);

  if (parsed.l3 == parsers::L3Kind::arp) return answer_locally(mbuf, port_index, parsed);

  const std::uint16_t service =
      snapshot.service_index.find(parsed.dst_ip, parsed.dst_port, parsed.l4_proto);
  if (service == ServiceIndex::kNone) return answer_locally(mbuf, port_index, parsed);

  Pending& p = pending[count++];
  p.mbuf = mbuf;
  p.key.src = parsed.src_ip;
  p.key.dst = parsed.dst_ip;
  p.key.src_port = parsed.src_port;
  p.key.dst_port = parsed.dst_port;
  p.key.ip_proto = parsed.l4_proto;
  std::memset(p.key.pad, 0, sizeof p.key.pad);
  p.signature = flow_signature(p.key);
  p.service = service;
  p.tcp_flags = parsed.tcp_flags;
}

void Worker::answer_locally(rte_mbuf* mbuf, std::uint16_t port_index,
                            const parsers::ParsedFrame& parsed) {
  const Snapshot& snapshot = *snapshot_;
  const auto& our_mac = snapshot.ports[port_index].mac;
  auto* frame = rte_pktmbuf_mtod(mbuf, std::uint8_t*);

  if (parsed.l3 == parsers::L3Kind::arp) {
    const auto target = parsers::ipv4_mapped(parsed.arp.target_ip);
    if (parsed.arp.operation != 1 || !snapshot.is_local_address(port_index, target))
      return drop(mbuf, DropReason::arp_not_for_us);
    counters_.arp_replies++;
    return send_reply(port_index, mbuf, answer_arp(frame, parsed, our_mac));
  }

  parsers::IpBytes target;
  if (neighbour_solicitation_target(frame, parsed, target)) {
    if (!snapshot.is_local_address(port_index, target))
      return drop(mbuf, DropReason::no_service);
    counters_.nd_advertisements++;
    return send_reply(port_index, mbuf,
                      answer_neighbour_solicitation(frame, rte_pktmbuf_tailroom(mbuf) +
                                                               rte_pktmbuf_data_len(mbuf),
                                                    parsed, our_mac));
  }

  const bool icmp = parsed.l4_proto == parsers::kProtoIcmp || parsed.l4_proto == parsers::kProtoIcmpv6;
  if (!icmp || !snapshot.is_local_address(port_index, parsed.dst_ip))
    return drop(mbuf, DropReason::no_service);
  const std::size_t echo = answer_icmp_echo(frame, parsed, our_mac);
  if (echo == 0) return drop(mbuf, DropReason::icmp_not_handled);
  counters_.icmp_echo_replies++;
  send_reply(port_index, mbuf, echo);
}

void Worker::forward(Pending& packet, std::int32_t position, std::uint64_t now) {
  const ServiceView& service = snapshot_->services[packet.service];
  const bool closing = (packet.tcp_flags & (parsers::kTcpFin | parsers::kTcpRst)) != 0;
  std::uint16_t backend;
  FlowEntry* entry = nullptr;
  // The bulk lookup ran before this burst's inserts: an earlier packet of the same new flow
  // in this burst may have added it since.
  if (position < 0) position = flows_.lookup(packet.key, packet.signature);

  if (position >= 0 && (entry = &flows_.at(position))->deadline_tsc >= now) {
    backend = entry->backend;
  } else {
    // A new flow, or one whose entry expired but was not swept yet: schedule it afresh.
    backend = pick_backend(service, packet.key, packet.signature);
    if (backend == kNoBackend) return drop(packet.mbuf, DropReason::no_backend);
    counters_.new_flows++;
    backend_counters_[backend].flows++;
    if (entry == nullptr) {
      const std::int32_t inserted = flows_.insert(
          packet.key, packet.signature, FlowEntry{0, backend, packet.service, 0});
      // A full table costs state, not packets: the consistent hash already chose the backend.
      if (inserted >= 0) entry = &flows_.at(inserted);
      else counters_.flow_table_full++;
    } else {
      *entry = FlowEntry{0, backend, packet.service, 0};
    }
  }
  if (entry != nullptr) {
    if (closing) entry->closing = 1;
    entry->deadline_tsc = now + (entry->closing ? service.fin_timeout_tsc : service.idle_timeout_tsc);
  }

  const BackendView& target = snapshot_->backends[backend];
  auto* ethernet = rte_pktmbuf_mtod(packet.mbuf, std::uint8_t*);
  std::memcpy(ethernet, target.mac.data(), 6);
  std::memcpy(ethernet + 6, snapshot_->ports[target.port].mac.data(), 6);

  BackendCounters& stats = backend_counters_[backend];
  stats.packets++;
  stats.bytes += rte_pktmbuf_pkt_len(packet.mbuf);
  counters_.forwarded++;
  send(target.port, packet.mbuf);
}

std::uint16_t Worker::pick_backend(const ServiceView& service, const FlowKey& key,
                                   std::uint32_t signature) const {
  const std::uint32_t hash =
      service.hash_input == HashInput::five_tuple
          ? signature
          : rte_hash_crc(key.src.data(), static_cast<std::uint32_t>(key.src.size()), 0x73726368);
  // Lemire's multiply-shift maps the hash onto [0, size) without a division.
  const std::size_t slot =
      static_cast<std::size_t>((static_cast<std::uint64_t>(hash) * service.maglev.size()) >> 32);
  return service.maglev[slot];
}

void Worker::send_reply(std::uint16_t port_index, rte_mbuf* mbuf, std::size_t length) {
  if (length < kMinFrame) {
    auto* frame = rte_pktmbuf_mtod(mbuf, std::uint8_t*);
    std::memset(frame + length, 0, kMinFrame - length);
    length = kMinFrame;
  }
  mbuf->data_len = static_cast<std::uint16_t>(length);
  mbuf->pkt_len = static_cast<std::uint32_t>(length);
  send(port_index, mbuf);
}

void Worker::send(std::uint16_t port_index, rte_mbuf* mbuf) {
  TxBuffer& tx = tx_[port_index];
  tx.mbufs[tx.count++] = mbuf;
  if (tx.count == kBurst) flush();
}

void Worker::drop(rte_mbuf* mbuf, DropReason reason) {
  counters_.drops[static_cast<std::size_t>(reason)]++;
  rte_pktmbuf_free(mbuf);
}

void Worker::flush() {
  for (std::uint16_t p = 0; p < tx_.size(); ++p) {
    TxBuffer& tx = tx_[p];
    if (tx.count == 0) continue;
    std::uint64_t bytes = 0;
    for (std::uint16_t i = 0; i < tx.count; ++i) bytes += rte_pktmbuf_pkt_len(tx.mbufs[i]);
    const std::uint16_t sent = rte_eth_tx_burst(snapshot_->ports[p].port_id, queue_, tx.mbufs, tx.count);
    for (std::uint16_t i = sent; i < tx.count; ++i) {
      bytes -= rte_pktmbuf_pkt_len(tx.mbufs[i]);
      drop(tx.mbufs[i], DropReason::tx_queue_full);
    }
    counters_.tx_packets += sent;
    counters_.tx_bytes += bytes;
    tx.count = 0;
  }
}

const char* to_string(DropReason reason) {
  switch (reason) {
    case DropReason::not_our_mac: return "not_our_mac";
    case DropReason::no_service: return "no_service";
    case DropReason::no_backend: return "no_backend";
    case DropReason::arp_not_for_us: return "arp_not_for_us";
    case DropReason::icmp_not_handled: return "icmp_not_handled";
    case DropReason::multi_segment: return "multi_segment";
    case DropReason::tx_queue_full: return "tx_queue_full";
    case DropReason::count_: break;
  }
  return "unknown";
}

}  // namespace tether::dataplane
