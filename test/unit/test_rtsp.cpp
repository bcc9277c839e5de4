#include "parsers/rtsp.hpp"

#include "test/unit/parser_samples.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>

using namespace std::string_literals;
using namespace std::string_view_literals;
namespace rtsp = tether::parsers::rtsp;
using tether::parsers::Status;

using tether::test::bytes;
using tether::test::for_each_prefix;

namespace {

rtsp::Message parse(std::string_view s) { return rtsp::parse(bytes(s)); }

bool range_is(const rtsp::Range& r, std::uint16_t first, std::uint16_t last) {
  return r.present && r.first == first && r.last == last;
}

// VLC 3 (live555 client).
const std::string vlc_setup =
    "SETUP rtsp://192.168.1.10:8554/stream/trackID=0 RTSP/1.0\r\n"
    "CSeq: 4\r\n"
    "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.10.01)\r\n"
    "Transport: RTP/AVP;unicast;client_port=50380-50381\r\n"
    "\r\n";

// ffmpeg/ffplay over UDP (the default).
const std::string ffmpeg_setup =
    "SETUP rtsp://10.0.0.1:554/live.sdp/streamid=0 RTSP/1.0\r\n"
    "Transport: RTP/AVP/UDP;unicast;client_port=23442-23443\r\n"
    "CSeq: 3\r\n"
    "User-Agent: Lavf59.27.100\r\n"
    "\r\n";

// ffmpeg with -rtsp_transport tcp.
const std::string ffmpeg_tcp_setup =
    "SETUP rtsp://10.0.0.1:554/live.sdp/streamid=0 RTSP/1.0\r\n"
    "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
    "CSeq: 3\r\n"
    "User-Agent: Lavf59.27.100\r\n"
    "\r\n";

// GStreamer rtspsrc offering UDP and TCP at once, with a session from the first SETUP.
const std::string gstreamer_setup =
    "SETUP rtsp://127.0.0.1:8554/test/stream=1 RTSP/1.0\r\n"
    "CSeq: 4\r\n"
    "User-Agent: GStreamer/1.22.0\r\n"
    "Transport: RTP/AVP;unicast;client_port=43556-43557;mode=\"PLAY,RECORD\","
    "RTP/AVP/TCP;unicast;interleaved=2-3;mode=\"PLAY\"\r\n"
    "Session: Vi2gUMlw4h0zOhmo;timeout=60\r\n"
    "Date: Tue, 01 Aug 2023 10:00:00 GMT\r\n"
    "\r\n";

// RFC 7826 appendix A style.
const std::string rtsp2_setup =
    "SETUP rtsp://example.com/foo/bar/baz.rm RTSP/2.0\r\n"
    "CSeq: 302\r\n"
    "Transport: RTP/AVP;unicast;dest_addr=\":4588\"/\":4589\",\r\n"
    "           RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
    "Accept-Ranges: npt, clock\r\n"
    "User-Agent: PhonyClient/1.2\r\n"
    "\r\n";

const std::string play =
    "PLAY rtsp://192.168.1.10:8554/stream/ RTSP/1.0\r\n"
    "CSeq: 6\r\n"
    "User-Agent: LibVLC/3.0.18 (LIVE555 Streaming Media v2022.10.01)\r\n"
    "Session: 1A2B3C4D\r\n"
    "Range: npt=0.000-\r\n"
    "\r\n";

const std::string announce =
    "ANNOUNCE rtsp://server.example.com/meeting RTSP/1.0\r\n"
    "CSeq: 90\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 24\r\n"
    "\r\n"
    "v=0\r\n"
    "o=- 0 0 IN IP4 ab\r\n";

const std::string setup_reply =
    "RTSP/1.0 200 OK\r\n"
    "CSeq: 4\r\n"
    "Transport: RTP/AVP;unicast;client_port=50380-50381;server_port=6970-6971;"
    "ssrc=1B4C5D6E;mode=play\r\n"
    "Session: 5A1B2C3D;timeout=65\r\n"
    "\r\n";

const std::string interleaved_frame = "$\x01\x00\x06RTCP!!"s;

}  // namespace

