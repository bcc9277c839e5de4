#include "sync/wire.hpp"

#include "test/unit/parser_samples.hpp"

#include <catch2/catch.hpp>

#include <string_view>
#include <vector>

namespace tsync = tether::sync;  // not `sync`: POSIX has a sync()
using tsync::SyncStatus;
using tether::parsers::ByteSpan;
using tether::parsers::IpBytes;

namespace {

using Bytes = std::vector<std::uint8_t>;

const Bytes kKey(32, 0x5a);
const Bytes kOtherKey(32, 0xa5);

IpBytes mapped(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  const std::uint8_t four[] = {a, b, c, d};
  return tether::parsers::ipv4_mapped(four);
}

IpBytes ipv6_address() {
  IpBytes a{};
  a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[15] = 7;
  return a;
}

// One record of each type, with every field away from its default and from each other, so
// that a field read from the wrong place or in the wrong byte order shows.
std::vector<tsync::Record> one_of_each() {
  return {
      tsync::SipCallRecord{.service = 0x0102,
                          .call_id_digest = 0x1122334455667788,
                          .backend = 0x0304,
                          .state = tsync::SessionState::ended,
                          .remaining_ms = 0x0a0b0c0d},
      tsync::RtpExpectationRecord{.service = 7,
                                 .client = mapped(192, 0, 2, 10),
                                 .client_port = 50000,
                                 .backend = 4095,
                                 .state = tsync::SessionState::live,
                                 .remaining_ms = 60000},
      tsync::FtpExpectationRecord{.service = 65535,
                                 .client = ipv6_address(),
                                 .backend = 1,
                                 .state = tsync::SessionState::ended,
                                 .remaining_ms = 1},
      tsync::FlowRecord{.client = ipv6_address(),
                       .vip = mapped(198, 51, 100, 1),
                       .client_port = 40000,
                       .vip_port = 21,
                       .protocol = 6,
                       .closing = true,
                       .service = 9,
                       .backend = 10,
                       .remaining_ms = 0xfffffffe},
      tsync::BackendHealthRecord{.backend = 0x0506, .up = false, .name_digest = 0x99aabbcc},
      // A transaction outside any call: the flags byte's bit 0.
      tsync::SipCallRecord{.service = 3,
                          .call_id_digest = 42,
                          .backend = 1,
                          .state = tsync::SessionState::live,
                          .remaining_ms = 32000,
                          .holds_call = false},
  };
}

tsync::MessageHeader header(tsync::MessageKind kind = tsync::MessageKind::records) {
  return {.kind = kind, .sender = 0xdeadbeef, .epoch = 0x0123456789abcdef, .sequence = 42};
}

Bytes sealed(const std::vector<tsync::Record>& records, const Bytes& key = kKey,
             tsync::MessageKind kind = tsync::MessageKind::records) {
  Bytes buffer(1500);
  tsync::MessageWriter writer(buffer, header(kind));
  for (const tsync::Record& record : records) REQUIRE(writer.append(record));
  const auto message = writer.seal(tsync::HmacSha256(key));
  REQUIRE(!message.empty());
  return Bytes(message.begin(), message.end());
}

SyncStatus open(const Bytes& datagram, const Bytes& key = kKey) {
  tsync::ReceivedMessage message;
  return tsync::open_message(datagram, tsync::HmacSha256(key), message);
}

std::vector<tsync::Record> records_of(const tsync::ReceivedMessage& message) {
  std::vector<tsync::Record> records;
  tsync::RecordCursor cursor = message.records();
  for (tsync::Record record; cursor.next(record);) records.push_back(record);
  return records;
}

void put_be(Bytes& message, std::size_t at, std::uint64_t value, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i)
    message[at + i] = static_cast<std::uint8_t>(value >> (8 * (bytes - 1 - i)));
}

