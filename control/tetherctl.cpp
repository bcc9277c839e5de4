// tetherctl: the operator's client for tetherd's control socket. Sends one command, prints
// the answer as tables (or the JSON itself with --json), exits non-zero on any error.
// `tetherctl top` asks again every interval and draws the rates it derives.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace po = boost::program_options;
// Ordered: the tables keep tetherd's order of counters and sections.
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

// How long a refused connection is tried again: tetherd restarting binds its socket first,
// but a socket file nobody listens on is more often a tetherd that is gone.
constexpr std::chrono::milliseconds kRefusedRetryFor{1000};
constexpr std::chrono::milliseconds kFirstBackoff{5};
constexpr std::chrono::milliseconds kLongestBackoff{100};

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An answer that is valid JSON but not of the form the command's printer knows.
struct UnexpectedAnswer : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One exchange that did not happen, and may be tried again: tetherd did not run the command
// (cli_server.hpp: a connection closed before any byte of an answer was not executed).
struct Retry {
  bool refused;  // nobody listening (rather than busy): tried again for a shorter while
  std::string reason;
};

int milliseconds_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<std::chrono::milliseconds::rep>(0, left.count()));
}

// Waits for `events` on `fd` until `deadline`; false when the time is up.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd entry{fd, events, 0};
    const int ready = ::poll(&entry, 1, milliseconds_left(deadline));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) throw Failure(std::string("poll: ") + std::strerror(errno));
  }
}

class Socket {
 public:
  Socket() : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) {
    if (fd_ < 0) throw Failure(std::strerror(errno));
  }
  ~Socket() { ::close(fd_); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// One attempt: the whole answer, a Retry, or a Failure thrown.
std::variant<std::string, Retry> exchange(const sockaddr_un& address, const std::string& path,
                                          const std::string& line, Clock::time_point deadline,
                                          double timeout_s) {
  Socket socket;
  // Non-blocking: a full backlog is EAGAIN at once rather than a wait without a bound.
  if (::connect(socket.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    if (error == EAGAIN || error == EINTR) return Retry{false, "its control socket is busy"};
    if (error == ECONNREFUSED) return Retry{true, "connection refused"};
    throw Failure("cannot connect to " + path + " (" + std::strerror(error) + "): is tetherd running?");
  }
  for (std::size_t sent = 0; sent < line.size();) {
    const ssize_t n = ::send(socket.fd(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!wait_for(socket.fd(), POLLOUT, deadline)) return Retry{false, "it did not take the command"};
    } else if (errno == EPIPE || errno == ECONNRESET) {
      return Retry{false, "it closed the connection before reading the command"};
    } else {
      throw Failure(std::string("cannot send the command: ") + std::strerror(errno));
    }
  }
  std::string answer;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::recv(socket.fd(), buffer, sizeof buffer, 0);
    if (n > 0) {
      answer.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno == ECONNRESET) {
      if (answer.empty()) return Retry{false, "it closed the connection before answering"};
      if (n != 0) throw Failure("tetherd reset the connection in the middle of its answer");
      return answer;
    } else if (errno == EAGAIN || errno == EINTR) {
      // The command was sent: from here on it may be running, so no second try.
      if (!wait_for(socket.fd(), POLLIN, deadline)) {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%g", timeout_s);
        throw Failure(std::string("no ") + (answer.empty() ? "" : "complete ") +
                      "answer from tetherd within " + seconds + " s");
      }
    } else {
      throw Failure(std::string("cannot read the answer: ") + std::strerror(errno));
    }
  }
}

// Sends `command` and returns the whole answer; throws with a readable reason. A busy
// socket (every slot taken, or a full backlog) or a connection tetherd dropped before
// reading the command is tried again, after a short pause, until `timeout_s` is spent.
std::string ask(const std::string& path, const std::string& command, double timeout_s) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) throw Failure("socket path too long");
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  const std::string line = command + "\n";
  auto backoff = kFirstBackoff;
  for (;;) {
    auto outcome = exchange(address, path, line, deadline, timeout_s);
    if (auto* answer = std::get_if<std::string>(&outcome)) return std::move(*answer);
    const Retry& retry = std::get<Retry>(outcome);
    const auto now = Clock::now();
    if (retry.refused && now - start >= kRefusedRetryFor)
      throw Failure("cannot connect to " + path + " (" + retry.reason + "): is tetherd running?");
    if (now + backoff >= deadline) throw Failure("tetherd did not answer: " + retry.reason);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, kLongestBackoff);
  }
}

