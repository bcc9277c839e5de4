// RTSP message parser (RFC 2326 RTSP/1.0, RFC 7826 RTSP/2.0) for the control connection.
//
// Parsed: the start line (request: method, URL, version; response: code, reason), then the
// header block up to the empty line: CSeq, Session (the id, without ";timeout="),
// Content-Length, and every Transport header, split into its comma-separated specs (RFC 2326
// 12.39 and RFC 7826 20.2.3 grammars: quoted strings may hold `,`, `;` and `/`, parameters
// come in any order, unknown ones are skipped). Per spec: transport protocol/profile/lower
// transport (RFC 7826 other-trans may have more `/` parts: lower is then `other`),
// unicast/multicast, client_port, server_port, interleaved, destination, and the RTP and
// RTCP addresses of RFC 7826 dest_addr and src_addr. A `$` interleaved binary frame
// (RFC 2326 10.12) is recognised so that a TCP stream can be walked frame by frame. The body
// is not parsed.
//
// parse() needs the whole header block and returns need_more until it is there; the body
// need not be. `size` is the length of the whole message (headers, Content-Length body, or
// interleaved payload), which may exceed the input: message_extent() says whether the whole
// message is present, for TCP reassembly.
//
// Returned views point into the input. Caps: max_headers header fields, max_transports
// transport specs. The work is linear in the input size, which the caller bounds.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "parsers/enum_names.hpp"
#include "parsers/text.hpp"

namespace tether::parsers::rtsp {

inline constexpr std::size_t max_headers = 64;
inline constexpr std::size_t max_transports = 8;

enum class Kind : std::uint8_t { request, response, interleaved };

// Method tokens are case-sensitive; anything else is `other`.
#define TETHER_RTSP_METHODS(X)                                                                     \
  X(OPTIONS) X(DESCRIBE) X(SETUP) X(PLAY) X(PAUSE) X(TEARDOWN) X(GET_PARAMETER) X(SET_PARAMETER) \
  X(ANNOUNCE) X(RECORD) X(REDIRECT) X(PLAY_NOTIFY)

enum class Method : std::uint8_t { TETHER_RTSP_METHODS(TETHER_TOKEN_ENUMERATOR) other };
TETHER_ENUM_SPELLINGS(Method, TETHER_RTSP_METHODS)

// Why a message is malformed: X(reason, its name in logs and tests).
#define TETHER_RTSP_REASONS(X)                                                                     \
  X(none, "none")                                                                                  \
  X(bad_request_line, "bad request line")                                                          \
  X(bad_status_line, "bad status line")                                                            \
  X(bad_version, "bad version") /* "RTSP/x.y" other than 1.0 and 2.0 */                            \
  X(header_without_colon, "header without colon")                                                  \
  X(bad_header_name, "bad header name")                                                            \
  X(continuation_without_header, "continuation line without header")                               \
  X(too_many_headers, "too many headers")                                                          \
  X(bad_cseq, "bad CSeq")                                                                          \
  X(bad_session, "bad Session")                                                                    \
  X(bad_content_length, "bad Content-Length") /* not a number, or two different values */          \
  /* no protocol/profile, or a port, channel or address that is not one */                         \
  X(bad_transport, "bad Transport")                                                                \
  X(too_many_transports, "too many Transport specs")

enum class Reason : std::uint8_t { TETHER_RTSP_REASONS(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(Reason, TETHER_RTSP_REASONS)

// udp when not given
#define TETHER_RTSP_LOWER_TRANSPORTS(X) X(udp, "UDP") X(tcp, "TCP") X(other, "other")
enum class LowerTransport : std::uint8_t { TETHER_RTSP_LOWER_TRANSPORTS(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(LowerTransport, TETHER_RTSP_LOWER_TRANSPORTS)
enum class Delivery : std::uint8_t { unspecified, unicast, multicast };

// `first`..`last` inclusive; a single value has last == first. Not given: present == false.
struct Range {
  bool present = false;
  std::uint16_t first = 0;
  std::uint16_t last = 0;
};

// One RFC 7826 quoted-addr: host-port ("host:port", "host", ":port", "[v6]:port") or an
// extension-addr (any other quoted text: host holds it, port is 0).
struct TransportAddress {
  std::string_view host;  // without the brackets of an IPv6 literal; empty for ":port"
  std::uint16_t port = 0;  // 0: not given
};

struct TransportSpec {
  std::string_view spec;  // the whole spec, trimmed, for logs
  std::string_view protocol;  // "RTP"
  std::string_view profile;   // "AVP", "SAVP", "AVPF", ...
  rtsp::LowerTransport lower = rtsp::LowerTransport::udp;
  std::string_view lower_name;  // as written, empty when not given
  rtsp::Delivery delivery = rtsp::Delivery::unspecified;
  Range client_port;          // ports 1-65535
  Range server_port;
  Range interleaved;          // channels 0-255: media rides the control connection
  std::string_view destination;  // RFC 2326 destination=, unquoted
  // RFC 7826 dest_addr="host:port"/"host:port": where the media receiver takes the RTP and
  // the RTCP packets (for RTP/AVP/UDP: the first address RTP, the second RTCP; addresses
  // past the second are skipped). Ports are 0 where not given.
  std::string_view dest_addr;  // the raw list
  std::uint16_t dest_rtp_port = 0;
  std::uint16_t dest_rtcp_port = 0;
  std::string_view dest_rtp_host;
  std::string_view dest_rtcp_host;
  // RFC 7826 src_addr, same form: where the media sender sends RTP and RTCP from.
  std::string_view src_addr;
  std::uint16_t src_rtp_port = 0;
  std::uint16_t src_rtcp_port = 0;
  std::string_view src_rtp_host;
  std::string_view src_rtcp_host;
};

struct Message {
  parsers::Status status = parsers::Status::not_this_protocol;
  rtsp::Reason reason = rtsp::Reason::none;
  rtsp::Kind kind = rtsp::Kind::request;

  // Request line.
  rtsp::Method method = rtsp::Method::other;
  std::string_view method_name;
  std::string_view url;
  std::uint8_t version = 0;  // major version: 1 or 2
  // Status line.
  std::uint16_t status_code = 0;
  std::string_view reason_phrase;

  bool has_cseq = false;
  std::uint32_t cseq = 0;
  std::string_view session_id;
  bool has_content_length = false;
  std::uint32_t content_length = 0;

  std::size_t transport_count = 0;
  std::array<TransportSpec, max_transports> transports{};

  std::uint8_t channel = 0;  // kind::interleaved: the channel of the `$` frame

  std::size_t header_count = 0;
  std::string_view headers;  // header lines through the empty line
  // Bytes from the input's start through the end of this message (leading empty lines,
  // headers, body or interleaved payload). May exceed the input: see message_extent().
  std::size_t size = 0;
};

[[nodiscard]] Message parse(ByteSpan input);

// For TCP reassembly: does `stream` start with a whole message (request or response through
// its body, or a `$` frame)? `parsed` with its size when it does, `need_more` while it does
// not, otherwise what parse() found.
struct Extent {
  parsers::Status status = parsers::Status::need_more;
  rtsp::Reason reason = rtsp::Reason::none;
  std::size_t size = 0;
};
[[nodiscard]] Extent message_extent(ByteSpan stream);

}  // namespace tether::parsers::rtsp
