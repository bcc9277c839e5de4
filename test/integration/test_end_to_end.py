"""End to end: tetherd on net_af_packet in a lab of network namespaces (tools/tetherlab), with
real clients and servers. A sipp UAC places SIP calls to the VIP; each backend runs sipp's
UAS bound to the VIP (its replies reach the client directly, DSR) and logs every request it
receives, so the tests see which backend got each message of each call. A TCP service on
each backend greets every connection with the backend's name.

Health checks: the SIP service uses tetherd's "sip-options" check, answered by the same
sipp UAS (-aa answers OPTIONS; the backend maps its own address:5060 onto the VIP socket);
the TCP service uses the "tcp" SYN check against the name server. Stopping a server makes
its check fail.
"""
import collections
import json
import socket
import time

import pytest

from conftest import assert_spread_by_weight
from tetherlab.topology import BACKENDS, SIP_PORT, SIP_VIP, TCP_PORT, TCP_VIP
from tetherlab.workloads import Calls

# Measures time or loads the machine itself: runs alone (pytest.ini).
pytestmark = pytest.mark.serial

HEALTH = {"interval": 300, "timeout": 200, "rise": 2, "fall": 3}  # ms
SIP_HEALTH = dict(HEALTH, type="sip-options")
TCP_HEALTH = dict(HEALTH, type="tcp")
# Scheduling slack on a loaded 2-core machine, on top of what the check settings allow.
SLACK = 1.5


@pytest.fixture
def servers(lab):
    """Every backend's SIP and TCP server running at the start of a test."""
    for name in BACKENDS:
        if name not in lab.sip_servers:
            lab.start_sip_server(name)
        if name not in lab.tcp_servers:
            lab.start_tcp_server(name)
    return lab


@pytest.fixture
def start_tetherd(servers):
    started = []

    def start(services, workers=1):
        t = servers.start_tetherd(services, workers)
        started.append(t)
        return t

    yield start
    for t in started:
        servers.stop(t.proc)


def sip_service(weights):
    return {"name": "sip", "vip": SIP_VIP, "port": SIP_PORT, "protocol": "udp",
            "weights": weights, "extra": 'dpi = "sip";', "health": SIP_HEALTH}


def tcp_service(weights):
    return {"name": "web", "vip": TCP_VIP, "port": TCP_PORT, "protocol": "tcp",
            "weights": weights, "health": TCP_HEALTH}


# -- clients ------------------------------------------------------------------------------

def assert_calls_complete(run):
    """Every call succeeded, and all of each call's requests reached one backend.
    Returns Call-ID -> backend. The UAC's count alone is not enough: a BYE that lands on
    another backend's sipp UAS gets a 200 there too, so the call still "succeeds"."""
    code, ok, failed = run.wait()
    assert (code, ok, failed) == (0, run.calls, 0), (run.lab.workdir / f"uac-{run.tag}.err").read_text()
    placement = run.placement()
    assert len(placement) == run.calls
    where = {}
    for call_id, backends in placement.items():
        assert len(backends) == 1, f"call {call_id} reached {dict(backends)}"
        (backend, methods), = backends.items()
        assert {"INVITE", "ACK", "BYE"} <= set(methods), (call_id, methods)
        where[call_id] = backend
    return where


def connect(lab, timeout=5):
    """A TCP connection from the client to the TCP VIP: (socket file, greeting backend)."""
    with lab.inside(lab.client):
        s = socket.create_connection((TCP_VIP, TCP_PORT), timeout=timeout)
    f = s.makefile("rw")
    s.close()  # the file keeps the connection
    return f, f.readline().strip()


def connections(lab, count):
    """Opens and closes `count` connections; Counter of the backends that answered."""
    served = collections.Counter()
    for _ in range(count):
        f, backend = connect(lab)
        f.close()
        served[backend] += 1
    return served


# -- tests --------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
def test_calls_and_connections_through_the_vip(start_tetherd, workers):
    """Real SIP calls complete with every message of a call on one backend, and both
    calls and TCP connections spread by weight. The UAC sends every call from one UDP
    socket: a 5-tuple balancer would put them all on one backend, only Call-ID routing
    spreads them. With two workers the kernel spreads the TCP connections over both
    queues (af_packet fanout by flow hash), as RSS would."""
    sip_weights = {"b1": 2, "b2": 1, "b3": 1}
    tcp_weights = {"b1": 1, "b2": 2, "b3": 3}
    tetherd = start_tetherd([sip_service(sip_weights), tcp_service(tcp_weights)], workers)
    lab = tetherd.lab
    tetherd.wait_until(lambda b: all(x["healthy"] for x in b.values()), 10, "all healthy")

    run = Calls(lab, f"spread{workers}", calls=720, rate=120)
    served = connections(lab, 600)
    where = assert_calls_complete(run)

    per_backend = collections.Counter(where.values())
    # 5 sigma at these counts still tells 2:1:1 and 1:2:3 from an even spread: an even
    # spread of 720 calls puts b1 at 240 +- 13, 4 sigma short of its bound's low end (292)
    assert_spread_by_weight(per_backend, sip_weights)
    assert_spread_by_weight(served, tcp_weights)
    assert sum(served.values()) == 600
    # tetherd's own account agrees with what the servers saw
    backends = tetherd.backends()
    for name, (_address, mac) in BACKENDS.items():
        assert backends[name]["sessions"] == per_backend[name]
        assert backends[name]["state"] == "up"
        assert (backends[name]["mac"], backends[name]["mac_source"]) == (mac, "arp")
    assert "backend b1 is at" in tetherd.log()
    per_worker = json.loads(tetherd.ctl("--json", "show", "workers"))["workers"]
    assert len(per_worker) == workers
    assert all(w["forwarded"] > 100 for w in per_worker), per_worker
    assert tetherd.stop() == 0


