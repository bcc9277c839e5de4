"""Admission on the real tetherd through pcaps (docs/design.md "Admission"): a backend at its
max_sessions (or max_connections) takes no new session, a new INVITE that finds every backend full gets tetherd's
own 503 (checked byte by byte with scapy), its retransmission the same 503, the ACK for the
503 is absorbed, in-dialog requests pass; a SYN beyond capacity gets a RST or is dropped;
a client address over its rate is refused while another is admitted."""
import re

from harness import BACKENDS, CLIENT_MAC, PORT_MAC, mac_bytes, run_tetherd
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

BACKEND_BY_MAC = {mac_bytes(mac): name for name, (_addr, mac) in BACKENDS.items()}
SIP_VIP, SIP_RATE_VIP, RTSP_VIP, FTP_VIP, WEB_VIP = (f"192.0.2.{n}" for n in range(140, 145))
CLIENT, OTHER_CLIENT = "198.51.100.10", "198.51.100.20"

SERVICES = [
    # b1 holds 2 calls, b2 1: the fourth new call finds both full
    {"name": "sip", "vip": SIP_VIP, "port": 5060, "protocol": "udp",
     "extra": 'dpi = "sip"; admission = { retry_after = 17; };',
     "weights": {"b1": "weight = 1; max_sessions = 2;", "b2": "weight = 1; max_sessions = 1;"}},
    # 2 new calls a second per client address, with a second's burst: 3 at once
    {"name": "sip-rate", "vip": SIP_RATE_VIP, "port": 5060, "protocol": "udp",
     "extra": 'dpi = "sip"; admission = { client_rate = 2; };', "weights": {"b1": 1, "b2": 1}},
    {"name": "rtsp", "vip": RTSP_VIP, "port": 554, "protocol": "tcp", "extra": 'dpi = "rtsp";',
     "weights": {"b1": "weight = 1; max_sessions = 1;"}},
    {"name": "ftp", "vip": FTP_VIP, "port": 21, "protocol": "tcp",
     "extra": 'dpi = "ftp"; admission = { overload = "drop"; };',
     "weights": {"b3": "weight = 1; max_sessions = 1;"}},
    # no dpi: live TCP connections
    {"name": "web", "vip": WEB_VIP, "port": 80, "protocol": "tcp",
     "weights": {"b2": "weight = 1; max_connections = 1;"}},
]


def sip(vip, method, call_id, client=CLIENT, sport=5062, to_tag=None, cseq=1, rport=False, via_params="",
        filler=0):
    """`filler` bytes of headers before From, To and Call-ID: a datagram to fragment."""
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    via = f"SIP/2.0/UDP {client}:{sport};branch=z9hG4bK{call_id}{cseq}{method}" + (";rport" if rport else "")
    text = (f"{method} sip:bob@{vip} SIP/2.0\r\n"
            f"Via: {via}{via_params}\r\n"
            f"Via: SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bKproxy\r\n"
            f"Max-Forwards: 70\r\n"
            + "".join(f"X-Filler-{i}: {'f' * 60}\r\n" for i in range(filler // 75)) +
            f"From: <sip:alice@example.com>;tag=a{call_id}\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {'INVITE' if method == 'ACK' else method}\r\n"
            f"Content-Length: 0\r\n\r\n")
    return (Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=client, dst=vip) / UDP(sport=sport, dport=5060)
            / text.encode())


def syn(vip, dport, sport, seq=1000, client=CLIENT):
    return Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=client, dst=vip) / TCP(sport=sport, dport=dport, flags="S", seq=seq)


def ack(vip, dport, sport, client=CLIENT):
    return Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=client, dst=vip) / TCP(sport=sport, dport=dport, flags="A", seq=1001, ack=1)


def split(run):
    """(frames to backends as (backend, packet), frames back to clients as packets)."""
    forwarded, answered = [], []
    for frame in run.frames:
        if frame[:6] in BACKEND_BY_MAC:
            forwarded.append((BACKEND_BY_MAC[frame[:6]], Ether(frame)))
        else:
            answered.append(Ether(frame))
    return forwarded, answered