TEST_CASE("rtsp: VLC SETUP", "[rtsp]") {
  rtsp::Message m = parse(vlc_setup);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.kind == rtsp::Kind::request);
  CHECK(m.method == rtsp::Method::SETUP);
  CHECK(m.method_name == "SETUP");
  CHECK(m.url == "rtsp://192.168.1.10:8554/stream/trackID=0");
  CHECK(m.version == 1);
  CHECK(m.has_cseq);
  CHECK(m.cseq == 4);
  CHECK(m.session_id.empty());
  CHECK(m.header_count == 3);
  CHECK(m.size == vlc_setup.size());
  REQUIRE(m.transport_count == 1);
  const rtsp::TransportSpec& t = m.transports[0];
  CHECK(t.spec == "RTP/AVP;unicast;client_port=50380-50381");
  CHECK(t.protocol == "RTP");
  CHECK(t.profile == "AVP");
  CHECK(t.lower == rtsp::LowerTransport::udp);
  CHECK(t.lower_name.empty());
  CHECK(t.delivery == rtsp::Delivery::unicast);
  CHECK(range_is(t.client_port, 50380, 50381));
  CHECK_FALSE(t.server_port.present);
  CHECK_FALSE(t.interleaved.present);
}

TEST_CASE("rtsp: ffmpeg SETUP over UDP and TCP", "[rtsp]") {
  rtsp::Message udp = parse(ffmpeg_setup);
  REQUIRE(udp.status == Status::parsed);
  REQUIRE(udp.transport_count == 1);
  CHECK(udp.transports[0].lower == rtsp::LowerTransport::udp);
  CHECK(udp.transports[0].lower_name == "UDP");
  CHECK(range_is(udp.transports[0].client_port, 23442, 23443));
  CHECK(udp.cseq == 3);

  rtsp::Message tcp = parse(ffmpeg_tcp_setup);
  REQUIRE(tcp.status == Status::parsed);
  REQUIRE(tcp.transport_count == 1);
  CHECK(tcp.transports[0].lower == rtsp::LowerTransport::tcp);
  CHECK(range_is(tcp.transports[0].interleaved, 0, 1));
  CHECK_FALSE(tcp.transports[0].client_port.present);
}

TEST_CASE("rtsp: GStreamer SETUP with two transports and a session", "[rtsp]") {
  rtsp::Message m = parse(gstreamer_setup);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.url == "rtsp://127.0.0.1:8554/test/stream=1");
  CHECK(m.session_id == "Vi2gUMlw4h0zOhmo");
  REQUIRE(m.transport_count == 2);
  CHECK(m.transports[0].spec == "RTP/AVP;unicast;client_port=43556-43557;mode=\"PLAY,RECORD\"");
  CHECK(range_is(m.transports[0].client_port, 43556, 43557));
  CHECK(m.transports[1].lower == rtsp::LowerTransport::tcp);
  CHECK(range_is(m.transports[1].interleaved, 2, 3));
}

TEST_CASE("rtsp: RTSP/2.0 SETUP with dest_addr, folded Transport", "[rtsp]") {
  rtsp::Message m = parse(rtsp2_setup);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.version == 2);
  CHECK(m.cseq == 302);
  REQUIRE(m.transport_count == 2);
  CHECK(m.transports[0].dest_addr == "\":4588\"/\":4589\"");
  CHECK(m.transports[0].dest_rtp_port == 4588);
  CHECK(m.transports[0].dest_rtcp_port == 4589);
  CHECK(m.transports[1].spec == "RTP/AVP/TCP;unicast;interleaved=0-1");
  CHECK(range_is(m.transports[1].interleaved, 0, 1));
}

