// A SIP response that tetherd itself sends for a request it refuses (admission control: every
// backend of the service is full, or a rate limit is reached), built per RFC 3261 8.2.6 and
// 18.2: Via (every value, in order), From, Call-ID and CSeq copied from the request, To
// copied with a tag added when it has none, a Retry-After and an empty body.
//
// As the server transport that received the request (18.2.1), the builder adds `received`
// to the top Via when its sent-by host is not the address the request came from, and fills
// in `rport` (RFC 3581) when the request asked for it (adding `received` then always). Where
// the response goes is 18.2.2's for an unreliable transport (tetherd answers only UDP):
// - the top Via has `maddr`: to that address, at the sent-by port or 5060, rport or not (RFC
//   3581 4 applies only without maddr); a multicast maddr with the Via's `ttl`, else TTL 1.
//   An maddr that is a host name (tetherd resolves no names) or not an address builds nothing;
// - otherwise to the request's source address (its `received`), at the source port with
//   rport, else at the sent-by port or 5060.
// The response comes from the address and port the request went to (the VIP).
//
// Plain C++ over the request's views: no allocation, nothing written past `out`, every byte of
// the request hostile. Copied header values are written unfolded (each run of white space
// and line breaks as one space), so no request byte can end a header line of the response.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "parsers/packet.hpp"
#include "parsers/sip.hpp"

namespace tether::parsers::sip {

struct Refusal {
  std::uint16_t status_code = 503;
  std::string_view reason_phrase = "Service Unavailable";
  std::uint32_t retry_after_s = 0;  // 0: no Retry-After header
  std::string_view to_tag;          // added to To when the request's To has no tag
};

// Where the request came from, as the transport saw it.
struct Source {
  std::string_view address;  // IPv4 dotted quad or IPv6 text, no brackets
  std::uint16_t port;
};

struct BuiltResponse {
  std::size_t size = 0;       // bytes written to `out`; 0: no response (see build_response)
  std::uint16_t port = 0;     // the UDP port to send it to
  // The top Via's maddr (IPv4-mapped for IPv4) when it has one: the response goes there
  // instead of to the source address.
  bool to_maddr = false;
  IpBytes maddr{};
  bool maddr_multicast = false;
  std::uint8_t ttl = 64;  // IP TTL or hop limit: a multicast maddr's ttl parameter (else 1), or 64
};

// Writes the response to `request` into `out`. Nothing is built (size 0) for a request that
// did not parse, an ACK (never answered, RFC 3261 17.2.1), a request without Via, From, To or
// CSeq, a top Via whose sent-by cannot be read, whose maddr is not an IP address or whose ttl
// is not 0-255, or a response that would not fit in `out`.
BuiltResponse build_response(const Message& request, Source source, const Refusal& refusal,
                             std::span<char> out);

}  // namespace tether::parsers::sip
