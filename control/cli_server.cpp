#include "control/cli_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "control/log.hpp"

namespace tether {
namespace {

// As many pending connections as the kernel allows (net.core.somaxconn caps it): a full
// backlog makes connect() fail, and the operator's tetherctl is among those.
constexpr int kListenBacklog = 4096;
constexpr std::chrono::seconds kReportEvery{10};

sockaddr_un address_of(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path)
    throw std::runtime_error("control socket path too long: " + path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

}  // namespace

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        // Control bytes, and any byte past ASCII (input may be junk, not UTF-8): escaped,
        // so the answer is always valid JSON.
        if (c < 0x20 || c >= 0x7f) {
          char escape[8];
          std::snprintf(escape, sizeof escape, "\\u%04x", c);
          out += escape;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

CliServer::CliServer(std::string path) : path_(std::move(path)) {
  const sockaddr_un address = address_of(path_);
  // Someone answering on the path is another tetherd: refuse rather than steal its socket.
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe >= 0) {
    const bool alive = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::close(probe);
    if (alive)
      throw std::runtime_error("control socket " + path_ + " is in use: is another tetherd running?");
  }
  ::unlink(path_.c_str());
  listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener_ < 0) throw std::runtime_error(std::string("control socket: ") + std::strerror(errno));
  if (::bind(listener_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::chmod(path_.c_str(), 0660) != 0 || ::listen(listener_, kListenBacklog) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(listener_);
    throw std::runtime_error("control socket " + path_ + ": " + reason);
  }
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

CliServer::~CliServer() {
  for (auto& client : clients_) ::close(client.fd);
  if (spare_fd_ >= 0) ::close(spare_fd_);
  if (listener_ >= 0) {
    ::close(listener_);
    ::unlink(path_.c_str());
  }
}

void CliServer::poll(std::chrono::milliseconds timeout, const Handler& handler) {
  std::vector<pollfd> fds;
  fds.reserve(clients_.size() + 1);
  fds.push_back({listener_, POLLIN, 0});
  for (const auto& client : clients_)
    fds.push_back({client.fd, static_cast<short>(client.idle() ? POLLIN : POLLOUT), 0});
  ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()));
  const auto now = Clock::now();

  // The clients held come first: a command that has arrived is answered before a newcomer
  // could take its slot.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < clients_.size(); ++i) {
    Client& client = clients_[i];
    Progress progress = fds[i + 1].revents != 0 ? serve(client, now, handler) : Progress::waiting;
    if (progress == Progress::waiting && now >= client.deadline) {
      ++stats_.timed_out;
      progress = Progress::finished;
    }
    if (progress == Progress::finished) {
      ::close(client.fd);
    } else {
      if (kept != i) clients_[kept] = std::move(client);
      ++kept;
    }
  }
  clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(kept), clients_.end());
  if (fds[0].revents & POLLIN) accept_pending(now, handler);
  report(now);
}

void CliServer::accept_pending(Clock::time_point now, const Handler& handler) {
  // At most a backlog's worth per call: what is pending now, not a stream that never ends.
  for (int accepted = 0; accepted < kListenBacklog; ++accepted) {
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // Out of descriptors: an idle client makes room, or the newcomer is turned away, so
      // that nothing stays pending (and wakes every poll) behind it.
      if ((errno == EMFILE || errno == ENFILE) && (evict_oldest_idle(now, handler) || turn_away_one()))
        continue;
      return;  // EAGAIN: nothing more pending
    }
    ++stats_.accepted;
    if (clients_.size() >= kMaxClients && !evict_oldest_idle(now, handler)) {
      ::close(fd);  // every slot is answering: the newcomer retries
      ++stats_.turned_away;
      continue;
    }
    Client client{fd, now, now + kFirstByteWait, {}, {}, 0};
    // tetherctl sends its command with the connection: most newcomers are answered here.
    if (serve(client, now, handler) == Progress::finished) {
      ::close(fd);
      continue;
    }
    clients_.push_back(std::move(client));
  }
}

