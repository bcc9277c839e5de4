#include "parsers/sip.hpp"

#include "test/unit/parser_samples.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>

using namespace std::string_literals;
using namespace std::string_view_literals;
namespace sip = tether::parsers::sip;
using tether::parsers::Status;

using tether::test::bytes;
using tether::test::for_each_prefix;

namespace {

sip::Message parse(std::string_view s, sip::Framing how = sip::Framing::datagram) {
  return sip::parse(bytes(s), how);
}

// A message with the right Content-Length for its body.
std::string with_body(std::string head, std::string_view body) {
  return head + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

const std::string invite_body =
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.101\r\n"
    "t=0 0\r\n"
    "m=audio 49172 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n";

const std::string invite = with_body(
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY\r\n"
    "Supported: replaces, timer\r\n"
    "User-Agent: Linphone/5.2.0\r\n"
    "Content-Type: application/sdp\r\n",
    invite_body);

// What sipp's built-in uac scenario sends (compact spacing and all).
const std::string sipp_invite = with_body(
    "INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.1.1:5061;branch=z9hG4bK-4242-1-0\r\n"
    "From: sipp <sip:sipp@127.0.1.1:5061>;tag=4242SIPpTag001\r\n"
    "To: service <sip:service@127.0.0.1:5060>\r\n"
    "Call-ID: 1-4242@127.0.1.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: sip:sipp@127.0.1.1:5061\r\n"
    "Max-Forwards: 70\r\n"
    "Subject: Performance Test\r\n"
    "Content-Type: application/sdp\r\n",
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.1.1\r\ns=-\r\nc=IN IP4 127.0.1.1\r\n"
    "t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n");

const std::string ok_response =
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP server10.biloxi.example.com;branch=z9hG4bKnashds8;received=192.0.2.3\r\n"
    "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:bob@192.0.2.4>\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

const std::string compact_bye =
    "BYE sip:alice@pc33.atlanta.example.com SIP/2.0\r\n"
    "v: SIP/2.0/TCP 192.0.2.4;branch=z9hG4bKnashds10\r\n"
    "f: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    "t: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 231 BYE\r\n"
    "m: <sip:bob@192.0.2.4>\r\n"
    "c: text/plain\r\n"
    "l: 0\r\n"
    "\r\n";

// Headers that must be followed by "\r\n" and an end: fills in the mandatory ones.
std::string request_with(std::string_view headers) {
  return "OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n"
         "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n"
         "CSeq: 63104 OPTIONS\r\n" +
         std::string(headers) + "Content-Length: 0\r\n\r\n";
}

}  // namespace

TEST_CASE("sip: INVITE with SDP body", "[sip]") {
  sip::Message m = parse(invite);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.reason == sip::Reason::none);
  CHECK(m.kind == sip::Kind::request);
  CHECK(m.method == sip::Method::INVITE);
  CHECK(m.method_name == "INVITE");
  CHECK(m.request_uri == "sip:bob@biloxi.example.com");
  CHECK(m.call_id == "a84b4c76e66710@pc33.atlanta.example.com");
  CHECK_FALSE(m.call_id_folded);
  CHECK(m.has_cseq);
  CHECK(m.cseq == 314159);
  CHECK(m.cseq_method == sip::Method::INVITE);
  CHECK(m.cseq_method_name == "INVITE");
  CHECK(m.has_content_length);
  CHECK(m.content_length == invite_body.size());
  CHECK(m.body == invite_body);
  CHECK(m.size == invite.size());
  CHECK(m.header_count == 12);
  CHECK(sip::find_header(m, "Max-Forwards") == "70");
  CHECK(sip::find_header(m, "from") == "Alice <sip:alice@atlanta.example.com>;tag=1928301774");
  CHECK(sip::find_header(m, "Content-Type") == "application/sdp");
  CHECK(sip::find_header(m, "c") == "application/sdp");
  CHECK(sip::find_header(m, "v") == "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds");
  CHECK_FALSE(sip::find_header(m, "Subject").has_value());
  CHECK_FALSE(sip::find_header(m, "").has_value());
}

