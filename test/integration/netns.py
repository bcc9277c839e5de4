"""A virtual lab of network namespaces for end-to-end tests of tetherd with real clients and
servers.

One L2 segment, as in a real DSR deployment: a Linux bridge in a "fabric" namespace joins

  lb       tetherd on net_af_packet, bound to its end of a veth pair (no kernel address:
           tetherd answers ARP and ICMP for its interface address and the VIPs itself)
  client   routes each VIP via tetherd's address (`ip route add VIP/32 via LB_ADDRESS`)
  b1..b3   backends: their own address on eth0, the VIPs on `lo` with arp_ignore=1 and
           arp_announce=2, answering the client directly over the bridge

Every name (namespaces, and the veths, which are created directly inside the namespaces)
carries a per-run tag, so concurrent runs never meet. Each process the lab starts gets its
own process group; teardown kills those groups, then anything still inside the lab's
namespaces (they are ours alone), then deletes the namespaces. It is idempotent and safe to
call after a failure at any point.
"""
import ctypes
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

LAN_PREFIX = 24
LB_ADDRESS = "198.18.0.1"
LB_MAC = "02:e2:e0:00:00:01"
CLIENT_ADDRESS = "198.18.0.2"
CLIENT_MAC = "02:e2:e0:00:00:02"
BACKENDS = {  # name -> (address, mac); MACs are set on the backends' veths
    "b1": ("198.18.0.11", "02:e2:e0:00:01:01"),
    "b2": ("198.18.0.12", "02:e2:e0:00:01:02"),
    "b3": ("198.18.0.13", "02:e2:e0:00:01:03"),
}
SIP_VIP = "198.18.1.100"
TCP_VIP = "198.18.1.101"
VIPS = (SIP_VIP, TCP_VIP)
SIP_PORT = 5060
TCP_PORT = 8080

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
        run("ip", "-n", self.client, "addr", "add", f"{CLIENT_ADDRESS}/{LAN_PREFIX}", "dev", "eth0")
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
            # The SIP server listens on the VIP only (its replies must come from the VIP);
            # tetherd's SIP OPTIONS check goes to the backend's own address, so that is
            # mapped to the same socket. Conntrack gives the answer its original source back.
            rules = (f"table ip tether_lab {{\n chain prerouting {{\n"
                     f"  type nat hook prerouting priority -100\n"
                     f"  ip daddr {address} udp dport {SIP_PORT} dnat to {SIP_VIP}\n }}\n}}\n")
            run("ip", "netns", "exec", ns, "nft", "-f", "-", input=rules)

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

    def start_sip_server(self, name):
        """sipp's built-in UAS on VIP:5060, with -aa answering tetherd's OPTIONS checks.
        Every message it receives is logged (trace_msg) for the tests to count calls."""
        logs = self.workdir / f"uas-{name}-{len(self.processes)}"
        proc = self.popen(self.backend_ns[name],
                          ["sipp", "-sn", "uas", "-i", SIP_VIP, "-p", SIP_PORT, "-bind_local",
                           "-aa", "-nostdin", "-trace_msg", "-message_file", f"{logs}.msg",
                           "-trace_err", "-error_file", f"{logs}.err"],
                          cwd=self.workdir)
        self.wait_for_socket(self.backend_ns[name], "udp", SIP_PORT, proc)
        self.sip_servers[name] = (proc, Path(f"{logs}.msg"))
        return proc

    def stop_sip_server(self, name):
        proc, _log = self.sip_servers.pop(name)
        self.stop(proc)

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
        existing = set(run("ip", "netns", "list", check=False).stdout.split())
        for ns in self.namespaces:
            if ns not in existing:
                continue
            # Anything still in our namespaces is ours (an orphan of a killed group).
            for pid in run("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run("ip", "netns", "del", ns, check=False)

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
        for pid in run("ip", "netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run("ip", "netns", "del", ns, check=False)
