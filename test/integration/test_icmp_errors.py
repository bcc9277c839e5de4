"""ICMP errors about a backend's DSR reply, through the real tetherd: a router's
"fragmentation needed" or "packet too big" (or an unreachable client's port unreachable)
comes to the VIP the reply left from, and must reach the backend that sent the reply, byte
for byte but for the MACs; a hostile quote is dropped under its own counter."""
import collections
import hashlib
import random

from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6PacketTooBig, IPv6,
                                IPv6ExtHdrDestOpt)
from scapy.layers.l2 import Ether

from conftest import SERVICES, VIP6_TCP, VIP_TCP, VIP_UDP, created_lab
from harness import (BACKENDS, CLIENT_MAC, PORT_IPV4, PORT_MAC, mac_bytes, run_tetherd,
                     run_tetherd_live)
from tetherlab.namespaces import remove_namespace, run
from tetherlab.tetherd import tetherctl
from tetherlab.topology import BACKENDS as BACKENDS_LAB
from tetherlab.topology import FTP_FILE, FTP_VIP, LAB_CONFIG, LB_ADDRESS

BACKEND_BY_MAC = {mac_bytes(mac): name for name, (_addr, mac) in BACKENDS.items()}
ETHER = Ether(src=CLIENT_MAC, dst=PORT_MAC)
ROUTER = "203.0.113.1"  # the hop whose link is too small for the backend's reply
ROUTER6 = "2001:db8:ff::1"
PMTU_ROUTER = "198.18.0.250"  # the lab's: on the segment, and 198.19.0.1 toward its client
PMTU_CLIENT = "198.19.0.2"


def client_of(flow_id, ipv6):
    return ("2001:db8:c::%x" % (flow_id + 1)) if ipv6 else "198.51.100.%d" % (flow_id + 1)


def opening(vip, client, port, protocol):
    """The client's first packet of its flow to the VIP's service."""
    ip = IPv6(src=client, dst=vip) if ":" in vip else IP(src=client, dst=vip)
    service_port = 80 if protocol == "tcp" else 5060
    l4 = TCP(sport=port, dport=service_port, flags="S") if protocol == "tcp" else \
        UDP(sport=port, dport=service_port) / b"OPTIONS sip:x SIP/2.0\r\n\r\n"
    return bytes(ETHER / ip / l4)


def reply(vip, client, port, protocol, size=1400):
    """What the backend sent from the VIP to the client (DSR: not through tetherd)."""
    ip = IPv6(src=vip, dst=client) if ":" in vip else IP(src=vip, dst=client, flags="DF")
    service_port = 80 if protocol == "tcp" else 5060
    l4 = TCP(sport=service_port, dport=port, flags="PA", seq=7) if protocol == "tcp" else \
        UDP(sport=service_port, dport=port)
    return bytes(ip / l4 / (b"r" * size))


def too_big(vip, quoted, quote_bytes=None, mtu=1280):
    """A router's error to the VIP about `quoted`: fragmentation needed (IPv4, quoting 548
    bytes as RFC 1812 routers do) or packet too big (IPv6, quoting up to 1232 bytes)."""
    if ":" in vip:
        quote = quoted[:quote_bytes or 1232]
        return bytes(ETHER / IPv6(src=ROUTER6, dst=vip) / ICMPv6PacketTooBig(mtu=mtu) / quote)
    quote = quoted[:quote_bytes or 548]
    return bytes(ETHER / IP(src=ROUTER, dst=vip) / ICMP(type=3, code=4, nexthopmtu=mtu) / quote)


def quoted_flow(frame):
    """(client, client port) of the reply an ICMP error frame quotes."""
    packet = Ether(frame)
    inner = packet[ICMP].payload if ICMP in packet else packet[ICMPv6PacketTooBig].payload
    return inner.dst, inner.payload.dport


def check_rewrite(frame, sent):
    """Forwarded as DSR forwards: the backend's MAC, the port's, every other byte as sent."""
    assert frame[6:12] == mac_bytes(PORT_MAC)
    assert frame[12:] == sent[12:]
    return BACKEND_BY_MAC[frame[:6]]