TEST_CASE("rtsp: transport parameters", "[rtsp]") {
  struct sample {
    std::string_view transport;
    void (*check)(const rtsp::TransportSpec&);
  };
  const sample samples[] = {
      {"RTP/AVP;unicast;client_port=4588",
       [](const rtsp::TransportSpec& t) { CHECK(range_is(t.client_port, 4588, 4588)); }},
      {"RTP/AVP;multicast;destination=224.2.0.1;port=3456-3457;ttl=16",
       [](const rtsp::TransportSpec& t) {
         CHECK(t.delivery == rtsp::Delivery::multicast);
         CHECK(t.destination == "224.2.0.1");
         CHECK_FALSE(t.client_port.present);
       }},
      {"RTP/AVP;unicast;destination=\"192.0.2.7\";client_port=3456-3457",
       [](const rtsp::TransportSpec& t) {
         CHECK(t.destination == "192.0.2.7");
         CHECK(range_is(t.client_port, 3456, 3457));
       }},
      {"RTP/SAVP;unicast;dest_addr=\"192.0.2.5:4588\"/\"192.0.2.5:4589\"",
       [](const rtsp::TransportSpec& t) {
         CHECK(t.profile == "SAVP");
         CHECK(t.dest_rtp_port == 4588);
         CHECK(t.dest_rtcp_port == 4589);
       }},
      {"RTP/AVPF;unicast;dest_addr=\"[2001:db8::1]:5000\"/\"[2001:db8::1]:5001\"",
       [](const rtsp::TransportSpec& t) {
         CHECK(t.dest_rtp_port == 5000);
         CHECK(t.dest_rtcp_port == 5001);
       }},
      {"RTP/AVP;unicast;dest_addr=\"[2001:db8::1]\"",
       [](const rtsp::TransportSpec& t) {
         CHECK(t.dest_rtp_port == 0);
         CHECK(t.dest_rtcp_port == 0);
       }},
      {"RTP/AVP;unicast;dest_addr=\"host.example.com\"/\":4589\"",
       [](const rtsp::TransportSpec& t) {
         CHECK(t.dest_rtp_port == 0);
         CHECK(t.dest_rtcp_port == 4589);
       }},
      {"  rtp/avp/udp ; UNICAST ; Client_Port = 1-65535 ",
       [](const rtsp::TransportSpec& t) {
         CHECK(t.lower == rtsp::LowerTransport::udp);
         CHECK(t.delivery == rtsp::Delivery::unicast);
         CHECK(range_is(t.client_port, 1, 65535));
       }},
      {"RTP/AVP/DCCP;unicast",
       [](const rtsp::TransportSpec& t) {
         CHECK(t.lower == rtsp::LowerTransport::other);
         CHECK(t.lower_name == "DCCP");
       }},
      {"RTP/AVP",
       [](const rtsp::TransportSpec& t) {
         CHECK(t.delivery == rtsp::Delivery::unspecified);
         CHECK(t.lower == rtsp::LowerTransport::udp);
       }},
      {"RTP/AVP/TCP;interleaved=7",
       [](const rtsp::TransportSpec& t) { CHECK(range_is(t.interleaved, 7, 7)); }},
  };
  for (auto [transport, check] : samples) {
    INFO(transport);
    std::string text = "SETUP rtsp://a/b RTSP/1.0\r\nCSeq: 1\r\nTransport: " +
                       std::string(transport) + "\r\n\r\n";
    rtsp::Message m = parse(text);
    REQUIRE(m.status == Status::parsed);
    REQUIRE(m.transport_count == 1);
    check(m.transports[0]);
  }
}

TEST_CASE("rtsp: Transport folded inside a spec, Session folded", "[rtsp]") {
  std::string text =
      "SETUP rtsp://a/b RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;\r\n"
      "\tclient_port=4588-4589\r\n ;destination=192.0.2.9\r\nSession: 1234\r\n ;timeout=5\r\n\r\n";
  rtsp::Message m = parse(text);
  REQUIRE(m.status == Status::parsed);
  REQUIRE(m.transport_count == 1);
  CHECK(range_is(m.transports[0].client_port, 4588, 4589));
  CHECK(m.transports[0].destination == "192.0.2.9");
  CHECK(m.session_id == "1234");
}

TEST_CASE("rtsp: bad transports", "[rtsp]") {
  for (std::string_view bad :
       {"RTP"sv, "RTP/"sv, "/AVP"sv, "RTP/AVP/"sv, "RTP/A VP"sv, "RTP/AVP;client_port=0-1"sv,
        "RTP/AVP;client_port=65536"sv, "RTP/AVP;client_port=5-4"sv, "RTP/AVP;client_port=a-b"sv,
        "RTP/AVP;client_port="sv, "RTP/AVP;client_port=1-"sv, "RTP/AVP;server_port=-1"sv,
        "RTP/AVP/TCP;interleaved=256"sv, "RTP/AVP/TCP;interleaved=0-256"sv,
        "RTP/AVP;dest_addr=\":0\""sv, "RTP/AVP;dest_addr=\":65536\""sv,
        "RTP/AVP;dest_addr=\"a:b\""sv, "RTP/AVP;unicast,;"sv}) {
    INFO(bad);
    std::string text = "SETUP rtsp://a/b RTSP/1.0\r\nCSeq: 1\r\nTransport: " + std::string(bad) +
                       "\r\n\r\n";
    rtsp::Message m = parse(text);
    CHECK(m.status == Status::malformed);
    CHECK(m.reason == rtsp::Reason::bad_transport);
  }
}

