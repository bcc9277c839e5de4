// State sync between tether instances: the message format (docs/design.md, "State sync: the
// wire format").
//
// A message is a 32-byte header, records, and an HMAC-SHA256 tag over header and records.
// Every field is in network byte order and is written and read one at a time: the layout is
// the one in this file's constants, whatever the compiler does with structs.
//
// MessageWriter fills a caller's buffer and never writes past it. open_message() checks a
// received datagram completely (lengths, magic, version, tag, every record's bounds) before
// the caller sees any of it, never reads past it and allocates nothing; RecordCursor then walks
// its records. Replay is the ReplayWindow's job (sync/replay_window.hpp), after the tag.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

#include "parsers/packet.hpp"
#include "parsers/text.hpp"
#include "sync/hmac.hpp"

namespace tether::sync {

inline constexpr std::uint32_t kMagic = 0x54535943;  // "TSYC": tether sync
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 32;
inline constexpr std::size_t kRecordHeaderSize = 4;  // type u16, body length u16
inline constexpr std::size_t kMaxRecords = UINT16_MAX;

enum class MessageKind : std::uint8_t {
  records = 1,       // changes of the sender's state
  bulk_request = 2,  // "send me everything": an instance that starts or rejoins
  bulk_end = 3,      // the last message of a bulk dump (it may carry records too)
};

// Why open_message() or the replay window refused a message: each is counted apart.
enum class SyncStatus : std::uint8_t {
  ok,
  truncated,    // shorter than its header, tag or announced payload
  bad_magic,    // not a tether sync message
  bad_version,  // a version this build does not read
  bad_kind,     // an unknown message kind
  bad_length,   // bytes after the tag: the announced payload is shorter than the datagram
  bad_mac,      // the tag does not match: forged, corrupted, or another key
  bad_record,   // a record runs past the payload, or a known record is malformed
  bad_count,    // the records found are not as many as the header announces
  replayed,     // an older epoch, a repeated sequence, or one behind the window
};

const char* to_string(SyncStatus status);

// What a session entry is doing on the sender.
enum class SessionState : std::uint8_t {
  live = 1,
  // SIP: a BYE or CANCEL ended the call, which lingers `remaining_ms` for late messages.
  // RTSP: TEARDOWN or the end of the control connection. FTP: the expectation was used.
  ended = 2,
};

enum class RecordType : std::uint16_t {
  sip_call = 1,
  rtp_expectation = 2,
  ftp_expectation = 3,
  flow = 4,
  backend_health = 5,
};

// A SIP call, keyed as the session table keys it: service and Call-ID digest.
struct SipCallRecord {
  std::uint16_t service = 0;
  std::uint64_t call_id_digest = 0;
  std::uint16_t backend = 0;
  SessionState state = SessionState::live;
  std::uint32_t remaining_ms = 0;  // of its lifetime (or linger), from when it was sent
  // Counted on its backend as a call (max_sessions, least-sessions). False for a transaction
  // outside any call (OPTIONS, REGISTER: admission.methods), which the table keeps for its
  // responses without counting it. The flags byte after remaining_ms; a record without it (a
  // sender before that byte) holds a call.
  bool holds_call = true;
  bool operator==(const SipCallRecord&) const = default;
};

// An RTP or RTCP flow an RTSP SETUP announced, keyed by the client's address and port.
struct RtpExpectationRecord {
  std::uint16_t service = 0;
  parsers::IpBytes client{};  // IPv4-mapped for IPv4
  std::uint16_t client_port = 0;
  std::uint16_t backend = 0;
  SessionState state = SessionState::live;
  std::uint32_t remaining_ms = 0;
  bool operator==(const RtpExpectationRecord&) const = default;
};

// An FTP data connection a PASV or EPSV announced. The session table keys it by the client
// address and a slot that is the table's own business: the receiver takes a slot of its own.
struct FtpExpectationRecord {
  std::uint16_t service = 0;
  parsers::IpBytes client{};
  std::uint16_t backend = 0;
  SessionState state = SessionState::live;
  std::uint32_t remaining_ms = 0;
  bool operator==(const FtpExpectationRecord&) const = default;
};

// An established flow, in the flow table's client-to-VIP direction.
struct FlowRecord {
  parsers::IpBytes client{};
  parsers::IpBytes vip{};
  std::uint16_t client_port = 0;
  std::uint16_t vip_port = 0;
  std::uint8_t protocol = 0;  // IPPROTO_TCP or IPPROTO_UDP
  bool closing = false;       // FIN or RST seen: the flow lives for fin_timeout only
  std::uint16_t service = 0;
  std::uint16_t backend = 0;
  std::uint32_t remaining_ms = 0;  // of its idle lifetime
  bool operator==(const FlowRecord&) const = default;
};

// What the sender's own health checks say of one of its backends (README "Consistency across
// instances"). Sent when a verdict changes, and the whole view every second and in bulk
// dumps. `name_digest` (sync_sender_id of the backend's name) lets a receiver refuse a report
// about another backend at that index, as configurations differ during a rolling change.
struct BackendHealthRecord {
  std::uint16_t backend = 0;
  bool up = true;
  std::uint32_t name_digest = 0;
  bool operator==(const BackendHealthRecord&) const = default;
};

using Record = std::variant<SipCallRecord, RtpExpectationRecord, FtpExpectationRecord, FlowRecord,
                            BackendHealthRecord>;

// The body size of each record type in this version. A later version may append fields:
// a reader takes the fields it knows and skips the rest, as it skips unknown types.
inline constexpr std::size_t kSipCallBody = 18;
// A SIP call record without its flags byte, as the first senders wrote it: still read.
inline constexpr std::size_t kSipCallBodyWithoutFlags = 17;
inline constexpr std::size_t kRtpExpectationBody = 27;
inline constexpr std::size_t kFtpExpectationBody = 25;
inline constexpr std::size_t kFlowBody = 46;
inline constexpr std::size_t kBackendHealthBody = 7;
// The record header and body of a record; for sizing buffers.
std::size_t encoded_size(const Record& record);

struct MessageHeader {
  MessageKind kind = MessageKind::records;
  std::uint32_t sender = 0;     // the sending instance's id
  std::uint64_t epoch = 0;      // chosen when the sender starts: start_epoch()
  std::uint64_t sequence = 0;   // +1 per message within an epoch
  std::uint16_t record_count = 0;
  std::uint32_t payload_length = 0;  // bytes of records between header and tag
};

// The epoch of a sender that starts now: the wall clock in nanoseconds. It must exceed the
// epoch of the sender's previous run, or its peers would take the new run's messages for
// replays of the old one; a random number would be lower half the time. Nanoseconds also
// make it unique to the run.
std::uint64_t start_epoch();

// Fills `buffer` with one message: the header when made, records by append(), count, length
// and tag by seal(). Never writes past `buffer`.
class MessageWriter {
 public:
  // `header`'s record_count and payload_length are ignored: seal() fills them in.
  MessageWriter(std::span<std::uint8_t> buffer, const MessageHeader& header);

