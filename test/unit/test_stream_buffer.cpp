// StreamBuffer (dataplane/stream_buffer.hpp): in-order appends, retransmissions, segments
// held past gaps (every order of three and four), too many gaps, overlaps (the first copy
// wins), overflow, segments beyond the window, sequence wrap-around, start(), consume() and
// reset(), and random segmentations checked byte by byte.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/stream_buffer.hpp"

using tether::dataplane::StreamBuffer;
using Result = StreamBuffer::Result;

namespace {

std::span<const std::uint8_t> bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string contents(const StreamBuffer& buffer) {
  const auto data = buffer.data();
  return {reinterpret_cast<const char*>(data.data()), data.size()};
}

// A distinct, non-repeating pattern so any misplaced byte shows.
std::string pattern(std::size_t size, std::size_t from = 0) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>('A' + (from + i) * 7 % 53);
  return s;
}

}  // namespace

TEST_CASE("stream buffer: in-order segments append from the first segment's sequence", "[stream]") {
  StreamBuffer buffer;
  CHECK(buffer.data().empty());
  CHECK_FALSE(buffer.full());

  CHECK(buffer.add(1000, bytes("GET ")) == Result::ok);
  CHECK(contents(buffer) == "GET ");
  CHECK(buffer.add(1004, bytes("/index")) == Result::ok);
  CHECK(buffer.add(1010, bytes(" RTSP/1.0\r\n")) == Result::ok);
  CHECK(contents(buffer) == "GET /index RTSP/1.0\r\n");

  // An empty segment (a bare ACK) changes nothing, wherever it claims to be.
  CHECK(buffer.add(5000, {}) == Result::ok);
  CHECK(buffer.add(1021, {}) == Result::ok);
  CHECK(contents(buffer) == "GET /index RTSP/1.0\r\n");
}

TEST_CASE("stream buffer: an empty first segment does not set the base", "[stream]") {
  StreamBuffer buffer;
  CHECK(buffer.add(10, {}) == Result::ok);
  CHECK(buffer.add(500, bytes("abc")) == Result::ok);
  CHECK(contents(buffer) == "abc");
  CHECK(buffer.add(503, bytes("d")) == Result::ok);
  CHECK(contents(buffer) == "abcd");
}

TEST_CASE("stream buffer: retransmissions add nothing twice", "[stream]") {
  StreamBuffer buffer;
  REQUIRE(buffer.add(5000, bytes("hello")) == Result::ok);

  SECTION("the same segment again") {
    CHECK(buffer.add(5000, bytes("hello")) == Result::ok);
    CHECK(contents(buffer) == "hello");
  }
  SECTION("a tail of what we have") {
    CHECK(buffer.add(5002, bytes("llo")) == Result::ok);
    CHECK(contents(buffer) == "hello");
  }
  SECTION("a segment from before the first one") {
    CHECK(buffer.add(4990, bytes("0123456789")) == Result::ok);
    CHECK(contents(buffer) == "hello");
  }
  SECTION("old bytes before the base plus bytes we have") {
    CHECK(buffer.add(4998, bytes("xxhel")) == Result::ok);
    CHECK(contents(buffer) == "hello");
  }
  SECTION("partly old, partly new: only the new tail is appended") {
    CHECK(buffer.add(5003, bytes("lo world")) == Result::ok);
    CHECK(contents(buffer) == "hello world");
    CHECK(buffer.add(4997, bytes("...hello world!")) == Result::ok);
    CHECK(contents(buffer) == "hello world!");
  }
}

