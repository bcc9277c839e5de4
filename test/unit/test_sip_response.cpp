#include "parsers/sip_response.hpp"

#include "test/unit/parser_samples.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <string>
#include <string_view>

namespace sip = tether::parsers::sip;
using tether::parsers::Status;
using tether::test::bytes;

namespace {

struct Built {
  std::string text;
  std::uint16_t port;
};

Built refuse(const std::string& request, sip::Source source = {"192.0.2.10", 5070},
             std::size_t room = 2048) {
  const sip::Message message = sip::parse(bytes(request));
  std::array<char, 4096> out{};
  sip::Refusal refusal;
  refusal.retry_after_s = 30;
  refusal.to_tag = "tt1234";
  const sip::BuiltResponse built = sip::build_response(message, source, refusal, std::span(out.data(), room));
  return {std::string(out.data(), built.size), built.port};
}

const std::string invite =
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK776asdhds\r\n"
    "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKp2\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    "Content-Length: 0\r\n\r\n";

}  // namespace

TEST_CASE("sip 503: the headers RFC 3261 8.2.6 copies, a To tag, Retry-After", "[sip_response]") {
  const Built built = refuse(invite);
  CHECK(built.text ==
        "SIP/2.0 503 Service Unavailable\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK776asdhds\r\n"
        "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKp2\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "To: Bob <sip:bob@biloxi.example.com>;tag=tt1234\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Retry-After: 30\r\n"
        "Content-Length: 0\r\n\r\n");
  CHECK(built.port == 5070);  // the sent-by port: no rport
  const sip::Message parsed = sip::parse(bytes(built.text));
  CHECK(parsed.status == Status::parsed);
  CHECK(parsed.kind == sip::Kind::response);
  CHECK(parsed.status_code == 503);
}

TEST_CASE("sip 503: received when sent-by is not the source, rport filled in", "[sip_response]") {
  std::string request = invite;
  request.replace(request.find("192.0.2.10:5070;branch"), 22, "pc33.atlanta.example.com;rport;received=1.2.3.4;branch");
  const Built built = refuse(request, {"192.0.2.10", 40000});
  CHECK(built.text.find("Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.10;rport=40000\r\n") !=
        std::string::npos);
  CHECK(built.port == 40000);

  request = invite;
  request.replace(request.find("192.0.2.10:5070"), 15, "pc33.atlanta.example.com");
  const Built without_port = refuse(request, {"192.0.2.10", 40000});
  CHECK(without_port.text.find("pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.10\r\n") !=
        std::string::npos);
  CHECK(without_port.port == 5060);  // no rport, no port in sent-by

  // rport adds received even when sent-by is the source (RFC 3581 4).
  request = invite;
  request.replace(request.find(";branch=z9hG4bK776"), 8, ";rport;branch=");
  const Built same = refuse(request, {"192.0.2.10", 5070});
  CHECK(same.text.find("192.0.2.10:5070;branch=z9hG4bK776asdhds;received=192.0.2.10;rport=5070\r\n") !=
        std::string::npos);
}

TEST_CASE("sip 503: IPv6 sent-by, compact and folded headers, a To tag kept", "[sip_response]") {
  const std::string request =
      "INVITE sip:bob@example.com SIP/2.0\r\n"
      "v: SIP/2.0/UDP [2001:db8::10]:5080\r\n"
      "  ;branch=z9hG4bKx\r\n"
      "t: <sip:bob@example.com>;tag=theirs\r\n"
      "f: <sip:alice@example.com>;tag=a\r\n"
      "i: c1@example\r\n"
      "CSeq: 2 INVITE\r\n\r\n";
  const Built built = refuse(request, {"2001:db8::10", 5080});
  CHECK(built.text.find("Via: SIP/2.0/UDP [2001:db8::10]:5080;branch=z9hG4bKx\r\n") != std::string::npos);
  CHECK(built.text.find("To: <sip:bob@example.com>;tag=theirs\r\n") != std::string::npos);
  CHECK(built.text.find("Call-ID: c1@example\r\n") != std::string::npos);
  CHECK(built.port == 5080);
}

TEST_CASE("sip 503: nothing for an ACK, a response, missing headers, a Via without sent-by, no room",
          "[sip_response]") {
  std::string ack = invite;
  ack.replace(0, 6, "ACK");
  ack.replace(ack.find("CSeq: 314159 INVITE"), 19, "CSeq: 314159 ACK");
  CHECK(refuse(ack).text.empty());
  CHECK(refuse("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:c@d>\r\n"
               "Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n").text.empty());
  for (std::string_view header : {"Via: ", "To: ", "From: ", "CSeq: "}) {
    std::string request = invite;
    const std::size_t at = request.find(header);
    request.erase(at, request.find("\r\n", at) + 2 - at);
    if (header == "Via: ") {  // the second Via field would become the top one: remove it too
      const std::size_t second = request.find("Via: ");
      request.erase(second, request.find("\r\n", second) + 2 - second);
    }
    INFO(header);
    CHECK(refuse(request).text.empty());
  }
  for (std::string_view via : {"SIP/2.0/UDP", "SIP/2.0/UDP ", "SIP/2.0/UDP [::1", "SIP/2.0/UDP h:99999",
                               "SIP/2.0/UDP h:0", "nothing", ""}) {
    std::string request = invite;
    const std::size_t at = request.find("SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK776asdhds");
    request.replace(at, 51, via);
    INFO(via);
    CHECK(refuse(request).text.empty());
  }
  const std::size_t whole = refuse(invite).text.size();
  CHECK(refuse(invite, {"192.0.2.10", 5070}, whole).text.size() == whole);
  CHECK(refuse(invite, {"192.0.2.10", 5070}, whole - 1).text.empty());
}

