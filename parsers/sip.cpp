#include "parsers/sip.hpp"

#include <array>
#include <utility>

#include "parsers/mix.hpp"

namespace tether::parsers::sip {
namespace {

using text::iequals;

constexpr std::string_view version_prefix = "SIP/";
constexpr std::string_view supported_version = "SIP/2.0";

constexpr std::string_view method_names[] = {TETHER_SIP_METHODS(TETHER_TOKEN_SPELLING)};

Method to_method(std::string_view name) { return enum_spelled<Method>(method_names, name); }

// IANA "Header Fields" registry, compact forms.
constexpr std::array<std::pair<char, std::string_view>, 15> compact_names{{
    {'i', "Call-ID"}, {'l', "Content-Length"}, {'f', "From"}, {'t', "To"}, {'v', "Via"},
    {'m', "Contact"}, {'c', "Content-Type"}, {'e', "Content-Encoding"}, {'k', "Supported"},
    {'s', "Subject"}, {'o', "Event"}, {'r', "Refer-To"}, {'u', "Allow-Events"},
    {'b', "Referred-By"}, {'x', "Session-Expires"},
}};

// reason::none, why a SIP start line is malformed, or nothing when the line is not a SIP
// start line at all (text::is_start_line_of), worked out from the same split.
std::optional<Reason> parse_start_line(std::string_view line, Message& msg) {
  if (text::istarts_with(line, version_prefix)) {
    msg.kind = Kind::response;
    text::StatusLine parts = text::split_status_line(line, 699);
    if (!iequals(parts.version, supported_version)) return Reason::bad_version;
    if (parts.code == 0) return Reason::bad_status_line;
    msg.status_code = parts.code;
    msg.reason_phrase = parts.phrase;
    return Reason::none;
  }
  msg.kind = Kind::request;
  auto parts = text::split_request_line(line);
  if (!parts) {
    if (!text::is_start_line_of(line, version_prefix)) return std::nullopt;
    return Reason::bad_request_line;
  }
  // The version follows the last SP, as is_start_line_of() looks for it.
  if (!text::istarts_with(parts->version, version_prefix)) return std::nullopt;
  if (!iequals(parts->version, supported_version)) return Reason::bad_version;
  if (!text::is_well_formed_request(line, *parts)) return Reason::bad_request_line;
  msg.method_name = parts->method;
  msg.method = to_method(parts->method);
  msg.request_uri = parts->target;
  return Reason::none;
}

// CSeq: 1*DIGIT LWS Method
Reason parse_cseq(std::string_view value, Message& msg) {
  std::string_view number = text::leading_digits(value);
  std::string_view after_number = value.substr(number.size());
  std::string_view name = text::trim_lws(after_number);
  auto parsed = text::parse_decimal(number);
  if (!parsed || after_number.empty() || !text::is_lws(after_number.front()) ||
      !text::is_token(name))
    return Reason::bad_cseq;
  msg.has_cseq = true;
  msg.cseq = *parsed;
  msg.cseq_method_name = name;
  msg.cseq_method = to_method(name);
  return Reason::none;
}

constexpr std::string_view call_id_name = "Call-ID";
constexpr std::string_view cseq_name = "CSeq";
constexpr std::string_view from_name = "From";
constexpr std::string_view content_length_name = "Content-Length";

Reason take_header(const text::HeaderField& field, Message& msg) {
  const std::string_view name =
      field.name.size() == 1 ? expand_compact_name(field.name) : field.name;
  // Most fields are none of these: their length alone says so, before any compare (From is
  // as long as CSeq).
  const std::size_t size = name.size();
  if (size != call_id_name.size() && size != cseq_name.size() && size != content_length_name.size())
    return Reason::none;
  if (iequals(name, call_id_name)) {
    if (field.value.empty()) return Reason::call_id_empty;
    if (!msg.call_id.empty() && !text::equal_unfolded(msg.call_id, field.value))
      return Reason::call_id_conflict;
    msg.call_id = field.value;
    msg.call_id_folded = field.folded;
  } else if (iequals(name, cseq_name)) {
    if (!msg.has_cseq) return parse_cseq(field.value, msg);
  } else if (iequals(name, from_name)) {
    if (msg.from.empty()) msg.from = field.value;
  } else if (iequals(name, content_length_name)) {
    auto length = text::parse_decimal(field.value);
    if (!length || (msg.has_content_length && *length != msg.content_length))
      return Reason::bad_content_length;
    msg.has_content_length = true;
    msg.content_length = *length;
  }
  return Reason::none;
}

void fail(Message& msg, Reason why) {
  msg.status = Status::malformed;
  msg.reason = why;
}

// Fills `msg`, which starts out default-constructed.
void read_message(ByteSpan input, Framing how, Message& msg) {
  std::string_view all = text::as_chars(input);
  const bool stream = how == Framing::stream;

  std::size_t start = text::count_leading_newlines(all);
  if (all.empty()) {
    msg.status = stream ? Status::need_more : Status::not_this_protocol;
    return;
  }
  if (start == all.size()) {  // RFC 5626 keepalive: CRLFCRLF ping, CRLF pong
    msg.status = Status::parsed;
    msg.kind = Kind::keepalive;
    msg.size = all.size();
    return;
  }

  std::string_view rest = all.substr(start);
  auto first = text::first_line(rest);
  if (!first) {
    if (stream) {
      msg.status = text::could_become_start_line(rest, version_prefix) ? Status::need_more
                                                                         : Status::not_this_protocol;
      return;
    }
    if (!text::is_start_line_of(rest, version_prefix)) return;
    return fail(msg, Reason::first_line_unterminated);
  }
  const std::optional<Reason> start_line = parse_start_line(first->line, msg);
  if (!start_line) return;  // another protocol
  if (*start_line != Reason::none) return fail(msg, *start_line);

  const std::size_t headers_start = start + first->size;
  const auto headers = text::read_header_block<Reason>(
      all.substr(headers_start), max_headers, msg.header_count,
      [&](const text::HeaderField& field) { return take_header(field, msg); });
  if (headers.end == text::HeaderBlock::need_more) {
    if (!stream) return fail(msg, Reason::headers_unterminated);
    msg.status = Status::need_more;
    return;
  }
  if (headers.reason != Reason::none) return fail(msg, headers.reason);
  std::size_t body_start = headers_start + headers.size;
  msg.headers = all.substr(headers_start, headers.size);

  // A datagram's body is the rest of it unless Content-Length says less (RFC 3261 18.3);
  // a stream's body is exactly Content-Length bytes, none without it.
  std::string_view available = all.substr(body_start);
  std::size_t body_size = available.size();
  if (msg.has_content_length || stream) body_size = msg.content_length;
  if (body_size > available.size()) {
    if (stream) {
      msg.status = Status::need_more;
      return;
    }
    return fail(msg, Reason::body_truncated);
  }
  msg.body = available.substr(0, body_size);
  msg.size = body_start + body_size;

  if (msg.call_id.empty()) return fail(msg, Reason::call_id_missing);
  msg.status = Status::parsed;
}

}  // namespace

Message parse(ByteSpan input, Framing how) {
  // One named result for every path, so the caller's object is filled in place.
  Message msg;
  read_message(input, how, msg);
  return msg;
}

std::optional<std::string_view> find_header(const Message& msg, std::string_view name) {
  std::string_view wanted = expand_compact_name(name);
  std::optional<std::string_view> found;
  std::size_t count = 0;
  text::HeaderReader(msg.headers).read(SIZE_MAX, count, [&](const text::HeaderField& field) {
    if (iequals(expand_compact_name(field.name), wanted)) found = field.value;
    return !found;
  });
  return found;
}

namespace {

// Where the header parameters of a From/To value start: after a name-addr's '>' (the URI
// inside may have parameters of its own), or at the first ';' of an addr-spec; npos if none.
std::size_t parameters_start(std::string_view value) {
  constexpr std::size_t none = std::string_view::npos;
  if (value.find('"') == none) {  // no quoted display name, the common case: memchr finds it
    const std::size_t open = value.find('<');
    if (open == none) return value.find(';');
    const std::size_t close = value.find('>', open);
    return close == none ? none : close + 1;
  }
  // A quoted display name may hold '<', '>', ';' and escaped quotes.
  bool quoted = false;
  for (std::size_t at = 0; at < value.size(); ++at) {
    const char c = value[at];
    if (quoted) {
      if (c == '\\') ++at;  // quoted-pair: the next byte is literal
      else if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == '<') {
      const std::size_t close = value.find('>', at);  // a URI holds no '>'
      return close == none ? none : close + 1;
    } else if (c == ';') {
      return at;
    }
  }
  return none;
}

}  // namespace

std::optional<std::string_view> tag_parameter(std::string_view value) {
  const std::size_t start = parameters_start(value);
  if (start >= value.size()) return std::nullopt;
  text::ListReader parameters(value.substr(start), ';');
  (void)parameters.next();  // what comes before the first ';'
  while (auto parameter = parameters.next()) {
    const text::SplitResult pair = text::split_once(*parameter, '=');
    if (!iequals(text::trim_lws(pair.head), "tag")) continue;
    // A bare ";tag" is a tag without a value: an empty view at its end, still inside `value`.
    return pair.found ? text::trim_lws(pair.tail) : parameter->substr(parameter->size());
  }
  return std::nullopt;
}

bool outside_dialog(const Message& msg) {
  if (msg.kind != Kind::request) return false;
  const std::optional<std::string_view> to = find_header(msg, "To");
  return !to || !tag_parameter(*to);
}

std::string_view expand_compact_name(std::string_view name) {
  if (name.size() != 1) return name;
  for (auto [compact, full] : compact_names)
    if (text::to_lower(name[0]) == compact) return full;
  return name;
}

namespace {

// The digest mixes the unfolded bytes eight at a time, as little-endian words (the last one
// zero-padded), then their count, then the splitmix64 finaliser (mix64). A word per
// multiply rather than FNV's byte per multiply: the Call-ID of every SIP datagram passes
// here, and a byte-serial chain was the latency bound.
class word_hasher {
 public:
  explicit word_hasher(std::uint64_t seed) : hash_(0xcbf29ce484222325ULL ^ seed) {}

