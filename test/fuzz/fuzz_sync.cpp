// libFuzzer target for the state sync reader. Random bytes rarely get past the tag, so the
// input is used twice: as a datagram as it stands, and as the payload of a message this
// target signs (its first two bytes the record count), which reaches the record walk.
// Besides crashes and sanitizer reports it aborts when an accepted message's records do not
// survive being written again and read back.
#include "sync/wire.hpp"

#include "test/fuzz/fuzz_contract.hpp"

#include <vector>

namespace tsync = tether::sync;  // not `sync`: POSIX has a sync()
using tether::fuzz::expect;
using tether::parsers::ByteSpan;

namespace {

const tsync::HmacSha256& mac() {
  static const std::vector<std::uint8_t> key(32, 0x42);
  static const tsync::HmacSha256 instance(key);
  return instance;
}

std::vector<tsync::Record> records_of(const tsync::ReceivedMessage& message) {
  std::vector<tsync::Record> records;
  tsync::RecordCursor cursor = message.records();
  for (tsync::Record record; cursor.next(record);) records.push_back(record);
  return records;
}

void check(ByteSpan datagram) {
  tsync::ReceivedMessage message;
  const tsync::SyncStatus status = tsync::open_message(datagram, mac(), message);
  expect(tsync::to_string(status) != nullptr);
  if (status != tsync::SyncStatus::ok) return;
  expect(message.payload.data() == datagram.data() + tsync::kHeaderSize);
  const std::vector<tsync::Record> records = records_of(message);
  expect(records.size() <= message.header.record_count);

  // Each record may come back one byte longer: a SIP call record read without its flags byte
  // (an older sender's) is written with it.
  std::vector<std::uint8_t> buffer(datagram.size() + tsync::kTagSize + records.size());
  tsync::MessageWriter writer(buffer, message.header);
  for (const tsync::Record& record : records) expect(writer.append(record));
  tsync::ReceivedMessage again;
  expect(tsync::open_message(writer.seal(mac()), mac(), again) == tsync::SyncStatus::ok);
  expect(records_of(again) == records);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check(ByteSpan(data, size));
  if (size < 2) return 0;

  std::vector<std::uint8_t> message(tsync::kHeaderSize + tsync::kTagSize);
  tsync::MessageWriter writer(message, {});  // writes the header
  message.resize(tsync::kHeaderSize);
  message.insert(message.end(), data + 2, data + size);
  message[6] = data[0];  // record count
  message[7] = data[1];
  const std::size_t payload = size - 2;
  for (unsigned i = 0; i < 4; ++i)
    message[12 + i] = static_cast<std::uint8_t>(payload >> (8 * (3 - i)));  // payload length
  tsync::Tag tag;
  expect(mac().sign(message, tag));
  message.insert(message.end(), tag.begin(), tag.end());
  check(message);
  return 0;
}
