// What the fuzz targets check besides crashes: a result that breaks the parser's contract
// aborts, so libFuzzer keeps the input.
#pragma once

#include <cstdlib>
#include <string_view>

#include "parsers/text.hpp"

namespace tether::fuzz {

inline void expect(bool ok) {
  if (!ok) std::abort();
}

// A returned view must lie inside the input.
inline void expect_inside(std::string_view view, parsers::ByteSpan input) {
  if (view.empty()) return;
  auto begin = reinterpret_cast<const char*>(input.data());
  expect(view.data() >= begin && view.data() + view.size() <= begin + input.size());
}

}  // namespace tether::fuzz
