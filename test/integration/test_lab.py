"""The virtual lab (tools/tetherlab) with real SIP, FTP and RTSP software through tetherd running
conf/lab.cfg, the configuration tools/run plays, and then without session awareness.

Each backend runs sipp's UAS (with re-INVITE support), vsftpd in passive mode with its own
passive port range, gst-rtsp-server with its own media port range, and tcpdump counting the
UDP datagrams it receives for the RTSP VIP. In DSR a flow that reaches the wrong backend
fails there (no FTP data listener on that port, no RTP session on that port), so success is
evidence, and the servers' logs say where each session's flows went.

The control run (dpi = "none", plus one service per FTP passive and RTSP media port, as a
flow-level balancer would be set up) asserts the failures session awareness prevents: FTP
data connections on other backends, RTCP on the wrong backends, and all the calls of one
SIP socket on one backend.

While the clients run, `tetherctl top` is read as an operator sees it, in a terminal (tmux).
"""
import collections
import re
import shutil
import threading
import time

import pytest

from conftest import assert_spread_by_weight
from harness import TETHERCTL
from terminal import interrupt, screen, start, tmux, top_rows
from tetherlab.config import lab_config_without_dpi
from tetherlab.topology import BACKENDS, CLIENT_ADDRESSES, LAB_CONFIG
from tetherlab.workloads import Calls, Streams, ftp_downloads, rtcp_placement

# Measures time or loads the machine itself: runs alone (pytest.ini).
pytestmark = pytest.mark.serial

SIP_WEIGHTS = {"b1": 2, "b2": 1, "b3": 1}  # as in conf/lab.cfg
# sip-options check in conf/lab.cfg: interval 400 ms, timeout 300 ms, fall 3, rise 2
DOWN_WITHIN = 3 * 0.4 + 0.3 + 2.0  # with slack for a loaded 2-core machine
UP_WITHIN = 2 * 0.4 + 0.3 + 2.0


@pytest.fixture(scope="module")
def lab(lab):
    """The lab with every backend's servers running: sipp's UAS (re-INVITEs too), vsftpd,
    gst-rtsp-server and the RTSP capture."""
    for name in BACKENDS:
        lab.start_sip_server(name, reinvite=True)
    lab.start_media_servers()
    return lab


@pytest.fixture
def with_dpi(balancer):
    return balancer.ensure(LAB_CONFIG)


@pytest.fixture
def without_dpi(balancer, lab):
    path = lab.workdir / "lab-nodpi.cfg"
    path.write_text(lab_config_without_dpi(LAB_CONFIG.read_text()))
    return balancer.ensure(path)


def uacs(lab, tag, calls_each, rate, addresses=CLIENT_ADDRESSES, reinvite_first=True, **kw):
    """One sipp UAC per client address, each its own UDP socket (address:5070+i); the first
    plays calls with a re-INVITE."""
    return [Calls(lab, f"{tag}{i}", calls_each, rate, address=address, local_port=5070 + i,
                  reinvite=reinvite_first and i == 0, **kw)
            for i, address in enumerate(addresses)]


def whole_calls(run):
    """Call-ID -> backend for the run's calls whose requests all reached one backend with
    INVITE, ACK and BYE there; and the Call-IDs that reached several backends."""
    whole, split = {}, []
    for call_id, backends in run.placement().items():
        if len(backends) > 1:
            split.append((call_id, dict(backends)))
            continue
        (backend, methods), = backends.items()
        if {"INVITE", "ACK", "BYE"} <= set(methods):
            whole[call_id] = backend
    return whole, split


def session_counts(tetherd):
    return {name: b["sessions"] for name, b in tetherd.backends().items()}


def test_sip_calls_stay_whole_and_spread_by_weight(lab, with_dpi):
    """2,200 calls (550 with a re-INVITE) from four client sockets: none fails, each call's
    requests all reach one backend, and the calls spread 2:1:1 as weighted, each socket's
    calls over all three backends (a 5-tuple balancer would pin each socket to one)."""
    before = session_counts(with_dpi)
    runs = uacs(lab, "dpi", calls_each=550, rate=40)
    per_backend = collections.Counter()
    for run in runs:
        code, ok, failed = run.wait()
        assert (code, ok, failed) == (0, run.calls, 0), (lab.workdir / f"uac-{run.tag}.err").read_text()[-2000:]
        whole, split = whole_calls(run)
        assert split == [] and len(whole) == run.calls, (run.tag, split[:3], len(whole))
        assert set(whole.values()) == set(BACKENDS), (run.tag, collections.Counter(whole.values()))
        per_backend.update(whole.values())
    reinvites = runs[0].placement()
    assert all(methods.count("INVITE") == 2 for b in reinvites.values() for methods in b.values())
    total = sum(per_backend.values())
    assert total == 2200
    assert_spread_by_weight(per_backend, SIP_WEIGHTS)
    after = session_counts(with_dpi)
    assert {n: after[n] - before[n] for n in BACKENDS} == dict(per_backend)
    print(f"\nSIP with DPI: {total} calls, 0 failed, per backend {dict(sorted(per_backend.items()))}")


