#include "parsers/ftp.hpp"

#include <algorithm>
#include <array>
#include <optional>

#include "parsers/ip_text.hpp"

namespace tether::parsers::ftp {
namespace {

using ip_text::ipv4_bytes;
using ip_text::ipv6_bytes;
using ip_text::parse_ipv4;
using ip_text::parse_ipv6;
using text::iequals;

// A decimal field that must hold a number up to `max`: empty or non-digits is a syntax
// error, digits beyond `max` are out of range.
Reason check_number(std::string_view digits, std::uint32_t max, Reason syntax_error,
                    std::uint32_t& value) {
  if (digits.empty() || text::leading_digits(digits).size() != digits.size()) return syntax_error;
  auto parsed = text::parse_decimal(digits, max);
  if (!parsed) return Reason::number_out_of_range;
  value = *parsed;
  return Reason::none;
}

// "h1,h2,h3,h4,p1,p2" at the start of `s` (RFC 959 host-port). `length` gets the characters
// it spans; whatever follows is the caller's business.
Reason read_host_port(std::string_view s, Reason syntax_error, Endpoint& data,
                      std::size_t& length) {
  std::uint32_t numbers[6];
  std::size_t pos = 0;
  for (std::size_t i = 0; i < 6; ++i) {
    if (i > 0) {
      if (pos >= s.size() || s[pos] != ',') return syntax_error;
      ++pos;
    }
    std::string_view digits = text::leading_digits(s.substr(pos));
    if (Reason why = check_number(digits, 255, syntax_error, numbers[i]); why != Reason::none)
      return why;
    pos += digits.size();
  }
  std::uint32_t port = (numbers[4] << 8) | numbers[5];
  if (port == 0) return Reason::port_zero;
  data.family = Family::ipv4;
  for (std::size_t i = 0; i < 4; ++i) data.address[i] = static_cast<std::uint8_t>(numbers[i]);
  data.port = static_cast<std::uint16_t>(port);
  length = pos;
  return Reason::none;
}

Reason read_port(std::string_view digits, Reason syntax_error, Endpoint& data) {
  std::uint32_t port = 0;
  if (Reason why = check_number(digits, 65535, syntax_error, port); why != Reason::none)
    return why;
  if (port == 0) return Reason::port_zero;
  data.port = static_cast<std::uint16_t>(port);
  return Reason::none;
}

// RFC 2428 net-prt: an address family number, of which only 1 (IPv4) and 2 (IPv6) exist.
Reason parse_net_protocol(std::string_view digits, Reason syntax_error, Family& out) {
  std::uint32_t number = 0;
  Reason why = check_number(digits, 255, syntax_error, number);
  if (why == Reason::number_out_of_range || (why == Reason::none && number != 1 && number != 2))
    return Reason::unknown_address_family;
  if (why != Reason::none) return why;
  out = number == 1 ? Family::ipv4 : Family::ipv6;
  return Reason::none;
}

// EPSV [ALL | net-prt]
Reason parse_epsv(std::string_view argument, EpsvMode& mode) {
  if (argument.empty()) {
    mode = EpsvMode::no_argument;
    return Reason::none;
  }
  if (iequals(argument, "ALL")) {
    mode = EpsvMode::all;
    return Reason::none;
  }
  Family protocol = Family::none;
  if (Reason why = parse_net_protocol(argument, Reason::bad_epsv_argument, protocol);
      why != Reason::none)
    return why;
  mode = protocol == Family::ipv4 ? EpsvMode::ipv4 : EpsvMode::ipv6;
  return Reason::none;
}

// EPRT <d><net-prt><d><net-addr><d><tcp-port><d>
Reason parse_eprt(std::string_view argument, Endpoint& data) {
  if (argument.empty() || argument[0] < 33 || argument[0] > 126) return Reason::bad_eprt_argument;
  char delimiter = argument[0];
  auto [protocol, after_protocol, has_address] = text::split_once(argument.substr(1), delimiter);
  auto [address, after_address, has_port] = text::split_once(after_protocol, delimiter);
  auto [port, after_port, closed] = text::split_once(after_address, delimiter);
  if (!has_address || !has_port || !closed || !after_port.empty())
    return Reason::bad_eprt_argument;

  Family protocol_family = Family::none;
  if (Reason why = parse_net_protocol(protocol, Reason::bad_eprt_argument, protocol_family);
      why != Reason::none)
    return why;
  if (protocol_family == Family::ipv4) {
    ipv4_bytes v4;
    if (!parse_ipv4(address, v4)) return Reason::bad_ipv4_address;
    std::copy(v4.begin(), v4.end(), data.address.begin());
  } else if (!parse_ipv6(address, data.address)) {
    return Reason::bad_ipv6_address;
  }
  data.family = protocol_family;
  return read_port(port, Reason::bad_eprt_argument, data);
}

Reason parse_port(std::string_view argument, Endpoint& data) {
  std::size_t length = 0;
  if (Reason why = read_host_port(argument, Reason::bad_port_argument, data, length);
      why != Reason::none)
    return why;
  return length == argument.size() ? Reason::none : Reason::bad_port_argument;
}

// RFC 1123 4.1.2.6: the client must scan the 227 text for the numbers, since servers dress
// them differently. Tries each run of digits in turn; each try reads a bounded stretch after
// the run, so the scan stays linear.
Reason parse_227(std::string_view text, Endpoint& data) {
  Reason first_fault = Reason::bad_227_reply;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!text::is_digit(text[i]) || (i > 0 && text::is_digit(text[i - 1]))) continue;
    Endpoint candidate;
    std::size_t length = 0;
    Reason why = read_host_port(text.substr(i), Reason::bad_227_reply, candidate, length);
    if (why == Reason::none) {
      data = candidate;
      return Reason::none;
    }
    if (first_fault == Reason::bad_227_reply) first_fault = why;
  }
  return first_fault;
}

