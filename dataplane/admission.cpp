#include "dataplane/admission.hpp"

#include <random>

#include "parsers/mix.hpp"

namespace tether::dataplane {
namespace {

void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
  for (; n >= 2; p += 2, n -= 2) sum += static_cast<std::uint32_t>(p[0] << 8 | p[1]);
  if (n == 1) sum += static_cast<std::uint32_t>(p[0] << 8);
  return sum;
}

std::uint16_t fold_checksum(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// Ethernet and IP headers of a reply to `request`, for an L4 segment of `l4_length` bytes:
// where the L4 header starts (0: no room), and the pseudo-header's sum for its checksum.
struct Headers {
  std::size_t l4 = 0;
  std::uint32_t pseudo_sum = 0;
};

// To `to` (an address of the request's family) through `to_mac`, with `ttl`.
struct Destination {
  const parsers::IpBytes& address;
  const parsers::MacBytes& mac;
  std::uint8_t ttl;
};

Headers write_headers(std::uint8_t* frame, std::size_t room, const parsers::ParsedFrame& request,
                      const parsers::MacBytes& port_mac, std::uint8_t protocol, std::size_t l4_length,
                      const Destination& to) {
  const bool v4 = request.l3 == parsers::L3Kind::ipv4;
  const std::size_t l2 = request.has_vlan ? 18 : 14;
  const std::size_t l3 = v4 ? 20 : 40;
  if (l2 + l3 + l4_length > room || l4_length > 65535 - l3) return {};
  for (std::size_t i = 0; i < 6; ++i) {
    frame[i] = to.mac[i];
    frame[6 + i] = port_mac[i];
  }
  if (request.has_vlan) {
    put16(frame + 12, 0x8100);
    put16(frame + 14, request.vlan_tci);
  }
  put16(frame + l2 - 2, v4 ? 0x0800 : 0x86dd);
  std::uint8_t* ip = frame + l2;
  std::uint32_t pseudo = protocol + static_cast<std::uint32_t>(l4_length);
  if (v4) {
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, static_cast<std::uint16_t>(l3 + l4_length));
    put16(ip + 4, 0);
    put16(ip + 6, 0x4000);  // don't fragment
    ip[8] = to.ttl;
    ip[9] = protocol;
    put16(ip + 10, 0);
    for (std::size_t i = 0; i < 4; ++i) {
      ip[12 + i] = request.dst_ip[12 + i];  // from the VIP
      ip[16 + i] = to.address[12 + i];
    }
    put16(ip + 10, fold_checksum(sum16(ip, 20)));
    pseudo = sum16(ip + 12, 8, pseudo);
  } else {
    ip[0] = 0x60;
    ip[1] = ip[2] = ip[3] = 0;
    put16(ip + 4, static_cast<std::uint16_t>(l4_length));
    ip[6] = protocol;
    ip[7] = to.ttl;
    for (std::size_t i = 0; i < 16; ++i) {
      ip[8 + i] = request.dst_ip[i];
      ip[24 + i] = to.address[i];
    }
    pseudo = sum16(ip + 8, 32, pseudo);
  }
  return {l2 + l3, pseudo};
}

}  // namespace

ClientRates::ClientRates() {
  std::random_device random;
  for (auto& key : key_) key = (static_cast<std::uint64_t>(random()) << 32) ^ random();
}

std::uint32_t ClientRates::bucket(unsigned row, const parsers::IpBytes& client) const {
  const parsers::AddressWords words = parsers::address_words(client);
  const std::uint64_t h = parsers::mix64(parsers::mix64(words.low ^ key_[row]) ^ words.high ^ (key_[row] >> 7));
  return static_cast<std::uint32_t>(h % kBuckets);
}

bool ClientRates::conforms(const parsers::IpBytes& client, std::uint64_t now, std::uint64_t tolerance) const {
  for (unsigned row = 0; row < kRows; ++row)
    if (buckets_[row][bucket(row, client)].conforms(now, tolerance)) return true;
  return false;
}

