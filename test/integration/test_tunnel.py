"""Tunnel forwarding through the real tetherd on net_pcap (README "Tunnel forwarding"):
every encapsulation's outer headers byte for byte against what scapy builds from the RFCs'
fields (so its checksums and lengths are right), the same headers read back by scapy's
dissectors, the inner packet unchanged; the GUE source port a function of the flow; the ICMP
too-big errors a packet over the port's MTU gets; the counters. One tetherd runs every case."""
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Dot1Q, Ether

from harness import CLIENT_MAC, PORT_MAC, mac_bytes, run_tetherd

GATEWAY_MAC = "02:00:00:00:0f:01"  # the router toward the backends (static: no ARP in a pcap)
GATEWAY6_MAC = "02:00:00:00:0f:06"
SOURCE4, SOURCE6 = "192.0.2.2", "2001:db8::2"  # the port's tunnel sources
BACKEND4, BACKEND6 = "198.51.100.11", "2001:db8:5::16"  # off the segment
MTU = 1500
GUE_PORT = 6080
PORT_SETTINGS = (f'mtu = {MTU}; gateways = ["192.0.2.254", "2001:db8::fe"]; '
                 f'tunnel = {{ sources = ["{SOURCE4}", "{SOURCE6}"]; }};')
BACKENDS = {"t4": (BACKEND4, GATEWAY_MAC), "t6": (BACKEND6, GATEWAY6_MAC)}
# (name, VIP, port, protocol, forwarding, backend, dpi)
CASES = {
    "ipip4": ("192.0.2.200", 80, "tcp", "ipip", "t4"),      # IPv4 in IPv4 (RFC 2003)
    "ipip6": ("2001:db8::200", 80, "tcp", "ipip", "t6"),    # IPv6 in IPv6 (RFC 2473)
    "ipip64": ("2001:db8::201", 80, "tcp", "ipip", "t4"),   # IPv6 in IPv4 (RFC 4213)
    "gue4": ("192.0.2.201", 9000, "udp", "gue", "t4"),      # GUE variant 1 over IPv4
    "gue6": ("2001:db8::202", 9000, "udp", "gue", "t6"),    # and over IPv6
    "gue64": ("2001:db8::203", 9000, "udp", "gue", "t4"),
    "sip": ("192.0.2.201", 5060, "udp", "gue", "t4"),       # SIP calls, routed by Call-ID
}
SERVICE_NAMES = list(CASES)
CASES["icmp_error"] = CASES["ipip4"]  # an ICMP error steered to an ipip4 flow's backend
# VLAN-tagged frames (the tag kept, as DSR keeps it): tetherd's general wrapping path, which
# untagged frames in one segment skip.
CASES["gue4_tagged"] = CASES["gue4"]
CASES["ipip64_tagged"] = CASES["ipip64"]
VLAN = 7
SERVICES = [{"name": name, "vip": vip, "port": port, "protocol": protocol, "weights": {backend: 1},
             "extra": f'forwarding = "{forwarding}";' + (' dpi = "sip";' if name == "sip" else "")}
            for name, (vip, port, protocol, forwarding, backend) in CASES.items() if name in SERVICE_NAMES]
ETHER = Ether(src=CLIENT_MAC, dst=PORT_MAC)


def client_packet(service, sport, payload=b"x" * 20, tos=0, df=True):
    vip, port, protocol, _forwarding, _backend = CASES[service]
    ether = ETHER / Dot1Q(vlan=VLAN) if service.endswith("_tagged") else ETHER
    client = "2001:db8:c::7" if ":" in vip else "203.0.113.7"
    ip = IPv6(src=client, dst=vip, tc=tos) if ":" in vip else \
        IP(src=client, dst=vip, tos=tos, flags="DF" if df else 0, id=4242)
    l4 = TCP(sport=sport, dport=port, flags="PA", seq=1) if protocol == "tcp" else UDP(sport=sport, dport=port)
    frame = bytes(ether / ip / l4 / payload)
    return frame + bytes(max(0, 60 - len(frame)))  # the Ethernet minimum's padding, as on the wire


def inner_packet(sent):
    """The IP packet a client frame carries, without the Ethernet padding."""
    ip = Ether(sent).payload
    if Dot1Q in Ether(sent):
        ip = ip.payload
    return bytes(ip)[:ip.len if IP in Ether(sent) else 40 + ip.plen]


