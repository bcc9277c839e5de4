#include "parsers/ftp.hpp"

#include "test/unit/parser_samples.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

using namespace std::string_view_literals;
namespace ftp = tether::parsers::ftp;
using tether::parsers::Status;

using tether::test::bytes;
using tether::test::for_each_prefix;

namespace {

ftp::Command command(std::string_view s) { return ftp::parse_command(bytes(s)); }
ftp::Reply reply(std::string_view s) { return ftp::parse_reply(bytes(s)); }

using v4 = std::array<std::uint8_t, 4>;
using v6 = std::array<std::uint8_t, 16>;

bool is_ipv4(const ftp::Endpoint& e, v4 address, std::uint16_t port) {
  return e.family == ftp::Family::ipv4 && std::memcmp(e.address.data(), address.data(), 4) == 0 &&
         e.port == port;
}

bool is_ipv6(const ftp::Endpoint& e, v6 address, std::uint16_t port) {
  return e.family == ftp::Family::ipv6 && e.address == address && e.port == port;
}

}  // namespace

TEST_CASE("ftp: PASV and EPSV", "[ftp]") {
  for (std::string_view pasv : {"PASV\r\n"sv, "pasv\r\n"sv, "Pasv\n"sv, "PASV \r\n"sv}) {
    ftp::Command c = command(pasv);
    REQUIRE(c.status == Status::parsed);
    CHECK(c.verb == ftp::Verb::PASV);
    CHECK(c.size == pasv.size());
    CHECK(c.argument.empty());
    CHECK(c.data.family == ftp::Family::none);
  }
  struct sample {
    std::string_view line;
    ftp::EpsvMode mode;
  };
  for (auto [line, mode] : {sample{"EPSV\r\n", ftp::EpsvMode::no_argument},
                            sample{"EPSV ALL\r\n", ftp::EpsvMode::all},
                            sample{"epsv all\r\n", ftp::EpsvMode::all},
                            sample{"EPSV 1\r\n", ftp::EpsvMode::ipv4},
                            sample{"EPSV 2\r\n", ftp::EpsvMode::ipv6}}) {
    INFO(line);
    ftp::Command c = command(line);
    REQUIRE(c.status == Status::parsed);
    CHECK(c.verb == ftp::Verb::EPSV);
    CHECK(c.epsv == mode);
  }
  struct bad {
    std::string_view line;
    ftp::Reason why;
  };
  for (auto [line, why] : {bad{"EPSV 3\r\n", ftp::Reason::unknown_address_family},
                           bad{"EPSV 0\r\n", ftp::Reason::unknown_address_family},
                           bad{"EPSV 99999999999\r\n", ftp::Reason::unknown_address_family},
                           bad{"EPSV x\r\n", ftp::Reason::bad_epsv_argument},
                           bad{"EPSV 1x\r\n", ftp::Reason::bad_epsv_argument},
                           bad{"EPSV ALLx\r\n", ftp::Reason::bad_epsv_argument}}) {
    INFO(line);
    ftp::Command c = command(line);
    CHECK(c.status == Status::malformed);
    CHECK(c.reason == why);
    CHECK(c.verb == ftp::Verb::EPSV);
  }
}

