// Bringing a DPDK port up for the workers: one RX and one TX queue per worker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "parsers/packet.hpp"

struct rte_mempool;

namespace tether::dataplane {

struct PortSettings {
  std::string name;    // the configuration's name, for messages
  std::string device;  // PCI address or vdev string
  std::uint16_t queues;
  std::uint32_t mbufs;
  std::uint16_t mbuf_data_size;  // bytes after the headroom: the largest frame in one segment
  std::optional<parsers::MacBytes> mac;
};

struct OpenPort {
  std::uint16_t port_id;
  parsers::MacBytes mac;
  rte_mempool* pool;
  bool rss;
  // The control thread's own TX queue (health probes), after the workers' ones; -1 when the
  // device has no queue to spare (a net_pcap with one tx_pcap per worker).
  int control_queue;
};

// The EAL arguments that make the device exist: `-a PCI` or `--vdev STRING`.
std::string device_argument_flag(const std::string& device);
// The ethdev name of a device string: what precedes the first comma.
std::string device_name(const std::string& device);

// Configures and starts the port; throws std::runtime_error with the reason.
OpenPort open_port(const PortSettings& settings);
void close_port(OpenPort& port);

}  // namespace tether::dataplane
