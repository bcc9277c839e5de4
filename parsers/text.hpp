// Text primitives shared by the SIP, RTSP and FTP parsers, and the status they all report.
//
// Everything here works on std::string_view windows into the caller's bytes: nothing
// allocates, nothing reads outside the view it was given, and every loop advances at least
// one byte per step, so the work is linear in the input.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__SSSE3__)
#include <tmmintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tether::parsers {

using ByteSpan = std::span<const std::uint8_t>;

enum class Status : std::uint8_t {
  parsed,
  not_this_protocol,
  malformed,  // the result's `reason` says why
  need_more,  // the input ends inside a message that more bytes could complete (TCP)
};

constexpr const char* to_string(Status s) {
  switch (s) {
    case Status::parsed: return "parsed";
    case Status::not_this_protocol: return "not_this_protocol";
    case Status::malformed: return "malformed";
    case Status::need_more: return "need_more";
  }
  return "?";
}

}  // namespace tether::parsers

namespace tether::parsers::text {

inline std::string_view as_chars(ByteSpan bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_hex(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
constexpr bool is_blank(char c) { return c == ' ' || c == '\t'; }
// Linear white space as it appears inside a folded header value.
constexpr bool is_lws(char c) { return is_blank(c) || c == '\r' || c == '\n'; }
constexpr bool is_ctl(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }
constexpr char to_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c; }

// Eight bytes at a time, for the checks every message makes over whole values: loops that
// stop at the first hit do not vectorise, and these strings are too short for vectors.
namespace detail {
constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
// Non-zero if and only if some byte of `word` is below `limit` (limit <= 128). Which bits
// are set is not exact: a borrow can also flag the byte above a real hit.
constexpr std::uint64_t bytes_below(std::uint64_t word, unsigned char limit) {
  return (word - kOnes * limit) & ~word & kHighBits;
}
// Bytes p[0..8) as a little-endian word, whatever the host's byte order.
inline std::uint64_t load_word(const char* p) {
  std::uint64_t word;
  std::memcpy(&word, p, 8);
  if constexpr (std::endian::native == std::endian::big) word = __builtin_bswap64(word);
  return word;
}
// The first LF in [p, end), or null. Inline, 32 or 16 bytes per step: header lines are a
// few dozen bytes, too short to pay for a call to memchr each.
inline const char* find_line_feed(const char* p, const char* end) {
#if defined(__AVX2__)
  const __m256i wide_line_feeds = _mm256_set1_epi8('\n');
  for (; end - p >= 32; p += 32) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const auto hits =
        static_cast<unsigned>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, wide_line_feeds)));
    if (hits != 0) return p + std::countr_zero(hits);
  }
#endif
#if defined(__SSE2__)
  const __m128i line_feeds = _mm_set1_epi8('\n');
  for (; end - p >= 16; p += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const auto hits =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, line_feeds)));
    if (hits != 0) return p + std::countr_zero(hits);
  }
#endif
  for (; p < end; ++p)
    if (*p == '\n') return p;
  return nullptr;
}
}  // namespace detail

// Does `s` hold a byte below `limit` (at most 128), or one equal to `also`?
inline bool has_byte_below_or(std::string_view s, unsigned char limit, unsigned char also) {
  const auto hits_in = [&](std::uint64_t word) {
    return detail::bytes_below(word, limit) | detail::bytes_below(word ^ (detail::kOnes * also), 1);
  };
  std::size_t at = 0;
  std::uint64_t hits = 0;
  for (; at + 8 <= s.size(); at += 8) hits |= hits_in(detail::load_word(s.data() + at));
  // The last 1-7 bytes of a longer string: its last eight bytes, which overlap bytes already
  // checked, in one step rather than a byte at a time (a request URI's tail, every message).
  if (at < s.size() && s.size() >= 8) {
    hits |= hits_in(detail::load_word(s.data() + s.size() - 8));
    return hits != 0;
  }
  for (; at < s.size(); ++at) {
    const auto byte = static_cast<unsigned char>(s[at]);
    hits |= static_cast<std::uint64_t>((byte < limit) | (byte == also));
  }
  return hits != 0;
}