TEST_CASE("ftp: PORT", "[ftp]") {
  ftp::Command c = command("PORT 192,168,1,2,195,80\r\n");
  REQUIRE(c.status == Status::parsed);
  CHECK(c.verb == ftp::Verb::PORT);
  CHECK(c.argument == "192,168,1,2,195,80");
  CHECK(is_ipv4(c.data, {192, 168, 1, 2}, 50000));

  ftp::Command edge = command("port 0,0,0,0,0,1\n");
  REQUIRE(edge.status == Status::parsed);
  CHECK(is_ipv4(edge.data, {0, 0, 0, 0}, 1));
  CHECK(is_ipv4(command("PORT 255,255,255,255,255,255\r\n").data, {255, 255, 255, 255}, 65535));

  struct bad {
    std::string_view line;
    ftp::Reason why;
  };
  for (auto [line, why] : {bad{"PORT 256,1,1,1,1,1\r\n", ftp::Reason::number_out_of_range},
                           bad{"PORT 1,1,1,1,1,1000\r\n", ftp::Reason::number_out_of_range},
                           bad{"PORT 1,2,3,4,0,0\r\n", ftp::Reason::port_zero},
                           bad{"PORT 1,2,3,4,5\r\n", ftp::Reason::bad_port_argument},
                           bad{"PORT 1,2,3,4,5,6,7\r\n", ftp::Reason::bad_port_argument},
                           bad{"PORT 1,2,3,4,5,6x\r\n", ftp::Reason::bad_port_argument},
                           bad{"PORT 1, 2,3,4,5,6\r\n", ftp::Reason::bad_port_argument},
                           bad{"PORT -1,2,3,4,5,6\r\n", ftp::Reason::bad_port_argument},
                           bad{"PORT\r\n", ftp::Reason::bad_port_argument}}) {
    INFO(line);
    ftp::Command m = command(line);
    CHECK(m.status == Status::malformed);
    CHECK(m.reason == why);
    CHECK(m.data.family == ftp::Family::none);
  }
}

