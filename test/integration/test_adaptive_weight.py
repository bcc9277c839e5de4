"""adaptive_weight end to end: two sipp UAS backends behind tetherd's sip-options check, and
a sipp UAC placing calls throughout. b2 is restarted with a UAS that answers OPTIONS only
after a pause (tools/tetherlab/sip/uas_slow_options.xml): its weight drops to a fraction and
new calls move away from it; restarted without the pause, it gets its share back. The
shares are the backends' `sessions` counters over a window of each phase."""
import re
import time

import pytest

from tetherlab.topology import SIP_PORT, SIP_VIP
from tetherlab.workloads import Calls

# Measures shares over windows of time: runs alone (pytest.ini).
pytestmark = pytest.mark.serial

PAUSE_MS = 250
HEALTH = {"type": "sip-options", "interval": 300, "timeout": 300, "rise": 1, "fall": 3}
FLOOR = 10
SERVICE = {"name": "sip", "vip": SIP_VIP, "port": SIP_PORT, "protocol": "udp",
           "weights": {"b1": 1, "b2": 1}, "health": HEALTH,
           "extra": f'dpi = "sip"; adaptive_weight = {{ threshold = 200; tolerance = 20; floor = {FLOOR}; }};'}
WINDOW = 2.0  # seconds of calls per measured share
RATE = 60     # calls a second


def weight_of(tetherd, backend):
    entry, = [w for w in tetherd.backends()[backend]["weights"] if w["service"] == "sip"]
    return entry


def share_of_b2(tetherd):
    """b2's share of the calls placed over the next WINDOW seconds."""
    before = tetherd.backends()
    time.sleep(WINDOW)
    after = tetherd.backends()
    placed = {b: after[b]["sessions"] - before[b]["sessions"] for b in ("b1", "b2")}
    assert sum(placed.values()) > RATE * WINDOW / 2, placed
    return placed["b2"] / sum(placed.values()), placed


def wait_for(tetherd, predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate(weight_of(tetherd, "b2")):
        assert time.monotonic() < deadline, f"{what}: {weight_of(tetherd, 'b2')}"
        time.sleep(0.1)


def test_share_moves_away_from_a_backend_slow_to_answer_options_and_back(lab):
    for name in ("b1", "b2"):
        lab.start_sip_server(name)
    tetherd = lab.start_tetherd([SERVICE])
    calls = Calls(lab, "adaptive", calls=100_000, rate=RATE)
    try:
        wait_for(tetherd, lambda w: w["latency_ms"] is not None, 5, "no check answered")
        time.sleep(1)  # a few answers: the baseline
        even, placed = share_of_b2(tetherd)
        print(f"b2 answers at once: share {even:.2f} {placed} {weight_of(tetherd, 'b2')}")
        assert 0.35 < even < 0.65

        lab.stop_sip_server("b2")
        lab.start_sip_server("b2", options_pause_ms=PAUSE_MS)
        # 250 ms against a usual of a few: the share falls to the floor within a few answers.
        wait_for(tetherd, lambda w: w["weight_percent"] <= 2 * FLOOR, 10, "b2's weight was not lowered")
        slow, placed = share_of_b2(tetherd)
        weight = weight_of(tetherd, "b2")
        print(f"b2 answers after {PAUSE_MS} ms: share {slow:.2f} {placed} {weight}")
        assert weight["lowered"] and weight["latency_ms"] > PAUSE_MS * 0.8 and weight["baseline_ms"] < 50
        assert weight["effective_weight"] <= 2 * FLOOR / 100 and weight["weight"] == 1
        # Prometheus: the lowered share and the effective weight (weight x percent / 100).
        metrics = tetherd.ctl("metrics")
        percent = int(re.search(r'tether_backend_weight_percent\{service="sip",backend="b2"\} (\d+)\n', metrics)[1])
        effective = float(re.search(r'tether_backend_effective_weight\{service="sip",backend="b2"\} ([\d.]+)\n',
                                    metrics)[1])
        assert percent <= 2 * FLOOR and effective == percent / 100, metrics
        assert tetherd.backends()["b2"]["state"] == "up"  # slow, not failed
        assert slow < 0.25

        lab.stop_sip_server("b2")
        lab.start_sip_server("b2")
        wait_for(tetherd, lambda w: w["weight_percent"] == 100, 15, "b2's weight did not come back")
        back, placed = share_of_b2(tetherd)
        print(f"b2 answers at once again: share {back:.2f} {placed} {weight_of(tetherd, 'b2')}")
        assert 0.35 < back < 0.65
    finally:
        lab.stop(calls.proc)
        lab.stop(tetherd.proc)
