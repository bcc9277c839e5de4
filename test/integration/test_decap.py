"""tether's XDP decapsulator (backend/tether_decap.bpf.c) in the kernel, on a veth: scapy
sends encapsulated datagrams into the interface it is attached to, and a UDP socket on the
inner destination (a VIP on lo, as a backend holds it) shows what the stack got.

Every encapsulation tetherd sends (IPv4 and IPv6 in IPv4, IPv6 and IPv4 in IPv6, GUE variant
1 over both) arrives as its inner datagram, also with Ethernet padding after it; every
malformed or truncated one is dropped and counted as malformed, never passed up as an inner
packet; what is not tunnelled passes untouched."""
import itertools
import os
import socket
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.sendrecv import sendp

from tetherlab.decap import DECAP_OBJECT, DECAP_TOOL, attach_decapsulator, decap_counters
from tetherlab.namespaces import Namespaces, remove_namespace, remove_stale_labs, run

GUE_PORT = 6635  # not the program's default: the port must come from its configuration
BACKEND, BACKEND6 = "198.51.100.11", "2001:db8:1::11"
SOURCE, SOURCE6 = "198.51.100.1", "2001:db8:1::1"
VIP, VIP6 = "203.0.113.100", "2001:db8:2::100"
CLIENT, CLIENT6 = "192.0.2.7", "2001:db8:3::7"
VIP_PORT = 5060
INJECTOR_MAC = "02:00:00:00:00:99"
_serial = itertools.count()


@pytest.fixture(scope="module")
def backend():
    """A namespace with veth dec0 (the decapsulator attached, the backend's addresses) and its
    peer inj0 (where scapy sends), the VIPs on lo and UDP sockets on them: (ns, MAC of dec0,
    receive() -> the payloads that reached the sockets since the last call)."""
    remove_stale_labs()
    ns = f"tte2e-{os.getpid()}-{next(_serial)}{int(time.monotonic() * 1000) % 100000}-decap"
    run("ip", "netns", "add", ns)
    try:
        run("ip", "-n", ns, "link", "add", "dec0", "type", "veth", "peer", "name", "inj0")
        run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.disable_ipv6=0")
        for dev in ("lo", "dec0", "inj0"):
            run("ip", "-n", ns, "link", "set", dev, "up")
        run("ip", "-n", ns, "addr", "add", f"{BACKEND}/24", "dev", "dec0")
        run("ip", "-n", ns, "addr", "add", f"{BACKEND6}/64", "dev", "dec0", "nodad")
        run("ip", "-n", ns, "addr", "add", f"{VIP}/32", "dev", "lo")
        run("ip", "-n", ns, "addr", "add", f"{VIP6}/128", "dev", "lo", "nodad")
        run("ip", "-n", ns, "route", "add", f"{CLIENT}/32", "dev", "dec0")
        run("ip", "-n", ns, "route", "add", f"{CLIENT6}/128", "dev", "dec0")
        attach_decapsulator(ns, "dec0", gue_port=GUE_PORT)
        mac = run("ip", "netns", "exec", ns, "cat", "/sys/class/net/dec0/address").stdout.strip()
        with Namespaces.inside(ns):
            sock4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock4.bind((VIP, VIP_PORT))
        sock6.bind((VIP6, VIP_PORT))
        for s in (sock4, sock6):
            s.setblocking(False)

        def receive():
            time.sleep(0.3)  # the veth hands frames over at once; this is slack for a busy machine
            got = set()
            for s in (sock4, sock6):
                while True:
                    try:
                        got.add(s.recv(2048).decode())
                    except BlockingIOError:
                        break
            return got

        yield ns, mac, receive
        sock4.close()
        sock6.close()
    finally:
        remove_namespace(ns)


def frame(mac, packet):
    """An Ethernet frame to `mac` around `packet` (scapy's, or raw IP bytes)."""
    if not isinstance(packet, bytes):
        return Ether(src=INJECTOR_MAC, dst=mac) / packet
    return Ether(src=INJECTOR_MAC, dst=mac, type=0x86DD if packet[0] >> 4 == 6 else 0x0800) / Raw(packet)


def send(ns, mac, packets):
    with Namespaces.inside(ns):
        sendp([frame(mac, p) for p in packets], iface="inj0", verbose=False)


def inner4(tag, length=None):
    packet = IP(src=CLIENT, dst=VIP) / UDP(sport=40000, dport=VIP_PORT) / Raw(tag.encode())
    if length is not None:
        packet[IP].len = length
    return packet


def inner6(tag):
    return IPv6(src=CLIENT6, dst=VIP6) / UDP(sport=40000, dport=VIP_PORT) / Raw(tag.encode())


def outer4(proto):
    return IP(src=SOURCE, dst=BACKEND, proto=proto, flags="DF")


def outer6(nh):
    return IPv6(src=SOURCE6, dst=BACKEND6, nh=nh)


def gue4(inner, **udp):
    return IP(src=SOURCE, dst=BACKEND) / UDP(sport=51000, dport=GUE_PORT, **udp) / inner


def gue6(inner, **udp):
    return IPv6(src=SOURCE6, dst=BACKEND6) / UDP(sport=51000, dport=GUE_PORT, **udp) / inner


def wellformed():
    return {
        "4in4": outer4(4) / inner4("4in4"),
        "6in4": outer4(41) / inner6("6in4"),
        "6in6": outer6(41) / inner6("6in6"),
        "4in6": outer6(4) / inner4("4in6"),
        "4in4-padded": bytes(outer4(4) / inner4("4in4-padded")) + bytes(18),  # as to Ethernet's minimum
    }, {
        "gue4": gue4(inner4("gue4")),
        "gue6": gue6(inner6("gue6")),
        "gue4-6": gue4(inner6("gue4-6")),
    }


