// Replies the balancer owes the network for the addresses it owns: ARP for VIPs and
// interface addresses, ICMP/ICMPv6 echo, IPv6 neighbour advertisements.
//
// Each function turns the received frame into its reply in place (same buffer, same VLAN
// tag) and returns the reply's length, or 0 when the frame asks for nothing we answer. They
// work on plain buffers so unit tests need no EAL. Which frames a worker answers, hands to
// the control thread or drops is decided beside them (Worker::answer_locally, slow_path.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "parsers/packet.hpp"

namespace tether::dataplane {

// A port's frames for its kernel interface draw on one of three allowances: `control` for
// what keeps the box reachable and routed (neighbour discovery, VRRP, OSPF, BGP, BFD, LLDP),
// `sync` for state sync between instances (UDP from and to `sync_port`, the one port the
// whole group listens on; 0: no sync), and `other` for the rest, so that a flood toward the
// host address (ping, SYNs, datagrams) can starve neither the next hop's ARP, a BGP session,
// nor the peers' session state.
enum class KernelClass : std::uint8_t { control, sync, other };
inline constexpr std::size_t kKernelClasses = 3;
KernelClass kernel_class(const parsers::ParsedFrame& parsed, std::uint16_t sync_port = 0);
// Of a frame the parser stopped at (`status`): LLDP by its EtherType, VRRP and OSPF by their
// IP protocol; anything else is `other`.
KernelClass kernel_class(std::span<const std::uint8_t> frame, parsers::ParseStatus status,
                         const parsers::ParsedFrame& parsed);

std::size_t answer_arp(std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                       const parsers::MacBytes& our_mac);
std::size_t answer_icmp_echo(std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                             const parsers::MacBytes& our_mac);
// Needs room for the 32-byte advertisement with its target link-layer address option.
std::size_t answer_neighbour_solicitation(std::uint8_t* frame, std::size_t capacity,
                                          const parsers::ParsedFrame& parsed,
                                          const parsers::MacBytes& our_mac);

// Requests the control thread sends to learn a backend's MAC: a broadcast ARP request, or
// a neighbour solicitation to the target's solicited-node multicast group. Each writes the
// whole frame (Ethernet up) and returns its length, or 0 when `capacity` is too small.
inline constexpr std::size_t kArpRequestLength = 60;  // padded to the Ethernet minimum
inline constexpr std::size_t kNeighbourSolicitationLength = 14 + 40 + 24 + 8;
std::size_t build_arp_request(std::uint8_t* frame, std::size_t capacity,
                              const parsers::MacBytes& our_mac, const parsers::IpBytes& our_address,
                              const parsers::IpBytes& target);
std::size_t build_neighbour_solicitation(std::uint8_t* frame, std::size_t capacity,
                                         const parsers::MacBytes& our_mac,
                                         const parsers::IpBytes& our_address,
                                         const parsers::IpBytes& target);

// What a new master sends for each VIP (README "Active-standby pair"). IPv4: an ARP
// announcement (RFC 5227 2.3), which is build_arp_request with the VIP as both sender and
// target. IPv6: an unsolicited neighbour advertisement (RFC 4861 7.2.6) from the VIP to
// all-nodes (ff02::1), override flag set, solicited and router flags clear, with the target
// link-layer address option. Returns its length, or 0 when `capacity` is too small.
inline constexpr std::size_t kUnsolicitedAdvertisementLength = 14 + 40 + 24 + 8;
std::size_t build_unsolicited_advertisement(std::uint8_t* frame, std::size_t capacity,
                                            const parsers::MacBytes& our_mac,
                                            const parsers::IpBytes& address);

// What a neighbour said about itself: an ARP reply's (or request's) sender, or a neighbour
// advertisement's target with its link-layer address (the frame's source MAC when the
// advertisement carries no option). False for anything else or anything malformed.
struct NeighbourAnswer {
  parsers::IpBytes address;
  parsers::MacBytes mac;
  bool solicited;  // an ARP reply, or an advertisement with the S flag
  bool override;   // may replace a MAC already known: ARP, or an advertisement with the O flag
};
bool neighbour_answer(const std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                      NeighbourAnswer& answer);

inline constexpr std::uint8_t kIcmpEchoRequest = 8;
inline constexpr std::uint8_t kIcmpv6EchoRequest = 128;
inline constexpr std::uint8_t kIcmpv6NeighbourSolicitation = 135;
inline constexpr std::uint8_t kIcmpv6NeighbourAdvertisement = 136;

}  // namespace tether::dataplane

namespace tether::dataplane {
// The target of a well-formed neighbour solicitation (hop limit 255, no extension headers,
// at least 24 bytes of ICMPv6), or false.
bool neighbour_solicitation_target(const std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                                   parsers::IpBytes& target);
}  // namespace tether::dataplane
