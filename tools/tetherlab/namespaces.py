"""The lab's network: namespaces on one Linux bridge, as in a real DSR deployment. A
bridge in a "fabric" namespace joins

  lb       tetherd on net_af_packet, bound to its end of a veth pair (no kernel address:
           tetherd answers ARP and ICMP for its interface address and the VIPs itself)
  client   routes each VIP via tetherd's address (`ip route add VIP/32 via LB_ADDRESS`);
           several addresses (CLIENT_ADDRESSES) that clients bind to
  b1..b3   backends: their own address on eth0, the VIPs on `lo` with arp_ignore=1 and
           arp_announce=2, answering the client directly over the bridge
  router   (with router=True) an upstream router on the segment, ROUTER_ADDRESS, whose BIRD
           peers with the lb namespace's over tetherd's exception path
  lb2      (with instances=2, no router) the second tetherd of an active-standby pair
           (PAIR: "a" runs in lb, "b" in lb2); the client then reaches the VIPs on the
           segment (`ip route add VIP/32 dev eth0`: the master answers ARP for them), and a
           spare backend b4 (SPARE_BACKENDS) joins the bridge like b1..b3
  (tunnel) with tunnel="ipip" or "gue", the backends sit on a second bridge (br1, subnet
           198.19.0.0/24) behind the router, which joins both and forwards: tetherd tunnels
           to them through it, they answer the client through it, and advertise an MSS
           lowered by the encapsulation's overhead (their route to the client's segment)
  lb3      (with instances=3 and the router) a tier of active instances (INSTANCES: "a" in
           lb, "b" in lb2, "c" in lb3) behind the router, which forwards (no redirects):
           the client routes the VIPs via ROUTER_ADDRESS, the router spreads them over the
           instances that announce them (ECMP), the backends answer the client directly

Every name (namespaces, and the veths, which are created directly inside the namespaces)
carries a per-run tag, so concurrent runs never meet. Each process the lab starts gets its
own process group; teardown kills those groups, then anything still inside the lab's
namespaces (they are ours alone), then deletes the namespaces. It is idempotent and safe to
call after a failure at any point. A lab whose process was killed before its teardown is
removed by remove_stale_labs (namespace names carry the creating process's id).
"""
import ctypes
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from .topology import (BACKEND_SUBNET_ROUTER, BACKEND_SUBNET_ROUTER_MAC, BACKENDS, CLIENT_ADDRESSES, CLIENT_MAC,
                       INSTANCES, LAN_PREFIX, LB_ADDRESS, LB_MAC, ROUTER_ADDRESS, ROUTER_MAC, SPARE_BACKENDS,
                       TAP_DEVICE, TUNNEL_BACKENDS, TUNNEL_OVERHEAD, VIPS)

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def run(*words, check=True, **kwargs):
    result = subprocess.run([str(w) for w in words], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, words))}: exit {result.returncode}: {result.stderr}")
    return result