void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size() && c < width.size(); ++c) width[c] = std::max(width[c], row[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      text += cells[c];
      if (c + 1 < cells.size()) text.append(width[c] - std::min(width[c], cells[c].size()) + 2, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out << text << "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
}

std::string text(const json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

// ADDRESS:PORT, with an IPv6 address in brackets as in a URL.
std::string endpoint(const json& address, const json& port) {
  const std::string host = text(address);
  return (host.find(':') == std::string::npos ? host : "[" + host + "]") + ":" + text(port);
}

std::string upper(std::string word) {
  for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return word;
}

// One printer per command: the command that was sent says what the answer holds. Each
// reads the fields it needs with at(), so an answer of another form throws json::exception
// (or UnexpectedAnswer) instead of printing garbage: the caller then shows the JSON as it came.
using Printer = void (*)(std::ostream& out, const json& answer);

void print_services(std::ostream& out, const json& answer) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : answer.at("services"))
    for (const auto& b : s.at("backends"))
      rows.push_back({text(s.at("name")),
                      endpoint(s.at("vip"), s.at("port")) + "/" + text(s.at("protocol")),
                      text(s.at("scheduler")), text(s.at("dpi")), text(b.at("name")),
                      text(b.at("weight")), text(b.at("state"))});
  print_table(out, {"SERVICE", "ENDPOINT", "SCHEDULER", "DPI", "BACKEND", "WEIGHT", "STATE"}, rows);
}

void print_backends(std::ostream& out, const json& answer) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& b : answer.at("backends"))
    rows.push_back({text(b.at("name")), text(b.at("address")),
                    b.at("mac").is_null() ? "-" : text(b.at("mac")) + " (" + text(b.at("mac_source")) + ")",
                    text(b.at("state")), text(b.at("packets")), text(b.at("flows")),
                    text(b.at("sessions")), text(b.at("live_calls")), text(b.at("connections"))});
  print_table(out, {"BACKEND", "ADDRESS", "MAC", "STATE", "PACKETS", "FLOWS", "SESSIONS", "LIVE CALLS",
                    "CONNECTIONS"}, rows);
  // Weights that adaptive_weight lowered: by how much, and the latency that made it.
  for (const auto& b : answer.at("backends")) {
    if (!b.contains("weights")) continue;
    for (const auto& w : b.at("weights")) {
      if (!w.contains("weight_percent") || w.at("weight_percent").get<int>() == 100) continue;
      char line[256];
      std::snprintf(line, sizeof line, "%s: weight %s in %s at %d%% (check latency %.1f ms, usual %.1f ms)\n",
                    text(b.at("name")).c_str(), text(w.at("weight")).c_str(), text(w.at("service")).c_str(),
                    w.at("weight_percent").get<int>(), w.at("latency_ms").get<double>(),
                    w.at("baseline_ms").get<double>());
      out << line;
    }
  }
  // Held down by sync peers' health reports (or kept despite them): why, and by whom.
  for (const auto& b : answer.at("backends")) {
    if (!b.contains("peer_hold") || text(b.at("peer_hold")) == "none") continue;
    std::string peers;
    for (const auto& p : b.at("reported_down_by")) {
      if (!peers.empty()) peers += ", ";
      peers += text(p.at("address"));
    }
    out << text(b.at("name")) << ": " << text(b.at("peer_hold")) << " (" << peers << ")\n";
  }
}

