"""Consistency across the instances of a tier (README "N active instances behind ECMP"), on
the pair lab's two tetherds: each on net_tap with its exception path in a namespace of its
own, state sync between them, no `ha` and no keepalived (both forward, as two members of an
ECMP tier do), and `announce` (tetherd's routes in its own namespace; no BIRD needed here).

- Bulk before announce: an instance whose peer is dead announces only after
  announce.bulk_wait; one whose peer runs announces once that peer's bulk dump arrived.
- Health: b2 drops the ICMP health probes of instance a only. a's own check fails; b's
  passes, but a's report holds b2 down on b too (down wins). The disagreement window, from
  a's verdict to b's hold, is measured from both tetherds' logs (same clock). b2 comes back
  on both once a's check passes again, and when a dies, b forgets a's reports after
  kPeerHealthExpiry_ms (3 s).
"""
import re
import secrets
import signal
import time
from datetime import datetime

import pytest

from conftest import created_lab
from tetherlab.config import Kernel, Port, config_text
from tetherlab.namespaces import run
from tetherlab.topology import BACKENDS, LAN_PREFIX, PAIR, SYNC_PORT, TAP_DEVICE, TCP_VIP

# Measures time: runs alone (pytest.ini).
pytestmark = pytest.mark.serial

HEALTH = {"type": "icmp", "interval": 200, "timeout": 150, "rise": 2, "fall": 2}
BULK_WAIT = {"a": 4, "b": 30}  # a starts alone and waits for dead b; b must not need its wait
PEER_EXPIRY_S = 3.0  # kPeerHealthExpiry_ms


def instance_config(lab, name, key_file):
    address, mac = PAIR[name]
    port = Port("lan0", f"net_tap0,iface={TAP_DEVICE}", mac, (f"{address}/{LAN_PREFIX}",), kernel=Kernel())
    service = {"name": "probe", "vip": TCP_VIP, "port": 9000, "protocol": "udp",
               "weights": {b: 1 for b in BACKENDS}, "health": HEALTH}
    peers = ", ".join(f'"{a}"' for other, (a, _m) in PAIR.items() if other != name)
    extra = (f'sync = {{ port = "lan0"; listen_port = {SYNC_PORT}; key_file = "{key_file}";\n'
             f'         peers = [{peers}]; instance = "lb-{name}"; }};\n'
             f'announce = {{ port = "lan0"; bulk_wait = {BULK_WAIT[name]}; }};\n')
    path = lab.workdir / f"tier-{name}.cfg"
    path.write_text(config_text([port], {b: (a, None) for b, (a, _m) in BACKENDS.items()}, [service],
                                extra=extra))
    return path


@pytest.fixture(scope="module")
def tier(tmp_path_factory):
    """The pair lab, with both instances' configurations; no tetherd yet."""
    with created_lab(tmp_path_factory.mktemp("tierlab"), pair=True) as lab:
        key = lab.workdir / "sync.key"
        key.write_text(secrets.token_hex(32) + "\n")
        key.chmod(0o600)
        configs = {name: instance_config(lab, name, key) for name in PAIR}
        tetherds = {}
        yield lab, configs, tetherds
        for tetherd in tetherds.values():
            tetherd.stop()


def log_time(tetherd, pattern):
    """The time of the first line of tetherd's log matching `pattern` (a regex), in seconds
    of the day, or None."""
    for line in tetherd.log().splitlines():
        if re.search(pattern, line):
            stamp = datetime.strptime(line.split()[0], "%H:%M:%S.%f")
            return stamp.hour * 3600 + stamp.minute * 60 + stamp.second + stamp.microsecond / 1e6
    return None


def announce(tetherd):
    answer = tetherd.json("show", "announce")
    (vip,) = answer["vips"]
    return answer, vip


