"""The operator is never locked out of the control socket: while an attacker holds silent,
slow or flooding connections to the real tetherd's socket (opening a new one whenever
tetherd closes one), every `tetherctl show counters` succeeds within a few seconds, also
when tetherd has run out of file descriptors; and tetherd closes everything it took."""
import os
import resource
import selectors
import socket
import subprocess
import threading
import time

import pytest
from scapy.utils import wrpcap

import tetherlab.tetherd
from conftest import SERVICES
from harness import TETHERCTL, config_text, pcap_device

# Measures time or loads the machine itself: runs alone (pytest.ini).
pytestmark = pytest.mark.serial

CALLS = 20
SECONDS_PER_CALL = 5


@pytest.fixture(autouse=True)
def enough_descriptors():
    """500 attacking sockets and tetherctl's children need more than a default 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Tetherd(tetherlab.tetherd.Tetherd):
    """tetherd on an empty pcap (no traffic, no CPU spent on packets), its log in a file."""

    def __init__(self, workdir):
        wrpcap(str(workdir / "in0.pcap"), [], linktype=1)
        config = workdir / "tetherd.cfg"
        config.write_text(config_text(pcap_device(workdir, 1), SERVICES))
        super().__init__(config, workdir / "tetherd.sock", output=workdir / "tetherd")
        self.log_path = self.stderr_path

    def descriptors(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


@pytest.fixture
def tetherd(tmp_path):
    daemon = Tetherd(tmp_path)
    yield daemon
    daemon.stop()


class Attacker(threading.Thread):
    """Holds `count` connections to the socket and opens a new one for each that tetherd
    closes. `silent` ones send nothing; `slowloris` ones send a byte of a command every
    100 ms and never a newline; `flood` ones send bytes without a newline as fast as they can."""

    def __init__(self, path, count, mode="silent"):
        super().__init__(daemon=True)
        self.path, self.count, self.mode = str(path), count, mode
        self.stop = threading.Event()
        self.held = 0
        self.opened = 0
        self.closed_by_tetherd = 0
        self.answers = []

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(self.path)
        except (BlockingIOError, ConnectionRefusedError, InterruptedError):
            s.close()  # a full backlog: tried again on the next round
            return None
        self.opened += 1
        return s

    def run(self):
        selector = selectors.DefaultSelector()
        sockets = set()
        next_byte = time.monotonic()
        junk = b"x" * 65536
        try:
            while not self.stop.is_set():
                for _ in range(self.count - len(sockets)):
                    s = self.connect()
                    if s is None:
                        break
                    sockets.add(s)
                    selector.register(s, selectors.EVENT_READ)
                self.held = len(sockets)
                for key, _ in selector.select(timeout=0.02):
                    s = key.fileobj
                    try:
                        data = s.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if data:
                        self.answers.append(data)
                        continue
                    selector.unregister(s)
                    sockets.discard(s)
                    s.close()
                    self.closed_by_tetherd += 1
                if self.mode == "slowloris" and time.monotonic() >= next_byte:
                    next_byte = time.monotonic() + 0.1
                    for s in list(sockets):
                        try:
                            s.send(b"s")
                        except OSError:
                            pass
                elif self.mode == "flood":
                    for s in list(sockets):
                        try:
                            s.send(junk)
                        except OSError:
                            pass
        finally:
            for s in sockets:
                selector.unregister(s)
                s.close()
            selector.close()

    def __enter__(self):
        self.start()
        deadline = time.time() + 30
        while self.held < self.count and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let tetherd take what it will
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join(timeout=30)


def operator_calls(sock, calls=CALLS):
    """`tetherctl show counters` (human output) `calls` times: each one's time, and what
    failed."""
    times, failures = [], []
    for _ in range(calls):
        start = time.monotonic()
        result = subprocess.run([str(TETHERCTL), "-s", str(sock), "show", "counters"],
                                capture_output=True, text=True, timeout=60)
        times.append(time.monotonic() - start)
        if result.returncode != 0 or "rx_packets" not in result.stdout:
            failures.append(result.stderr.strip() or result.stdout[:200])
    return times, failures


def assert_operator_gets_in(tetherd, attacker):
    times, failures = operator_calls(tetherd.socket)
    print(f"{attacker.count} {attacker.mode}: calls took {min(times):.3f}..{max(times):.3f} s; "
          f"attacker opened {attacker.opened}, tetherd closed {attacker.closed_by_tetherd}")
    assert failures == [], f"{len(failures)} of {CALLS} failed: {failures[:3]}"
    assert max(times) < SECONDS_PER_CALL, times
    assert tetherd.proc.poll() is None
    assert attacker.is_alive() and attacker.held == attacker.count
    return times


def assert_everything_closed(tetherd, baseline):
    """With the attacker gone, tetherd is back to the descriptors it had before."""
    deadline = time.time() + 10
    while tetherd.descriptors() > baseline and time.time() < deadline:
        time.sleep(0.1)
    assert tetherd.descriptors() == baseline


@pytest.mark.parametrize("attackers", [32, 500])
def test_silent_clients_do_not_lock_the_operator_out(tetherd, attackers):
    baseline = tetherd.descriptors()
    with Attacker(tetherd.socket, attackers) as attacker:
        # tetherd holds no more than its 64 slots, whatever is connected, and the one
        # connection it has just accepted and is making room for (by evicting an idle one):
        # a sample may land between the two.
        assert tetherd.descriptors() <= baseline + 64 + 1
        assert_operator_gets_in(tetherd, attacker)
        # The attacker's connections were taken and closed, not left in the backlog.
        assert attacker.closed_by_tetherd > 0
    assert_everything_closed(tetherd, baseline)
    assert "idle client(s) evicted" in tetherd.log_path.read_text()


def test_slow_and_flooding_clients_do_not_lock_the_operator_out(tetherd):
    baseline = tetherd.descriptors()
    with Attacker(tetherd.socket, 80, "slowloris") as slow, Attacker(tetherd.socket, 4, "flood") as flood:
        assert_operator_gets_in(tetherd, slow)
        assert flood.is_alive()
        # A slow client is dropped once its whole-command deadline passed.
        assert slow.closed_by_tetherd > 0
    # Every flooding connection was answered with an error (bounded line) and closed.
    assert flood.closed_by_tetherd > 0
    assert any(b'"error":"command longer than 4096 bytes"' in a for a in flood.answers)
    assert_everything_closed(tetherd, baseline)


def test_out_of_descriptors_tetherd_still_lets_the_operator_in(tetherd):
    """tetherd may hold only a few more descriptors than it has at start: accept() fails
    with EMFILE while the attacker's connections wait, and tetherd must make room rather
    than spin or leave the operator in the backlog."""
    baseline = tetherd.descriptors()
    soft, hard = resource.prlimit(tetherd.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(tetherd.proc.pid, resource.RLIMIT_NOFILE, (baseline + 4, hard))
    try:
        with Attacker(tetherd.socket, 32) as attacker:
            assert tetherd.descriptors() <= baseline + 4
            assert_operator_gets_in(tetherd, attacker)
    finally:
        resource.prlimit(tetherd.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
    assert_everything_closed(tetherd, baseline)
