#include "parsers/rtsp.hpp"

#include <optional>

namespace tether::parsers::rtsp {
namespace {

using text::iequals;

constexpr std::string_view version_prefix = "RTSP/";

constexpr std::string_view method_names[] = {TETHER_RTSP_METHODS(TETHER_TOKEN_SPELLING)};

Method to_method(std::string_view name) { return enum_spelled<Method>(method_names, name); }

// The major version of "RTSP/1.0" or "RTSP/2.0", else nothing.
std::optional<std::uint8_t> parse_version(std::string_view version) {
  if (iequals(version, "RTSP/1.0")) return 1;
  if (iequals(version, "RTSP/2.0")) return 2;
  return std::nullopt;
}

Reason parse_start_line(std::string_view line, Message& msg) {
  if (text::istarts_with(line, version_prefix)) {
    msg.kind = Kind::response;
    text::StatusLine parts = text::split_status_line(line, 599);
    auto major = parse_version(parts.version);
    if (!major) return Reason::bad_version;
    if (parts.code == 0) return Reason::bad_status_line;
    msg.version = *major;
    msg.status_code = parts.code;
    msg.reason_phrase = parts.phrase;
    return Reason::none;
  }
  msg.kind = Kind::request;
  auto parts = text::split_request_line(line);
  if (!parts) return Reason::bad_request_line;
  auto major = parse_version(parts->version);
  if (!major) return Reason::bad_version;
  if (!text::is_well_formed_request(line, *parts)) return Reason::bad_request_line;
  msg.method_name = parts->method;
  msg.method = to_method(parts->method);
  msg.url = parts->target;
  msg.version = *major;
  return Reason::none;
}

// "a" or "a-b" with min <= a <= b <= max.
std::optional<Range> parse_range(std::string_view value, std::uint32_t min, std::uint32_t max) {
  auto [low_text, high_text, has_high] = text::split_once(value, '-');
  auto low = text::parse_decimal(low_text, max);
  auto high = has_high ? text::parse_decimal(high_text, max) : low;
  if (!low || !high || *low < min || *high < *low) return std::nullopt;
  return Range{true, static_cast<std::uint16_t>(*low), static_cast<std::uint16_t>(*high)};
}

// The characters of an IPv6 literal inside brackets (RFC 3986 IPv6address, an IPv4 tail
// allowed): enough to refuse what cannot be one.
bool is_ipv6_literal(std::string_view host) {
  for (char c : host)
    if (!text::is_hex(c) && c != ':' && c != '.') return false;
  return host.find(':') != std::string_view::npos;
}

// One RFC 7826 quoted-addr (quotes optional: some clients omit them):
//   quoted-addr = DQUOTE (host-port / extension-addr) DQUOTE
//   host-port   = (host [":" port]) / (":" port)
// Shaped like host-port but not one (port 0 or out of range, text after "]" that is not a
// port, an IPv6 literal without brackets, which no port can be told apart from): nothing.
std::optional<TransportAddress> parse_quoted_addr(std::string_view quoted) {
  const std::string_view address = text::trim_lws(text::unquote(text::trim_lws(quoted)));
  if (address.empty()) return std::nullopt;
  TransportAddress parsed;
  std::string_view after_host;
  if (!address.empty() && address.front() == '[') {
    const std::size_t close = address.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    parsed.host = address.substr(1, close - 1);
    if (!is_ipv6_literal(parsed.host)) return std::nullopt;
    after_host = address.substr(close + 1);
    if (after_host.empty()) return parsed;
    if (after_host.front() != ':') return std::nullopt;
  } else {
    const std::size_t colon = address.find(':');
    parsed.host = address.substr(0, colon);
    if (colon == std::string_view::npos) return parsed;  // a host alone, or an extension-addr
    if (address.find(':', colon + 1) != std::string_view::npos) return std::nullopt;
    after_host = address.substr(colon);
  }
  auto port = text::parse_decimal(after_host.substr(1), 65535);
  if (!port || *port == 0) return std::nullopt;
  parsed.port = static_cast<std::uint16_t>(*port);
  return parsed;
}

// addr-list = quoted-addr *("/" quoted-addr): the RTP address, then the RTCP address. The
// list must hold at least one address; every address is checked, those past the second are
// not kept. A repeated parameter replaces the earlier one whole.
bool parse_address_list(std::string_view value, std::string_view& raw, std::uint16_t& rtp_port,
                        std::uint16_t& rtcp_port, std::string_view& rtp_host,
                        std::string_view& rtcp_host) {
  raw = value;
  rtp_port = rtcp_port = 0;
  rtp_host = rtcp_host = {};
  if (value.empty()) return false;
  text::ListReader addresses(value, '/');
  unsigned index = 0;
  while (auto address = addresses.next()) {
    auto parsed = parse_quoted_addr(*address);
    if (!parsed) return false;
    if (index == 0) rtp_port = parsed->port, rtp_host = parsed->host;
    else if (index == 1) rtcp_port = parsed->port, rtcp_host = parsed->host;
    ++index;
  }
  return true;
}

// transport-protocol/profile[/lower-transport] *(";" parameter). Unknown parameters
// (ttl, ssrc, mode, ...) are skipped. The header may be folded anywhere between elements,
// hence trim_lws.
bool parse_transport_spec(std::string_view text_spec, TransportSpec& spec) {
  spec.spec = text_spec;
  text::ListReader parameters(text_spec, ';');
  std::string_view id = text::trim_lws(parameters.next().value_or(""));
  auto [protocol, after_protocol, has_profile] = text::split_once(id, '/');
  auto [profile, lower, has_lower] = text::split_once(after_protocol, '/');
  if (!has_profile || !text::is_token(protocol) || !text::is_token(profile)) return false;
  // RFC 7826 other-trans = token *("/" token): a lower part with more parts is no UDP.
  bool more_parts = false;
  for (text::ListReader parts(lower, '/'); auto part = parts.next();) {
    if (has_lower && !text::is_token(*part)) return false;
    more_parts = more_parts || part->size() != lower.size();
  }
  spec.protocol = protocol;
  spec.profile = profile;
  spec.lower_name = lower;
  if (has_lower)
    spec.lower = more_parts               ? LowerTransport::other
                 : iequals(lower, "UDP") ? LowerTransport::udp
                 : iequals(lower, "TCP") ? LowerTransport::tcp
                                         : LowerTransport::other;

  while (auto parameter = parameters.next()) {
    text::SplitResult name_value = text::split_once(*parameter, '=');
    std::string_view name = text::trim_lws(name_value.head);
    std::string_view value = text::trim_lws(name_value.tail);
    auto set_range = [value](Range& into, std::uint32_t min, std::uint32_t max) {
      auto parsed = parse_range(value, min, max);
      if (parsed) into = *parsed;
      return parsed.has_value();
    };
    if (iequals(name, "unicast")) {
      spec.delivery = Delivery::unicast;
    } else if (iequals(name, "multicast")) {
      spec.delivery = Delivery::multicast;
    } else if (iequals(name, "client_port")) {
      if (!set_range(spec.client_port, 1, 65535)) return false;
    } else if (iequals(name, "server_port")) {
      if (!set_range(spec.server_port, 1, 65535)) return false;
    } else if (iequals(name, "interleaved")) {
      if (!set_range(spec.interleaved, 0, 255)) return false;
    } else if (iequals(name, "destination")) {
      spec.destination = text::unquote(value);
    } else if (iequals(name, "dest_addr")) {
      if (!parse_address_list(value, spec.dest_addr, spec.dest_rtp_port, spec.dest_rtcp_port,
                              spec.dest_rtp_host, spec.dest_rtcp_host))
        return false;
    } else if (iequals(name, "src_addr")) {
      if (!parse_address_list(value, spec.src_addr, spec.src_rtp_port, spec.src_rtcp_port,
                              spec.src_rtp_host, spec.src_rtcp_host))
        return false;
    }
  }
  return true;
}

Reason parse_transport(std::string_view value, Message& msg) {
  text::ListReader specs(value, ',');
  while (auto spec = specs.next()) {
    std::string_view trimmed = text::trim_lws(*spec);
    if (trimmed.empty()) continue;  // "#rule" lists may hold empty elements
    if (msg.transport_count == max_transports) return Reason::too_many_transports;
    if (!parse_transport_spec(trimmed, msg.transports[msg.transport_count]))
      return Reason::bad_transport;
    ++msg.transport_count;
  }
  return Reason::none;
}

Reason take_header(const text::HeaderField& field, Message& msg) {
  if (iequals(field.name, "CSeq")) {
    auto cseq = text::parse_decimal(field.value);
    if (!cseq) return Reason::bad_cseq;
    if (!msg.has_cseq) {
      msg.has_cseq = true;
      msg.cseq = *cseq;
    }
  } else if (iequals(field.name, "Session")) {
    std::string_view id = text::trim_lws(text::split_once(field.value, ';').head);
    if (!text::is_request_target(id)) return Reason::bad_session;  // empty, blanks or CTLs
    if (msg.session_id.empty()) msg.session_id = id;
  } else if (iequals(field.name, "Content-Length")) {
    auto length = text::parse_decimal(field.value);
    if (!length || (msg.has_content_length && *length != msg.content_length))
      return Reason::bad_content_length;
    msg.has_content_length = true;
    msg.content_length = *length;
  } else if (iequals(field.name, "Transport")) {
    return parse_transport(field.value, msg);
  }
  return Reason::none;
}

Message& fail(Message& msg, Reason why) {
  msg.status = Status::malformed;
  msg.reason = why;
  return msg;
}

// RFC 2326 10.12: '$', channel, 16-bit big-endian length, payload.
Message& parse_interleaved(std::string_view frame, std::size_t offset, Message& msg) {
  msg.kind = Kind::interleaved;
  if (frame.size() < 4) {
    msg.status = Status::need_more;
    return msg;
  }
  auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(frame[i]); };
  msg.channel = byte(1);
  msg.size = offset + 4 + ((std::size_t{byte(2)} << 8) | byte(3));
  msg.status = Status::parsed;
  return msg;
}

}  // namespace