  // Appends the record if it fits with the tag still to come: false, and nothing written,
  // when it does not (send this message and start the next) or kMaxRecords are in.
  bool append(const Record& record);
  std::uint16_t record_count() const { return record_count_; }
  bool empty() const { return record_count_ == 0; }

  // Writes count, length and tag; returns the message, or an empty span when the buffer is
  // smaller than a header and a tag or libcrypto failed. Append nothing after.
  std::span<const std::uint8_t> seal(const HmacSha256& mac);
  // The sealed message under another sequence number, tag and all: a sender numbers its
  // messages to each receiver apart, so that a receiver's gaps mean loss. After seal().
  std::span<const std::uint8_t> reseal(std::uint64_t sequence, const HmacSha256& mac);

 private:
  // Writes the tag of the bytes so far behind them; the whole message.
  std::span<const std::uint8_t> sign(const HmacSha256& mac);

  std::span<std::uint8_t> buffer_;
  std::size_t size_ = 0;  // bytes written so far
  std::uint16_t record_count_ = 0;
};

// The records of a message open_message() accepted, in order, skipping unknown types.
class RecordCursor {
 public:
  RecordCursor() = default;
  explicit RecordCursor(parsers::ByteSpan payload) : payload_(payload) {}
  // The next known record, or false at the end.
  bool next(Record& record);

 private:
  parsers::ByteSpan payload_;
  std::size_t offset_ = 0;
};

struct ReceivedMessage {
  MessageHeader header;
  parsers::ByteSpan payload;  // the records, in the datagram's buffer
  RecordCursor records() const { return RecordCursor(payload); }
};

// Checks `datagram` whole: ok means the header and every record are well-formed and the tag
// is right, and `message` then points into `datagram`. Anything else leaves `message` unset.
SyncStatus open_message(parsers::ByteSpan datagram, const HmacSha256& mac,
                        ReceivedMessage& message);

}  // namespace tether::sync