// A message written by hand: the header with these counts, `payload` as it is, and a right
// tag, so that the reader's checks after the tag can be reached.
Bytes forged_with_key(const Bytes& payload, std::uint16_t record_count) {
  Bytes message(tsync::kHeaderSize);
  put_be(message, 0, tsync::kMagic, 4);
  message[4] = tsync::kVersion;
  message[5] = static_cast<std::uint8_t>(tsync::MessageKind::records);
  put_be(message, 6, record_count, 2);
  put_be(message, 8, 1, 4);
  put_be(message, 12, payload.size(), 4);
  put_be(message, 16, 2, 8);
  put_be(message, 24, 3, 8);
  message.insert(message.end(), payload.begin(), payload.end());
  tsync::Tag tag;
  REQUIRE(tsync::HmacSha256(kKey).sign(message, tag));
  message.insert(message.end(), tag.begin(), tag.end());
  return message;
}

Bytes record_bytes(std::uint16_t type, const Bytes& body) {
  Bytes record(4);
  put_be(record, 0, type, 2);
  put_be(record, 2, body.size(), 2);
  record.insert(record.end(), body.begin(), body.end());
  return record;
}

// The body of a record as this version writes it.
Bytes body_of(const tsync::Record& record) {
  const Bytes message = sealed({record});
  const std::size_t start = tsync::kHeaderSize + tsync::kRecordHeaderSize;
  return Bytes(message.begin() + start, message.end() - tsync::kTagSize);
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

}  // namespace

TEST_CASE("sync: every record type round trips", "[sync]") {
  const std::vector<tsync::Record> sent = one_of_each();
  for (auto kind : {tsync::MessageKind::records, tsync::MessageKind::bulk_end}) {
    const Bytes message = sealed(sent, kKey, kind);
    std::size_t expected_size = tsync::kHeaderSize + tsync::kTagSize;
    for (const tsync::Record& record : sent) expected_size += tsync::encoded_size(record);
    CHECK(message.size() == expected_size);

    tsync::ReceivedMessage received;
    REQUIRE(tsync::open_message(message, tsync::HmacSha256(kKey), received) == SyncStatus::ok);
    CHECK(received.header.kind == kind);
    CHECK(received.header.sender == 0xdeadbeef);
    CHECK(received.header.epoch == 0x0123456789abcdef);
    CHECK(received.header.sequence == 42);
    CHECK(received.header.record_count == sent.size());
    CHECK(received.header.payload_length == expected_size - tsync::kHeaderSize - tsync::kTagSize);
    CHECK(records_of(received) == sent);
  }
}

TEST_CASE("sync: a sealed message resealed under another sequence number", "[sync]") {
  Bytes buffer(1500);
  tsync::MessageWriter writer(buffer, header());
  const std::vector<tsync::Record> sent = one_of_each();
  for (const tsync::Record& record : sent) REQUIRE(writer.append(record));
  const tsync::HmacSha256 mac(kKey);
  const auto first = writer.seal(mac);
  const Bytes as_sealed(first.begin(), first.end());
  const auto again = writer.reseal(7, mac);
  REQUIRE(again.size() == as_sealed.size());
  CHECK(!std::equal(again.begin(), again.end(), as_sealed.begin()));  // sequence and tag differ
  tsync::ReceivedMessage received;
  REQUIRE(tsync::open_message(again, mac, received) == SyncStatus::ok);
  CHECK(received.header.sequence == 7);
  CHECK(records_of(received) == sent);
  // The first sealing, kept, still opens with its own number.
  REQUIRE(tsync::open_message(as_sealed, mac, received) == SyncStatus::ok);
  CHECK(received.header.sequence == 42);
}

