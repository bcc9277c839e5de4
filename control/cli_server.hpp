// The control socket: a Unix stream socket where each client sends one command line and
// gets one JSON document back, then the connection closes.
//
// It runs inside the control thread's loop and never blocks it: sockets are non-blocking,
// every client has a deadline to send its line and to read the answer, and a client that
// misses it is dropped. A line longer than kMaxLine is answered with an error.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace tether {

class CliServer {
 public:
  static constexpr std::size_t kMaxLine = 4096;
  static constexpr std::size_t kMaxClients = 16;
  using Handler = std::function<std::string(const std::string& line)>;

  // Binds `path` with mode 0660. Throws std::runtime_error if another process answers on
  // it (a second tetherd) or it cannot be bound; removes a stale socket file.
  explicit CliServer(std::string path);
  ~CliServer();
  CliServer(const CliServer&) = delete;
  CliServer& operator=(const CliServer&) = delete;

  // Waits up to `timeout` for socket events and serves what is ready.
  void poll(std::chrono::milliseconds timeout, const Handler& handler);
  const std::string& path() const { return path_; }

 private:
  struct Client {
    int fd;
    std::string in;
    std::string out;
    std::size_t written = 0;
    std::chrono::steady_clock::time_point deadline;
  };
  void accept_clients();
  void read_from(Client& client, const Handler& handler);
  bool write_to(Client& client);  // false once finished or failed

  std::string path_;
  int listener_ = -1;
  std::vector<Client> clients_;
};

// JSON string literal for `text` (quotes and escapes included).
std::string json_string(const std::string& text);

}  // namespace tether