TEST_CASE("stream buffer: a segment past a gap is held and merged when the gap fills", "[stream]") {
  StreamBuffer buffer;
  REQUIRE(buffer.add(100, bytes("SETUP ")) == Result::ok);
  CHECK(buffer.add(115, bytes(" RTSP/1.0")) == Result::ok);  // bytes 106..114 missing
  CHECK(contents(buffer) == "SETUP ");                       // only in-order bytes show

  SECTION("the exact gap") {
    CHECK(buffer.add(106, bytes("rtsp://x/")) == Result::ok);
    CHECK(contents(buffer) == "SETUP rtsp://x/ RTSP/1.0");
  }
  SECTION("a filler overlapping into the held segment") {
    CHECK(buffer.add(106, bytes("rtsp://x/ RT")) == Result::ok);
    CHECK(contents(buffer) == "SETUP rtsp://x/ RTSP/1.0");
  }
  SECTION("a filler reaching past the held segment") {
    CHECK(buffer.add(106, bytes("rtsp://x/ RTSP/1.0\r\n")) == Result::ok);
    CHECK(contents(buffer) == "SETUP rtsp://x/ RTSP/1.0\r\n");
  }
  SECTION("the gap filled in two pieces") {
    CHECK(buffer.add(106, bytes("rtsp")) == Result::ok);
    CHECK(contents(buffer) == "SETUP rtsp");
    CHECK(buffer.add(110, bytes("://x/")) == Result::ok);
    CHECK(contents(buffer) == "SETUP rtsp://x/ RTSP/1.0");
  }
  SECTION("the held segment retransmitted, then the gap") {
    CHECK(buffer.add(115, bytes(" RTSP/1.0")) == Result::ok);
    CHECK(contents(buffer) == "SETUP ");
    CHECK(buffer.add(106, bytes("rtsp://x/")) == Result::ok);
    CHECK(contents(buffer) == "SETUP rtsp://x/ RTSP/1.0");
  }
  SECTION("a longer copy of the held segment, then the gap") {
    CHECK(buffer.add(115, bytes(" RTSP/1.0\r\nCSeq")) == Result::ok);
    CHECK(buffer.add(115, bytes(" RTSP")) == Result::ok);  // shorter again: keeps the longer
    CHECK(buffer.add(106, bytes("rtsp://x/")) == Result::ok);
    CHECK(contents(buffer) == "SETUP rtsp://x/ RTSP/1.0\r\nCSeq");
  }
  SECTION("then appending continues after the merged bytes") {
    CHECK(buffer.add(106, bytes("rtsp://x/")) == Result::ok);
    CHECK(buffer.add(124, bytes("\r\n")) == Result::ok);
    CHECK(contents(buffer) == "SETUP rtsp://x/ RTSP/1.0\r\n");
    CHECK(buffer.add(130, bytes("late")) == Result::ok);  // a new gap may be held again
    CHECK(buffer.add(126, bytes("CSeq")) == Result::ok);
    CHECK(contents(buffer) == "SETUP rtsp://x/ RTSP/1.0\r\nCSeqlate");
  }
}

TEST_CASE("stream buffer: past kMaxHeldRanges separate gaps a segment is reported", "[stream]") {
  STATIC_REQUIRE(StreamBuffer::kMaxHeldRanges == 4);
  StreamBuffer buffer;
  REQUIRE(buffer.add(0, bytes("ab")) == Result::ok);
  REQUIRE(buffer.add(5, bytes("fg")) == Result::ok);   // held at 5..6
  REQUIRE(buffer.add(10, bytes("k")) == Result::ok);   // held at 10
  REQUIRE(buffer.add(13, bytes("n")) == Result::ok);   // held at 13
  REQUIRE(buffer.add(16, bytes("qr")) == Result::ok);  // held at 16..17: four ranges
  CHECK(buffer.add(20, bytes("u")) == Result::gap);    // a fifth range
  CHECK(buffer.add(3, bytes("d")) == Result::gap);     // before the first, touching none
  // Segments that touch or overlap a held range extend it: no new range.
  CHECK(buffer.add(7, bytes("hi")) == Result::ok);     // right after 5..6
  CHECK(buffer.add(4, bytes("efg")) == Result::ok);    // overlapping 5.. from before
  CHECK(buffer.add(11, bytes("lm")) == Result::ok);    // joins 10 and 13
  CHECK(contents(buffer) == "ab");
  // Nothing of the refused segments leaked in.
  CHECK(buffer.add(2, bytes("c")) == Result::ok);
  CHECK(contents(buffer) == "abc");
  CHECK(buffer.add(3, bytes("d")) == Result::ok);  // refused before, accepted now
  CHECK(contents(buffer) == "abcdefghi");
  CHECK(buffer.add(9, bytes("j")) == Result::ok);
  CHECK(contents(buffer) == "abcdefghijklmn");
  CHECK(buffer.add(14, bytes("op")) == Result::ok);
  CHECK(contents(buffer) == "abcdefghijklmnopqr");
  CHECK(buffer.empty() == false);
  buffer.consume(18);
  CHECK(buffer.empty());
  CHECK(buffer.next_seq() == 18);
  // The refused fifth range was never stored: its bytes come only with a new copy.
  CHECK(buffer.add(19, bytes("t")) == Result::ok);
  CHECK(buffer.add(18, bytes("s")) == Result::ok);
  CHECK(contents(buffer) == "st");
}

