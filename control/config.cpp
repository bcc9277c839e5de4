#include "control/config.hpp"

namespace tether {

bool is_prime(std::uint32_t n) {
  if (n < 2) return false;
  for (std::uint32_t d = 2; d <= n / d; ++d)
    if (n % d == 0) return false;
  return true;
}

const char* to_string(Protocol protocol) { return protocol == Protocol::tcp ? "tcp" : "udp"; }
const char* to_string(std::optional<SessionProtocol> dpi) {
  return dpi ? dataplane::to_string(*dpi) : "none";
}
const char* to_string(Forwarding) { return "dsr"; }
const char* to_string(KernelDriver driver) { return driver == KernelDriver::tap ? "tap" : "virtio-user"; }

}  // namespace tether