TEST_CASE("sync: the header is in network byte order, field by field", "[sync]") {
  const Bytes message = sealed({one_of_each()[0]});
  const Bytes expected_header = {
      'T', 'S', 'Y', 'C', 1, 1, 0, 1,              // magic, version, kind, record count
      0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 4 + 18,     // sender, payload length
      0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,  // epoch
      0, 0, 0, 0, 0, 0, 0, 42,                     // sequence
  };
  CHECK(Bytes(message.begin(), message.begin() + tsync::kHeaderSize) == expected_header);
  const Bytes expected_record = {0, 1, 0, 18, 0x01, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55,
                                 0x66, 0x77, 0x88, 0x03, 0x04, 2, 0x0a, 0x0b, 0x0c, 0x0d, 0};
  CHECK(Bytes(message.begin() + tsync::kHeaderSize, message.end() - tsync::kTagSize) ==
        expected_record);
}

TEST_CASE("sync: bulk requests and empty messages", "[sync]") {
  const Bytes message = sealed({}, kKey, tsync::MessageKind::bulk_request);
  CHECK(message.size() == tsync::kHeaderSize + tsync::kTagSize);
  tsync::ReceivedMessage received;
  REQUIRE(tsync::open_message(message, tsync::HmacSha256(kKey), received) == SyncStatus::ok);
  CHECK(received.header.kind == tsync::MessageKind::bulk_request);
  CHECK(records_of(received).empty());
}

TEST_CASE("sync: every truncation is rejected", "[sync]") {
  const Bytes message = sealed(one_of_each());
  const std::string_view sample(reinterpret_cast<const char*>(message.data()), message.size());
  const tsync::HmacSha256 mac(kKey);
  tether::test::for_each_prefix(sample, [&](ByteSpan prefix, std::size_t n) {
    tsync::ReceivedMessage received;
    INFO("prefix of " << n << " bytes");
    CHECK(tsync::open_message(prefix, mac, received) == SyncStatus::truncated);
  });
}

TEST_CASE("sync: a flipped bit anywhere is rejected", "[sync]") {
  const Bytes message = sealed(one_of_each());
  const tsync::HmacSha256 mac(kKey);
  for (std::size_t byte = 0; byte < message.size(); ++byte)
    for (unsigned bit = 0; bit < 8; ++bit) {
      Bytes flipped = message;
      flipped[byte] ^= static_cast<std::uint8_t>(1u << bit);
      tsync::ReceivedMessage received;
      INFO("byte " << byte << " bit " << bit);
      CHECK(tsync::open_message(flipped, mac, received) != SyncStatus::ok);
    }
}