void ClientRates::charge(const parsers::IpBytes& client, std::uint64_t now, std::uint64_t interval) {
  for (unsigned row = 0; row < kRows; ++row) buckets_[row][bucket(row, client)].charge(now, interval);
}

parsers::MacBytes multicast_mac(const parsers::IpBytes& group) {
  // RFC 1112 6.4: 01:00:5e and the group's low 23 bits; RFC 2464 7: 33:33 and its low 32.
  if (parsers::is_ipv4_mapped(group))
    return {0x01, 0x00, 0x5e, static_cast<std::uint8_t>(group[13] & 0x7f), group[14], group[15]};
  return {0x33, 0x33, group[12], group[13], group[14], group[15]};
}

void refusal_to_tag(std::uint64_t call_digest, char (&tag)[17]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t mixed = parsers::mix64(call_digest ^ 0x7465746865723533ULL);  // "tether53"
  for (int i = 15; i >= 0; --i, mixed >>= 4) tag[i] = kHex[mixed & 15];
  tag[16] = '\0';
}

std::size_t write_udp_reply(std::uint8_t* frame, std::size_t room, const parsers::ParsedFrame& request,
                            const parsers::MacBytes& port_mac, std::uint16_t destination_port,
                            std::span<const char> payload, const ReplyElsewhere* elsewhere) {
  const std::size_t length = 8 + payload.size();
  Headers headers;
  if (elsewhere == nullptr) {
    headers = write_headers(frame, room, request, port_mac, parsers::kProtoUdp, length,
                            {request.src_ip, request.src_mac, 64});
  } else {
    // From the VIP: only to an address of its family.
    if (parsers::is_ipv4_mapped(elsewhere->address) != (request.l3 == parsers::L3Kind::ipv4)) return 0;
    const parsers::MacBytes mac =
        elsewhere->multicast ? multicast_mac(elsewhere->address) : request.src_mac;
    headers = write_headers(frame, room, request, port_mac, parsers::kProtoUdp, length,
                            {elsewhere->address, mac, elsewhere->ttl});
  }
  if (headers.l4 == 0) return 0;
  std::uint8_t* udp = frame + headers.l4;
  put16(udp, request.dst_port);
  put16(udp + 2, destination_port);
  put16(udp + 4, static_cast<std::uint16_t>(length));
  put16(udp + 6, 0);
  for (std::size_t i = 0; i < payload.size(); ++i) udp[8 + i] = static_cast<std::uint8_t>(payload[i]);
  const std::uint16_t checksum = fold_checksum(sum16(udp, length, headers.pseudo_sum));
  put16(udp + 6, checksum == 0 ? 0xffff : checksum);
  return headers.l4 + length;
}

std::size_t write_tcp_reset(std::uint8_t* frame, std::size_t room, const parsers::ParsedFrame& syn,
                            const parsers::MacBytes& port_mac) {
  const Headers headers = write_headers(frame, room, syn, port_mac, parsers::kProtoTcp, 20, {syn.src_ip, syn.src_mac, 64});
  if (headers.l4 == 0) return 0;
  std::uint8_t* tcp = frame + headers.l4;
  // The SYN takes one sequence number, its data (if any) the rest.
  const std::uint32_t ack = syn.tcp_seq + 1 + syn.payload_length;
  put16(tcp, syn.dst_port);
  put16(tcp + 2, syn.src_port);
  put16(tcp + 4, 0);
  put16(tcp + 6, 0);
  put16(tcp + 8, static_cast<std::uint16_t>(ack >> 16));
  put16(tcp + 10, static_cast<std::uint16_t>(ack));
  tcp[12] = 5 << 4;
  tcp[13] = parsers::kTcpRst | parsers::kTcpAck;
  put16(tcp + 14, 0);  // window
  put16(tcp + 16, 0);
  put16(tcp + 18, 0);
  put16(tcp + 16, fold_checksum(sum16(tcp, 20, headers.pseudo_sum)));
  return headers.l4 + 20;
}

}  // namespace tether::dataplane
