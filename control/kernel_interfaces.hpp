// The exception path's control-thread end: for each port with `kernel`, a TAP interface
// (DPDK's net_tap PMD) in tetherd's network namespace that carries the port's MAC and
// addresses, so that the kernel can speak on a port it cannot see (BGP, BFD, VRRP, SSH, ping
// to the box's own address).
//
// Frames reach the kernel from two places: the workers' kernel ring (every frame they do not
// consume, within each worker's rate limit) and the exception ring (neighbour answers, which
// both tetherd and the kernel may have asked for, and replies no probe of tetherd's claims).
// What the kernel sends on the interface leaves through the port as the control thread's
// own packets do (ControlPorts). It runs on the control thread, not on an lcore of its own:
// the path is rate-limited by design, and a dedicated core would cost a worker on a small box.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "control/config.hpp"
#include "control/control_ports.hpp"

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

namespace tether {

// What the control thread counted on the exception path.
struct KernelPathTotals {
  std::uint64_t delivered = 0;         // frames written to the kernel interfaces
  std::uint64_t delivery_failed = 0;   // frames the interfaces did not take
  std::uint64_t sent = 0;              // frames the kernel sent, out through the ports
  std::uint64_t sent_dropped = 0;      // of those, the ports (or worker 0's ring) had no room for
};

class KernelInterfaces {
 public:
  // Creates, configures and starts the interfaces of `config`'s ports that have `kernel`;
  // throws std::runtime_error saying which one failed and why.
  KernelInterfaces(const Config& config, const ControlPorts& ports, std::uint16_t mbuf_data_size);
  ~KernelInterfaces();  // stops the TAP devices and removes their interfaces
  KernelInterfaces(const KernelInterfaces&) = delete;
  KernelInterfaces& operator=(const KernelInterfaces&) = delete;

  bool empty() const { return interfaces_.empty(); }
  // Whether the port with DPDK id `port_id` has a kernel interface.
  bool has(std::uint16_t port_id) const { return find(port_id) != nullptr; }
  // Writes a frame received on the port with DPDK id `mbuf->port` to its kernel interface;
  // takes the mbuf.
  void deliver(rte_mbuf* mbuf);
  // Drains the workers' kernel ring into the interfaces, then sends what the kernel sent.
  void poll(rte_ring* to_kernel);
  const KernelPathTotals& totals() const { return totals_; }

 private:
  struct Interface {
    std::size_t port;         // index into the configuration's ports
    std::uint16_t data_port;  // the DPDK port the kernel speaks through
    std::uint16_t tap_port;   // the net_tap device
    std::string device;       // its vdev name
    std::string name;         // the kernel's name for it
    rte_mempool* pool;        // what the kernel's frames are received into
  };
  const Interface* find(std::uint16_t data_port) const;

  const ControlPorts& ports_;
  std::vector<Interface> interfaces_;
  KernelPathTotals totals_;
};

// Puts the host route `address`/32 or /128 on kernel interface `interface` with route protocol
// `protocol` (`ip route add ADDRESS dev INTERFACE proto PROTOCOL`), or removes it. Returns 0
// (a route already there, or already gone, included; removing through an interface that no
// longer exists too: the kernel dropped its routes with it) or the negative errno.
int set_host_route(const std::string& interface, const IpBytes& address, std::uint8_t protocol,
                   bool present);

}  // namespace tether
