// Byte-by-byte frame construction for the parser and slow-path tests: every field is written
// explicitly, so a test can break exactly one of them.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <vector>

#include "parsers/packet.hpp"

namespace test_frames {

using Bytes = std::vector<std::uint8_t>;

inline void put8(Bytes& b, unsigned v) { b.push_back(static_cast<std::uint8_t>(v)); }
inline void put16(Bytes& b, unsigned v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
inline void put32(Bytes& b, std::uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}
// Byte by byte: GCC 12 at -O3 reports false -Warray-bounds on vector::insert of small arrays.
inline void put_bytes(Bytes& b, const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) b.push_back(p[i]);
}
inline void append(Bytes& b, const Bytes& more) { put_bytes(b, more.data(), more.size()); }
inline std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

using Mac = tether::parsers::MacBytes;
using Ip6 = tether::parsers::IpBytes;
struct Ip4 {
  std::uint8_t b[4];
};

inline const Mac kClientMac{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
inline const Mac kOurMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
inline const Ip4 kClient4{{198, 51, 100, 7}};
inline const Ip4 kVip4{{192, 0, 2, 100}};
inline const Ip6 kClient6{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
inline const Ip6 kVip6{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00};

inline tether::parsers::IpBytes mapped(const Ip4& a) { return tether::parsers::ipv4_mapped(a.b); }

// Ethernet II, optionally with one 802.1Q (or other TPID) tag.
inline Bytes ethernet(std::uint16_t ethertype, const Bytes& payload,
                      std::optional<std::uint16_t> vlan_tci = {}, std::uint16_t tpid = 0x8100,
                      const Mac& dst = kOurMac, const Mac& src = kClientMac) {
  Bytes b;
  put_bytes(b, dst.data(), 6);
  put_bytes(b, src.data(), 6);
  if (vlan_tci) {
    put16(b, tpid);
    put16(b, *vlan_tci);
  }
  put16(b, ethertype);
  append(b, payload);
  return b;
}

struct Ipv4Options {
  std::uint8_t version = 4;
  std::optional<std::uint8_t> ihl{};          // default from the options' length
  std::optional<std::uint16_t> total_length{};// default header + payload
  std::uint16_t flags_fragment = 0x4000;      // DF
  std::uint8_t ttl = 61;
  Bytes options{};                            // a multiple of 4 bytes
};

inline Bytes ipv4(std::uint8_t proto, const Bytes& payload, const Ip4& src = kClient4,
                  const Ip4& dst = kVip4, const Ipv4Options& o = {}) {
  Bytes b;
  const unsigned header = 20 + static_cast<unsigned>(o.options.size());
  const unsigned ihl = o.ihl ? *o.ihl : header / 4;
  put8(b, static_cast<unsigned>(o.version) << 4 | (ihl & 0x0f));
  put8(b, 0);  // DSCP/ECN
  put16(b, o.total_length ? *o.total_length : header + static_cast<unsigned>(payload.size()));
  put16(b, 0x1234);  // identification
  put16(b, o.flags_fragment);
  put8(b, o.ttl);
  put8(b, proto);
  put16(b, 0);  // checksum: the parser does not verify it
  put_bytes(b, src.b, 4);
  put_bytes(b, dst.b, 4);
  append(b, o.options);
  append(b, payload);
  return b;
}

// `payload` includes any extension headers; `payload_length` overrides the header field.
inline Bytes ipv6(std::uint8_t next_header, const Bytes& payload, const Ip6& src = kClient6,
                  const Ip6& dst = kVip6, std::optional<std::uint16_t> payload_length = {},
                  std::uint8_t version = 6, std::uint8_t hop_limit = 64) {
  Bytes b;
  put32(b, static_cast<std::uint32_t>(version) << 28 | 0x00012345);  // flow label 0x12345
  put16(b, payload_length ? *payload_length : static_cast<unsigned>(payload.size()));
  put8(b, next_header);
  put8(b, hop_limit);
  put_bytes(b, src.data(), src.size());
  put_bytes(b, dst.data(), dst.size());
  append(b, payload);
  return b;
}

// An IPv6 extension header (hop-by-hop, routing, destination options) of (1 + units) x 8
// bytes, filled with PadN-like bytes.
inline Bytes ipv6_extension(std::uint8_t next_header, std::uint8_t units = 0) {
  Bytes b;
  put8(b, next_header);
  put8(b, units);
  put8(b, 1);  // PadN
  put8(b, static_cast<unsigned>(4 + units * 8));
  for (unsigned i = 0; i < 4u + units * 8u; ++i) put8(b, 0);
  return b;
}

struct TcpOptions {
  std::optional<std::uint8_t> data_offset{};// in 32-bit words; default from the options
  Bytes options{};                          // a multiple of 4 bytes
};

inline Bytes tcp(std::uint16_t sport, std::uint16_t dport, std::uint8_t flags,
                 const Bytes& payload = {}, const TcpOptions& o = {}) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put32(b, 0x01020304);  // sequence
  put32(b, 0);           // acknowledgement
  const unsigned offset = o.data_offset ? *o.data_offset : (20 + static_cast<unsigned>(o.options.size())) / 4;
  put8(b, offset << 4);
  put8(b, flags);
  put16(b, 65535);  // window
  put16(b, 0);      // checksum
  put16(b, 0);      // urgent pointer
  append(b, o.options);
  append(b, payload);
  return b;
}

inline Bytes udp(std::uint16_t sport, std::uint16_t dport, const Bytes& payload = {},
                 std::optional<std::uint16_t> length = {}) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put16(b, length ? *length : 8 + static_cast<unsigned>(payload.size()));
  put16(b, 0);
  append(b, payload);
  return b;
}

// ICMP or ICMPv6 echo-shaped message: type, code, checksum 0, identifier, sequence, data.
inline Bytes icmp(std::uint8_t type, std::uint16_t identifier, std::uint16_t sequence,
                  const Bytes& data = {}, std::uint8_t code = 0) {
  Bytes b;
  put8(b, type);
  put8(b, code);
  put16(b, 0);
  put16(b, identifier);
  put16(b, sequence);
  append(b, data);
  return b;
}

struct ArpOptions {
  std::uint16_t hardware = 1;
  std::uint16_t protocol = 0x0800;
  std::uint8_t hardware_length = 6;
  std::uint8_t protocol_length = 4;
};

inline Bytes arp(std::uint16_t operation, const Mac& sender_mac, const Ip4& sender_ip,
                 const Mac& target_mac, const Ip4& target_ip, const ArpOptions& o = {}) {
  Bytes b;
  put16(b, o.hardware);
  put16(b, o.protocol);
  put8(b, o.hardware_length);
  put8(b, o.protocol_length);
  put16(b, operation);
  put_bytes(b, sender_mac.data(), sender_mac.size());
  put_bytes(b, sender_ip.b, 4);
  put_bytes(b, target_mac.data(), target_mac.size());
  put_bytes(b, target_ip.b, 4);
  return b;
}

inline Bytes pad_to(Bytes b, std::size_t size, std::uint8_t fill = 0xee) {
  if (b.size() < size) b.resize(size, fill);
  return b;
}

inline Bytes sequence_bytes(std::size_t n, std::uint8_t start = 0) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(start + i);
  return b;
}

// Parses a copy of `frame` in a heap block of exactly its size, so that ASan reports any
// read past the end.
inline tether::parsers::ParseStatus parse_exact(const Bytes& frame, tether::parsers::ParsedFrame& out) {
  const Bytes copy(frame.begin(), frame.end());
  return tether::parsers::parse_frame(std::span<const std::uint8_t>(copy.data(), copy.size()), out);
}

}  // namespace test_frames
