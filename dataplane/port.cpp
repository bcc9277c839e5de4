#include "dataplane/port.hpp"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <cstring>
#include <stdexcept>

namespace tether::dataplane {
namespace {

constexpr std::uint16_t kRxDescriptors = 1024;
constexpr std::uint16_t kTxDescriptors = 1024;
constexpr unsigned kMempoolCache = 256;

bool is_pci_address(const std::string& device) {
  // dddd:bb:dd.f or bb:dd.f
  const auto colon = device.find(':');
  return colon != std::string::npos && device.find(',') == std::string::npos &&
         device.find('.') != std::string::npos && device.rfind("net_", 0) != 0;
}

[[noreturn]] void fail(const PortSettings& s, const std::string& what, int error) {
  throw std::runtime_error("port " + s.name + " (" + device_name(s.device) + "): " + what + ": " +
                           rte_strerror(error < 0 ? -error : error));
}

}  // namespace

std::string device_argument_flag(const std::string& device) {
  return is_pci_address(device) ? "-a" : "--vdev";
}

std::string device_name(const std::string& device) { return device.substr(0, device.find(',')); }

OpenPort open_port(const PortSettings& s) {
  OpenPort port{};
  if (rte_eth_dev_get_port_by_name(device_name(s.device).c_str(), &port.port_id) != 0)
    throw std::runtime_error("port " + s.name + ": DPDK has no device '" + device_name(s.device) +
                             "' (is the driver loaded and the device bound?)");

  rte_eth_dev_info info;
  if (int rc = rte_eth_dev_info_get(port.port_id, &info); rc != 0) fail(s, "device info", rc);
  if (info.max_rx_queues < s.queues || info.max_tx_queues < s.queues)
    throw std::runtime_error("port " + s.name + ": device has " +
                             std::to_string(info.max_rx_queues) + " RX and " +
                             std::to_string(info.max_tx_queues) + " TX queues, " +
                             std::to_string(s.queues) + " workers need one of each per worker");

  rte_eth_conf conf{};
  const std::uint64_t rss = info.flow_type_rss_offloads &
                            (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
  if (s.queues > 1 && rss != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf = rss;
    port.rss = true;
  }
  bool spare_tx = info.max_tx_queues > s.queues;
  // Some drivers want as many TX queues as RX queues (net_tap): then the control thread
  // has no queue of its own and sends through `outbound` instead.
  if (spare_tx && rte_eth_dev_configure(port.port_id, s.queues, s.queues + 1, &conf) != 0)
    spare_tx = false;
  const std::uint16_t tx_queues = static_cast<std::uint16_t>(s.queues + (spare_tx ? 1 : 0));
  port.control_queue = spare_tx ? s.queues : -1;
  if (!spare_tx)
    if (int rc = rte_eth_dev_configure(port.port_id, s.queues, tx_queues, &conf); rc != 0)
      fail(s, "configure", rc);

  std::uint16_t rx_descriptors = kRxDescriptors, tx_descriptors = kTxDescriptors;
  if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port.port_id, &rx_descriptors, &tx_descriptors); rc != 0)
    fail(s, "descriptor counts", rc);

  const int socket = rte_eth_dev_socket_id(port.port_id);
  const std::string pool_name = "mbufs_" + std::to_string(port.port_id);
  port.pool = rte_pktmbuf_pool_create(pool_name.c_str(), s.mbufs, kMempoolCache, 0,
                                      static_cast<std::uint16_t>(RTE_PKTMBUF_HEADROOM + s.mbuf_data_size),
                                      socket);
  if (port.pool == nullptr) fail(s, "mbuf pool of " + std::to_string(s.mbufs), rte_errno);

  for (std::uint16_t q = 0; q < s.queues; ++q)
    if (int rc = rte_eth_rx_queue_setup(port.port_id, q, rx_descriptors,
                                        static_cast<unsigned>(socket), nullptr, port.pool); rc != 0)
      fail(s, "RX queue " + std::to_string(q), rc);
  for (std::uint16_t q = 0; q < tx_queues; ++q)
    if (int rc = rte_eth_tx_queue_setup(port.port_id, q, tx_descriptors,
                                        static_cast<unsigned>(socket), nullptr); rc != 0)
      fail(s, "TX queue " + std::to_string(q), rc);

  if (s.mac) {
    rte_ether_addr address;
    std::memcpy(address.addr_bytes, s.mac->data(), 6);
    // Not every driver lets the MAC change; the configured one is still what we answer ARP
    // with and write as source, so a driver that refuses only matters on a real NIC.
    rte_eth_dev_default_mac_addr_set(port.port_id, &address);
    port.mac = *s.mac;
  } else {
    rte_ether_addr address;
    if (int rc = rte_eth_macaddr_get(port.port_id, &address); rc != 0) fail(s, "MAC address", rc);
    std::memcpy(port.mac.data(), address.addr_bytes, 6);
  }

  if (int rc = rte_eth_dev_start(port.port_id); rc != 0) fail(s, "start", rc);
  return port;
}

void close_port(OpenPort& port) {
  rte_eth_dev_stop(port.port_id);
  rte_eth_dev_close(port.port_id);
  rte_mempool_free(port.pool);
  port.pool = nullptr;
}

}  // namespace tether::dataplane
