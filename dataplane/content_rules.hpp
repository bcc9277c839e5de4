// Operator-written content rules: regular expressions on a SIP or RTSP request that choose
// the backend pool of a new session. Compiled by the control thread with Hyperscan, one
// database per inspected field (the request line, the request URI, each named header), so a
// message is scanned once per field and not once per rule. The first rule in configuration
// order that matches wins.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct hs_database;
struct hs_scratch;

namespace tether::dataplane {

enum class RuleField : std::uint8_t { request_line, uri, header };

struct ContentRule {
  RuleField field;
  std::string header;  // for RuleField::header: the header's name (any case)
  std::string pattern;
  bool caseless;
  std::uint16_t pool;
};

// The parts of one message that rules look at. `find_header` returns an empty view when the
// message has no such header.
struct MessageFields {
  std::string_view request_line;
  std::string_view uri;
  std::string_view (*find_header)(const void* message, std::string_view name);
  const void* message;
};

class RuleSet {
 public:
  // Throws std::invalid_argument naming the rule (by index) whose pattern does not compile.
  explicit RuleSet(const std::vector<ContentRule>& rules);
  ~RuleSet();
  RuleSet(const RuleSet&) = delete;
  RuleSet& operator=(const RuleSet&) = delete;

  bool empty() const { return databases_.empty(); }
  // Scratch space for one worker: Hyperscan needs one per thread. Grows `scratch` (null for
  // a new one) to serve this rule set too, so one scratch serves every service. Owned by the
  // caller.
  hs_scratch* make_scratch_from(hs_scratch* scratch) const;
  static void free_scratch(hs_scratch* scratch);

  // The pool of the first matching rule, or -1.
  int match(const MessageFields& fields, hs_scratch* scratch) const;

 private:
  struct FieldDatabase {
    RuleField field;
    std::string header;
    hs_database* database;
  };
  std::vector<FieldDatabase> databases_;
  std::vector<std::uint16_t> pool_of_rule_;
};

}  // namespace tether::dataplane