// RFC 2428: "(<d><d><d><tcp-port><d>)" somewhere in the text.
Reason parse_229(std::string_view text, Endpoint& data) {
  for (std::size_t open = text.find('('); open != std::string_view::npos;
       open = text.find('(', open + 1)) {
    std::string_view s = text.substr(open + 1);
    if (s.size() < 3 || s[0] < 33 || s[0] > 126 || s[1] != s[0] || s[2] != s[0]) continue;
    std::string_view digits = text::leading_digits(s.substr(3));
    std::string_view after = s.substr(3 + digits.size());
    if (digits.empty() || after.size() < 2 || after[0] != s[0] || after[1] != ')') continue;
    return read_port(digits, Reason::bad_229_reply, data);
  }
  return Reason::bad_229_reply;
}

}  // namespace

Command parse_command(ByteSpan input) {
  Command cmd;
  std::string_view all = text::as_chars(input);
  // A verb is 3 or 4 letters (RFC 959 5.3.1), then SP or the line end.
  std::size_t letters = 0;
  while (letters < all.size() && letters <= 4 && text::is_alpha(all[letters])) ++letters;
  if (letters > 4) return cmd;
  if (letters == all.size()) {
    cmd.status = Status::need_more;
    return cmd;
  }
  char after_verb = all[letters];
  if (letters < 3 || (after_verb != ' ' && after_verb != '\r' && after_verb != '\n')) return cmd;
  auto line = text::first_line(all);
  if (!line) {
    cmd.status = Status::need_more;
    return cmd;
  }
  cmd.size = line->size;
  cmd.verb_name = line->line.substr(0, letters);
  cmd.argument = text::trim(line->line.substr(letters));

  Reason why = Reason::none;
  if (iequals(cmd.verb_name, "PASV")) {
    cmd.verb = Verb::PASV;
  } else if (iequals(cmd.verb_name, "EPSV")) {
    cmd.verb = Verb::EPSV;
    why = parse_epsv(cmd.argument, cmd.epsv);
  } else if (iequals(cmd.verb_name, "PORT")) {
    cmd.verb = Verb::PORT;
    why = parse_port(cmd.argument, cmd.data);
  } else if (iequals(cmd.verb_name, "EPRT")) {
    cmd.verb = Verb::EPRT;
    why = parse_eprt(cmd.argument, cmd.data);
  }
  cmd.status = why == Reason::none ? Status::parsed : Status::malformed;
  cmd.reason = why;
  if (why != Reason::none) cmd.data = Endpoint{};
  return cmd;
}

Reply parse_reply(ByteSpan input) {
  Reply rep;
  std::string_view all = text::as_chars(input);
  // A reply starts with a code from 100 to 599, then SP, '-' (more lines follow) or the end.
  for (std::size_t i = 0; i < all.size() && i < 3; ++i)
    if (i == 0 ? all[0] < '1' || all[0] > '5' : !text::is_digit(all[i])) return rep;
  if (all.size() <= 3) {
    rep.status = Status::need_more;
    return rep;
  }
  char separator = all[3];
  if (separator != ' ' && separator != '-' && separator != '\r' && separator != '\n') return rep;
  auto first = text::first_line(all);
  if (!first) {
    rep.status = Status::need_more;
    return rep;
  }
  std::string_view code = all.substr(0, 3);
  rep.code = static_cast<std::uint16_t>(text::parse_decimal(code).value_or(0));

  // A multi-line reply ends at the first line that starts with the same code and a SP.
  std::size_t end = first->size;
  std::size_t text_end = first->line.size();
  if (separator == '-') {
    for (;;) {
      auto line = text::first_line(all.substr(end));
      if (!line) {
        rep.status = Status::need_more;
        return rep;
      }
      std::size_t line_start = end;
      end += line->size;
      if (line->line.starts_with(code) && (line->line.size() == 3 || line->line[3] == ' ')) {
        text_end = line_start + line->line.size();
        break;
      }
    }
  }
  std::size_t text_start = first->line.size() > 3 ? 4 : 3;
  rep.text = all.substr(text_start, text_end - text_start);
  rep.size = end;

  Reason why = Reason::none;
  if (rep.code == 227) why = parse_227(rep.text, rep.data);
  else if (rep.code == 229) why = parse_229(rep.text, rep.data);
  rep.status = why == Reason::none ? Status::parsed : Status::malformed;
  rep.reason = why;
  return rep;
}

}  // namespace tether::parsers::ftp
