// tetherd's configuration: the libconfig file read into plain structs and validated.
//
// Every error names the file, the line and the setting's path (for example
// `lab.cfg:14: services.[0].backends.[1].weight: 70000 is out of range 0..65535`), and
// nothing starts on an invalid file. conf/reference.cfg documents every setting.
//
// Where each part lives: config_read.cpp reads the file, through config_file.hpp (libconfig's
// settings, each integer's exact value, names and types checked); config_validate.cpp holds
// the rules the file and the control commands share; config_eal.cpp judges EAL arguments;
// config_describe.cpp writes `tetherd --check`'s summary; config_merge.cpp merges a reload
// into the running configuration.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "control/address.hpp"
#include "dataplane/content_rules.hpp"
#include "dataplane/counters.hpp"
#include "parsers/enum_names.hpp"

namespace tether {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Protocol : std::uint8_t { tcp, udp };

#define TETHER_SCHEDULERS(X) \
  X(maglev, "maglev") X(source_hash, "source-hash") X(least_sessions, "least-sessions")
enum class Scheduler : std::uint8_t { TETHER_SCHEDULERS(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(Scheduler, TETHER_SCHEDULERS)

// How a service's packets reach their backend (README "Tunnel forwarding"): dsr rewrites the
// MACs only (the backend is on the port's segment); ipip wraps the packet in an IP header to
// the backend's address (IPv4 in IPv4, IPv6 in IPv6, IPv6 in IPv4 for an IPv4-only backend);
// gue puts it in UDP (GUE variant 1, direct IP over UDP) with the flow's entropy in the
// outer source port. The enum's order is the dataplane's (dataplane/tunnel.hpp).
#define TETHER_FORWARDINGS(X) X(dsr, "dsr") X(ipip, "ipip") X(gue, "gue")
// (dataplane::Forwarding is the same list: snapshot_builder.cpp converts by value.)
enum class Forwarding : std::uint8_t { TETHER_FORWARDINGS(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(Forwarding, TETHER_FORWARDINGS)
// What a service's signalling is inspected for (see README "Session awareness"): the same
// enum that indexes the per-protocol counters; no value (dpi "none") inspects nothing.
using dataplane::SessionProtocol;

const char* to_string(Protocol protocol);
const char* to_string(std::optional<SessionProtocol> dpi);

// The port's kernel interface (the exception path): a TAP interface that takes every frame
// the dataplane does not consume, and whose frames leave through the port.
// How the kernel interface is made: DPDK's TAP PMD, or virtio-user over the kernel's
// vhost-net (fewer copies; needs /dev/vhost-net).
enum class KernelDriver : std::uint8_t { tap, virtio_user };
const char* to_string(KernelDriver driver);
// A duration as the configuration writes it: seconds, with the milliseconds if any ("0.25").
std::string seconds_text(std::uint32_t ms);

struct KernelInterfaceConfig {
  std::string name;  // the interface's name in tetherd's network namespace
  KernelDriver driver = KernelDriver::tap;
  std::uint32_t rate = 20000;  // frames per second toward the kernel, split between workers
  std::uint32_t burst = 512;   // frames above the rate a quiet interface may take at once
  bool operator==(const KernelInterfaceConfig&) const = default;
};

// A static route of a port: backends within `prefix`/`length` are reached through `via`.
struct RouteConfig {
  IpBytes prefix;
  std::uint8_t length;  // of the prefix, in the family's own bits (24 for 198.51.100.0/24)
  IpBytes via;
  bool operator==(const RouteConfig&) const = default;
};

// The IANA-registered port of GUE (the service name "gue", 6080/udp), which Katran uses too.
// GLB's director defaults to 19523: set `tunnel.gue_port` to match the backends'.
inline constexpr std::uint16_t kGuePort = 6080;
// An Ethernet link's MTU. 1280, IPv6's minimum link MTU, is the least a port may have.
inline constexpr std::uint16_t kDefaultMtu = 1500;

struct PortConfig {
  std::string name;
  std::string device;  // PCI address or vdev string ("net_pcap0,rx_pcap=in.pcap,...")
  std::optional<MacBytes> mac;  // default: the device's own
  std::vector<IpBytes> addresses;
  // Of each address, for the kernel interface: written "198.18.0.1/24"; default /32, /128.
  std::vector<std::uint8_t> prefix_lengths;
  std::optional<std::uint32_t> mbufs;  // default: Config::mbufs_per_port
  std::optional<KernelInterfaceConfig> kernel;
  // The largest IP packet the port's link carries: a tunnelled packet that would exceed it
  // once wrapped is refused with ICMP "fragmentation needed" / "packet too big".
  std::uint16_t mtu = kDefaultMtu;
  // How backends off the port's segment are reached (control/routes.hpp): the default
  // gateway of each family, and static routes; the next hop's MAC is resolved by ARP/ND.
  std::vector<IpBytes> gateways;  // at most one per family
  std::vector<RouteConfig> routes;
  // The outer source of tunnelled packets, at most one per family (default: the port's
  // first address of the family), and the UDP port GUE packets go to.
  std::vector<IpBytes> tunnel_sources;
  std::uint16_t gue_port = kGuePort;
  bool operator==(const PortConfig&) const = default;
};

// The prefix length of the port's address `index` on its kernel interface.
std::uint8_t prefix_length(const PortConfig& port, std::size_t index);
// The address the packets of a backend on `port` are sent to at layer 2 (whose MAC ARP/ND
// resolve): the `via` of the longest static route or on-link prefix of the port that holds
// the backend (on-link: the backend itself), else the port's gateway of the backend's family,
// else the backend itself (a segment without a gateway, as before routing existed).
IpBytes next_hop(const PortConfig& port, const IpBytes& backend);
// The outer source address of tunnelled packets to a backend of that family on `port`:
// `tunnel.sources`' address of the family, else the port's first address of it.
std::optional<IpBytes> tunnel_source(const PortConfig& port, bool ipv4);

struct BackendConfig {
  std::string name;
  IpBytes address;
  std::optional<MacBytes> mac;  // static; without it the MAC is resolved by ARP/ND
  std::size_t port;             // index into Config::ports
  // Gone since a reload or `backend remove`; the index stays reserved so that flows, sessions
  // and counters never mistake another backend for it.
  bool removed = false;
};

// Resolution of backend MACs by ARP (IPv4) and neighbour discovery (IPv6).
struct NeighbourConfig {
  std::uint32_t refresh_s = 30;  // a resolved MAC is confirmed again this often
  std::uint32_t retry_ms = 1000;  // between unanswered requests
  std::uint32_t attempts = 3;     // unanswered requests before a resolved MAC is given up
};

struct ServiceBackend {
  std::size_t backend;  // index into Config::backends
  std::uint32_t weight;
  // FTP: the passive (PASV/EPSV) data ports this backend's server hands out; 0 when unknown.
  std::uint16_t passive_first = 0;
  std::uint16_t passive_last = 0;
};

struct PoolConfig {
  std::string name;
  std::vector<ServiceBackend> backends;
};

struct RuleConfig {
  dataplane::RuleField field;
  std::string header;
  std::string pattern;
  bool caseless;
  std::size_t pool;  // 0: the service's `backends`; i > 0: ServiceConfig::pools[i - 1]
};

#define TETHER_HEALTH_CHECK_TYPES(X) X(icmp, "icmp") X(tcp, "tcp") X(sip_options, "sip-options")
enum class HealthCheckType : std::uint8_t { TETHER_HEALTH_CHECK_TYPES(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(HealthCheckType, TETHER_HEALTH_CHECK_TYPES)

struct HealthCheckConfig {
  HealthCheckType type;
  std::uint32_t interval_ms;
  std::uint32_t timeout_ms;
  std::uint32_t rise;  // consecutive successes that bring a down backend up
  std::uint32_t fall;  // consecutive failures that take an up backend down
};

struct ServiceConfig {
  std::string name;
  IpBytes vip;
  std::uint16_t port;
  Protocol protocol;
  Scheduler scheduler;
  Forwarding forwarding;
  std::uint32_t idle_timeout_ms;  // seconds in the file, to the millisecond: a test storm needs less than 1 s
  std::uint32_t fin_timeout_s;  // TCP flows after FIN or RST
  std::optional<SessionProtocol> dpi;  // none: not inspected
  std::uint32_t session_timeout_s = 0;      // SIP call / RTSP session without signalling
  std::uint32_t linger_s = 0;               // SIP: after BYE or CANCEL
  std::uint32_t expectation_timeout_s = 0;  // FTP: PASV/EPSV until the data connection
  std::vector<ServiceBackend> backends;  // the default pool
  std::vector<PoolConfig> pools;         // further pools that content rules choose
  std::vector<RuleConfig> rules;
  std::optional<HealthCheckConfig> health_check;
  bool removed = false;  // as BackendConfig::removed: flows and sessions hold service indices
};

// How long a flow of `service` lives without packets: idle, or after FIN/RST.
inline std::uint32_t flow_lifetime_ms(const ServiceConfig& service, bool closing) {
  return closing ? service.fin_timeout_s * 1000 : service.idle_timeout_ms;
}

// State sync with other tether instances (docs/design.md "State sync"): what this instance
// accepts from its peers. Messages travel as UDP over the kernel interface of `port`.
struct SyncConfig {
  std::size_t port = 0;  // index into Config::ports; the port has a kernel interface
  std::uint16_t listen_port = 7788;
  std::string key_file;
  std::vector<std::uint8_t> key;  // the HMAC-SHA256 key, read from key_file with the file
  std::vector<IpBytes> peers;     // the only sources messages are accepted from
  std::string instance;           // this instance's name; default: the port's first address
  std::uint32_t sender_id = 0;    // derived from `instance` (sync_sender_id)
  // A flow is synced on its flow_threshold-th packet and again every flow_period packets
  // after that (IPVS's sync_threshold), and when FIN or RST close it. Their sum fits the six
  // bits a flow entry counts in.
  std::uint32_t flow_threshold = 3;
  std::uint32_t flow_period = 50;
  std::uint32_t max_rate = 100000;  // records sent per second, at most
  bool operator==(const SyncConfig&) const = default;
};

// The sender id of the instance named `instance`: a portable digest, so that every build
// derives the same id from the same name.
std::uint32_t sync_sender_id(std::string_view instance);

// The key in a sync key file's text: hex digits for 16 to 64 bytes, white space around them
// ignored. Throws ConfigError saying what is wrong, without quoting the key.
std::vector<std::uint8_t> parse_sync_key(std::string_view text);

// Active-standby (README "Active-standby pair"): keepalived runs VRRP on the kernel interface
// and tells tetherd its state; only the master answers for the VIPs and forwards.
#define TETHER_HA_ROLES(X) X(master, "master") X(backup, "backup") X(fault, "fault")
enum class HaRole : std::uint8_t { TETHER_HA_ROLES(TETHER_NAMED_ENUMERATOR) };
TETHER_ENUM_NAMES(HaRole, TETHER_HA_ROLES)

struct HaConfig {
  HaRole initial = HaRole::backup;  // until keepalived says otherwise: never two masters
  // On becoming master: `gratuitous_count` rounds of gratuitous ARP / unsolicited NA for every
  // VIP, `gratuitous_interval_ms` apart (keepalived's vrrp_garp_master_repeat is 5).
  std::uint32_t gratuitous_count = 5;
  std::uint32_t gratuitous_interval_ms = 200;
  bool operator==(const HaConfig&) const = default;
};

// Health-aware VIP announcement (README "Announcing the VIPs by BGP"): tetherd keeps a host
// route per announceable VIP on `port`'s kernel interface, with route protocol
// kAnnounceRouteProtocol, for the routing daemon there (BIRD, FRR) to announce.
// The route protocol number of those routes (`ip route` shows `proto 250`): the routing
// daemon imports exactly these (BIRD: `krt_source = 250`). Unassigned in the kernel's
// rtnetlink.h and iproute2's rt_protos, which end at 99 and then name 186 to 192.
inline constexpr std::uint8_t kAnnounceRouteProtocol = 250;
struct AnnounceConfig {
  std::size_t port = 0;  // index into Config::ports; the port has a kernel interface
  // `tetherctl drain`: once the routes are withdrawn, tetherd exits when no new flow or
  // session has been placed for `drain_quiet_s` seconds, or after `drain_timeout_s`.
  std::uint32_t drain_quiet_s = 5;
  std::uint32_t drain_timeout_s = 60;
  // With `sync`: a starting instance announces once every peer's bulk dump arrived, or that
  // peer was silent for `bulk_wait_s` seconds (control/announce.hpp: bulk_awaited).
  std::uint32_t bulk_wait_s = 10;
  bool operator==(const AnnounceConfig&) const = default;
};

// `metrics`: Prometheus's /metrics over HTTP, served on a thread of its own.
struct MetricsConfig {
  IpBytes address{};
  std::uint16_t port = 9142;
  std::string listen;  // as written, for messages
  bool operator==(const MetricsConfig&) const = default;
};
// "127.0.0.1:9142", "[::1]:9142": an address (IPv6 in brackets) and a port 1..65535.
std::optional<MetricsConfig> parse_listen(std::string_view text);

struct Config {
  std::string source;  // file name, for messages
  unsigned workers = 1;
  std::vector<std::string> eal_args;
  std::string log_level = "info";
  std::uint32_t flows_per_worker = 262144;
  std::uint32_t maglev_size = 65537;
  std::uint32_t mbufs_per_port = 8191;
  std::uint16_t mbuf_data_size = 2048;  // per mbuf, after the headroom
  std::uint32_t sessions = 262144;            // shared session table entries
  std::uint32_t dpi_streams_per_worker = 4096;  // reassembly buffers for partial requests
  std::uint32_t dpi_sessions_per_worker = 65536;  // TCP control connections inspected at once
  NeighbourConfig neighbours;
  std::vector<PortConfig> ports;
  std::vector<BackendConfig> backends;
  std::vector<ServiceConfig> services;
  std::optional<SyncConfig> sync;
  std::optional<HaConfig> ha;  // none: standalone, always forwarding
  std::optional<AnnounceConfig> announce;  // none: tetherd installs no routes
  std::optional<MetricsConfig> metrics;  // none: no HTTP server
};

inline constexpr std::uint32_t kMaxWeight = 65535;
inline constexpr unsigned kMaxWorkers = 64;

Config load_config_file(const std::string& path);
Config load_config_text(const std::string& text, const std::string& name);  // for tests

// Where the backend, service or port named `name` is in `items` (its index everywhere else).
template <typename Named>
std::optional<std::size_t> index_named(const std::vector<Named>& items, const std::string& name) {
  for (std::size_t i = 0; i < items.size(); ++i)
    if (items[i].name == name) return i;
  return std::nullopt;
}

bool is_prime(std::uint32_t n);

// A weight as an operator types it: 0..65535 in at most five plain decimal digits. No sign,
// space, base prefix or suffix: `+5`, `5x`, ` 5`, `-0`, `0x5` and `000005` are refused.
std::optional<std::uint32_t> parse_weight(std::string_view text);

// The rules that tie settings together. The file reader applies them as it reads (naming the
// line) and the control commands to the configuration they would make running (naming the
// item), so that a command can never create what a file may not contain.
struct Problem {
  std::string message;  // empty: none
  const char* setting = nullptr;  // within the item, the setting to blame (null: the item)
  int element = -1;               // and its element, for a list
  explicit operator bool() const { return !message.empty(); }
};
// A port's MAC and addresses: unicast, meaningful, each address on one port only.
Problem port_problem(const Config& config, std::size_t port);
// A backend's address (a host, not a port's or a VIP) and MAC (unicast, not a port's).
Problem backend_problem(const Config& config, std::size_t backend);
// A service's VIP: a unicast address no port or backend has. Its forwarding reaches every
// backend: DSR only on the port's segment, a tunnel only from a source of the backend's family.
Problem service_problem(const Config& config, std::size_t service);
// A port's routing and tunnel settings: gateways, routes and sources are host addresses of a
// family the port has an address of (to ask ARP/ND from), one gateway and source per family.
Problem port_routing_problem(const Config& config, std::size_t port);
// The sync group: its port has a kernel interface and an address, its peers are hosts of
// that address's family and not this box's own.
Problem sync_problem(const Config& config);
// The announcement's port has a kernel interface (the routes are put on it).
Problem announce_problem(const Config& config);
// A service's backends or one of its pools: a weight above 0 somewhere, and a Maglev table
// of at least 100 slots per backend.
Problem members_problem(const Config& config, const std::vector<ServiceBackend>& members);
// Every rule above over every live port, backend, service and pool. Throws ConfigError with
// the first problem. `device_macs` (a running tetherd's, by port) stand in for ports without a
// configured `mac`, which a file check cannot know.
void validate(const Config& config, const std::vector<MacBytes>& device_macs = {});

// What the file reader and the control commands say of a wrong value, in one wording.
// Why `name` cannot name a `what` ("port", "backend", "service"): a name is 1 to 32 letters,
// digits, '.', '_', '-' or ':'. Empty when it can.
std::string name_problem(std::string_view what, const std::string& name);
std::string not_a_mac(std::string_view text);
std::string interface_name_problem(const std::string& name);  // a kernel interface's
std::string port_needed(const std::string& backend);  // a new backend, several ports

// The running configuration after adopting `desired` (a reloaded file, or the running one
// changed by a command): backends and services keep their indices by name, new ones are
// appended, vanished ones stay as `removed` entries. Throws ConfigError naming what only a
// restart can change (workers, EAL arguments, tables, ports) or when the indices run out.
Config merge_running(const Config& running, const Config& desired);

// EAL arguments DPDK would refuse only at start, or that fight what tetherd adds itself,
// judged as DPDK 22.11's getopt_long reads them: unknown or ambiguous options, a value missing
// or where none is taken, a word that is no option (DPDK would leave it unread), `--`;
// devices of configured ports (tetherd adds -a/--vdev for them), -b beside tetherd's -a,
// --help, a secondary --proc-type; more than one of -c/-l/--lcores, and fewer lcores than
// the control thread and the workers need. `args` are the file's `eal` list then the command
// line's after `--`; the problem names the argument by its index in `args`.
struct EalProblem {
  std::size_t index;
  std::string message;
};
std::optional<EalProblem> eal_problem(const std::vector<std::string>& args, const Config& config);
// Whether `args` choose the lcores (-c, -l or --lcores, however spelt): tetherd adds its own
// otherwise.
bool eal_sets_lcores(const std::vector<std::string>& args);

// The human summary `tetherd --check` prints.
std::string describe(const Config& config);

}  // namespace tether