def test_sip_backend_stopped_midway(lab, with_dpi):
    """b2's UAS stops while three UACs are placing calls: calls on b1 and b3 complete, b2
    goes down, and calls placed after that all complete on b1 and b3. A call of b2's that
    was still in progress moves to one live backend on its next request (a re-INVITE or
    BYE, rescheduled: that backend knows no such dialog and the UAC gives the call up)."""
    runs = uacs(lab, "midway", calls_each=300, rate=30, addresses=CLIENT_ADDRESSES[:3])
    time.sleep(3)
    lab.stop_sip_server("b2")
    with_dpi.wait_until(lambda b: b["b2"]["state"] == "down", DOWN_WITHIN, "b2 down")
    after = Calls(lab, "afterdown", 300, 60, address=CLIENT_ADDRESSES[3], local_port=5080)
    try:
        for run in runs:
            _code, ok, failed = run.wait(timeout=150)
            completed = 0
            for call_id, backends in run.placement().items():
                alive = {b: m for b, m in backends.items() if b != "b2"}
                assert len(alive) <= 1, (call_id, dict(backends))
                if "b2" not in backends:  # placed on b1 or b3: stayed there and completed
                    (methods,) = alive.values()
                    assert {"INVITE", "ACK", "BYE"} <= set(methods), (call_id, dict(backends))
                    completed += 1
            assert completed >= 0.6 * run.calls, (run.tag, completed)
            assert failed <= run.calls - completed, (run.tag, failed, completed)
            assert ok + failed == run.calls
        code, ok, failed = after.wait()
        assert (code, ok, failed) == (0, 300, 0)
        whole, split = whole_calls(after)
        assert split == [] and len(whole) == 300
        assert set(whole.values()) == {"b1", "b3"}
    finally:
        lab.start_sip_server("b2", reinvite=True)
    with_dpi.wait_until(lambda b: b["b2"]["state"] == "up", UP_WITHIN + 5, "b2 up")


def test_ftp_passive_downloads(lab, with_dpi):
    """60 concurrent passive downloads (EPSV and PASV) from four client addresses all arrive
    whole; each backend's vsftpd served its share."""
    counters = with_dpi.json("show", "counters")
    results = ftp_downloads(lab, 60, "dpi")
    failed = [r for r in results if not r[2]]
    assert failed == [], failed[:5]
    served = {name: sum(c.values()) for name, c in lab.ftp_downloads().items()}
    assert sum(served.values()) == 60, served
    assert all(n >= 8 for n in served.values()), served
    by_address = collections.Counter()
    for c in lab.ftp_downloads().values():
        by_address.update(c)
    assert by_address == collections.Counter(a for a, _c, _ok in results)
    after = with_dpi.json("show", "counters")
    assert after["drops"].get("no_expectation", 0) == counters["drops"].get("no_expectation", 0)
    print(f"\nFTP with DPI: 60 downloads, 0 failed, per backend {served}")


def test_rtsp_streams_rtcp_reaches_serving_backend(lab, with_dpi):
    """Six concurrent RTSP sessions over UDP: every client receives its audio over RTP
    (straight from the backend), and the RTCP it sends to the VIP reaches the backend that
    answered its SETUP, and no other."""
    seen = set(rtcp_placement(lab))
    streams = Streams(lab, 6, "dpi", seconds=5)
    received = streams.wait()
    assert all(n >= 0.6 * 5 * 8000 for n in received), received
    sessions = {k: v for k, v in rtcp_placement(lab).items() if k not in seen}
    assert len(sessions) == 6, sessions
    for key, (backend, reached) in sessions.items():
        assert set(reached) == {backend}, (key, backend, reached)
    per_backend = collections.Counter(b for b, _r in sessions.values())
    print(f"\nRTSP with DPI: 6 sessions, RTCP on the serving backend for all, per backend {dict(per_backend)}")


