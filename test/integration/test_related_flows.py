"""Related flows on the real tetherd: RTP/RTCP and FTP data connections follow the session
that announced them, and end with it.

- Port reuse: a client that tears an RTSP session down and sets up a new one from the same
  client ports (on another control connection, so possibly another backend) sends its new
  media on the old UDP 5-tuples; an FTP client whose data connection reuses the source port
  of a closed one, to the same passive port. The new session's backend must win over the
  old flow entry, and media after TEARDOWN without a new SETUP is dropped.
- Several FTP sessions behind one address (NAT): every control connection's PASV waits for
  its own data connection, matched in the order the PASVs came, up to the per-address bound.
"""
import collections
import json
import random
import subprocess
import time

import pytest
from scapy.layers.inet import IP, UDP

from harness import BACKENDS, TETHERCTL, mac_bytes, run_tetherd, run_tetherd_live
from sessions import FtpSession, RtspSession, TcpConnection, ether

BACKEND_BY_MAC = {mac_bytes(mac): name for name, (_addr, mac) in BACKENDS.items()}
RTSP_VIP, FTP_VIP, FILLER_VIP = "192.0.2.160", "192.0.2.161", "192.0.2.162"
SERVICES = [
    {"name": "rtsp", "vip": RTSP_VIP, "port": 554, "protocol": "tcp", "extra": 'dpi = "rtsp";',
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
    {"name": "ftp", "vip": FTP_VIP, "port": 21, "protocol": "tcp", "extra": 'dpi = "ftp";',
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
    {"name": "filler", "vip": FILLER_VIP, "port": 9, "protocol": "udp",
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
]
EXPECTATIONS_PER_CLIENT = 16  # dataplane/session_table.hpp kFtpExpectationsPerClient


def filler(count=130):
    """Datagrams to a plain service: with one worker reading a pcap in bursts of 64, what
    comes after them is read in a later loop, with a later clock."""
    return [bytes(ether() / IP(src="198.18.0.1", dst=FILLER_VIP) / UDP(sport=1000 + i, dport=9)
                  / b"x") for i in range(count)]


def media(session, tag, packets=3):
    """RTP/RTCP from the session's client ports to its server ports, each datagram unique."""
    return [bytes(ether() / IP(src=session.client, dst=RTSP_VIP)
                  / UDP(sport=port, dport=session.server_port + (port & 1))
                  / (b"\x80\xc8" if port & 1 else b"\x80\x00")
                  / f"{tag}:{session.number}:{port}:{i}".encode().ljust(40, b"m"))
            for port in session.client_ports for i in range(packets)]


def run(tmp_path, phases, workers):
    """One worker: the phases in order through a pcap. Two workers, or phases that ask
    tetherd something: over net_af_packet (two workers: two queues, flows spread by 5-tuple
    hash as RSS does), each phase sent once the previous one was processed."""
    if workers == 1 and not any(callable(p) for p in phases):
        result = run_tetherd(tmp_path, [[f for phase in phases for f in phase]], SERVICES)
    else:
        result = run_tetherd_live(tmp_path, phases, SERVICES, workers=workers)
    assert result.returncode == 0, result.stderr
    return result


def backends_of(result, frames):
    """frame payload (after the MACs) -> backend names it reached."""
    wanted = {f[12:] for f in frames}
    reached = collections.defaultdict(list)
    for frame in result.frames:
        if frame[12:] in wanted:
            reached[frame[12:]].append(BACKEND_BY_MAC[frame[:6]])
    return reached


def backend_of(reached, frames):
    """The one backend all of `frames` reached, or an assertion. (Each frame's copies are
    counted by the tests' `forwarded` checks: some frames, like a data connection's two bare
    ACKs, are sent twice.)"""
    names = set()
    for f in frames:
        assert reached.get(f[12:]), "a frame reached no backend"
        names.update(reached[f[12:]])
    assert len(names) == 1, f"frames of one flow group split over {names}"
    return names.pop()


def rtsp_pair(k, rng):
    """Two RTSP sessions of one client, one after the other, from the same client ports to
    the same server ports but on two control connections. Style 0 sessions (numbers divisible
    by 4): whole-segment requests."""
    client = f"203.0.113.{k + 1}"
    first = RtspSession(4 * k, RTSP_VIP, rng, [client])
    second = RtspSession(4 * k + 400, RTSP_VIP, rng, [client])
    second.client_ports = list(first.client_ports)
    second.server_port = first.server_port
    return first, second


@pytest.mark.parametrize("workers", [1, 2])
def test_rtsp_media_from_reused_ports_reaches_the_new_session(tmp_path, workers):
    rng = random.Random(70 + workers)
    pairs = [rtsp_pair(k, rng) for k in range(30)]
    frames = {}
    for first, second in pairs:
        frames[first] = (first.signalling(), media(first, "first"), first.teardown())
        frames[second] = (second.signalling(), media(second, "second"), second.teardown())
    phases = [
        [f for a, _b in pairs for f in frames[a][0]],
        [f for a, _b in pairs for f in frames[a][1]],
        [f for a, _b in pairs for f in frames[a][2]],
        filler(),
        [f for _a, b in pairs for f in frames[b][0]],
        [f for _a, b in pairs for f in frames[b][1]],
        [f for _a, b in pairs for f in frames[b][2]],
    ]
    result = run(tmp_path, phases, workers)
    reached = backends_of(result, [f for phase in phases for f in phase])
    moved = 0
    for first, second in pairs:
        control_first = backend_of(reached, frames[first][0] + frames[first][2])
        control_second = backend_of(reached, frames[second][0] + frames[second][2])
        assert backend_of(reached, frames[first][1]) == control_first
        # The old flow entries of these 5-tuples still live: the new SETUP must win.
        assert backend_of(reached, frames[second][1]) == control_second, \
            f"media of the new session on {backend_of(reached, frames[second][1])}, not {control_second}"
        moved += control_first != control_second
    assert moved >= 10, f"only {moved} of {len(pairs)} pairs changed backend: the test proves little"
    assert result.counter("forwarded") == sum(len(p) for p in phases)
    assert result.counter("related_repointed") == 4 * moved
    assert sum(result.stats["dpi_fallbacks"].values()) == 0, result.stats["dpi_fallbacks"]


@pytest.mark.parametrize("workers", [1, 2])
def test_rtsp_media_after_teardown_is_dropped(tmp_path, workers):
    rng = random.Random(80 + workers)
    sessions = [RtspSession(4 * k, RTSP_VIP, rng, [f"203.0.113.{k + 1}"]) for k in range(20)]
    control = {s: s.signalling() for s in sessions}
    signalling = [f for s in sessions for f in control[s]]
    before = {s: media(s, "before") for s in sessions}
    teardown = [f for s in sessions for f in s.teardown()]
    late = [f for s in sessions for f in media(s, "after")]  # the same 5-tuples
    result = run(tmp_path, [signalling, [f for m in before.values() for f in m], teardown,
                            filler(), late], workers)
    reached = backends_of(result, signalling + teardown + late + [f for m in before.values() for f in m])
    for s in sessions:
        assert backend_of(reached, before[s]) == backend_of(reached, control[s])
    assert not any(f[12:] in reached for f in late), "media after TEARDOWN was forwarded"
    assert result.drops("no_expectation") == len(late)
    assert result.counter("forwarded") == len(signalling) + len(teardown) + 130 + \
        sum(len(m) for m in before.values())


def test_rtsp_media_behind_its_teardown_in_one_burst_is_dropped(tmp_path):
    """Each session's TEARDOWN followed at once by media on its 5-tuples: one worker reads
    most of them in the TEARDOWN's burst, with the TEARDOWN's clock."""
    rng = random.Random(85)
    sessions = [RtspSession(4 * k, RTSP_VIP, rng, [f"203.0.113.{k + 1}"]) for k in range(20)]
    control = {s: s.signalling() for s in sessions}
    signalling = [f for s in sessions for f in control[s]]
    before = [f for s in sessions for f in media(s, "before", packets=1)]
    late = {s: media(s, "after", packets=1) for s in sessions}
    ending = [f for s in sessions for f in s.teardown() + late[s]]
    result = run(tmp_path, [signalling, before, filler(), ending], 1)
    reached = backends_of(result, [f for m in late.values() for f in m])
    assert not reached, f"{len(reached)} media datagrams after TEARDOWN were forwarded"
    assert result.drops("no_expectation") == sum(len(m) for m in late.values())


def ftp_pair(k, rng):
    """Two FTP sessions of one client, one after the other, on two control connections; the
    second's data connection reuses the first's source port and passive port."""
    client = f"198.51.100.{k + 1}"
    first = FtpSession(3 * k, FTP_VIP, rng, [client])
    second = FtpSession(3 * k + 600, FTP_VIP, rng, [client])
    second.data = TcpConnection(client, first.data.sport, FTP_VIP, first.data.dport, rng)
    return first, second


@pytest.mark.parametrize("workers", [1, 2])
def test_ftp_data_port_reuse_after_fin_follows_the_new_control_connection(tmp_path, workers):
    rng = random.Random(90 + workers)
    pairs = [ftp_pair(k, rng) for k in range(30)]
    frames = {}
    for first, second in pairs:
        for s in (first, second):
            frames[s] = (s.signalling(), s.transfer(), s.close())
    phases = []
    for part in range(3):
        phases.append([f for a, _b in pairs for f in frames[a][part]])
    for part in range(3):
        phases.append([f for _a, b in pairs for f in frames[b][part]])
    result = run(tmp_path, phases, workers)
    reached = backends_of(result, [f for phase in phases for f in phase])
    moved = 0
    for first, second in pairs:
        control = [backend_of(reached, frames[s][0] + frames[s][2]) for s in (first, second)]
        assert backend_of(reached, frames[first][1]) == control[0]
        assert backend_of(reached, frames[second][1]) == control[1], \
            "a data connection reusing a closed one's 5-tuple went to the old session's backend"
        moved += control[0] != control[1]
    assert moved >= 10, f"only {moved} of {len(pairs)} pairs changed backend: the test proves little"
    assert result.counter("forwarded") == sum(len(p) for p in phases)
    counts = result.stats["sessions"]
    assert counts["ftp_data_expectations_created"] == 2 * len(pairs)
    assert counts["ftp_data_expectations_used"] == 2 * len(pairs)


def test_ftp_retransmitted_syn_does_not_take_a_second_expectation(tmp_path):
    """A SYN on an open data connection is its retransmission: it follows the connection and
    leaves the expectation of the address's next PASV to the next data connection."""
    rng = random.Random(95)
    sessions = nat_sessions("198.51.100.200", 1, 8, rng)
    signalling = {s: s.signalling() for s in sessions}
    transfers = {s: s.transfer() for s in sessions}
    data = []
    for s in sessions:
        data += [transfers[s][0]] + transfers[s]  # the SYN, retransmitted, then the rest
    result = run(tmp_path, [[f for s in sessions for f in signalling[s]], data], 1)
    check_fifo(result, [sessions], signalling, transfers)
    assert result.counter("forwarded") == sum(len(f) for f in signalling.values()) + len(data)
    assert result.stats["sessions"]["ftp_data_expectations_used"] == len(sessions)


def nat_sessions(address, first_number, count, rng):
    return [FtpSession(first_number + i, FTP_VIP, rng, [address]) for i in range(count)]


def check_fifo(result, groups, signalling, data):
    """Every data connection of an address reached the backend of the PASV in its place."""
    reached = backends_of(result, [f for s in signalling.values() for f in s] +
                          [f for d in data.values() for f in d])
    mixed = 0
    for sessions in groups:
        pasv_backends = [backend_of(reached, signalling[s]) for s in sessions]
        data_backends = [backend_of(reached, data[s]) for s in sessions]
        assert data_backends == pasv_backends, "data connections not matched to PASVs in order"
        mixed += len(set(pasv_backends)) > 1
    return mixed


@pytest.mark.parametrize("per_address", [3, 10])
def test_ftp_sessions_behind_one_address_each_get_their_data_connection(tmp_path, per_address):
    rng = random.Random(100 + per_address)
    addresses = [f"100.64.0.{i + 1}" for i in range(12)]
    groups = [nat_sessions(a, 1000 * (i + 1), per_address, rng) for i, a in enumerate(addresses)]
    # Every control connection's signalling up to its PASV, in order, then every data
    # connection: first all the SYNs, in the PASVs' order, then the rest.
    signalling = {s: s.signalling() for g in groups for s in g}
    transfers = {s: s.transfer() for g in groups for s in g}
    phase_signalling = [f for g in groups for s in g for f in signalling[s]]
    phase_syns = [transfers[s][0] for g in groups for s in g]
    phase_rest = [f for g in groups for s in g for f in transfers[s][1:]]
    result = run(tmp_path, [phase_signalling, phase_syns, phase_rest], 1)
    mixed = check_fifo(result, groups, signalling, transfers)
    assert mixed >= len(groups) // 2, f"only {mixed} addresses had control connections on several backends"
    total = len(phase_signalling) + len(phase_syns) + len(phase_rest)
    assert result.counter("forwarded") == total
    assert result.drops("no_expectation") == 0
    counts = result.stats["sessions"]
    sessions = len(groups) * per_address
    assert counts["ftp_data_expectations_created"] == sessions
    assert counts["ftp_data_expectations_used"] == sessions


def test_ftp_sessions_behind_one_address_on_two_workers(tmp_path):
    """The PASVs of one address and their data connections handled by two workers: each
    PASV (one per address per phase) and each data connection's SYN in its own phase, so the
    order is defined."""
    rng = random.Random(111)
    per_address = 3
    addresses = [f"100.64.1.{i + 1}" for i in range(10)]
    groups = [nat_sessions(a, 1000 * (i + 1), per_address, rng) for i, a in enumerate(addresses)]
    signalling = {s: s.signalling() for g in groups for s in g}
    transfers = {s: s.transfer() for g in groups for s in g}
    phases = [[f for g in groups for f in signalling[g[k]]] for k in range(per_address)]
    phases += [[transfers[g[k]][0] for g in groups] for k in range(per_address)]
    phases.append([f for g in groups for s in g for f in transfers[s][1:]])
    result = run(tmp_path, phases, 2)
    received = result.stats["rx_per_worker"]
    assert min(received) > 0.2 * sum(received), f"flows were not spread over workers: {received}"
    mixed = check_fifo(result, groups, signalling, transfers)
    assert mixed >= len(groups) // 2
    assert result.counter("forwarded") == sum(len(p) for p in phases)


def test_ftp_expectations_per_address_are_bounded(tmp_path):
    """One address with one PASV more than the bound: the extra PASV is counted and gets no
    expectation; the data connections take the others in order and the last is dropped.
    Used expectations make room again."""
    rng = random.Random(120)
    address = "100.64.2.1"
    sessions = nat_sessions(address, 2000, EXPECTATIONS_PER_CLIENT + 1, rng)
    signalling = {s: s.signalling() for s in sessions}
    transfers = {s: s.transfer() for s in sessions}
    later = FtpSession(2100, FTP_VIP, rng, [address])
    later_frames = (later.signalling(), later.transfer())
    phases = [[f for s in sessions for f in signalling[s]],
              [f for s in sessions for f in transfers[s]],
              list(later_frames[0]), list(later_frames[1])]
    result = run(tmp_path, phases, 1)
    served = sessions[:EXPECTATIONS_PER_CLIENT]
    check_fifo(result, [served], signalling, transfers)
    reached = backends_of(result, transfers[sessions[-1]])
    assert not reached, "the data connection of the PASV over the bound was forwarded"
    assert backend_of(backends_of(result, later_frames[0] + later_frames[1]), later_frames[1]) == \
        backend_of(backends_of(result, later_frames[0]), later_frames[0])
    assert result.stats["dpi_fallbacks"]["too_many_expectations"] == 1
    assert result.drops("no_expectation") == len(transfers[sessions[-1]])
    counts = result.stats["sessions"]
    assert counts["ftp_data_expectations_created"] == EXPECTATIONS_PER_CLIENT + 1
    assert counts["ftp_data_expectations_used"] == EXPECTATIONS_PER_CLIENT + 1


def test_show_sessions_lists_every_outstanding_expectation_of_an_address(tmp_path):
    """`show sessions protocol ftp`: one entry per outstanding PASV of an address, each with
    the backend of its control connection; a used one leaves the list."""
    rng = random.Random(130)
    address = "100.64.3.1"
    sessions = nat_sessions(address, 3000, 3, rng)
    signalling = {s: s.signalling() for s in sessions}
    transfers = {s: s.transfer() for s in sessions}
    answers = []

    def show(sock):
        result = subprocess.run([str(TETHERCTL), "-s", str(sock), "--json", "show", "sessions",
                                 "protocol", "ftp"], capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        answers.append(json.loads(result.stdout)["sessions"])

    phases = [[f for s in sessions for f in signalling[s]], show, transfers[sessions[0]], show]
    result = run(tmp_path, phases, 1)  # live: the phases include tetherctl calls
    reached = backends_of(result, [f for s in sessions for f in signalling[s]])
    backends = [backend_of(reached, signalling[s]) for s in sessions]
    assert len(answers) == 2
    listed = [sorted(e["backend"] for e in answer if e["client"] == address) for answer in answers]
    assert listed[0] == sorted(backends)
    assert listed[1] == sorted(backends[1:])
    assert all(e["service"] == "ftp" and e["kind"] == "ftp_expectation" for a in answers for e in a)


def test_rtsp_media_keeps_its_session_alive(tmp_path):
    """Media that keeps flowing keeps its expectation: a stream longer than session_timeout
    without requests on the control connection is not cut; once media and requests stop for
    longer, the flow has ended."""
    services = [dict(SERVICES[0], extra='dpi = "rtsp"; session_timeout = 2;')]
    rng = random.Random(140)
    session = RtspSession(0, RTSP_VIP, rng, ["203.0.113.200"])
    signalling = session.signalling()
    bursts = [media(session, f"t{i}", packets=1) for i in range(8)]
    late = media(session, "late", packets=1)
    def idle(_sock):
        time.sleep(3)  # longer than session_timeout

    # 8 bursts 0.5 s apart: 4 s of media, twice the session timeout.
    phases = [signalling] + bursts + [idle, late]
    result = run_tetherd_live(tmp_path, phases, services, workers=1)
    assert result.returncode == 0, result.stderr
    reached = backends_of(result, signalling + [f for b in bursts for f in b] + late)
    control = backend_of(reached, signalling)
    assert backend_of(reached, [f for b in bursts for f in b]) == control
    assert not any(f[12:] in reached for f in late), "media after the session timed out was forwarded"
    assert result.drops("no_expectation") == len(late)
