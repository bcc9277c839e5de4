#include "control/kernel_interfaces.hpp"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_bus_vdev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "control/log.hpp"

namespace tether {
namespace {

constexpr std::uint16_t kDescriptors = 512;
constexpr const char* kVhostNet = "/dev/vhost-net";
constexpr unsigned kPoolSize = 2047;  // the RX ring's and a burst in flight, per interface
constexpr unsigned kPoolCache = 32;
// The kernel sends frames up to its interface's MTU (1500, the TAP's default, which tetherd
// leaves), whatever tables.mbuf_size gives the ports: net_tap drops a frame its buffer cannot
// hold without a word (a state sync message is a 1442-byte frame). Room for the largest, with
// a VLAN tag.
constexpr std::uint16_t kKernelFrameRoom = RTE_ETHER_MAX_LEN;
constexpr unsigned kBurst = 32;
// Bursts read from each interface and from the kernel ring per poll: the control thread has
// health checks and the CLI to serve too; the rest waits a millisecond.
constexpr unsigned kBurstsPerPoll = 8;

[[noreturn]] void fail(const std::string& interface, const std::string& what, int error) {
  throw std::runtime_error("kernel interface " + interface + ": " + what + ": " +
                           std::strerror(error < 0 ? -error : error));
}

// A file descriptor closed on every path out.
class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  ~Descriptor() {
    if (fd_ >= 0) close(fd_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

void set_up(const std::string& name) {
  const Descriptor fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) fail(name, "socket", errno);
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd.get(), SIOCGIFFLAGS, &request) != 0) fail(name, "reading its flags", errno);
  request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
  if (ioctl(fd.get(), SIOCSIFFLAGS, &request) != 0) fail(name, "setting it up", errno);
}

// An rtnetlink request: a header, its message and room for two address attributes.
template <typename Message>
struct NetlinkRequest {
  nlmsghdr header;
  Message message;
  std::uint8_t attributes[2 * RTA_SPACE(16)];
};

// Appends attribute `type` holding `address`'s 4 or 16 bytes to the request of `used` bytes.
template <typename Message>
std::size_t add_attribute(NetlinkRequest<Message>& request, std::size_t used, unsigned short type,
                          const IpBytes& address) {
  const bool ipv4 = parsers::is_ipv4_mapped(address);
  const std::size_t length = ipv4 ? 4 : 16;
  auto* attribute = reinterpret_cast<rtattr*>(reinterpret_cast<std::uint8_t*>(&request) + NLMSG_ALIGN(used));
  attribute->rta_type = type;
  attribute->rta_len = static_cast<unsigned short>(RTA_LENGTH(length));
  std::memcpy(RTA_DATA(attribute), address.data() + (ipv4 ? 12 : 0), length);
  return NLMSG_ALIGN(used) + RTA_SPACE(length);
}

// Sends one request of `length` bytes to the kernel and reads its acknowledgement: 0, or the
// negative errno the kernel answered (or met on the way).
int netlink_transact(const void* request, std::size_t length) {
  const Descriptor fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (fd.get() < 0) return -errno;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd.get(), request, length, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) return -errno;
  struct {
    nlmsghdr header;
    nlmsgerr error;
  } answer{};
  const ssize_t got = recv(fd.get(), &answer, sizeof answer, 0);
  if (got < static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr))) || answer.header.nlmsg_type != NLMSG_ERROR)
    return -EPROTO;
  return answer.error.error;
}

// RTM_NEWADDR over rtnetlink, as `ip address add ADDRESS/PREFIX dev NAME` does; an address
// the interface already has is fine.
void add_address(const std::string& name, const IpBytes& address, std::uint8_t prefix_length) {
  const unsigned index = if_nametoindex(name.c_str());
  if (index == 0) fail(name, "no such interface", errno);
  NetlinkRequest<ifaddrmsg> request{};
  request.header.nlmsg_type = RTM_NEWADDR;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  request.header.nlmsg_seq = 1;
  request.message.ifa_family = parsers::is_ipv4_mapped(address) ? AF_INET : AF_INET6;
  request.message.ifa_prefixlen = prefix_length;
  request.message.ifa_scope = RT_SCOPE_UNIVERSE;
  request.message.ifa_index = index;
  std::size_t used = NLMSG_LENGTH(sizeof(ifaddrmsg));
  for (const unsigned short type : {IFA_LOCAL, IFA_ADDRESS}) used = add_attribute(request, used, type, address);
  request.header.nlmsg_len = static_cast<std::uint32_t>(used);
  const int error = netlink_transact(&request, used);
  if (error != 0 && error != -EEXIST)
    fail(name, "adding " + format_ip(address) + "/" + std::to_string(prefix_length), error);
}

}  // namespace

