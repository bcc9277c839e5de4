"""Malformed and foreign frames: no output, no crash, each counted under its reason."""
import struct

from scapy.layers.inet import GRE, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Dot1Q, Ether

from conftest import SERVICES, VIP6_TCP, VIP_TCP, VIP_UDP
from harness import CLIENT_MAC, PORT_MAC, run_tetherd

ETHER = Ether(src=CLIENT_MAC, dst=PORT_MAC)
CLIENT = "198.51.100.7"


def udp_to_vip(payload=b"INVITE sip:x SIP/2.0\r\n"):
    return bytes(ETHER / IP(src=CLIENT, dst=VIP_UDP) / UDP(sport=5555, dport=5060) / payload)


def patch(frame, offset, data):
    return frame[:offset] + data + frame[offset + len(data):]


# (frame, the drop counter it must land in)
CASES = [
    (udp_to_vip()[:10], "truncated_ethernet"),
    (bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC, type=0x8100))[:16], "truncated_vlan"),
    (bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC, type=0x88cc) / (b"\x00" * 46)), "unsupported_ethertype"),
    (udp_to_vip()[:14 + 12], "truncated_ipv4"),
    (patch(udp_to_vip(), 14, b"\x65"), "bad_ipv4_version"),
    (patch(udp_to_vip(), 14, b"\x43"), "bad_ipv4_header_length"),
    (patch(udp_to_vip(), 16, struct.pack("!H", 12)), "bad_ipv4_total_length"),
    (patch(udp_to_vip(), 16, struct.pack("!H", 1400)), "truncated_ipv4"),
    # Fragments to no VIP keep the parser's reason; to a VIP they follow their first fragment
    # (test_fragments.py), and the malformed ones are dropped under fragment_* reasons.
    (bytes(ETHER / IP(src=CLIENT, dst="203.0.113.1", flags="MF") / UDP(sport=1, dport=5060) / (b"x" * 40)),
     "ipv4_fragment"),
    (bytes(ETHER / IP(src=CLIENT, dst="203.0.113.1", frag=100) / (b"x" * 40)), "ipv4_fragment"),
    (bytes(ETHER / IPv6(src="2001:db8::7", dst="2001:db8:99::1") / IPv6ExtHdrFragment(m=1)
           / TCP(sport=1, dport=80)), "ipv6_fragment"),
    (bytes(ETHER / IP(src=CLIENT, dst=VIP_UDP, flags="MF", frag=100) / (b"x" * 41)), "fragment_malformed"),
    (bytes(ETHER / IP(src=CLIENT, dst=VIP_TCP, flags="MF", proto=6) / bytes(TCP(sport=1, dport=80))[:16]),
     "fragment_tiny"),
    (bytes(ETHER / IPv6(src="2001:db8::7", dst=VIP6_TCP) / IPv6ExtHdrFragment(m=1, nh=60)
           / (b"\x06\x01" + b"\x00" * 14)), "fragment_tiny"),  # RFC 7112: the chain ends in a later fragment
    (bytes(ETHER / IP(src=CLIENT, dst=VIP_TCP, frag=1, proto=6) / (b"x" * 16)), "fragment_overlap"),
    (bytes(ETHER / IPv6(src="2001:db8::7", dst=VIP6_TCP) / TCP(sport=1, dport=80))[:14 + 30],
     "truncated_ipv6"),
    (patch(bytes(ETHER / IP(src=CLIENT, dst=VIP_TCP) / TCP(sport=1, dport=80)), 14 + 20 + 12, b"\x20"),
     "bad_tcp_data_offset"),
    (patch(udp_to_vip(), 14 + 20 + 4, struct.pack("!H", 4)), "bad_udp_length"),
    (patch(udp_to_vip(), 14 + 20 + 4, struct.pack("!H", 4000)), "bad_udp_length"),
    (bytes(ETHER / IP(src=CLIENT, dst=VIP_UDP, proto=17) / b"abc"), "truncated_udp"),
    (bytes(ETHER / IP(src=CLIENT, dst=VIP_UDP) / GRE() / (b"x" * 20)), "unsupported_l4"),
    (bytes(Ether(src=CLIENT_MAC, dst="02:00:00:00:99:99") / IP(src=CLIENT, dst=VIP_UDP)
           / UDP(sport=5555, dport=5060)), "not_our_mac"),
    (bytes(ETHER / IP(src=CLIENT, dst="203.0.113.1") / UDP(sport=5555, dport=5060)), "no_service"),
    (bytes(ETHER / IP(src=CLIENT, dst=VIP_UDP) / UDP(sport=5555, dport=5061)), "no_service"),
    (bytes(ETHER / IP(src=CLIENT, dst=VIP_UDP) / TCP(sport=5555, dport=5060)), "no_service"),
    (bytes(ETHER / Dot1Q(vlan=5) / IP(src=CLIENT, dst=VIP_UDP) / UDP(sport=5, dport=5061)), "no_service"),
]


def test_malformed_frames_are_counted_and_dropped(tmp_path):
    frames = [frame for frame, _reason in CASES]
    # A valid packet after the junk proves the worker is still forwarding.
    frames.append(udp_to_vip())
    run = run_tetherd(tmp_path, [frames], SERVICES)
    assert run.returncode == 0, run.stderr
    assert len(run.frames) == 1 and run.frames[0][12:] == udp_to_vip()[12:]
    expected = {}
    for _frame, reason in CASES:
        expected[reason] = expected.get(reason, 0) + 1
    nonzero = {name: count for name, count in run.stats["drops"].items() if count}
    assert nonzero == expected
    assert run.counter("rx_packets") == len(frames)
