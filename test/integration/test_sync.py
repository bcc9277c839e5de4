"""State sync's receiving side on the real tetherd: sync messages, written by
tetherlab.sync_wire, reach the port as UDP datagrams from a peer to the port's address; the
workers hand them to the kernel interface, the kernel to tetherd's sync socket, and the
control thread applies their records to the session table. Then SIP, RTP and FTP data
packets follow what was synced rather than the consistent hash. Forged, truncated, replayed,
old-epoch and unknown-peer messages, and records naming what this instance does not run,
are rejected or refused, counted, and change no route.

Timing: a datagram crosses worker -> kernel ring -> control thread -> TAP -> kernel -> socket
-> control thread, so a SIP packet right behind it could be routed before the record is
applied. tetherd runs on a veth (run_tetherd_live) and the test waits, between the sync
phase and the traffic phase, until `show sync` counts every datagram sent: the traffic is
sent only once every record has been handled."""
import json
import os
import subprocess
import time
import uuid

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from tetherlab import sync_wire

from harness import BACKENDS, CLIENT_MAC, PORT_IPV4, PORT_MAC, TETHERCTL, mac_bytes, run_tetherd_live
from test_show import call_id_digest

SIP_VIP, RTSP_VIP, FTP_VIP = "192.0.2.150", "192.0.2.151", "192.0.2.152"
SERVICES = [  # indices 0, 1, 2: the records name them so
    {"name": "sip", "vip": SIP_VIP, "port": 5060, "protocol": "udp", "extra": 'dpi = "sip";',
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
    {"name": "rtsp", "vip": RTSP_VIP, "port": 554, "protocol": "tcp", "extra": 'dpi = "rtsp";',
     "weights": {"b1": 1, "b2": 1}},
    {"name": "ftp", "vip": FTP_VIP, "port": 21, "protocol": "tcp", "extra": 'dpi = "ftp";',
     "weights": {"b1": 1, "b2": 1}},
]
SIP, RTSP, FTP = 0, 1, 2
B1, B2, B3 = 0, 1, 2  # backend indices, in BACKENDS' order
BACKEND_BY_MAC = {mac_bytes(mac): name for name, (_addr, mac) in BACKENDS.items()}
PEER, OTHER_PEER, STRANGER = "192.0.2.3", "192.0.2.4", "192.0.2.99"
LISTEN_PORT = 7788
KEY = bytes(range(32))
SENDER = 0x0A0B0C0D
EPOCH = 1_700_000_000_000_000_000
# Call-IDs the consistent hash sends to b2 (found by the unsynced run below): synced to b3,
# and the attacks point them at b1, so each of the three outcomes is told apart.
CALL_IDS = [f"sync-call-{n}@client.example" for n in range(12)]
RTP_CLIENT, RTP_PORT = "198.51.100.30", 6970
FTP_CLIENT = "198.51.100.40"


@pytest.fixture
def namespaces():
    """Makes network namespaces of their own for tetherd (its kernel interface, the sync
    socket), one per run; removes them after the test."""
    made = []

    def make():
        made.append(f"tts-{uuid.uuid4().hex[:8]}")
        subprocess.run(["ip", "netns", "add", made[-1]], check=True)
        return made[-1]
    yield make
    for name in made:
        subprocess.run(["ip", "netns", "del", name], check=False)


def datagram(payload, source=PEER, sport=7788):
    return bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=source, dst=PORT_IPV4)
                 / UDP(sport=sport, dport=LISTEN_PORT) / payload)


def calls_to(backend, call_ids, state=sync_wire.LIVE):
    return [sync_wire.sip_call(SIP, int(call_id_digest(c), 16), backend, state) for c in call_ids]


