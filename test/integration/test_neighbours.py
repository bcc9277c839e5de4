"""Backend MACs learnt by ARP and neighbour discovery on a live tetherd (net_af_packet over a
veth pair): the test's raw socket plays the backends and answers tetherd's requests. A
backend whose MAC is unknown gets no traffic; a MAC that stops being confirmed is given up."""
import collections
import json
import threading
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
                                ICMPv6NDOptDstLLAddr, IPv6)
from scapy.layers.l2 import ARP, Ether

from harness import CLIENT_MAC, PORT_IPV4, PORT_IPV6, PORT_MAC, mac_bytes, run_tetherd_live
from test_control import tetherctl

VIP4 = "192.0.2.150"
VIP6 = "2001:db8::150"
LEARNT = {  # name -> (address, the MAC the backend answers with)
    "b1": ("192.0.2.11", "02:00:00:00:02:01"),
    "b2": ("192.0.2.12", "02:00:00:00:02:02"),
}
STATIC_B3 = ("192.0.2.13", "02:00:00:00:02:03")
BACKEND_BY_MAC = {mac_bytes(mac): name for name, (_address, mac) in [*LEARNT.items(), ("b3", STATIC_B3)]}


def udp_frames(vip, first, count, phase, ip=IP):
    return [bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC)
                  / ip(src=f"198.51.{f // 250}.{f % 250 + 1}" if ip is IP else f"2001:db8:c::{f + 1:x}",
                       dst=vip)
                  / UDP(sport=10000 + f, dport=9000) / f"flow {f} phase {phase}".encode())
            for f in range(first, first + count)]


def backends_by_name(sock):
    answer = json.loads(tetherctl(sock, "--json", "show", "backends").stdout)
    return {b["name"]: b for b in answer["backends"]}


def served(frames, phase):
    """Backend name per flow of `phase`, from the destination MAC of what tetherd sent."""
    marker = f" phase {phase}".encode()
    return collections.Counter(BACKEND_BY_MAC.get(f[:6], "?") for f in frames if f.endswith(marker))


def test_arp_learns_refreshes_and_gives_up_backend_macs(tmp_path):
    answering = {"b1", "b2"}
    requests = collections.Counter()
    lock = threading.Lock()
    by_address = {address: (name, mac) for name, (address, mac) in LEARNT.items()}

    def respond(data):
        packet = Ether(data)
        if ARP in packet and packet[ARP].op == 1 and packet[ARP].psrc == PORT_IPV4:
            name, mac = by_address.get(packet[ARP].pdst, (None, None))
            with lock:
                requests[name] += 1
                up = name in answering
            if name is None or not up:
                return b""
            return bytes(Ether(src=mac, dst=packet.src)
                         / ARP(op=2, hwsrc=mac, psrc=packet[ARP].pdst, hwdst=packet[ARP].hwsrc,
                               pdst=PORT_IPV4))
        return None

    seen = {}

    def learnt(sock):
        time.sleep(1.0)
        seen["learnt"] = backends_by_name(sock)

    def b2_goes_silent(sock):
        with lock:
            answering.discard("b2")
            before = requests["b2"]
        # refresh 1 s, then 2 unanswered requests 200 ms apart
        time.sleep(2.5)
        seen["silent"] = backends_by_name(sock)
        with lock:
            seen["b2_requests_while_silent"] = requests["b2"] - before

    backends = {"b1": (LEARNT["b1"][0], None), "b2": (LEARNT["b2"][0], None), "b3": STATIC_B3}
    services = [{"name": "media", "vip": VIP4, "port": 9000, "protocol": "udp",
                 "weights": {"b1": 1, "b2": 1, "b3": 1}}]
    phases = [learnt, udp_frames(VIP4, 0, 600, 1), b2_goes_silent, udp_frames(VIP4, 600, 600, 2)]
    run = run_tetherd_live(tmp_path, phases, services, respond=respond, backends=backends,
                           extra="neighbours = { refresh = 1; retry = 200; attempts = 2; };")
    assert run.returncode == 0, run.stderr

    learnt_view = seen["learnt"]
    for name in ("b1", "b2"):
        assert learnt_view[name]["mac"] == LEARNT[name][1]
        assert learnt_view[name]["mac_source"] == "arp"
        assert learnt_view[name]["state"] == "up"
    assert learnt_view["b3"]["mac_source"] == "static"
    assert "backend b1 is at 02:00:00:00:02:01 (ARP)" in run.stderr

    phase_1 = served(run.frames, 1)
    assert sum(phase_1.values()) == 600
    assert set(phase_1) == {"b1", "b2", "b3"}, phase_1

    silent_view = seen["silent"]
    assert silent_view["b2"]["mac"] is None
    assert silent_view["b2"]["mac_source"] == "unresolved"
    assert silent_view["b2"]["state"] == "down"
    assert silent_view["b1"]["state"] == "up"  # still confirmed every refresh
    assert seen["b2_requests_while_silent"] >= 2
    assert "backend b2: MAC 02:00:00:00:02:02 given up, 2 requests unanswered" in run.stderr
    assert requests["b1"] >= 3  # first resolution, then refreshes every second

    phase_2 = served(run.frames, 2)
    assert sum(phase_2.values()) == 600
    assert phase_2["b2"] == 0 and phase_2["b1"] > 100 and phase_2["b3"] > 100, phase_2