// Every section of the counters in tetherd's order: name-value tables, the per-worker
// packet counts, and a table of the backends' counters.
void print_counters(std::ostream& out, const json& answer) {
  bool first = true;
  for (const auto& [section, values] : answer.items()) {
    if (!first) out << "\n";
    first = false;
    if (values.is_array()) {
      out << section << ":";
      for (const auto& v : values) out << " " << text(v);
      out << "\n";
    } else if (section == "backends") {
      std::vector<std::string> header{"BACKEND"};
      std::vector<std::vector<std::string>> rows;
      for (const auto& [name, counters] : values.items()) {
        if (rows.empty())
          for (const auto& [counter, value] : counters.items()) header.push_back(upper(counter));
        std::vector<std::string> row{name};
        for (const auto& [counter, value] : counters.items()) row.push_back(text(value));
        rows.push_back(std::move(row));
      }
      print_table(out, header, rows);
    } else {
      std::vector<std::vector<std::string>> rows;
      for (const auto& [name, value] : values.items()) rows.push_back({name, text(value)});
      print_table(out, {upper(section), "VALUE"}, rows);
    }
  }
}

void print_workers(std::ostream& out, const json& answer) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& w : answer.at("workers"))
    rows.push_back({text(w.at("worker")), text(w.at("rx_packets")), text(w.at("tx_packets")),
                    text(w.at("flows")), text(w.at("busy_polls")), text(w.at("idle_polls"))});
  print_table(out, {"WORKER", "RX", "TX", "FLOWS", "BUSY POLLS", "IDLE POLLS"}, rows);
  out << "snapshot generation " << text(answer.at("snapshot_generation")) << " ("
      << text(answer.at("snapshots_live")) << " live)\n";
}

// The strings of a JSON array, comma-separated; "-" for none.
std::string comma_list(const json& names) {
  std::string joined;
  for (const auto& name : names) {
    if (!joined.empty()) joined += ',';
    joined += text(name);
  }
  return joined.empty() ? "-" : joined;
}

void print_sync(std::ostream& out, const json& answer) {
  if (!answer.at("enabled").get<bool>()) {
    out << "state sync is not configured\n";
    return;
  }
  out << "receiving on " << text(answer.at("listen")) << " (" << text(answer.at("interface")) << "), instance "
      << text(answer.at("instance")) << " (sender id " << text(answer.at("sender_id")) << ")\n";
  std::vector<std::vector<std::string>> rows;
  const auto or_dash = [](const json& v) { return v.is_null() ? std::string("-") : text(v); };
  for (const auto& p : answer.at("peers"))
    rows.push_back({text(p.at("address")), or_dash(p.at("sender")), or_dash(p.at("epoch")),
                    or_dash(p.at("last_sequence")), text(p.at("accepted")), or_dash(p.at("last_message_age_ms")),
                    comma_list(p.value("backends_down", json::array()))});
  print_table(out, {"PEER", "SENDER", "EPOCH", "LAST SEQUENCE", "ACCEPTED", "LAST MESSAGE (MS AGO)", "REPORTS DOWN"},
              rows);
  rows.clear();
  for (const auto& [name, value] : answer.at("counters").items()) rows.push_back({name, text(value)});
  print_table(out, {"COUNTER", "VALUE"}, rows);
}

void print_ha(std::ostream& out, const json& answer) {
  if (!answer.at("enabled").get<bool>()) {
    out << "standalone (no 'ha' in the configuration): always forwarding\n";
    return;
  }
  out << text(answer.at("state")) << (answer.at("forwarding").get<bool>() ? ", forwarding" : ", not forwarding")
      << (answer.at("released").get<bool>() ? ", released for a handover" : "") << "\n";
  print_table(out, {"SINCE", "TRANSITIONS", "GRATUITOUS ARP", "UNSOLICITED NA", "PENDING ROUNDS"},
              {{text(answer.at("since")), text(answer.at("transitions")), text(answer.at("gratuitous_arp_sent")),
                text(answer.at("unsolicited_na_sent")), text(answer.at("announcements_pending"))}});
}