TEST_CASE("stream buffer: every order of three and four segments reads the same", "[stream]") {
  const std::string text = "SETUP rtsp://h/a RTSP/1.0\r\nTransport: RTP/AVP;client_port=1-2\r\n\r\n";
  for (std::size_t parts : {3u, 4u}) {
    std::vector<std::size_t> order(parts);
    for (std::size_t i = 0; i < parts; ++i) order[i] = i;
    const std::size_t piece = text.size() / parts;
    do {
      StreamBuffer buffer;
      buffer.start(0xFFFFFFF0u);  // the stream's first byte; the pieces cross the wrap
      for (std::size_t i : order) {
        const std::size_t from = i * piece;
        const std::size_t size = i + 1 == parts ? text.size() - from : piece;
        REQUIRE(buffer.add(0xFFFFFFF0u + static_cast<std::uint32_t>(from),
                           bytes(text).subspan(from, size)) == Result::ok);
        // Only a prefix of the text is ever in order.
        CHECK(text.starts_with(contents(buffer)));
      }
      CHECK(contents(buffer) == text);
    } while (std::next_permutation(order.begin(), order.end()));
  }
}

TEST_CASE("stream buffer: start() anchors the stream before its first segment arrives", "[stream]") {
  StreamBuffer buffer;
  buffer.start(1001);  // the SYN had ISN 1000
  CHECK(buffer.empty());
  CHECK(buffer.next_seq() == 1001);
  // The second segment first: held, not taken for the stream's start.
  CHECK(buffer.add(1007, bytes("rtsp://x RTSP/1.0\r\n")) == Result::ok);
  CHECK(buffer.data().empty());
  CHECK_FALSE(buffer.empty());
  // Bytes before the start are old.
  CHECK(buffer.add(995, bytes("xxxxxx")) == Result::ok);
  CHECK(buffer.data().empty());
  CHECK(buffer.add(999, bytes("xxSETUP ")) == Result::ok);
  CHECK(contents(buffer) == "SETUP rtsp://x RTSP/1.0\r\n");
  CHECK(buffer.next_seq() == 1001 + 25);
  // start() again forgets everything.
  buffer.start(7);
  CHECK(buffer.empty());
  CHECK(buffer.add(8, bytes("b")) == Result::ok);
  CHECK(buffer.add(7, bytes("a")) == Result::ok);
  CHECK(contents(buffer) == "ab");
}

TEST_CASE("stream buffer: the first copy of a byte wins", "[stream]") {
  StreamBuffer buffer;
  buffer.start(0);
  REQUIRE(buffer.add(4, bytes("EFGH")) == Result::ok);
  // A different copy of held bytes, overlapping and extending them: only new bytes land.
  CHECK(buffer.add(2, bytes("xxxxxxIJ")) == Result::ok);
  CHECK(buffer.add(0, bytes("ABcd")) == Result::ok);
  CHECK(contents(buffer) == "ABxxEFGHIJ");
  // In-order bytes are never rewritten.
  CHECK(buffer.add(0, bytes("zzzzzzzzzzKL")) == Result::ok);
  CHECK(contents(buffer) == "ABxxEFGHIJKL");
}