TEST_CASE("sip: sipp uac INVITE", "[sip]") {
  sip::Message m = parse(sipp_invite);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.request_uri == "sip:service@127.0.0.1:5060");
  CHECK(m.call_id == "1-4242@127.0.1.1");
  CHECK(m.cseq == 1);
  CHECK(sip::find_header(m, "Subject") == "Performance Test");
  CHECK(m.body.starts_with("v=0\r\n"));
  CHECK(m.size == sipp_invite.size());
}

TEST_CASE("sip: response status line", "[sip]") {
  sip::Message m = parse(ok_response);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.kind == sip::Kind::response);
  CHECK(m.status_code == 200);
  CHECK(m.reason_phrase == "OK");
  CHECK(m.call_id == "a84b4c76e66710@pc33.atlanta.example.com");
  CHECK(m.cseq_method == sip::Method::INVITE);
  CHECK(m.body.empty());

  auto ringing = parse("SIP/2.0 180 Ringing\r\ni: x@y\r\n\r\n");
  CHECK(ringing.status == Status::parsed);
  CHECK(ringing.status_code == 180);
  auto no_phrase = parse("SIP/2.0 603\r\ni: x@y\r\n\r\n");
  CHECK(no_phrase.status == Status::parsed);
  CHECK(no_phrase.status_code == 603);
  CHECK(no_phrase.reason_phrase.empty());
  auto lower_case_version = parse("sip/2.0 486 Busy Here\r\ni: x@y\r\n\r\n");
  CHECK(lower_case_version.status == Status::parsed);
  CHECK(lower_case_version.reason_phrase == "Busy Here");
}

TEST_CASE("sip: compact header forms", "[sip]") {
  sip::Message m = parse(compact_bye);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.method == sip::Method::BYE);
  CHECK(m.call_id == "a84b4c76e66710@pc33.atlanta.example.com");
  CHECK(m.has_content_length);
  CHECK(m.content_length == 0);
  CHECK(sip::find_header(m, "From") == "Bob <sip:bob@biloxi.example.com>;tag=a6c85cf");
  CHECK(sip::find_header(m, "TO") == "Alice <sip:alice@atlanta.example.com>;tag=1928301774");
  CHECK(sip::find_header(m, "Via") == "SIP/2.0/TCP 192.0.2.4;branch=z9hG4bKnashds10");
  CHECK(sip::find_header(m, "Contact") == "<sip:bob@192.0.2.4>");
  CHECK(sip::find_header(m, "Content-Type") == "text/plain");
  CHECK(sip::find_header(m, "Call-ID") == "a84b4c76e66710@pc33.atlanta.example.com");
  CHECK(sip::expand_compact_name("i") == "Call-ID");
  CHECK(sip::expand_compact_name("L") == "Content-Length");
  CHECK(sip::expand_compact_name("q") == "q");
  CHECK(sip::expand_compact_name("From") == "From");
}

TEST_CASE("sip: Call-ID name in any case, blanks around the colon", "[sip]") {
  for (std::string_view header : {"call-id: abc@h\r\n"sv, "CALL-ID: abc@h\r\n"sv,
                                  "Call-Id:abc@h\r\n"sv, "Call-ID  :   abc@h  \r\n"sv,
                                  "Call-ID\t:\tabc@h\t\r\n"sv, "I: abc@h\r\n"sv, "i:abc@h\r\n"sv}) {
    INFO(header);
    std::string text = request_with(header);
    sip::Message m = parse(text);
    REQUIRE(m.status == Status::parsed);
    CHECK(m.call_id == "abc@h");
  }
}

TEST_CASE("sip: folded header values", "[sip]") {
  // Folding before the value leaves nothing to unfold.
  std::string leading_text = request_with("Call-ID:\r\n   abc@h\r\n");
  sip::Message leading = parse(leading_text);
  REQUIRE(leading.status == Status::parsed);
  CHECK(leading.call_id == "abc@h");
  CHECK_FALSE(leading.call_id_folded);

  std::string folded_text = request_with(
      "Call-ID: abc\r\n\t@h\r\nSubject: I know you're\r\n there,\r\n    pick up!\r\n");
  sip::Message folded = parse(folded_text);
  REQUIRE(folded.status == Status::parsed);
  CHECK(folded.call_id == "abc\r\n\t@h");
  CHECK(folded.call_id_folded);
  std::string plain_text = request_with("Call-ID: abc @h\r\n");
  sip::Message plain = parse(plain_text);
  REQUIRE(plain.status == Status::parsed);
  CHECK(sip::hash_unfolded(folded.call_id) == sip::hash_unfolded(plain.call_id));
  CHECK(sip::hash_unfolded(folded.call_id, 7) == sip::hash_unfolded(plain.call_id, 7));
  CHECK(sip::equal_unfolded(folded.call_id, plain.call_id));

  auto subject = sip::find_header(folded, "s");
  REQUIRE(subject.has_value());
  CHECK(*subject == "I know you're\r\n there,\r\n    pick up!");
  CHECK(sip::equal_unfolded(*subject, "I know you're there, pick up!"));
  CHECK_FALSE(sip::equal_unfolded(*subject, "I know you're there, pick up"));
  CHECK(sip::hash_unfolded(*subject) == sip::hash_unfolded("I know you're there, pick up!"));
}