def to_tag_of(response):
    return re.search(rb"\r\nTo: [^\r]*;tag=([0-9a-f]+)\r\n", response).group(1).decode()


def test_sip_full_backends_answer_503_retransmissions_alike_ack_absorbed_in_dialog_passes(tmp_path):
    admitted = [sip(SIP_VIP, "INVITE", f"c{n}") for n in range(3)]
    refused = sip(SIP_VIP, "INVITE", "c3", rport=True)
    (tmp_path / "1").mkdir()
    first = run_tetherd(tmp_path / "1", [admitted + [refused, refused]], SERVICES)
    assert first.returncode == 0, first.stderr
    forwarded, answered = split(first)
    assert sorted(b for b, _ in forwarded) == ["b1", "b1", "b2"]  # capacity 2 + 1, by weight first
    assert len(answered) == 2 and bytes(answered[0]) == bytes(answered[1])  # the retransmission's alike
    response = answered[0]
    assert response[Ether].src == PORT_MAC and response[Ether].dst == CLIENT_MAC
    assert response[IP].src == SIP_VIP and response[IP].dst == CLIENT
    assert response[UDP].sport == 5060 and response[UDP].dport == 5062  # rport: the source port
    # checksums as the receiver recomputes them
    rebuilt = Ether(bytes(response))
    del rebuilt[IP].chksum, rebuilt[UDP].chksum
    assert Ether(bytes(rebuilt))[IP].chksum == response[IP].chksum
    assert Ether(bytes(rebuilt))[UDP].chksum == response[UDP].chksum
    payload = bytes(response[UDP].payload)
    tag = to_tag_of(payload)
    assert payload == (
        b"SIP/2.0 503 Service Unavailable\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.10:5062;branch=z9hG4bKc31INVITE;received=198.51.100.10;rport=5062\r\n"
        b"Via: SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bKproxy\r\n"
        b"From: <sip:alice@example.com>;tag=ac3\r\n"
        b"To: <sip:bob@example.com>;tag=" + tag.encode() + b"\r\n"
        b"Call-ID: c3\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Retry-After: 17\r\n"
        b"Content-Length: 0\r\n\r\n")
    counters = first.stats["counters"]
    assert counters["sessions_admitted"] == 3 and counters["refused_full"] == 1
    assert counters["sip_unavailable_sent"] == 2 and counters["sip_unavailable_retransmitted"] == 1
    assert first.stats["backends"]["b1"]["admitted"] == 2
    # Per service and per backend: the refusal on the backend the consistent hash chose for
    # it; the retransmission's 503 is no new refusal.
    assert first.stats["services"]["sip"] == {"admitted": 3, "refused_full": 1, "refused_service_rate": 0,
                                              "refused_client_rate": 0}
    assert first.stats["services"]["sip-rate"]["admitted"] == 0
    assert sum(first.stats["backends"][b]["refused_full"] for b in ("b1", "b2")) == 1
    assert sum(first.stats["backends"][b]["admitted"] for b in ("b1", "b2")) == 3

    # Again with the ACK for the 503 (the tag is the same: derived from the Call-ID) and
    # in-dialog requests of an admitted call while every backend is full.
    (tmp_path / "2").mkdir()
    in_dialog = [sip(SIP_VIP, "INFO", "c0", to_tag="b0", cseq=2, sport=5070),
                 sip(SIP_VIP, "BYE", "c1", to_tag="b1", cseq=3, sport=5071)]
    second = run_tetherd(tmp_path / "2", [admitted + [refused, sip(SIP_VIP, "ACK", "c3", to_tag=tag)] + in_dialog],
                         SERVICES)
    assert second.returncode == 0, second.stderr
    forwarded, answered = split(second)
    assert len(forwarded) == 5 and len(answered) == 1
    owner = {bytes(p[UDP].payload).split(b"Call-ID: ")[1].split(b"\r\n")[0]: b for b, p in forwarded}
    assert owner[b"c0"] in ("b1", "b2") and owner[b"c1"] in ("b1", "b2")
    assert second.stats["counters"]["sip_acks_absorbed"] == 1
    assert second.stats["counters"]["refused_full"] == 1


