// An enum and its names for people from one list, an X-macro beside the enum of the form
// X(enumerator, "name"), so that no name can go missing or out of order:
//
//   #define TETHER_RTSP_REASONS(X) X(none, "none") X(bad_cseq, "bad CSeq") ...
//   enum class Reason : std::uint8_t { TETHER_RTSP_REASONS(TETHER_NAMED_ENUMERATOR) };
//   TETHER_ENUM_NAMES(Reason, TETHER_RTSP_REASONS)  // constexpr to_string(Reason)
//
// Parsers are the bottom layer, so control and dataplane enums use it too. (The counter
// families in dataplane/counters.hpp are named by their enumerators: X(name) lists.)
//
// Lists of the form X(TOKEN) are of tokens on the wire (SIP and RTSP methods), spelled as
// their enumerators; their enum ends with `other`, for every token not in the list.
#pragma once

#include <cstddef>
#include <string_view>

#define TETHER_NAMED_ENUMERATOR(enumerator, text) enumerator,
#define TETHER_ENUMERATOR_TEXT(enumerator, text) text,
#define TETHER_TOKEN_ENUMERATOR(token) token,
#define TETHER_TOKEN_SPELLING(token) std::string_view(#token),

namespace tether::parsers {

// `names[value]`, or "?" for a value outside the list.
template <typename Enum, std::size_t N>
constexpr const char* name_of(const char* const (&names)[N], Enum value) {
  const auto index = static_cast<std::size_t>(value);
  return index < N ? names[index] : "?";
}

// The enumerator spelled `text` (case-sensitive), else `other`: the one after the list.
template <typename Enum, std::size_t N>
constexpr Enum enum_spelled(const std::string_view (&tokens)[N], std::string_view text) {
  if (text.empty()) return static_cast<Enum>(N);
  // The first letter rules out all but one or two tokens without a compare call.
  for (std::size_t i = 0; i < N; ++i)
    if (text.front() == tokens[i].front() && text == tokens[i]) return static_cast<Enum>(i);
  return static_cast<Enum>(N);
}

// The token of `value`, or "other".
template <typename Enum, std::size_t N>
constexpr const char* spelling_of(const std::string_view (&tokens)[N], Enum value) {
  const auto index = static_cast<std::size_t>(value);
  return index < N ? tokens[index].data() : "other";  // the literals are NUL-terminated
}

}  // namespace tether::parsers

// Defines constexpr to_string(Enum) from the enum's list: an X(enumerator, "text") list
// (TETHER_ENUM_NAMES) names a value outside it "?", an X(TOKEN) list (TETHER_ENUM_SPELLINGS)
// names `other` "other".
#define TETHER_ENUM_NAMES(Enum, LIST)                                                              \
  constexpr const char* to_string(Enum value) {                                                    \
    constexpr const char* names[] = {LIST(TETHER_ENUMERATOR_TEXT)};                                \
    return ::tether::parsers::name_of(names, value);                                               \
  }
#define TETHER_ENUM_SPELLINGS(Enum, LIST)                                                          \
  constexpr const char* to_string(Enum value) {                                                    \
    constexpr std::string_view tokens[] = {LIST(TETHER_TOKEN_SPELLING)};                           \
    return ::tether::parsers::spelling_of(tokens, value);                                          \
  }
