// The control socket: a Unix stream socket where each client sends one command line and
// gets one JSON document back, then the connection closes.
//
// It runs inside the control thread's loop and never blocks it: sockets are non-blocking
// and every client has a deadline. The operator must get in whatever else is connected, so
// a client costs a slot only while it is being answered: one that has not sent a whole
// command yet (silent, or trickling bytes) is dropped after a short wait, and the oldest
// of those gives its slot to any newcomer when the table is full or tetherd is out of file
// descriptors. Everything pending on the listener is accepted on each call, and a newcomer
// whose command has already arrived is answered at once.
//
// Contract for clients: a connection that closes before any byte of an answer was not
// executed (tetherd answers in the same step as it runs a command, and never drops a
// client that is being answered while it reads), so it is safe to send the command again.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tether {

class CliServer {
 public:
  static constexpr std::size_t kMaxLine = 4096;
  static constexpr std::size_t kMaxClients = 64;
  // A client has this long to send its first byte, and this long from connecting to send
  // the whole line (tetherctl sends it with the connection); then this long to read the
  // answer, which covers any answer at memory speed.
  static constexpr std::chrono::milliseconds kFirstByteWait{500};
  static constexpr std::chrono::milliseconds kCommandWait{1000};
  static constexpr std::chrono::milliseconds kAnswerWait{2000};
  using Handler = std::function<std::string(const std::string& line)>;

  // What became of the clients since the start, for the log and the tests.
  struct Stats {
    std::uint64_t accepted = 0;
    std::uint64_t answered = 0;
    std::uint64_t evicted = 0;      // idle, and gave its slot to a newcomer
    std::uint64_t timed_out = 0;    // no whole command, or answer not read, in time
    std::uint64_t too_long = 0;     // a line over kMaxLine: answered with an error
    std::uint64_t turned_away = 0;  // no slot and no idle client to evict: closed at once
  };

  // Binds `path` with mode 0660. Throws std::runtime_error if another process answers on
  // it (a second tetherd) or it cannot be bound; removes a stale socket file.
  explicit CliServer(std::string path);
  ~CliServer();
  CliServer(const CliServer&) = delete;
  CliServer& operator=(const CliServer&) = delete;

  // Waits up to `timeout` for socket events and serves what is ready.
  void poll(std::chrono::milliseconds timeout, const Handler& handler);
  const std::string& path() const { return path_; }
  const Stats& stats() const { return stats_; }
  std::size_t clients() const { return clients_.size(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Client {
    int fd;
    Clock::time_point connected;
    Clock::time_point deadline;
    std::string in;   // at most kMaxLine + 1 bytes: enough to tell a line is too long
    std::string out;  // the answer, once the command has run
    std::size_t written = 0;
    bool idle() const { return out.empty(); }
  };
  enum class Progress { waiting, finished };

  void accept_pending(Clock::time_point now, const Handler& handler);
  bool evict_oldest_idle(Clock::time_point now, const Handler& handler);
  bool turn_away_one();
  Progress serve(Client& client, Clock::time_point now, const Handler& handler);
  Progress read_from(Client& client, Clock::time_point now, const Handler& handler);
  Progress write_to(Client& client);
  void report(Clock::time_point now);

  std::string path_;
  int listener_ = -1;
  int spare_fd_ = -1;  // given up to accept (and close) a newcomer when out of descriptors
  std::vector<Client> clients_;  // in the order they connected
  Stats stats_;
  Stats reported_;
  Clock::time_point next_report_{};
};

// JSON string literal for `text` (quotes and escapes included).
std::string json_string(const std::string& text);

}  // namespace tether