// RFC 3261 token (a superset of the RFC 2326 token alphabet that real methods use). A table:
// every header name of every message is checked byte by byte.
inline constexpr auto kTokenChars = [] {
  std::array<bool, 256> table{};
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    table[static_cast<std::size_t>(c)] = is_alpha(ch) || is_digit(ch) || ch == '-' || ch == '.' ||
                                         ch == '!' || ch == '%' || ch == '*' || ch == '_' || ch == '+' ||
                                         ch == '`' || ch == '\'' || ch == '~';
  }
  return table;
}();
constexpr bool is_token_char(char c) { return kTokenChars[static_cast<unsigned char>(c)]; }

namespace detail {
// kTokenChars as two 16-entry tables for a byte's low and high nibble (the high one a bit per
// nibble 0-7; bytes from 0x80 are never tokens): a byte is a token character when its two
// entries share a bit. That is a shuffle per table for 16 bytes at once.
inline constexpr auto kTokenByLowNibble = [] {
  std::array<std::uint8_t, 16> table{};
  for (unsigned high = 0; high < 8; ++high)
    for (unsigned low = 0; low < 16; ++low)
      if (kTokenChars[high << 4 | low])
        table[low] = static_cast<std::uint8_t>(table[low] | 1u << high);
  return table;
}();
inline constexpr std::array<std::uint8_t, 16> kTokenByHighNibble{1, 2, 4, 8, 16, 32, 64, 128};
static_assert([] {
  for (unsigned c = 0; c < 256; ++c)
    if (((kTokenByLowNibble[c & 15] & kTokenByHighNibble[c >> 4]) != 0) != kTokenChars[c])
      return false;
  return true;
}());
}  // namespace detail

// How many token characters start at p, looking no further than `end`. Header names are
// scanned with it on every line of every message: 16 bytes per step where SSSE3 allows.
inline std::size_t token_run(const char* p, const char* end) {
  const char* const start = p;
#if defined(__SSSE3__)
  const __m128i by_low =
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(detail::kTokenByLowNibble.data()));
  const __m128i by_high =
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(detail::kTokenByHighNibble.data()));
  const __m128i nibble = _mm_set1_epi8(0x0f);
  for (; end - p >= 16; p += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i low = _mm_shuffle_epi8(by_low, _mm_and_si128(bytes, nibble));
    const __m128i high = _mm_shuffle_epi8(by_high, _mm_and_si128(_mm_srli_epi16(bytes, 4), nibble));
    const __m128i not_token = _mm_cmpeq_epi8(_mm_and_si128(low, high), _mm_setzero_si128());
    const auto stops = static_cast<unsigned>(_mm_movemask_epi8(not_token));
    if (stops != 0)
      return static_cast<std::size_t>(p - start + std::countr_zero(stops));
  }
#endif
  while (p < end && is_token_char(*p)) ++p;
  return static_cast<std::size_t>(p - start);
}

constexpr bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_token_char(c)) return false;
  return true;
}

// is_token(line.substr(0, size)) where the byte after those `size` is not a token character,
// as the SP after a request line's method: the run is scanned over the line, 16 bytes a step,
// rather than byte by byte over the few bytes of the method.
inline bool is_token_run_of(std::string_view line, std::size_t size) {
  return size > 0 && token_run(line.data(), line.data() + line.size()) == size;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  // Names mostly arrive in the expected case. b.size(), not a.size(): against a literal that
  // is a constant, so the compare is a word compare rather than a call to memcmp.
  if (std::char_traits<char>::compare(a.data(), b.data(), b.size()) == 0) return true;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  return true;
}

constexpr bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

constexpr std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

constexpr std::string_view trim_lws(std::string_view s) {
  while (!s.empty() && is_lws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_lws(s.back())) s.remove_suffix(1);
  return s;
}

