#include "sync/wire.hpp"

#include <chrono>
#include <type_traits>

namespace tether::sync {
namespace {

// Header field offsets (docs/design.md has the table).
constexpr std::size_t kMagicAt = 0;
constexpr std::size_t kVersionAt = 4;
constexpr std::size_t kKindAt = 5;
constexpr std::size_t kRecordCountAt = 6;
constexpr std::size_t kSenderAt = 8;
constexpr std::size_t kPayloadLengthAt = 12;
constexpr std::size_t kEpochAt = 16;
constexpr std::size_t kSequenceAt = 24;
// The writer and the reader go through the fields in this order, each right after the last.
static_assert(kMagicAt == 0 && kVersionAt == kMagicAt + 4 && kKindAt == kVersionAt + 1 &&
              kRecordCountAt == kKindAt + 1 && kSenderAt == kRecordCountAt + 2 &&
              kPayloadLengthAt == kSenderAt + 4 && kEpochAt == kPayloadLengthAt + 4 &&
              kSequenceAt == kEpochAt + 8 && kSequenceAt + 8 == kHeaderSize);

// Big-endian stores and loads, one field at a time. The callers check the bounds first.
class Out {
 public:
  explicit Out(std::uint8_t* at) : at_(at) {}
  void u8(std::uint8_t v) { *at_++ = v; }
  void u16(std::uint16_t v) { big_endian(v, 2); }
  void u32(std::uint32_t v) { big_endian(v, 4); }
  void u64(std::uint64_t v) { big_endian(v, 8); }
  void address(const parsers::IpBytes& a) {
    for (std::uint8_t byte : a) *at_++ = byte;
  }

