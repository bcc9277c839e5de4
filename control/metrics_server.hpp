// `metrics.listen`: Prometheus's /metrics over HTTP (the families of `tetherctl metrics`).
//
// The server runs on threads of its own (cpp-httplib, two request threads). A scrape never
// touches the control thread's state: it asks for a rendering and waits for it, at most
// kRenderWait, while the control thread renders between its other tasks (serve_pending, one
// call a loop pass) and never waits for the HTTP side. A slow or hostile client therefore
// costs a request thread until its read or write timeout, never the control thread; the
// scrapes waiting at one moment share one rendering.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "control/config.hpp"

namespace httplib {
class Server;
}

namespace tether {

struct MetricsServerTotals {
  std::uint64_t scrapes = 0;           // /metrics answered
  std::uint64_t render_timeouts = 0;   // the control thread did not render in time: 503
  std::uint64_t not_found = 0;         // another path: 404
};

class MetricsServer {
 public:
  static constexpr std::chrono::seconds kRenderWait{5};

  // Binds `config`'s address and port (throws std::runtime_error if it cannot) and starts serving.
  explicit MetricsServer(const MetricsConfig& config);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The control thread: renders once if a scrape waits for it.
  void serve_pending(const std::function<std::string()>& render);
  MetricsServerTotals totals() const;

 private:
  std::string await_rendering(bool& rendered);

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable rendered_;
  std::atomic<bool> wanted_{false};  // a scrape waits: read by the control thread every pass
  std::uint64_t generation_ = 0;  // renderings so far
  std::string latest_;
  MetricsServerTotals totals_;
};

}  // namespace tether