def test_client_over_its_rate_is_refused_while_another_is_admitted(tmp_path):
    mine = [sip(SIP_RATE_VIP, "INVITE", f"r{n}") for n in range(6)]
    others = [sip(SIP_RATE_VIP, "INVITE", f"o{n}", client=OTHER_CLIENT) for n in range(2)]
    run = run_tetherd(tmp_path, [mine[:3] + others[:1] + mine[3:] + others[1:]], SERVICES)
    assert run.returncode == 0, run.stderr
    forwarded, answered = split(run)
    clients = sorted(p[IP].src for _, p in forwarded)
    assert clients == [CLIENT] * 3 + [OTHER_CLIENT] * 2  # a second's burst of 2 a second: 3
    assert len(answered) == 3 and all(p[IP].dst == CLIENT for p in answered)
    assert all(bytes(p[UDP].payload).startswith(b"SIP/2.0 503 ") for p in answered)
    assert run.stats["counters"]["refused_client_rate"] == 3
    assert run.stats["services"]["sip-rate"] == {"admitted": 5, "refused_full": 0, "refused_service_rate": 0,
                                                 "refused_client_rate": 3}
    assert sum(run.stats["backends"][b]["refused_client_rate"] for b in ("b1", "b2")) == 3


def test_fragmented_invites_have_their_client_rate(tmp_path):
    """INVITEs whose Call-ID is in their second fragment, reassembled to be read: the client's
    rate counts them by the address the call came from (not by re-reading the head fragment,
    which has no ports), the first three go whole to a backend, the other two get a 503 from
    the VIP to the client's port."""
    from scapy.layers.inet import fragment
    invites = [sip(SIP_RATE_VIP, "INVITE", f"f{n}", sport=5100 + n, filler=1500) for n in range(5)]
    for n, invite in enumerate(invites):
        invite[IP].id = 700 + n
    frames = [bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC) / part) for invite in invites
              for part in fragment(invite[IP], 1000)]
    assert len(frames) == 10
    other = sip(SIP_RATE_VIP, "INVITE", "o-whole", client=OTHER_CLIENT)
    run = run_tetherd(tmp_path, [frames + [other]], SERVICES)
    assert run.returncode == 0, run.stderr
    forwarded, answered = split(run)
    by_datagram = {}
    for backend, packet in forwarded:
        by_datagram.setdefault(packet[IP].id, set()).add(backend)
    admitted = {ident for ident in by_datagram if ident in range(700, 705)}
    assert admitted == {700, 701, 702}, by_datagram
    assert all(len(backends) == 1 for backends in by_datagram.values()), by_datagram
    assert sum(1 for _, p in forwarded if p[IP].src == CLIENT) == 6  # both fragments of each
    assert [p[IP].src for _, p in forwarded if p[IP].src == OTHER_CLIENT] == [OTHER_CLIENT]
    assert sorted((p[IP].src, p[IP].dst, p[UDP].sport, p[UDP].dport) for p in answered) == [
        (SIP_RATE_VIP, CLIENT, 5060, 5103), (SIP_RATE_VIP, CLIENT, 5060, 5104)]
    for response in answered:
        payload = bytes(response[UDP].payload)
        assert payload.startswith(b"SIP/2.0 503 Service Unavailable\r\n")
        assert b"\r\nCall-ID: f%d\r\n" % (response[UDP].dport - 5100) in payload
    assert run.stats["counters"]["fragments_reassembled"] == 5
    assert run.stats["services"]["sip-rate"]["admitted"] == 4
    assert run.stats["services"]["sip-rate"]["refused_client_rate"] == 2
    assert run.stats["counters"]["sip_unavailable_sent"] == 2
    # the refused INVITEs' second fragments: answered, not lost for want of a backend
    assert run.stats["drops"].get("fragment_answered") == 2, run.stats["drops"]
    assert run.stats["drops"].get("no_backend", 0) == 0


