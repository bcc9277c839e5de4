#include "control/config.hpp"

namespace tether {

bool is_prime(std::uint32_t n) {
  if (n < 2) return false;
  for (std::uint32_t d = 2; d <= n / d; ++d)
    if (n % d == 0) return false;
  return true;
}

const char* to_string(Protocol protocol) { return protocol == Protocol::tcp ? "tcp" : "udp"; }
const char* to_string(Scheduler scheduler) {
  switch (scheduler) {
    case Scheduler::maglev: return "maglev";
    case Scheduler::source_hash: return "source-hash";
    case Scheduler::least_sessions: return "least-sessions";
  }
  return "?";
}
const char* to_string(std::optional<SessionProtocol> dpi) {
  return dpi ? dataplane::to_string(*dpi) : "none";
}
const char* to_string(Forwarding) { return "dsr"; }

}  // namespace tether