// The whole of `digits` as a decimal number no larger than `max`; nothing else (no sign,
// no blanks). Long runs of leading zeros are fine; the value is checked at every step.
constexpr std::optional<std::uint32_t> parse_decimal(std::string_view digits,
                                                     std::uint32_t max = UINT32_MAX) {
  if (digits.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : digits) {
    if (!is_digit(c)) return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
    if (value > max) return std::nullopt;
  }
  return static_cast<std::uint32_t>(value);
}

// Leading decimal digits of `s` (possibly none).
constexpr std::string_view leading_digits(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && is_digit(s[n])) ++n;
  return s.substr(0, n);
}

// Splits `s` at the first `separator`: {before, after}. Without one: {s, ""} and found=false.
struct SplitResult {
  std::string_view head;
  std::string_view tail;
  bool found;
};
constexpr SplitResult split_once(std::string_view s, char separator) {
  std::size_t at = s.find(separator);
  if (at == std::string_view::npos) return {s, {}, false};
  return {s.substr(0, at), s.substr(at + 1), true};
}

constexpr std::string_view unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

// Items of a `separator`-delimited list whose items may hold quoted strings that contain the
// separator (RTSP `mode="PLAY,RECORD"`); inside one, a backslash escapes the next byte
// (quoted-pair), so `\"` does not end it. Empty items are returned as empty views.
class ListReader {
 public:
  constexpr ListReader(std::string_view list, char separator)
      : rest_(list), separator_(separator), done_(false) {}

  constexpr std::optional<std::string_view> next() {
    if (done_) return std::nullopt;
    bool quoted = false;
    for (std::size_t i = 0; i < rest_.size(); ++i) {
      if (rest_[i] == '"') quoted = !quoted;
      else if (rest_[i] == '\\' && quoted) ++i;
      else if (rest_[i] == separator_ && !quoted) {
        std::string_view item = rest_.substr(0, i);
        rest_.remove_prefix(i + 1);
        return item;
      }
    }
    done_ = true;
    return rest_;
  }

 private:
  std::string_view rest_;
  char separator_;
  bool done_;
};

// Lines end at LF; a CR before it is dropped. RFC 3261 and RFC 2326 ask for CRLF, but bare LF
// is what tolerant stacks (and this balancer) accept, since rejecting it breaks calls for no
// gain in safety.
struct LineSplit {
  std::string_view line;  // without the terminator
  std::size_t size;       // bytes up to and including the LF
};
inline std::optional<LineSplit> first_line(std::string_view s) {
  const char* lf = detail::find_line_feed(s.data(), s.data() + s.size());
  if (lf == nullptr) return std::nullopt;
  const auto at = static_cast<std::size_t>(lf - s.data());
  std::string_view line = s.substr(0, at);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return LineSplit{line, at + 1};
}

// Stream transports allow empty lines before a start line (RFC 3261 7.5, RFC 7230 3.5).
constexpr std::size_t count_leading_newlines(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && (s[n] == '\r' || s[n] == '\n')) ++n;
  return n;
}

// "METHOD SP target SP VERSION", split at the first and the last SP: the target may not hold
// a SP (the caller checks), so a space-mangled line fails instead of shifting fields.
struct RequestLine {
  std::string_view method;
  std::string_view target;
  std::string_view version;
};
constexpr std::optional<RequestLine> split_request_line(std::string_view line) {
  std::size_t first = line.find(' ');
  std::size_t last = line.rfind(' ');
  if (first == std::string_view::npos || first == last) return std::nullopt;
  return RequestLine{line.substr(0, first), line.substr(first + 1, last - first - 1),
                      line.substr(last + 1)};
}

// "VERSION SP 3DIGIT [SP reason-phrase]". `version` is returned unchecked; `code` is 0 unless
// it is three digits from 100 to `max_code`. A missing SP before an empty phrase is tolerated.
struct StatusLine {
  std::string_view version;
  std::uint16_t code;
  std::string_view phrase;
};
constexpr StatusLine split_status_line(std::string_view line, std::uint32_t max_code) {
  auto [version, rest, has_code] = split_once(line, ' ');
  std::string_view digits = leading_digits(rest);
  auto code = parse_decimal(digits, max_code);
  bool well_formed = has_code && digits.size() == 3 && code && *code >= 100 &&
                     (rest.size() == 3 || rest[3] == ' ');
  if (!well_formed) return {version, 0, {}};
  return {version, static_cast<std::uint16_t>(*code), rest.size() > 3 ? rest.substr(4) : ""};
}

