#include "parsers/sip_response.hpp"

#include <optional>

#include "parsers/ip_text.hpp"
#include "parsers/text.hpp"

namespace tether::parsers::sip {
namespace {

using text::iequals;

// Appends to a fixed buffer; once something does not fit, nothing more is written and the
// whole response is abandoned.
class Writer {
 public:
  explicit Writer(std::span<char> out) : begin_(out.data()), at_(out.data()), end_(out.data() + out.size()) {}

  void put(std::string_view s) {
    if (full_ || static_cast<std::size_t>(end_ - at_) < s.size()) {
      full_ = true;
      return;
    }
    for (char c : s) *at_++ = c;
  }
  void put(char c) { put(std::string_view(&c, 1)); }
  // A header value as one line: each run of white space and line breaks becomes one space.
  void put_unfolded(std::string_view value) {
    text::UnfoldedReader reader(value);
    for (int c = reader.next(); c >= 0; c = reader.next()) put(static_cast<char>(c));
  }
  void put_number(std::uint32_t n) {
    char digits[10];
    std::size_t count = 0;
    do {
      digits[count++] = static_cast<char>('0' + n % 10);
      n /= 10;
    } while (n != 0);
    while (count > 0) put(digits[--count]);
  }
  bool full() const { return full_; }
  std::size_t size() const { return static_cast<std::size_t>(at_ - begin_); }

 private:
  char* begin_;
  char* at_;
  char* end_;
  bool full_ = false;
};

bool is_via(std::string_view name) { return iequals(expand_compact_name(name), "Via"); }

std::string_view parameter_name(std::string_view parameter) {
  return text::trim_lws(text::split_once(parameter, '=').head);
}

// The top via-parm of a Via value, read as far as the response needs it.
struct TopVia {
  std::string_view protocol_and_sent_by;  // "SIP/2.0/UDP host:port", raw
  std::string_view host;                  // without IPv6 brackets
  std::optional<std::uint16_t> port;
  std::string_view parameters;            // from the first ';', raw; may be empty
  bool rport = false;
  std::optional<std::string_view> maddr;  // the value, IPv6 brackets kept
  std::optional<std::string_view> ttl;
};

std::string_view parameter_value(std::string_view parameter) {
  return text::trim_lws(text::split_once(parameter, '=').tail);
}

// maddr = host (RFC 3261 25.1): an IPv4 address or a bracketed IPv6 reference here, as a
// dataplane resolves no host names.
bool read_maddr(std::string_view value, BuiltResponse& out) {
  ip_text::ipv4_bytes v4;
  if (ip_text::parse_ipv4(value, v4)) {
    out.maddr = ipv4_mapped(v4.data());
    out.maddr_multicast = v4[0] >= 224 && v4[0] <= 239;
    return true;
  }
  if (value.size() < 2 || value.front() != '[' || value.back() != ']') return false;
  ip_text::ipv6_bytes v6;
  if (!ip_text::parse_ipv6(value.substr(1, value.size() - 2), v6)) return false;
  for (std::size_t i = 0; i < 16; ++i) out.maddr[i] = v6[i];
  out.maddr_multicast = v6[0] == 0xff;
  return true;
}

std::optional<TopVia> read_top_via(std::string_view via_parm) {
  TopVia via;
  const std::size_t semicolon = via_parm.find(';');
  const std::string_view head = text::trim_lws(via_parm.substr(0, semicolon));
  if (semicolon != std::string_view::npos) via.parameters = via_parm.substr(semicolon);
  via.protocol_and_sent_by = head;
  // sent-protocol is "name / version / transport" (LWS allowed around the slashes); sent-by
  // follows the transport after LWS.
  const std::size_t last_slash = head.rfind('/');
  if (last_slash == std::string_view::npos) return std::nullopt;
  std::string_view rest = text::trim_lws(head.substr(last_slash + 1));
  std::size_t at = 0;
  while (at < rest.size() && !text::is_lws(rest[at])) ++at;  // the transport token
  const std::string_view sent_by = text::trim_lws(rest.substr(at));
  if (sent_by.empty()) return std::nullopt;
  std::string_view port_text;
  if (sent_by.front() == '[') {
    const std::size_t close = sent_by.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    via.host = sent_by.substr(1, close - 1);
    const std::string_view after = text::trim_lws(sent_by.substr(close + 1));
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port_text = text::trim_lws(after.substr(1));
    }
  } else {
    const text::SplitResult split = text::split_once(sent_by, ':');
    via.host = text::trim_lws(split.head);
    if (split.found) port_text = text::trim_lws(split.tail);
  }
  if (via.host.empty()) return std::nullopt;
  text::ListReader parameters(via.parameters, ';');
  while (const std::optional<std::string_view> parameter = parameters.next()) {
    const std::string_view name = parameter_name(*parameter);
    if (iequals(name, "rport")) via.rport = true;
    else if (iequals(name, "maddr")) via.maddr = parameter_value(*parameter);
    else if (iequals(name, "ttl")) via.ttl = parameter_value(*parameter);
  }
  if (!port_text.empty()) {
    const std::optional<std::uint32_t> port = text::parse_decimal(port_text, 65535);
    if (!port || *port == 0) return std::nullopt;
    via.port = static_cast<std::uint16_t>(*port);
  }
  return via;
}

// The top Via with what the receiving transport adds (RFC 3261 18.2.1, RFC 3581 4): any
// `received` and `rport` the request carried are replaced by the transport's own.
void put_top_via(Writer& out, const TopVia& via, Source source) {
  out.put("Via: ");
  out.put_unfolded(via.protocol_and_sent_by);
  if (!via.parameters.empty()) {
    text::ListReader parameters(via.parameters, ';');
    (void)parameters.next();  // empty: the list starts with ';'
    while (const std::optional<std::string_view> parameter = parameters.next()) {
      const std::string_view name = parameter_name(*parameter);
      if (iequals(name, "rport") || iequals(name, "received") || text::trim_lws(*parameter).empty())
        continue;
      out.put(';');
      out.put_unfolded(*parameter);
    }
  }
  if (via.rport || via.host != source.address) {
    out.put(";received=");
    out.put(source.address);
  }
  if (via.rport) {
    out.put(";rport=");
    out.put_number(source.port);
  }
  out.put("\r\n");
}

}  // namespace

