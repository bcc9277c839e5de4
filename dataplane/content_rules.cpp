#include "dataplane/content_rules.hpp"

#include <hs/hs.h>

#include <stdexcept>

namespace tether::dataplane {
namespace {

bool same_field(const ContentRule& rule, RuleField field, const std::string& header) {
  if (rule.field != field) return false;
  if (field != RuleField::header) return true;
  if (rule.header.size() != header.size()) return false;
  for (std::size_t i = 0; i < header.size(); ++i)
    if ((rule.header[i] | 0x20) != (header[i] | 0x20)) return false;
  return true;
}

int on_match(unsigned int id, unsigned long long, unsigned long long, unsigned int, void* context) {
  auto* best = static_cast<unsigned*>(context);
  if (id < *best) *best = id;
  return 0;  // keep scanning: a rule listed earlier may match later in the field
}

}  // namespace

RuleSet::RuleSet(const std::vector<ContentRule>& rules) {
  for (const auto& rule : rules) pool_of_rule_.push_back(rule.pool);
  std::vector<bool> done(rules.size(), false);
  for (std::size_t first = 0; first < rules.size(); ++first) {
    if (done[first]) continue;
    const RuleField field = rules[first].field;
    const std::string header = rules[first].header;
    std::vector<const char*> patterns;
    std::vector<unsigned> flags, ids;
    for (std::size_t i = first; i < rules.size(); ++i) {
      if (done[i] || !same_field(rules[i], field, header)) continue;
      done[i] = true;
      patterns.push_back(rules[i].pattern.c_str());
      flags.push_back(HS_FLAG_SINGLEMATCH | (rules[i].caseless ? HS_FLAG_CASELESS : 0));
      ids.push_back(static_cast<unsigned>(i));
    }
    hs_database_t* database = nullptr;
    hs_compile_error_t* error = nullptr;
    if (hs_compile_multi(patterns.data(), flags.data(), ids.data(),
                         static_cast<unsigned>(patterns.size()), HS_MODE_BLOCK, nullptr, &database,
                         &error) != HS_SUCCESS) {
      const int index = error->expression >= 0 ? static_cast<int>(ids[error->expression]) : -1;
      const std::string message = "rule " + std::to_string(index) + ": " + error->message;
      hs_free_compile_error(error);
      for (auto& d : databases_) hs_free_database(d.database);
      throw std::invalid_argument(message);
    }
    databases_.push_back({field, header, database});
  }
}

RuleSet::~RuleSet() {
  for (auto& d : databases_) hs_free_database(d.database);
}

hs_scratch* RuleSet::make_scratch_from(hs_scratch* scratch) const {
  for (const auto& d : databases_)
    if (hs_alloc_scratch(d.database, &scratch) != HS_SUCCESS)
      throw std::runtime_error("cannot allocate Hyperscan scratch space");
  return scratch;
}

void RuleSet::free_scratch(hs_scratch* scratch) { hs_free_scratch(scratch); }

int RuleSet::match(const MessageFields& fields, hs_scratch* scratch) const {
  unsigned best = static_cast<unsigned>(pool_of_rule_.size());
  for (const auto& d : databases_) {
    std::string_view text;
    switch (d.field) {
      case RuleField::request_line: text = fields.request_line; break;
      case RuleField::uri: text = fields.uri; break;
      case RuleField::header: text = fields.find_header(fields.message, d.header); break;
    }
    if (text.empty()) continue;
    hs_scan(d.database, text.data(), static_cast<unsigned>(text.size()), 0, scratch, on_match, &best);
  }
  return best < pool_of_rule_.size() ? pool_of_rule_[best] : -1;
}

}  // namespace tether::dataplane
