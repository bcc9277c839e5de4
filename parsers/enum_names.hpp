// An enum and its names for people from one list, an X-macro beside the enum of the form
// X(enumerator, "name"), so that no name can go missing or out of order:
//
//   #define TETHER_RTSP_REASONS(X) X(none, "none") X(bad_cseq, "bad CSeq") ...
//   enum class Reason : std::uint8_t { TETHER_RTSP_REASONS(TETHER_NAMED_ENUMERATOR) };
//   constexpr const char* kNames[] = {TETHER_RTSP_REASONS(TETHER_ENUMERATOR_TEXT)};
#pragma once

#include <cstddef>

#define TETHER_NAMED_ENUMERATOR(enumerator, text) enumerator,
#define TETHER_ENUMERATOR_TEXT(enumerator, text) text,

namespace tether::parsers {

// `names[value]`, or "?" for a value outside the list.
template <typename Enum, std::size_t N>
constexpr const char* name_of(const char* const (&names)[N], Enum value) {
  const auto index = static_cast<std::size_t>(value);
  return index < N ? names[index] : "?";
}

}  // namespace tether::parsers
