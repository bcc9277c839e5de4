// tetherctl: the operator's client for tetherd's control socket. Sends one command, prints
// the answer as tables (or the JSON itself with --json), exits non-zero on any error.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace po = boost::program_options;
using nlohmann::json;

namespace {

// Sends `command` and returns the whole answer; throws with a readable reason.
std::string ask(const std::string& path, const std::string& command) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) throw std::runtime_error("socket path too long");
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::strerror(errno));
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("cannot connect to " + path + " (" + reason + "): is tetherd running?");
  }
  const std::string line = command + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    ::close(fd);
    throw std::runtime_error("tetherd closed the connection");
  }
  std::string answer;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) answer.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
  if (answer.empty()) throw std::runtime_error("tetherd sent no answer");
  return answer;
}

void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) width[c] = header[c].size();
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t c = 0; c < cells.size(); ++c)
      std::printf("%-*s%s", static_cast<int>(width[c]), cells[c].c_str(), c + 1 < cells.size() ? "  " : "\n");
  };
  line(header);
  for (const auto& row : rows) line(row);
}

std::string text(const json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

// Tables for the answers that have rows; everything else as indented JSON.
void print_human(const json& answer) {
  if (answer.contains("services")) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : answer["services"])
      for (const auto& b : s["backends"])
        rows.push_back({text(s["name"]), text(s["vip"]) + ":" + text(s["port"]) + "/" + text(s["protocol"]),
                        text(s["dpi"]), text(b["name"]), text(b["weight"]), text(b["state"])});
    print_table({"SERVICE", "ENDPOINT", "DPI", "BACKEND", "WEIGHT", "STATE"}, rows);
  } else if (answer.contains("backends") && answer["backends"].is_array()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& b : answer["backends"])
      rows.push_back({text(b["name"]), text(b["address"]),
                      b["mac"].is_null() ? "-" : text(b["mac"]) + " (" + text(b["mac_source"]) + ")",
                      text(b["state"]), text(b["packets"]), text(b["flows"]), text(b["sessions"]),
                      text(b["live_calls"])});
    print_table({"BACKEND", "ADDRESS", "MAC", "STATE", "PACKETS", "FLOWS", "SESSIONS", "LIVE CALLS"}, rows);
  } else if (answer.contains("sessions")) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : answer["sessions"]) {
      // The key that identifies the entry: a call's digest, or the client that will connect.
      std::string key = s.contains("call_id_digest") ? text(s["call_id_digest"]) : text(s["client"]);
      if (s.contains("client_port")) key.append(":").append(text(s["client_port"]));
      rows.push_back({text(s["kind"]), text(s["service"]), text(s["backend"]), key,
                      text(s["expires_in_ms"])});
    }
    print_table({"KIND", "SERVICE", "BACKEND", "KEY", "EXPIRES IN (MS)"}, rows);
    std::printf("%s of %s matched (%s in the table)%s\n", text(answer["sessions"].size()).c_str(),
                text(answer["matched"]).c_str(), text(answer["total"]).c_str(),
                answer["truncated"].get<bool>() ? ", truncated by the limit" : "");
  } else if (answer.contains("flows")) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& f : answer["flows"])
      rows.push_back({text(f["worker"]), text(f["protocol"]),
                      text(f["client"]) + ":" + text(f["client_port"]),
                      text(f["vip"]) + ":" + text(f["port"]), text(f["service"]), text(f["backend"]),
                      text(f["expires_in_ms"]), f["closing"].get<bool>() ? "closing" : ""});
    print_table({"WORKER", "PROTO", "CLIENT", "VIP", "SERVICE", "BACKEND", "EXPIRES IN (MS)", ""}, rows);
    for (const auto& w : answer["workers"])
      if (text(w["status"]) != "answered")
        std::printf("worker %s: %s\n", text(w["worker"]).c_str(),
                    text(w["status"]) == "busy" ? "still answering an earlier request"
                                                : "did not answer in time");
    std::printf("%s flow(s) sampled%s\n", text(answer["sampled"]).c_str(),
                answer["truncated"].get<bool>() ? "; more may match" : "");
  } else if (answer.contains("workers")) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& w : answer["workers"])
      rows.push_back({text(w["worker"]), text(w["rx_packets"]), text(w["tx_packets"]),
                      text(w["flows"]), text(w["busy_polls"]), text(w["idle_polls"])});
    print_table({"WORKER", "RX", "TX", "FLOWS", "BUSY POLLS", "IDLE POLLS"}, rows);
  } else if (answer.contains("metrics")) {
    std::cout << answer["metrics"].get<std::string>();
  } else {
    std::cout << answer.dump(2) << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path = "/run/tether/tetherd.sock";
  std::vector<std::string> command;
  po::options_description visible(
      "Usage: tetherctl [-s PATH] [--json] COMMAND...\n"
      "Commands: show services|backends|counters|workers, backend weight NAME WEIGHT [SERVICE],\n"
      "show sessions [service NAME] [protocol sip|rtsp|ftp] [backend NAME] [limit N],\n"
      "show flows [worker N] [service NAME] [backend NAME] [limit N],\n"
      "backend drain|enable|disable NAME, backend add NAME ADDRESS SERVICE [weight W] [mac MAC]\n"
      "[port PORT], backend remove NAME [SERVICE], reload, metrics, help\nOptions");
  visible.add_options()("help,h", "print this help")(
      "socket,s", po::value(&socket_path)->value_name("PATH"), "tetherd's control socket")(
      "json", "print tetherd's JSON answer as it is");
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
  std::string line;
  for (const auto& word : command) line += (line.empty() ? "" : " ") + word;
  try {
    const std::string raw = ask(socket_path, line);
    const json answer = json::parse(raw);
    if (vm.count("json")) std::cout << raw;
    else if (!answer.contains("error")) print_human(answer);
    if (answer.contains("error")) {
      std::cerr << "tetherctl: " << answer["error"].get<std::string>() << "\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "tetherctl: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