TEST_CASE("sip: Call-ID digest", "[sip]") {
  CHECK(sip::hash_unfolded("a@b") != sip::hash_unfolded("a@c"));
  CHECK(sip::hash_unfolded("a@b") != sip::hash_unfolded("A@b"));  // case-sensitive
  CHECK(sip::hash_unfolded("a@b", 1) != sip::hash_unfolded("a@b", 2));
  CHECK(sip::hash_unfolded("  a@b \t") == sip::hash_unfolded("a@b"));
  CHECK(sip::hash_unfolded("") == sip::hash_unfolded(" \r\n "));
}

TEST_CASE("sip: duplicate Call-ID", "[sip]") {
  auto same = parse(request_with("Call-ID: abc@h\r\ni: abc@h\r\n"));
  CHECK(same.status == Status::parsed);
  auto same_when_unfolded = parse(request_with("Call-ID: abc @h\r\ni: abc\r\n @h\r\n"));
  CHECK(same_when_unfolded.status == Status::parsed);
  auto different = parse(request_with("Call-ID: abc@h\r\ni: abd@h\r\n"));
  CHECK(different.status == Status::malformed);
  CHECK(different.reason == sip::Reason::call_id_conflict);
  auto case_differs = parse(request_with("Call-ID: abc@h\r\nCall-ID: ABC@h\r\n"));
  CHECK(case_differs.reason == sip::Reason::call_id_conflict);
}

TEST_CASE("sip: missing, empty and long Call-ID", "[sip]") {
  std::string missing_text = request_with("");
  auto missing = parse(missing_text);
  CHECK(missing.status == Status::malformed);
  CHECK(missing.reason == sip::Reason::call_id_missing);
  // Everything else was read, so the caller may still use it.
  CHECK(missing.method == sip::Method::OPTIONS);
  CHECK(missing.cseq == 63104);
  CHECK(sip::find_header(missing, "Via").has_value());

  auto empty = parse(request_with("Call-ID:   \r\n"));
  CHECK(empty.reason == sip::Reason::call_id_empty);

  // RFC 3261 sets no limit: a Call-ID as long as the datagram holds is the call's key, whole.
  for (std::size_t size : {256u, 257u, 1000u, 8000u, 65000u}) {
    std::string long_id(size, 'x');
    long_id[size / 2] = '@';
    std::string text = request_with("Call-ID: " + long_id + "\r\n");
    auto long_call = parse(text);
    REQUIRE(long_call.status == Status::parsed);
    CHECK(long_call.call_id == long_id);
    CHECK(long_call.call_id.data() >= text.data());  // a view into the message: no copy
    CHECK(long_call.call_id.data() + size <= text.data() + text.size());
  }
}