TEST_CASE("stream buffer: a segment beyond the window is refused whole", "[stream]") {
  constexpr std::uint32_t kCap = StreamBuffer::kCapacity;
  StreamBuffer buffer;
  buffer.start(100);
  REQUIRE(buffer.add(110, bytes("held")) == Result::ok);
  CHECK(buffer.add(100 + kCap, bytes("x")) == Result::overflow);         // starts past the end
  CHECK(buffer.add(100 + kCap - 1, bytes("xy")) == Result::overflow);    // ends past it
  CHECK(buffer.add(100 + 0x7FFFFFFFu, bytes("far")) == Result::overflow);
  CHECK(buffer.add(100 + kCap - 1, bytes("z")) == Result::ok);           // the last byte: held
  CHECK(buffer.add(100, bytes("0123456789")) == Result::ok);
  CHECK(contents(buffer) == "0123456789held");
}

TEST_CASE("stream buffer: random segmentations never put a wrong byte in order", "[stream]") {
  const std::string text = pattern(StreamBuffer::kCapacity * 3);
  std::mt19937 rng(20261204);
  for (int round = 0; round < 300; ++round) {
    const auto isn = static_cast<std::uint32_t>(rng());
    StreamBuffer buffer;
    buffer.start(isn);
    std::size_t read = 0;  // bytes of `text` consumed
    // Segments of 1..300 bytes, sent in windows of up to 6, each window shuffled, some
    // segments repeated, some overlapping their neighbours, some with other bytes.
    std::size_t sent = 0;
    while (sent < text.size()) {
      std::vector<std::pair<std::size_t, std::size_t>> window;
      for (int i = 0; i < 1 + static_cast<int>(rng() % 6) && sent < text.size(); ++i) {
        const std::size_t size = std::min<std::size_t>(1 + rng() % 300, text.size() - sent);
        window.emplace_back(sent, size);
        if (rng() % 5 == 0) window.emplace_back(sent, size);
        sent += size;
      }
      std::shuffle(window.begin(), window.end(), rng);
      for (auto [from, size] : window) {
        std::size_t start = from;
        if (rng() % 4 == 0 && start > 0) start -= std::min<std::size_t>(start, rng() % 50);
        const std::size_t end = from + size;
        std::string copy = text.substr(start, end - start);
        if (rng() % 7 == 0 && start < read) copy[0] = '!';  // a different copy of old bytes
        const Result result = buffer.add(isn + static_cast<std::uint32_t>(start), bytes(copy));
        if (result != Result::ok) {
          // Refused: the sender repeats it (a retransmission), as TCP would.
          continue;
        }
        const std::string in_order = contents(buffer);
        REQUIRE(in_order == text.substr(read, in_order.size()));
        if (in_order.size() > 700) {
          buffer.consume(static_cast<std::uint32_t>(in_order.size() / 2));
          read += in_order.size() / 2;
        }
      }
      // Whatever was refused comes again, in order now.
      std::sort(window.begin(), window.end());
      for (auto [from, size] : window)
        REQUIRE(buffer.add(isn + static_cast<std::uint32_t>(from), bytes(text).subspan(from, size)) ==
                Result::ok);
      const std::string in_order = contents(buffer);
      REQUIRE(in_order == text.substr(read, in_order.size()));
      REQUIRE(read + in_order.size() == sent);
      buffer.consume(static_cast<std::uint32_t>(in_order.size()));
      read += in_order.size();
      REQUIRE(buffer.empty());
      REQUIRE(buffer.next_seq() == isn + static_cast<std::uint32_t>(read));
    }
  }
}