def sync_messages(call_ids, synced=True):
    """The sync phase: the peer's valid messages (`synced`: the one with the routes), then
    every kind of attack, each pointing the calls at b1. Returns (datagrams, what the
    receiver must count)."""
    message = lambda sequence, records, key=KEY, epoch=EPOCH: sync_wire.message(  # noqa: E731
        key, SENDER, epoch, sequence, records)
    # Valid, but naming what this instance does not run as the record says: refused.
    refused = [
        sync_wire.sip_call(7, 1, B1),                     # no service 7
        sync_wire.sip_call(SIP, 1, 9),                    # no backend 9
        sync_wire.sip_call(RTSP, 1, B1),                  # rtsp tracks no SIP calls
        sync_wire.rtp_expectation(RTSP, RTP_CLIENT, RTP_PORT, B3),  # b3 is not rtsp's
        sync_wire.ftp_expectation(SIP, FTP_CLIENT, B1),   # sip is no FTP service
    ]
    routes = calls_to(B3, call_ids) + [
        sync_wire.rtp_expectation(RTSP, RTP_CLIENT, RTP_PORT, B2),
        sync_wire.ftp_expectation(FTP, FTP_CLIENT, B2),
        sync_wire.flow("198.51.100.50", SIP_VIP, 5000, 5060, 17, SIP, B1),
    ]
    first = message(1, refused)
    second = message(2, routes)
    attacks = calls_to(B1, call_ids)
    frames = [datagram(first)]
    if synced:
        frames.append(datagram(second))
        frames.append(datagram(second))  # replayed: the same datagram again
    frames += [
        datagram(message(50, attacks, epoch=EPOCH - 1)),          # an older epoch: replayed
        datagram(message(3, attacks, key=bytes(32))),              # another key: bad_mac
        datagram(message(4, attacks)[:-10]),                       # cut short: truncated
        datagram(message(5, attacks), source=STRANGER),            # no peer: unknown_peer
    ]
    expected = {
        "sync_received": len(frames),
        "sync_accepted": 2 if synced else 1,
        "sync_rejected_replayed": 2 if synced else 1,
        "sync_rejected_bad_mac": 1,
        "sync_rejected_truncated": 1,
        "sync_rejected_unknown_peer": 1,
        "sync_refused": len(refused),
        "sync_applied_sip_call": len(call_ids) if synced else 0,
        "sync_applied_rtp_expectation": 1 if synced else 0,
        "sync_applied_ftp_expectation": 1 if synced else 0,
        "sync_applied_flow": 1 if synced else 0,
        "sync_sequence_gaps": 0,
        "sync_table_full": 0,
    }
    return frames, expected


def sip_request(method, call_id, n, cseq, to_tag):
    to = f"<sip:bob@{SIP_VIP}>" + (f";tag=b{n}" if to_tag else "")
    text = (f"{method} sip:bob@{SIP_VIP} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bKsync{method}{n}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:alice@198.51.100.10>;tag=a{n}\r\n"
            f"To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Content-Length: 0\r\n\r\n")
    return bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src="198.51.100.10", dst=SIP_VIP)
                 / UDP(sport=5060, dport=5060) / text.encode())


def bye(call_id, n):
    return sip_request("BYE", call_id, n, 2, to_tag=True)


def invite(call_id, n):
    return sip_request("INVITE", call_id, n, 1, to_tag=False)


def sync_config(workdir, peers, instance=None):
    """edit_config for run_tetherd_live: a kernel interface on the port and a `sync` section,
    with the key in a file of mode 0600 in `workdir`."""
    key_file = workdir / "sync.key"
    key_file.write_text(KEY.hex() + "\n")
    os.chmod(key_file, 0o600)
    named = f' instance = "{instance}";' if instance else ""

    def edit(text):
        address = f'addresses = ["{PORT_IPV4}", '
        assert address in text
        text = text.replace(address, f'kernel = {{ name = "ts0"; }}; addresses = ["{PORT_IPV4}/24", ', 1)
        peer_list = ", ".join(f'"{p}"' for p in peers)
        return text + (f'sync = {{ port = "lan0"; listen_port = {LISTEN_PORT}; key_file = "{key_file}";'
                       f' peers = [{peer_list}];{named} }};\n')
    return edit