TEST_CASE("rtsp: transport cap and empty list elements", "[rtsp]") {
  auto transports = [](std::size_t n) {
    std::string out = "SETUP rtsp://a/b RTSP/1.0\r\nCSeq: 1\r\nTransport: ,";
    for (std::size_t i = 0; i < n; ++i)
      out += "RTP/AVP;unicast;client_port=" + std::to_string(5000 + 2 * i) + "-" +
             std::to_string(5001 + 2 * i) + ", ";
    return out + "\r\n\r\n";
  };
  std::string at_cap_text = transports(rtsp::max_transports);
  rtsp::Message at_cap = parse(at_cap_text);
  REQUIRE(at_cap.status == Status::parsed);
  CHECK(at_cap.transport_count == rtsp::max_transports);
  CHECK(range_is(at_cap.transports[rtsp::max_transports - 1].client_port, 5014, 5015));
  std::string over_cap_text = transports(rtsp::max_transports + 1);
  rtsp::Message over_cap = parse(over_cap_text);
  CHECK(over_cap.status == Status::malformed);
  CHECK(over_cap.reason == rtsp::Reason::too_many_transports);

  // Transport headers add up.
  std::string split_text =
      "SETUP rtsp://a/b RTSP/1.0\r\nTransport: RTP/AVP;client_port=2-3\r\n"
      "transport: RTP/AVP/TCP;interleaved=4-5\r\n\r\n";
  rtsp::Message split = parse(split_text);
  REQUIRE(split.status == Status::parsed);
  REQUIRE(split.transport_count == 2);
  CHECK(range_is(split.transports[1].interleaved, 4, 5));
}

TEST_CASE("rtsp: PLAY with Session", "[rtsp]") {
  rtsp::Message m = parse(play);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.method == rtsp::Method::PLAY);
  CHECK(m.session_id == "1A2B3C4D");
  CHECK(m.transport_count == 0);

  for (std::string_view session : {"Session: 12345678;timeout=60\r\n"sv,
                                   "session:12345678 ; timeout=60\r\n"sv}) {
    std::string text = "TEARDOWN rtsp://a/b RTSP/1.0\r\nCSeq: 9\r\n" + std::string(session) + "\r\n";
    rtsp::Message teardown = parse(text);
    REQUIRE(teardown.status == Status::parsed);
    CHECK(teardown.method == rtsp::Method::TEARDOWN);
    CHECK(teardown.session_id == "12345678");
  }
  for (std::string_view bad : {"Session: ;timeout=60\r\n"sv, "Session:\r\n"sv,
                               "Session: a b\r\n"sv}) {
    INFO(bad);
    std::string text = "PLAY rtsp://a/b RTSP/1.0\r\nCSeq: 9\r\n" + std::string(bad) + "\r\n";
    rtsp::Message m2 = parse(text);
    CHECK(m2.status == Status::malformed);
    CHECK(m2.reason == rtsp::Reason::bad_session);
  }
}