void print_drain_progress(std::ostream& out, const json& drain) {
  out << "draining for " << text(drain.at("elapsed_ms")) << " ms: no new flow or session for "
      << text(drain.at("quiet_ms")) << " ms (stops at " << text(drain.at("quiet_s")) << " s, or after "
      << text(drain.at("timeout_s")) << " s), " << text(drain.at("placed")) << " placed since it began\n";
}

void print_announce(std::ostream& out, const json& answer) {
  if (!answer.at("enabled").get<bool>()) {
    out << "no 'announce' in the configuration: no VIP routes\n";
    return;
  }
  out << "VIP routes on " << text(answer.at("interface")) << ", proto " << text(answer.at("route_protocol"))
      << " (added " << text(answer.at("routes_added")) << ", removed " << text(answer.at("routes_removed"))
      << ", refused " << text(answer.at("route_failures")) << ")\n";
  if (answer.at("draining").get<bool>()) print_drain_progress(out, answer.at("drain"));
  if (answer.contains("bulk_awaited") && !answer.at("bulk_awaited").empty())
    out << "awaiting the bulk dump of sync peer(s) " << comma_list(answer.at("bulk_awaited")) << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : answer.at("vips")) {
    std::string services;
    for (const auto& name : v.at("services")) {
      if (!services.empty()) services += ',';
      services += text(name);
    }
    rows.push_back({text(v.at("vip")), v.at("announced").get<bool>() ? "yes" : "no", text(v.at("reason")),
                    v.at("route_installed").get<bool>() ? "yes" : "no", services});
  }
  print_table(out, {"VIP", "ANNOUNCED", "REASON", "ROUTE", "SERVICES"}, rows);
}

void print_drain(std::ostream& out, const json& answer) {
  if (!answer.at("ok").get<bool>()) throw UnexpectedAnswer("not ok");
  out << (answer.at("changed").get<bool>() ? "drain started: every VIP withdrawn\n" : "already draining\n");
  print_drain_progress(out, answer.at("drain"));
}

// ha master|backup|fault|release|claim
void print_ha_change(std::ostream& out, const json& answer) {
  if (!answer.at("ok").get<bool>()) throw UnexpectedAnswer("not ok");
  out << text(answer.at("state"));
  if (answer.contains("released") && answer.at("released").get<bool>()) out << ", released";
  out << (answer.at("changed").get<bool>() ? "" : " (unchanged)") << "\n";
}

// ha check: one line; the exit status is what keepalived's vrrp_script reads.
void print_ha_check(std::ostream& out, const json& answer) {
  if (answer.at("healthy").get<bool>()) {
    out << "healthy (" << text(answer.at("state")) << ")\n";
    return;
  }
  out << "unhealthy (" << text(answer.at("state")) << "):";
  for (const auto& problem : answer.at("problems")) out << " " << text(problem) << ";";
  out << "\n";
}

void print_sessions(std::ostream& out, const json& answer) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : answer.at("sessions")) {
    // The key that identifies the entry: a call's digest, or the client that will connect.
    const std::string key = s.contains("call_id_digest") ? text(s.at("call_id_digest"))
                            : s.contains("client_port") ? endpoint(s.at("client"), s.at("client_port"))
                                                        : text(s.at("client"));
    rows.push_back({text(s.at("kind")), text(s.at("service")), text(s.at("backend")), key,
                    text(s.at("expires_in_ms"))});
  }
  print_table(out, {"KIND", "SERVICE", "BACKEND", "KEY", "EXPIRES IN (MS)"}, rows);
  out << rows.size() << " of " << text(answer.at("matched")) << " matched (" << text(answer.at("total"))
      << " in the table)" << (answer.at("truncated").get<bool>() ? ", truncated by the limit" : "") << "\n";
}

