"""IP fragments through the real tetherd: every fragment of a datagram reaches the backend its
first fragment went to, byte for byte but for the MACs, whatever their order and whichever
worker each lands on; a SIP datagram whose Call-ID is beyond its first fragment is
reassembled and routed by its Call-ID; and the attacks RFC 1858, 3128 and 5722 describe, and
a flood of fragments whose first never comes, are dropped under their counters, bounded,
without harming the rest. Two tetherd runs: the routes (two workers), then the attacks."""
import collections
import random

from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether

from harness import BACKENDS, CLIENT_MAC, PORT_MAC, mac_bytes, run_tetherd

BACKEND_BY_MAC = {mac_bytes(mac): name for name, (_addr, mac) in BACKENDS.items()}
ETHER = Ether(src=CLIENT_MAC, dst=PORT_MAC)
VIP_WEB = "192.0.2.100"
VIP_UDP = "192.0.2.101"
VIP_SIP = "192.0.2.102"
VIP6 = "2001:db8::100"
WEIGHTS = {"b1": 1, "b2": 1, "b3": 1}
SERVICES = [
    {"name": "web", "vip": VIP_WEB, "port": 80, "protocol": "tcp", "weights": WEIGHTS},
    {"name": "media", "vip": VIP_UDP, "port": 5004, "protocol": "udp", "weights": WEIGHTS},
    {"name": "voice", "vip": VIP_SIP, "port": 5060, "protocol": "udp", "weights": WEIGHTS,
     "extra": 'dpi = "sip";'},
    {"name": "media6", "vip": VIP6, "port": 5004, "protocol": "udp", "weights": WEIGHTS},
]
# Held fragments time out within the run (idle exit after 1 s).
FRAGMENTS = "fragments = { timeout = 0.2; buffer_per_worker = 64; per_source = 16; };"


def datagram(n, ipv6=False, size=3000, tcp=False, vip=None):
    """Client n's datagram to a service, with identification 1000 + n."""
    payload = bytes(random.Random(n).randrange(256) for _ in range(size))
    if ipv6:
        return IPv6(src="2001:db8:c::%x" % (n + 1), dst=vip or VIP6) / IPv6ExtHdrFragment(id=1000 + n) \
            / UDP(sport=20000 + n, dport=5004) / payload
    l4 = TCP(sport=20000 + n, dport=80, flags="PA") if tcp else UDP(sport=20000 + n, dport=5004)
    return IP(src="198.51.100.%d" % (n + 1), dst=vip or (VIP_WEB if tcp else VIP_UDP), id=1000 + n) / l4 / payload


def pieces(packet, size=1000):
    """The datagram's fragments as frames, in order."""
    parts = fragment6(packet, size + 48) if IPv6 in packet else fragment(packet, size)
    return [bytes(ETHER / part) for part in parts]


def backend_of(frame, sent):
    """Forwarded as DSR forwards: the backend's MAC, the port's, every other byte as sent."""
    assert frame[6:12] == mac_bytes(PORT_MAC)
    assert frame[12:] in sent, "a forwarded frame differs from every frame sent"
    return BACKEND_BY_MAC[frame[:6]]


def datagram_id(frame):
    packet = Ether(frame)
    return packet[IPv6ExtHdrFragment].id if IPv6ExtHdrFragment in packet else packet[IP].id