KernelInterfaces::KernelInterfaces(const Config& config, const ControlPorts& ports,
                                   std::uint16_t mbuf_data_size)
    : ports_(ports) {
  for (std::size_t p = 0; p < config.ports.size(); ++p) {
    if (!config.ports[p].kernel) continue;
    const PortConfig& port = config.ports[p];
    const std::string& name = port.kernel->name;
    const bool tap = port.kernel->driver == KernelDriver::tap;
    Interface interface{p, ports[p].port_id, 0,
                        (tap ? "net_tap_tether" : "virtio_user_tether") + std::to_string(p), name, nullptr};
    // virtio-user over vhost-net: the kernel makes a TAP interface `iface` and moves frames
    // to and from the guest-style rings itself, without a copy through read()/write().
    if (!tap && access(kVhostNet, R_OK | W_OK) != 0)
      fail(name, std::string("driver virtio-user needs ") + kVhostNet + " (modprobe vhost_net)", errno);
    const std::string arguments =
        tap ? "iface=" + name
            : std::string("path=") + kVhostNet + ",iface=" + name + ",queues=1,queue_size=" + std::to_string(kDescriptors) +
                  ",mac=" + format_mac(ports[p].mac);
    // Added before anything can fail, so that the destructor removes what was made.
    if (int rc = rte_vdev_init(interface.device.c_str(), arguments.c_str()); rc != 0)
      fail(name, tap ? "creating it with net_tap (does /dev/net/tun exist, is the name free?)"
                     : "creating it with virtio_user over vhost-net (is the name free?)",
           rc);
    interfaces_.push_back(interface);
    Interface& made = interfaces_.back();
    if (rte_eth_dev_get_port_by_name(made.device.c_str(), &made.tap_port) != 0)
      fail(name, "finding the net_tap device", ENODEV);
    const std::string pool_name = "kernel_" + std::to_string(p);
    made.pool = rte_pktmbuf_pool_create(pool_name.c_str(), kPoolSize, kPoolCache, 0,
                                        static_cast<std::uint16_t>(RTE_PKTMBUF_HEADROOM +
                                                                   std::max(mbuf_data_size, kKernelFrameRoom)),
                                        rte_eth_dev_socket_id(made.tap_port));
    if (made.pool == nullptr) fail(name, "mbuf pool", rte_errno);
    rte_eth_conf conf{};
    if (int rc = rte_eth_dev_configure(made.tap_port, 1, 1, &conf); rc != 0) fail(name, "configure", rc);
    const auto socket = static_cast<unsigned>(rte_eth_dev_socket_id(made.tap_port));
    if (int rc = rte_eth_rx_queue_setup(made.tap_port, 0, kDescriptors, socket, nullptr, made.pool); rc != 0)
      fail(name, "RX queue", rc);
    if (int rc = rte_eth_tx_queue_setup(made.tap_port, 0, kDescriptors, socket, nullptr); rc != 0)
      fail(name, "TX queue", rc);
    // The port's MAC: the kernel's ARP and ND answers, and its frames, carry the port's own
    // (virtio-user was given it as it was made).
    rte_ether_addr mac;
    std::memcpy(mac.addr_bytes, ports[p].mac.data(), 6);
    if (tap)
      if (int rc = rte_eth_dev_default_mac_addr_set(made.tap_port, &mac); rc != 0) fail(name, "setting its MAC", rc);
    // The addresses go on before the link comes up (net_tap's start brings it up), so that a
    // routing daemon that sees the interface come up finds them there: BIRD 2.0.12, which
    // may still hold the addresses of the interface's previous incarnation (a tetherd
    // killed), otherwise opens BFD's socket on an address not yet there and never tries
    // again. virtio-user's interface exists only once the device has started.
    const auto add_addresses = [&] {
      for (std::size_t a = 0; a < port.addresses.size(); ++a)
        add_address(name, port.addresses[a], prefix_length(port, a));
    };
    if (tap) add_addresses();
    if (int rc = rte_eth_dev_start(made.tap_port); rc != 0) fail(name, "start", rc);
    set_up(name);
    if (!tap) add_addresses();
    TETHER_LOG(info, "port %s: kernel interface %s (%s), %u frames/s toward it", port.name.c_str(),
               name.c_str(), made.device.c_str(), port.kernel->rate);
  }
}