// Is this complete first line a start line of the protocol whose versions start with
// `version_prefix` ("SIP/", "RTSP/")? A status line starts with the version, a request line
// ends with it. The answer separates "another protocol" from "a broken message of ours".
constexpr bool is_start_line_of(std::string_view line, std::string_view version_prefix) {
  if (istarts_with(line, version_prefix)) return true;
  std::size_t last_space = line.rfind(' ');
  return last_space != std::string_view::npos &&
         istarts_with(line.substr(last_space + 1), version_prefix);
}

inline bool is_request_target(std::string_view s) {
  return !s.empty() && !has_byte_below_or(s, 0x21, 0x7f);  // no SP, no control character
}

// What SIP and RTSP ask of a request line besides its version: the method is a token, the
// target a request target.
inline bool is_well_formed_request(std::string_view line, const RequestLine& parts) {
  return is_token_run_of(line, parts.method.size()) && is_request_target(parts.target);
}

// While a start line is still arriving, can it still become "METHOD SP ..." or
// "<version_prefix>..."? Lets stream parsers say not_this_protocol early rather than
// need_more forever on binary traffic.
constexpr bool could_become_start_line(std::string_view partial, std::string_view version_prefix) {
  std::string_view head = partial.substr(0, version_prefix.size());
  if (iequals(head, version_prefix.substr(0, head.size()))) return true;
  std::string_view method = split_once(partial, ' ').head;
  for (char c : method)
    if (!is_token_char(c)) return false;
  return true;
}

// Header fields of an RFC 822-style block (SIP, RTSP): "name: value", values may continue on
// lines that start with SP or HTAB (folding), and the block ends at an empty line.
struct HeaderField {
  std::string_view name;
  std::string_view value;  // trimmed; still holds CR/LF/blanks where it was folded
  // The value continued on another line and holds its fold (a CR or LF): compare or hash it
  // with UnfoldedReader. Worked out only for fields that continued, which few do, so a
  // bare CR inside a one-line value does not count (UnfoldedReader treats it as white
  // space either way).
  bool folded = false;
};

// How a walk over a header block ended.
enum class HeaderBlock : std::uint8_t {
  complete,            // the empty line was reached and consumed
  need_more,           // the input ends before the block does
  no_colon,
  bad_name,
  continuation_first,  // a folded line with no field before it
  too_many_fields,
  stopped,             // the visitor asked to stop
};

class HeaderReader {
 public:
  explicit HeaderReader(std::string_view block)
      : begin_(block.data()), cursor_(block.data()), end_(block.data() + block.size()) {}

  // Hands each field to `take`, which returns false to stop; counts fields into `count`.
  // Every SIP datagram passes here, so the walk is over pointers in one loop, and each byte
  // of a one-line field is looked at about once: by the LF search, the name scan or the trim.
  template <class Take>
  HeaderBlock read(std::size_t max_fields, std::size_t& count, Take&& take) {
    for (;;) {
      const char* const line = cursor_;
      const char* const lf = detail::find_line_feed(line, end_);
      if (lf == nullptr) return HeaderBlock::need_more;
      const char* const text_end = lf != line && lf[-1] == '\r' ? lf - 1 : lf;
      if (text_end == line) {
        cursor_ = lf + 1;
        return HeaderBlock::complete;
      }
      if (is_blank(*line)) return HeaderBlock::continuation_first;
      // The name is a token, then blanks (SIP allows them before the colon), then the colon.
      // The token scan stops at the CR or LF that ends the line at the latest.
      const char* const name_end = line + token_run(line, end_);
      const char* colon = name_end;
      if (*colon != ':')
        while (colon < text_end && is_blank(*colon)) ++colon;
      if (colon == text_end || *colon != ':' || name_end == line)
        return std::memchr(line, ':', static_cast<std::size_t>(text_end - line)) == nullptr
                   ? HeaderBlock::no_colon
                   : HeaderBlock::bad_name;

      // The field runs on while the next line starts with a blank. Until the byte after this
      // line's LF is here we cannot know whether it does.
      const char* field_end = lf + 1;
      if (field_end == end_) return HeaderBlock::need_more;
      HeaderField field;
      field.name = {line, static_cast<std::size_t>(name_end - line)};
      if (!is_blank(*field_end)) {  // one line: its end is known, no need to trim the CRLF again
        field.value = trim_lws({colon + 1, static_cast<std::size_t>(text_end - colon - 1)});
      } else {
        do {
          const char* const next_lf = detail::find_line_feed(field_end, end_);
          if (next_lf == nullptr || next_lf + 1 == end_) return HeaderBlock::need_more;
          field_end = next_lf + 1;
        } while (is_blank(*field_end));
        field.value = trim_lws({colon + 1, static_cast<std::size_t>(field_end - colon - 1)});
        field.folded = field.value.find_first_of("\r\n") != std::string_view::npos;
      }
      cursor_ = field_end;
      if (++count > max_fields) return HeaderBlock::too_many_fields;
      if (!take(field)) return HeaderBlock::stopped;
    }
  }

