#include "control/service_manager.hpp"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

#include "control/log.hpp"

namespace tether {
namespace {

std::uint64_t watchdog_interval_us() {
  std::uint64_t usec = 0;
  // 0: do not unset the variables; a pet is only sent by this process anyway.
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

}  // namespace

WatchdogPetting::WatchdogPetting(std::uint64_t interval_us, std::uint64_t tsc_hz)
    : period_(interval_us * (tsc_hz / 1000) / 2000) {}

bool WatchdogPetting::due(const WorkerProgress& progress, std::uint64_t now) {
  if (!enabled() || !progress.stalled(now).empty()) return false;
  if (petted_ && now - last_ < period_) return false;
  petted_ = true;
  last_ = now;
  return true;
}

ServiceManager::ServiceManager(std::uint64_t tsc_hz)
    : notifying_(std::getenv("NOTIFY_SOCKET") != nullptr),
      watchdog_(notifying_ ? watchdog_interval_us() : 0, tsc_hz) {
  if (watchdog_.enabled())
    TETHER_LOG(info, "systemd watchdog: pets while every worker's loop turns");
}

void ServiceManager::notify(const std::string& state) {
  if (!notifying_) return;
  if (const int r = sd_notify(0, state.c_str()); r < 0)
    TETHER_LOG(warning, "sd_notify: %s", std::strerror(-r));
}

void ServiceManager::ready(const std::string& status) { notify("READY=1\nSTATUS=" + status); }

void ServiceManager::stopping() { notify("STOPPING=1"); }

void ServiceManager::tick(const WorkerProgress& progress, std::uint64_t now) {
  if (!watchdog_.enabled()) return;
  const auto stalled = progress.stalled(now);
  if (!stalled.empty() != withheld_) {
    withheld_ = !stalled.empty();
    if (withheld_)
      TETHER_LOG(error, "systemd watchdog: not petted while worker %u is stalled", stalled.front());
    else
      TETHER_LOG(info, "systemd watchdog: every worker turns again, petting");
  }
  if (watchdog_.due(progress, now)) notify("WATCHDOG=1");
}

}  // namespace tether
