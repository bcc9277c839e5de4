"""BIRD for the lab's net_tap variant: bird2 in the lb namespace (tetherd's), where it
speaks BGP over the exception path's interface and announces the VIPs' prefix, and in the
router namespace, which installs what it learns in its kernel's table. Their
configurations are bird/lb.conf and bird/router.conf; each BIRD keeps its control socket,
pid file and log (bird-ROLE.*) in the lab's workdir and runs in the foreground in its own
process group, so the lab's teardown stops it like any other server.

A tier of instances (Lab(instances=N)) runs a BIRD beside each tetherd, with lb.conf's
addresses changed to the instance's, and the router's BIRD with a BGP session to each
(tier_configs)."""
import re
import subprocess
import time
from pathlib import Path

from .namespaces import run
from .topology import INSTANCES, LB_ADDRESS

CONFIGS = {role: Path(__file__).resolve().parent / "bird" / f"{role}.conf"
           for role in ("lb", "router")}
# The BGP protocol each configuration names its peer by.
PEER = {"lb": "upstream", "router": "tether"}


def peer_protocol(instance):
    """The name of the router's BGP protocol for `instance` (router.conf's for "a")."""
    return "tether" if instance == "a" else f"tether_{instance}"


def tier_configs(workdir, instances):
    """BIRD's configurations for a tier of `instances` (names of INSTANCES), written into
    `workdir`: role -> path, "router" (router.conf and a session per further instance) and
    "lb-NAME" for each instance (lb.conf with the instance's address)."""
    paths = {"router": workdir / "bird-router.conf"}
    router = CONFIGS["router"].read_text()
    for name in instances:
        address = INSTANCES[name][0]
        if name != "a":
            router += (f"\nprotocol bgp {peer_protocol(name)} from tether_peer {{\n"
                       f"  neighbor {address} as 65001;\n}}\n")
        paths[f"lb-{name}"] = workdir / f"bird-lb-{name}.conf"
        paths[f"lb-{name}"].write_text(re.sub(re.escape(LB_ADDRESS) + r"(?!\d)", address, CONFIGS["lb"].read_text()))
    paths["router"].write_text(router)
    return paths


class Bird:
    """bird -f in namespace `ns` of `lab` with bird/ROLE.conf (or `config`), once its control
    socket answers. `peers`: the BGP protocols whose sessions established() looks at
    (default PEER[role])."""

    def __init__(self, lab, ns, role, timeout=10, config=None, peers=None):
        self.role = role
        self.peers = peers or [PEER[role]]
        self.socket = lab.workdir / f"bird-{role}.ctl"
        self.log_path = lab.workdir / f"bird-{role}.log"
        with open(self.log_path, "a") as log:
            self.proc = lab.popen(ns, ["bird", "-f", "-c", config or CONFIGS[role], "-s", self.socket,
                                       "-P", lab.workdir / f"bird-{role}.pid"],
                                  stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not (self.socket.exists() and self.birdc("show", "status", check=False).returncode == 0):
            assert self.proc.poll() is None, f"bird ({role}) exited: {self.log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"bird ({role}) did not open {self.socket}"
            time.sleep(0.1)

    def birdc(self, *words, check=True):
        return run("birdc", "-s", self.socket, *words, check=check)

    def protocols(self):
        """`birdc show protocols`, as printed."""
        return self.birdc("show", "protocols").stdout

    def established(self):
        """Whether the BGP sessions with the peers are Established."""
        protocols = self.protocols()
        return all(re.search(rf"^{peer}\s.*\bEstablished\b", protocols, re.M) for peer in self.peers)

    def wait_established(self, timeout):
        """Seconds until the BGP session is Established; AssertionError after `timeout`."""
        start = time.monotonic()
        while not self.established():
            assert self.proc.poll() is None, f"bird ({self.role}) exited: {self.log_path.read_text()[-2000:]}"
            assert time.monotonic() - start < timeout, \
                f"bird ({self.role}): no session within {timeout} s:\n{self.protocols()}"
            time.sleep(0.2)
        return time.monotonic() - start