TEST_CASE("rtsp: every method", "[rtsp]") {
  const std::pair<std::string_view, rtsp::Method> methods[] = {
      {"OPTIONS", rtsp::Method::OPTIONS},
      {"DESCRIBE", rtsp::Method::DESCRIBE},
      {"SETUP", rtsp::Method::SETUP},
      {"PLAY", rtsp::Method::PLAY},
      {"PAUSE", rtsp::Method::PAUSE},
      {"TEARDOWN", rtsp::Method::TEARDOWN},
      {"GET_PARAMETER", rtsp::Method::GET_PARAMETER},
      {"SET_PARAMETER", rtsp::Method::SET_PARAMETER},
      {"ANNOUNCE", rtsp::Method::ANNOUNCE},
      {"RECORD", rtsp::Method::RECORD},
      {"REDIRECT", rtsp::Method::REDIRECT},
      {"PLAY_NOTIFY", rtsp::Method::PLAY_NOTIFY},
      {"play", rtsp::Method::other},
      {"FLUSH", rtsp::Method::other},
  };
  for (auto [name, id] : methods) {
    INFO(name);
    std::string text = std::string(name) + " * RTSP/1.0\r\nCSeq: 1\r\n\r\n";
    rtsp::Message m = parse(text);
    REQUIRE(m.status == Status::parsed);
    CHECK(m.method == id);
    CHECK(m.url == "*");
    if (id != rtsp::Method::other) CHECK(rtsp::to_string(id) == name);
  }
}

TEST_CASE("rtsp: response", "[rtsp]") {
  rtsp::Message m = parse(setup_reply);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.kind == rtsp::Kind::response);
  CHECK(m.status_code == 200);
  CHECK(m.reason_phrase == "OK");
  CHECK(m.version == 1);
  CHECK(m.session_id == "5A1B2C3D");
  REQUIRE(m.transport_count == 1);
  CHECK(range_is(m.transports[0].client_port, 50380, 50381));
  CHECK(range_is(m.transports[0].server_port, 6970, 6971));

  std::string not_found = "RTSP/2.0 404 Not Found\r\nCSeq: 2\r\n\r\n";
  CHECK(parse(not_found).status_code == 404);
  for (std::string_view bad : {"RTSP/1.0 2000 OK"sv, "RTSP/1.0 600 Odd"sv, "RTSP/1.0"sv}) {
    std::string text = std::string(bad) + "\r\nCSeq: 1\r\n\r\n";
    CHECK(parse(text).reason == rtsp::Reason::bad_status_line);
  }
}

