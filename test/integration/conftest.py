import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import traffic  # noqa: E402

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
