// The filters of `show sessions` and `show flows`, parsed from the command's words:
//   [service NAME] [protocol sip|rtsp|ftp|flow] [backend NAME] [worker N] [limit N]
// Names are resolved against the running configuration here, so an unknown one is an error
// for the operator rather than an empty answer.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "control/config.hpp"
#include "dataplane/flow_sample.hpp"
#include "dataplane/session_table.hpp"

namespace tether {

struct ListingFilter {
  static constexpr std::uint32_t kDefaultLimit = 100;
  static constexpr std::uint32_t kMaxLimit = dataplane::FlowSampleMailbox::kMaxSamples;

  // Which words a command takes.
  enum Field : unsigned { service = 1, protocol = 2, backend = 4, worker = 8, limit = 16 };

  std::optional<std::uint16_t> service_index;
  std::optional<dataplane::SessionKind> kind;
  std::optional<std::uint16_t> backend_index;
  std::optional<unsigned> worker_index;
  std::uint32_t max_entries = kDefaultLimit;

  bool admits(const dataplane::SessionEntry& entry) const {
    return (!service_index || entry.key.service == *service_index) &&
           (!kind || entry.key.kind == *kind) &&
           (!backend_index || entry.route.backend == *backend_index);
  }
};

// `words` are those after "show sessions" or "show flows"; `allowed` is a set of
// ListingFilter::Field. Returns the filter, or what is wrong as a sentence.
std::variant<ListingFilter, std::string> parse_listing_filter(std::span<const std::string> words,
                                                              unsigned allowed,
                                                              const Config& config);

// The signalling protocol a session entry belongs to: "sip", "rtsp" or "ftp".
const char* protocol_name(dataplane::SessionKind kind);

}  // namespace tether
