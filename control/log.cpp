#include "control/log.hpp"

#include <cstdio>
#include <ctime>

namespace tether::log {
namespace {
Level threshold = Level::info;
constexpr const char* kNames[] = {"error", "warning", "info", "debug"};
}  // namespace

bool set_level(std::string_view name) {
  for (int i = 0; i < 4; ++i)
    if (name == kNames[i]) {
      threshold = static_cast<Level>(i);
      return true;
    }
  return false;
}

Quiet::Quiet() : saved_(threshold) { threshold = Level::error; }
Quiet::~Quiet() { threshold = saved_; }

void write(Level level, const char* format, ...) {
  if (level > threshold) return;
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  tm local;
  localtime_r(&now.tv_sec, &local);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%H:%M:%S", &local);
  char message[1024];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  std::fprintf(stderr, "%s.%03ld tetherd %s: %s\n", stamp, now.tv_nsec / 1000000,
               kNames[static_cast<int>(level)], message);
}

}  // namespace tether::log