def test_a_stopped_server_goes_down_and_comes_back(start_tetherd):
    """Stopping a backend's server fails its health check: down within fall x interval
    (+ timeout), new calls and connections avoid it and all succeed; restarted, it is up
    again after rise answers and takes new work."""
    weights = {"b1": 1, "b2": 1, "b3": 1}
    tetherd = start_tetherd([sip_service(weights), tcp_service(weights)])
    lab = tetherd.lab
    tetherd.wait_until(lambda b: all(x["healthy"] for x in b.values()), 10, "all healthy")
    down_bound = HEALTH["fall"] * HEALTH["interval"] / 1000 + HEALTH["timeout"] / 1000
    up_bound = HEALTH["rise"] * HEALTH["interval"] / 1000 + HEALTH["timeout"] / 1000
    # a backend can neither fall nor rise before (count - 1) more probes went out
    down_floor = (HEALTH["fall"] - 1) * HEALTH["interval"] / 1000 * 0.8
    up_floor = (HEALTH["rise"] - 1) * HEALTH["interval"] / 1000 * 0.8

    # SIP: b2's UAS stops
    lab.stop_sip_server("b2")
    took = tetherd.wait_until(lambda b: b["b2"]["state"] == "down", down_bound + SLACK + 5, "b2 down")
    assert down_floor <= took <= down_bound + SLACK, took
    assert "backend b2 down: sip-options check for service sip failed 3 times" in tetherd.log()
    assert {n: b["state"] for n, b in tetherd.backends().items()} == {"b1": "up", "b2": "down", "b3": "up"}
    run = Calls(lab, "b2down", calls=90, rate=60)
    served = connections(lab, 150)
    where = assert_calls_complete(run)
    assert set(where.values()) == {"b1", "b3"}
    assert set(served) == {"b1", "b3"}

    lab.start_sip_server("b2")
    took = tetherd.wait_until(lambda b: b["b2"]["state"] == "up", up_bound + SLACK + 5, "b2 up")
    assert up_floor <= took <= up_bound + SLACK, took
    assert "backend b2 up: sip-options check for service sip passed 2 times" in tetherd.log()
    where = assert_calls_complete(Calls(lab, "b2back", calls=90, rate=60))
    assert collections.Counter(where.values())["b2"] >= 10

    # TCP: b3's name server stops (its check is refused)
    lab.stop_tcp_server("b3")
    took = tetherd.wait_until(lambda b: b["b3"]["state"] == "down", down_bound + SLACK + 5, "b3 down")
    assert down_floor <= took <= down_bound + SLACK, took
    assert "backend b3 down: tcp check for service web failed 3 times" in tetherd.log()
    served = connections(lab, 150)
    assert set(served) == {"b1", "b2"} and sum(served.values()) == 150
    lab.start_tcp_server("b3")
    took = tetherd.wait_until(lambda b: b["b3"]["state"] == "up", up_bound + SLACK + 5, "b3 up")
    assert up_floor <= took <= up_bound + SLACK, took
    served = connections(lab, 150)
    assert served["b3"] >= 20
    assert tetherd.stop() == 0


def test_weight_drain_and_disable_through_tetherctl(start_tetherd):
    """drain: calls and connections in progress on the backend finish there, new ones avoid
    it; disable and weight 0: no new calls or connections."""
    weights = {"b1": 1, "b2": 1, "b3": 1}
    tetherd = start_tetherd([sip_service(weights), tcp_service(weights)])
    lab = tetherd.lab
    tetherd.wait_until(lambda b: all(x["healthy"] for x in b.values()), 10, "all healthy")

    # Calls lasting 4 s, and TCP connections kept open, across `backend drain b1`.
    long_calls = Calls(lab, "long", calls=45, rate=30, duration_ms=4000)
    open_connections = [connect(lab) for _ in range(45)]
    time.sleep(2)  # every long call has started
    assert tetherd.backends()["b1"]["live_calls"] > 0
    tetherd.ctl("backend", "drain", "b1")
    assert tetherd.backends()["b1"]["state"] == "draining"
    new_calls = Calls(lab, "drained", calls=60, rate=60, local_port=5071)
    served = connections(lab, 150)
    for f, backend in open_connections:
        f.write("still there?\n")
        f.flush()
        assert f.readline().strip() == f"{backend} still there?"
        f.close()
    old = assert_calls_complete(long_calls)   # BYEs of b1's calls reached b1's UAS
    new = assert_calls_complete(new_calls)
    assert "b1" in old.values()
    assert "b1" in {backend for _f, backend in open_connections}
    assert set(new.values()) == {"b2", "b3"}
    assert set(served) == {"b2", "b3"}

    tetherd.ctl("backend", "enable", "b1")
    tetherd.ctl("backend", "disable", "b2")
    b2 = tetherd.backends()["b2"]
    assert (b2["state"], b2["admin"], b2["healthy"]) == ("down", "down", True)
    calls = Calls(lab, "disabled", calls=60, rate=60)
    served = connections(lab, 150)
    assert set(assert_calls_complete(calls).values()) == {"b1", "b3"}
    assert set(served) == {"b1", "b3"}

    tetherd.ctl("backend", "enable", "b2")
    tetherd.ctl("backend", "weight", "b3", "0")
    calls = Calls(lab, "weight0", calls=60, rate=60)
    served = connections(lab, 150)
    assert set(assert_calls_complete(calls).values()) == {"b1", "b2"}
    assert set(served) == {"b1", "b2"}

    tetherd.ctl("backend", "weight", "b3", "2", "web")
    served = connections(lab, 150)
    assert set(served) == {"b1", "b2", "b3"} and served["b3"] > 40
    assert tetherd.stop() == 0
