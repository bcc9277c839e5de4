#include "control/metrics_server.hpp"

#include <httplib.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "control/log.hpp"

namespace tether {

namespace {

// Prometheus's text exposition format, as `tetherctl metrics` prints it.
constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";
// Two request threads: Prometheus scrapes one at a time, and a client that holds one open
// leaves the other for it.
constexpr std::size_t kRequestThreads = 2;
// A request line and headers arrive, and the answer leaves, within these or the connection
// is closed: a client that sends or reads slowly holds a thread no longer.
constexpr time_t kReadTimeoutS = 5;
constexpr time_t kWriteTimeoutS = 10;
constexpr std::size_t kKeepAliveRequests = 100;
constexpr std::size_t kMaxRequestBody = 0;  // a scrape is a GET

}  // namespace

MetricsServer::MetricsServer(const MetricsConfig& config) : server_(std::make_unique<httplib::Server>()) {
  server_->new_task_queue = [] { return new httplib::ThreadPool(kRequestThreads); };
  server_->set_read_timeout(kReadTimeoutS, 0);
  server_->set_write_timeout(kWriteTimeoutS, 0);
  server_->set_keep_alive_max_count(kKeepAliveRequests);
  server_->set_payload_max_length(kMaxRequestBody);
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    bool rendered = false;
    std::string body = await_rendering(rendered);
    if (!rendered) {
      response.status = 503;
      response.set_header("Retry-After", "1");
      response.set_content("tetherd's control thread did not answer in time\n", "text/plain");
      return;
    }
    response.set_content(std::move(body), kContentType);
  });
  server_->set_error_handler([this](const httplib::Request&, httplib::Response& response) {
    if (response.status == 404) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++totals_.not_found;
      response.set_content("tetherd serves /metrics only\n", "text/plain");
    }
  });
  const std::string host = format_ip(config.address);
  if (!server_->bind_to_port(host, config.port))
    throw std::runtime_error("metrics: cannot listen on " + config.listen + ": " + std::strerror(errno));
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  TETHER_LOG(info, "metrics: serving /metrics on %s", config.listen.c_str());
}

MetricsServer::~MetricsServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string MetricsServer::await_rendering(bool& rendered) {
  std::unique_lock<std::mutex> lock(mutex_);
  const std::uint64_t asked_at = generation_;
  wanted_.store(true, std::memory_order_release);
  rendered = rendered_.wait_for(lock, kRenderWait, [&] { return generation_ != asked_at; });
  if (rendered) {
    ++totals_.scrapes;
    return latest_;
  }
  ++totals_.render_timeouts;
  return {};
}

void MetricsServer::serve_pending(const std::function<std::string()>& render) {
  if (!wanted_.load(std::memory_order_acquire)) return;
  wanted_.store(false, std::memory_order_relaxed);
  // Rendered outside the lock: the HTTP threads only ever wait for this thread, never it for them.
  std::string text = render();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    latest_ = std::move(text);
    ++generation_;
  }
  rendered_.notify_all();
}

MetricsServerTotals MetricsServer::totals() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return totals_;
}

}  // namespace tether
