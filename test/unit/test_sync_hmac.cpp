#include "sync/hmac.hpp"

#include "test/unit/parser_samples.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>
#include <vector>

using tether::sync::HmacSha256;
using tether::sync::Tag;
using tether::test::bytes;
using Key = std::vector<std::uint8_t>;

TEST_CASE("sync: HMAC-SHA256 is RFC 4231's", "[sync]") {
  // RFC 4231, test case 1: key 0x0b x 20, data "Hi There".
  const HmacSha256 mac(Key(20, 0x0b));
  const Tag expected = {0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf,
                        0xce, 0xaf, 0x0b, 0xf1, 0x2b, 0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83,
                        0x3d, 0xa7, 0x26, 0xe9, 0x37, 0x6c, 0x2e, 0x32, 0xcf, 0xf7};
  Tag tag;
  REQUIRE(mac.sign(bytes("Hi There"), tag));
  CHECK(tag == expected);
  // The context is reused: a second message gets its own tag, and the first one's again.
  Tag other;
  REQUIRE(mac.sign(bytes("Hi there"), other));
  CHECK(other != expected);
  REQUIRE(mac.sign(bytes("Hi There"), tag));
  CHECK(tag == expected);
  CHECK(mac.verify(bytes("Hi There"), expected));
  CHECK_FALSE(mac.verify(bytes("Hi there"), expected));
  CHECK_FALSE(HmacSha256(Key(20, 0x0c)).verify(bytes("Hi There"), expected));
}

TEST_CASE("sync: keys of 16 to 64 bytes", "[sync]") {
  CHECK_THROWS_AS(HmacSha256(Key(15, 1)), std::invalid_argument);
  CHECK_THROWS_AS(HmacSha256(Key(65, 1)), std::invalid_argument);
  CHECK_THROWS_AS(HmacSha256(Key()), std::invalid_argument);
  CHECK_NOTHROW(HmacSha256(Key(16, 1)));
  CHECK_NOTHROW(HmacSha256(Key(64, 1)));
}