TEST_CASE("sip: long Call-IDs digest whole, folded or not", "[sip]") {
  for (std::size_t size : {257u, 1000u, 1001u, 8000u, 8003u}) {
    std::string id(size, 'a');
    for (std::size_t i = 0; i < size; ++i) id[i] = static_cast<char>('!' + i * 7 % 90);
    const std::uint64_t digest = sip::hash_unfolded(id, 5);
    // Every byte counts, the last and the first included.
    for (std::size_t at : {std::size_t{0}, std::size_t{255}, std::size_t{256}, size / 2, size - 1}) {
      std::string changed = id;
      changed[at] = changed[at] == 'z' ? 'y' : 'z';
      CHECK(sip::hash_unfolded(changed, 5) != digest);
      CHECK_FALSE(sip::equal_unfolded(changed, id));
    }
    CHECK(sip::hash_unfolded(id + "x", 5) != digest);
    CHECK(sip::hash_unfolded(id.substr(0, size - 1), 5) != digest);

    // The same Call-ID with blanks in it, folded over several lines at several places.
    std::string spaced = id;
    spaced[100] = ' ';
    spaced[size - 50] = ' ';
    std::string folded = spaced;
    folded.replace(size - 50, 1, "\r\n\t  ");
    folded.replace(100, 1, "\r\n ");
    std::string plain_text = request_with("Call-ID: " + spaced + "\r\n");
    std::string folded_text = request_with("i:\r\n " + folded + "\r\n");
    auto plain = parse(plain_text);
    auto folded_message = parse(folded_text);
    REQUIRE(plain.status == Status::parsed);
    REQUIRE(folded_message.status == Status::parsed);
    CHECK(folded_message.call_id_folded);
    CHECK(folded_message.call_id == folded);
    CHECK(sip::equal_unfolded(folded_message.call_id, plain.call_id));
    CHECK(sip::hash_unfolded(folded_message.call_id, 5) == sip::hash_unfolded(plain.call_id, 5));
    CHECK(sip::hash_unfolded(folded_message.call_id, 5) != digest);
    // Repeated long Call-ID headers, one folded: one call.
    auto repeated = parse(request_with("Call-ID: " + spaced + "\r\ni: " + folded + "\r\n"));
    CHECK(repeated.status == Status::parsed);
  }
}

TEST_CASE("sip: repeated long Call-IDs are compared in linear time", "[sip]") {
  // Without a length cap, each Call-ID header is compared with the one before it, so each
  // value is read at most twice: here the first spans 20,000 blanks and is read once, not by
  // each of the 59 that follow (which would be 59 x 20,000 steps).
  std::string wide = "x" + std::string(20000, ' ') + "y";
  std::string headers = "Call-ID: " + wide + "\r\n";
  for (int i = 0; i < 59; ++i) headers += "i: x y\r\n";
  const std::string text = request_with(headers);
  auto message = parse(text);
  CHECK(message.status == Status::parsed);
  CHECK(message.call_id == "x y");
}

TEST_CASE("sip: header cap", "[sip]") {
  // request_with() adds Via, CSeq, Content-Length; Call-ID makes four.
  auto headers = [](std::size_t extra) {
    std::string out = "Call-ID: a@b\r\n";
    for (std::size_t i = 0; i < extra; ++i) out += "X-Filler-" + std::to_string(i) + ": y\r\n";
    return request_with(out);
  };
  auto at_cap = parse(headers(sip::max_headers - 4));
  CHECK(at_cap.status == Status::parsed);
  CHECK(at_cap.header_count == sip::max_headers);
  auto over_cap = parse(headers(sip::max_headers - 3));
  CHECK(over_cap.status == Status::malformed);
  CHECK(over_cap.reason == sip::Reason::too_many_headers);
}

TEST_CASE("sip: Content-Length", "[sip]") {
  std::string_view text = "MESSAGE sip:a@b SIP/2.0\r\ni: x\r\nl: 5\r\n\r\nhello, and more";
  auto m = parse(text);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.body == "hello");  // a datagram's extra bytes are not the body
  CHECK(m.size == text.find("hello") + 5);

  auto no_length = parse("MESSAGE sip:a@b SIP/2.0\r\ni: x\r\n\r\nhello");
  REQUIRE(no_length.status == Status::parsed);
  CHECK_FALSE(no_length.has_content_length);
  CHECK(no_length.body == "hello");

  for (std::string_view bad : {"l: five\r\n"sv, "l: -1\r\n"sv, "l: 4294967296\r\n"sv,
                               "l: 5 5\r\n"sv, "l:\r\n"sv, "l: 5\r\nContent-Length: 6\r\n"sv}) {
    INFO(bad);
    auto m2 = parse("MESSAGE sip:a@b SIP/2.0\r\ni: x\r\n"s + std::string(bad) + "\r\nhello");
    CHECK(m2.status == Status::malformed);
    CHECK(m2.reason == sip::Reason::bad_content_length);
  }
  auto repeated = parse("MESSAGE sip:a@b SIP/2.0\r\ni: x\r\nl: 5\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(repeated.status == Status::parsed);

  auto truncated = parse("MESSAGE sip:a@b SIP/2.0\r\ni: x\r\nl: 50\r\n\r\nhello");
  CHECK(truncated.status == Status::malformed);
  CHECK(truncated.reason == sip::Reason::body_truncated);
}