def sip_invite(call_id, sport):
    text = (f"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.7:{sport}\r\n"
            f"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\n"
            "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
    return client_packet("sip", sport, payload=text)


def expected_frame(service, sent, outer_sport=None, flow_label=0):
    """The frame tetherd must send for `sent` (a client frame of `service`): built by scapy
    from the RFCs' fields, so its lengths and checksums are scapy's own."""
    _vip, _port, _protocol, forwarding, backend = CASES[service]
    inner = Ether(sent)[IP] if IP in Ether(sent) else Ether(sent)[IPv6]
    inner_bytes = inner_packet(sent)
    tos = inner.tos if IP in Ether(sent) else inner.tc
    outer_ipv4 = backend == "t4"
    if forwarding == "gue":
        # IPv4: checksum 0 (none); IPv6: scapy computes it, as RFC 8200 requires.
        l4 = UDP(sport=outer_sport, dport=GUE_PORT, chksum=0 if outer_ipv4 else None) / inner_bytes
        proto = 17
    else:
        l4 = inner_bytes
        proto = 4 if IP in Ether(sent) else 41
    outer = IP(src=SOURCE4, dst=BACKEND4, tos=tos, id=0, flags="DF", ttl=64, proto=proto) if outer_ipv4 else \
        IPv6(src=SOURCE6, dst=BACKEND6, tc=tos, fl=flow_label, hlim=64, nh=proto)
    mac = GATEWAY_MAC if outer_ipv4 else GATEWAY6_MAC
    ether = Ether(src=PORT_MAC, dst=mac) / Dot1Q(vlan=VLAN) if Dot1Q in Ether(sent) else Ether(src=PORT_MAC, dst=mac)
    return bytes(ether / outer / l4), inner_bytes


def check_tunnelled(service, frame, sent):
    """`frame` is `sent` wrapped as `service` forwards: byte-exact, and as scapy reads it.
    Returns the GUE source port (None for ipip)."""
    _vip, _port, _protocol, forwarding, backend = CASES[service]
    packet = Ether(frame)
    outer = packet.payload.payload if Dot1Q in packet else packet.payload
    l2_length = 18 if Dot1Q in packet else 14
    outer_sport = bytes(outer.payload)[0] << 8 | bytes(outer.payload)[1] if forwarding == "gue" else None
    flow_label = outer.fl if IPv6 in packet and backend == "t6" else 0
    want, inner_bytes = expected_frame(service, sent, outer_sport, flow_label)
    assert frame == want, f"{service}:\n{Ether(frame).show(dump=True)}\nwanted\n{Ether(want).show(dump=True)}"
    # What scapy's dissectors read back: the fields the RFCs fix.
    if backend == "t4":
        assert outer.version == 4 and outer.ihl == 5 and outer.ttl == 64 and outer.flags == "DF"
        assert outer.len == len(frame) - l2_length and outer.frag == 0
        assert outer.proto == (17 if forwarding == "gue" else 4 if IP in Ether(sent) else 41)
        rebuilt = outer.copy()
        del rebuilt.chksum
        assert outer.chksum == IP(bytes(rebuilt)).chksum
    else:
        assert outer.version == 6 and outer.hlim == 64 and outer.plen == len(frame) - l2_length - 40
        assert outer.nh == (17 if forwarding == "gue" else 41) and outer.fl != 0
    if forwarding == "gue":
        udp = outer[UDP]
        assert udp.dport == GUE_PORT and 49152 <= udp.sport <= 65535 and udp.len == 8 + len(inner_bytes)
        if backend == "t4":
            assert udp.chksum == 0
        else:
            rebuilt = outer.copy()
            del rebuilt[UDP].chksum
            assert udp.chksum == IPv6(bytes(rebuilt))[UDP].chksum != 0
        assert bytes(udp.payload) == inner_bytes
        return udp.sport
    assert bytes(outer.payload) == inner_bytes
    return None


def is_to_client(frame):
    return frame[:6] == mac_bytes(CLIENT_MAC)


@pytest.fixture(scope="module")
def tunnel_run(tmp_path_factory):
    """One tetherd over every case: what went in, and the Run."""
    sent = {}
    for service in ("ipip4", "ipip6", "ipip64", "gue4", "gue6", "gue64", "gue4_tagged", "ipip64_tagged"):
        # Eight flows, two packets each; a small TCP segment is padded to the Ethernet minimum
        # on the wire, which the tunnel must not carry. A tagged case's flows are its own.
        first_port = 41000 + (100 if service.endswith("_tagged") else 0)
        sent[service] = [client_packet(service, first_port + i, payload=b"y" * (1 + i * 97), tos=0xb8)
                         for i in range(8) for _ in range(2)]
    sent["sip"] = [sip_invite(f"call-{i}@example.com", 5060) for i in range(4)]
    # Over the MTU once wrapped (1500 - 20 or - 40 or - 28 or - 48 by the outer headers).
    big = {"ipip4": client_packet("ipip4", 42000, payload=b"B" * (MTU - 40 - 10)),
           "ipip4_no_df": client_packet("ipip4", 42001, payload=b"B" * (MTU - 40 - 10), df=False),
           "ipip6": client_packet("ipip6", 42002, payload=b"B" * (MTU - 60 - 10)),
           "gue4": client_packet("gue4", 42003, payload=b"B" * (MTU - 28 - 20)),
           "gue6": client_packet("gue6", 42004, payload=b"B" * (MTU - 48 - 20))}
    # A wrapped packet that just fits: 1500 bytes on the link.
    fits = client_packet("ipip4", 42005, payload=b"F" * (MTU - 20 - 40))
    # A flood over the MTU: beyond the 50 errors a worker may send at once, dropped, counted.
    flood = [client_packet("ipip4", 43000 + i, payload=b"B" * (MTU - 40)) for i in range(100)]
    # A router's error about a backend's reply to the first ipip4 flow: steered to that flow's
    # backend through the service's tunnel, as DSR would steer it; and one quoting so much
    # that it no longer fits once wrapped, about which no error may be sent.
    reply = bytes(IP(src=CASES["ipip4"][0], dst="203.0.113.7", flags="DF") /
                  TCP(sport=80, dport=41000, flags="A") / (b"r" * 1452))
    steered = bytes(ETHER / IP(src="198.18.7.1", dst=CASES["ipip4"][0]) / ICMP(type=3, code=4, nexthopmtu=1280) /
                    reply[:548])
    unanswerable = bytes(ETHER / IP(src="198.18.7.1", dst=CASES["ipip4"][0]) /
                         ICMP(type=3, code=4, nexthopmtu=1280) / reply[:MTU - 28])
    sent["icmp_error"] = [steered]
    frames = [f for service in sent.values() for f in service] + list(big.values()) + [fits] + flood
    frames.append(unanswerable)
    run = run_tetherd(tmp_path_factory.mktemp("tunnel"), [frames], SERVICES, backends=BACKENDS,
                      port_settings=PORT_SETTINGS)
    assert run.returncode == 0, run.stderr
    return sent, big, fits, flood, run


def test_each_encapsulation_is_byte_exact(tunnel_run):
    sent, _big, fits, _flood, run = tunnel_run
    tunnelled = [f for f in run.frames if not is_to_client(f)]
    for service, frames in sent.items():
        for frame in frames:
            # The output frame that carries this one's IP packet (a flow's two are alike).
            inner = inner_packet(frame)
            carriers = [f for f in tunnelled if f.endswith(inner)]
            assert carriers, service
            check_tunnelled(service, carriers[0], frame)
    smallest = min(len(inner_packet(f)) for f in sent["ipip4"])
    assert smallest + 14 < 60  # padded on the wire: the tunnel carried the IP packet alone
    fitted = [f for f in tunnelled if f.endswith(b"F" * 50)]
    assert len(fitted) == 1 and len(fitted[0]) == 14 + MTU
    check_tunnelled("ipip4", fitted[0], fits)


def test_gue_source_port_is_the_flows_entropy(tunnel_run):
    """Stable within a flow, different across flows: the network's ECMP spreads them."""
    sent, _big, _fits, _flood, run = tunnel_run
    for service in ("gue4", "gue6", "gue64"):
        ports_by_flow = {}
        for frame in run.frames:
            packet = Ether(frame)
            if UDP not in packet or packet[UDP].dport != GUE_PORT:
                continue
            inner = packet[UDP].payload
            inner = IP(bytes(inner)) if bytes(inner)[0] >> 4 == 4 else IPv6(bytes(inner))
            if inner.dst != CASES[service][0] or inner[UDP].dport != CASES[service][1]:
                continue
            ports_by_flow.setdefault(inner[UDP].sport, set()).add(packet[UDP].sport)
        # the service's flows, gue4's tagged ones included
        flows = {Ether(f)[UDP].sport for name, frames in sent.items() if CASES[name][:2] == CASES[service][:2]
                 for f in frames}
        assert set(ports_by_flow) == flows and len(flows) >= 8, (service, ports_by_flow)
        assert all(len(ports) == 1 for ports in ports_by_flow.values()), ports_by_flow
        distinct = {next(iter(ports)) for ports in ports_by_flow.values()}
        assert len(distinct) >= 7, (service, ports_by_flow)


def test_sip_calls_take_the_services_tunnel(tunnel_run):
    sent, _big, _fits, _flood, run = tunnel_run
    calls = [f for f in run.frames if b"INVITE sip:bob" in f]
    assert len(calls) == len(sent["sip"])
    for frame, original in zip(calls, sent["sip"]):
        check_tunnelled("sip", frame, original)


def test_packets_over_the_mtu_get_icmp_too_big_from_the_vip(tunnel_run):
    _sent, big, _fits, flood, run = tunnel_run
    errors = [f for f in run.frames if is_to_client(f)]
    by_port = {}
    for frame in errors:
        packet = Ether(frame)
        assert packet.src == PORT_MAC
        quote = IP(bytes(packet[ICMP].payload)) if ICMP in packet else \
            IPv6(bytes(packet[ICMPv6PacketTooBig].payload))
        by_port[(quote[TCP] if TCP in quote else quote[UDP]).sport] = frame
    expected_mtu = {"ipip4": MTU - 20, "ipip4_no_df": MTU - 20, "ipip6": MTU - 40, "gue4": MTU - 28,
                    "gue6": MTU - 48}
    for i, (name, original) in enumerate(big.items()):
        frame = by_port[42000 + i]
        sent_ip = Ether(original).payload
        packet = Ether(frame)
        if IP in Ether(original):
            # RFC 792/1191: from the VIP to the client, type 3 code 4 with the next-hop MTU,
            # quoting as much as fits in 576 bytes.
            quote = bytes(sent_ip)[:576 - 28]
            want = Ether(src=PORT_MAC, dst=CLIENT_MAC) / IP(src=sent_ip.dst, dst=sent_ip.src, id=0, ttl=64) / \
                ICMP(type=3, code=4, nexthopmtu=expected_mtu[name]) / quote
            assert packet[IP].len == 576 and packet[ICMP].nexthopmtu == expected_mtu[name]
        else:
            # RFC 4443: type 2 with the MTU, quoting as much as fits in 1280 bytes.
            quote = bytes(sent_ip)[:1280 - 48]
            want = Ether(src=PORT_MAC, dst=CLIENT_MAC) / IPv6(src=sent_ip.dst, dst=sent_ip.src, hlim=64) / \
                ICMPv6PacketTooBig(mtu=expected_mtu[name]) / quote
            assert packet[IPv6].plen == 1280 - 40 and packet[ICMPv6PacketTooBig].mtu == expected_mtu[name]
        assert frame == bytes(want), f"{name}:\n{packet.show(dump=True)}\nwanted\n{want.show(dump=True)}"
    flood_errors = sum(1 for port in by_port if 43000 <= port < 43100)
    limited = run.drops("tunnel_too_big_rate_limited")
    assert flood_errors + limited == len(flood)
    assert limited >= 30, (flood_errors, limited)  # 50 at once, 1000 a second after
    assert run.counter("icmp_too_big_sent") == len(errors) == len(big) + flood_errors


def test_counters(tunnel_run):
    sent, _big, _fits, _flood, run = tunnel_run
    wrapped = sum(len(f) for f in sent.values()) + 1
    assert run.counter("tunnelled") == wrapped
    assert run.counter("forwarded") == wrapped
    assert len([f for f in run.frames if not is_to_client(f)]) == wrapped
    assert run.drops("tunnel_unwrappable") == 0
    assert run.drops("tunnel_too_big_unanswerable") == 1
    assert run.counter("icmp_errors_forwarded") == 1
