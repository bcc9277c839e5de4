// RuleSet (dataplane/content_rules.hpp): first rule in list order wins, fields (request
// line, URI, headers by case-insensitive name), caseless rules, no match, empty fields, bad
// patterns, and one scratch grown to serve several rule sets.
#include <catch2/catch.hpp>

#include <cctype>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/content_rules.hpp"

using tether::dataplane::ContentRule;
using tether::dataplane::MessageFields;
using tether::dataplane::RuleField;
using tether::dataplane::RuleSet;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A message: request line, URI and headers (names matched in any case, like SIP's). Counts
// the header lookups the rule set makes.
struct Message {
  std::string request_line;
  std::string uri;
  std::map<std::string, std::string> headers;  // by lower-case name
  mutable std::vector<std::string> asked;

  Message& header(std::string_view name, std::string value) {
    headers[lower(name)] = std::move(value);
    return *this;
  }

  static std::string_view find(const void* message, std::string_view name) {
    const auto& self = *static_cast<const Message*>(message);
    self.asked.emplace_back(name);
    const auto it = self.headers.find(lower(name));
    return it == self.headers.end() ? std::string_view{} : std::string_view(it->second);
  }

  MessageFields fields() const { return {request_line, uri, &Message::find, this}; }
};

ContentRule rule(RuleField field, std::string pattern, std::uint16_t pool, bool caseless = false,
                 std::string header = {}) {
  return ContentRule{field, std::move(header), std::move(pattern), caseless, pool};
}
ContentRule line_rule(std::string pattern, std::uint16_t pool, bool caseless = false) {
  return rule(RuleField::request_line, std::move(pattern), pool, caseless);
}
ContentRule uri_rule(std::string pattern, std::uint16_t pool, bool caseless = false) {
  return rule(RuleField::uri, std::move(pattern), pool, caseless);
}
ContentRule header_rule(std::string header, std::string pattern, std::uint16_t pool,
                        bool caseless = false) {
  return rule(RuleField::header, std::move(pattern), pool, caseless, std::move(header));
}

// One rule set with its own scratch.
struct Rules {
  RuleSet set;
  hs_scratch* scratch;
  explicit Rules(const std::vector<ContentRule>& rules) : set(rules), scratch(set.make_scratch_from(nullptr)) {}
  ~Rules() { RuleSet::free_scratch(scratch); }
  Rules(const Rules&) = delete;
  Rules& operator=(const Rules&) = delete;
  int match(const Message& m) const { return set.match(m.fields(), scratch); }
};

Message invite(std::string uri = "sip:alice@example.com") {
  Message m;
  m.request_line = "INVITE " + uri + " SIP/2.0";
  m.uri = std::move(uri);
  return m;
}

}  // namespace

TEST_CASE("content rules: the first rule in list order wins", "[rules]") {
  const Message m = invite("sip:alice@example.com");

  SECTION("even when a later rule matches earlier in the text") {
    // Rule 1 ("INVITE") ends at offset 6, rule 0 ("example") at offset 25.
    Rules rules({line_rule("example", 10), line_rule("INVITE", 20), line_rule("SIP/2", 30)});
    CHECK(rules.match(m) == 10);
  }
  SECTION("the other order picks the other pool") {
    Rules rules({line_rule("INVITE", 20), line_rule("example", 10)});
    CHECK(rules.match(m) == 20);
  }
  SECTION("across fields: a URI rule listed before a request-line rule") {
    // The request-line database is scanned first (rule 0 comes first) and matches rule 2;
    // the URI database then matches rule 1, which is earlier in the list.
    Rules rules({line_rule("^BYE", 1), uri_rule("alice", 2), line_rule("^INVITE", 3)});
    CHECK(rules.match(m) == 2);
  }
  SECTION("across fields: the earlier rule on a later-scanned header") {
    Message with = m;
    with.header("X-Tenant", "gold");
    Rules rules({line_rule("^OPTIONS", 1), header_rule("X-Tenant", "gold", 2), uri_rule("alice", 3),
                 line_rule("INVITE", 4)});
    CHECK(rules.match(with) == 2);
    with.header("X-Tenant", "silver");
    CHECK(rules.match(with) == 3);
  }
  SECTION("pools are returned as configured, not rule indices") {
    Rules rules({line_rule("nomatch", 0), uri_rule("example", 65535)});
    CHECK(rules.match(m) == 65535);
  }
  SECTION("pool 0 is a real match, not 'no match'") {
    Rules rules({uri_rule("alice", 0), uri_rule("example", 9)});
    CHECK(rules.match(m) == 0);
  }
}