Message parse(ByteSpan input) {
  Message msg;
  std::string_view all = text::as_chars(input);
  std::size_t start = text::count_leading_newlines(all);
  std::string_view rest = all.substr(start);
  if (rest.empty()) {
    msg.status = Status::need_more;
    return msg;
  }
  if (rest.front() == '$') return parse_interleaved(rest, start, msg);

  auto first = text::first_line(rest);
  if (!first) {
    msg.status = text::could_become_start_line(rest, version_prefix) ? Status::need_more
                                                                       : Status::not_this_protocol;
    return msg;
  }
  if (!text::is_start_line_of(first->line, version_prefix)) return msg;
  if (Reason why = parse_start_line(first->line, msg); why != Reason::none) return fail(msg, why);

  const std::size_t headers_start = start + first->size;
  const auto headers = text::read_header_block<Reason>(
      all.substr(headers_start), max_headers, msg.header_count,
      [&](const text::HeaderField& field) { return take_header(field, msg); });
  if (headers.end == text::HeaderBlock::need_more) {
    msg.status = Status::need_more;
    return msg;
  }
  if (headers.reason != Reason::none) return fail(msg, headers.reason);
  msg.headers = all.substr(headers_start, headers.size);
  msg.size = headers_start + headers.size + msg.content_length;
  msg.status = Status::parsed;
  return msg;
}

Extent message_extent(ByteSpan stream) {
  Message msg = parse(stream);
  if (msg.status != Status::parsed) return {msg.status, msg.reason, 0};
  if (msg.size > stream.size()) return {Status::need_more, Reason::none, 0};
  return {Status::parsed, Reason::none, msg.size};
}

}  // namespace tether::parsers::rtsp