 private:
  void big_endian(std::uint64_t v, unsigned bytes) {
    for (unsigned i = bytes; i-- > 0;) *at_++ = static_cast<std::uint8_t>(v >> (8 * i));
  }
  std::uint8_t* at_;
};

class In {
 public:
  explicit In(const std::uint8_t* at) : at_(at) {}
  std::uint8_t u8() { return *at_++; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(big_endian(2)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(big_endian(4)); }
  std::uint64_t u64() { return big_endian(8); }
  parsers::IpBytes address() {
    parsers::IpBytes a;
    for (std::uint8_t& byte : a) byte = *at_++;
    return a;
  }

 private:
  std::uint64_t big_endian(unsigned bytes) {
    std::uint64_t v = 0;
    for (unsigned i = 0; i < bytes; ++i) v = v << 8 | *at_++;
    return v;
  }
  const std::uint8_t* at_;
};

// What encode and decode share per record type: its number and its body size.
template <class R> struct Layout;
template <> struct Layout<SipCallRecord> {
  static constexpr RecordType type = RecordType::sip_call;
  static constexpr std::size_t body = kSipCallBody;
  static constexpr std::size_t least_body = kSipCallBodyWithoutFlags;
};
template <> struct Layout<RtpExpectationRecord> {
  static constexpr RecordType type = RecordType::rtp_expectation;
  static constexpr std::size_t body = kRtpExpectationBody;
  static constexpr std::size_t least_body = body;
};
template <> struct Layout<FtpExpectationRecord> {
  static constexpr RecordType type = RecordType::ftp_expectation;
  static constexpr std::size_t body = kFtpExpectationBody;
  static constexpr std::size_t least_body = body;
};
template <> struct Layout<FlowRecord> {
  static constexpr RecordType type = RecordType::flow;
  static constexpr std::size_t body = kFlowBody;
  static constexpr std::size_t least_body = body;
};
template <> struct Layout<BackendHealthRecord> {
  static constexpr RecordType type = RecordType::backend_health;
  static constexpr std::size_t body = kBackendHealthBody;
  static constexpr std::size_t least_body = body;
};

// Every session record ends with its route and how long it has left to live.
template <class SessionRecord>
void encode_route(Out& out, const SessionRecord& r) {
  out.u16(r.backend);
  out.u8(static_cast<std::uint8_t>(r.state));
  out.u32(r.remaining_ms);
}

// False for a state this version does not define.
template <class SessionRecord>
bool decode_route(In& in, SessionRecord& r) {
  r.backend = in.u16();
  const std::uint8_t state = in.u8();
  r.state = static_cast<SessionState>(state);
  r.remaining_ms = in.u32();
  return state == static_cast<std::uint8_t>(SessionState::live) ||
         state == static_cast<std::uint8_t>(SessionState::ended);
}

void encode_body(Out& out, const SipCallRecord& r) {
  out.u16(r.service);
  out.u64(r.call_id_digest);
  encode_route(out, r);
  out.u8(r.holds_call ? 0 : 1);  // flags: bit 0 a transaction outside any call
}

void encode_body(Out& out, const RtpExpectationRecord& r) {
  out.u16(r.service);
  out.address(r.client);
  out.u16(r.client_port);
  encode_route(out, r);
}

void encode_body(Out& out, const FtpExpectationRecord& r) {
  out.u16(r.service);
  out.address(r.client);
  encode_route(out, r);
}

void encode_body(Out& out, const FlowRecord& r) {
  out.address(r.client);
  out.address(r.vip);
  out.u16(r.client_port);
  out.u16(r.vip_port);
  out.u8(r.protocol);
  out.u8(r.closing ? 1 : 0);  // flags: bit 0 closing; the other bits are zero
  out.u16(r.service);
  out.u16(r.backend);
  out.u32(r.remaining_ms);
}

void encode_body(Out& out, const BackendHealthRecord& r) {
  out.u16(r.backend);
  out.u8(r.up ? 1 : 0);  // flags: bit 0 up; the other bits are zero
  out.u32(r.name_digest);
}

// decode_body reads up to `size` bytes, at least Layout<R>::least_body, which the caller has
// checked are there; false for a value this version does not define.
bool decode_body(In in, std::size_t size, SipCallRecord& r) {
  r.service = in.u16();
  r.call_id_digest = in.u64();
  if (!decode_route(in, r)) return false;
  // flag bits a later version defines are ignored
  r.holds_call = size < kSipCallBody || (in.u8() & 1) == 0;
  return true;
}

bool decode_body(In in, std::size_t, RtpExpectationRecord& r) {
  r.service = in.u16();
  r.client = in.address();
  r.client_port = in.u16();
  return decode_route(in, r);
}

bool decode_body(In in, std::size_t, FtpExpectationRecord& r) {
  r.service = in.u16();
  r.client = in.address();
  return decode_route(in, r);
}

bool decode_body(In in, std::size_t, FlowRecord& r) {
  r.client = in.address();
  r.vip = in.address();
  r.client_port = in.u16();
  r.vip_port = in.u16();
  r.protocol = in.u8();
  r.closing = (in.u8() & 1) != 0;  // flag bits a later version defines are ignored
  r.service = in.u16();
  r.backend = in.u16();
  r.remaining_ms = in.u32();
  return true;
}

bool decode_body(In in, std::size_t, BackendHealthRecord& r) {
  r.backend = in.u16();
  r.up = (in.u8() & 1) != 0;  // flag bits a later version defines are ignored
  r.name_digest = in.u32();
  return true;
}

template <class R>
bool decode_as(parsers::ByteSpan body, Record& record) {
  if (body.size() < Layout<R>::least_body) return false;
  R r;
  if (!decode_body(In(body.data()), body.size(), r)) return false;
  record = r;
  return true;
}

enum class Decoded : std::uint8_t { known, unknown, malformed };

// The record at payload[offset]: moves offset past it. `record` is set for known types only.
Decoded decode_record(parsers::ByteSpan payload, std::size_t& offset, Record& record) {
  if (payload.size() - offset < kRecordHeaderSize) return Decoded::malformed;
  In in(payload.data() + offset);
  const std::uint16_t type = in.u16();
  const std::uint16_t length = in.u16();
  if (payload.size() - offset - kRecordHeaderSize < length) return Decoded::malformed;
  const parsers::ByteSpan body = payload.subspan(offset + kRecordHeaderSize, length);
  offset += kRecordHeaderSize + length;
  bool well_formed;
  switch (static_cast<RecordType>(type)) {
    case RecordType::sip_call: well_formed = decode_as<SipCallRecord>(body, record); break;
    case RecordType::rtp_expectation: well_formed = decode_as<RtpExpectationRecord>(body, record); break;
    case RecordType::ftp_expectation: well_formed = decode_as<FtpExpectationRecord>(body, record); break;
    case RecordType::flow: well_formed = decode_as<FlowRecord>(body, record); break;
    case RecordType::backend_health: well_formed = decode_as<BackendHealthRecord>(body, record); break;
    default: return Decoded::unknown;  // a later version's: skipped by its length
  }
  return well_formed ? Decoded::known : Decoded::malformed;
}

bool known_kind(std::uint8_t kind) {
  return kind >= static_cast<std::uint8_t>(MessageKind::records) &&
         kind <= static_cast<std::uint8_t>(MessageKind::bulk_end);
}

}  // namespace

const char* to_string(SyncStatus status) {
  switch (status) {
    case SyncStatus::ok: return "ok";
    case SyncStatus::truncated: return "truncated";
    case SyncStatus::bad_magic: return "bad_magic";
    case SyncStatus::bad_version: return "bad_version";
    case SyncStatus::bad_kind: return "bad_kind";
    case SyncStatus::bad_length: return "bad_length";
    case SyncStatus::bad_mac: return "bad_mac";
    case SyncStatus::bad_record: return "bad_record";
    case SyncStatus::bad_count: return "bad_count";
    case SyncStatus::replayed: return "replayed";
  }
  return "?";
}

std::size_t encoded_size(const Record& record) {
  return std::visit(
      [](const auto& r) { return kRecordHeaderSize + Layout<std::decay_t<decltype(r)>>::body; },
      record);
}

std::uint64_t start_epoch() {
  const auto since_1970 = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(since_1970).count());
}

MessageWriter::MessageWriter(std::span<std::uint8_t> buffer, const MessageHeader& header)
    : buffer_(buffer) {
  if (buffer_.size() < kHeaderSize + kTagSize) return;  // append() and seal() refuse
  Out out(buffer_.data());
  out.u32(kMagic);
  out.u8(kVersion);
  out.u8(static_cast<std::uint8_t>(header.kind));
  out.u16(0);  // record count: seal()
  out.u32(header.sender);
  out.u32(0);  // payload length: seal()
  out.u64(header.epoch);
  out.u64(header.sequence);
  size_ = kHeaderSize;
}

bool MessageWriter::append(const Record& record) {
  if (size_ == 0 || record_count_ == kMaxRecords) return false;
  const std::size_t size = encoded_size(record);
  if (buffer_.size() - size_ < size + kTagSize) return false;
  std::visit(
      [&](const auto& r) {
        using Layout = Layout<std::decay_t<decltype(r)>>;
        Out out(buffer_.data() + size_);
        out.u16(static_cast<std::uint16_t>(Layout::type));
        out.u16(static_cast<std::uint16_t>(Layout::body));
        encode_body(out, r);
      },
      record);
  size_ += size;
  ++record_count_;
  return true;
}

std::span<const std::uint8_t> MessageWriter::seal(const HmacSha256& mac) {
  if (size_ == 0) return {};
  Out(buffer_.data() + kRecordCountAt).u16(record_count_);
  Out(buffer_.data() + kPayloadLengthAt).u32(static_cast<std::uint32_t>(size_ - kHeaderSize));
  return sign(mac);
}

std::span<const std::uint8_t> MessageWriter::reseal(std::uint64_t sequence, const HmacSha256& mac) {
  if (size_ == 0) return {};
  Out(buffer_.data() + kSequenceAt).u64(sequence);
  return sign(mac);
}

std::span<const std::uint8_t> MessageWriter::sign(const HmacSha256& mac) {
  Tag tag;
  if (!mac.sign(buffer_.first(size_), tag)) return {};
  Out out(buffer_.data() + size_);
  for (std::uint8_t byte : tag) out.u8(byte);
  return buffer_.first(size_ + kTagSize);
}

bool RecordCursor::next(Record& record) {
  while (offset_ < payload_.size()) {
    switch (decode_record(payload_, offset_, record)) {
      case Decoded::known: return true;
      case Decoded::unknown: break;
      case Decoded::malformed:  // never after open_message(), which walked them all; but stop
        offset_ = payload_.size();
        return false;
    }
  }
  return false;
}

SyncStatus open_message(parsers::ByteSpan datagram, const HmacSha256& mac,
                        ReceivedMessage& message) {
  if (datagram.size() < kHeaderSize + kTagSize) return SyncStatus::truncated;
  In in(datagram.data());
  if (in.u32() != kMagic) return SyncStatus::bad_magic;
  if (in.u8() != kVersion) return SyncStatus::bad_version;
  const std::uint8_t kind = in.u8();
  if (!known_kind(kind)) return SyncStatus::bad_kind;
  MessageHeader header;
  header.kind = static_cast<MessageKind>(kind);
  header.record_count = in.u16();
  header.sender = in.u32();
  header.payload_length = in.u32();
  header.epoch = in.u64();
  header.sequence = in.u64();

  const std::size_t payload_room = datagram.size() - kHeaderSize - kTagSize;
  if (header.payload_length > payload_room) return SyncStatus::truncated;
  if (header.payload_length < payload_room) return SyncStatus::bad_length;
  // The tag before the records: nobody without the key gets past here, so the record walk
  // below only ever reads what a peer wrote.
  const std::size_t signed_size = kHeaderSize + header.payload_length;
  if (!mac.verify(datagram.first(signed_size), datagram.subspan(signed_size).first<kTagSize>()))
    return SyncStatus::bad_mac;

  const parsers::ByteSpan payload = datagram.subspan(kHeaderSize, header.payload_length);
  std::size_t records = 0;
  Record record;
  for (std::size_t offset = 0; offset < payload.size(); ++records)
    if (decode_record(payload, offset, record) == Decoded::malformed) return SyncStatus::bad_record;
  if (records != header.record_count) return SyncStatus::bad_count;

  message.header = header;
  message.payload = payload;
  return SyncStatus::ok;
}

}  // namespace tether::sync