TEST_CASE("sync: each rejection has its status", "[sync]") {
  const Bytes good = sealed(one_of_each());
  REQUIRE(open(good) == SyncStatus::ok);

  SECTION("truncated") { CHECK(open(Bytes(good.begin(), good.end() - 1)) == SyncStatus::truncated); }
  SECTION("bad_magic") {
    Bytes message = good;
    message[0] = 'X';
    CHECK(open(message) == SyncStatus::bad_magic);
  }
  SECTION("bad_version") {
    Bytes message = good;
    message[4] = 2;
    CHECK(open(message) == SyncStatus::bad_version);
  }
  SECTION("bad_kind") {
    for (std::uint8_t kind : Bytes{0, 4, 255}) {
      Bytes message = good;
      message[5] = kind;
      CHECK(open(message) == SyncStatus::bad_kind);
    }
  }
  SECTION("bad_length: bytes after the tag") {
    Bytes message = good;
    message.push_back(0);
    CHECK(open(message) == SyncStatus::bad_length);
  }
  SECTION("bad_mac: another key") { CHECK(open(good, kOtherKey) == SyncStatus::bad_mac); }
  SECTION("bad_mac: signed with another key") {
    CHECK(open(sealed(one_of_each(), kOtherKey)) == SyncStatus::bad_mac);
  }
  SECTION("bad_mac: a changed record") {
    Bytes message = good;
    message[tsync::kHeaderSize + tsync::kRecordHeaderSize] ^= 1;  // the SIP call's service
    CHECK(open(message) == SyncStatus::bad_mac);
  }
  SECTION("bad_mac: a changed sequence") {
    Bytes message = good;
    message[31] += 1;
    CHECK(open(message) == SyncStatus::bad_mac);
  }
  const Bytes sip_body = body_of(one_of_each()[0]);
  SECTION("bad_record: a record header cut short") {
    CHECK(open(forged_with_key(concat({record_bytes(1, sip_body), Bytes{0, 1}}), 2)) ==
          SyncStatus::bad_record);
  }
  SECTION("bad_record: a record body past the payload") {
    Bytes payload = record_bytes(1, sip_body);
    put_be(payload, 2, sip_body.size() + 1, 2);
    CHECK(open(forged_with_key(payload, 1)) == SyncStatus::bad_record);
  }
  SECTION("bad_record: a known record shorter than its body") {
    for (const tsync::Record& record : one_of_each()) {
      const Bytes body = body_of(record);
      const auto type = static_cast<std::uint16_t>(record.index() + 1);
      // A SIP call's flags byte is optional: the first senders did not write it.
      const std::size_t least =
          std::holds_alternative<tsync::SipCallRecord>(record) ? tsync::kSipCallBodyWithoutFlags : body.size();
      CHECK(open(forged_with_key(record_bytes(type, Bytes(body.begin(), body.begin() + least - 1)), 1)) ==
            SyncStatus::bad_record);
      CHECK(open(forged_with_key(record_bytes(type, Bytes(body.begin(), body.begin() + least)), 1)) ==
            SyncStatus::ok);
      CHECK(open(forged_with_key(record_bytes(type, body), 1)) == SyncStatus::ok);
    }
  }
  SECTION("a SIP call without its flags byte holds a call; with bit 0 set it is a transaction") {
    Bytes body = sip_body;
    REQUIRE(body.size() == tsync::kSipCallBody);
    body.back() = 0xfe;  // other flag bits are a later version's: ignored
    tsync::ReceivedMessage received;
    const Bytes with_flags = forged_with_key(record_bytes(1, body), 1);
    REQUIRE(tsync::open_message(with_flags, tsync::HmacSha256(kKey), received) == SyncStatus::ok);
    CHECK(std::get<tsync::SipCallRecord>(records_of(received).at(0)).holds_call);
    body.back() = 0x01;
    const Bytes transaction = forged_with_key(record_bytes(1, body), 1);
    REQUIRE(tsync::open_message(transaction, tsync::HmacSha256(kKey), received) == SyncStatus::ok);
    CHECK(!std::get<tsync::SipCallRecord>(records_of(received).at(0)).holds_call);
    body.pop_back();
    const Bytes without_flags = forged_with_key(record_bytes(1, body), 1);
    REQUIRE(tsync::open_message(without_flags, tsync::HmacSha256(kKey), received) == SyncStatus::ok);
    CHECK(std::get<tsync::SipCallRecord>(records_of(received).at(0)).holds_call);
  }
  SECTION("bad_record: an unknown session state") {
    for (std::uint8_t state : Bytes{0, 3, 255}) {
      Bytes body = sip_body;
      body[12] = state;
      CHECK(open(forged_with_key(record_bytes(1, body), 1)) == SyncStatus::bad_record);
    }
  }
  SECTION("bad_count") {
    const Bytes payload = concat({record_bytes(1, sip_body), record_bytes(1, sip_body)});
    CHECK(open(forged_with_key(payload, 1)) == SyncStatus::bad_count);
    CHECK(open(forged_with_key(payload, 3)) == SyncStatus::bad_count);
    CHECK(open(forged_with_key(payload, 2)) == SyncStatus::ok);
  }
}

TEST_CASE("sync: unknown record types and longer bodies are skipped by length", "[sync]") {
  // What a later version may send: a new record type, and a known one with fields appended.
  const std::vector<tsync::Record> known = one_of_each();
  Bytes longer_sip = body_of(known[0]);
  longer_sip.insert(longer_sip.end(), {9, 9, 9});
  const Bytes payload = concat({record_bytes(0x7777, Bytes{1, 2, 3}), record_bytes(1, longer_sip),
                                record_bytes(0, Bytes{}), record_bytes(4, body_of(known[3]))});
  const Bytes message = forged_with_key(payload, 4);
  tsync::ReceivedMessage received;
  REQUIRE(tsync::open_message(message, tsync::HmacSha256(kKey), received) == SyncStatus::ok);
  CHECK(records_of(received) == std::vector<tsync::Record>{known[0], known[3]});
}