def is_error(frame):
    packet = Ether(frame)
    return ICMP in packet or ICMPv6PacketTooBig in packet or ICMPv6DestUnreach in packet


def test_error_follows_its_flow_after_the_backend_set_changed(tmp_path):
    """Flows open, their backend is drained (it keeps its flows, takes no new ones), then a
    router reports each flow's reply too big: each error reaches the flow's backend, the
    drained one included, where the consistent hash would no longer send anything."""
    flows = [(vip, client_of(i, ":" in vip), 40000 + i) for vip in (VIP_TCP, VIP6_TCP) for i in range(24)]
    openings = [opening(vip, client, port, "tcp") for vip, client, port in flows]
    errors = {(client, port): too_big(vip, reply(vip, client, port, "tcp"))
              for vip, client, port in flows}
    drain_b3 = lambda sock: tetherctl(sock, "backend", "drain", "b3")
    run = run_tetherd_live(tmp_path, [openings, drain_b3, list(errors.values())], SERVICES)
    assert run.returncode == 0, run.stderr

    backend_of_flow = {}
    for frame in run.frames:
        packet = Ether(frame)
        if TCP in packet and not is_error(frame):
            ip = packet[IP] if IP in packet else packet[IPv6]
            backend_of_flow[(ip.src, packet[TCP].sport)] = BACKEND_BY_MAC[frame[:6]]
    assert len(backend_of_flow) == len(flows)
    steered = {}
    for frame in filter(is_error, run.frames):
        flow = quoted_flow(frame)
        steered[flow] = check_rewrite(frame, errors[flow])
    assert steered == backend_of_flow
    on_drained = [flow for flow, backend in backend_of_flow.items() if backend == "b3"]
    assert len(on_drained) >= 4, backend_of_flow  # b3 has half the weight of web and web6
    assert run.counter("icmp_errors_forwarded") == len(flows)
    assert run.counter("icmp_errors_flow_unknown") == 0
    assert run.counter("new_flows") == len(flows)


def test_error_for_an_unknown_flow_goes_where_the_flow_would(tmp_path):
    """Errors about flows this tetherd never saw (another instance's, or expired) go by the
    consistent hash of the reversed 5-tuple: where the flow's next packet, arriving after
    them, is sent. The errors themselves leave no state behind."""
    rng = random.Random(18)
    flows = [(vip, client_of(i, ":" in vip), rng.randrange(1024, 65535), protocol)
             for vip, protocol in ((VIP_TCP, "tcp"), (VIP6_TCP, "tcp"), (VIP_UDP, "udp"))
             for i in range(20)]
    errors = {(client, port): too_big(vip, reply(vip, client, port, protocol))
              for vip, client, port, protocol in flows}
    # An unreachable client's own answer about a UDP reply: port unreachable, to the VIP.
    vip, client, port, protocol = flows[-1]
    errors[(client, port)] = bytes(ETHER / IP(src=client, dst=vip) / ICMP(type=3, code=3)
                                   / reply(vip, client, port, protocol, size=20))
    openings = {(client, port): opening(vip, client, port, protocol)
                for vip, client, port, protocol in flows}
    # A burst's flows are forwarded before its errors: a burst's worth of frames for another
    # station keeps every opening out of the errors' bursts.
    others = [bytes(Ether(src=CLIENT_MAC, dst="02:00:00:00:99:99") / IP(src=ROUTER, dst=VIP_TCP)
                    / TCP(sport=1, dport=80))] * 64
    run = run_tetherd(tmp_path, [list(errors.values()) + others + list(openings.values())], SERVICES)
    assert run.returncode == 0, run.stderr

    error_frames = [f for f in run.frames if is_error(f)]
    opening_frames = [f for f in run.frames if not is_error(f)]
    assert len(error_frames) == len(errors) and len(opening_frames) == len(openings)
    steered = {}
    for frame in error_frames:
        flow = quoted_flow(frame)
        steered[flow] = check_rewrite(frame, errors[flow])
    placed = {}
    for frame in opening_frames:
        packet = Ether(frame)
        ip = packet[IP] if IP in packet else packet[IPv6]
        flow = (ip.src, packet.sport)
        placed[flow] = check_rewrite(frame, openings[flow])
    assert steered == placed
    assert len(set(steered.values())) == 3, collections.Counter(steered.values())
    assert run.counter("icmp_errors_forwarded") == len(errors)
    assert run.counter("icmp_errors_flow_unknown") == len(errors)
    assert run.counter("new_flows") == len(openings), "an ICMP error created a flow"
    assert {name: count for name, count in run.stats["drops"].items() if count} == {"not_our_mac": 64}