TEST_CASE("rtsp: bad requests", "[rtsp]") {
  struct sample {
    std::string_view text;
    rtsp::Reason why;
  };
  const sample samples[] = {
      {"SETUP rtsp://a/b RTSP/1.1\r\n\r\n", rtsp::Reason::bad_version},
      {"RTSP/3.0 200 OK\r\n\r\n", rtsp::Reason::bad_version},
      {"SETUP  RTSP/1.0\r\n\r\n", rtsp::Reason::bad_request_line},
      {"SET(UP rtsp://a/b RTSP/1.0\r\n\r\n", rtsp::Reason::bad_request_line},
      {"SETUP rtsp://a/\x7f RTSP/1.0\r\n\r\n", rtsp::Reason::bad_request_line},
      {"SETUP rtsp://a/b RTSP/1.0\r\nCSeq\r\n\r\n", rtsp::Reason::header_without_colon},
      {"SETUP rtsp://a/b RTSP/1.0\r\nC Seq: 1\r\n\r\n", rtsp::Reason::bad_header_name},
      {"SETUP rtsp://a/b RTSP/1.0\r\n\tCSeq: 1\r\n\r\n", rtsp::Reason::continuation_without_header},
      {"SETUP rtsp://a/b RTSP/1.0\r\nCSeq: one\r\n\r\n", rtsp::Reason::bad_cseq},
      {"SETUP rtsp://a/b RTSP/1.0\r\nCSeq: -1\r\n\r\n", rtsp::Reason::bad_cseq},
      {"SETUP rtsp://a/b RTSP/1.0\r\nContent-Length: x\r\n\r\n", rtsp::Reason::bad_content_length},
      {"SETUP rtsp://a/b RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       rtsp::Reason::bad_content_length},
  };
  for (auto [text, why] : samples) {
    INFO(text);
    rtsp::Message m = parse(text);
    CHECK(m.status == Status::malformed);
    CHECK(m.reason == why);
  }
}

TEST_CASE("rtsp: header cap", "[rtsp]") {
  auto request = [](std::size_t headers) {
    std::string out = "OPTIONS * RTSP/1.0\r\n";
    for (std::size_t i = 0; i < headers; ++i) out += "CSeq: " + std::to_string(i) + "\r\n";
    return out + "\r\n";
  };
  std::string at_cap_text = request(rtsp::max_headers);
  rtsp::Message at_cap = parse(at_cap_text);
  CHECK(at_cap.status == Status::parsed);
  CHECK(at_cap.cseq == 0);  // the first one counts
  std::string over_cap_text = request(rtsp::max_headers + 1);
  CHECK(parse(over_cap_text).reason == rtsp::Reason::too_many_headers);
}

TEST_CASE("rtsp: not RTSP", "[rtsp]") {
  for (std::string_view other :
       {"GET / HTTP/1.1\r\nHost: a\r\n\r\n"sv, "INVITE sip:a@b SIP/2.0\r\n\r\n"sv,
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"sv, "\0\0\0\0\r\n"sv, "hello\r\n"sv}) {
    INFO(other);
    CHECK(parse(other).status == Status::not_this_protocol);
    CHECK(rtsp::message_extent(bytes(other)).status == Status::not_this_protocol);
  }
  CHECK(parse("").status == Status::need_more);
  CHECK(parse("\r\n").status == Status::need_more);
  CHECK(parse("SET").status == Status::need_more);
  CHECK(parse("RTS").status == Status::need_more);
}

TEST_CASE("rtsp: interleaved frames", "[rtsp]") {
  rtsp::Message m = parse(interleaved_frame);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.kind == rtsp::Kind::interleaved);
  CHECK(m.channel == 1);
  CHECK(m.size == interleaved_frame.size());
  CHECK(parse("$\x02\xff"sv).status == Status::need_more);
  rtsp::Message big = parse("$\x02\xff\xff"sv);
  CHECK(big.status == Status::parsed);
  CHECK(big.size == 4 + 65535);
  CHECK(rtsp::message_extent(bytes("$\x02\xff\xff"sv)).status == Status::need_more);
}

TEST_CASE("rtsp: message extent over a pipelined stream", "[rtsp]") {
  std::string stream = "\r\n" + announce + interleaved_frame + vlc_setup + play;
  std::string_view rest = stream;
  const rtsp::Kind kinds[] = {rtsp::Kind::request, rtsp::Kind::interleaved, rtsp::Kind::request,
                              rtsp::Kind::request};
  for (rtsp::Kind expected : kinds) {
    rtsp::Extent e = rtsp::message_extent(bytes(rest));
    REQUIRE(e.status == Status::parsed);
    CHECK(parse(rest).kind == expected);
    rest.remove_prefix(e.size);
  }
  CHECK(rest.empty());

  rtsp::Message announced = parse(announce);
  CHECK(announced.content_length == 24);
  CHECK(announced.size == announce.size());
  CHECK(rtsp::message_extent(bytes(std::string_view(announce).substr(0, announce.size() - 1)))
            .status == Status::need_more);
  auto bad = rtsp::message_extent(bytes("PLAY rtsp://a RTSP/1.0\r\nCSeq: x\r\n\r\n"));
  CHECK(bad.status == Status::malformed);
  CHECK(bad.reason == rtsp::Reason::bad_cseq);
}

TEST_CASE("rtsp: every prefix of a message is handled", "[rtsp]") {
  for (const std::string* sample : {&vlc_setup, &ffmpeg_setup, &ffmpeg_tcp_setup, &gstreamer_setup,
                                    &rtsp2_setup, &play, &announce, &setup_reply,
                                    &interleaved_frame}) {
    REQUIRE(parse(*sample).status == Status::parsed);
    REQUIRE(rtsp::message_extent(bytes(*sample)).size == sample->size());
    for_each_prefix(*sample, [&](tether::parsers::ByteSpan prefix, std::size_t n) {
      INFO("prefix length " << n);
      CHECK(rtsp::message_extent(prefix).status == Status::need_more);
      rtsp::Message m = rtsp::parse(prefix);
      // Only a body or interleaved payload may be missing from a parsed prefix.
      if (m.status == Status::parsed) CHECK(m.size == sample->size());
      else CHECK(m.status == Status::need_more);
    });
  }
}

TEST_CASE("rtsp: long lines and junk", "[rtsp]") {
  std::string huge(100000, 'x');
  std::string long_url = "DESCRIBE rtsp://a/" + huge + " RTSP/1.0\r\nCSeq: 2\r\nAccept: " + huge +
                         "\r\n\r\n";
  rtsp::Message m = parse(long_url);
  REQUIRE(m.status == Status::parsed);
  CHECK(m.url.size() == huge.size() + 9);

  std::string junk(70000, '\0');
  for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 131 % 251);
  CHECK(parse(junk).status == Status::not_this_protocol);
  std::string unterminated(70000, 'A');
  CHECK(parse(unterminated).status == Status::need_more);
}

