"""The real tetherd on net_pcap vdevs: every output frame checked against its input."""
import collections
import random
import subprocess

import pytest
from scapy.layers.l2 import Ether

import traffic
from conftest import SERVICES, VIP_TCP, VIP_UDP
from harness import (BACKENDS, PORT_MAC, TETHERCTL, flow_key_of, mac_bytes, run_tetherd,
                     run_tetherd_live)

BACKEND_BY_MAC = {mac_bytes(mac): name for name, (_addr, mac) in BACKENDS.items()}


def check_forwarding(run, flows, frames, new_flows_at_most=None, share_tolerance=0.03):
    """Every input frame left exactly once, unchanged but for the MACs, each flow on one
    backend, flow shares following the weights."""
    assert run.returncode == 0, run.stderr
    sent = collections.Counter(frame[12:] for _flow, frame in frames)
    received = collections.Counter()
    backend_of_flow = {}
    by_key = {f.key: f for f in flows}
    for frame in run.frames:
        backend = BACKEND_BY_MAC.get(frame[:6])
        assert backend is not None, f"frame to unknown MAC {frame[:6].hex(':')}"
        assert frame[6:12] == mac_bytes(PORT_MAC), "source MAC is not the port's"
        received[frame[12:]] += 1
        flow = by_key[flow_key_of(frame)]
        assert backend_of_flow.setdefault(flow.flow_id, backend) == backend, \
            f"flow {flow.key} reached {backend_of_flow[flow.flow_id]} and {backend}"
    assert received == sent, "output frames differ from input frames beyond the MAC rewrite"
    assert len(backend_of_flow) == len(flows)

    for service in SERVICES:
        service_flows = [f for f in flows if f.service == service["name"]]
        if not service_flows:
            continue
        counts = collections.Counter(backend_of_flow[f.flow_id] for f in service_flows)
        total_weight = sum(service["weights"].values())
        for backend, weight in service["weights"].items():
            share = counts[backend] / len(service_flows)
            expected = weight / total_weight
            assert abs(share - expected) < share_tolerance, \
                f"{service['name']}: {backend} got {share:.3f} of flows, weight says {expected:.3f}"
    assert run.counter("forwarded") == len(frames)
    # Bytes are summed as packets are queued for transmission: they must add up to what left.
    assert run.counter("tx_packets") == len(run.frames)
    assert run.counter("tx_bytes") == sum(len(frame) for frame in run.frames)
    # Each worker counts a flow new when it first sees it; a flow that found no room in a full
    # table is scheduled afresh, by the same hash, at every packet.
    assert len(flows) <= run.counter("new_flows") <= (new_flows_at_most or len(flows))
    return backend_of_flow


def test_flows_pinned_to_one_backend_by_weight(tmp_path, mixed_traffic):
    flows, frames = mixed_traffic
    run = run_tetherd(tmp_path, [[f for _flow, f in frames]], SERVICES)
    check_forwarding(run, flows, frames)
    assert run.counter("flow_table_full") == 0
    assert sum(run.stats["drops"].values()) == 0
    print(run.stdout)


def test_two_workers_keep_the_same_guarantees(tmp_path, mixed_traffic):
    """Frames of one flow are spread over both RX queues, so both workers see every flow:
    the consistent hash must still send it to one backend."""
    flows, frames = mixed_traffic
    rng = random.Random(2)
    queues = [[], []]
    for _flow, frame in frames:
        queues[rng.randrange(2)].append(frame)
    run = run_tetherd(tmp_path, queues, SERVICES, workers=2)
    assert all(run.outputs), "both workers transmit"
    check_forwarding(run, flows, frames, new_flows_at_most=2 * len(flows))
    assert run.counter("new_flows") > len(flows), "flows were seen by both workers"
    assert sum(run.stats["drops"].values()) == 0


def test_full_flow_table_falls_back_to_consistent_hash(tmp_path, mixed_traffic):
    flows, frames = mixed_traffic
    run = run_tetherd(tmp_path, [[f for _flow, f in frames]], SERVICES, flows_per_worker=1024)
    check_forwarding(run, flows, frames, new_flows_at_most=len(frames))
    assert run.counter("flow_table_full") > 0
    assert run.counter("flows_in_tables") <= 1024 + 64


def test_vlan_tag_is_kept(tmp_path):
    rng = random.Random(3)
    flows = traffic.make_flows("web", VIP_TCP, 80, "tcp", 200, 0, rng, vlan=42)
    frames = traffic.interleave(flows, rng)
    run = run_tetherd(tmp_path, [[f for _flow, f in frames]], SERVICES)
    assert run.returncode == 0, run.stderr
    assert len(run.frames) == len(frames)
    for frame in run.frames:
        assert frame[12:14] == b"\x81\x00" and Ether(frame).vlan == 42


def test_service_without_weight_drops_and_counts(tmp_path):
    """A service left with nowhere to send. A file (or `backend weight`) may not set every
    weight to 0 (test_config_check.py); disabling every backend is how an operator gets there."""
    services = [dict(SERVICES[1], weights={"b1": 1, "b2": 1})]
    rng = random.Random(4)
    flows = traffic.make_flows("sip", VIP_UDP, 5060, "udp", 50, 0, rng)
    frames = traffic.interleave(flows, rng)

    def disable_both(sock):
        for name in ("b1", "b2"):
            subprocess.run([str(TETHERCTL), "-s", str(sock), "backend", "disable", name],
                           check=True, capture_output=True, timeout=10)

    run = run_tetherd_live(tmp_path, [disable_both, [f for _flow, f in frames]], services)
    assert run.returncode == 0, run.stderr
    assert run.frames == []
    assert run.drops("no_backend") == len(frames)
