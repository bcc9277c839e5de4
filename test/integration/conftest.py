"""What the integration tests share: the pcap rig's services and mixed traffic, the virtual
lab (tools/tetherlab, importable through pytest.ini's pythonpath) and its checks."""
import contextlib
import random

import pytest

import traffic
from tetherlab.lab import Lab
from tetherlab.namespaces import remove_stale_labs

VIP_TCP = "192.0.2.100"
VIP_UDP = "192.0.2.101"
VIP6_TCP = "2001:db8::100"

SERVICES = [
    {"name": "web", "vip": VIP_TCP, "port": 80, "protocol": "tcp",
     "weights": {"b1": 1, "b2": 2, "b3": 3}},
    {"name": "sip", "vip": VIP_UDP, "port": 5060, "protocol": "udp",
     "weights": {"b1": 5, "b2": 3, "b3": 2}},
    {"name": "web6", "vip": VIP6_TCP, "port": 80, "protocol": "tcp",
     "weights": {"b1": 1, "b2": 1, "b3": 2}},
]


@pytest.fixture(scope="session")
def mixed_traffic():
    """10,000 IPv4 flows to two VIPs and 2,000 IPv6 flows, interleaved: (flows, frames)."""
    rng = random.Random(20261123)
    flows = (traffic.make_flows("web", VIP_TCP, 80, "tcp", 6000, 0, rng)
             + traffic.make_flows("sip", VIP_UDP, 5060, "udp", 4000, 6000, rng)
             + traffic.make_flows("web6", VIP6_TCP, 80, "tcp", 2000, 10000, rng, ipv6_clients=True))
    return flows, traffic.interleave(flows, rng)


@contextlib.contextmanager
def created_lab(workdir, **options):
    """A virtual lab (Lab(workdir, **options)), no server started yet: torn down after the
    block, leaving nothing behind (labs of killed runs are removed first)."""
    remove_stale_labs()
    lab = Lab(workdir, **options)
    try:
        lab.create()
        yield lab
    finally:
        lab.teardown()
        assert lab.leftovers() == []


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A virtual lab for one module's tests (created_lab)."""
    with created_lab(tmp_path_factory.mktemp("lab")) as lab:
        yield lab


def assert_sessions_survived(phase):
    """A failover or tier phase's figures (failover.play) without a failure: every call
    placed and on one backend, every download whole, every stream's audio, every RTSP
    session seen with its RTCP on its own backend only and still reaching it after the
    phase's event."""
    figures = {k: v for k, v in phase.items() if k not in ("sync", "restarted_sync", "placement")}
    assert phase["calls"] > 0 and phase["calls_failed"] == 0, figures
    assert phase["calls_split"] == 0, figures
    assert phase["downloads_failed"] == 0, figures
    assert phase["streams_failed"] == 0, figures
    assert phase["rtsp_sessions"] == phase["streams"], figures
    assert phase["rtcp_misrouted"] == 0, figures
    assert phase["rtcp_lost_after_event"] == 0, figures


class Balancer:
    """A lab's one tetherd: use(config) stops the running one and starts another, and
    waits until every backend is healthy; ensure(config) does that unless `config` runs."""

    def __init__(self, lab):
        self.lab, self.current = lab, None

    def use(self, config):
        self.stop()
        self.current = self.lab.start_tetherd(config)
        self.current.wait_until(lambda b: all(x["healthy"] for x in b.values()), 15, "all healthy")
        return self.current

    def ensure(self, config):
        """The running tetherd if it runs `config`, else use(config)."""
        if self.current is None or self.current.config != config:
            self.use(config)
        return self.current

    def stop(self):
        if self.current is not None:
            code = self.current.stop()
            self.current = None
            assert code == 0


@pytest.fixture(scope="module")
def balancer(lab):
    """The Balancer of the module's `lab` (a module may override `lab`: a lab with servers,
    another variant), stopped after the module's tests."""
    b = Balancer(lab)
    yield b
    b.stop()


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