def ipv6_reply_behind(extension):
    return bytes(IPv6(src=VIP6_TCP, dst="2001:db8:c::1") / extension / TCP(sport=80, dport=4000))


# (frame, the drop counter it must land in)
TCP_REPLY = reply(VIP_TCP, "198.51.100.9", 4000, "tcp")
TCP_REPLY6 = reply(VIP6_TCP, "2001:db8:c::9", 4000, "tcp")
CASES = [
    (too_big(VIP_TCP, TCP_REPLY, quote_bytes=27), "icmp_error_truncated"),
    (too_big(VIP_TCP, TCP_REPLY, quote_bytes=20), "icmp_error_truncated"),
    (too_big(VIP6_TCP, TCP_REPLY6, quote_bytes=47), "icmp_error_truncated"),
    (bytes(ETHER / IP(src=ROUTER, dst=VIP_TCP) / ICMP(type=3, code=4)), "icmp_error_truncated"),
    (too_big(VIP_TCP, TCP_REPLY6), "icmp_error_bad_quote"),  # IPv6 quoted by ICMP
    (too_big(VIP6_TCP, TCP_REPLY), "icmp_error_bad_quote"),  # IPv4 quoted by ICMPv6
    (too_big(VIP_TCP, b"\x44" + TCP_REPLY[1:]), "icmp_error_bad_quote"),  # header length 16
    (too_big(VIP_TCP, bytes(IP(src=VIP_TCP, dst="198.51.100.9") / ICMP(type=0) / (b"p" * 30))),
     "icmp_error_quotes_icmp"),
    (too_big(VIP6_TCP, bytes(IPv6(src=VIP6_TCP, dst="2001:db8:c::9") / ICMPv6EchoReply() / (b"p" * 30))),
     "icmp_error_quotes_icmp"),
    (too_big(VIP_TCP, bytes(IP(src=VIP_TCP, dst="198.51.100.9", frag=185, proto=6) / (b"t" * 40))),
     "icmp_error_quotes_fragment"),
    (too_big(VIP6_TCP, ipv6_reply_behind(IPv6ExtHdrDestOpt())), "icmp_error_quotes_extension"),
    (too_big(VIP_TCP, bytes(IP(src=VIP_TCP, dst="198.51.100.9") / GRE() / (b"g" * 40))),
     "icmp_error_quotes_other"),
    # Not a reply from the VIP the error came to, or from none of its services.
    (too_big(VIP_TCP, reply("192.0.2.77", "198.51.100.9", 4000, "tcp")), "icmp_error_not_a_service"),
    (too_big(VIP_TCP, reply(VIP_UDP, "198.51.100.9", 4000, "udp")), "icmp_error_not_a_service"),
    (too_big(VIP_TCP, bytes(IP(src=VIP_TCP, dst="198.51.100.9") / TCP(sport=81, dport=4000))),
     "icmp_error_not_a_service"),
    (too_big(VIP_TCP, bytes(IP(src=VIP_TCP, dst="198.51.100.9") / UDP(sport=80, dport=4000))),
     "icmp_error_not_a_service"),
]


def test_hostile_quotes_are_dropped_and_counted(tmp_path):
    frames = [frame for frame, _reason in CASES]
    # An error to the port's own address is the kernel's (here: the control thread's), not a
    # backend's; a good error after the junk proves the worker still steers.
    frames.append(too_big(PORT_IPV4, TCP_REPLY))
    frames.append(too_big(VIP_TCP, TCP_REPLY))
    run = run_tetherd(tmp_path, [frames], SERVICES)
    assert run.returncode == 0, run.stderr
    assert len(run.frames) == 1
    check_rewrite(run.frames[0], frames[-1])
    expected = collections.Counter(reason for _frame, reason in CASES)
    nonzero = {name: count for name, count in run.stats["drops"].items() if count}
    assert nonzero == expected
    assert run.counter("icmp_errors_forwarded") == 1
    assert run.counter("to_control") == 1
    assert run.counter("new_flows") == 0