void print_flows(std::ostream& out, const json& answer) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& f : answer.at("flows"))
    rows.push_back({text(f.at("worker")), text(f.at("protocol")),
                    endpoint(f.at("client"), f.at("client_port")), endpoint(f.at("vip"), f.at("port")),
                    text(f.at("service")),
                    text(f.at("backend")), text(f.at("expires_in_ms")),
                    f.at("closing").get<bool>() ? "closing" : ""});
  print_table(out, {"WORKER", "PROTO", "CLIENT", "VIP", "SERVICE", "BACKEND", "EXPIRES IN (MS)", ""}, rows);
  for (const auto& w : answer.at("workers"))
    if (text(w.at("status")) != "answered")
      out << "worker " << text(w.at("worker")) << ": "
          << (text(w.at("status")) == "busy" ? "still answering an earlier request" : "did not answer in time")
          << "\n";
  out << text(answer.at("sampled")) << " flow(s) sampled"
      << (answer.at("truncated").get<bool>() ? "; more may match" : "") << "\n";
}

// backend weight|drain|enable|disable|add|remove: the change is live in a new snapshot.
void print_done(std::ostream& out, const json& answer) {
  if (!answer.at("ok").get<bool>()) throw UnexpectedAnswer("not ok");
  out << "done: snapshot generation " << text(answer.at("snapshot_generation")) << "\n";
}

void print_reload(std::ostream& out, const json& answer) {
  print_done(out, answer);
  auto names = [](const json& list) {
    std::string joined;
    for (const auto& name : list) joined += (joined.empty() ? "" : ", ") + text(name);
    return joined.empty() ? std::string("none") : joined;
  };
  out << "backends added: " << names(answer.at("backends_added")) << "\n"
      << "backends removed: " << names(answer.at("backends_removed")) << "\n";
}

void print_metrics(std::ostream& out, const json& answer) { out << answer.at("metrics").get<std::string>(); }

void print_help(std::ostream& out, const json& answer) {
  for (const auto& command : answer.at("commands")) out << command.get<std::string>() << "\n";
}

void print_json(std::ostream& out, const json& answer) { out << answer.dump(2) << "\n"; }

// `tetherctl top`: what one look at tetherd gives, and when it was taken.
struct TopSample {
  Clock::time_point at;
  json services, backends, workers, sessions;
};

TopSample take_top_sample(const std::string& path, double timeout_s) {
  TopSample sample;
  sample.services = json::parse(ask(path, "show services", timeout_s));
  sample.backends = json::parse(ask(path, "show backends", timeout_s));
  sample.workers = json::parse(ask(path, "show workers", timeout_s));
  sample.sessions = json::parse(ask(path, "show sessions limit 1", timeout_s));
  sample.at = Clock::now();
  return sample;
}

std::string per_second(double value) {
  char text[32];
  std::snprintf(text, sizeof text, value >= 100 ? "%.0f" : "%.1f", value);
  return text;
}