  // Bytes consumed so far; once read() returned `complete`, the block's size.
  std::size_t consumed() const { return static_cast<std::size_t>(cursor_ - begin_); }

 private:
  const char* begin_;
  const char* cursor_;
  const char* end_;
};

// How read_header_block() ended, in a parser's own terms.
template <class Reason>
struct HeaderBlockEnd {
  HeaderBlock end;
  Reason reason;     // why the block is ill-formed; Reason::none for complete and need_more
  std::size_t size;  // bytes read; once complete, the block's size with its empty line
};

// Reads the header block at the start of `input`, handing each field to `take`, which
// returns the parser's Reason (Reason::none to go on). SIP and RTSP share the header syntax
// and name its faults alike, so the faults become their Reasons here, once.
template <class Reason, class Take>
HeaderBlockEnd<Reason> read_header_block(std::string_view input, std::size_t max_fields,
                                         std::size_t& count, Take&& take) {
  HeaderReader reader(input);
  Reason refused = Reason::none;
  const HeaderBlock end = reader.read(max_fields, count, [&](const HeaderField& field) {
    refused = take(field);
    return refused == Reason::none;
  });
  Reason reason = Reason::none;
  switch (end) {
    case HeaderBlock::complete:
    case HeaderBlock::need_more: break;
    case HeaderBlock::stopped: reason = refused; break;
    case HeaderBlock::too_many_fields: reason = Reason::too_many_headers; break;
    case HeaderBlock::no_colon: reason = Reason::header_without_colon; break;
    case HeaderBlock::bad_name: reason = Reason::bad_header_name; break;
    case HeaderBlock::continuation_first: reason = Reason::continuation_without_header; break;
  }
  return {end, reason, reader.consumed()};
}

// The bytes of a header value as RFC 3261 7.3.1 defines it: any run of linear white space
// (blanks, and the CRLF of a fold) counts as one SP, and none at either end. Folded and
// unfolded forms of a value yield the same sequence.
class UnfoldedReader {
 public:
  constexpr explicit UnfoldedReader(std::string_view value) : rest_(trim_lws(value)) {}

  // The next byte, or -1 at the end.
  constexpr int next() {
    if (rest_.empty()) return -1;
    if (is_lws(rest_.front())) {
      while (is_lws(rest_.front())) rest_.remove_prefix(1);  // trimmed: ends in non-LWS
      return ' ';
    }
    char c = rest_.front();
    rest_.remove_prefix(1);
    return static_cast<unsigned char>(c);
  }

 private:
  std::string_view rest_;
};

constexpr bool equal_unfolded(std::string_view a, std::string_view b) {
  UnfoldedReader ra(a), rb(b);
  for (;;) {
    int ca = ra.next();
    if (ca != rb.next()) return false;
    if (ca < 0) return true;
  }
}

}  // namespace tether::parsers::text
