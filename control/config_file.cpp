#include "control/config_file.hpp"

#include <cctype>
#include <climits>
#include <fstream>
#include <iterator>
#include <vector>

namespace tether {
namespace {

// libconfig's include depth limit (scanctx.h MAX_INCLUDE_DEPTH).
constexpr int kMaxIncludeDepth = 10;

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '*'; }
bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '*';
}
bool is_number_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '-';
}

// The value of one number token, or nothing for a float. libconfig's scanner (lib/scanner.l)
// tells them apart so: a hex integer is `0x` digits, a decimal one an optional sign and
// digits, either with an optional `L` or `LL`; anything else (a `.`, or an exponent) is a
// float. The token comes from a file libconfig parsed without error, so it is one of these.
std::optional<IntegerLiteral> integer_literal(std::string_view token) {
  std::string_view digits = token;
  while (!digits.empty() && digits.back() == 'L') digits.remove_suffix(1);
  bool negative = false;
  unsigned base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  } else if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty()) return std::nullopt;
  unsigned long long magnitude = 0;
  bool overflow = false;
  for (char c : digits) {
    unsigned digit;
    if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F') digit = static_cast<unsigned>(c - 'A' + 10);
    else return std::nullopt;  // a float: `1e3`, `1.5`
    if (magnitude > (ULLONG_MAX - digit) / base) overflow = true;
    else magnitude = magnitude * base + digit;
  }
  IntegerLiteral literal{std::string(token), std::nullopt};
  if (!overflow && magnitude <= static_cast<unsigned long long>(LLONG_MAX))
    literal.value = negative ? -static_cast<long long>(magnitude) : static_cast<long long>(magnitude);
  else if (!overflow && negative && magnitude == static_cast<unsigned long long>(LLONG_MAX) + 1)
    literal.value = LLONG_MIN;
  return literal;
}

}  // namespace

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the file");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

namespace {

// Appends the integer literals of `text`, in the order libconfig's scanner meets them:
// comments and strings skipped, `@include` files read in place (relative to the working
// directory, as libconfig does without an include directory).
void scan_integer_literals(std::string_view text, const std::string& name, int depth,
                           std::vector<IntegerLiteral>& out) {
  std::size_t i = 0;
  bool line_start = true;
  const auto at = [&](std::size_t k) { return k < text.size() ? text[k] : '\0'; };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '\n') {
      line_start = true;
      ++i;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\f') {
      line_start &= c == ' ' || c == '\t';  // flex's `^[ \t]*@include`
      ++i;
      continue;
    }
    const bool at_line_start = line_start;
    line_start = false;
    if (c == '@' && at_line_start && text.substr(i, 8) == "@include") {
      std::size_t k = i + 8;
      while (at(k) == ' ' || at(k) == '\t') ++k;
      if (k > i + 8 && at(k) == '"') {
        std::string file;
        for (++k; k < text.size() && text[k] != '"'; ++k) {
          if (text[k] == '\\' && (at(k + 1) == '\\' || at(k + 1) == '"')) ++k;
          file += text[k];
        }
        if (depth >= kMaxIncludeDepth) throw ConfigError(name + ": includes nest too deep");
        scan_integer_literals(read_whole_file(file), file, depth + 1, out);
        i = k + 1;
        continue;
      }
    }
    if (c == '#' || (c == '/' && at(i + 1) == '/')) {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (c == '/' && at(i + 1) == '*') {
      const std::size_t end = text.find("*/", i + 2);
      i = end == std::string_view::npos ? text.size() : end + 2;
    } else if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;  // `\"` and `\\` stay inside; other escapes are harmless
      ++i;
    } else if (is_name_start(c)) {
      while (i < text.size() && is_name_char(text[i])) ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.') {
      const std::size_t start = i;
      while (i < text.size() && is_number_char(text[i])) {
        // an exponent's sign belongs to the number; any other sign starts the next token
        if ((text[i] == '+' || text[i] == '-') && i > start && text[i - 1] != 'e' && text[i - 1] != 'E') break;
        ++i;
      }
      if (auto literal = integer_literal(text.substr(start, i - start))) out.push_back(std::move(*literal));
    } else {
      ++i;  // punctuation: = : ; , { } ( ) [ ]
    }
  }
}

// Pairs each integer setting, in document order, with its literal and checks that libconfig
// read the same low bits: a disagreement would mean the scan above misread the file.
void pair_integer_literals(const Setting& setting, const std::vector<IntegerLiteral>& literals,
                           std::size_t& next, Document& doc) {
  if (setting.getType() == Setting::TypeInt || setting.getType() == Setting::TypeInt64) {
    if (next == literals.size())
      throw ConfigError(doc.source + ": " + setting.getPath() + ": cannot find this integer in the text");
    const IntegerLiteral& literal = literals[next++];
    const bool agrees =
        !literal.value ||
        (setting.getType() == Setting::TypeInt
             ? static_cast<int>(setting) == static_cast<std::int32_t>(static_cast<std::uint32_t>(*literal.value))
             : static_cast<long long>(setting) == *literal.value);
    if (!agrees)
      throw ConfigError(doc.source + ": " + setting.getPath() + ": cannot read '" + literal.text +
                        "' back from the text");
    doc.integers.emplace(&setting, literal);
    return;
  }
  if (setting.isAggregate())
    for (int i = 0; i < setting.getLength(); ++i) pair_integer_literals(setting[i], literals, next, doc);
}

}  // namespace

Document read_integers(const libconfig::Config& file, std::string_view text, const std::string& source) {
  std::vector<IntegerLiteral> literals;
  scan_integer_literals(text, source, 0, literals);
  Document doc{source, {}};
  std::size_t next = 0;
  pair_integer_literals(file.getRoot(), literals, next, doc);
  if (next != literals.size())
    throw ConfigError(source + ": " + std::to_string(literals.size() - next) +
                      " integer(s) in the text that no setting holds");
  return doc;
}

}  // namespace tether