TEST_CASE("sync: the writer stays within its buffer", "[sync]") {
  const tsync::Record record = one_of_each()[3];
  const std::size_t exact = tsync::kHeaderSize + tsync::encoded_size(record) + tsync::kTagSize;
  const tsync::HmacSha256 mac(kKey);
  constexpr std::uint8_t kGuard = 0xee;

  SECTION("exactly full") {
    Bytes storage(exact + 16, kGuard);
    tsync::MessageWriter writer{std::span(storage).first(exact), header()};
    CHECK(writer.append(record));
    CHECK_FALSE(writer.append(tsync::SipCallRecord{}));  // not even the smallest fits now
    const auto message = writer.seal(mac);
    CHECK(message.size() == exact);
    for (std::size_t i = exact; i < storage.size(); ++i) CHECK(storage[i] == kGuard);
    CHECK(open(Bytes(message.begin(), message.end())) == SyncStatus::ok);
  }
  SECTION("one byte short") {
    Bytes storage(exact + 16, kGuard);
    tsync::MessageWriter writer{std::span(storage).first(exact - 1), header()};
    CHECK_FALSE(writer.append(record));
    CHECK(writer.empty());
    const auto message = writer.seal(mac);  // still a valid, empty message
    CHECK(message.size() == tsync::kHeaderSize + tsync::kTagSize);
    for (std::size_t i = message.size(); i < storage.size(); ++i) CHECK(storage[i] == kGuard);
    CHECK(open(Bytes(message.begin(), message.end())) == SyncStatus::ok);
  }
  SECTION("no room for a header and a tag") {
    Bytes storage(tsync::kHeaderSize + tsync::kTagSize + 16, kGuard);
    tsync::MessageWriter writer{std::span(storage).first(tsync::kHeaderSize + tsync::kTagSize - 1),
                                header()};
    CHECK_FALSE(writer.append(record));
    CHECK(writer.seal(mac).empty());
    for (std::uint8_t byte : storage) CHECK(byte == kGuard);
  }
  SECTION("at most kMaxRecords") {
    const tsync::Record small = one_of_each()[0];
    Bytes storage(tsync::kHeaderSize + (tsync::kMaxRecords + 1) * tsync::encoded_size(small) +
                  tsync::kTagSize);
    tsync::MessageWriter writer(storage, header());
    for (std::size_t i = 0; i < tsync::kMaxRecords; ++i) REQUIRE(writer.append(small));
    CHECK_FALSE(writer.append(small));
    CHECK(writer.record_count() == tsync::kMaxRecords);
    const auto message = writer.seal(mac);
    tsync::ReceivedMessage received;
    REQUIRE(tsync::open_message(message, mac, received) == SyncStatus::ok);
    CHECK(received.header.record_count == tsync::kMaxRecords);
  }
}

TEST_CASE("sync: start epochs grow", "[sync]") {
  const std::uint64_t first = tsync::start_epoch();
  CHECK(tsync::start_epoch() > first - 1);
  CHECK(first > 1'700'000'000'000'000'000ULL);  // nanoseconds since 1970, after 2023
}

TEST_CASE("sync: a cursor over records no one checked stops at a malformed one", "[sync]") {
  const std::vector<tsync::Record> known = one_of_each();
  const Bytes payload = concat({record_bytes(1, body_of(known[0])), Bytes{0, 1, 0}});
  tsync::RecordCursor cursor(payload);
  tsync::Record record;
  REQUIRE(cursor.next(record));
  CHECK(record == known[0]);
  CHECK_FALSE(cursor.next(record));
  CHECK_FALSE(cursor.next(record));
}