TEST_CASE("content rules: each rule looks at its own field", "[rules]") {
  Rules rules({
      line_rule("^REGISTER ", 1),
      uri_rule("^sip:conf-", 2),
      header_rule("User-Agent", "^Polycom", 3),
      header_rule("To", "<sip:support@", 4),
  });

  Message m = invite("sip:bob@example.com");
  CHECK(rules.match(m) == -1);

  Message reg;
  reg.request_line = "REGISTER sip:example.com SIP/2.0";
  reg.uri = "sip:example.com";
  CHECK(rules.match(reg) == 1);

  CHECK(rules.match(invite("sip:conf-42@example.com")) == 2);

  // The URI pattern is anchored on the URI field, not the request line ("INVITE sip:conf-").
  Message anchored = invite("sip:bob@example.com");
  anchored.request_line = "INVITE sip:conf-1@example.com SIP/2.0";  // only the line says conf-
  CHECK(rules.match(anchored) == -1);

  m.header("User-Agent", "Polycom VVX 400");
  CHECK(rules.match(m) == 3);
  m.header("User-Agent", "Yealink SIP-T46");
  CHECK(rules.match(m) == -1);
  m.header("To", "Support <sip:support@example.com>");
  CHECK(rules.match(m) == 4);

  // A header's value is matched, not its name or other headers.
  Message other = invite();
  other.header("X-Note", "Polycom");
  CHECK(rules.match(other) == -1);
}

TEST_CASE("content rules: header names are matched in any case", "[rules]") {
  // Three spellings of one header: one database, one lookup per message, list order kept.
  Rules rules({
      header_rule("User-Agent", "^Poly", 5),
      header_rule("USER-AGENT", "Yealink", 6),
      header_rule("user-agent", ".", 7),
      header_rule("Subject", "urgent", 8),
  });

  Message m = invite();
  m.header("user-agent", "Yealink Polycom");
  CHECK(rules.match(m) == 6);

  m.header("User-Agent", "Polycom");
  m.header("Subject", "urgent");
  CHECK(rules.match(m) == 5);
  m.header("USER-AGENT", "Other");
  CHECK(rules.match(m) == 7);
  m.headers.erase("user-agent");
  CHECK(rules.match(m) == 8);

  m.asked.clear();
  CHECK(rules.match(m) == 8);
  // One lookup per inspected header, not per rule, under the first rule's spelling.
  REQUIRE(m.asked.size() == 2);
  CHECK(m.asked[0] == "User-Agent");
  CHECK(m.asked[1] == "Subject");
}

TEST_CASE("content rules: the caseless flag", "[rules]") {
  const Message m = invite("sip:Alice@Example.COM");
  SECTION("caseless matches any case") {
    Rules rules({uri_rule("alice@example\\.com$", 1, true)});
    CHECK(rules.match(m) == 1);
  }
  SECTION("without it, case matters") {
    Rules rules({uri_rule("alice@example\\.com$", 1, false)});
    CHECK(rules.match(m) == -1);
    Rules exact({uri_rule("Alice@Example\\.COM$", 2, false)});
    CHECK(exact.match(m) == 2);
  }
  SECTION("per rule, within one field's database") {
    Rules rules({uri_rule("ALICE", 1, false), uri_rule("ALICE", 2, true)});
    CHECK(rules.match(m) == 2);
  }
}

TEST_CASE("content rules: no match and empty fields", "[rules]") {
  Rules rules({uri_rule("alice", 1), header_rule("X-Pool", "b", 2), line_rule("INVITE", 3)});

  Message none;
  none.request_line = "OPTIONS sip:host SIP/2.0";
  none.uri = "sip:host";
  CHECK(rules.match(none) == -1);

  // An empty URI and a missing header are skipped; the request line still counts.
  Message m = invite();
  m.uri = "";
  CHECK(rules.match(m) == 3);
  // A present but empty header value is skipped too.
  m.header("X-Pool", "");
  CHECK(rules.match(m) == 3);
  m.header("X-Pool", "blue");
  CHECK(rules.match(m) == 2);

  // Nothing at all to look at.
  Message empty;
  CHECK(rules.match(empty) == -1);
}

