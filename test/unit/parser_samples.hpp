// Helpers the parser tests share: a byte view of a text sample, and the every-prefix run
// that lets AddressSanitizer catch a read past the end.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

#include "parsers/text.hpp"

namespace tether::test {

inline parsers::ByteSpan bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Runs `check` on every proper prefix of `sample`, each copied into a heap buffer of exactly
// its size, so that AddressSanitizer reports any read past the end.
template <class Check>
void for_each_prefix(std::string_view sample, Check check) {
  for (std::size_t n = 0; n < sample.size(); ++n) {
    std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[n]);
    if (n > 0) std::memcpy(copy.get(), sample.data(), n);
    check(parsers::ByteSpan(copy.get(), n), n);
  }
}

}  // namespace tether::test