TEST_CASE("sip: CSeq", "[sip]") {
  auto m = parse("ACK sip:a@b SIP/2.0\r\ni: x\r\nCSeq:   7 \t ACK  \r\n\r\n");
  REQUIRE(m.status == Status::parsed);
  CHECK(m.cseq == 7);
  CHECK(m.cseq_method == sip::Method::ACK);
  CHECK(m.cseq_method_name == "ACK");

  auto no_cseq = parse("ACK sip:a@b SIP/2.0\r\ni: x\r\n\r\n");
  CHECK(no_cseq.status == Status::parsed);
  CHECK_FALSE(no_cseq.has_cseq);

  for (std::string_view bad : {"INVITE"sv, "1"sv, "1INVITE"sv, "x INVITE"sv, "99999999999 ACK"sv,
                               "1 IN(VITE"sv}) {
    INFO(bad);
    auto m2 = parse("ACK sip:a@b SIP/2.0\r\ni: x\r\nCSeq: "s + std::string(bad) + "\r\n\r\n");
    CHECK(m2.status == Status::malformed);
    CHECK(m2.reason == sip::Reason::bad_cseq);
  }
}

TEST_CASE("sip: every method", "[sip]") {
  const std::pair<std::string_view, sip::Method> methods[] = {
      {"INVITE", sip::Method::INVITE},       {"ACK", sip::Method::ACK},
      {"BYE", sip::Method::BYE},             {"CANCEL", sip::Method::CANCEL},
      {"REGISTER", sip::Method::REGISTER},   {"OPTIONS", sip::Method::OPTIONS},
      {"PRACK", sip::Method::PRACK},         {"SUBSCRIBE", sip::Method::SUBSCRIBE},
      {"NOTIFY", sip::Method::NOTIFY},       {"PUBLISH", sip::Method::PUBLISH},
      {"INFO", sip::Method::INFO},           {"REFER", sip::Method::REFER},
      {"MESSAGE", sip::Method::MESSAGE},     {"UPDATE", sip::Method::UPDATE},
      {"invite", sip::Method::other},        {"X-FOO.bar", sip::Method::other},
  };
  for (auto [name, id] : methods) {
    INFO(name);
    std::string text = std::string(name) + " sip:a@b SIP/2.0\r\ni: x\r\nCSeq: 2 " +
                       std::string(name) + "\r\n\r\n";
    auto m = parse(text);
    REQUIRE(m.status == Status::parsed);
    CHECK(m.method == id);
    CHECK(m.cseq_method == id);
    CHECK(m.method_name == name);
    if (id != sip::Method::other) CHECK(sip::to_string(id) == name);
  }
  CHECK(sip::to_string(sip::Method::other) == "other"sv);
}

TEST_CASE("sip: keepalives", "[sip]") {
  for (std::string_view ping : {"\r\n\r\n"sv, "\r\n"sv, "\n"sv}) {
    for (auto how : {sip::Framing::datagram, sip::Framing::stream}) {
      auto m = parse(ping, how);
      CHECK(m.status == Status::parsed);
      CHECK(m.kind == sip::Kind::keepalive);
      CHECK(m.size == ping.size());
    }
  }
  auto empty = parse("");
  CHECK(empty.status == Status::not_this_protocol);
  CHECK(parse("", sip::Framing::stream).status == Status::need_more);
}

TEST_CASE("sip: not SIP", "[sip]") {
  for (std::string_view other :
       {"GET / HTTP/1.1\r\nHost: a\r\n\r\n"sv, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"sv,
        "\0\0\0\0"sv, "hello\r\n"sv, "SETUP rtsp://a/b RTSP/1.0\r\nCSeq: 1\r\n\r\n"sv,
        "INVITE sip:a@b\r\n\r\n"sv, "\x80\x00\x12\x34"sv}) {
    INFO(other);
    CHECK(parse(other).status == Status::not_this_protocol);
    CHECK(parse(other, sip::Framing::stream).status == Status::not_this_protocol);
  }
  // A stream's first bytes that can still become a start line wait for more.
  CHECK(parse("INVI", sip::Framing::stream).status == Status::need_more);
  CHECK(parse("SI", sip::Framing::stream).status == Status::need_more);
  CHECK(parse("IN\x01", sip::Framing::stream).status == Status::not_this_protocol);
}

