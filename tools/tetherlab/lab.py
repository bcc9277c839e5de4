"""A virtual lab of network namespaces for end-to-end tests of tetherd with real clients and
servers.

One L2 segment, as in a real DSR deployment: a Linux bridge in a "fabric" namespace joins

  lb       tetherd on net_af_packet, bound to its end of a veth pair (no kernel address:
           tetherd answers ARP and ICMP for its interface address and the VIPs itself)
  client   routes each VIP via tetherd's address (`ip route add VIP/32 via LB_ADDRESS`);
           several addresses (CLIENT_ADDRESSES) that clients bind to
  b1..b3   backends: their own address on eth0, the VIPs on `lo` with arp_ignore=1 and
           arp_announce=2, answering the client directly over the bridge

Servers a test may start on each backend: sipp's UAS (SIP_VIP), a TCP name server
(TCP_VIP), vsftpd in passive mode (FTP_VIP; each backend its own passive port range,
FTP_PASSIVE, serving one file of known checksum) and gst-rtsp-server (RTSP_VIP; each backend
its own media port range, RTSP_PORTS), with tcpdump counting the UDP the backend receives
for RTSP_VIP (the clients' RTCP). The lab's tetherd configuration is conf/lab.cfg.

Every name (namespaces, and the veths, which are created directly inside the namespaces)
carries a per-run tag, so concurrent runs never meet. Each process the lab starts gets its
own process group; teardown kills those groups, then anything still inside the lab's
namespaces (they are ours alone), then deletes the namespaces. It is idempotent and safe to
call after a failure at any point.
"""
import collections
import ctypes
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TETHER_BUILD", REPO / "build"))
TETHERD = BUILD / "control" / "tetherd"
TETHERCTL = BUILD / "control" / "tetherctl"
LAB_CONFIG = REPO / "conf" / "lab.cfg"

LAN_PREFIX = 24
LB_ADDRESS = "198.18.0.1"
LB_MAC = "02:e2:e0:00:00:01"
CLIENT_ADDRESS = "198.18.0.2"
CLIENT_MAC = "02:e2:e0:00:00:02"
# Clients bind to these: the first is the client's primary address, the others secondary.
CLIENT_ADDRESSES = (CLIENT_ADDRESS, "198.18.0.21", "198.18.0.22", "198.18.0.23")
BACKENDS = {  # name -> (address, mac); MACs are set on the backends' veths
    "b1": ("198.18.0.11", "02:e2:e0:00:01:01"),
    "b2": ("198.18.0.12", "02:e2:e0:00:01:02"),
    "b3": ("198.18.0.13", "02:e2:e0:00:01:03"),
}
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
FTP_PASSIVE = {"b1": (30000, 30039), "b2": (30100, 30139), "b3": (30200, 30239)}
RTSP_PORTS = {"b1": (41000, 41019), "b2": (41100, 41119), "b3": (41200, 41219)}
FTP_FILE = "file.bin"
FTP_FILE_SIZE = 512 * 1024
RTSP_PATH = "/audio"
HERE = Path(__file__).resolve().parent
SIP_SCENARIOS = HERE / "sip"

# vsftpd, one per backend: anonymous read-only downloads, passive mode only, listening on
# the FTP VIP (so PASV replies name the VIP), every transfer logged. isolate_network=NO keeps
# its processes in the backend's namespace (teardown finds them there).
VSFTPD_CONF = """listen=YES
listen_ipv6=NO
listen_address={vip}
background=NO
anonymous_enable=YES
no_anon_password=YES
anon_root={root}
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_min_port={first}
pasv_max_port={last}
port_enable=NO
connect_from_port_20=NO
xferlog_enable=YES
xferlog_std_format=NO
vsftpd_log_file={log}
secure_chroot_dir={empty}
seccomp_sandbox=NO
isolate_network=NO
isolate=NO
max_clients=0
max_per_ip=0
accept_timeout=10
data_connection_timeout=30
hide_ids=YES
"""

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

# The backends' TCP service: answers each connection with the backend's name, then echoes
# every line it receives prefixed with that name, until the client closes. It listens on
# all addresses, so it serves the VIP (on lo) and tetherd's TCP health check (the backend's
# own address) alike; replies leave from the address the client connected to.
TCP_SERVER = r"""
import socket, socketserver, sys
name, port = sys.argv[1], int(sys.argv[2])
class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(f"{name}\n".encode())
        for line in self.rfile:
            self.wfile.write(f"{name} {line.decode().strip()}\n".encode())
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128
with Server(("0.0.0.0", port), Handler) as server:
    print("ready", flush=True)
    server.serve_forever()
"""