TEST_CASE("content rules: an empty rule set matches nothing", "[rules]") {
  const RuleSet set(std::vector<ContentRule>{});
  CHECK(set.empty());
  hs_scratch* scratch = set.make_scratch_from(nullptr);
  CHECK(scratch == nullptr);
  const Message m = invite();
  CHECK(set.match(m.fields(), scratch) == -1);
  RuleSet::free_scratch(scratch);

  Rules one({uri_rule("x", 1)});
  CHECK_FALSE(one.set.empty());
}

TEST_CASE("content rules: a bad pattern throws naming its rule", "[rules]") {
  using Catch::Matchers::StartsWith;
  REQUIRE_THROWS_AS(RuleSet({line_rule("(unclosed", 1)}), std::invalid_argument);
  REQUIRE_THROWS_WITH(RuleSet({line_rule("(unclosed", 1)}), StartsWith("rule 0: "));
  REQUIRE_THROWS_WITH(RuleSet({line_rule("fine", 1), line_rule("[z-a]", 2)}), StartsWith("rule 1: "));
  // In the second field's database, after other fields compiled fine.
  REQUIRE_THROWS_WITH(RuleSet({line_rule("a", 1), uri_rule("b", 2), header_rule("To", "c", 3),
                               header_rule("From", "d", 4), header_rule("to", "e(", 5)}),
                      StartsWith("rule 4: "));
  // Grouped by field, the failing pattern is the second of its database but rule 2.
  REQUIRE_THROWS_WITH(RuleSet({uri_rule("a", 1), line_rule("b", 2), uri_rule("c{2,1}", 3)}),
                      StartsWith("rule 2: "));
  // A pattern that matches the empty string is refused too (it would match every message).
  REQUIRE_THROWS_WITH(RuleSet({uri_rule("ok", 1), uri_rule("x*", 2)}), StartsWith("rule 1: "));
}

TEST_CASE("content rules: one scratch grown across two rule sets serves both", "[rules]") {
  // A small literal set, then a larger set with bounded repeats and classes that needs more
  // scratch than the first.
  const RuleSet small({uri_rule("alice", 1)});
  std::vector<ContentRule> big_rules;
  for (int i = 0; i < 40; ++i)
    big_rules.push_back(line_rule("tenant" + std::to_string(i) + "[^;]{3,60}x[0-9]{2,9}y", 100));
  big_rules.push_back(line_rule("^INVITE sip:[a-z]+@[a-z.]{3,40}\\.com", 7));
  big_rules.push_back(header_rule("Via", "branch=z9hG4bK[0-9a-f]{4,32}", 8, true));
  const RuleSet big(big_rules);

  hs_scratch* scratch = small.make_scratch_from(nullptr);
  REQUIRE(scratch != nullptr);
  scratch = big.make_scratch_from(scratch);
  REQUIRE(scratch != nullptr);

  Message m = invite("sip:alice@example.com");
  CHECK(small.match(m.fields(), scratch) == 1);
  CHECK(big.match(m.fields(), scratch) == 7);
  m.request_line = "INVITE sip:x;tenant17=abcdefx123y SIP/2.0";
  CHECK(big.match(m.fields(), scratch) == 100);
  m.request_line = "ACK sip:x SIP/2.0";
  m.header("via", "SIP/2.0/UDP h;BRANCH=Z9HG4BKABCDEF");
  CHECK(big.match(m.fields(), scratch) == 8);
  CHECK(small.match(m.fields(), scratch) == 1);

  // Growing in the other order (big first) works as well, and growing again is harmless.
  hs_scratch* second = big.make_scratch_from(nullptr);
  second = small.make_scratch_from(second);
  second = big.make_scratch_from(second);
  CHECK(small.match(m.fields(), second) == 1);
  CHECK(big.match(m.fields(), second) == 8);

  RuleSet::free_scratch(scratch);
  RuleSet::free_scratch(second);
}