TEST_CASE("sip: bad start lines", "[sip]") {
  struct sample {
    std::string_view line;
    sip::Reason why;
  };
  const sample samples[] = {
      {"INVITE sip:a@b SIP/3.0", sip::Reason::bad_version},
      {"INVITE sip:a@b SIP/2.00", sip::Reason::bad_version},
      {"SIP/1.0 200 OK", sip::Reason::bad_version},
      {"SIP/2.0", sip::Reason::bad_status_line},
      {"SIP/2.0 20 OK", sip::Reason::bad_status_line},
      {"SIP/2.0 2000 OK", sip::Reason::bad_status_line},
      {"SIP/2.0 099 Odd", sip::Reason::bad_status_line},
      {"SIP/2.0 700 Odd", sip::Reason::bad_status_line},
      {"SIP/2.0 200OK", sip::Reason::bad_status_line},
      {"SIP/2.0 abc OK", sip::Reason::bad_status_line},
      {"INVITE  SIP/2.0", sip::Reason::bad_request_line},
      {"INVITE sip:a b SIP/2.0", sip::Reason::bad_request_line},
      {"INV@ITE sip:a@b SIP/2.0", sip::Reason::bad_request_line},
      {"INVITE sip:a\x01@b SIP/2.0", sip::Reason::bad_request_line},
      {"INV\0TE sip:a@b SIP/2.0"sv, sip::Reason::bad_request_line},
      {" sip:a@b SIP/2.0", sip::Reason::bad_request_line},
  };
  for (auto [line, why] : samples) {
    INFO(line);
    auto m = parse(std::string(line) + "\r\ni: x\r\n\r\n");
    CHECK(m.status == Status::malformed);
    CHECK(m.reason == why);
  }
}

// The method and the URI are checked in words and vectors, with a step for the last bytes:
// a bad byte must be found at every offset of every length.
TEST_CASE("sip: a bad byte anywhere in the method or the request URI", "[sip]") {
  for (std::size_t size = 1; size <= 40; ++size) {
    for (std::size_t at = 0; at < size; ++at) {
      for (char bad : {'\x01', '\x7f', '\0'}) {
        std::string uri = "sip:" + std::string(size, 'u');
        uri[4 + at] = bad;
        INFO("URI size " << size << ", bad byte " << int(bad) << " at " << at);
        auto m = parse("INVITE " + uri + " SIP/2.0\r\ni: x\r\n\r\n");
        CHECK(m.reason == sip::Reason::bad_request_line);
      }
      for (char bad : {'@', '\x01', '/'}) {
        std::string method(size, 'M');
        method[at] = bad;
        INFO("method size " << size << ", bad byte " << int(bad) << " at " << at);
        auto m = parse(method + " sip:a@b SIP/2.0\r\ni: x\r\n\r\n");
        CHECK(m.reason == sip::Reason::bad_request_line);
      }
    }
    auto good = parse(std::string(size, 'M') + " sip:" + std::string(size, 'u') + " SIP/2.0\r\ni: x\r\n\r\n");
    CHECK(good.status == Status::parsed);
  }
}

TEST_CASE("sip: bad header lines", "[sip]") {
  struct sample {
    std::string_view headers;
    sip::Reason why;
  };
  const sample samples[] = {
      {"i: x\r\nNo colon here\r\n", sip::Reason::header_without_colon},
      {"i: x\r\nBad Name: y\r\n", sip::Reason::bad_header_name},
      {"i: x\r\n: y\r\n", sip::Reason::bad_header_name},
      {"i: x\r\nX\0Y: y\r\n"sv, sip::Reason::bad_header_name},
      {" folded: first\r\ni: x\r\n", sip::Reason::continuation_without_header},
  };
  for (auto [headers, why] : samples) {
    INFO(headers);
    auto m = parse("BYE sip:a@b SIP/2.0\r\n" + std::string(headers) + "\r\n");
    CHECK(m.status == Status::malformed);
    CHECK(m.reason == why);
  }
  auto unterminated = parse("BYE sip:a@b SIP/2.0\r\ni: x\r\n");
  CHECK(unterminated.status == Status::malformed);
  CHECK(unterminated.reason == sip::Reason::headers_unterminated);
  CHECK(parse("BYE sip:a@b SIP/2.0\r\ni: x\r\n", sip::Framing::stream).status ==
        Status::need_more);
  auto no_line_end = parse("BYE sip:a@b SIP/2.0");
  CHECK(no_line_end.status == Status::malformed);
  CHECK(no_line_end.reason == sip::Reason::first_line_unterminated);
}