def test_neighbour_discovery_and_ipv6_health_checks(tmp_path):
    """b1 (IPv6) is learnt by neighbour discovery and answers ICMPv6 echo checks; b2 (IPv6,
    static MAC) never answers its checks and goes down; IPv6 traffic reaches only b1."""
    b1 = ("2001:db8::11", "02:00:00:00:03:01")
    b2 = ("2001:db8::12", "02:00:00:00:03:02")
    solicited = collections.Counter()

    def respond(data):
        packet = Ether(data)
        if IPv6 not in packet or packet[IPv6].src != PORT_IPV6:
            return None
        if ICMPv6ND_NS in packet:
            target = packet[ICMPv6ND_NS].tgt
            solicited[target] += 1
            if target != b1[0]:
                return b""
            return bytes(Ether(src=b1[1], dst=packet.src)
                         / IPv6(src=b1[0], dst=PORT_IPV6, hlim=255)
                         / ICMPv6ND_NA(tgt=b1[0], S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=b1[1]))
        if ICMPv6EchoRequest in packet:
            if packet[IPv6].dst != b1[0]:
                return b""
            echo = packet[ICMPv6EchoRequest]
            return bytes(Ether(src=b1[1], dst=packet.src) / IPv6(src=b1[0], dst=PORT_IPV6)
                         / ICMPv6EchoReply(id=echo.id, seq=echo.seq, data=echo.data))
        return None

    seen = {}

    def after_checks(sock):
        time.sleep(1.5)
        seen["backends"] = backends_by_name(sock)

    backends = {"b1": (b1[0], None), "b2": b2}
    services = [{"name": "media6", "vip": VIP6, "port": 9000, "protocol": "udp",
                 "weights": {"b1": 1, "b2": 1},
                 "extra": 'health_check = { type = "icmp"; interval = 200; timeout = 150; '
                          'rise = 2; fall = 2; };'}]
    # An on-link host claims b1's address with its own MAC, unasked (S and O set): tetherd
    # asked nothing at that moment, so the claim must change nothing.
    spoofer = "02:00:00:00:0e:01"
    spoof = bytes(Ether(src=spoofer, dst=PORT_MAC) / IPv6(src=b1[0], dst=PORT_IPV6, hlim=255)
                  / ICMPv6ND_NA(tgt=b1[0], S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=spoofer))
    phases = [after_checks, [spoof], udp_frames(VIP6, 0, 400, 1, ip=IPv6)]
    run = run_tetherd_live(tmp_path, phases, services, respond=respond, backends=backends)
    assert run.returncode == 0, run.stderr

    view = seen["backends"]
    assert view["b1"]["mac"] == b1[1] and view["b1"]["mac_source"] == "nd"
    assert (view["b1"]["state"], view["b1"]["healthy"]) == ("up", True)
    assert view["b2"]["mac_source"] == "static"
    assert (view["b2"]["state"], view["b2"]["healthy"]) == ("down", False)
    assert solicited[b1[0]] >= 1 and solicited[b2[0]] == 0  # static MACs are not asked for
    assert "backend b2 down: icmp check for service media6 failed 2 times" in run.stderr

    to_b1 = sum(1 for f in run.frames if f[:6] == mac_bytes(b1[1]) and f.endswith(b" phase 1"))
    to_b2 = sum(1 for f in run.frames if f[:6] == mac_bytes(b2[1]) and f.endswith(b" phase 1"))
    assert (to_b1, to_b2) == (400, 0)  # none to the spoofer's MAC either
    assert "backend b1 is at 02:00:00:00:0e:01" not in run.stderr