TEST_CASE("ftp: EPRT", "[ftp]") {
  ftp::Command c = command("EPRT |1|132.235.1.2|6275|\r\n");
  REQUIRE(c.status == Status::parsed);
  CHECK(c.verb == ftp::Verb::EPRT);
  CHECK(is_ipv4(c.data, {132, 235, 1, 2}, 6275));

  struct v6_sample {
    std::string_view line;
    v6 address;
    std::uint16_t port;
  };
  const v6_sample samples[] = {
      {"EPRT |2|1080::8:800:200C:417A|5282|\r\n",
       {0x10, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x08, 0, 0x20, 0x0c, 0x41, 0x7a}, 5282},
      {"EPRT |2|::1|21|\r\n", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 21},
      {"EPRT |2|::|21|\r\n", {}, 21},
      {"EPRT |2|2001:db8::|1|\r\n", {0x20, 0x01, 0x0d, 0xb8}, 1},
      {"EPRT |2|2001:DB8:0:0:1:0:0:1|65535|\r\n",
       {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1}, 65535},
      {"EPRT |2|1:2:3:4:5:6:7::|9|\r\n", {0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 0}, 9},
      {"EPRT |2|::2:3:4:5:6:7:8|9|\r\n", {0, 0, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8}, 9},
      {"EPRT |2|::ffff:192.0.2.1|2121|\r\n",
       {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1}, 2121},
      {"EPRT |2|1:2:3:4:5:6:1.2.3.4|9|\r\n", {0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 1, 2, 3, 4}, 9},
      {"EPRT !2!fe80::1!9!\r\n", {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 9},
  };
  for (auto [line, address, port] : samples) {
    INFO(line);
    ftp::Command m = command(line);
    REQUIRE(m.status == Status::parsed);
    CHECK(is_ipv6(m.data, address, port));
  }

  struct bad {
    std::string_view line;
    ftp::Reason why;
  };
  const bad bad_samples[] = {
      {"EPRT |3|1.2.3.4|80|\r\n", ftp::Reason::unknown_address_family},
      {"EPRT |x|1.2.3.4|80|\r\n", ftp::Reason::bad_eprt_argument},
      {"EPRT ||1.2.3.4|80|\r\n", ftp::Reason::bad_eprt_argument},
      {"EPRT |1|1.2.3.4|80\r\n", ftp::Reason::bad_eprt_argument},
      {"EPRT |1|1.2.3.4|80|x\r\n", ftp::Reason::bad_eprt_argument},
      {"EPRT |1|1.2.3.4||\r\n", ftp::Reason::bad_eprt_argument},
      {"EPRT \x01" "1\x01" "1.2.3.4\x01" "80\x01\r\n", ftp::Reason::bad_eprt_argument},
      {"EPRT\r\n", ftp::Reason::bad_eprt_argument},
      {"EPRT |1|1.2.3|80|\r\n", ftp::Reason::bad_ipv4_address},
      {"EPRT |1|1.2.3.256|80|\r\n", ftp::Reason::bad_ipv4_address},
      {"EPRT |1|1.2.3.4.5|80|\r\n", ftp::Reason::bad_ipv4_address},
      {"EPRT |1|1..3.4|80|\r\n", ftp::Reason::bad_ipv4_address},
      {"EPRT |1|0001.2.3.4|80|\r\n", ftp::Reason::bad_ipv4_address},
      {"EPRT |1|::1|80|\r\n", ftp::Reason::bad_ipv4_address},
      {"EPRT |2|1.2.3.4|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|1:::2|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|1::2::3|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|12345::|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|:1::|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|1::2:|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|1:2:3:4:5:6:7|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|1:2:3:4:5:6:7:8:9|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|1:2:3:4:5:6:7:8::|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|::1:2:3:4:5:6:7:8|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|1:2:3:4:5:6:7:1.2.3.4|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|::1.2.3.4:5|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|fe80::1%eth0|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2|g::|80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |2||80|\r\n", ftp::Reason::bad_ipv6_address},
      {"EPRT |1|1.2.3.4|0|\r\n", ftp::Reason::port_zero},
      {"EPRT |1|1.2.3.4|65536|\r\n", ftp::Reason::number_out_of_range},
  };
  for (auto [line, why] : bad_samples) {
    INFO(line);
    ftp::Command m = command(line);
    CHECK(m.status == Status::malformed);
    CHECK(m.reason == why);
    CHECK(m.data.family == ftp::Family::none);
  }
}

TEST_CASE("ftp: other commands", "[ftp]") {
  ftp::Command user = command("USER anonymous\r\n");
  REQUIRE(user.status == Status::parsed);
  CHECK(user.verb == ftp::Verb::other);
  CHECK(user.verb_name == "USER");
  CHECK(user.argument == "anonymous");
  CHECK(user.size == 16);

  ftp::Command retr = command("RETR my file.txt  \r\nNOOP\r\n");
  REQUIRE(retr.status == Status::parsed);
  CHECK(retr.argument == "my file.txt");
  CHECK(retr.size == 20);
  ftp::Command noop = command("NOOP\r\n");
  CHECK(noop.verb_name == "NOOP");
  CHECK(command("CWD /pub\r\n").verb_name == "CWD");
  CHECK(command("PASVX\r\n").status == Status::not_this_protocol);
  CHECK(command("PA\r\n").status == Status::not_this_protocol);
  CHECK(command("PASV:\r\n").status == Status::not_this_protocol);
  CHECK(command("\xff\xf4\xff\xf2" "ABOR\r\n").status == Status::not_this_protocol);
  CHECK(command("\0\0\0\0"sv).status == Status::not_this_protocol);
  CHECK(command("227 Entering Passive Mode\r\n").status == Status::not_this_protocol);
  CHECK(command("").status == Status::need_more);
  CHECK(command("PAS").status == Status::need_more);
  CHECK(command("PORT 1,2,3,4,5,6").status == Status::need_more);
}

TEST_CASE("ftp: 227 replies as servers send them", "[ftp]") {
  struct sample {
    std::string_view server;
    std::string_view line;
    v4 address;
    std::uint16_t port;
  };
  const sample samples[] = {
      {"vsftpd", "227 Entering Passive Mode (192,168,1,2,195,80).\r\n", {192, 168, 1, 2}, 50000},
      {"proftpd", "227 Entering Passive Mode (192,168,1,2,195,80).\r\n", {192, 168, 1, 2}, 50000},
      {"pure-ftpd", "227 Entering Passive Mode (192,168,1,2,195,80)\r\n", {192, 168, 1, 2}, 50000},
      {"IIS", "227 Entering Passive Mode (10,0,0,5,19,137).\r\n", {10, 0, 0, 5}, 5001},
      {"RFC 1123", "227 =192,168,1,2,195,80\r\n", {192, 168, 1, 2}, 50000},
      {"bare", "227 Entering Passive Mode 192,168,1,2,195,80\r\n", {192, 168, 1, 2}, 50000},
      {"decoys", "227 Mode 2 on port 50000 (1,2,3) (10,0,0,5,195,80)\n", {10, 0, 0, 5}, 50000},
      {"out-of-range decoy", "227 (300,1,1,1,1,1) (1,1,1,1,1,1)\r\n", {1, 1, 1, 1}, 257},
  };
  for (auto [server, line, address, port] : samples) {
    INFO(server);
    ftp::Reply r = reply(line);
    REQUIRE(r.status == Status::parsed);
    CHECK(r.code == 227);
    CHECK(r.size == line.size());
    CHECK(is_ipv4(r.data, address, port));
  }
  ftp::Reply vsftpd = reply("227 Entering Passive Mode (192,168,1,2,195,80).\r\n");
  CHECK(vsftpd.text == "Entering Passive Mode (192,168,1,2,195,80).");

  struct bad {
    std::string_view line;
    ftp::Reason why;
  };
  for (auto [line, why] : {bad{"227 Entering Passive Mode\r\n", ftp::Reason::bad_227_reply},
                           bad{"227\r\n", ftp::Reason::bad_227_reply},
                           bad{"227 (1,2,3,4,5)\r\n", ftp::Reason::bad_227_reply},
                           bad{"227 (300,1,1,1,1,1)\r\n", ftp::Reason::number_out_of_range},
                           bad{"227 (1,2,3,4,0,0)\r\n", ftp::Reason::port_zero}}) {
    INFO(line);
    ftp::Reply r = reply(line);
    CHECK(r.status == Status::malformed);
    CHECK(r.reason == why);
    CHECK(r.code == 227);
  }
}

TEST_CASE("ftp: 229 replies", "[ftp]") {
  ftp::Reply r = reply("229 Entering Extended Passive Mode (|||6446|)\r\n");
  REQUIRE(r.status == Status::parsed);
  CHECK(r.code == 229);
  CHECK(r.data.family == ftp::Family::none);
  CHECK(r.data.port == 6446);
  CHECK(reply("229 Entering Passive Mode (!!!65535!)\r\n").data.port == 65535);
  CHECK(reply("229 (x) (|||21|).\r\n").data.port == 21);

  struct bad {
    std::string_view line;
    ftp::Reason why;
  };
  for (auto [line, why] : {bad{"229 Entering Extended Passive Mode\r\n", ftp::Reason::bad_229_reply},
                           bad{"229 (||6446|)\r\n", ftp::Reason::bad_229_reply},
                           bad{"229 (|||6446|\r\n", ftp::Reason::bad_229_reply},
                           bad{"229 (|||6446!)\r\n", ftp::Reason::bad_229_reply},
                           bad{"229 (||||)\r\n", ftp::Reason::bad_229_reply},
                           bad{"229 (|||0|)\r\n", ftp::Reason::port_zero},
                           bad{"229 (|||65536|)\r\n", ftp::Reason::number_out_of_range}}) {
    INFO(line);
    ftp::Reply m = reply(line);
    CHECK(m.status == Status::malformed);
    CHECK(m.reason == why);
  }
}

TEST_CASE("ftp: other and multi-line replies", "[ftp]") {
  ftp::Reply login = reply("230 Login successful.\r\n");
  REQUIRE(login.status == Status::parsed);
  CHECK(login.code == 230);
  CHECK(login.text == "Login successful.");

  std::string_view banner =
      "220-Welcome to the archive\r\n"
      "  220 is not the end\r\n"
      "220-Still going\r\n"
      "220 Ready\r\n"
      "USER";
  ftp::Reply r = reply(banner);
  REQUIRE(r.status == Status::parsed);
  CHECK(r.code == 220);
  CHECK(r.size == banner.size() - 4);
  CHECK(r.text.starts_with("Welcome"));
  CHECK(r.text.ends_with("220 Ready"));

  CHECK(reply("220-Hi\r\n220-\r\n").status == Status::need_more);
  CHECK(reply("221 Goodbye.").status == Status::need_more);
  CHECK(reply("22").status == Status::need_more);
  CHECK(reply("").status == Status::need_more);
  for (std::string_view other : {"HTTP/1.1 200 OK\r\n"sv, "600 x\r\n"sv, "22a x\r\n"sv,
                                 "2200 x\r\n"sv, "\0\0\0\0"sv, "USER a\r\n"sv}) {
    INFO(other);
    CHECK(reply(other).status == Status::not_this_protocol);
  }
}

TEST_CASE("ftp: every prefix of a line is handled", "[ftp]") {
  for (std::string_view sample :
       {"PORT 192,168,1,2,195,80\r\n"sv, "EPRT |2|1080::8:800:200C:417A|5282|\r\n"sv,
        "EPSV ALL\r\n"sv, "PASV\r\n"sv, "USER anonymous\r\n"sv}) {
    REQUIRE(command(sample).status == Status::parsed);
    for_each_prefix(sample, [&](tether::parsers::ByteSpan prefix, std::size_t n) {
      INFO(sample << " prefix length " << n);
      CHECK(ftp::parse_command(prefix).status == Status::need_more);
    });
  }
  for (std::string_view sample :
       {"227 Entering Passive Mode (192,168,1,2,195,80).\r\n"sv,
        "229 Entering Extended Passive Mode (|||6446|)\r\n"sv, "227 =192,168,1,2,195,80\r\n"sv,
        "220-Welcome\r\n220-to FTP\r\n220 Ready\r\n"sv}) {
    REQUIRE(reply(sample).status == Status::parsed);
    for_each_prefix(sample, [&](tether::parsers::ByteSpan prefix, std::size_t n) {
      INFO(sample << " prefix length " << n);
      CHECK(ftp::parse_reply(prefix).status == Status::need_more);
    });
  }
}

TEST_CASE("ftp: long lines and junk", "[ftp]") {
  std::string long_argument = "RETR " + std::string(100000, 'f') + "\r\n";
  ftp::Command c = command(long_argument);
  REQUIRE(c.status == Status::parsed);
  CHECK(c.argument.size() == 100000);

  std::string digits_227 = "227 " + std::string(100000, '9') + "\r\n";
  CHECK(reply(digits_227).reason == ftp::Reason::number_out_of_range);
  std::string commas_227 = "227 ";
  for (int i = 0; i < 20000; ++i) commas_227 += "1,";
  commas_227 += "0\r\n";
  ftp::Reply r = reply(commas_227);
  REQUIRE(r.status == Status::parsed);
  CHECK(is_ipv4(r.data, {1, 1, 1, 1}, 257));
  std::string parens_229 = "229 " + std::string(100000, '(') + "\r\n";
  CHECK(reply(parens_229).reason == ftp::Reason::bad_229_reply);

  std::string junk(70000, '\0');
  for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 131 % 251);
  CHECK(command(junk).status == Status::not_this_protocol);
  CHECK(reply(junk).status == Status::not_this_protocol);
}

TEST_CASE("ftp: every reason has a name", "[ftp]") {
  for (int r = 0; r <= static_cast<int>(ftp::Reason::bad_229_reply); ++r)
    CHECK(ftp::to_string(static_cast<ftp::Reason>(r)) != "?"sv);
  CHECK(ftp::to_string(ftp::Reason::port_zero) == "port 0"sv);
  CHECK(ftp::to_string(ftp::Verb::EPRT) == "EPRT"sv);
}