def test_top_in_a_terminal_shows_the_labs_live_sessions(lab, with_dpi):
    """`tetherctl top` in tmux while the lab's real clients run (sipp calls held open, slowed
    FTP downloads, RTSP streams): every backend up with its weights and packets a second on
    two screens in a row, live calls, RTSP and FTP control connections on the backends,
    the session table's live SIP and RTSP entries, the worker's busy share; Ctrl-C quits."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux missing: run tools/deps")
    # New calls all along (20 a second for 5 s, each held 2 s) keep every backend's packets
    # moving: RTP goes from the backends straight to the clients, RTCP crosses only at first.
    calls = Calls(lab, "top", 100, 20, duration_ms=2000, local_port=5090)
    streams = Streams(lab, 3, "top", seconds=5)
    downloads = []
    ftp = threading.Thread(target=lambda: downloads.extend(ftp_downloads(lab, 6, "top", limit_rate="100k")))
    ftp.start()
    session = f"top-{lab.tag}"[:40]
    try:
        start(session, f"{TETHERCTL} -s {with_dpi.socket} top")
        # Every client connected (curl's FTP logins can lag on a loaded machine), a screen
        # from two samples under load.
        time.sleep(2.5)
        deadline = time.monotonic() + 6
        while True:
            first = screen(session)
            try:
                if all(int(top_rows(first)[name][8]) >= 0 for name in SIP_WEIGHTS) and \
                        sum(int(top_rows(first)[name][8]) for name in SIP_WEIGHTS) > 0:
                    break
            except (KeyError, IndexError, ValueError):
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        screens = [first]
        time.sleep(1.1)  # the next screen
        screens.append(screen(session))
        for index, shown in enumerate(screens):
            rows = top_rows(shown)
            assert rows["BACKEND"][-6:] == ["LIVE", "CALLS", "LIVE", "RTSP", "LIVE", "FTP"], shown
            for name, sip_weight in SIP_WEIGHTS.items():
                row = rows[name]
                assert row[1] == "up" and row[2] == f"sip:{sip_weight},ftp:1,rtsp:1", shown
                assert float(row[3]) > 0, shown  # packets a second
            live = {protocol: sum(int(rows[name][column]) for name in SIP_WEIGHTS)
                    for protocol, column in (("calls", 6), ("rtsp", 7), ("ftp", 8))}
            # FTP on the first screen, which waited for it: a download may end before the next.
            # The kernel's socket buffers take much of the file at once, so curl's rate limit
            # does not make a download's length predictable (3.5 to 10 s at 50 KB/s here).
            expected = live if index == 0 else {protocol: n for protocol, n in live.items() if protocol != "ftp"}
            assert all(expected.values()), (live, shown)
            table = dict(re.findall(r"(\w+) (\d+)", shown.split("live sessions:", 1)[1]))
            assert int(table.get("sip", 0)) > 0 and int(table.get("rtsp", 0)) > 0, shown
            busy = rows["0"][1]
            assert busy.endswith("%") and 0 < float(busy[:-1]) <= 100, shown
        # The rates move: two screens a second apart differ in the backends' figures.
        figures = [[top_rows(shown)[name][3:6] for name in SIP_WEIGHTS] for shown in screens]
        assert figures[0] != figures[1], screens
        interrupt(session)  # tetherctl top stops on Ctrl-C
    finally:
        tmux("kill-session", "-t", session)
        ftp.join(timeout=60)
    assert calls.wait() == (0, 100, 0)
    assert all(n > 0 for n in streams.wait()), "an RTSP stream failed"
    assert len(downloads) == 6 and all(ok for _a, _c, ok in downloads), downloads
    print(f"\ntop in the lab:\n{screens[-1].rstrip()}")


def test_without_dpi_sessions_split(lab, without_dpi):
    """The same lab with dpi = "none": each SIP socket's calls all land on one backend, FTP
    data connections land on backends that did not issue the port (the transfer fails), and
    RTCP reaches backends that do not serve the session."""
    runs = uacs(lab, "nodpi", calls_each=100, rate=50, reinvite_first=False)
    sockets = {}
    for run in runs:
        code, ok, failed = run.wait()
        assert (code, ok, failed) == (0, run.calls, 0)
        whole, split = whole_calls(run)
        assert split == [] and len(whole) == run.calls
        assert len(set(whole.values())) == 1, (run.tag, collections.Counter(whole.values()))
        sockets[run.tag] = next(iter(whole.values()))

    results = ftp_downloads(lab, 30, "nodpi")
    failed = sum(1 for r in results if not r[2])
    assert failed >= 8, f"only {failed} of 30 FTP downloads failed without DPI"

    seen = set(rtcp_placement(lab))
    streams = Streams(lab, 8, "nodpi", seconds=4)
    received = streams.wait()
    assert all(n > 0 for n in received), received  # RTP goes straight to the client
    sessions = {k: v for k, v in rtcp_placement(lab).items() if k not in seen}
    assert len(sessions) == 8, sessions
    misrouted = [k for k, (backend, reached) in sessions.items() if set(reached) - {backend}]
    assert misrouted, sessions
    print(f"\nwithout DPI: SIP socket -> backend {sockets}; FTP {failed}/30 failed; "
          f"RTCP misrouted for {len(misrouted)}/8 RTSP sessions")
