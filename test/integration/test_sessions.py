"""Session awareness on the real tetherd: every flow of a SIP call, an RTSP session or an
FTP session reaches one backend, with 1 and 2 workers, checked on every output frame."""
import collections
import math
import random
import string
import subprocess

import pytest

from harness import BACKENDS, TETHERCTL, mac_bytes, run_tetherd, run_tetherd_live
from scapy.layers.inet import IP, UDP
from sessions import FtpSession, RtspSession, SipCall, ether, shuffle_sessions

BACKEND_BY_MAC = {mac_bytes(mac): name for name, (_addr, mac) in BACKENDS.items()}
SIP_VIP, SIP_RULES_VIP, SIP_LEAST_VIP = "192.0.2.110", "192.0.2.111", "192.0.2.112"
RTSP_VIP, FTP_VIP, FTP_RANGES_VIP = "192.0.2.120", "192.0.2.130", "192.0.2.131"
CLIENTS = ["198.51.100.10", "198.51.100.20"]
RANGES = {"b1": (40000, 40999), "b2": (41000, 41999), "b3": (42000, 42999)}

SERVICES = [
    {"name": "sip", "vip": SIP_VIP, "port": 5060, "protocol": "udp", "extra": 'dpi = "sip";',
     "weights": {"b1": 1, "b2": 2, "b3": 3}},
    {"name": "sip-rules", "vip": SIP_RULES_VIP, "port": 5060, "protocol": "udp",
     "extra": 'dpi = "sip"; pools = ( { name = "registrars"; backends = ( { name = "b3"; } ); } );'
              ' rules = ( { field = "request-line"; match = "^REGISTER "; pool = "registrars"; } );',
     "weights": {"b1": 1, "b2": 1}},
    {"name": "sip-least", "vip": SIP_LEAST_VIP, "port": 5060, "protocol": "udp",
     "extra": 'dpi = "sip"; scheduler = "least-sessions";', "weights": {"b1": 1, "b2": 1, "b3": 2}},
    {"name": "rtsp", "vip": RTSP_VIP, "port": 554, "protocol": "tcp", "extra": 'dpi = "rtsp";',
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
    {"name": "ftp", "vip": FTP_VIP, "port": 21, "protocol": "tcp", "extra": 'dpi = "ftp";',
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
    {"name": "ftp-ranges", "vip": FTP_RANGES_VIP, "port": 21, "protocol": "tcp", "extra": 'dpi = "ftp";',
     "weights": {b: f"weight = 1; passive_ports = [{lo}, {hi}];" for b, (lo, hi) in RANGES.items()}},
]


def run_phases(tmp_path, phases, workers):
    """One worker: the phases in order through a pcap. Two workers: through net_af_packet
    with qpairs=2, where the kernel spreads flows over the queues by 5-tuple hash as RSS
    does, so the flows of one session land on different workers; each phase is sent only
    after the previous one has been processed (media never overtakes its SETUP)."""
    if workers == 1:
        return run_tetherd(tmp_path, [[f for phase in phases for f in phase]], SERVICES)
    run = run_tetherd_live(tmp_path, phases, SERVICES, workers=workers)
    received = run.stats["rx_per_worker"]
    assert min(received) > 0.2 * sum(received), f"flows were not spread over workers: {received}"
    return run


def backends_by_session(run, owner_of_frame):
    """session -> set of backends its frames reached; also checks frames are unchanged."""
    reached = collections.defaultdict(set)
    for frame in run.frames:
        backend = BACKEND_BY_MAC.get(frame[:6])
        assert backend is not None, f"output to unknown MAC {frame[:6].hex(':')}"
        owner = owner_of_frame.get(frame[12:])
        assert owner is not None, "an output frame that was never sent (or was altered)"
        reached[owner].add(backend)
    return reached


def assert_one_backend_each(reached, sessions):
    split = {s: b for s, b in reached.items() if len(b) > 1}
    assert not split, f"{len(split)} sessions split over backends, e.g. {next(iter(split.items()))}"
    missing = [s for s in sessions if s not in reached]
    assert not missing, f"{len(missing)} sessions never reached a backend"


@pytest.mark.parametrize("workers", [1, 2])
def test_sip_calls_stay_on_one_backend(tmp_path, workers):
    rng = random.Random(31 + workers)
    calls = [SipCall(n, SIP_VIP, rng, CLIENTS, reinvite=n % 3 == 0) for n in range(3000)]
    groups = [c.frames() for c in calls]
    owner = {frame[12:]: c.number for c, g in zip(calls, groups) for frame in g}
    frames = shuffle_sessions(groups, rng)
    run = run_phases(tmp_path, [frames], workers)
    assert run.returncode == 0, run.stderr
    reached = backends_by_session(run, owner)
    assert_one_backend_each(reached, range(len(calls)))
    assert len(run.frames) == len(frames)
    shares = collections.Counter(next(iter(b)) for b in reached.values())
    for backend, weight in {"b1": 1, "b2": 2, "b3": 3}.items():
        assert abs(shares[backend] / len(calls) - weight / 6) < 0.03, shares
    # Messages of one call came from several source ports, so on 2 workers a call was seen
    # by both; a worker that finds the call known does not create it again.
    assert run.stats["sessions"]["sip_sessions_created"] == len(calls)
    assert run.stats["sessions"]["sip_sessions_ended"] == len(calls)
    assert run.stats["sessions"]["sip_messages_inspected"] == len(frames)
    assert sum(run.stats["dpi_fallbacks"].values()) == 0
    assert run.counter("new_flows") == 0, "SIP calls are routed by Call-ID, not as flows"


def assert_spread_by_weight(shares, weights, n):
    """Each backend's share of n sessions within 5 binomial standard deviations of its
    weight's share."""
    total = sum(weights.values())
    for backend, weight in weights.items():
        p = weight / total
        assert abs(shares[backend] / n - p) < 5 * math.sqrt(p * (1 - p) / n), (shares, weights)


CALL_ID_CHARS = string.ascii_letters + string.digits + "-.!%*_+~"


@pytest.mark.parametrize("workers", [1, 2])
def test_long_call_ids_keep_calls_whole(tmp_path, workers):
    """RFC 3261 sets no limit on a Call-ID: calls with Call-IDs of 1,000 to 1,100 bytes, each
    message from another source port (some from another client address), in every header
    form (one folded), stay on one backend, and the calls spread by weight. Half the
    Call-IDs differ only after a shared 1,000-byte prefix: the digest covers the whole value."""
    rng = random.Random(70 + workers)
    shared = "".join(rng.choice(CALL_ID_CHARS) for _ in range(1000))
    calls = []
    for n in range(600):
        if n % 2:
            call_id = f"{shared}-{n}@{CLIENTS[0]}"
        else:
            call_id = "".join(rng.choice(CALL_ID_CHARS) for _ in range(rng.randrange(1000, 1100)))
            call_id += "@" + CLIENTS[1]
        calls.append(SipCall(n, SIP_VIP, rng, CLIENTS, reinvite=n % 3 == 0, call_id=call_id,
                             sdp=False))
    groups = [c.frames() for c in calls]
    assert max(len(f) for g in groups for f in g) <= 1514  # one Ethernet frame, veth's MTU
    owner = {frame[12:]: c.number for c, g in zip(calls, groups) for frame in g}
    frames = shuffle_sessions(groups, rng)
    run = run_phases(tmp_path, [frames], workers)
    assert run.returncode == 0, run.stderr
    assert sum(run.stats["dpi_fallbacks"].values()) == 0, run.stats["dpi_fallbacks"]
    reached = backends_by_session(run, owner)
    assert_one_backend_each(reached, range(len(calls)))
    assert len(run.frames) == len(frames)
    shares = collections.Counter(next(iter(b)) for b in reached.values())
    assert_spread_by_weight(shares, {"b1": 1, "b2": 2, "b3": 3}, len(calls))
    shared_prefix = collections.Counter(next(iter(reached[c.number])) for c in calls if c.number % 2)
    assert len(shared_prefix) == 3 and min(shared_prefix.values()) > 20, shared_prefix
    counts = run.stats["sessions"]
    assert counts["sip_sessions_created"] == len(calls)
    assert counts["sip_sessions_ended"] == len(calls)
    assert counts["sip_messages_inspected"] == len(frames)


@pytest.mark.parametrize("workers", [1, 2])
def test_sip_call_ends_are_counted_once(tmp_path, workers):
    """A call ends once, however many requests end it: a retransmitted BYE, a BYE from each
    side, CANCEL then the ACK of its 487 and a BYE. Every late message still reaches the
    call's backend."""
    rng = random.Random(75 + workers)
    calls = [SipCall(n, SIP_VIP, rng, CLIENTS, bye=False) for n in range(300)]
    groups = []
    for c in calls:
        other = c.clients[(c.clients.index(c.client) + 1) % len(c.clients)]
        if c.number % 3 == 0:  # BYE, and its retransmission
            bye = c.message("BYE", 2, c.ports[3])
            group = [c.invite(), c.message("ACK", 1, c.ports[1]), bye, bye]
        elif c.number % 3 == 1:  # CANCEL (and its retransmission), ACK of the 487, a stray BYE
            cancel = c.message("CANCEL", 1, c.ports[0], in_dialog=False)
            group = [c.invite(), cancel, cancel, c.message("ACK", 1, c.ports[0]),
                     c.message("BYE", 2, c.ports[2])]
        else:  # each side sends a BYE (the callee's through another address and port)
            group = [c.invite(), c.message("ACK", 1, c.ports[1]), c.message("BYE", 2, c.ports[3]),
                     c.message("BYE", 7, c.ports[2], client=other)]
        groups.append(group)
    owner = {frame[12:]: c.number for c, g in zip(calls, groups) for frame in g}
    frames = shuffle_sessions(groups, rng)
    run = run_phases(tmp_path, [frames], workers)
    assert run.returncode == 0, run.stderr
    reached = backends_by_session(run, owner)
    assert_one_backend_each(reached, range(len(calls)))
    assert len(run.frames) == len(frames)
    counts = run.stats["sessions"]
    assert counts["sip_sessions_created"] == len(calls)
    assert counts["sip_sessions_ended"] == len(calls)
    assert counts["sip_messages_inspected"] == len(frames)


def test_content_rules_send_register_to_registrars(tmp_path):
    rng = random.Random(5)
    registers = [SipCall(n, SIP_RULES_VIP, rng, CLIENTS, method="REGISTER") for n in range(300)]
    invites = [SipCall(n, SIP_RULES_VIP, rng, CLIENTS) for n in range(300, 900)]
    calls = registers + invites
    groups = [c.frames() for c in calls]
    owner = {frame[12:]: c.number for c, g in zip(calls, groups) for frame in g}
    run = run_tetherd(tmp_path, [shuffle_sessions(groups, rng)], SERVICES)
    assert run.returncode == 0, run.stderr
    reached = backends_by_session(run, owner)
    assert_one_backend_each(reached, range(len(calls)))
    assert {b for c in registers for b in reached[c.number]} == {"b3"}
    invite_backends = collections.Counter(next(iter(reached[c.number])) for c in invites)
    assert set(invite_backends) == {"b1", "b2"}
    assert min(invite_backends.values()) > 200  # weights 1:1


def test_least_sessions_balances_live_calls_by_weight(tmp_path):
    rng = random.Random(6)
    calls = [SipCall(n, SIP_LEAST_VIP, rng, CLIENTS, bye=False) for n in range(400)]
    groups = [c.frames() for c in calls]
    owner = {frame[12:]: c.number for c, g in zip(calls, groups) for frame in g}
    run = run_tetherd(tmp_path, [[f for g in groups for f in g]], SERVICES)
    assert run.returncode == 0, run.stderr
    reached = backends_by_session(run, owner)
    assert_one_backend_each(reached, range(len(calls)))
    shares = collections.Counter(next(iter(b)) for b in reached.values())
    assert shares == {"b1": 100, "b2": 100, "b3": 200}
    assert run.stats["backends"]["b3"]["sessions"] == 200


def test_least_sessions_overflow_follows_the_consistent_hash(tmp_path):
    """least-sessions with the smallest session table: calls it refuses are not counted on
    any backend, so they go by the consistent hash over the Call-ID, as with the default
    scheduler. Every call stays whole (its ACK, re-INVITE and response follow its INVITE)
    and the calls, admitted or not, spread by weight."""
    rng = random.Random(80)
    calls = [SipCall(n, SIP_LEAST_VIP, rng, CLIENTS, reinvite=n % 3 == 0, bye=False)
             for n in range(4000)]
    groups = [c.frames() for c in calls]
    owner = {frame[12:]: c.number for c, g in zip(calls, groups) for frame in g}
    frames = shuffle_sessions(groups, rng)
    run = run_tetherd(tmp_path, [frames], SERVICES, extra_tables="sessions = 1024;")
    assert run.returncode == 0, run.stderr
    reached = backends_by_session(run, owner)
    assert_one_backend_each(reached, range(len(calls)))
    assert len(run.frames) == len(frames)
    created = run.stats["sessions"]["sip_sessions_created"]
    assert 900 < created <= 1024  # the table held about 1,024 calls ...
    assert run.stats["dpi_fallbacks"]["session_table_full"] > len(calls) - created  # ... and refused the rest
    shares = collections.Counter(next(iter(b)) for b in reached.values())
    assert_spread_by_weight(shares, {"b1": 1, "b2": 1, "b3": 2}, len(calls))


def tetherctl(socket_path, *words):
    result = subprocess.run([str(TETHERCTL), "-s", str(socket_path), *words],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("workers", [1, 2])
def test_new_call_under_an_ended_calls_call_id_is_scheduled_afresh(tmp_path, workers):
    """Calls end (BYE), b1 is drained, then each Call-ID carries a new call: an INVITE
    without a To tag. The new call is scheduled by the backends as they are now (never b1),
    counted as created, and ends on its own; a retransmission of the old BYE, sent while the
    old call lingers, still reaches the old call's backend."""
    rng = random.Random(90 + workers)
    old_calls = [SipCall(n, SIP_VIP, rng, CLIENTS, sdp=False) for n in range(120)]
    new_calls = [SipCall(1000 + n, SIP_VIP, rng, CLIENTS, sdp=False, call_id=c.call_id)
                 for n, c in enumerate(old_calls)]
    first = [[c.invite(), c.message("ACK", 1, c.ports[1]), c.message("BYE", 2, c.ports[3])]
             for c in old_calls]
    late_byes = [g[-1] for g in first]
    second = [[c.invite(), c.message("ACK", 1, c.ports[1]), c.message("BYE", 2, c.ports[3])]
              for c in new_calls]
    owner = {f[12:]: c.number for c, g in zip(old_calls + new_calls, first + second) for f in g}

    def drain_b1(sock):
        tetherctl(sock, "backend", "drain", "b1")

    # The ACK and BYE of a call come after the backend's answers, not at once with the INVITE
    # (which, on two workers, they could overtake).
    phases = [[g[0] for g in first], shuffle_sessions([g[1:] for g in first], rng), drain_b1,
              late_byes, [g[0] for g in second], shuffle_sessions([g[1:] for g in second], rng)]
    run = run_tetherd_live(tmp_path, phases, SERVICES, workers=workers)
    assert run.returncode == 0, run.stderr
    reached = backends_by_session(run, owner)
    assert_one_backend_each(reached, [c.number for c in old_calls + new_calls])
    on_b1 = [c for c in old_calls if reached[c.number] == {"b1"}]
    assert len(on_b1) > 10
    for old, new in zip(old_calls, new_calls):
        if old in on_b1:
            assert reached[new.number] != {"b1"}, "a new call held by the ended call's backend"
    counts = run.stats["sessions"]
    assert counts["sip_sessions_created"] == 2 * len(old_calls)
    assert counts["sip_sessions_ended"] == 2 * len(old_calls)
    assert sum(run.stats["dpi_fallbacks"].values()) == 0, run.stats["dpi_fallbacks"]


def session_phases(sessions, parts, rng):
    """Each session's frames for each phase (generated once: TCP sequence numbers advance),
    the frame -> session map, and the phases shuffled across sessions."""
    per_session = [[getattr(x, part)() for part in parts] for x in sessions]
    owner = {f[12:]: x.number for x, lists in zip(sessions, per_session) for lst in lists for f in lst}
    phases = [shuffle_sessions([lists[i] for lists in per_session], rng) for i in range(len(parts))]
    return owner, phases


@pytest.mark.parametrize("workers", [1, 2])
def test_rtsp_media_follows_the_control_connection(tmp_path, workers):
    rng = random.Random(40 + workers)
    sessions = [RtspSession(n, RTSP_VIP, rng, CLIENTS) for n in range(300)]
    interleaved = [RtspSession(n, RTSP_VIP, rng, CLIENTS, interleaved=True) for n in range(300, 320)]
    everyone = sessions + interleaved
    owner, phases = session_phases(everyone, ["signalling", "media", "teardown"], rng)
    # Media from a port no SETUP announced: dropped and counted.
    phases[1].append(bytes(ether() / IP(src=CLIENTS[0], dst=RTSP_VIP) / UDP(sport=4, dport=6970)
                           / b"rtp"))
    run = run_phases(tmp_path, phases, workers)
    assert run.returncode == 0, run.stderr
    reached = backends_by_session(run, owner)
    assert_one_backend_each(reached, [x.number for x in everyone])
    assert run.counter("forwarded") == sum(len(p) for p in phases) - 1
    assert run.drops("no_expectation") == 1
    counts = run.stats["sessions"]
    assert counts["rtp_expectations_created"] == 4 * len(sessions)
    assert counts["rtp_expectations_used"] == 4 * len(sessions)
    assert counts["rtsp_sessions_created"] == len(sessions)
    assert counts["rtsp_sessions_ended"] == len(sessions)
    assert sum(run.stats["dpi_fallbacks"].values()) == 0, run.stats["dpi_fallbacks"]
    shares = collections.Counter(next(iter(reached[x.number])) for x in sessions)
    assert min(shares.values()) > 60, shares


@pytest.mark.parametrize("workers", [1, 2])
def test_ftp_data_connections_follow_pasv(tmp_path, workers):
    rng = random.Random(50 + workers)
    # One client address per session: an expectation is keyed by the client address, so one
    # client's concurrent PASVs are told apart only with passive port ranges (next test).
    clients = [f"203.0.{n // 250}.{n % 250 + 1}" for n in range(400)]
    sessions = [FtpSession(n, FTP_VIP, rng, [clients[n]]) for n in range(400)]
    owner, phases = session_phases(sessions, ["signalling", "transfer", "close"], rng)
    run = run_phases(tmp_path, phases, workers)
    assert run.returncode == 0, run.stderr
    reached = backends_by_session(run, owner)
    assert_one_backend_each(reached, [x.number for x in sessions])
    assert run.counter("forwarded") == sum(len(p) for p in phases)
    counts = run.stats["sessions"]
    assert counts["ftp_data_expectations_created"] == len(sessions)
    assert counts["ftp_data_expectations_used"] == len(sessions)
    assert counts["ftp_sessions_created"] == len(sessions)
    assert counts["ftp_sessions_ended"] == len(sessions)
    assert sum(run.stats["dpi_fallbacks"].values()) == 0, run.stats["dpi_fallbacks"]


def test_ftp_data_connections_by_passive_port_range(tmp_path):
    """With the backends' passive ranges configured, a data connection goes to the backend
    owning its port, even from a client with several sessions at once."""
    rng = random.Random(60)
    sessions = [FtpSession(n, FTP_RANGES_VIP, rng, CLIENTS,
                           data_port=rng.randrange(*RANGES[f"b{n % 3 + 1}"])) for n in range(300)]
    per_session = [(x.signalling(), x.transfer(), x.close()) for x in sessions]
    data_frames = {f[12:]: f"b{x.number % 3 + 1}" for x, (_s, t, _c) in zip(sessions, per_session) for f in t}
    phases = [shuffle_sessions([p[i] for p in per_session], rng) for i in range(3)]
    run = run_tetherd(tmp_path, [[f for p in phases for f in p]], SERVICES)
    assert run.returncode == 0, run.stderr
    checked = 0
    for frame in run.frames:
        if frame[12:] in data_frames:
            assert BACKEND_BY_MAC[frame[:6]] == data_frames[frame[12:]]
            checked += 1
    assert checked == sum(len(t) for _s, t, _c in per_session)
    assert run.counter("forwarded") == sum(len(p) for p in phases)


def test_malformed_signalling_is_counted_and_survived(tmp_path):
    """Junk to SIP and RTSP services: no crash, each case counted; what is not SIP still
    reaches a backend flow by flow."""
    sip = lambda payload, sport=5060: bytes(ether() / IP(src=CLIENTS[0], dst=SIP_VIP)
                                            / UDP(sport=sport, dport=5060) / payload)
    no_call_id = (b"INVITE sip:bob@x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\nCSeq: 1 INVITE\r\n"
                  b"Content-Length: 0\r\n\r\n")
    long_call_id = (b"OPTIONS sip:bob@x SIP/2.0\r\nCall-ID: " + b"a" * 1400 +
                    b"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    huge_call_id = (b"OPTIONS sip:bob@x SIP/2.0\r\nCall-ID: " + b"b" * 10240 +
                    b"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    frames = [
        sip(bytes(range(256)) * 2),             # junk after the UDP header: not SIP
        sip(no_call_id),                        # SIP without Call-ID
        sip(long_call_id),                      # a long Call-ID: a call
        sip(huge_call_id),                      # a 10 KB frame: does not fit one mbuf
        sip(b""),                               # zero-length UDP
        sip(b"INVITE sip:bob SIP/2.0\r\nCall-ID: x\r\nContent-Length: 99\r\n\r\n"),
        sip(no_call_id)[:14 + 12],              # truncated IP header
    ]
    control = RtspSession(0, RTSP_VIP, random.Random(1), CLIENTS)
    rtsp = [control.control.syn()] + control.control.send(b"SETUP rtsp://x RTSP/1.0\r\nCSeq: x\r\n\r\n")
    frames += rtsp
    run = run_tetherd(tmp_path, [frames], SERVICES)
    assert run.returncode == 0, run.stderr
    fallbacks = {k: v for k, v in run.stats["dpi_fallbacks"].items() if v}
    # The 1,400-byte Call-ID is a call like any other (RFC 3261 sets no limit).
    assert fallbacks == {"not_sip": 2, "sip_no_call_id": 1, "sip_malformed": 1, "rtsp_malformed": 1}
    assert run.stats["sessions"]["sip_sessions_created"] == 1
    drops = {k: v for k, v in run.stats["drops"].items() if v}
    assert drops == {"multi_segment": 1, "truncated_ipv4": 1}
    assert run.counter("forwarded") == len(frames) - 2