TEST_CASE("sip: bare LF line ends and NUL bytes in values", "[sip]") {
  auto m = parse("REGISTER sip:registrar.example.com SIP/2.0\nTo: <sip:a@b>\ni: lf@h\n"
                 "Subject: a\0b\nl: 0\n\n"sv);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.method == sip::Method::REGISTER);
  CHECK(m.call_id == "lf@h");
  CHECK(sip::find_header(m, "Subject") == "a\0b"sv);
  CHECK(sip::find_header(m, "To") == "<sip:a@b>");
}

TEST_CASE("sip: stream framing", "[sip]") {
  std::string two = "\r\n\r\n" + invite + ok_response;
  auto first = parse(two, sip::Framing::stream);
  REQUIRE(first.status == Status::parsed);
  CHECK(first.method == sip::Method::INVITE);
  CHECK(first.size == 4 + invite.size());
  auto second = parse(std::string_view(two).substr(first.size), sip::Framing::stream);
  REQUIRE(second.status == Status::parsed);
  CHECK(second.kind == sip::Kind::response);
  CHECK(second.size == ok_response.size());

  // Without Content-Length a stream message has no body.
  std::string_view bodyless_text = "BYE sip:a@b SIP/2.0\r\ni: x\r\n\r\nNEXT";
  auto bodyless = parse(bodyless_text, sip::Framing::stream);
  REQUIRE(bodyless.status == Status::parsed);
  CHECK(bodyless.body.empty());
  CHECK(bodyless.size == bodyless_text.size() - 4);
}

TEST_CASE("sip: every prefix of a message is handled", "[sip]") {
  for (const std::string* sample : {&invite, &sipp_invite, &ok_response, &compact_bye}) {
    REQUIRE(parse(*sample).status == Status::parsed);
    REQUIRE(parse(*sample, sip::Framing::stream).status == Status::parsed);
    for_each_prefix(*sample, [&](tether::parsers::ByteSpan prefix, std::size_t n) {
      INFO("prefix length " << n);
      CHECK(sip::parse(prefix, sip::Framing::stream).status == Status::need_more);
      auto datagram = sip::parse(prefix, sip::Framing::datagram);
      CHECK(datagram.status != Status::parsed);
      CHECK(datagram.status != Status::need_more);
      if (datagram.status == Status::malformed) (void)sip::find_header(datagram, "From");
    });
  }
}

TEST_CASE("sip: long lines and junk", "[sip]") {
  std::string huge_value(100000, 'a');
  std::string long_header_text = request_with("i: x\r\nX-Long: " + huge_value + "\r\n");
  auto long_header = parse(long_header_text);
  REQUIRE(long_header.status == Status::parsed);
  CHECK(sip::find_header(long_header, "x-long")->size() == huge_value.size());

  auto long_call_id = parse(request_with("i: " + huge_value + "\r\n"));
  REQUIRE(long_call_id.status == Status::parsed);
  CHECK(long_call_id.call_id.size() == huge_value.size());

  std::string long_uri = "INVITE sip:" + huge_value + " SIP/2.0\r\ni: x\r\n\r\n";
  CHECK(parse(long_uri).status == Status::parsed);

  std::string junk(70000, '\0');
  for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 131 % 251);
  CHECK(parse(junk).status == Status::not_this_protocol);
  CHECK(parse(junk, sip::Framing::stream).status == Status::not_this_protocol);
  std::string no_line_end(70000, 'A');
  CHECK(parse(no_line_end).status == Status::not_this_protocol);
  CHECK(parse(no_line_end, sip::Framing::stream).status == Status::need_more);
}