TEST_CASE("rtsp: every reason has a name", "[rtsp]") {
  for (int r = 0; r <= static_cast<int>(rtsp::Reason::too_many_transports); ++r)
    CHECK(rtsp::to_string(static_cast<rtsp::Reason>(r)) != "?"sv);
  CHECK(rtsp::to_string(rtsp::Reason::bad_transport) == "bad Transport"sv);
  CHECK(rtsp::to_string(rtsp::LowerTransport::tcp) == "TCP"sv);
}

namespace {

rtsp::Message setup_with(std::string_view transport, std::string_view version = "RTSP/2.0") {
  static std::string text;  // the views returned point into it
  text = "SETUP rtsp://a/b " + std::string(version) + "\r\nCSeq: 1\r\nTransport: " +
         std::string(transport) + "\r\n\r\n";
  return parse(text);
}

}  // namespace

TEST_CASE("rtsp: RFC 7826 dest_addr and src_addr addresses", "[rtsp]") {
  struct sample {
    std::string_view transport;
    std::uint16_t dest_rtp, dest_rtcp, src_rtp, src_rtcp;
    std::string_view dest_rtp_host, dest_rtcp_host;
  };
  const sample samples[] = {
      {"RTP/AVP;unicast;dest_addr=\":5016\"/\":5017\"", 5016, 5017, 0, 0, "", ""},
      {"RTP/AVP/UDP;unicast;dest_addr=\"192.0.2.5:5016\"/\"192.0.2.5:5017\";src_addr=\":6000\"/\":6001\"",
       5016, 5017, 6000, 6001, "192.0.2.5", "192.0.2.5"},
      // Parameters in any order, src_addr first, unknown ones among them.
      {"RTP/AVP;src_addr=\":6000\";ssrc=0A13C760;dest_addr=\":5016\";unicast;RTCP-mux", 5016, 0,
       6000, 0, "", ""},
      {"RTP/AVP;unicast;dest_addr=\"[2001:db8::7]:5016\"/\"[2001:db8::7]:5017\"", 5016, 5017, 0,
       0, "2001:db8::7", "2001:db8::7"},
      {"RTP/AVP;unicast;dest_addr=\"[::ffff:192.0.2.1]\"/\"[fe80::1]:9\"", 0, 9, 0, 0,
       "::ffff:192.0.2.1", "fe80::1"},
      {"RTP/AVP;unicast;dest_addr=\"media.example.com:5016\"/\"media.example.com\"", 5016, 0, 0,
       0, "media.example.com", "media.example.com"},
      // A repeated parameter replaces the earlier one whole: no RTCP port or host left over.
      {"RTP/AVP;dest_addr=\"h:1\"/\"h:2\";src_addr=\":4\"/\":5\";dest_addr=\"[::1]:3\";src_addr=\":6\"",
       3, 0, 6, 0, "::1", ""},
      // Three addresses: the third is checked, not kept.
      {"RTP/AVP;dest_addr=\":1\"/\":2\"/\":3\"", 1, 2, 0, 0, "", ""},
      // Blanks around the addresses, and quotes left out, as some clients write them.
      {"RTP/AVP; dest_addr = \":5016\" / \":5017\" ", 5016, 5017, 0, 0, "", ""},
      {"RTP/AVP;dest_addr=:5016/:5017", 5016, 5017, 0, 0, "", ""},
      // An extension-addr without a colon: kept as the host, no port. (One with a colon
      // reads as host-port, and its "port" must be one: see below.)
      {"RTP/AVP;dest_addr=\"x-example\"/\":5017\"", 0, 5017, 0, 0, "x-example", ""},
  };
  for (const sample& s : samples) {
    INFO(s.transport);
    rtsp::Message m = setup_with(s.transport);
    REQUIRE(m.status == Status::parsed);
    REQUIRE(m.transport_count == 1);
    const rtsp::TransportSpec& t = m.transports[0];
    CHECK(t.dest_rtp_port == s.dest_rtp);
    CHECK(t.dest_rtcp_port == s.dest_rtcp);
    CHECK(t.src_rtp_port == s.src_rtp);
    CHECK(t.src_rtcp_port == s.src_rtcp);
    CHECK(t.dest_rtp_host == s.dest_rtp_host);
    CHECK(t.dest_rtcp_host == s.dest_rtcp_host);
  }
}