def test_a_backup_steers_no_error(tmp_path):
    """An active-standby pair's backup: the VIPs are the master's, and so are their errors."""
    frames = [too_big(VIP_TCP, TCP_REPLY), too_big(VIP6_TCP, TCP_REPLY6)]
    run = run_tetherd(tmp_path, [frames], SERVICES, extra='ha = { initial = "backup"; };\n')
    assert run.returncode == 0, run.stderr
    assert run.frames == []
    assert run.drops("ha_standby") == 2
    assert run.counter("icmp_errors_forwarded") == 0


def test_path_mtu_discovery_completes_through_dsr(tmp_path):
    """The lab, with a client behind a router whose link to it carries 1400 bytes while the
    client announces an MSS for 1500: the backend's full-size data segments (DF) stop at the
    router, whose "fragmentation needed" goes to the FTP VIP. tetherd steers it to the backend
    serving the data connection, which lowers its path MTU and sends again: the download
    completes. Without the steering it stalls (the kernel's blackhole probing is off)."""
    with created_lab(tmp_path) as lab:
        for name in BACKENDS_LAB:
            lab.start_ftp_server(name)
        router, client = f"tte2e-{lab.tag}-pm", f"tte2e-{lab.tag}-pc"
        try:
            for ns in (router, client):
                run("ip", "netns", "add", ns)
                lab.sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
                run("ip", "-n", ns, "link", "set", "lo", "up")
            lab._plug(router, "pm", "02:e2:e0:00:00:fd")
            run("ip", "-n", router, "addr", "add", f"{PMTU_ROUTER}/24", "dev", "eth0")
            lab.sysctl(router, "net.ipv4.ip_forward=1")
            run("ip", "link", "add", "eth1", "netns", router, "mtu", "1400", "type", "veth",
                "peer", "name", "eth0", "netns", client, "mtu", "1400")
            for ns, dev, address in ((router, "eth1", "198.19.0.1/24"), (client, "eth0", f"{PMTU_CLIENT}/24")):
                run("ip", "-n", ns, "addr", "add", address, "dev", dev)
                run("ip", "-n", ns, "link", "set", dev, "up")
                run("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", check=False)
            # The client announces an MSS for 1500-byte packets: the 1400 bytes are the path's.
            run("ip", "-n", client, "route", "add", "default", "via", "198.19.0.1", "advmss", "1460")
            run("ip", "-n", router, "route", "add", f"{FTP_VIP}/32", "via", LB_ADDRESS)
            for name in BACKENDS_LAB:
                run("ip", "-n", lab.backend_ns[name], "route", "add", "198.19.0.0/24", "via", PMTU_ROUTER)
                lab.sysctl(lab.backend_ns[name], "net.ipv4.tcp_mtu_probing=0")
            tetherd = lab.start_tetherd(LAB_CONFIG)
            tetherd.wait_until(lambda b: all(x["healthy"] for x in b.values()), 15, "all healthy")
            out = tmp_path / "download.bin"
            curl = lab.popen(client, ["curl", "-sS", "--ftp-pasv", "--max-time", "20", "-o", out,
                                      f"ftp://{FTP_VIP}/{FTP_FILE}"])
            assert curl.wait(timeout=30) == 0
            assert hashlib.sha256(out.read_bytes()).hexdigest() == lab.ftp_sha256
            counters = tetherd.json("show", "counters")
            assert counters["counters"]["icmp_errors_forwarded"] >= 1, counters
            lowered = [name for name in BACKENDS_LAB
                       if "mtu 1400" in run("ip", "-n", lab.backend_ns[name], "route", "get", PMTU_CLIENT,
                                            "from", FTP_VIP).stdout]
            assert len(lowered) == 1, lowered
            assert tetherd.stop() == 0
        finally:
            for ns in (router, client):
                remove_namespace(ns)
