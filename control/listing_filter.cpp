#include "control/listing_filter.hpp"

#include <cstdlib>

namespace tether {
namespace {

struct FieldName {
  ListingFilter::Field field;
  const char* word;
};
constexpr FieldName kFieldNames[] = {
    {ListingFilter::service, "service"}, {ListingFilter::protocol, "protocol"},
    {ListingFilter::backend, "backend"}, {ListingFilter::worker, "worker"},
    {ListingFilter::limit, "limit"},
};

constexpr dataplane::SessionKind kKinds[] = {dataplane::SessionKind::sip_call,
                                             dataplane::SessionKind::rtp_expectation,
                                             dataplane::SessionKind::ftp_expectation,
                                             dataplane::SessionKind::synced_flow};

std::optional<unsigned long> number(const std::string& text) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
  char* end = nullptr;
  const unsigned long value = std::strtoul(text.c_str(), &end, 10);
  if (*end != '\0') return std::nullopt;
  return value;
}

// The tables hold service and backend indices in 16 bits (SessionKey, FlowEntry).
template <typename Named>
std::optional<std::uint16_t> index16_named(const std::vector<Named>& items, const std::string& name) {
  const auto index = index_named(items, name);
  if (!index) return std::nullopt;
  return static_cast<std::uint16_t>(*index);
}

std::string usage(unsigned allowed) {
  std::string text = "filters:";
  for (const auto& [field, word] : kFieldNames)
    if (allowed & field)
      text += std::string(" [") + word +
              (field == ListingFilter::protocol ? " sip|rtsp|ftp|flow]"
               : field == ListingFilter::worker || field == ListingFilter::limit ? " N]"
                                                                                : " NAME]");
  return text;
}

}  // namespace

std::variant<ListingFilter, std::string> parse_listing_filter(std::span<const std::string> words,
                                                              unsigned allowed,
                                                              const Config& config) {
  ListingFilter filter;
  unsigned seen = 0;
  for (std::size_t i = 0; i < words.size(); i += 2) {
    const std::string& word = words[i];
    const FieldName* named = nullptr;
    for (const auto& candidate : kFieldNames)
      if (word == candidate.word && (allowed & candidate.field)) named = &candidate;
    if (named == nullptr) return "unknown filter '" + word + "'; " + usage(allowed);
    if (seen & named->field) return "filter '" + word + "' given twice";
    seen |= named->field;
    if (i + 1 == words.size()) return "filter '" + word + "' needs a value; " + usage(allowed);
    const std::string& value = words[i + 1];
    switch (named->field) {
      case ListingFilter::service:
        filter.service_index = index16_named(config.services, value);
        if (!filter.service_index) return "no service named '" + value + "'";
        break;
      case ListingFilter::backend:
        filter.backend_index = index16_named(config.backends, value);
        if (!filter.backend_index) return "no backend named '" + value + "'";
        break;
      case ListingFilter::protocol:
        for (dataplane::SessionKind kind : kKinds)
          if (value == protocol_name(kind)) filter.kind = kind;
        if (!filter.kind) return "protocol must be sip, rtsp, ftp or flow, not '" + value + "'";
        break;
      case ListingFilter::worker: {
        const auto worker = number(value);
        if (!worker || *worker >= config.workers)
          return "worker must be a number from 0 to " + std::to_string(config.workers - 1);
        filter.worker_index = static_cast<unsigned>(*worker);
        break;
      }
      case ListingFilter::limit: {
        const auto limit = number(value);
        if (!limit || *limit == 0 || *limit > ListingFilter::kMaxLimit)
          return "limit must be a number from 1 to " + std::to_string(ListingFilter::kMaxLimit);
        filter.max_entries = static_cast<std::uint32_t>(*limit);
        break;
      }
    }
  }
  return filter;
}

const char* protocol_name(dataplane::SessionKind kind) {
  switch (kind) {
    case dataplane::SessionKind::sip_call: return "sip";
    case dataplane::SessionKind::rtp_expectation: return "rtsp";
    case dataplane::SessionKind::ftp_expectation: return "ftp";
    case dataplane::SessionKind::synced_flow: return "flow";
    case dataplane::SessionKind::fragment: return "fragment";
    case dataplane::SessionKind::count_: break;
  }
  return "unknown";
}

}  // namespace tether
