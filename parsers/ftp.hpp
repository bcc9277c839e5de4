// FTP control-connection parser (RFC 959, RFC 2428): the lines that announce data
// connections.
//
// parse_command() reads one client command line: PASV; EPSV with no argument, "ALL", "1" or
// "2"; PORT h1,h2,h3,h4,p1,p2; EPRT |1|a.b.c.d|port| and |2|v6addr|port| (any delimiter
// from 33 to 126). Other verbs (3-4 letters, any case) are verb::other with their argument.
//
// parse_reply() reads one server reply, multi-line ones ("123-..." through "123 ...")
// included: 227 (the six numbers are taken from the first place in the text where they
// appear, so vsftpd's "(h,h,h,h,p,p).", parentheses without the dot, and RFC 1123's
// "=h,h,h,h,p,p" all parse), and 229 "(|||port|)". Other codes return code and text.
//
// Addresses come back as bytes in network order (4 for IPv4, 16 for IPv6), ports as
// numbers. Each number must be in range (0-255, port 1-65535). Lines end at LF, a CR before
// it is dropped. `size` is the length of the line(s) consumed, so a TCP stream can be walked;
// need_more means the line is not complete yet. The work is linear in the input size.
// Telnet IAC sequences (sent before ABOR) are not interpreted: such a line is
// not_this_protocol.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "parsers/enum_names.hpp"
#include "parsers/text.hpp"

namespace tether::parsers::ftp {

#define TETHER_FTP_VERBS(X) X(PASV) X(EPSV) X(PORT) X(EPRT)
enum class Verb : std::uint8_t { TETHER_FTP_VERBS(TETHER_TOKEN_ENUMERATOR) other };
TETHER_ENUM_SPELLINGS(Verb, TETHER_FTP_VERBS)

enum class EpsvMode : std::uint8_t { no_argument, all, ipv4, ipv6 };

enum class Family : std::uint8_t { none, ipv4, ipv6 };

// Why a line is malformed: X(reason, its name in logs and tests).
#define TETHER_FTP_REASONS(X)                                                                      \
  X(none, "none")                                                                                  \
  X(bad_port_argument, "bad PORT argument") /* PORT: not six comma-separated numbers */            \
  X(bad_eprt_argument, "bad EPRT argument") /* EPRT: not <d>af<d>address<d>port<d> */              \
  X(bad_epsv_argument, "bad EPSV argument") /* EPSV: not ALL or a number */                        \
  /* EPRT/EPSV: a protocol number other than 1 and 2 */                                            \
  X(unknown_address_family, "unknown address family")                                              \
  X(bad_ipv4_address, "bad IPv4 address")                                                          \
  X(bad_ipv6_address, "bad IPv6 address")                                                          \
  X(number_out_of_range, "number out of range") /* a byte above 255 or a port above 65535 */       \
  X(port_zero, "port 0")                                                                           \
  X(bad_227_reply, "no address in 227 reply") /* no h1,h2,h3,h4,p1,p2 in the text */               \
  X(bad_229_reply, "no port in 229 reply") /* no (<d><d><d>port<d>) in the text */

enum class Reason : std::uint8_t { TETHER_FTP_REASONS(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(Reason, TETHER_FTP_REASONS)

// Where a data connection goes. A 229 reply names only the port: the address is the control
// connection's server address, so `family` is none there.
struct Endpoint {
  ftp::Family family = ftp::Family::none;
  std::array<std::uint8_t, 16> address{};  // IPv4 uses the first 4 bytes
  std::uint16_t port = 0;
};

struct Command {
  parsers::Status status = parsers::Status::not_this_protocol;
  ftp::Reason reason = ftp::Reason::none;
  ftp::Verb verb = ftp::Verb::other;
  std::string_view verb_name;  // as written
  std::string_view argument;   // trimmed, may be empty
  ftp::EpsvMode epsv = ftp::EpsvMode::no_argument;
  Endpoint data;               // PORT, EPRT
  std::size_t size = 0;        // the line, terminator included
};

struct Reply {
  parsers::Status status = parsers::Status::not_this_protocol;
  ftp::Reason reason = ftp::Reason::none;
  std::uint16_t code = 0;
  std::string_view text;       // after the code: one line, or all lines of a multi-line reply
  Endpoint data;               // 227, 229
  std::size_t size = 0;        // the reply's lines, terminators included
};

[[nodiscard]] Command parse_command(ByteSpan input);
[[nodiscard]] Reply parse_reply(ByteSpan input);

}  // namespace tether::parsers::ftp