TEST_CASE("sip: every reason has a name", "[sip]") {
  for (int r = 0; r <= static_cast<int>(sip::Reason::body_truncated); ++r)
    CHECK(sip::to_string(static_cast<sip::Reason>(r)) != "?"sv);
  CHECK(sip::to_string(sip::Reason::first_line_unterminated) == "no CRLF in first line"sv);
  CHECK(sip::to_string(sip::Kind::keepalive) == "keepalive"sv);
  CHECK(tether::parsers::to_string(Status::need_more) == "need_more"sv);
}

TEST_CASE("sip: To tag and dialogs", "[sip]") {
  using sv = std::string_view;
  CHECK(sip::tag_parameter("Bob <sip:bob@biloxi.example.com>;tag=a6c85cf") == sv("a6c85cf"));
  CHECK_FALSE(sip::tag_parameter("Bob <sip:bob@biloxi.example.com>"));
  // The URI's own parameters are not the header's.
  CHECK_FALSE(sip::tag_parameter("<sip:bob@b;tag=inside>"));
  CHECK(sip::tag_parameter("<sip:bob@b;tag=inside>;tag=out") == sv("out"));
  // A bare addr-spec: its parameters are the header's.
  CHECK(sip::tag_parameter("sip:bob@b;user=phone;tag=abc") == sv("abc"));
  CHECK_FALSE(sip::tag_parameter("sip:bob@b"));
  // Any case, blanks around ';' and '=', folded.
  CHECK(sip::tag_parameter("<sip:bob@b> ; TAG = 12 ;x=y") == sv("12"));
  CHECK(sip::tag_parameter("<sip:bob@b>\r\n ;tag=9") == sv("9"));
  // A quoted display name may hold '<', '>', ';' and escaped quotes.
  CHECK_FALSE(sip::tag_parameter("\"a <b>; tag=no \\\" <c>\" <sip:bob@b>"));
  CHECK(sip::tag_parameter("\"a;tag=no\" <sip:bob@b>;tag=yes") == sv("yes"));
  CHECK_FALSE(sip::tag_parameter("<sip:bob@b>;tagx=1;xtag=2"));
  const std::string_view bare_tag = "<sip:bob@b>;tag;x=1";
  const auto bare = sip::tag_parameter(bare_tag);  // present, empty, and inside the value
  REQUIRE(bare.has_value());
  CHECK(bare->empty());
  CHECK(bare->data() == bare_tag.data() + 15);
  CHECK_FALSE(sip::tag_parameter("<sip:bob@b"));   // unterminated: no parameters
  CHECK_FALSE(sip::tag_parameter("\"unterminated;tag=1"));
  CHECK_FALSE(sip::tag_parameter(""));

  auto invite_message = parse(invite);
  REQUIRE(invite_message.status == Status::parsed);
  CHECK(sip::outside_dialog(invite_message));  // To without a tag: a new call
  CHECK(invite_message.from == "Alice <sip:alice@atlanta.example.com>;tag=1928301774");
  CHECK(sip::tag_parameter(invite_message.from) == sv("1928301774"));
  CHECK(parse(compact_bye).from == "Bob <sip:bob@biloxi.example.com>;tag=a6c85cf");  // "f:"
  CHECK(parse(request_with("Call-ID: a@b\r\nfrom: <sip:a@b>;tag=1\r\nFROM: <sip:c@d>\r\n")).from ==
        "<sip:a@b>;tag=1");  // the first one
  CHECK(sip::outside_dialog(parse(sipp_invite)));
  auto bye = parse(compact_bye);
  REQUIRE(bye.status == Status::parsed);
  CHECK_FALSE(sip::outside_dialog(bye));  // compact "t:" with a tag
  CHECK_FALSE(sip::outside_dialog(parse(ok_response)));  // responses are never requests
  std::string reinvite = invite;
  reinvite.replace(reinvite.find("To: Bob <sip:bob@biloxi.example.com>"),
                   sizeof("To: Bob <sip:bob@biloxi.example.com>") - 1,
                   "to: Bob <sip:bob@biloxi.example.com>;tag=314");
  auto reinvite_message = parse(reinvite);
  REQUIRE(reinvite_message.status == Status::parsed);
  CHECK_FALSE(sip::outside_dialog(reinvite_message));
  CHECK(sip::outside_dialog(parse(request_with("Call-ID: a@b\r\n"))));  // no To at all
}
