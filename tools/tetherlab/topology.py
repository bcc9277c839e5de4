"""The lab's plan: one L2 segment (198.18.0.0/24) joining tetherd, a client with several
addresses and three DSR backends, the VIPs the backends hold on `lo`, the services' ports,
and each backend's own FTP passive and RTSP media port ranges. conf/lab.cfg says the same
in tetherd's terms. The net_tap variant (Lab(tap=True)) adds a router speaking BGP with the
lb namespace's kernel over tetherd's exception path. The active-standby variant
(Lab(pair=True)) runs two tetherd instances (PAIR), each on net_tap with its exception path
in a namespace of its own, keepalived's VRRP between them; the client reaches the VIPs on
the segment itself (whoever answers ARP for them: the master), and a spare backend
(SPARE_BACKENDS) can join the services during a run. The tier variant (Lab(instances=N))
runs N active instances (INSTANCES) behind the router: each announces the VIPs by BGP, the
router spreads the client's flows over them (ECMP), and state sync runs between all. The
tunnel variant (Lab(tunnel="ipip" or "gue")) puts the backends (TUNNEL_BACKENDS) on a subnet
of their own behind the router: tetherd reaches them through it (its gateway) with tunnel
forwarding, and each backend decapsulates with tether's XDP program."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_CONFIG = REPO / "conf" / "lab.cfg"

LAN_PREFIX = 24
LB_ADDRESS = "198.18.0.1"
LB_MAC = "02:e2:e0:00:00:01"
CLIENT_ADDRESS = "198.18.0.2"
CLIENT_MAC = "02:e2:e0:00:00:02"
# Clients bind to these: the first is the client's primary address, the others secondary.
CLIENT_ADDRESSES = (CLIENT_ADDRESS, "198.18.0.21", "198.18.0.22", "198.18.0.23")
# The net_tap variant: tetherd's port is the TAP device TAP_DEVICE in the lb namespace, its
# exception path the kernel interface KERNEL_INTERFACE there, which owns LB_ADDRESS; a router
# on the segment peers with that kernel's BIRD (tools/tetherlab/bird/) and learns the VIPs'
# prefix from it.
TAP_DEVICE = "dtap0"
KERNEL_INTERFACE = "lan0"
ROUTER_ADDRESS = "198.18.0.254"
ROUTER_MAC = "02:e2:e0:00:00:fe"
# The VIPs' prefix: the router learns a host route within it per VIP tetherd announces.
ANNOUNCED_PREFIX = "198.18.1.0/24"
BACKENDS = {  # name -> (address, mac); MACs are set on the backends' veths
    "b1": ("198.18.0.11", "02:e2:e0:00:01:01"),
    "b2": ("198.18.0.12", "02:e2:e0:00:01:02"),
    "b3": ("198.18.0.13", "02:e2:e0:00:01:03"),
}
# The instances of the pair and of the tier: instance -> (port address, port MAC). Instance
# "a" is the lb namespace's tetherd of the other variants (LB_ADDRESS, LB_MAC).
INSTANCES = {"a": (LB_ADDRESS, LB_MAC), "b": ("198.18.0.3", "02:e2:e0:00:00:03"),
             "c": ("198.18.0.4", "02:e2:e0:00:00:04")}
# The active-standby pair: its two instances.
PAIR = {name: INSTANCES[name] for name in ("a", "b")}
SYNC_PORT = 7788  # UDP, between the pair's port addresses
VRRP_ROUTER_ID = 51
# A backend the pair's lab also runs servers on, outside the services until a run adds it.
SPARE_BACKENDS = {"b4": ("198.18.0.14", "02:e2:e0:00:01:04")}
# The tunnel variant: the backends' subnet, on the router's second leg.
BACKEND_SUBNET_ROUTER = "198.19.0.254"
BACKEND_SUBNET_ROUTER_MAC = "02:e2:e0:00:02:fe"
TUNNEL_BACKENDS = {
    "b1": ("198.19.0.11", "02:e2:e0:00:02:01"),
    "b2": ("198.19.0.12", "02:e2:e0:00:02:02"),
    "b3": ("198.19.0.13", "02:e2:e0:00:02:03"),
}
# tetherd's tunnel source there (its port's `tunnel.sources`): the outer source of what it
# wraps, apart from the port's address its health checks come from.
TUNNEL_SOURCE = "198.18.0.9"
# What each encapsulation adds to a packet (outer IPv4 header; GUE variant 1: and a UDP
# header): the backends advertise an MSS that much smaller, so the client's segments still
# fit the 1500-byte links once wrapped. tetherd's tunnel.gue_port default.
TUNNEL_OVERHEAD = {"ipip": 20, "gue": 28}
GUE_PORT = 6080
SIP_VIP = "198.18.1.100"
TCP_VIP = "198.18.1.101"
FTP_VIP = "198.18.1.102"
RTSP_VIP = "198.18.1.103"
VIPS = (SIP_VIP, TCP_VIP, FTP_VIP, RTSP_VIP)
SIP_PORT = 5060
TCP_PORT = 8080
FTP_PORT = 21
RTSP_PORT = 554
# Each backend's own ranges (they must not overlap: in DSR tetherd never sees the server's
# PASV reply or SETUP reply, so the port alone must say which backend a data connection or
# an RTCP packet belongs to). conf/lab.cfg gives the same FTP ranges as passive_ports.
# 100 ports each: vsftpd binds a passive port chosen at random, 10 tries, then answers PASV
# with "500 OOPS: vsf_sysutil_bind"; with 40 ports, 26 downloads at once on one backend (the
# lab's 60 split by weight) failed one PASV in a few runs.
FTP_PASSIVE = {"b1": (30000, 30099), "b2": (30100, 30199), "b3": (30200, 30299)}
RTSP_PORTS = {"b1": (41000, 41019), "b2": (41100, 41119), "b3": (41200, 41219)}
SPARE_FTP_PASSIVE = {"b4": (30300, 30399)}
SPARE_RTSP_PORTS = {"b4": (41300, 41319)}
FTP_FILE = "file.bin"
FTP_FILE_SIZE = 512 * 1024
RTSP_PATH = "/audio"
