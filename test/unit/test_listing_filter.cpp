// parse_listing_filter (control/listing_filter.hpp): the words of show sessions/flows.
#include <catch2/catch.hpp>

#include <string>
#include <variant>
#include <vector>

#include "control/listing_filter.hpp"

using tether::ListingFilter;
using tether::dataplane::SessionKind;

namespace {

const tether::Config& config() {
  static const tether::Config loaded = tether::load_config_text(
      "workers = 2;\n"
      "ports = ( { name = \"lan0\"; device = \"net_null0\"; } );\n"
      "backends = ( { name = \"b1\"; address = \"10.0.0.1\"; mac = \"02:00:00:00:00:11\"; },\n"
      "             { name = \"b2\"; address = \"10.0.0.2\"; mac = \"02:00:00:00:00:12\"; } );\n"
      "services = ( { name = \"web\"; vip = \"192.0.2.1\"; port = 80; protocol = \"tcp\";\n"
      "               backends = ( { name = \"b1\"; } ); },\n"
      "             { name = \"voice\"; vip = \"192.0.2.2\"; port = 5060; protocol = \"udp\";\n"
      "               dpi = \"sip\"; backends = ( { name = \"b2\"; } ); } );\n",
      "test.cfg");
  return loaded;
}

constexpr unsigned kSessions = ListingFilter::service | ListingFilter::protocol |
                               ListingFilter::backend | ListingFilter::limit;
constexpr unsigned kFlows = ListingFilter::worker | ListingFilter::service |
                            ListingFilter::backend | ListingFilter::limit;

std::variant<ListingFilter, std::string> parse(std::vector<std::string> words, unsigned allowed = kSessions) {
  return tether::parse_listing_filter(words, allowed, config());
}

ListingFilter accepted(std::vector<std::string> words, unsigned allowed = kSessions) {
  auto parsed = parse(std::move(words), allowed);
  if (const auto* wrong = std::get_if<std::string>(&parsed)) FAIL(*wrong);
  return std::get<ListingFilter>(parsed);
}

std::string refused(std::vector<std::string> words, unsigned allowed = kSessions) {
  auto parsed = parse(std::move(words), allowed);
  REQUIRE(std::holds_alternative<std::string>(parsed));
  return std::get<std::string>(parsed);
}

tether::dataplane::SessionEntry entry(SessionKind kind, std::uint16_t service, std::uint16_t backend) {
  tether::dataplane::SessionEntry e{};
  e.key.kind = kind;
  e.key.service = service;
  e.route.backend = backend;
  return e;
}

}  // namespace

TEST_CASE("listing filter: no words, the default limit and no filter", "[listing]") {
  const ListingFilter filter = accepted({});
  CHECK(filter.max_entries == ListingFilter::kDefaultLimit);
  CHECK_FALSE(filter.service_index);
  CHECK_FALSE(filter.backend_index);
  CHECK_FALSE(filter.kind);
  CHECK_FALSE(filter.worker_index);
  CHECK(filter.admits(entry(SessionKind::ftp_expectation, 7, 9)));
}

TEST_CASE("listing filter: names resolve to indices, in any order", "[listing]") {
  const ListingFilter filter = accepted({"limit", "25", "backend", "b2", "protocol", "rtsp", "service", "voice"});
  CHECK(filter.max_entries == 25);
  CHECK(filter.service_index == 1);
  CHECK(filter.backend_index == 1);
  CHECK(filter.kind == SessionKind::rtp_expectation);
  CHECK(filter.admits(entry(SessionKind::rtp_expectation, 1, 1)));
  CHECK_FALSE(filter.admits(entry(SessionKind::sip_call, 1, 1)));
  CHECK_FALSE(filter.admits(entry(SessionKind::rtp_expectation, 0, 1)));
  CHECK_FALSE(filter.admits(entry(SessionKind::rtp_expectation, 1, 0)));

  CHECK(accepted({"protocol", "sip"}).kind == SessionKind::sip_call);
  CHECK(accepted({"protocol", "ftp"}).kind == SessionKind::ftp_expectation);
  CHECK(accepted({"worker", "1", "limit", "10000"}, kFlows).worker_index == 1u);
  CHECK(accepted({"limit", "1"}).max_entries == 1);
}

TEST_CASE("listing filter: what is wrong is said, never guessed", "[listing]") {
  CHECK(refused({"service", "mail"}) == "no service named 'mail'");
  CHECK(refused({"backend", "b3"}) == "no backend named 'b3'");
  CHECK(refused({"protocol", "http"}) == "protocol must be sip, rtsp, ftp or flow, not 'http'");
  CHECK(refused({"limit", "0"}) == "limit must be a number from 1 to 10000");
  CHECK(refused({"limit", "10001"}) == "limit must be a number from 1 to 10000");
  CHECK(refused({"limit", "-1"}) == "limit must be a number from 1 to 10000");
  CHECK(refused({"limit", "12abc"}) == "limit must be a number from 1 to 10000");
  CHECK(refused({"limit", "99999999999999999999999"}) == "limit must be a number from 1 to 10000");
  CHECK(refused({"worker", "2"}, kFlows) == "worker must be a number from 0 to 1");
  CHECK(refused({"limit", "5", "limit", "6"}) == "filter 'limit' given twice");
  CHECK(refused({"service"}).rfind("filter 'service' needs a value", 0) == 0);
  // Each command takes its own filters.
  CHECK(refused({"worker", "0"}).rfind("unknown filter 'worker'; filters: [service NAME] [protocol sip|rtsp|ftp|flow]", 0) == 0);
  CHECK(refused({"protocol", "sip"}, kFlows).rfind("unknown filter 'protocol'", 0) == 0);
  CHECK(refused({"frobnicate", "1"}).rfind("unknown filter 'frobnicate'", 0) == 0);
}