def run(*words, check=True, **kwargs):
    result = subprocess.run([str(w) for w in words], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, words))}: exit {result.returncode}: {result.stderr}")
    return result


class Lab:
    def __init__(self, workdir, tag=None):
        self.workdir = Path(workdir)
        self.tag = tag or f"{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
        self.fabric = f"tte2e-{self.tag}-fab"
        self.lb = f"tte2e-{self.tag}-lb"
        self.client = f"tte2e-{self.tag}-cl"
        self.backend_ns = {name: f"tte2e-{self.tag}-{name}" for name in BACKENDS}
        self.processes = []  # every Popen we started (each leads its own process group)
        self.tcp_servers = {}  # backend -> Popen
        self.sip_servers = {}  # backend -> (Popen, message log path)
        self.ftp_servers = {}  # backend -> Popen
        self.rtsp_servers = {}  # backend -> Popen
        self.captures = {}  # backend -> Popen (tcpdump)
        self.ftp_sha256 = None  # of FTP_FILE, once create() wrote it

    @property
    def namespaces(self):
        return [self.lb, self.client, *self.backend_ns.values(), self.fabric]

    # -- building -----------------------------------------------------------------------

    def create(self):
        for ns in self.namespaces:
            run("ip", "netns", "add", ns)
            self.sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", self.fabric, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.fabric, "link", "set", "br0", "up")
        self._plug(self.lb, "lb", LB_MAC)
        self._plug(self.client, "cl", CLIENT_MAC)
        for address in CLIENT_ADDRESSES:
            run("ip", "-n", self.client, "addr", "add", f"{address}/{LAN_PREFIX}", "dev", "eth0")
        for vip in VIPS:
            run("ip", "-n", self.client, "route", "add", f"{vip}/32", "via", LB_ADDRESS)
        for name, (address, mac) in BACKENDS.items():
            ns = self.backend_ns[name]
            self._plug(ns, name, mac)
            run("ip", "-n", ns, "addr", "add", f"{address}/{LAN_PREFIX}", "dev", "eth0")
            for vip in VIPS:
                run("ip", "-n", ns, "addr", "add", f"{vip}/32", "dev", "lo")
            self.sysctl(ns, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
                        "net.ipv4.conf.eth0.arp_ignore=1", "net.ipv4.conf.eth0.arp_announce=2")
            # The servers listen on the VIPs only (their replies must come from the VIP);
            # tetherd's health checks go to the backend's own address, so that is mapped
            # to the same sockets. Conntrack gives the answer its original source back.
            rules = (f"table ip tether_lab {{\n chain prerouting {{\n"
                     f"  type nat hook prerouting priority -100\n"
                     f"  ip daddr {address} udp dport {SIP_PORT} dnat to {SIP_VIP}\n"
                     f"  ip daddr {address} tcp dport {FTP_PORT} dnat to {FTP_VIP}\n"
                     f"  ip daddr {address} tcp dport {RTSP_PORT} dnat to {RTSP_VIP}\n }}\n}}\n")
            run("ip", "netns", "exec", ns, "nft", "-f", "-", input=rules)
        self._write_ftp_roots()

    def _write_ftp_roots(self):
        """The same file of known checksum in every backend's FTP root (root-owned, not
        writable by the ftp user, as vsftpd's chroot wants)."""
        data = random.Random(self.tag).randbytes(FTP_FILE_SIZE)
        self.ftp_sha256 = hashlib.sha256(data).hexdigest()
        for name in BACKENDS:
            root = self.workdir / f"ftp-{name}"
            root.mkdir(mode=0o755, exist_ok=True)
            (root / FTP_FILE).write_bytes(data)
            (root / FTP_FILE).chmod(0o644)
        empty = self.workdir / "vsftpd-empty"
        empty.mkdir(mode=0o755, exist_ok=True)

    def _plug(self, ns, short, mac):
        """A veth from `ns` (eth0, with `mac`) to the bridge in the fabric namespace."""
        run("ip", "link", "add", "eth0", "netns", ns, "address", mac, "type", "veth",
            "peer", "name", f"p-{short}", "netns", self.fabric)
        run("ip", "-n", self.fabric, "link", "set", f"p-{short}", "master", "br0", "up")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        # veth checksum offload would hand tetherd frames with unfinished checksums, which
        # it forwards untouched and the backend then drops.
        for where, dev in ((ns, "eth0"), (self.fabric, f"p-{short}")):
            run("ip", "netns", "exec", where, "ethtool", "-K", dev, "tx", "off", check=False)

    def sysctl(self, ns, *settings):
        run("ip", "netns", "exec", ns, "sysctl", "-qw", *settings)

    # -- processes ----------------------------------------------------------------------

    def popen(self, ns, words, **kwargs):
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *[str(w) for w in words]],
                                start_new_session=True, **kwargs)
        self.processes.append(proc)
        return proc

    @staticmethod
    def stop(proc, sig=signal.SIGTERM, timeout=10):
        """Ends a process we started and its whole process group."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=timeout)
        else:  # the leader is gone; children may remain in the group
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def start_tcp_server(self, name):
        proc = self.popen(self.backend_ns[name],
                          ["/usr/bin/python3", "-c", TCP_SERVER, name, TCP_PORT],
                          stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"TCP server on {name} did not start"
        self.tcp_servers[name] = proc
        return proc

    def stop_tcp_server(self, name):
        self.stop(self.tcp_servers.pop(name))

    def start_sip_server(self, name, reinvite=False):
        """sipp's built-in UAS on VIP:5060, with -aa answering tetherd's OPTIONS checks, or
        with reinvite=True the same UAS that also answers re-INVITEs (sip/uas.xml).
        Every message it receives is logged (trace_msg) for the tests to count calls."""
        logs = self.workdir / f"uas-{name}-{len(self.processes)}"
        scenario = ["-sf", SIP_SCENARIOS / "uas.xml"] if reinvite else ["-sn", "uas"]
        proc = self.popen(self.backend_ns[name],
                          ["sipp", *scenario, "-i", SIP_VIP, "-p", SIP_PORT, "-bind_local",
                           "-aa", "-nostdin", "-trace_msg", "-message_file", f"{logs}.msg",
                           "-trace_err", "-error_file", f"{logs}.err"],
                          cwd=self.workdir)
        self.wait_for_socket(self.backend_ns[name], "udp", SIP_PORT, proc)
        self.sip_servers[name] = (proc, Path(f"{logs}.msg"))
        return proc

    def stop_sip_server(self, name):
        proc, _log = self.sip_servers.pop(name)
        self.stop(proc)

    def start_ftp_server(self, name):
        """vsftpd on FTP_VIP:21 with the backend's passive range; its transfer log is
        ftp-NAME.log (see ftp_downloads)."""
        first, last = FTP_PASSIVE[name]
        conf = self.workdir / f"vsftpd-{name}.conf"
        conf.write_text(VSFTPD_CONF.format(vip=FTP_VIP, root=self.workdir / f"ftp-{name}",
                                           first=first, last=last, log=self.workdir / f"ftp-{name}.log",
                                           empty=self.workdir / "vsftpd-empty"))
        proc = self.popen(self.backend_ns[name], ["vsftpd", conf])
        self.wait_for_socket(self.backend_ns[name], "tcp", FTP_PORT, proc)
        self.ftp_servers[name] = proc
        return proc

    def start_rtsp_server(self, name, timeout=30):
        """gst-rtsp-server (rtsp_server.py) on RTSP_VIP:554 serving RTSP_PATH, media ports
        from the backend's RTSP_PORTS; the SETUPs it answered are logged to rtsp-NAME.log."""
        first, last = RTSP_PORTS[name]
        log = open(self.workdir / f"rtsp-{name}.log", "a")
        proc = self.popen(self.backend_ns[name],
                          ["/usr/bin/python3", HERE / "rtsp_server.py", name, RTSP_VIP, RTSP_PORT,
                           first, last], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.wait_for_socket(self.backend_ns[name], "tcp", RTSP_PORT, proc, timeout=timeout)
        self.rtsp_servers[name] = proc
        return proc

    def start_capture(self, name, timeout=15):
        """tcpdump on the backend's eth0: every UDP datagram to RTSP_VIP it receives, one
        line each, in udp-NAME.log (see rtsp_udp_received)."""
        out = open(self.workdir / f"udp-{name}.log", "a")
        err_path = self.workdir / f"udp-{name}.err"
        with open(err_path, "a") as err:
            proc = self.popen(self.backend_ns[name],
                              ["tcpdump", "-i", "eth0", "-n", "-l", "-Q", "in", "-p",
                               f"udp and dst host {RTSP_VIP}"], stdout=out, stderr=err)
        out.close()
        deadline = time.monotonic() + timeout
        while "listening on" not in err_path.read_text():
            assert proc.poll() is None, f"tcpdump on {name}: {err_path.read_text()}"
            assert time.monotonic() < deadline, f"tcpdump on {name} did not start"
            time.sleep(0.05)
        self.captures[name] = proc
        return proc

    def start_media_servers(self, names=None):
        """FTP and RTSP servers and the RTSP capture on every backend (the RTSP servers,
        slow to import GStreamer, start together)."""
        names = list(names or BACKENDS)
        for name in names:
            self.start_ftp_server(name)
            self.start_capture(name)
        for name in names:
            self.start_rtsp_server(name, timeout=60)

    def ftp_downloads(self):
        """backend -> Counter of client addresses whose downloads of FTP_FILE it completed."""
        result = {}
        for name in BACKENDS:
            path = self.workdir / f"ftp-{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            result[name] = collections.Counter(
                re.findall(r'OK DOWNLOAD: Client "([0-9.]+)", "/' + re.escape(FTP_FILE) + '"', text))
        return result

    def rtsp_setups(self):
        """backend -> [(client address, RTP port, RTCP port)] of the SETUPs it answered."""
        result = {}
        for name in BACKENDS:
            path = self.workdir / f"rtsp-{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            result[name] = [(a, int(rtp), int(rtcp)) for a, rtp, rtcp
                            in re.findall(r"^setup (\S+) (\d+)-(\d+)$", text, re.M)]
        return result

    def rtsp_udp_received(self):
        """backend -> Counter of (client address, client port) of the UDP datagrams to
        RTSP_VIP that reached it."""
        result = {}
        for name in BACKENDS:
            path = self.workdir / f"udp-{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            result[name] = collections.Counter(
                (a, int(p)) for a, p in re.findall(
                    r" IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > " + re.escape(RTSP_VIP) + r"\.\d+: UDP", text))
        return result

    def wait_for_socket(self, ns, protocol, port, proc, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listening = run("ip", "netns", "exec", ns, "ss", "-Hln", "--udp" if protocol == "udp"
                            else "--tcp", f"sport = :{port}").stdout
            if listening.strip():
                return
            assert proc.poll() is None, f"server in {ns} exited with {proc.returncode}"
            time.sleep(0.05)
        raise AssertionError(f"nothing listens on {protocol} port {port} in {ns}")

    def sip_messages(self, names=None):
        """backend -> list of (method, Call-ID) of the SIP requests its UAS received, over
        all the UAS processes it ran."""
        result = {}
        for name in names or BACKENDS:
            result[name] = []
            for path in sorted(self.workdir.glob(f"uas-{name}-*.msg")):
                result[name] += parse_sipp_requests(path.read_text(errors="replace"))
        return result

    # -- moving the test itself into a namespace ------------------------------------------

    @contextmanager
    def inside(self, ns):
        """Runs the block with this thread in namespace `ns`: sockets created there stay
        in it after the block (the test keeps client connections open across steps)."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {ns}")
            yield
        finally:
            _libc.setns(home, CLONE_NEWNET)
            os.close(target)
            os.close(home)

    # -- teardown -------------------------------------------------------------------------

    def teardown(self):
        for proc in self.processes:
            self.stop(proc, timeout=5)
        self.processes.clear()
        self.tcp_servers.clear()
        self.sip_servers.clear()
        self.ftp_servers.clear()
        self.rtsp_servers.clear()
        self.captures.clear()
        existing = set(run("ip", "netns", "list", check=False).stdout.split())
        for ns in self.namespaces:
            if ns in existing:
                remove_namespace(ns)

    def leftovers(self):
        existing = run("ip", "netns", "list", check=False).stdout
        return [ns for ns in self.namespaces if ns in existing.split()]


def parse_sipp_requests(text):
    """(method, Call-ID) of every request in a sipp -trace_msg log that sipp received."""
    found = []
    for block in text.split("\n\n----------------------------------------------- ")[0:]:
        lines = block.replace("\r", "").split("\n")
        try:
            start = next(i for i, l in enumerate(lines) if "message received" in l)
        except StopIteration:
            continue
        body = [l for l in lines[start + 1:] if l.strip()]
        if not body or body[0].startswith("SIP/2.0"):
            continue  # a response
        method = body[0].split(" ", 1)[0]
        call_id = next((l.split(":", 1)[1].strip() for l in body
                        if l.lower().startswith(("call-id:", "i:"))), None)
        found.append((method, call_id))
    return found


EAL_ARGS = '"--no-huge", "--no-shconf", "--no-pci", "-m", "512", "--log-level=lib.*:error"'


def assert_spread_by_weight(counts, weights, sigmas=5.0):
    """Each backend's count lies within `sigmas` binomial standard deviations of its
    weighted share, as hashing many distinct keys (Call-IDs with a PID in them, ephemeral
    ports) gives. A fixed relative tolerance fails by chance: 35% of 60 expected is 3.4 sigma,
    about one run in a thousand per backend, and CI saw it."""
    total = sum(counts.values())
    active = sum(weights.values())
    for name, weight in weights.items():
        share = weight / active
        expected = total * share
        bound = sigmas * (total * share * (1 - share)) ** 0.5 + 1
        assert abs(counts.get(name, 0) - expected) <= bound, (dict(counts), weights, name)


def tetherd_config(services, workers=1, backend_macs=True, health=None):
    """tetherd's configuration for the lab: one net_af_packet port on the lb namespace's
    eth0 with tetherd's MAC and address, backends b1..b3, and `services`: dicts with name,
    vip, port, protocol, weights {backend: weight} and optional raw `extra` settings.
    `health` (a dict: type, interval, timeout, rise, fall) is added to services that do not
    say `health_check` themselves. backend_macs=False leaves the backends' MACs out, for
    when tetherd resolves them itself."""
    backends = ",\n".join(
        f'  {{ name = "{name}"; address = "{address}";'
        + (f' mac = "{mac}";' if backend_macs else "") + " }"
        for name, (address, mac) in BACKENDS.items())
    blocks = []
    for s in services:
        members = ", ".join(f'{{ name = "{b}"; weight = {w}; }}' for b, w in s["weights"].items())
        extra = s.get("extra", "")
        check = s.get("health", health)
        if check:
            extra += (f' health_check = {{ type = "{check["type"]}"; interval = {check["interval"]};'
                      f' timeout = {check["timeout"]}; rise = {check["rise"]}; fall = {check["fall"]}; }};')
        blocks.append(f'  {{ name = "{s["name"]}"; vip = "{s["vip"]}"; port = {s["port"]}; '
                      f'protocol = "{s["protocol"]}"; {extra}\n    backends = ( {members} ); }}')
    services_text = ",\n".join(blocks)
    return f"""workers = {workers};
eal = [{EAL_ARGS}];
tables = {{ flows_per_worker = 65536; maglev_size = 65537; }};
ports = ( {{ name = "lan0"; device = "net_af_packet0,iface=eth0,qpairs={workers}";
            mac = "{LB_MAC}"; addresses = ["{LB_ADDRESS}"]; }} );
backends = (
{backends}
);
services = (
{services_text}
);
"""


def remove_stale_labs():
    """Deletes labs left by runs whose process is gone (killed before teardown ran): their
    namespaces are named tte2e-PID-..., and anything inside them was started by that run."""
    for ns in run("ip", "netns", "list", check=False).stdout.split():
        parts = ns.split("-")
        if len(parts) < 4 or parts[0] != "tte2e" or not parts[1].isdigit():
            continue
        if Path(f"/proc/{parts[1]}").exists():
            continue  # its run may still be going
        remove_namespace(ns)


def remove_namespace(ns):
    """Kills what still runs in one of a lab's namespaces (anything there was started by
    the lab: an orphan of a killed process group), then deletes the namespace."""
    for pid in run("ip", "netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    run("ip", "netns", "del", ns, check=False)


def lab_config_without_dpi(text):
    """The control configuration: conf/lab.cfg's text with every service's dpi "none" and,
    as a flow-level balancer (LVS, Maglev) would be set up, a service on the VIP for every
    port the backends' FTP and RTSP servers can use (passive FTP data, RTP/RTCP), balanced
    over all backends. Only session awareness is missing."""
    text = re.sub(r'dpi = "\w+";', 'dpi = "none";', text)
    text = re.sub(r"\s*passive_ports = \[\d+, \d+\];", "", text)
    members = ", ".join(f'{{ name = "{b}"; }}' for b in BACKENDS)
    extra = []
    for vip, protocol, ranges, what in ((FTP_VIP, "tcp", FTP_PASSIVE, "ftp-data"),
                                        (RTSP_VIP, "udp", RTSP_PORTS, "rtp")):
        for first, last in ranges.values():
            for port in range(first, last + 1):
                extra.append(f'  {{ name = "{what}-{port}"; vip = "{vip}"; port = {port}; '
                             f'protocol = "{protocol}"; backends = ( {members} ); }}')
    end = text.rindex("\n);")
    return text[:end] + ",\n" + ",\n".join(extra) + text[end:]


class Tetherd:
    """tetherd in the lab's lb namespace, with a control socket. `config` is either a list
    of services for tetherd_config (the backends' MACs left to ARP, as in production) or
    the path of a configuration file."""
    started = 0

    def __init__(self, lab, config, workers=1, start_timeout=60):
        Tetherd.started += 1
        self.lab = lab
        self.dir = lab.workdir
        self.socket = self.dir / f"tetherd-{Tetherd.started}.sock"
        if isinstance(config, (str, Path)):
            self.config = Path(config)
        else:
            self.config = self.dir / f"tetherd-{Tetherd.started}.cfg"
            self.config.write_text(tetherd_config(config, workers=workers, backend_macs=False))
        self.stderr_path = self.dir / f"tetherd-{Tetherd.started}.err"
        with open(self.stderr_path, "w") as err:
            self.proc = lab.popen(lab.lb, [TETHERD, "-c", self.config, "--socket", self.socket],
                                  stderr=err, cwd=REPO)
        deadline = time.monotonic() + start_timeout
        while "running:" not in self.log():
            assert self.proc.poll() is None, f"tetherd exited: {self.log()}"
            assert time.monotonic() < deadline, f"tetherd did not start: {self.log()}"
            time.sleep(0.1)
        self.wait_until(lambda b: all(x["mac_source"] == "arp" for x in b.values()), 5,
                        "backend MACs learnt by ARP")

    def log(self):
        return self.stderr_path.read_text()

    def ctl(self, *words):
        result = subprocess.run([str(TETHERCTL), "-s", str(self.socket), *map(str, words)],
                                capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def json(self, *words):
        return json.loads(self.ctl("--json", *words))

    def backends(self):
        return {b["name"]: b for b in self.json("show", "backends")["backends"]}

    def wait_until(self, predicate, timeout, what):
        """Polls `show backends` until predicate(backends) holds; returns the seconds taken."""
        start = time.monotonic()
        while True:
            if predicate(self.backends()):
                return time.monotonic() - start
            assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
            time.sleep(0.03)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        return self.proc.returncode


# -- clients --------------------------------------------------------------------------------

class Calls:
    """A sipp UAC in the client namespace placing `calls` calls to the SIP VIP from one UDP
    socket (address:local_port). Call-IDs start with `tag`, so the backends' logs tell this
    run's calls from others. reinvite=True plays sip/uac_reinvite.xml (a re-INVITE in every
    call; the backends must run the reinvite UAS)."""

    def __init__(self, lab, tag, calls, rate, duration_ms=0, local_port=5070,
                 address=CLIENT_ADDRESS, reinvite=False):
        self.lab, self.tag, self.calls = lab, tag, calls
        self.address, self.local_port = address, local_port
        self.stats = lab.workdir / f"uac-{tag}.csv"
        scenario = ["-sf", SIP_SCENARIOS / "uac_reinvite.xml"] if reinvite else ["-sn", "uac"]
        self.proc = lab.popen(
            lab.client,
            ["sipp", *scenario, f"{SIP_VIP}:{SIP_PORT}", "-i", address, "-bind_local",
             "-p", local_port, "-r", rate, "-m", calls, "-d", duration_ms,
             "-cid_str", f"{tag}-%u-%p@%s", "-nostdin", "-trace_stat", "-stf", self.stats,
             "-fd", "1", "-trace_err", "-error_file", lab.workdir / f"uac-{tag}.err",
             "-timeout", "90", "-timeout_error"],
            cwd=lab.workdir)

    def wait(self, timeout=120):
        """(sipp's exit code, successful calls, failed calls)."""
        code = self.proc.wait(timeout=timeout)
        header, *rows = self.stats.read_text().splitlines()
        last = dict(zip(header.split(";"), rows[-1].split(";")))
        return code, int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])

    def placement(self):
        """Call-ID -> backend -> methods received there, for this run's calls."""
        seen = collections.defaultdict(lambda: collections.defaultdict(list))
        for backend, requests in self.lab.sip_messages().items():
            for method, call_id in requests:
                if call_id and call_id.startswith(self.tag + "-"):
                    seen[call_id][backend].append(method)
        return seen