def test_only_session_opening_methods_hold_capacity_and_503_goes_to_maddr(tmp_path):
    """OPTIONS and REGISTER (not in admission.methods) are transactions, not sessions (RFC 3261
    10, 11): they pass and hold nothing, so three INVITEs still fit the 2 + 1 places. The
    INVITEs beyond get their 503 where the top Via's maddr says (RFC 3261 18.2.2): a unicast
    maddr at the sent-by port, through the client's router; a multicast one to its group's
    MAC with the Via's ttl."""
    transactions = [sip(SIP_VIP, "OPTIONS", f"opt{n}") for n in range(3)] + [sip(SIP_VIP, "REGISTER", "reg0")]
    invites = [sip(SIP_VIP, "INVITE", f"m{n}") for n in range(3)]
    unicast = sip(SIP_VIP, "INVITE", "m3", sport=5080, rport=True, via_params=";maddr=198.51.100.77")
    multicast = sip(SIP_VIP, "INVITE", "m4", via_params=";maddr=239.1.2.3;ttl=5")
    run = run_tetherd(tmp_path, [transactions + invites + [unicast, multicast]], SERVICES)
    assert run.returncode == 0, run.stderr
    forwarded, answered = split(run)
    assert len(forwarded) == 7  # the transactions and the three INVITEs
    counters = run.stats["counters"]
    assert counters["sessions_admitted"] == 3 and counters["refused_full"] == 2
    assert len(answered) == 2
    to_unicast, to_group = sorted(answered, key=lambda p: p[IP].dst)
    assert to_unicast[Ether].dst == CLIENT_MAC
    assert (to_unicast[IP].src, to_unicast[IP].dst, to_unicast[IP].ttl) == (SIP_VIP, "198.51.100.77", 64)
    assert (to_unicast[UDP].sport, to_unicast[UDP].dport) == (5060, 5080)  # sent-by's port: rport yields to maddr
    assert to_group[Ether].dst == "01:00:5e:01:02:03"
    assert (to_group[IP].dst, to_group[IP].ttl, to_group[UDP].dport) == ("239.1.2.3", 5, 5062)
    rebuilt = Ether(bytes(to_group))
    del rebuilt[IP].chksum, rebuilt[UDP].chksum
    assert Ether(bytes(rebuilt))[IP].chksum == to_group[IP].chksum
    assert Ether(bytes(rebuilt))[UDP].chksum == to_group[UDP].chksum
    assert bytes(to_group[UDP].payload).startswith(b"SIP/2.0 503 ")


def test_syn_beyond_capacity_gets_rst_or_is_dropped_and_admitted_data_passes(tmp_path):
    frames = [syn(RTSP_VIP, 554, 40001), ack(RTSP_VIP, 554, 40001), syn(RTSP_VIP, 554, 40002, seq=777),
              syn(FTP_VIP, 21, 40003), syn(FTP_VIP, 21, 40004), ack(FTP_VIP, 21, 40003), ack(RTSP_VIP, 554, 40001),
              syn(WEB_VIP, 80, 40005), syn(WEB_VIP, 80, 40006), ack(WEB_VIP, 80, 40005)]
    run = run_tetherd(tmp_path, [frames], SERVICES)
    assert run.returncode == 0, run.stderr
    forwarded, answered = split(run)
    assert [(b, p[TCP].sport) for b, p in forwarded] == [
        ("b1", 40001), ("b1", 40001), ("b3", 40003), ("b3", 40003), ("b1", 40001), ("b2", 40005), ("b2", 40005)]
    assert [(p[IP].src, p[TCP].dport) for p in answered] == [(RTSP_VIP, 40002), (WEB_VIP, 40006)]
    rst = answered[0]
    assert rst[IP].src == RTSP_VIP and rst[IP].dst == CLIENT
    assert (rst[TCP].sport, rst[TCP].dport) == (554, 40002)
    assert rst[TCP].flags == "RA" and rst[TCP].seq == 0 and rst[TCP].ack == 778  # RFC 9293 3.10.7.1
    rebuilt = Ether(bytes(rst))
    del rebuilt[TCP].chksum, rebuilt[IP].chksum
    assert Ether(bytes(rebuilt))[TCP].chksum == rst[TCP].chksum
    counters = run.stats["counters"]
    assert counters["tcp_resets_sent"] == 2 and counters["refusals_dropped"] == 1
    assert counters["refused_full"] == 3
