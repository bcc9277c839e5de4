// tetherd's configuration: the libconfig file read into plain structs and validated.
//
// Every error names the file, the line and the setting's path (for example
// `lab.cfg:14: services.[0].backends.[1].weight: 70000 is out of range 0..65535`), and
// nothing starts on an invalid file. conf/reference.cfg documents every setting.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "control/address.hpp"

namespace tether {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Protocol : std::uint8_t { tcp, udp };
enum class Scheduler : std::uint8_t { maglev, source_hash };
enum class Forwarding : std::uint8_t { dsr };

const char* to_string(Protocol protocol);
const char* to_string(Scheduler scheduler);
const char* to_string(Forwarding forwarding);

struct PortConfig {
  std::string name;
  std::string device;  // PCI address or vdev string ("net_pcap0,rx_pcap=in.pcap,...")
  std::optional<MacBytes> mac;  // default: the device's own
  std::vector<IpBytes> addresses;
};

struct BackendConfig {
  std::string name;
  IpBytes address;
  MacBytes mac;
  std::size_t port;  // index into Config::ports
};

struct ServiceBackend {
  std::size_t backend;  // index into Config::backends
  std::uint32_t weight;
};

struct ServiceConfig {
  std::string name;
  IpBytes vip;
  std::uint16_t port;
  Protocol protocol;
  Scheduler scheduler;
  Forwarding forwarding;
  std::uint32_t idle_timeout_s;
  std::uint32_t fin_timeout_s;  // TCP flows after FIN or RST
  std::vector<ServiceBackend> backends;
};

struct Config {
  std::string source;  // file name, for messages
  unsigned workers = 1;
  std::vector<std::string> eal_args;
  std::string log_level = "info";
  std::uint32_t flows_per_worker = 262144;
  std::uint32_t maglev_size = 65537;
  std::uint32_t mbufs_per_port = 8191;
  std::vector<PortConfig> ports;
  std::vector<BackendConfig> backends;
  std::vector<ServiceConfig> services;
};

inline constexpr std::uint32_t kMaxWeight = 65535;
inline constexpr unsigned kMaxWorkers = 64;

Config load_config_file(const std::string& path);
Config load_config_text(const std::string& text, const std::string& name);  // for tests

bool is_prime(std::uint32_t n);

// The human summary `tetherd --check` prints.
std::string describe(const Config& config);

}  // namespace tether