// One screen from two samples: per backend its state, weights, packets, new flows and
// sessions a second, and its live sessions by protocol (SIP calls, RTSP and FTP control
// connections); per worker its busy share; the session table's live entries by protocol.
// The first sample's entries missing from the second (a backend removed) are skipped.
void print_top(std::ostream& out, const TopSample& before, const TopSample& now, double interval_s) {
  const double seconds = std::max(1e-3, std::chrono::duration<double>(now.at - before.at).count());
  const auto rate = [&](const json& then, const json& later, const char* field) {
    const double delta = later.at(field).get<double>() - then.at(field).get<double>();
    return per_second(std::max(0.0, delta) / seconds);
  };
  out << "tether top: every " << per_second(interval_s) << " s, Ctrl-C quits\n\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& backend : now.backends.at("backends")) {
    const std::string name = text(backend.at("name"));
    std::string weights;
    for (const auto& service : now.services.at("services"))
      for (const auto& member : service.at("backends"))
        if (text(member.at("name")) == name) {
          if (!weights.empty()) weights += ',';  // one word: a column of its own
          weights.append(text(service.at("name"))).append(1, ':').append(text(member.at("weight")));
        }
    const json* then = nullptr;
    for (const auto& old : before.backends.at("backends"))
      if (text(old.at("name")) == name) then = &old;
    if (then == nullptr) continue;
    rows.push_back({name, text(backend.at("state")), weights.empty() ? "-" : weights,
                    rate(*then, backend, "packets"), rate(*then, backend, "flows"),
                    rate(*then, backend, "sessions"), text(backend.at("live_calls")),
                    text(backend.at("live_rtsp_connections")), text(backend.at("live_ftp_connections"))});
  }
  print_table(out, {"BACKEND", "STATE", "WEIGHTS", "PACKETS/S", "NEW FLOWS/S", "SESSIONS/S", "LIVE CALLS",
                    "LIVE RTSP", "LIVE FTP"}, rows);
  out << "\n";
  rows.clear();
  const json& workers_before = before.workers.at("workers");
  for (const auto& worker : now.workers.at("workers")) {
    const std::size_t index = worker.at("worker").get<std::size_t>();
    if (index >= workers_before.size()) continue;
    const json& then = workers_before[index];
    const double loop = worker.at("loop_cycles").get<double>() - then.at("loop_cycles").get<double>();
    const double busy = worker.at("busy_cycles").get<double>() - then.at("busy_cycles").get<double>();
    rows.push_back({text(worker.at("worker")), per_second(loop > 0 ? 100 * busy / loop : 0) + "%",
                    rate(then, worker, "rx_packets"), rate(then, worker, "forwarded"), text(worker.at("flows"))});
  }
  print_table(out, {"WORKER", "BUSY", "RX/S", "FORWARDED/S", "FLOWS"}, rows);
  out << "\nlive sessions:";
  const json& by_protocol = now.sessions.at("live_by_protocol");
  if (by_protocol.empty()) out << " none";
  for (const auto& [protocol, count] : by_protocol.items()) out << " " << protocol << " " << text(count);
  out << "\n";
}

// Redraws until interrupted (or `iterations` screens); an answer of an unexpected form ends it.
int run_top(const std::string& path, double timeout_s, double interval_s, unsigned iterations) {
  const bool terminal = isatty(STDOUT_FILENO) != 0;
  try {
    TopSample before = take_top_sample(path, timeout_s);
    for (unsigned shown = 0; iterations == 0 || shown < iterations; ++shown) {
      std::this_thread::sleep_for(std::chrono::duration<double>(interval_s));
      TopSample now = take_top_sample(path, timeout_s);
      std::ostringstream screen;
      print_top(screen, before, now, interval_s);
      // Home and clear on a terminal; one screen after another in a file or pipe.
      std::cout << (terminal ? "\x1b[H\x1b[2J" : "\n") << screen.str() << std::flush;
      before = std::move(now);
    }
  } catch (const Failure& e) {
    std::cerr << "tetherctl: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {  // json::exception: another tetherd's answers
    std::cerr << "tetherctl top: an answer is not of the form this tetherctl knows (" << e.what() << ")\n";
    return 1;
  }
  return 0;
}

