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

namespace tether {
namespace {

constexpr std::chrono::seconds kClientDeadline{2};

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
      ::chmod(path_.c_str(), 0660) != 0 || ::listen(listener_, 16) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(listener_);
    throw std::runtime_error("control socket " + path_ + ": " + reason);
  }
}

CliServer::~CliServer() {
  for (auto& client : clients_) ::close(client.fd);
  if (listener_ >= 0) {
    ::close(listener_);
    ::unlink(path_.c_str());
  }
}

void CliServer::poll(std::chrono::milliseconds timeout, const Handler& handler) {
  std::vector<pollfd> fds{{listener_, POLLIN, 0}};
  for (const auto& client : clients_)
    fds.push_back({client.fd, static_cast<short>(client.out.empty() ? POLLIN : POLLOUT), 0});
  ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()));

  if (fds[0].revents & POLLIN) accept_clients();
  const auto now = std::chrono::steady_clock::now();
  std::vector<Client> kept;
  for (std::size_t i = 0; i < clients_.size(); ++i) {
    Client& client = clients_[i];
    const short events = i + 1 < fds.size() ? fds[i + 1].revents : 0;
    bool keep = now < client.deadline;
    if (keep && client.out.empty() && (events & (POLLIN | POLLHUP))) read_from(client, handler);
    if (keep && !client.out.empty()) keep = write_to(client);
    if (keep) {
      kept.push_back(std::move(client));
    } else {
      ::close(client.fd);
    }
  }
  clients_ = std::move(kept);
}

void CliServer::accept_clients() {
  for (;;) {
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (clients_.size() >= kMaxClients) {
      ::close(fd);  // too many at once: the newcomer retries
      continue;
    }
    clients_.push_back({fd, {}, {}, 0, std::chrono::steady_clock::now() + kClientDeadline});
  }
}

void CliServer::read_from(Client& client, const Handler& handler) {
  char buffer[1024];
  for (;;) {
    const ssize_t n = ::read(client.fd, buffer, sizeof buffer);
    if (n > 0) {
      client.in.append(buffer, static_cast<std::size_t>(n));
      if (client.in.size() > kMaxLine) {
        client.out = "{\"error\":\"command longer than 4096 bytes\"}\n";
        return;
      }
      continue;
    }
    const bool closed = n == 0;
    const auto newline = client.in.find('\n');
    if (newline != std::string::npos || (closed && !client.in.empty())) {
      std::string line = client.in.substr(0, newline);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      client.out = handler(line) + "\n";
    } else if (closed) {
      client.deadline = {};  // hung up without a command
    }
    return;
  }
}

bool CliServer::write_to(Client& client) {
  while (client.written < client.out.size()) {
    const ssize_t n = ::send(client.fd, client.out.data() + client.written,
                             client.out.size() - client.written, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
    client.written += static_cast<std::size_t>(n);
  }
  return false;  // answered: close
}

}  // namespace tether