def ftp_downloads(lab, count, tag, addresses=CLIENT_ADDRESSES, timeout=60):
    """`count` concurrent curl downloads of FTP_FILE through the FTP VIP in passive mode,
    alternating EPSV and PASV, spread over the client `addresses` (curl binds both its
    control and data connections to the address). Returns [(address, command, ok)]: ok
    when curl succeeded and the file has the right checksum."""
    jobs = []
    for i in range(count):
        address = addresses[i % len(addresses)]
        epsv = i % 2 == 0
        out = lab.workdir / f"ftp-{tag}-{i}.bin"
        errors = out.with_suffix(".err")
        with open(errors, "wb") as error_file:
            proc = lab.popen(lab.client,
                             ["curl", "-sS", "--ftp-pasv", *([] if epsv else ["--disable-epsv"]),
                              "--interface", address, "--connect-timeout", "5", "--max-time", "30",
                              "-o", out, f"ftp://{FTP_VIP}/{FTP_FILE}"], stderr=error_file)
        jobs.append((address, "EPSV" if epsv else "PASV", out, errors, proc))
    results = []
    deadline = time.monotonic() + timeout
    for address, command, out, errors, proc in jobs:
        code = proc.wait(timeout=max(1, deadline - time.monotonic()))
        ok = (code == 0 and out.exists()
              and hashlib.sha256(out.read_bytes()).hexdigest() == lab.ftp_sha256)
        if not ok:  # for the failure report: why curl gave up
            print(f"curl {command} from {address}: exit {code}: "
                  f"{errors.read_text(errors='replace').strip()}")
        results.append((address, command, ok))
        out.unlink(missing_ok=True)
        errors.unlink(missing_ok=True)
    return results