BuiltResponse build_response(const Message& request, Source source, const Refusal& refusal,
                             std::span<char> out) {
  if (request.status != Status::parsed || request.kind != Kind::request ||
      request.method == Method::ACK)
    return {};
  const std::optional<std::string_view> from = find_header(request, "From");
  const std::optional<std::string_view> to = find_header(request, "To");
  const std::optional<std::string_view> cseq = find_header(request, "CSeq");
  if (!from || !to || !cseq) return {};

  Writer writer(out);
  writer.put("SIP/2.0 ");
  writer.put_number(refusal.status_code);
  writer.put(' ');
  writer.put(refusal.reason_phrase);
  writer.put("\r\n");

  // Every Via value in order: the first field's first value with the transport's additions,
  // the rest of that field and every later Via field copied.
  std::optional<TopVia> top;
  std::size_t fields = 0;
  text::HeaderReader(request.headers).read(max_headers, fields, [&](const text::HeaderField& field) {
    if (!is_via(field.name)) return true;
    if (top) {
      writer.put("Via: ");
      writer.put_unfolded(field.value);
      writer.put("\r\n");
      return true;
    }
    text::ListReader values(field.value, ',');
    const std::string_view first = *values.next();
    top = read_top_via(first);
    if (!top) return false;
    put_top_via(writer, *top, source);
    const std::size_t used = static_cast<std::size_t>(first.data() + first.size() - field.value.data());
    if (used < field.value.size()) {
      const std::string_view rest = text::trim_lws(field.value.substr(used + 1));
      if (!rest.empty()) {
        writer.put("Via: ");
        writer.put_unfolded(rest);
        writer.put("\r\n");
      }
    }
    return true;
  });
  if (!top) return {};

  writer.put("From: ");
  writer.put_unfolded(*from);
  writer.put("\r\nTo: ");
  writer.put_unfolded(*to);
  if (!tag_parameter(*to) && !refusal.to_tag.empty()) {
    writer.put(";tag=");
    writer.put(refusal.to_tag);
  }
  writer.put("\r\nCall-ID: ");
  writer.put_unfolded(request.call_id);
  writer.put("\r\nCSeq: ");
  writer.put_unfolded(*cseq);
  writer.put("\r\n");
  if (refusal.retry_after_s != 0) {
    writer.put("Retry-After: ");
    writer.put_number(refusal.retry_after_s);
    writer.put("\r\n");
  }
  writer.put("Content-Length: 0\r\n\r\n");
  if (writer.full()) return {};
  BuiltResponse built;
  built.size = writer.size();
  if (top->maddr) {
    // RFC 3261 18.2.2: to maddr at the sent-by port or 5060; RFC 3581 4: rport only without maddr.
    if (!read_maddr(*top->maddr, built)) return {};
    built.to_maddr = true;
    built.port = top->port.value_or(5060);
    if (built.maddr_multicast) {
      built.ttl = 1;
      if (top->ttl) {
        // ttl = 1*3DIGIT, 0 to 255 (RFC 3261 25.1)
        const std::optional<std::uint32_t> ttl =
            top->ttl->size() <= 3 ? text::parse_decimal(*top->ttl, 255) : std::nullopt;
        if (!ttl) return {};
        built.ttl = static_cast<std::uint8_t>(*ttl);
      }
    }
    return built;
  }
  built.port = top->rport ? source.port : top->port.value_or(5060);
  return built;
}

}  // namespace tether::parsers::sip