TEST_CASE("sip 503: line breaks in a copied value cannot start a header of their own", "[sip_response]") {
  // A bare CR inside a value, which the parser keeps in the value: written as a space.
  std::string request = invite;
  request.replace(request.find(";tag=1928301774"), 15, ";tag=1928301774\rX-Injected: 1");
  const Built built = refuse(request);
  REQUIRE(!built.text.empty());
  CHECK(built.text.find("\rX-Injected") == std::string::npos);
  CHECK(built.text.find(";tag=1928301774 X-Injected: 1\r\n") != std::string::npos);
}

namespace {

sip::BuiltResponse built_for(const std::string& top_via, sip::Source source = {"192.0.2.10", 40000}) {
  std::string request = invite;
  const std::size_t start = request.find("Via: ");
  request.replace(start, request.find("\r\n", start) - start, "Via: " + top_via);
  static std::array<char, 4096> out;
  sip::Refusal refusal;
  refusal.to_tag = "tt1234";
  return sip::build_response(sip::parse(bytes(request)), source, refusal, out);
}

}  // namespace

TEST_CASE("sip 503: RFC 3261 18.2.2, maddr before received and rport", "[sip_response]") {
  // Unicast maddr: there, at the sent-by port (rport does not apply with maddr, RFC 3581 4).
  sip::BuiltResponse built = built_for("SIP/2.0/UDP 192.0.2.10:5070;maddr=198.51.100.7;rport;branch=z9hG4bK1");
  REQUIRE(built.size != 0);
  CHECK(built.to_maddr);
  CHECK(built.maddr == tether::parsers::ipv4_mapped(std::array<std::uint8_t, 4>{198, 51, 100, 7}.data()));
  CHECK(built.port == 5070);
  CHECK_FALSE(built.maddr_multicast);
  CHECK(built.ttl == 64);
  // No sent-by port: 5060.
  built = built_for("SIP/2.0/UDP host.example.com;maddr=198.51.100.7;branch=z9hG4bK1");
  CHECK(built.to_maddr);
  CHECK(built.port == 5060);
  // Multicast: the Via's ttl, else 1.
  built = built_for("SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK1;maddr=239.255.0.1;ttl=16");
  CHECK(built.maddr_multicast);
  CHECK(built.ttl == 16);
  built = built_for("SIP/2.0/UDP 192.0.2.10:5070;MADDR=239.255.0.1;branch=z9hG4bK1");
  CHECK(built.maddr_multicast);
  CHECK(built.ttl == 1);
  // IPv6 reference, multicast.
  built = built_for("SIP/2.0/UDP [2001:db8::10]:5080;maddr=[ff02::1:3];branch=z9hG4bK1", {"2001:db8::10", 5080});
  REQUIRE(built.to_maddr);
  CHECK(built.maddr[0] == 0xff);
  CHECK(built.maddr[15] == 3);
  CHECK(built.maddr_multicast);
  CHECK(built.port == 5080);
  // Without maddr: received (the source) and rport as before; TTL 64.
  built = built_for("SIP/2.0/UDP 192.0.2.10:5070;rport;branch=z9hG4bK1");
  CHECK_FALSE(built.to_maddr);
  CHECK(built.port == 40000);
  CHECK(built.ttl == 64);
  // The maddr stays in the response's Via: the client's own parameter, copied.
  const Built text = refuse("INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5070;maddr=198.51.100.7\r\n"
                            "To: <sip:b@x>\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: m1\r\nCSeq: 1 INVITE\r\n\r\n");
  CHECK(text.text.find("Via: SIP/2.0/UDP 192.0.2.10:5070;maddr=198.51.100.7\r\n") != std::string::npos);
}

TEST_CASE("sip 503: nothing for an maddr that is a host name or no address, or a bad ttl", "[sip_response]") {
  for (const char* via : {"SIP/2.0/UDP 192.0.2.10;maddr=proxy.example.com", "SIP/2.0/UDP 192.0.2.10;maddr=",
                          "SIP/2.0/UDP 192.0.2.10;maddr=300.1.1.1", "SIP/2.0/UDP 192.0.2.10;maddr=2001:db8::1",
                          "SIP/2.0/UDP 192.0.2.10;maddr=[2001:db8::1", "SIP/2.0/UDP 192.0.2.10;maddr=[zz::1]",
                          "SIP/2.0/UDP 192.0.2.10;maddr=239.1.1.1;ttl=256",
                          "SIP/2.0/UDP 192.0.2.10;maddr=239.1.1.1;ttl=0001",
                          "SIP/2.0/UDP 192.0.2.10;maddr=239.1.1.1;ttl=x"}) {
    INFO(via);
    CHECK(built_for(via).size == 0);
  }
  // A ttl without multicast maddr is not read.
  CHECK(built_for("SIP/2.0/UDP 192.0.2.10;maddr=198.51.100.7;ttl=x").size != 0);
}