TEST_CASE("stream buffer: more than kCapacity bytes is an overflow", "[stream]") {
  constexpr std::uint32_t kCap = StreamBuffer::kCapacity;
  STATIC_REQUIRE(kCap == 2048);
  const std::string full = pattern(kCap);

  SECTION("exactly full is fine; one more byte overflows") {
    StreamBuffer buffer;
    CHECK(buffer.add(7, bytes(full).first(1000)) == Result::ok);
    CHECK(buffer.add(1007, bytes(full).subspan(1000)) == Result::ok);
    CHECK(buffer.full());
    CHECK(contents(buffer) == full);
    CHECK(buffer.add(7 + kCap, bytes("x")) == Result::overflow);
    CHECK(contents(buffer) == full);
    // A retransmission of data it has is still fine.
    CHECK(buffer.add(7 + kCap - 10, bytes(full).subspan(kCap - 10)) == Result::ok);
  }
  SECTION("a first segment larger than the buffer") {
    StreamBuffer buffer;
    const std::string big = pattern(kCap + 1);
    CHECK(buffer.add(0, bytes(big)) == Result::overflow);
    CHECK(buffer.data().empty());
  }
  SECTION("a segment straddling the end") {
    StreamBuffer buffer;
    REQUIRE(buffer.add(0, bytes(full).first(kCap - 4)) == Result::ok);
    CHECK(buffer.add(kCap - 4, bytes("12345")) == Result::overflow);
    CHECK(contents(buffer) == full.substr(0, kCap - 4));
    CHECK(buffer.add(kCap - 4, bytes("1234")) == Result::ok);
    CHECK(buffer.full());
    CHECK(contents(buffer) == full.substr(0, kCap - 4) + "1234");
  }
  SECTION("a segment past a gap that would end beyond the buffer") {
    StreamBuffer buffer;
    REQUIRE(buffer.add(0, bytes("a")) == Result::ok);
    CHECK(buffer.add(kCap - 5, bytes("0123456789")) == Result::overflow);
    CHECK(buffer.add(kCap - 5, bytes("01234")) == Result::ok);  // ends exactly at the end: held
    CHECK(contents(buffer) == "a");
  }
  SECTION("consuming makes room again") {
    StreamBuffer buffer;
    REQUIRE(buffer.add(0, bytes(full)) == Result::ok);
    buffer.consume(10);
    CHECK_FALSE(buffer.full());
    CHECK(buffer.add(kCap, bytes("0123456789")) == Result::ok);
    CHECK(buffer.full());
    CHECK(contents(buffer) == full.substr(10) + "0123456789");
  }
}

TEST_CASE("stream buffer: sequence numbers wrap around at 2^32", "[stream]") {
  StreamBuffer buffer;
  REQUIRE(buffer.add(0xFFFFFFFCu, bytes("abcd")) == Result::ok);
  CHECK(buffer.add(0, bytes("efgh")) == Result::ok);
  CHECK(contents(buffer) == "abcdefgh");

  SECTION("a segment straddling the wrap") {
    StreamBuffer other;
    REQUIRE(other.add(0xFFFFFFFEu, bytes("xy")) == Result::ok);
    CHECK(other.add(0xFFFFFFFFu, bytes("yz0")) == Result::ok);  // 0xFFFFFFFF, 0, 1
    CHECK(contents(other) == "xyz0");
  }
  SECTION("a held segment past the wrap") {
    CHECK(buffer.add(8, bytes("mn")) == Result::ok);  // offset 12
    CHECK(contents(buffer) == "abcdefgh");
    CHECK(buffer.add(4, bytes("ijkl")) == Result::ok);
    CHECK(contents(buffer) == "abcdefghijklmn");
  }
  SECTION("an old retransmission from before the wrap") {
    CHECK(buffer.add(0xFFFFFFF0u, bytes("0123456789ABCDEFab")) == Result::ok);
    CHECK(buffer.add(0xFFFFFFFDu, bytes("bcd")) == Result::ok);
    CHECK(contents(buffer) == "abcdefgh");
    CHECK(buffer.add(0xFFFFFFFEu, bytes("cdefghij")) == Result::ok);
    CHECK(contents(buffer) == "abcdefghij");
  }
  SECTION("consume across the wrap") {
    buffer.consume(6);
    CHECK(contents(buffer) == "gh");
    CHECK(buffer.add(4, bytes("ij")) == Result::ok);
    CHECK(contents(buffer) == "ghij");
    CHECK(buffer.add(1, bytes("fghi")) == Result::ok);  // old bytes (1 = 'f') are trimmed
    CHECK(contents(buffer) == "ghij");
  }
}