bool CliServer::evict_oldest_idle(Clock::time_point now, const Handler& handler) {
  for (auto it = clients_.begin(); it != clients_.end(); ++it) {
    if (!it->idle()) continue;
    // Its command may have arrived since the poll: then it is answered, not evicted.
    const Progress progress = serve(*it, now, handler);
    if (progress == Progress::waiting && !it->idle()) continue;  // answered, still writing
    if (progress == Progress::waiting) ++stats_.evicted;
    ::close(it->fd);
    clients_.erase(it);
    return true;
  }
  return false;
}

bool CliServer::turn_away_one() {
  // The spare descriptor is what lets us take the newcomer off the backlog to close it.
  if (spare_fd_ < 0) return false;
  ::close(spare_fd_);
  const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) {
    ::close(fd);
    ++stats_.turned_away;
  }
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0;
}

CliServer::Progress CliServer::serve(Client& client, Clock::time_point now, const Handler& handler) {
  if (client.idle() && read_from(client, now, handler) == Progress::finished) return Progress::finished;
  return client.idle() ? Progress::waiting : write_to(client);
}

CliServer::Progress CliServer::read_from(Client& client, Clock::time_point now, const Handler& handler) {
  char buffer[kMaxLine + 1];
  for (;;) {
    // Never more than one byte past the longest line: enough to know the line is too long.
    const std::size_t room = kMaxLine + 1 - client.in.size();
    const ssize_t n = ::recv(client.fd, buffer, room, MSG_DONTWAIT);
    if (n > 0) {
      const std::size_t scanned = client.in.size();
      client.in.append(buffer, static_cast<std::size_t>(n));
      const auto newline = client.in.find('\n', scanned);
      if (newline != std::string::npos) {
        client.in.resize(newline);
        break;
      }
      if (client.in.size() > kMaxLine) {
        ++stats_.too_long;
        client.out = "{\"error\":\"command longer than " + std::to_string(kMaxLine) + " bytes\"}\n";
        client.in = std::string();
        client.deadline = now + kAnswerWait;
        return Progress::waiting;
      }
      continue;
    }
    if (n == 0) {
      // Finished sending without a newline (`printf 'show counters' | socat ...`): what it
      // sent is its command; nothing at all is a client that left.
      if (client.in.empty()) return Progress::finished;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      // Bytes without a whole line: a slow client gets until kCommandWait, no longer.
      if (!client.in.empty()) client.deadline = client.connected + kCommandWait;
      return Progress::waiting;
    }
    return Progress::finished;  // reset
  }
  if (!client.in.empty() && client.in.back() == '\r') client.in.pop_back();
  client.out = handler(client.in) + "\n";
  client.in = std::string();
  client.deadline = Clock::now() + kAnswerWait;  // the command itself may have taken a while
  ++stats_.answered;
  return Progress::waiting;
}

CliServer::Progress CliServer::write_to(Client& client) {
  while (client.written < client.out.size()) {
    const ssize_t n = ::send(client.fd, client.out.data() + client.written,
                             client.out.size() - client.written, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? Progress::waiting : Progress::finished;
    }
    client.written += static_cast<std::size_t>(n);
  }
  return Progress::finished;  // answered: close
}

void CliServer::report(Clock::time_point now) {
  if (now < next_report_) return;
  const Stats& s = stats_;
  const Stats& r = reported_;
  if (s.evicted == r.evicted && s.timed_out == r.timed_out && s.turned_away == r.turned_away &&
      s.too_long == r.too_long)
    return;
  // At most every kReportEvery: a flood of connections must not become a flood of log lines.
  TETHER_LOG(warning,
             "control socket: %llu idle client(s) evicted, %llu timed out, %llu turned away, "
             "%llu line(s) too long; %llu command(s) answered (since the last report)",
             static_cast<unsigned long long>(s.evicted - r.evicted),
             static_cast<unsigned long long>(s.timed_out - r.timed_out),
             static_cast<unsigned long long>(s.turned_away - r.turned_away),
             static_cast<unsigned long long>(s.too_long - r.too_long),
             static_cast<unsigned long long>(s.answered - r.answered));
  reported_ = stats_;
  next_report_ = now + kReportEvery;
}

}  // namespace tether
