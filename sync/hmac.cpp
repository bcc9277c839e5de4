#include "sync/hmac.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <stdexcept>
#include <string>

namespace tether::sync {

HmacSha256::HmacSha256(std::span<const std::uint8_t> key) {
  if (key.size() < kMinKeySize || key.size() > kMaxKeySize)
    throw std::invalid_argument("sync key: " + std::to_string(key.size()) + " bytes; " +
                                std::to_string(kMinKeySize) + " to " + std::to_string(kMaxKeySize) +
                                " expected");
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) throw std::runtime_error("sync key: libcrypto has no HMAC");
  context_ = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);  // the context holds its own reference
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  if (context_ == nullptr || EVP_MAC_init(context_, key.data(), key.size(), params) != 1) {
    EVP_MAC_CTX_free(context_);
    throw std::runtime_error("sync key: libcrypto cannot set up HMAC-SHA256");
  }
}

HmacSha256::~HmacSha256() { EVP_MAC_CTX_free(context_); }

bool HmacSha256::sign(std::span<const std::uint8_t> data, Tag& tag) const {
  // A null key re-initialises the context with the key it holds: no new context per message.
  std::size_t written = 0;
  return EVP_MAC_init(context_, nullptr, 0, nullptr) == 1 &&
         EVP_MAC_update(context_, data.data(), data.size()) == 1 &&
         EVP_MAC_final(context_, tag.data(), &written, tag.size()) == 1 && written == tag.size();
}

bool HmacSha256::verify(std::span<const std::uint8_t> data,
                        std::span<const std::uint8_t, kTagSize> tag) const {
  Tag expected;
  return sign(data, expected) && CRYPTO_memcmp(expected.data(), tag.data(), kTagSize) == 0;
}

}  // namespace tether::sync
