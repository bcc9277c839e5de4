"""BIRD for the lab's net_tap variant: bird2 in the lb namespace (tetherd's), where it
speaks BGP over the exception path's interface and announces the VIPs' prefix, and in the
router namespace, which installs what it learns in its kernel's table. Their
configurations are bird/lb.conf and bird/router.conf; each BIRD keeps its control socket,
pid file and log (bird-ROLE.*) in the lab's workdir and runs in the foreground in its own
process group, so the lab's teardown stops it like any other server."""
import re
import subprocess
import time
from pathlib import Path

from .namespaces import run

CONFIGS = {role: Path(__file__).resolve().parent / "bird" / f"{role}.conf"
           for role in ("lb", "router")}
# The BGP protocol each configuration names its peer by.
PEER = {"lb": "upstream", "router": "tether"}


class Bird:
    """bird -f in namespace `ns` of `lab` with bird/ROLE.conf, once its control socket answers."""

    def __init__(self, lab, ns, role, timeout=10):
        self.role = role
        self.socket = lab.workdir / f"bird-{role}.ctl"
        self.log_path = lab.workdir / f"bird-{role}.log"
        with open(self.log_path, "a") as log:
            self.proc = lab.popen(ns, ["bird", "-f", "-c", CONFIGS[role], "-s", self.socket,
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
        """Whether the BGP session with the peer is Established."""
        return re.search(rf"^{PEER[self.role]}\s.*\bEstablished\b", self.protocols(), re.M) is not None

    def wait_established(self, timeout):
        """Seconds until the BGP session is Established; AssertionError after `timeout`."""
        start = time.monotonic()
        while not self.established():
            assert self.proc.poll() is None, f"bird ({self.role}) exited: {self.log_path.read_text()[-2000:]}"
            assert time.monotonic() - start < timeout, \
                f"bird ({self.role}): no session within {timeout} s:\n{self.protocols()}"
            time.sleep(0.2)
        return time.monotonic() - start