TEST_CASE("rtsp: bad RFC 7826 addresses", "[rtsp]") {
  for (std::string_view bad : {
           "RTP/AVP;dest_addr="sv,                      // no address at all
           "RTP/AVP;dest_addr=\"2001:db8::1\""sv,       // an IPv6 literal without brackets
           "RTP/AVP;dest_addr=\"2001:db8::1:5000\""sv,  // ... whose port cannot be told apart
           "RTP/AVP;dest_addr=\"[2001:db8::1\""sv,      // no closing bracket
           "RTP/AVP;dest_addr=\"[]:5000\""sv,           // nothing inside
           "RTP/AVP;dest_addr=\"[x]:5000\""sv,          // not an IPv6 literal
           "RTP/AVP;dest_addr=\"[::1]5000\""sv,         // no colon before the port
           "RTP/AVP;dest_addr=\"[::1]:\""sv,            // an empty port
           "RTP/AVP;dest_addr=\":5016\"/\":0\""sv,      // port 0 in the second address
           "RTP/AVP;dest_addr=\":5016\"/"sv,            // an empty second address
           "RTP/AVP;src_addr=\":70000\""sv,             // src_addr as strictly
           "RTP/AVP;src_addr=\"a:b\""sv,
           "RTP/AVP;dest_addr=\"urn:x-example\""sv,   // host-port shaped, no port
       }) {
    INFO(bad);
    rtsp::Message m = setup_with(bad);
    CHECK(m.status == Status::malformed);
    CHECK(m.reason == rtsp::Reason::bad_transport);
  }
}

TEST_CASE("rtsp: RFC 7826 transport lists: quoted strings, every spec, other transports", "[rtsp]") {
  // Quoted strings may hold the list's separators and escaped quotes; every spec is read.
  rtsp::Message m = setup_with(
      "RTP/AVP;unicast;mode=\"PLAY, \\\"RECORD\\\";x\";dest_addr=\":5016\"/\":5017\","
      "RTP/AVP/TCP;unicast;interleaved=0-1,"
      "RTP/SAVP/UDP;unicast;MIKEY=\"a/b,c;d\";dest_addr=\"[2001:db8::9]:5018\"/\"[2001:db8::9]:5019\","
      "X-REAL/RDT/MCAST/EXT;ttl=4,"
      "RTP/AVP;unicast;client_port=5020-5021");
  REQUIRE(m.status == Status::parsed);
  REQUIRE(m.transport_count == 5);
  CHECK(m.transports[0].dest_rtp_port == 5016);
  CHECK(m.transports[0].dest_rtcp_port == 5017);
  CHECK(m.transports[1].lower == rtsp::LowerTransport::tcp);
  CHECK(m.transports[2].profile == "SAVP");
  CHECK(m.transports[2].dest_rtp_port == 5018);
  CHECK(m.transports[2].dest_rtcp_host == "2001:db8::9");
  // RFC 7826 other-trans: token *("/" token); not UDP, whatever its parts say.
  CHECK(m.transports[3].protocol == "X-REAL");
  CHECK(m.transports[3].lower == rtsp::LowerTransport::other);
  CHECK(m.transports[3].lower_name == "MCAST/EXT");
  CHECK(range_is(m.transports[4].client_port, 5020, 5021));
  CHECK(m.version == 2);

  // The same grammar serves RTSP/1.0 requests: dest_addr there is read alike.
  rtsp::Message one = setup_with("RTP/AVP;unicast;dest_addr=\":7000\"", "RTSP/1.0");
  REQUIRE(one.status == Status::parsed);
  CHECK(one.transports[0].dest_rtp_port == 7000);

  for (std::string_view bad : {"X/Y/Z/"sv, "X/Y//Z"sv, "X/Y/Z W"sv}) {
    INFO(bad);
    CHECK(setup_with(bad).reason == rtsp::Reason::bad_transport);
  }
}
