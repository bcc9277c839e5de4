// HMAC-SHA256 with one configured key, through OpenSSL's libcrypto (EVP_MAC).
//
// The key is set once, when the object is made: that allocates OpenSSL's context. Each
// sign() then re-initialises the context with the key it holds, so signing and verifying a
// message allocate nothing of ours. Not thread-safe: one object per thread that signs (the
// control thread).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

struct evp_mac_ctx_st;

namespace tether::sync {

inline constexpr std::size_t kTagSize = 32;  // SHA-256's output: the whole tag, not truncated
// 16 bytes (128 bits) at least, as RFC 2104 asks (no shorter than the hash's security level
// against forgery); 64 at most, SHA-256's block size, beyond which HMAC hashes the key first.
inline constexpr std::size_t kMinKeySize = 16;
inline constexpr std::size_t kMaxKeySize = 64;

using Tag = std::array<std::uint8_t, kTagSize>;

class HmacSha256 {
 public:
  // Throws std::invalid_argument for a key outside kMinKeySize..kMaxKeySize bytes, and
  // std::runtime_error when libcrypto cannot make the context.
  explicit HmacSha256(std::span<const std::uint8_t> key);
  ~HmacSha256();
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;

  // The tag of `data`; false only if libcrypto fails.
  bool sign(std::span<const std::uint8_t> data, Tag& tag) const;
  // True when `tag` is the tag of `data`, compared in constant time (CRYPTO_memcmp), so the
  // time a rejection takes does not tell a forger how many leading bytes were right.
  bool verify(std::span<const std::uint8_t> data, std::span<const std::uint8_t, kTagSize> tag) const;

 private:
  evp_mac_ctx_st* context_;
};

}  // namespace tether::sync
