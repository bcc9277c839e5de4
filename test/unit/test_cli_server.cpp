// CliServer (control/cli_server.hpp): the operator gets an answer whatever else holds the
// control socket: silent clients, slow ones, huge lines, no file descriptors left.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "control/cli_server.hpp"
#include "control/log.hpp"

using tether::CliServer;
using namespace std::chrono_literals;

namespace {

// A fresh socket path per server, so tests run in parallel with anything else.
struct SocketDirectory {
  std::string path;
  SocketDirectory() {
    char pattern[] = "/tmp/tether-cli-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    path = pattern;
  }
  ~SocketDirectory() {
    ::unlink((path + "/s.sock").c_str());
    ::rmdir(path.c_str());
  }
  std::string socket() const { return path + "/s.sock"; }
};

struct Fd {
  int fd = -1;
  explicit Fd(int value) : fd(value) {}
  Fd(Fd&& other) noexcept : fd(other.fd) { other.fd = -1; }
  Fd(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Fd unconnected() { return Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)); }

void connect_to(const Fd& socket, const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(::connect(socket.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
}

Fd connected(const std::string& path) {
  Fd socket = unconnected();
  connect_to(socket, path);
  return socket;
}

void send_text(const Fd& socket, const std::string& text) {
  REQUIRE(::send(socket.fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size()));
}

// What the server sent, up to its close; "<open>" when it neither answered nor closed yet.
std::string received(const Fd& socket) {
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(socket.fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      text.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return text + "<open>";
    return text;  // closed (0) or reset
  }
}

struct Server {
  // The server logs what it evicts and drops: expected here, so not shown.
  tether::log::Quiet quiet;
  SocketDirectory directory;
  CliServer server{directory.socket()};
  std::vector<std::string> commands;
  std::function<void(const std::string&)> on_command = [](const std::string&) {};
  CliServer::Handler handler = [this](const std::string& line) {
    commands.push_back(line);
    on_command(line);
    return "{\"ran\":" + tether::json_string(line) + "}";
  };
  void poll() { server.poll(0ms, handler); }
  std::string path() const { return directory.socket(); }
};

std::vector<Fd> silent_clients(const std::string& path, std::size_t count) {
  std::vector<Fd> clients;
  for (std::size_t i = 0; i < count; ++i) clients.push_back(connected(path));
  return clients;
}

std::size_t open_descriptors() {
  std::size_t count = 0;
  DIR* directory = ::opendir("/proc/self/fd");
  REQUIRE(directory != nullptr);
  while (const dirent* entry = ::readdir(directory))
    if (entry->d_name[0] != '.') ++count;
  ::closedir(directory);
  return count - 1;  // the directory's own
}

}  // namespace

TEST_CASE("a command is answered and the connection closed", "[cli_server]") {
  Server s;
  const Fd client = connected(s.path());
  send_text(client, "show counters\r\n");
  s.poll();
  CHECK(received(client) == "{\"ran\":\"show counters\"}\n");
  CHECK(s.commands == std::vector<std::string>{"show counters"});
  CHECK(s.server.clients() == 0);
}

TEST_CASE("a command in pieces, or ended by the client's shutdown, is answered", "[cli_server]") {
  Server s;
  const Fd pieces = connected(s.path());
  const Fd no_newline = connected(s.path());
  send_text(pieces, "show ");
  send_text(no_newline, "show workers");
  s.poll();
  CHECK(received(pieces) == "<open>");
  send_text(pieces, "backends\n");
  ::shutdown(no_newline.fd, SHUT_WR);
  s.poll();
  CHECK(received(pieces) == "{\"ran\":\"show backends\"}\n");
  CHECK(received(no_newline) == "{\"ran\":\"show workers\"}\n");
}

TEST_CASE("silent clients filling every slot do not keep the operator out", "[cli_server]") {
  for (const std::size_t attackers : {CliServer::kMaxClients, std::size_t{32}, std::size_t{500}}) {
    Server s;
    const auto idle = silent_clients(s.path(), attackers);
    s.poll();
    REQUIRE(s.server.clients() == std::min(attackers, CliServer::kMaxClients));
    const Fd operator_client = connected(s.path());
    send_text(operator_client, "show counters\n");
    s.poll();
    CHECK(received(operator_client) == "{\"ran\":\"show counters\"}\n");
    CHECK(s.server.clients() <= CliServer::kMaxClients);
    CHECK(s.server.stats().evicted == attackers + 1 - std::min(attackers + 1, CliServer::kMaxClients));
  }
}

TEST_CASE("the oldest idle client gives its slot, unless its command has arrived", "[cli_server]") {
  Server s;
  const auto idle = silent_clients(s.path(), CliServer::kMaxClients);
  s.poll();
  REQUIRE(s.server.clients() == CliServer::kMaxClients);
  // Three newcomers while the table is full. The first evicts idle[0], and while its
  // command runs idle[1] sends one (after the server's poll, as a client can at any moment);
  // answered, it leaves its slot to the second. The third then finds idle[1] the oldest
  // idle client, but with a whole command: answered, not evicted.
  const Fd first = connected(s.path());
  send_text(first, "show services\n");
  const Fd second = connected(s.path());
  const Fd third = connected(s.path());
  s.on_command = [&](const std::string&) { send_text(idle[1], "show workers\n"); };
  s.poll();
  CHECK(received(first) == "{\"ran\":\"show services\"}\n");
  CHECK(received(idle[0]).empty());
  CHECK(received(idle[1]) == "{\"ran\":\"show workers\"}\n");
  CHECK(received(idle[2]) == "<open>");
  CHECK(received(second) == "<open>");
  CHECK(received(third) == "<open>");
  CHECK(s.server.stats().evicted == 1);
  CHECK(s.server.clients() == CliServer::kMaxClients);
}

TEST_CASE("a client that sends nothing, or too slowly, is dropped at its deadline", "[cli_server]") {
  Server s;
  const Fd silent = connected(s.path());
  const Fd slow = connected(s.path());
  const auto start = std::chrono::steady_clock::now();
  // One byte every 100 ms, never a newline: it passes the first-byte deadline, not the
  // whole-command one.
  while (std::chrono::steady_clock::now() - start < CliServer::kCommandWait + 500ms) {
    if (received(slow) != "<open>") break;
    ::send(slow.fd, "x", 1, MSG_NOSIGNAL);
    s.poll();
    std::this_thread::sleep_for(100ms);
    const auto waited = std::chrono::steady_clock::now() - start;
    if (waited > CliServer::kFirstByteWait + 150ms) CHECK(received(silent).empty());
    if (waited < CliServer::kFirstByteWait) CHECK(received(silent) == "<open>");
  }
  const auto lasted = std::chrono::steady_clock::now() - start;
  CHECK(received(slow).empty());
  CHECK(lasted >= CliServer::kCommandWait);
  CHECK(lasted < CliServer::kCommandWait + 500ms);
  CHECK(s.server.stats().timed_out == 2);
  CHECK(s.commands.empty());
}

TEST_CASE("a line without a newline is cut at kMaxLine and answered with an error", "[cli_server]") {
  Server s;
  const Fd client = connected(s.path());
  const std::string flood(64 * 1024, 'a');
  send_text(client, flood);
  s.poll();
  CHECK(received(client) == "{\"error\":\"command longer than 4096 bytes\"}\n");
  CHECK(s.commands.empty());
  CHECK(s.server.stats().too_long == 1);
  // A line of exactly kMaxLine bytes is a command.
  const Fd longest = connected(s.path());
  send_text(longest, std::string(CliServer::kMaxLine, 'b') + "\n");
  s.poll();
  CHECK(s.commands == std::vector<std::string>{std::string(CliServer::kMaxLine, 'b')});
}

TEST_CASE("out of file descriptors, idle clients make room for the operator", "[cli_server]") {
  Server s;
  Fd operator_client = unconnected();  // its descriptor before the limit
  const auto idle = silent_clients(s.path(), 40);
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  // Room for three clients on the server's side, then accept() fails with EMFILE.
  rlimit tight = saved;
  tight.rlim_cur = open_descriptors() + 3;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
  struct Restore {
    rlimit limit;
    ~Restore() { ::setrlimit(RLIMIT_NOFILE, &limit); }
  } restore{saved};
  s.poll();
  CHECK(s.server.clients() <= 3);
  connect_to(operator_client, s.path());
  send_text(operator_client, "show counters\n");
  s.poll();
  CHECK(received(operator_client) == "{\"ran\":\"show counters\"}\n");
  // Nothing is left pending: every silent client was taken off the backlog.
  std::size_t closed = 0;
  for (const Fd& client : idle) closed += received(client) != "<open>";
  CHECK(closed + s.server.clients() == idle.size());
}
