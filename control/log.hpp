// tetherd's log: one line per event on stderr, filtered by level.
#pragma once

#include <cstdarg>
#include <string_view>

namespace tether::log {

enum class Level { error, warning, info, debug };

bool set_level(std::string_view name);  // false for an unknown name

// Logs only errors while it lives, then restores the level: for tests, which cause on
// purpose what tetherd would log.
class Quiet {
 public:
  Quiet();
  ~Quiet();
  Quiet(const Quiet&) = delete;
  Quiet& operator=(const Quiet&) = delete;

 private:
  Level saved_;
};
void write(Level level, const char* format, ...) __attribute__((format(printf, 2, 3)));

#define TETHER_LOG(level, ...) ::tether::log::write(::tether::log::Level::level, __VA_ARGS__)

}  // namespace tether::log
