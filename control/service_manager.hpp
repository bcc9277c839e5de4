// tetherd under systemd (README "Installing the package"). tetherd.service is Type=notify:
// systemd counts tetherd started when it sends READY=1, which it does once its ports are up
// and its workers run, and it sends STOPPING=1 when it begins to stop. With WatchdogSec=,
// the control thread sends WATCHDOG=1 only while every worker's loop turns (WorkerProgress,
// the same condition that withdraws the VIPs' announcements): a worker wedged in a loop
// forwards nothing while the control socket still answers, so systemd must see the pets
// stop and restart tetherd. Outside systemd (no NOTIFY_SOCKET) nothing is sent.
#pragma once

#include <cstdint>
#include <string>

#include "control/ha.hpp"

namespace tether {

// When WATCHDOG=1 is due: plain logic over TSC instants, for unit tests.
class WatchdogPetting {
 public:
  // `interval_us`: WatchdogSec= as systemd passes it (WATCHDOG_USEC); 0: no watchdog.
  WatchdogPetting(std::uint64_t interval_us, std::uint64_t tsc_hz);
  bool enabled() const { return period_ != 0; }
  // True when a pet is due now: half the interval since the last one (systemd's advice, so
  // that one late loop pass does not cost a restart), and no worker stalled. Counts it as sent.
  bool due(const WorkerProgress& progress, std::uint64_t now);

 private:
  std::uint64_t period_;  // TSC cycles between pets
  std::uint64_t last_ = 0;
  bool petted_ = false;
};

class ServiceManager {
 public:
  // Reads NOTIFY_SOCKET and the watchdog's interval from the environment systemd set.
  explicit ServiceManager(std::uint64_t tsc_hz);
  // READY=1 with a STATUS= line for `systemctl status`.
  void ready(const std::string& status);
  void stopping();
  // Once per control loop pass: pets the watchdog when due, and logs when the pets stop
  // or resume because of a stalled worker.
  void tick(const WorkerProgress& progress, std::uint64_t now);

 private:
  void notify(const std::string& state);

  bool notifying_;
  WatchdogPetting watchdog_;
  bool withheld_ = false;  // pets stopped for a stalled worker: logged once
};

}  // namespace tether