  void add_word(std::uint64_t word) {
    hash_ = (hash_ ^ word) * 0x9e3779b97f4a7c15ULL;
    hash_ ^= hash_ >> 29;
    length_ += 8;
  }
  // The last 1-7 bytes, as a little-endian word zero-padded above them; nothing after.
  void add_tail(std::uint64_t word, unsigned count) {
    pending_ = word;
    pending_count_ = count;
  }
  void add_byte(unsigned char byte) {
    pending_ |= static_cast<std::uint64_t>(byte) << (8 * pending_count_);
    if (++pending_count_ == 8) {
      add_word(pending_);
      pending_ = 0;
      pending_count_ = 0;
    }
  }
  std::uint64_t finish() {
    const std::uint64_t length = length_ + pending_count_;
    if (pending_count_ > 0) add_word(pending_);
    return mix64(hash_ ^ length);
  }

 private:
  std::uint64_t hash_;
  std::uint64_t pending_ = 0;
  unsigned pending_count_ = 0;
  std::uint64_t length_ = 0;
};

}  // namespace

std::uint64_t hash_unfolded(std::string_view value, std::uint64_t seed) {
  // Without a byte <= SP there is no white space to trim or fold: the value is its own
  // unfolded form and goes in whole words, checked as they go in.
  word_hasher hasher(seed);
  std::size_t at = 0;
  bool plain = true;
  for (; plain && at + 8 <= value.size(); at += 8) {
    const std::uint64_t word = text::detail::load_word(value.data() + at);
    plain = text::detail::bytes_below(word, 0x21) == 0;
    hasher.add_word(word);
  }
  if (plain && at < value.size()) {
    const auto count = static_cast<unsigned>(value.size() - at);
    std::uint64_t tail = 0;
    if (value.size() >= 8) {  // the value's last eight bytes, the tail in their top end
      tail = text::detail::load_word(value.data() + value.size() - 8) >> (8 * (8 - count));
    } else {
      for (unsigned i = 0; i < count; ++i)
        tail |= static_cast<std::uint64_t>(static_cast<unsigned char>(value[at + i])) << (8 * i);
    }
    // The padding above the tail's bytes is set for the check, so only real bytes can hit.
    plain = text::detail::bytes_below(tail | (~std::uint64_t{0} << (8 * count)), 0x21) == 0;
    hasher.add_tail(tail, count);
  }
  if (plain) return hasher.finish();

  word_hasher unfolding(seed);
  text::UnfoldedReader reader(value);
  for (int c = reader.next(); c >= 0; c = reader.next()) unfolding.add_byte(static_cast<unsigned char>(c));
  return unfolding.finish();
}

bool equal_unfolded(std::string_view a, std::string_view b) { return text::equal_unfolded(a, b); }

}  // namespace tether::parsers::sip