KernelInterfaces::~KernelInterfaces() {
  for (auto& interface : interfaces_) {
    rte_eth_dev_stop(interface.tap_port);
    rte_eth_dev_close(interface.tap_port);
    rte_vdev_uninit(interface.device.c_str());
    rte_mempool_free(interface.pool);
  }
}

const KernelInterfaces::Interface* KernelInterfaces::find(std::uint16_t data_port) const {
  for (const auto& interface : interfaces_)
    if (interface.data_port == data_port) return &interface;
  return nullptr;
}

void KernelInterfaces::deliver(rte_mbuf* mbuf) {
  const Interface* interface = find(mbuf->port);
  if (interface == nullptr || rte_eth_tx_burst(interface->tap_port, 0, &mbuf, 1) != 1) {
    rte_pktmbuf_free(mbuf);
    totals_.delivery_failed++;
    return;
  }
  totals_.delivered++;
}

void KernelInterfaces::poll(rte_ring* to_kernel) {
  void* frames[kBurst];
  for (unsigned b = 0; b < kBurstsPerPoll; ++b) {
    const unsigned count = rte_ring_sc_dequeue_burst(to_kernel, frames, kBurst, nullptr);
    for (unsigned i = 0; i < count; ++i) deliver(static_cast<rte_mbuf*>(frames[i]));
    if (count < kBurst) break;
  }
  rte_mbuf* sent[kBurst];
  for (const auto& interface : interfaces_) {
    for (unsigned b = 0; b < kBurstsPerPoll; ++b) {
      const std::uint16_t count = rte_eth_rx_burst(interface.tap_port, 0, sent, kBurst);
      for (std::uint16_t i = 0; i < count; ++i) {
        totals_.sent++;
        if (!ports_.transmit(interface.port, sent[i])) totals_.sent_dropped++;
      }
      if (count < kBurst) break;
    }
  }
}

int set_host_route(const std::string& interface, const IpBytes& address, std::uint8_t protocol,
                   bool present) {
  const unsigned index = if_nametoindex(interface.c_str());
  if (index == 0) return present ? -errno : 0;  // gone: so are its routes
  const bool ipv4 = parsers::is_ipv4_mapped(address);
  NetlinkRequest<rtmsg> request{};
  request.header.nlmsg_type = present ? RTM_NEWROUTE : RTM_DELROUTE;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (present ? NLM_F_CREATE | NLM_F_EXCL : 0);
  request.header.nlmsg_seq = 1;
  request.message.rtm_family = ipv4 ? AF_INET : AF_INET6;
  request.message.rtm_dst_len = ipv4 ? 32 : 128;
  request.message.rtm_table = RT_TABLE_MAIN;
  request.message.rtm_protocol = protocol;
  // On the link, as `ip route add ADDRESS dev NAME` makes it (IPv6 routes have no scope).
  request.message.rtm_scope = ipv4 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  request.message.rtm_type = RTN_UNICAST;
  std::size_t used = add_attribute(request, NLMSG_LENGTH(sizeof(rtmsg)), RTA_DST, address);
  auto* oif = reinterpret_cast<rtattr*>(reinterpret_cast<std::uint8_t*>(&request) + NLMSG_ALIGN(used));
  oif->rta_type = RTA_OIF;
  oif->rta_len = static_cast<unsigned short>(RTA_LENGTH(sizeof(std::uint32_t)));
  const std::uint32_t oif_index = index;
  std::memcpy(RTA_DATA(oif), &oif_index, sizeof oif_index);
  used = NLMSG_ALIGN(used) + RTA_SPACE(sizeof(std::uint32_t));
  request.header.nlmsg_len = static_cast<std::uint32_t>(used);
  const int error = netlink_transact(&request, used);
  if (present && error == -EEXIST) return 0;
  if (!present && error == -ESRCH) return 0;
  return error;
}

}  // namespace tether