def wait(what, predicate, timeout):
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_starting_instance_announces_after_its_peers_bulk_dump_or_its_silence(tier):
    lab, configs, tetherds = tier
    # a alone: b is silent, so a waits bulk_wait from its start, then announces.
    tetherds["a"] = lab.start_tetherd(configs["a"], instance="a")
    answer, vip = announce(tetherds["a"])
    assert not vip["announced"] and vip["reason"] == "awaiting bulk sync", answer
    assert answer["bulk_awaited"] == [PAIR["b"][0]], answer
    wait("a announces", lambda: announce(tetherds["a"])[1]["announced"], BULK_WAIT["a"] + 5)
    started, announced = (log_time(tetherds["a"], p) for p in (r"running: ", r"announce: announcing "))
    assert announced - started >= BULK_WAIT["a"] - 0.1, (started, announced)
    assert announce(tetherds["a"])[0]["bulk_awaited"] == []

    # b, with a running: it announces once a's dump arrived, long before its own bulk_wait.
    tetherds["b"] = lab.start_tetherd(configs["b"], instance="b")
    took = wait("b announces", lambda: announce(tetherds["b"])[1]["announced"], BULK_WAIT["b"] - 5)
    received = log_time(tetherds["b"], rf"sync: bulk dump from {re.escape(PAIR['a'][0])} received whole")
    announced = log_time(tetherds["b"], r"announce: announcing ")
    assert received is not None and announced >= received, tetherds["b"].log()[-3000:]
    counters = tetherds["b"].json("show", "sync")["counters"]
    assert counters["sync_bulk_ends_received"] >= 1, counters
    # a, serving already, gets b's dump too (it asks every 2 s), and a peer that joins must
    # not withdraw it meanwhile: the wait is for a starting instance only.
    wait("b's dump on a", lambda: log_time(tetherds["a"], r"sync: bulk dump from .* received whole"), 10)
    assert "announce: withdrawing" not in tetherds["a"].log(), tetherds["a"].log()[-3000:]
    assert announce(tetherds["a"])[1]["announced"]
    print(f"b announced {announced - log_time(tetherds['b'], r'running: '):.2f} s after its start "
          f"(bulk_wait {BULK_WAIT['b']} s; {took:.2f} s after start_tetherd returned)")


def drop_probes_from(lab, backend, address):
    """b2's kernel drops ICMP echo requests from `address` (one instance's probes)."""
    run("ip", "netns", "exec", lab.backend_ns[backend], "nft", "-f", "-", input=(
        "table inet tether_test {\n chain input {\n  type filter hook input priority 0;\n"
        f"  ip saddr {address} icmp type echo-request drop\n }}\n}}\n"))


def allow_probes(lab, backend):
    run("ip", "netns", "exec", lab.backend_ns[backend], "nft", "delete", "table", "inet", "tether_test")


def state(tetherd, backend="b2"):
    return tetherd.backends()[backend]


def test_one_instances_failed_check_takes_the_backend_off_both(tier):
    lab, _configs, tetherds = tier
    a, b = tetherds["a"], tetherds["b"]
    for tetherd in (a, b):
        tetherd.wait_until(lambda bs: all(x["state"] == "up" for x in bs.values()), 10, "all backends up")
    a_address = PAIR["a"][0]

    drop_probes_from(lab, "b2", a_address)
    wait("b2 down on a", lambda: state(a)["state"] == "down", 5)
    wait("b2 held down on b", lambda: state(b)["state"] == "down", 2)
    on_a, on_b = state(a), state(b)
    assert not on_a["healthy"] and on_a["peer_hold"] == "none", on_a
    # b's own check passes: the hold is a's report, and says so.
    assert on_b["healthy"] and on_b["peer_hold"] == "a peer reports it down", on_b
    assert [p["address"] for p in on_b["reported_down_by"]] == [a_address], on_b
    (peer,) = b.json("show", "sync")["peers"]
    assert peer["backends_down"] == ["b2"], peer
    # The other backends stay in use on both.
    for tetherd in (a, b):
        assert all(x["state"] == "up" for n, x in tetherd.backends().items() if n != "b2")
    down_on_a = log_time(a, r"backend b2 down: icmp check")
    held_on_b = log_time(b, r"backend b2: a peer reports it down")
    window_down = held_on_b - down_on_a
    assert 0 <= window_down < 0.5, (down_on_a, held_on_b)

    allow_probes(lab, "b2")
    wait("b2 up on a", lambda: state(a)["state"] == "up", 5)
    wait("b2 up on b", lambda: state(b)["state"] == "up", 2)
    up_on_a = log_time(a, r"backend b2 up: icmp check")
    released_on_b = log_time(b, r"backend b2: no peer reports it down any more")
    window_up = released_on_b - up_on_a
    assert 0 <= window_up < 0.5, (up_on_a, released_on_b)
    sent = a.json("show", "sync")["counters"]["sync_health_transitions_sent"]
    received = b.json("show", "sync")["counters"]["sync_health_transitions_received"]
    assert sent == 2 and received == 2, (sent, received)
    print(f"disagreement window: b2 down {window_down * 1000:.0f} ms, back up {window_up * 1000:.0f} ms")


def test_a_dead_peers_reports_expire(tier):
    lab, _configs, tetherds = tier
    a, b = tetherds["a"], tetherds["b"]
    drop_probes_from(lab, "b2", PAIR["a"][0])
    try:
        wait("b2 held down on b", lambda: state(b)["state"] == "down", 5)
        killed = time.monotonic()
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        wait("b2 back on b", lambda: state(b)["state"] == "up", PEER_EXPIRY_S + 2)
        took = time.monotonic() - killed
        # Not before a's reports expired: a's last message was at most a second before the kill.
        assert took >= PEER_EXPIRY_S - 1.1, took
        assert state(b)["reported_down_by"] == []
        print(f"a's report on b2 forgotten {took:.2f} s after a was killed")
    finally:
        allow_probes(lab, "b2")
