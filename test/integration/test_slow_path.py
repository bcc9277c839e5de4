"""ARP, ICMP echo and IPv6 neighbour discovery answered by the real tetherd."""
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from conftest import SERVICES, VIP6_TCP, VIP_TCP, VIP_UDP
from harness import CLIENT_MAC, PORT_IPV4, PORT_IPV6, PORT_MAC, run_tetherd

CLIENT_IP = "192.0.2.50"
CLIENT_IP6 = "2001:db8::50"


def arp_request(target, vlan=None):
    ether = Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
    if vlan:
        ether = ether / Dot1Q(vlan=vlan)
    return ether / ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT_IP, pdst=target)


def neighbour_solicitation(target):
    solicited_node = "ff02::1:ff" + target.split(":")[-1].rjust(4, "0")[-4:-2] + ":" + \
        target.split(":")[-1].rjust(4, "0")[-2:]
    return (Ether(src=CLIENT_MAC, dst="33:33:ff:00:00:01")
            / IPv6(src=CLIENT_IP6, dst=solicited_node, hlim=255)
            / ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC))



def test_arp_icmp_and_neighbour_discovery(tmp_path):
    inputs = [
        arp_request(VIP_TCP),
        arp_request(VIP_UDP, vlan=7),
        arp_request(PORT_IPV4),
        arp_request("192.0.2.222"),  # not ours: no answer
        Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=CLIENT_MAC, psrc=CLIENT_IP,
                                                             pdst=VIP_TCP),  # a reply: no answer
        Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=CLIENT_IP, dst=VIP_TCP, ttl=5)
        / ICMP(type=8, id=77, seq=3) / b"ping payload",
        Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=CLIENT_IP, dst=PORT_IPV4) / ICMP(type=8, id=1),
        Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=CLIENT_IP, dst=VIP_TCP) / ICMP(type=13),
        Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=CLIENT_IP, dst="203.0.113.9") / ICMP(type=8),
        Ether(src=CLIENT_MAC, dst=PORT_MAC) / IPv6(src=CLIENT_IP6, dst=VIP6_TCP)
        / ICMPv6EchoRequest(id=5, seq=9, data=b"ping6"),
        neighbour_solicitation(VIP6_TCP),
        neighbour_solicitation(PORT_IPV6),
        neighbour_solicitation("2001:db8::999"),  # not ours
    ]
    run = run_tetherd(tmp_path, [inputs], SERVICES)
    assert run.returncode == 0, run.stderr
    replies = [Ether(f) for f in run.frames]
    assert len(replies) == 8, [r.summary() for r in replies]

    arps = [r for r in replies if ARP in r]
    assert [(a[ARP].psrc, a[ARP].op) for a in arps] == [(VIP_TCP, 2), (VIP_UDP, 2), (PORT_IPV4, 2)]
    for a in arps:
        assert a.dst == CLIENT_MAC and a.src == PORT_MAC
        assert a[ARP].hwsrc == PORT_MAC and a[ARP].hwdst == CLIENT_MAC and a[ARP].pdst == CLIENT_IP
    assert arps[1][Dot1Q].vlan == 7

    echoes = [r for r in replies if ICMP in r]
    assert [(e[IP].src, e[IP].dst, e[ICMP].type) for e in echoes] == \
        [(VIP_TCP, CLIENT_IP, 0), (PORT_IPV4, CLIENT_IP, 0)]
    assert echoes[0][ICMP].id == 77 and echoes[0][ICMP].seq == 3
    assert echoes[0][Raw].load == b"ping payload"
    for e in echoes:
        rebuilt = e.copy()
        del rebuilt[IP].chksum
        del rebuilt[ICMP].chksum
        rebuilt = Ether(bytes(rebuilt))
        assert (rebuilt[IP].chksum, rebuilt[ICMP].chksum) == (e[IP].chksum, e[ICMP].chksum)

    echo6 = [r for r in replies if ICMPv6EchoReply in r]
    assert len(echo6) == 1
    assert echo6[0][IPv6].src == VIP6_TCP and echo6[0][IPv6].dst == CLIENT_IP6
    assert echo6[0][ICMPv6EchoReply].data == b"ping6"
    rebuilt = echo6[0].copy()
    del rebuilt[ICMPv6EchoReply].cksum
    assert Ether(bytes(rebuilt))[ICMPv6EchoReply].cksum == echo6[0][ICMPv6EchoReply].cksum

    adverts = [r for r in replies if ICMPv6ND_NA in r]
    assert [a[ICMPv6ND_NA].tgt for a in adverts] == [VIP6_TCP, PORT_IPV6]
    for a in adverts:
        assert a[IPv6].hlim == 255 and a[IPv6].dst == CLIENT_IP6 and a.dst == CLIENT_MAC
        assert a[ICMPv6ND_NA].S == 1 and a[ICMPv6ND_NA].O == 1 and a[ICMPv6ND_NA].R == 0
        assert a[ICMPv6NDOptDstLLAddr].lladdr == PORT_MAC
        rebuilt = a.copy()
        del rebuilt[ICMPv6ND_NA].cksum
        assert Ether(bytes(rebuilt))[ICMPv6ND_NA].cksum == a[ICMPv6ND_NA].cksum

    assert run.counter("arp_replies") == 3
    assert run.counter("icmp_echo_replies") == 3
    assert run.counter("nd_advertisements") == 2
    assert run.drops("arp_not_for_us") == 2
    assert run.drops("icmp_not_handled") == 1
    assert run.drops("no_service") == 2  # echo to a foreign address, NS for a foreign target
    assert run.counter("forwarded") == 0
