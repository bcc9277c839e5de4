#!/usr/bin/python3
"""The demo behind tools/run: make a pcap of client flows, then, after tetherd has
forwarded it, show per service how flows spread over backends and that none was split.

    tools/demo.py make OUT.pcap
    tools/demo.py report IN.pcap OUT.pcap

The services and weights are those of conf/demo.cfg (and of the integration tests).
"""
import collections
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "integration"))

from conftest import SERVICES, VIP6_TCP, VIP_TCP, VIP_UDP  # noqa: E402
from harness import BACKENDS, flow_key_of, mac_bytes  # noqa: E402
from scapy.utils import RawPcapReader, wrpcap  # noqa: E402

import traffic  # noqa: E402


def make(out):
    rng = random.Random(7)
    flows = (traffic.make_flows("web", VIP_TCP, 80, "tcp", 3000, 0, rng)
             + traffic.make_flows("sip", VIP_UDP, 5060, "udp", 2000, 3000, rng)
             + traffic.make_flows("web6", VIP6_TCP, 80, "tcp", 1000, 5000, rng, ipv6_clients=True))
    frames = [frame for _flow, frame in traffic.interleave(flows, rng)]
    wrpcap(out, frames, linktype=1)
    print(f"demo: {len(flows)} flows, {len(frames)} packets -> {out}")


def report(in_pcap, out_pcap):
    service_of = {(s["vip"], s["port"]): s for s in SERVICES}
    backend_of_mac = {mac_bytes(mac): name for name, (_a, mac) in BACKENDS.items()}
    sent = sum(1 for _ in RawPcapReader(in_pcap))
    backends_of_flow = collections.defaultdict(set)
    received = 0
    for data, _meta in RawPcapReader(out_pcap):
        frame = bytes(data)
        if frame[:6] not in backend_of_mac:
            continue
        received += 1
        backends_of_flow[flow_key_of(frame)].add(backend_of_mac[frame[:6]])
    split = sum(1 for b in backends_of_flow.values() if len(b) > 1)
    print(f"\npackets in {sent}, forwarded to backends {received}; "
          f"flows {len(backends_of_flow)}, flows split over several backends: {split}")
    print(f"{'service':8} {'backend':8} {'weight':>6} {'expected':>9} {'flows':>7} {'share':>7}")
    for service in SERVICES:
        counts = collections.Counter(
            next(iter(b)) for key, b in backends_of_flow.items()
            if service_of.get((key[2], key[3])) is service)
        total = sum(counts.values())
        weights = service["weights"]
        for backend, weight in weights.items():
            print(f"{service['name']:8} {backend:8} {weight:>6} "
                  f"{100 * weight / sum(weights.values()):>8.1f}% {counts[backend]:>7} "
                  f"{100 * counts[backend] / max(total, 1):>6.1f}%")
    return 0 if split == 0 and received > 0 else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        sys.exit(report(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
