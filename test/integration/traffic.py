"""Client traffic for the integration tests: flows of real-looking packets.

Every packet carries a payload naming its flow and sequence number, so a test can match
each output frame to the input frame it came from.
"""
import random

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from harness import CLIENT_MAC, PORT_MAC


class Flow:
    def __init__(self, flow_id, service, src, sport, dst, dport, protocol, vlan=None):
        self.flow_id = flow_id
        self.service = service
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.protocol = protocol
        self.vlan = vlan

    @property
    def key(self):
        return (self.src, self.sport, self.dst, self.dport, self.protocol)

    def frames(self):
        ether = Ether(src=CLIENT_MAC, dst=PORT_MAC)
        if self.vlan is not None:
            ether = ether / Dot1Q(vlan=self.vlan)
        ip = IPv6(src=self.src, dst=self.dst) if ":" in self.dst else IP(src=self.src, dst=self.dst)
        tag = lambda seq: f"flow {self.flow_id} seq {seq}".encode()
        if self.protocol == "tcp":
            seqs = [("S", b""), ("PA", tag(1)), ("FA", tag(2))]
            return [bytes(ether / ip / TCP(sport=self.sport, dport=self.dport, flags=f, seq=1000 + i)
                          / (payload or tag(0)))
                    for i, (f, payload) in enumerate(seqs)]
        return [bytes(ether / ip / UDP(sport=self.sport, dport=self.dport) / tag(i)) for i in range(2)]


def make_flows(service, vip, port, protocol, count, first_id, rng, ipv6_clients=False, vlan=None):
    flows = []
    seen = set()
    while len(flows) < count:
        if ipv6_clients:
            src = "2001:db8:c::%x:%x" % (rng.randrange(1, 0xffff), rng.randrange(1, 0xffff))
        else:
            src = "198.51.%d.%d" % (rng.randrange(0, 256), rng.randrange(1, 255))
        sport = rng.randrange(1024, 65535)
        if (src, sport) in seen:
            continue
        seen.add((src, sport))
        flows.append(Flow(first_id + len(flows), service, src, sport, vip, port, protocol, vlan))
    return flows


def interleave(flows, rng):
    """All frames of all flows, shuffled across flows but each flow's own order kept."""
    queues = [list(f.frames()) for f in flows]
    order = [i for i, q in enumerate(queues) for _ in q]
    rng.shuffle(order)
    cursors = [0] * len(queues)
    frames = []
    for i in order:
        frames.append((flows[i], queues[i][cursors[i]]))
        cursors[i] += 1
    return frames
