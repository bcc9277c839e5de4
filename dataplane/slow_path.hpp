// Replies the balancer owes the network for the addresses it owns: ARP for VIPs and
// interface addresses, ICMP/ICMPv6 echo, IPv6 neighbour advertisements.
//
// Each function turns the received frame into its reply in place (same buffer, same VLAN
// tag) and returns the reply's length, or 0 when the frame asks for nothing we answer. They
// work on plain buffers so unit tests need no EAL.
#pragma once

#include <cstddef>
#include <cstdint>

#include "parsers/packet.hpp"

namespace tether::dataplane {

std::size_t answer_arp(std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                       const parsers::MacBytes& our_mac);
std::size_t answer_icmp_echo(std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                             const parsers::MacBytes& our_mac);
// Needs room for the 32-byte advertisement with its target link-layer address option.
std::size_t answer_neighbour_solicitation(std::uint8_t* frame, std::size_t capacity,
                                          const parsers::ParsedFrame& parsed,
                                          const parsers::MacBytes& our_mac);

inline constexpr std::uint8_t kIcmpEchoRequest = 8;
inline constexpr std::uint8_t kIcmpv6EchoRequest = 128;
inline constexpr std::uint8_t kIcmpv6NeighbourSolicitation = 135;

}  // namespace tether::dataplane

namespace tether::dataplane {
// The target of a well-formed neighbour solicitation (hop limit 255, no extension headers,
// at least 24 bytes of ICMPv6), or false.
bool neighbour_solicitation_target(const std::uint8_t* frame, const parsers::ParsedFrame& parsed,
                                   parsers::IpBytes& target);
}  // namespace tether::dataplane
