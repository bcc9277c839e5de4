// SIP (RFC 3261) message parser: reads what session routing needs from one message.
//
// Parsed: the start line (request: method, Request-URI, SIP/2.0; response: code, reason),
// then the header block up to the empty line: Call-ID (also compact `i`), CSeq, From (`f`,
// kept raw) and Content-Length (also `l`). Other headers are found on demand with find_header(). The body
// is not parsed; `body` is the span of it that Content-Length allows. Input made only of CR
// and LF (RFC 5626 keepalive: CRLFCRLF ping, CRLF pong) is `parsed` as kind::keepalive.
// need_more is returned for framing::stream only: a datagram cut short is malformed.
//
// Returned views point into the input and live as long as it does. On `malformed`, the
// fields read before the fault are filled in; for reason::call_id_missing that is all of
// them, so the caller can still count or route such messages by other means.
//
// Tolerated: bare LF line ends, empty lines before the start line, blanks before a header's
// colon, folded header values (RFC 3261 7.3.1). A folded value is returned raw; compare and
// hash it with equal_unfolded()/hash_unfolded(), which treat folded and unfolded forms alike.
//
// The work is linear in the input size, which the caller bounds (a UDP datagram, or the
// reassembly buffer of a TCP stream); at most max_headers header fields are read. A Call-ID
// may be as long as the message holds: RFC 3261 sets no limit, and a call whose Call-ID
// were refused would be balanced message by message, split over backends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "parsers/enum_names.hpp"
#include "parsers/text.hpp"

namespace tether::parsers::sip {

inline constexpr std::size_t max_headers = 64;

// How the input was framed. A datagram is one whole message: a message cut short in it is
// malformed. A stream (TCP, TLS) may be cut anywhere: a cut message is need_more, and `size`
// tells where the next message starts.
enum class Framing : std::uint8_t { datagram, stream };

#define TETHER_SIP_KINDS(X) X(request, "request") X(response, "response") X(keepalive, "keepalive")
enum class Kind : std::uint8_t { TETHER_SIP_KINDS(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(Kind, TETHER_SIP_KINDS)

// Method tokens are case-sensitive (RFC 3261 7.1); anything else is `other`.
#define TETHER_SIP_METHODS(X)                                                                      \
  X(INVITE) X(ACK) X(BYE) X(CANCEL) X(REGISTER) X(OPTIONS) X(PRACK) X(SUBSCRIBE) X(NOTIFY)         \
  X(PUBLISH) X(INFO) X(REFER) X(MESSAGE) X(UPDATE)

enum class Method : std::uint8_t { TETHER_SIP_METHODS(TETHER_TOKEN_ENUMERATOR) other };
TETHER_ENUM_SPELLINGS(Method, TETHER_SIP_METHODS)

// Why a message is malformed: X(reason, its name in logs and tests).
#define TETHER_SIP_REASONS(X)                                                                      \
  X(none, "none")                                                                                  \
  /* a datagram whose start line has no line end */                                                \
  X(first_line_unterminated, "no CRLF in first line")                                              \
  X(bad_request_line, "bad request line")                                                          \
  X(bad_status_line, "bad status line")                                                            \
  X(bad_version, "bad version") /* "SIP/x.y" other than SIP/2.0 */                                 \
  X(header_without_colon, "header without colon")                                                  \
  X(bad_header_name, "bad header name")                                                            \
  /* a folded line right after the start line */                                                   \
  X(continuation_without_header, "continuation line without header")                               \
  /* a datagram without the empty line that ends the headers */                                    \
  X(headers_unterminated, "headers not terminated by empty line")                                  \
  X(too_many_headers, "too many headers")                                                          \
  X(call_id_missing, "Call-ID missing")                                                            \
  X(call_id_empty, "Call-ID empty")                                                                \
  X(call_id_conflict, "Call-ID headers differ") /* two Call-ID headers with different values */    \
  X(bad_cseq, "bad CSeq")                                                                          \
  X(bad_content_length, "bad Content-Length") /* not a number, or two different values */          \
  /* a datagram with fewer body bytes than Content-Length */                                       \
  X(body_truncated, "body shorter than Content-Length")

enum class Reason : std::uint8_t { TETHER_SIP_REASONS(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(Reason, TETHER_SIP_REASONS)

struct Message {
  parsers::Status status = parsers::Status::not_this_protocol;
  sip::Reason reason = sip::Reason::none;
  sip::Kind kind = sip::Kind::request;

  // Request line.
  sip::Method method = sip::Method::other;
  std::string_view method_name;
  std::string_view request_uri;
  // Status line.
  std::uint16_t status_code = 0;
  std::string_view reason_phrase;

  std::string_view call_id;     // raw and trimmed; see call_id_folded
  bool call_id_folded = false;  // continued on a folded line: use hash_unfolded()/equal_unfolded()
  std::string_view from;        // the first From (`f`) value, raw: tag_parameter() reads its tag

  bool has_cseq = false;
  std::uint32_t cseq = 0;
  sip::Method cseq_method = sip::Method::other;
  std::string_view cseq_method_name;

  bool has_content_length = false;
  std::uint32_t content_length = 0;

  std::size_t header_count = 0;
  std::string_view headers;  // header lines through the empty line, for find_header()
  std::string_view body;
  // Bytes from the input's start to the end of this message: keepalives and leading empty
  // lines included. For a stream, the next message starts there.
  std::size_t size = 0;
};

[[nodiscard]] Message parse(ByteSpan input, Framing how = Framing::datagram);

// The first value of header `name` (any letter case, full or compact form: "From" also finds
// "f", and "f" finds "From") in a message parse() returned `parsed` or malformed with
// call_id_missing. Raw and trimmed; may be folded.
[[nodiscard]] std::optional<std::string_view> find_header(const Message& msg,
                                                        std::string_view name);

// The tag parameter of a From or To header value (RFC 3261 19.3), trimmed, or nothing when
// there is none. Parameters follow the '>' of a name-addr (`"Bob" <sip:b@h;tag=x>;tag=y` has
// tag y) or the first ';' of a bare addr-spec; quoted display names may hold any of these.
// `value` may be folded.
[[nodiscard]] std::optional<std::string_view> tag_parameter(std::string_view value);

// A request outside any dialog: its To header has no tag (RFC 3261 8.1.1.2, 12.2). An INVITE
// outside a dialog starts a new call; the ACK, BYE and re-INVITE of a call carry the To tag.
// A request without a To header counts as outside. Walks the headers: ask only when needed.
[[nodiscard]] bool outside_dialog(const Message& msg);

// The full name of a compact header form ("i" -> "Call-ID"), or `name` itself.
std::string_view expand_compact_name(std::string_view name);

// 64-bit digest of a header value with folding undone (RFC 3261 7.3.1), so folded and
// unfolded forms of one Call-ID digest alike. Byte values are otherwise significant: Call-IDs
// compare case-sensitively. Pick `seed` at random per process: the digest is fast, not
// collision-resistant against someone who knows the seed.
[[nodiscard]] std::uint64_t hash_unfolded(std::string_view value, std::uint64_t seed = 0);

// True when two header values are equal once unfolded.
bool equal_unfolded(std::string_view a, std::string_view b);

}  // namespace tether::parsers::sip