def truncated(packet, cut):
    return bytes(packet)[:-cut]


def patched(packet, offset, replacement):
    """`packet`'s bytes with `replacement` at `offset` (checksums left as they were)."""
    raw = bytes(packet)
    return raw[:offset] + replacement + raw[offset + len(replacement):]


def malformed():
    """Encapsulations that do not hold together, each named by its defect."""
    return {
        "outer length past the frame": truncated(outer4(4) / inner4("t1"), 4),
        "inner shorter than the outer payload": outer4(4) / inner4("t2", length=20 + 8 + 1),
        "inner header truncated": outer4(4) / Raw(bytes(inner4("t3"))[:12]),
        "outer fragment": IP(src=SOURCE, dst=BACKEND, proto=4, flags="MF") / inner4("t4"),
        "outer later fragment": IP(src=SOURCE, dst=BACKEND, proto=4, frag=8) / inner4("t5"),
        "protocol 4 carrying IPv6": outer4(4) / inner6("t6"),
        "protocol 41 carrying IPv4": outer4(41) / inner4("t7"),
        "inner version 5": outer4(4) / Raw(b"\x55" + bytes(inner4("t8"))[1:]),
        "outer header length under 20": patched(outer4(4) / inner4("t9"), 0, b"\x44"),
        "IPv6 payload past the frame": truncated(outer6(41) / inner6("t10"), 6),
        "IPv6 next header 41 carrying IPv4": outer6(41) / inner4("t11"),
        "GUE variant 0": gue4(Raw(b"\x00\x00\x00\x00") / inner4("t12")),
        "GUE UDP length wrong": gue4(inner4("t13"), len=8 + 20 + 8 + 2),
        "GUE inner truncated": gue4(Raw(bytes(inner4("t14"))[:10])),
        "GUE over IPv6, inner longer than its payload":
            gue6(Raw(patched(inner6("t15"), 4, (8 + 3 + 4).to_bytes(2, "big")))),  # UDP + "t15" + 4
        "GUE empty": gue4(Raw(b"")),
    }


def test_every_encapsulation_arrives_as_its_inner_datagram(backend):
    ns, mac, receive = backend
    before = decap_counters(ns, "dec0")
    ipip, gue = wellformed()
    send(ns, mac, [*ipip.values(), *gue.values()])
    assert receive() == set(ipip) | set(gue)
    after = decap_counters(ns, "dec0")
    assert after["decapsulated_ipip"] - before["decapsulated_ipip"] == len(ipip)
    assert after["decapsulated_gue"] - before["decapsulated_gue"] == len(gue)
    assert after["malformed"] == before["malformed"]


def test_malformed_encapsulations_are_dropped_and_counted(backend):
    ns, mac, receive = backend
    cases = malformed()
    tags = {f"t{i}" for i in range(1, 16)}
    before = decap_counters(ns, "dec0")
    send(ns, mac, cases.values())
    got = receive()
    after = decap_counters(ns, "dec0")
    if (not got & tags and after["malformed"] - before["malformed"] == len(cases)
            and after["decapsulated_ipip"] + after["decapsulated_gue"]
            == before["decapsulated_ipip"] + before["decapsulated_gue"]):
        return
    for name, packet in cases.items():  # one went wrong: which (slower, one at a time)
        before = decap_counters(ns, "dec0")
        send(ns, mac, [packet])
        got = receive()
        after = decap_counters(ns, "dec0")
        assert not got & tags, f"{name}: passed up as an inner packet: {got}"
        assert after["malformed"] - before["malformed"] == 1, f"{name}: {before} -> {after}"
        assert after["decapsulated_ipip"] == before["decapsulated_ipip"], name
        assert after["decapsulated_gue"] == before["decapsulated_gue"], name


def test_what_is_not_tunnelled_passes_untouched(backend):
    ns, mac, receive = backend
    before = decap_counters(ns, "dec0")
    plain = IP(src=CLIENT, dst=VIP) / UDP(sport=40001, dport=VIP_PORT) / Raw(b"plain")
    other_port = IP(src=CLIENT, dst=VIP) / UDP(sport=40001, dport=GUE_PORT + 1) / Raw(b"x")
    send(ns, mac, [plain, other_port, inner6("plain6")])
    assert receive() == {"plain", "plain6"}
    after = decap_counters(ns, "dec0")
    assert after["not_tunnelled"] - before["not_tunnelled"] >= 3
    assert after["malformed"] == before["malformed"]


def test_tether_decap_attaches_either_hook_and_detaches(backend):
    """The generic hook (drivers without native XDP) works too; detach leaves no program."""
    ns, _mac, _receive = backend
    run("ip", "-n", ns, "link", "add", "gen0", "type", "veth", "peer", "name", "gen1")
    try:
        for mode, shown in (("generic", " xdpgeneric "), ("native", " xdp ")):
            run("ip", "netns", "exec", ns, "/usr/bin/python3", DECAP_TOOL, "attach", "gen0", "--mode", mode,
                "--object", DECAP_OBJECT)
            assert shown in run("ip", "-n", ns, "link", "show", "gen0").stdout
            assert decap_counters(ns, "gen0") == dict.fromkeys(
                ("decapsulated_ipip", "decapsulated_gue", "not_tunnelled", "malformed"), 0)
            run("ip", "netns", "exec", ns, "/usr/bin/python3", DECAP_TOOL, "detach", "gen0")
            assert "xdp" not in run("ip", "-n", ns, "link", "show", "gen0").stdout
    finally:
        run("ip", "-n", ns, "link", "del", "gen0")