def sip_invite(call, filler=1500, fill="f"):
    """An INVITE whose Call-ID comes after `filler` bytes of headers (of `fill`): in its third
    fragment."""
    headers = "".join(f"X-Filler-{i}: {fill * 60}\r\n" for i in range(filler // 75))
    return (f"INVITE sip:bob@{VIP_SIP} SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.200:5070;branch=z9hG4bK{call}\r\n"
            f"From: <sip:alice@example.com>;tag={call}a\r\nTo: <sip:bob@example.com>\r\n{headers}"
            f"Call-ID: call-{call}@example.com\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()


def sip_bye(call):
    return (f"BYE sip:bob@{VIP_SIP} SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.200:5071;branch=z9hG4bKb{call}\r\n"
            f"From: <sip:alice@example.com>;tag={call}a\r\nTo: <sip:bob@example.com>;tag=b\r\n"
            f"Call-ID: call-{call}@example.com\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n").encode()


def test_fragments_follow_their_first_fragment(tmp_path):
    """In order, reversed, interleaved, IPv4 and IPv6, TCP and UDP, and across two workers
    (the first fragment on one queue, the rest on the other, both ways round): every datagram
    whole on one backend. And SIP INVITEs, all from one client port, whose Call-ID is in their
    third fragment: reassembled, placed by Call-ID (over several backends), their BYEs following."""
    queue0, queue1, sent = [], [], set()
    datagrams = {}

    def add(queue, frames, n):
        queue.extend(frames)
        sent.update(f[12:] for f in frames)
        datagrams[1000 + n] = len(frames)

    add(queue0, pieces(datagram(0)), 0)                      # in order
    add(queue0, pieces(datagram(1))[::-1], 1)                # reversed
    a, b = pieces(datagram(2)), pieces(datagram(3))          # interleaved, b's last first
    interleaved = [b[-1], a[0], b[0], a[2], b[1], a[1]] + a[3:] + b[2:-1]
    add(queue0, interleaved, 2)
    datagrams[1002], datagrams[1003] = len(a), len(b)
    add(queue0, pieces(datagram(4, ipv6=True)), 4)           # IPv6 in order
    add(queue0, pieces(datagram(5, ipv6=True))[::-1], 5)     # IPv6 reversed
    add(queue0, pieces(datagram(6, tcp=True)), 6)            # a TCP segment
    for n in (7, 8):                                         # across workers
        first, *rest = pieces(datagram(n, ipv6=(n == 8)))
        queue0.append(first)
        queue1.extend(rest)
        sent.update(f[12:] for f in [first, *rest])
        datagrams[1000 + n] = 1 + len(rest)
    first, *rest = pieces(datagram(9))
    queue1.append(first)
    queue0.extend(rest[::-1])
    sent.update(f[12:] for f in [first, *rest])
    datagrams[1009] = 1 + len(rest)

    calls = range(12)
    invites = {}
    for call in calls:
        packet = IP(src="198.51.100.200", dst=VIP_SIP, id=3000 + call) / UDP(sport=5070, dport=5060) / sip_invite(call)
        invites[3000 + call] = pieces(packet, 576)
        assert len(invites[3000 + call]) >= 3
        queue0.extend(invites[3000 + call][::-1] if call % 2 else invites[3000 + call])
        sent.update(f[12:] for f in invites[3000 + call])
    byes = [bytes(ETHER / IP(src="198.51.100.201", dst=VIP_SIP, id=4000 + call)
                  / UDP(sport=5071, dport=5060) / sip_bye(call)) for call in calls]
    # A burst's worth of frames for another station keeps the BYEs out of the INVITEs' bursts.
    others = [bytes(Ether(src=CLIENT_MAC, dst="02:00:00:00:99:99") / IP(dst=VIP_SIP) / UDP())] * 64
    queue0.extend(others + byes)
    sent.update(f[12:] for f in byes)

    run = run_tetherd(tmp_path, [queue0, queue1], SERVICES, workers=2, extra=FRAGMENTS)
    assert run.returncode == 0, run.stderr
    backends = collections.defaultdict(list)
    for frame in run.frames:
        backends[datagram_id(frame)].append(backend_of(frame, sent))
    for ident, count in datagrams.items():
        assert len(backends[ident]) == count, (ident, backends[ident])
        assert len(set(backends[ident])) == 1, (ident, backends[ident])
    placed = {}
    for call in calls:
        assert len(backends[3000 + call]) == len(invites[3000 + call])
        assert len(set(backends[3000 + call])) == 1
        placed[call] = backends[3000 + call][0]
        assert backends[4000 + call] == [placed[call]], call  # the BYE follows its call
    assert len(set(placed.values())) >= 2, placed  # by Call-ID, not by their one flow
    assert run.counter("fragments_reassembled") == len(calls)
    assert run.stats["sessions"]["sip_sessions_created"] == len(calls)
    followed = sum(datagrams.values()) - len(datagrams) + sum(len(f) - 1 for f in invites.values())
    assert run.counter("fragments_followed") == followed
    assert run.counter("forwarded") == len(sent)
    assert sum(run.stats["drops"].values()) == 64  # the frames for another station only


def raw_fragment(n, offset, data, more, proto=17, ident=None):
    """A hand-made IPv4 fragment of client n's datagram: `offset` in bytes."""
    return bytes(ETHER / IP(src="198.51.100.%d" % (n + 1), dst=VIP_UDP if proto == 17 else VIP_WEB,
                            id=ident if ident is not None else 1000 + n, proto=proto,
                            flags="MF" if more else 0, frag=offset // 8) / data)


def test_fragment_attacks_are_dropped_and_counted(tmp_path):
    """Overlaps (RFC 5722: the whole datagram goes), a tiny first fragment (RFC 1858), a TCP
    fragment at offset 8 (RFC 3128), then a flood of fragments whose first never comes, from
    one source and from many: bounded by per_source and the buffer, timed out, counted; the
    flows and a fragmented datagram sent after the flood all get through."""
    frames = []
    # An overlap after the first two fragments were forwarded: the rest of the datagram goes.
    whole = pieces(datagram(20))
    frames += whole[:2] + [raw_fragment(20, 1496, b"o" * 504, True)] + whole[2:3]
    # An overlap among fragments held before their first: all of the datagram goes.
    held = pieces(datagram(21))
    frames += [held[3], raw_fragment(21, 2992, b"o" * 16, True)] + held[2::-1]
    # A tiny first fragment: 16 of the TCP header's 20 bytes; its next piece waits, times out.
    segment = bytes(TCP(sport=20022, dport=80, flags="PA")) + b"d" * 24
    frames += [raw_fragment(22, 0, segment[:16], True, proto=6), raw_fragment(22, 16, segment[16:], False, proto=6)]
    # A TCP fragment at offset 8: only meant to rewrite the ports and flags.
    frames += [raw_fragment(23, 8, b"x" * 16, False, proto=6)]
    # The flood: one source, then many.
    frames += [raw_fragment(249, 800, b"f" * 80, True, ident=5000 + i) for i in range(200)]
    frames += [bytes(ETHER / IP(src="10.0.%d.%d" % (i // 200, i % 200 + 1), dst=VIP_UDP, id=6000 + i,
                                flags="MF", frag=100) / (b"f" * 80)) for i in range(100)]
    # Nothing else is harmed.
    flows = [bytes(ETHER / IP(src="198.51.100.%d" % (100 + i), dst=VIP_UDP) / UDP(sport=30000 + i, dport=5004)
                   / b"after the flood") for i in range(20)]
    after = pieces(datagram(30))
    frames += flows + after

    run = run_tetherd(tmp_path, [frames], SERVICES, extra=FRAGMENTS)
    assert run.returncode == 0, run.stderr
    by_datagram = collections.Counter(datagram_id(f) for f in run.frames if UDP not in Ether(f)
                                      or Ether(f)[IP].flags.MF or Ether(f)[IP].frag)
    assert by_datagram[1020] == 2 and by_datagram[1021] == 0 and by_datagram[1022] == 0
    assert by_datagram[1030] == len(after)
    assert len(run.frames) == 2 + len(flows) + len(after)
    assert run.drops("fragment_overlap") == 2 + 5 + 1
    assert run.drops("fragment_tiny") == 1
    assert run.drops("fragment_source_limit") == 200 - 16
    assert run.drops("fragment_buffer_full") == 100 - (64 - 16 - 1)
    assert run.drops("fragment_timeout") == 64
    assert run.counter("fragments_held") == 1 + 1 + 64 - 1
    assert run.counter("forwarded") == len(run.frames)


def test_sip_reassembly_across_workers(tmp_path):
    """SIP INVITEs whose Call-ID is in their third fragment, the first fragment on one worker's
    queue and the rest on the other's, both ways round, in order and reversed, and in both
    orders in time (a burst of frames for another station holds back one queue's last calls:
    the second half's even calls' pieces come before their first fragment, the odd calls'
    after it): the worker that got the first fragment reassembles, the other hands it its
    pieces through its ring, and every fragment reaches the Call-ID's backend (where the
    call's BYE goes) byte for byte."""
    queues, sent, invites = ([], []), set(), {}
    others = [bytes(Ether(src=CLIENT_MAC, dst="02:00:00:00:99:99") / IP(dst=VIP_SIP) / UDP())] * 64
    calls = range(100, 112)
    for call in calls:
        if call == 106:
            queues[0].extend(others)
        packet = IP(src="198.51.100.200", dst=VIP_SIP, id=3000 + call) / UDP(sport=5070, dport=5060) / sip_invite(call)
        first, *rest = pieces(packet, 576)
        assert len(rest) >= 2
        invites[3000 + call] = [first, *rest]
        sent.update(f[12:] for f in [first, *rest])
        owner = call % 2
        queues[owner].append(first)
        queues[1 - owner].extend(rest if call % 4 < 2 else rest[::-1])
    byes = [bytes(ETHER / IP(src="198.51.100.201", dst=VIP_SIP, id=4000 + call)
                  / UDP(sport=5071, dport=5060) / sip_bye(call)) for call in calls]
    queues[0].extend(others + byes)
    sent.update(f[12:] for f in byes)

    # A worker may hold every call's pieces from the one client at once.
    run = run_tetherd(tmp_path, list(queues), SERVICES, workers=2, extra=FRAGMENTS.replace("per_source = 16", "per_source = 64"))
    assert run.returncode == 0, run.stderr
    backends = collections.defaultdict(list)
    for frame in run.frames:
        backends[datagram_id(frame)].append(backend_of(frame, sent))
    placed = {}
    for call in calls:
        assert len(backends[3000 + call]) == len(invites[3000 + call]), (call, backends[3000 + call])
        assert len(set(backends[3000 + call])) == 1, (call, backends[3000 + call])
        placed[call] = backends[3000 + call][0]
        assert backends[4000 + call] == [placed[call]], call  # the Call-ID's backend
    assert len(set(placed.values())) >= 2, placed
    assert run.counter("fragments_reassembled") == len(calls)
    assert run.counter("fragments_handed") == sum(len(f) - 1 for f in invites.values())
    # Every fragment waited once, whether held on the worker that handed it or on the owner.
    assert run.counter("fragments_held") == sum(len(f) for f in invites.values())
    assert run.counter("forwarded") == len(sent)
    assert sum(run.stats["drops"].values()) == 2 * len(others)


def test_identification_used_again_after_its_datagram_completed(tmp_path):
    """IP IDs reused within the fragment timeout once their datagram went through whole: a new
    first fragment starts a new datagram, routed afresh (by its own flow, or its Call-ID), and
    a later fragment that comes first waits for its own first fragment; IPv4 and IPv6. While a
    datagram is not complete, a piece overlapping it still refuses it (RFC 5722); and a late
    copy of a complete datagram's piece is never forwarded."""
    frames, expected = [], collections.Counter()

    def reused(n, sport, ipv6=False, reverse=False):
        """Client 40's datagram under identification 7040 (7041 for IPv6), from `sport`."""
        payload = bytes(random.Random(sport).randrange(256) for _ in range(2500))
        if ipv6:
            packet = IPv6(src="2001:db8:c::40", dst=VIP6) / IPv6ExtHdrFragment(id=7041) \
                / UDP(sport=sport, dport=5004) / payload
        else:
            packet = IP(src="198.51.100.40", dst=VIP_UDP, id=7040) / UDP(sport=sport, dport=5004) / payload
        parts = pieces(packet)
        return parts[::-1] if reverse else parts

    datagrams = []  # (frames, ipv6): each must reach one backend whole
    for i in range(6):
        datagrams.append((reused(40, 21000 + i, reverse=i % 2 == 1), False))
    for i in range(3):
        datagrams.append((reused(40, 22000 + i, ipv6=True, reverse=i == 1), True))
    for parts, _ipv6 in datagrams:
        frames += parts
    # A late copy of the last datagram's middle piece: held as a new datagram's, timed out.
    frames.append(datagrams[-1][0][1])
    # Not complete: a second first fragment overlaps, and refuses the datagram (v4 and v6).
    v4, v6 = pieces(datagram(41)), pieces(datagram(42, ipv6=True))
    frames += [v4[0], v4[1], pieces(datagram(41))[0], v4[2]]
    frames += [v6[0], v6[1], v6[0], v6[2]]
    # A SIP datagram reassembled, then another under its identification: reassembled too,
    # each placed by its own Call-ID.
    invites = [pieces(IP(src="198.51.100.200", dst=VIP_SIP, id=3500) / UDP(sport=5070, dport=5060)
                      / sip_invite(call, fill=fill), 576) for call, fill in ((200, "a"), (201, "b"), (202, "c"))]
    for invite in invites:
        frames += invite
    byes = [bytes(ETHER / IP(src="198.51.100.201", dst=VIP_SIP, id=4200 + call)
                  / UDP(sport=5071, dport=5060) / sip_bye(call)) for call in (200, 201, 202)]
    frames += byes
    sent = {f[12:] for f in frames}

    run = run_tetherd(tmp_path, [frames], SERVICES, extra=FRAGMENTS)
    assert run.returncode == 0, run.stderr
    out = [(f, backend_of(f, sent)) for f in run.frames]
    by_frame = collections.defaultdict(list)
    for frame, backend in out:
        by_frame[frame[12:]].append(backend)
    chosen = []
    for parts, _ipv6 in datagrams:
        places = [b for part in parts for b in by_frame[part[12:]]]
        assert len(places) == len(parts), places  # each piece once (the late copy: never)
        assert len(set(places)) == 1, places
        chosen.append(places[0])
    assert len(set(chosen)) >= 2, chosen  # each datagram by its own flow, not its first's route
    for frame in v4[:2] + v6[:2]:
        assert len(by_frame[frame[12:]]) == 1
    for frame in v4[2:] + v6[2:]:
        assert by_frame[frame[12:]] == []
    for invite, bye in zip(invites, byes):
        places = [b for part in invite for b in by_frame[part[12:]]]
        assert len(places) == len(invite) and len(set(places)) == 1, places
        assert by_frame[bye[12:]] == [places[0]]  # the Call-ID's backend
    assert run.counter("fragment_ids_reused") == 5 + 2 + 2
    assert run.counter("fragments_reassembled") == 3
    assert run.drops("fragment_overlap") == 2 * 2
    assert run.drops("fragment_timeout") == 1
    assert sum(run.stats["drops"].values()) == 2 * 2 + 1
    # The table's size, as `show counters` gives it: 8192 datagrams (the default), 1 KB each.
    assert run.stats["memory"]["fragment_table_entries"] == 8192
    assert run.stats["memory"]["fragment_table_bytes"] > 8192 * 1024