def traffic(call_ids):
    frames = [bye(c, n) for n, c in enumerate(call_ids)]
    frames.append(bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=RTP_CLIENT, dst=RTSP_VIP)
                        / UDP(sport=RTP_PORT, dport=30000) / b"rtp"))
    frames.append(bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=FTP_CLIENT, dst=FTP_VIP)
                        / TCP(sport=40000, dport=30001, flags="S", seq=1)))
    return frames


def show_sync(sock):
    result = subprocess.run([str(TETHERCTL), "-s", str(sock), "--json", "show", "sync"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def run(workdir, namespace, call_ids, synced):
    frames, expected = sync_messages(call_ids, synced)
    edit = sync_config(workdir, [PEER, OTHER_PEER], "test-b")
    answers = {}

    def handled(sock):
        """Waits until the receiver has read every datagram of the sync phase."""
        deadline = time.monotonic() + 20
        while True:
            answer = show_sync(sock)
            if answer["counters"]["sync_received"] >= len(frames) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        answers["after_sync"] = answer

    def after_traffic(sock):
        answers["end"] = show_sync(sock)
        listing = subprocess.run([str(TETHERCTL), "-s", str(sock), "show", "sync"],
                                 capture_output=True, text=True, timeout=10)
        answers["text"] = listing.stdout

    result = run_tetherd_live(workdir, [frames, handled, traffic(call_ids), after_traffic], SERVICES,
                              namespace=namespace, edit_config=edit)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, answers, expected


def routes(result, call_ids):
    """The backend each BYE, the RTP packet and the FTP data SYN went to (None: not sent on)."""
    seen = {}
    for frame in result.frames:
        packet = Ether(frame)
        backend = BACKEND_BY_MAC.get(frame[:6])
        if backend is None or IP not in packet:
            continue
        if UDP in packet and packet[UDP].dport == 5060 and b"BYE" in bytes(packet[UDP].payload):
            call_id = bytes(packet[UDP].payload).split(b"Call-ID: ")[1].split(b"\r\n")[0].decode()
            seen[call_id] = backend
        elif UDP in packet and packet[IP].src == RTP_CLIENT:
            seen["rtp"] = backend
        elif TCP in packet and packet[IP].src == FTP_CLIENT:
            seen["ftp"] = backend
    return [seen.get(c) for c in call_ids], seen.get("rtp"), seen.get("ftp")


def test_synced_sessions_route_traffic_and_attacks_change_nothing(tmp_path, namespaces):
    # Without the peer's routes: the calls go by the consistent hash and the related flows
    # have no expectation. The attacks pointed every call at b1: those the hash gives b2
    # stayed there.
    (tmp_path / "control").mkdir()
    control, control_answers, control_expected = run(tmp_path / "control", namespaces(), CALL_IDS, synced=False)
    by_hash, rtp, ftp = routes(control, CALL_IDS)
    assert None not in by_hash, by_hash
    assert rtp is None and ftp is None
    for name, value in control_expected.items():
        assert control_answers["end"]["counters"][name] == value, (name, control_answers["end"]["counters"])
    # The calls whose hash is b2: synced to b3, the attacks say b1.
    call_ids = [c for c, b in zip(CALL_IDS, by_hash) if b == "b2"]
    assert len(call_ids) >= 3, by_hash

    (tmp_path / "synced").mkdir()
    synced, answers, expected = run(tmp_path / "synced", namespaces(), call_ids, synced=True)
    calls, rtp, ftp = routes(synced, call_ids)
    assert calls == ["b3"] * len(call_ids)
    assert rtp == "b2" and ftp == "b2"
    counters = answers["end"]["counters"]
    for name, value in expected.items():
        assert counters[name] == value, (name, counters)
    for name, value in counters.items():  # nothing rejected that the test did not send
        if name.startswith("sync_rejected_") and name not in expected:
            assert value == 0, (name, counters)

    # show sync: both peers, the one heard from with its sender, epoch and sequence
    peers = answers["end"]["peers"]
    assert [p["address"] for p in peers] == [PEER, OTHER_PEER]
    assert peers[0]["sender"] == SENDER and peers[0]["epoch"] == EPOCH and peers[0]["last_sequence"] == 2
    assert peers[0]["accepted"] == 2 and peers[0]["last_message_age_ms"] >= 0
    assert peers[1]["sender"] is None and peers[1]["accepted"] == 0
    assert answers["end"]["listen"] == f"{PORT_IPV4}:{LISTEN_PORT}" and answers["end"]["instance"] == "test-b"
    assert "LAST SEQUENCE" in answers["text"] and PEER in answers["text"]
    # and the stats file, in the sync section
    for name, value in expected.items():
        assert synced.stats["sync"][name] == value, (name, synced.stats["sync"])


def ftp_control(client, sport):
    """An FTP control connection's first three packets, the third a PASV: the flow reaches
    the sync threshold (3) on it, and the PASV makes an expectation."""
    base = Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=client, dst=FTP_VIP)
    return [bytes(base / TCP(sport=sport, dport=21, flags="S", seq=100)),
            bytes(base / TCP(sport=sport, dport=21, flags="A", seq=101, ack=1)),
            bytes(base / TCP(sport=sport, dport=21, flags="PA", seq=101, ack=1) / b"PASV\r\n")]


def answer_arp_for(*addresses):
    """respond() for run_tetherd_live: the peers answer the kernel's ARP for them."""
    from scapy.layers.l2 import ARP

    def respond(frame):
        packet = Ether(frame)
        if ARP in packet and packet[ARP].op == 1 and packet[ARP].pdst in addresses:
            return bytes(Ether(src=CLIENT_MAC, dst=packet.src)
                         / ARP(op=2, hwsrc=CLIENT_MAC, psrc=packet[ARP].pdst, hwdst=packet.src,
                               pdst=packet[ARP].psrc))
        return None
    return respond


def wait_for(sock, done, what, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        answer = show_sync(sock)
        if done(answer["counters"]):
            return answer
        assert time.monotonic() < deadline, (what, answer["counters"])
        time.sleep(0.1)


def test_tetherd_sends_its_sessions_and_flows_and_a_bulk_dump_on_request(tmp_path, namespaces):
    """The sending side, read back from the wire: tetherd asks its peer for a bulk dump when
    it starts; reports a SIP call placed and ended, an FTP control connection once it passed
    the flow threshold, and the PASV's expectation; and answers the peer's bulk request with
    everything live, then bulk_end. Every message carries a valid tag, one epoch, and rising
    sequence numbers to each peer; the dump of the session table goes to the asker alone."""
    edit = sync_config(tmp_path, [PEER, OTHER_PEER], "test-a")
    call_id = "sent-call-1@client.example"
    options_id = "sent-options-1@client.example"  # a transaction outside any call
    ftp_client, ftp_port = "198.51.100.41", 40021

    def sessions_sent(sock):
        wait_for(sock, lambda c: c["sync_sent_sip_call"] >= 3 and c["sync_sent_flow"] >= 1
                 and c["sync_sent_ftp_expectation"] >= 1, "session changes sent")

    request = sync_wire.message(KEY, SENDER, EPOCH, 1, kind=sync_wire.BULK_REQUEST)
    answers = {}

    def dumped(sock):
        answers["end"] = wait_for(sock, lambda c: c["sync_bulk_dumps_sent"] >= 1, "bulk dump sent")

    # Placed, refreshed by a request inside the call (not by its ACK), ended.
    call = [invite(call_id, 1), sip_request("ACK", call_id, 1, 1, to_tag=True),
            sip_request("UPDATE", call_id, 1, 2, to_tag=True), bye(call_id, 1)]
    phases = [call + [sip_request("OPTIONS", options_id, 2, 1, to_tag=False)] + ftp_control(ftp_client, ftp_port),
              sessions_sent,
              [datagram(request)], dumped]
    result = run_tetherd_live(tmp_path, phases, SERVICES, namespace=namespaces(), edit_config=edit,
                              respond=answer_arp_for(PEER, OTHER_PEER))
    assert result.returncode == 0, result.stderr[-3000:]

    to = {PEER: [], OTHER_PEER: []}
    for frame in result.frames:
        packet = Ether(frame)
        if UDP in packet and packet[UDP].dport == LISTEN_PORT and packet[IP].dst in to:
            assert packet[IP].src == PORT_IPV4 and packet[UDP].sport == LISTEN_PORT
            to[packet[IP].dst].append(sync_wire.read(bytes(packet[UDP].payload), KEY))
    assert to[PEER] and to[OTHER_PEER], "no sync message reached a peer"
    headers = [h for messages in to.values() for h, _ in messages]
    assert len({h["epoch"] for h in headers}) == 1 and len({h["sender"] for h in headers}) == 1
    for messages in to.values():
        # Each peer its own sequence numbers, from 1 without a gap; the first message asks it
        # for its state.
        assert [h["sequence"] for h, _ in messages] == list(range(1, len(messages) + 1))
        assert messages[0][0]["kind"] == sync_wire.BULK_REQUEST

    digest = int(call_id_digest(call_id), 16)
    records = {peer: [r for _, rs in messages for r in rs] for peer, messages in to.items()}
    live = records[OTHER_PEER]  # the other peer gets the changes, and the dump's flows alone
    calls = [r for r in live if r["type"] == "sip_call" and r["digest"] == digest]
    assert [c["state"] for c in calls] == [sync_wire.LIVE, sync_wire.LIVE, sync_wire.ENDED], calls
    assert all(c["holds_call"] for c in calls), calls
    # The OPTIONS is kept for its responses and synced, but it is no call: its peers must not
    # count it against max_sessions or in least-sessions.
    options_digest = int(call_id_digest(options_id), 16)
    options = [r for r in live if r["type"] == "sip_call" and r["digest"] == options_digest]
    assert [(o["state"], o["holds_call"]) for o in options] == [(sync_wire.LIVE, False)], options
    assert calls[0]["service"] == SIP and calls[0]["backend"] == calls[1]["backend"] == calls[2]["backend"]
    flows = [r for r in live if r["type"] == "flow" and r["client"] == ftp_client]
    assert len(flows) == 2, flows  # past the threshold, and again in the dump (a refresh)
    assert flows[0]["client_port"] == ftp_port and flows[0]["vip"] == FTP_VIP
    assert flows[0]["vip_port"] == 21 and flows[0]["protocol"] == 6 and flows[0]["service"] == FTP
    expectations = [r for r in live if r["type"] == "ftp_expectation" and r["client"] == ftp_client]
    assert len(expectations) == 1 and expectations[0]["state"] == sync_wire.LIVE, expectations
    assert expectations[0]["backend"] == flows[0]["backend"]  # the data goes where the control went
    assert sync_wire.BULK_END not in [h["kind"] for h, _ in to[OTHER_PEER]]

    # The asker gets the same changes, then the dump of the session table (the lingering
    # call, the expectation again) and bulk_end, last.
    asked = records[PEER]
    assert [r["state"] for r in asked if r["type"] == "sip_call" and r["digest"] == digest] == \
        [sync_wire.LIVE, sync_wire.LIVE, sync_wire.ENDED, sync_wire.ENDED]
    # The change and the dump's copy: a transaction both times.
    assert [r["holds_call"] for r in asked if r["type"] == "sip_call" and r["digest"] == options_digest] == \
        [False, False]
    assert len([r for r in asked if r["type"] == "ftp_expectation" and r["client"] == ftp_client]) == 2
    assert len([r for r in asked if r["type"] == "flow" and r["client"] == ftp_client]) == 2
    kinds = [h["kind"] for h, _ in to[PEER]]
    assert kinds.count(sync_wire.BULK_END) == 1, kinds
    # After it, only its own requests, repeated every 2 s until the peer sends a dump, and
    # its health view, repeated every second (records of no other type).
    after = to[PEER][kinds.index(sync_wire.BULK_END) + 1:]
    assert {h["kind"] for h, rs in after if any(r["type"] != "backend_health" for r in rs)} <= \
        {sync_wire.BULK_REQUEST}, kinds
    # The dump ends with the health view: the asker knows this instance's verdicts on bulk_end.
    end = kinds.index(sync_wire.BULK_END)
    last_of_dump = to[PEER][end - 1][1] + to[PEER][end][1]
    assert [r["backend"] for r in last_of_dump if r["type"] == "backend_health"] == [B1, B2, B3], last_of_dump
    counters = answers["end"]["counters"]
    assert counters["sync_bulk_requests_received"] == 1 and counters["sync_send_failed"] == 0, counters
    assert result.stats["counters"]["sync_events_lost"] == 0
    assert result.stats["counters"]["sync_events"] >= 4


WEB_VIP, DNS_VIP = "192.0.2.153", "192.0.2.154"
L4_SERVICES = SERVICES + [  # indices 3 and 4
    {"name": "web", "vip": WEB_VIP, "port": 80, "protocol": "tcp", "extra": "",
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
    {"name": "dns", "vip": DNS_VIP, "port": 53, "protocol": "udp", "extra": "",
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
]
WEB, DNS = 3, 4


def test_a_peers_flows_place_packets_that_miss_the_flow_table(tmp_path, namespaces):
    """Flows a peer synced, each to a chosen backend: their next packets (an ACK, a
    datagram) go there, whatever the consistent hash says; a SYN on a synced 5-tuple opens
    a new connection and is scheduled afresh; a flow record for a port the service does not
    serve is refused."""
    edit = sync_config(tmp_path, [PEER])
    client = "198.51.100.60"
    chosen = ["b1", "b2", "b3", "b1", "b2", "b3"]
    index = {"b1": B1, "b2": B2, "b3": B3}
    records = [sync_wire.flow(client, WEB_VIP, 41000 + n, 80, 6, WEB, index[b]) for n, b in enumerate(chosen)]
    records += [sync_wire.flow(client, DNS_VIP, 42000 + n, 53, 17, DNS, index[b]) for n, b in enumerate(chosen)]
    records.append(sync_wire.flow(client, WEB_VIP, 41006, 80, 6, WEB, B1))  # only a SYN will come
    records.append(sync_wire.flow(client, WEB_VIP, 43000, 81, 6, WEB, B1))  # web is port 80 only
    sync = [datagram(sync_wire.message(KEY, SENDER, EPOCH, 1, records))]

    def applied(sock):
        wait_for(sock, lambda c: c["sync_applied_flow"] + c["sync_refused"] >= len(records), "flows applied")

    traffic = [bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=client, dst=WEB_VIP)
                     / TCP(sport=41000 + n, dport=80, flags="A", seq=5000, ack=7000)) for n in range(6)]
    traffic += [bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=client, dst=DNS_VIP)
                      / UDP(sport=42000 + n, dport=53) / b"query") for n in range(6)]
    # A SYN opens a new connection on a synced 5-tuple: the synced flow is not looked up.
    syn = [bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=client, dst=WEB_VIP)
                 / TCP(sport=41006, dport=80, flags="S", seq=1))]
    result = run_tetherd_live(tmp_path, [sync, applied, traffic, syn], L4_SERVICES, namespace=namespaces(),
                              edit_config=edit, respond=answer_arp_for(PEER))
    assert result.returncode == 0, result.stderr[-3000:]
    went = {}
    for frame in result.frames:
        packet = Ether(frame)
        backend = BACKEND_BY_MAC.get(frame[:6])
        if backend is None or IP not in packet or packet[IP].src != client:
            continue
        layer = TCP if TCP in packet else UDP
        went[(layer.__name__, packet[layer].sport)] = backend
    assert [went.get(("TCP", 41000 + n)) for n in range(6)] == chosen, went
    assert [went.get(("UDP", 42000 + n)) for n in range(6)] == chosen, went
    assert ("TCP", 41006) in went  # the SYN was forwarded, by the hash
    counters = result.stats["counters"]
    assert counters["flows_from_sync"] == 12, counters
    assert result.stats["sync"]["sync_applied_flow"] == 13 and result.stats["sync"]["sync_refused"] == 1