TEST_CASE("stream buffer: consume shifts the data and a held segment", "[stream]") {
  StreamBuffer buffer;
  REQUIRE(buffer.add(1000, bytes("OPTIONS * RTSP/1.0\r\n\r\nDESC")) == Result::ok);

  SECTION("consumed bytes leave, the base advances") {
    buffer.consume(22);
    CHECK(contents(buffer) == "DESC");
    CHECK(buffer.add(1026, bytes("RIBE")) == Result::ok);
    CHECK(contents(buffer) == "DESCRIBE");
    // Consumed bytes retransmitted are old now.
    CHECK(buffer.add(1000, bytes("OPTIONS * RTSP/1.0\r\n\r\nDESCRIBE rtsp")) == Result::ok);
    CHECK(contents(buffer) == "DESCRIBE rtsp");
  }
  SECTION("consuming more than there is empties it") {
    buffer.consume(5000);
    CHECK(buffer.data().empty());
    CHECK(buffer.add(1026, bytes("X")) == Result::ok);
    CHECK(contents(buffer) == "X");
  }
  SECTION("a held segment moves with the data") {
    CHECK(buffer.add(1030, bytes("rtsp://h/")) == Result::ok);  // held: 1026..1029 missing
    buffer.consume(22);
    CHECK(contents(buffer) == "DESC");
    CHECK(buffer.add(1026, bytes("RIBE")) == Result::ok);
    CHECK(contents(buffer) == "DESCRIBErtsp://h/");
  }
  SECTION("consuming everything in order keeps the held segment") {
    CHECK(buffer.add(1030, bytes(" rtsp")) == Result::ok);
    buffer.consume(26);
    CHECK(buffer.data().empty());
    CHECK(buffer.add(1026, bytes("RIBE")) == Result::ok);
    CHECK(contents(buffer) == "RIBE rtsp");
  }
  SECTION("consume(0) changes nothing") {
    buffer.consume(0);
    CHECK(contents(buffer) == "OPTIONS * RTSP/1.0\r\n\r\nDESC");
  }
}

TEST_CASE("stream buffer: reset forgets data, base and held segment", "[stream]") {
  StreamBuffer buffer;
  REQUIRE(buffer.add(10, bytes("abc")) == Result::ok);
  REQUIRE(buffer.add(20, bytes("held")) == Result::ok);
  buffer.reset();
  CHECK(buffer.data().empty());
  CHECK_FALSE(buffer.full());

  // A new first segment sets a new base, even one "before" the old base.
  CHECK(buffer.add(3, bytes("new")) == Result::ok);
  CHECK(contents(buffer) == "new");
  // The old held segment is gone: a new gap is held, not reported as a second one...
  CHECK(buffer.add(10, bytes("far")) == Result::ok);
  // ... and filling up to the old held offset does not resurrect the old bytes.
  CHECK(buffer.add(6, bytes("1234")) == Result::ok);
  CHECK(contents(buffer) == "new1234far");
  CHECK(buffer.add(13, bytes("xxxxxxxxxx")) == Result::ok);
  CHECK(contents(buffer) == "new1234farxxxxxxxxxx");

  // After an overflow the caller resets and starts over.
  const std::string big = pattern(StreamBuffer::kCapacity);
  CHECK(buffer.add(23, bytes(big)) == Result::overflow);
  buffer.reset();
  CHECK(buffer.add(9999, bytes(big)) == Result::ok);
  CHECK(buffer.full());
  CHECK(contents(buffer) == big);
}