class Streams:
    """`count` concurrent ffmpeg RTSP clients of RTSP_PATH over UDP transport, each
    receiving `seconds` of audio (PCMU, 8,000 bytes a second) into a file."""

    def __init__(self, lab, count, tag, seconds=5):
        self.lab, self.seconds = lab, seconds
        self.jobs = []
        for i in range(count):
            out = lab.workdir / f"rtsp-{tag}-{i}.raw"
            proc = lab.popen(lab.client,
                             ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "udp",
                              "-i", f"rtsp://{RTSP_VIP}{RTSP_PATH}", "-t", seconds, "-c", "copy",
                              "-f", "mulaw", "-y", out])
            self.jobs.append((out, proc))

    def wait(self, timeout=60):
        """[bytes of audio each client received, or -1 if ffmpeg failed]."""
        received = []
        deadline = time.monotonic() + timeout
        for out, proc in self.jobs:
            code = proc.wait(timeout=max(1, deadline - time.monotonic()))
            received.append(out.stat().st_size if code == 0 and out.exists() else -1)
            out.unlink(missing_ok=True)
        return received


def rtcp_placement(lab):
    """For every RTSP session the backends answered a SETUP for: (client address, RTCP
    port) -> (serving backend, Counter of backends its datagrams from that port reached)."""
    received = lab.rtsp_udp_received()
    result = {}
    for backend, setups in lab.rtsp_setups().items():
        for address, _rtp, rtcp in setups:
            reached = collections.Counter({b: seen[(address, rtcp)] for b, seen in received.items()
                                           if seen[(address, rtcp)]})
            result[(address, rtcp)] = (backend, reached)
    return result