class Namespaces:
    """The lab's namespaces, veths and bridge, and every process started in them."""

    def __init__(self, workdir, tag=None, router=False, instances=1, tunnel=None):
        self.workdir = Path(workdir)
        self.tunnel = tunnel  # None, "ipip" or "gue": the backends behind the router
        router = router or bool(tunnel)
        self.tag = tag or f"{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
        self.fabric = f"tte2e-{self.tag}-fab"
        self.lb = f"tte2e-{self.tag}-lb"
        self.client = f"tte2e-{self.tag}-cl"
        self.backends = ({**BACKENDS, **(SPARE_BACKENDS if instances > 1 else {})} if not tunnel
                         else dict(TUNNEL_BACKENDS))  # name -> (address, mac)
        self.backend_ns = {name: f"tte2e-{self.tag}-{name}" for name in self.backends}
        self.router = f"tte2e-{self.tag}-rt" if router else None
        # instance -> namespace: the lb namespace, then lb2, lb3... for the further instances
        assert 1 <= instances <= len(INSTANCES), instances
        self.lb_ns = {name: self.lb if i == 0 else f"tte2e-{self.tag}-lb{i + 1}"
                      for i, name in enumerate(list(INSTANCES)[:instances])}
        self.processes = []  # every Popen we started (each leads its own process group)

    @property
    def namespaces(self):
        return [*self.lb_ns.values(), self.client, *self.backend_ns.values(), *filter(None, [self.router]),
                self.fabric]

    # -- building -----------------------------------------------------------------------

    def create(self):
        for ns in self.namespaces:
            run("ip", "netns", "add", ns)
            self.sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", self.fabric, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.fabric, "link", "set", "br0", "up")
        if self.tunnel:
            run("ip", "-n", self.fabric, "link", "add", "br1", "type", "bridge")
            run("ip", "-n", self.fabric, "link", "set", "br1", "up")
        self._plug(self.lb, "lb", LB_MAC)
        for i, (name, ns) in enumerate(self.lb_ns.items()):
            if i > 0:
                self._plug(ns, f"lb{i + 1}", INSTANCES[name][1])
        self._plug(self.client, "cl", CLIENT_MAC)
        for address in CLIENT_ADDRESSES:
            run("ip", "-n", self.client, "addr", "add", f"{address}/{LAN_PREFIX}", "dev", "eth0")
        for vip in VIPS:
            # A pair's VIPs are on the segment: the client asks by ARP who holds them, and the
            # new master's gratuitous ARP moves them. A tier's are behind the router.
            if len(self.lb_ns) == 1:
                via = ("via", LB_ADDRESS)
            else:
                via = ("via", ROUTER_ADDRESS) if self.router else ("dev", "eth0")
            run("ip", "-n", self.client, "route", "add", f"{vip}/32", *via)
        if self.router and len(self.lb_ns) > 1:
            # The client is on the router's segment: without this the router would redirect
            # it to the instance its route chose, and the client's flows would bypass ECMP.
            self.sysctl(self.client, "net.ipv4.conf.all.accept_redirects=0",
                        "net.ipv4.conf.eth0.accept_redirects=0")
        for name, (address, mac) in self.backends.items():
            ns = self.backend_ns[name]
            self._plug(ns, name, mac, bridge="br1" if self.tunnel else "br0")
            run("ip", "-n", ns, "addr", "add", f"{address}/{LAN_PREFIX}", "dev", "eth0")
            if self.tunnel:
                self.lower_mss(ns, self.tunnel)
            for vip in VIPS:
                run("ip", "-n", ns, "addr", "add", f"{vip}/32", "dev", "lo")
            self.sysctl(ns, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
                        "net.ipv4.conf.eth0.arp_ignore=1", "net.ipv4.conf.eth0.arp_announce=2")
        if self.router:
            self._plug(self.router, "rt", ROUTER_MAC)
            run("ip", "-n", self.router, "addr", "add", f"{ROUTER_ADDRESS}/{LAN_PREFIX}", "dev", "eth0")
            # ECMP over several instances (issue 17): spread by the 5-tuple, not the addresses.
            self.sysctl(self.router, "net.ipv4.fib_multipath_hash_policy=1")
            if self.tunnel:  # the router forwards between the segment and the backends' subnet
                self._plug(self.router, "rt1", BACKEND_SUBNET_ROUTER_MAC, bridge="br1", device="eth1")
                run("ip", "-n", self.router, "addr", "add", f"{BACKEND_SUBNET_ROUTER}/{LAN_PREFIX}", "dev", "eth1")
                self.sysctl(self.router, "net.ipv4.ip_forward=1")
            if len(self.lb_ns) > 1:  # the tier: the router forwards the client's flows
                self.sysctl(self.router, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
                            "net.ipv4.conf.eth0.send_redirects=0")

    def lower_mss(self, ns, tunnel):
        """A tunnel lab's backend: its route to the client's segment (its default route, via
        the router) advertises an MSS lowered by the encapsulation's overhead (advmss), so the
        client's segments, wrapped, still fit the links."""
        advmss = 1500 - 20 - 20 - TUNNEL_OVERHEAD[tunnel]
        run("ip", "-n", ns, "route", "replace", "default", "via", BACKEND_SUBNET_ROUTER, "advmss", advmss)

    def _plug(self, ns, short, mac, bridge="br0", device="eth0"):
        """A veth from `ns` (`device`, with `mac`) to `bridge` in the fabric namespace."""
        run("ip", "link", "add", device, "netns", ns, "address", mac, "type", "veth",
            "peer", "name", f"p-{short}", "netns", self.fabric)
        run("ip", "-n", self.fabric, "link", "set", f"p-{short}", "master", bridge, "up")
        run("ip", "-n", ns, "link", "set", device, "up")
        # veth checksum offload would hand tetherd frames with unfinished checksums, which
        # it forwards untouched and the backend then drops.
        for where, dev in ((ns, device), (self.fabric, f"p-{short}")):
            run("ip", "netns", "exec", where, "ethtool", "-K", dev, "tx", "off", check=False)

    def wire_tap_port(self, ns=None, timeout=10):
        """Joins tetherd's net_tap port (TAP_DEVICE, which DPDK creates in the lb namespace,
        or `ns`, when tetherd starts) to eth0, that namespace's veth to the bridge: tc redirects
        every frame arriving on either to the other's egress, so the lb kernel processes none
        of the port's traffic and only the exception path lets it speak. Not a bridge: the
        TAP device carries the port's MAC, which a bridge would take for a local one (and
        u32 with mirred is what this kernel offers; matchall and flower are missing). To be
        redone for every tetherd: the TAP device goes away with the process."""
        ns = ns or self.lb
        deadline = time.monotonic() + timeout
        while run("ip", "-n", ns, "link", "show", TAP_DEVICE, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{TAP_DEVICE} did not appear in {ns}")
            time.sleep(0.05)
        run("ip", "-n", ns, "link", "set", TAP_DEVICE, "up")
        # The kernel must not leave checksums to an offload on the way into tetherd.
        run("ip", "netns", "exec", ns, "ethtool", "-K", TAP_DEVICE, "tx", "off", check=False)
        for device, peer in (("eth0", TAP_DEVICE), (TAP_DEVICE, "eth0")):
            run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", device, "ingress", check=False)
            run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", device, "ingress")
            run("ip", "netns", "exec", ns, "tc", "filter", "add", "dev", device, "parent", "ffff:",
                "protocol", "all", "u32", "match", "u32", "0", "0",
                "action", "mirred", "egress", "redirect", "dev", peer)

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

    # -- moving the test itself into a namespace ------------------------------------------

    @staticmethod
    @contextmanager
    def inside(ns):
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
        existing = set(run("ip", "netns", "list", check=False).stdout.split())
        for ns in self.namespaces:
            if ns in existing:
                remove_namespace(ns)

    def leftovers(self):
        existing = run("ip", "netns", "list", check=False).stdout
        return [ns for ns in self.namespaces if ns in existing.split()]


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