Printer printer_for(const std::vector<std::string>& command) {
  const std::string& verb = command.at(0);
  const std::string object = command.size() > 1 ? command[1] : "";
  if (verb == "show") {
    if (object == "services") return print_services;
    if (object == "backends") return print_backends;
    if (object == "counters") return print_counters;
    if (object == "workers") return print_workers;
    if (object == "sync") return print_sync;
    if (object == "ha") return print_ha;
    if (object == "announce") return print_announce;
    if (object == "sessions") return print_sessions;
    if (object == "flows") return print_flows;
  }
  if (verb == "backend") return print_done;
  if (verb == "ha") return object == "check" ? print_ha_check : print_ha_change;
  if (verb == "reload") return print_reload;
  if (verb == "drain") return print_drain;
  if (verb == "metrics") return print_metrics;
  if (verb == "help") return print_help;
  return print_json;  // a command this tetherctl does not know: what tetherd said, as it is
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path = "/run/tether/tetherd.sock";
  double timeout_s = 10;
  double interval_s = 1;
  unsigned iterations = 0;
  std::vector<std::string> command;
  po::options_description visible(
      "Usage: tetherctl [-s PATH] [--json] [--timeout SECONDS] COMMAND...\n"
      "Commands: show services|backends|counters|workers|sync|ha|announce,\n"
      "backend weight NAME WEIGHT [SERVICE],\n"
      "show sessions [service NAME] [protocol sip|rtsp|ftp|flow] [backend NAME] [limit N],\n"
      "show flows [worker N] [service NAME] [backend NAME] [limit N],\n"
      "backend drain|enable|disable NAME, backend add NAME ADDRESS SERVICE [weight W] [mac MAC]\n"
      "[port PORT], backend remove NAME [SERVICE], ha master|backup|fault|release|claim,\n"
      "ha check (exit 0 only when healthy), drain, reload, metrics, help,\n"
      "top [--interval SECONDS] [--iterations N] (a live view; Ctrl-C quits)\nOptions");
  visible.add_options()("help,h", "print this help")(
      "socket,s", po::value(&socket_path)->value_name("PATH"), "tetherd's control socket")(
      "json", "print tetherd's JSON answer as it is")(
      "timeout", po::value(&timeout_s)->value_name("SECONDS"),
      "give up after SECONDS (default 10), trying again meanwhile while the socket is busy")(
      "interval", po::value(&interval_s)->value_name("SECONDS"), "top: redraw every SECONDS (default 1)")(
      "iterations", po::value(&iterations)->value_name("N"), "top: stop after N screens (default: never)");
  po::options_description all;
  all.add(visible).add_options()("command", po::value(&command));
  po::positional_options_description positional;
  positional.add("command", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "tetherctl: " << e.what() << "\n" << visible;
    return 2;
  }
  if (vm.count("help") || command.empty()) {
    std::cout << visible;
    return command.empty() && !vm.count("help") ? 2 : 0;
  }
  if (!(timeout_s > 0 && timeout_s <= 3600)) {
    std::cerr << "tetherctl: --timeout must be more than 0 and at most 3600 seconds\n";
    return 2;
  }
  if (command[0] == "top") {
    if (command.size() > 1) {
      std::cerr << "tetherctl: top takes no words, only --interval and --iterations\n";
      return 2;
    }
    if (!(interval_s >= 0.1 && interval_s <= 3600)) {
      std::cerr << "tetherctl: --interval must be from 0.1 to 3600 seconds\n";
      return 2;
    }
    return run_top(socket_path, timeout_s, interval_s, iterations);
  }
  std::string line;
  for (const auto& word : command) line += (line.empty() ? "" : " ") + word;
  std::string raw;
  json answer;
  try {
    raw = ask(socket_path, line, timeout_s);
    answer = json::parse(raw);
  } catch (const Failure& e) {
    std::cerr << "tetherctl: " << e.what() << "\n";
    return 1;
  } catch (const json::exception&) {
    std::cerr << "tetherctl: tetherd's answer is not JSON: " << raw.substr(0, 200) << "\n";
    return 1;
  }
  if (vm.count("json")) std::cout << raw;
  if (answer.is_object() && answer.contains("error")) {
    std::cerr << "tetherctl: " << text(answer["error"]) << "\n";
    return 1;
  }
  // keepalived's vrrp_script reads only the exit status.
  const int status = command[0] == "ha" && command.size() > 1 && command[1] == "check" &&
                             answer.is_object() && !answer.value("healthy", false)
                         ? 1
                         : 0;
  if (vm.count("json")) return status;
  // Rendered whole before printing, so that an answer of an unexpected form (a tetherd of
  // another version) never leaves half a table.
  std::ostringstream out;
  try {
    printer_for(command)(out, answer);
  } catch (const std::exception&) {  // json::exception or UnexpectedAnswer
    std::cout << answer.dump(2) << "\n";
    std::cerr << "tetherctl: the answer to '" << line << "' is not of the form this tetherctl knows; "
              << "shown as tetherd sent it\n";
    return 1;
  }
  std::cout << out.str();
  return status;
}
