"""tetherctl top: a live view of a running tetherd, checked as an operator sees it, in a
terminal (tmux: send-keys, capture-pane). tetherd replays SIP calls that stay open and UDP
flows in a loop (net_pcap infinite_rx), so every rate on the screen is moving."""
import random
import re
import shutil
import subprocess
import time

import pytest

from harness import TETHERCTL, Tetherd, config_text
from sessions import SipCall
from terminal import interrupt, screen, start, tmux, top_rows

VIP = "192.0.2.170"
SERVICES = [
    {"name": "voice", "vip": VIP, "port": 5060, "protocol": "udp", "extra": 'dpi = "sip";',
     "weights": {"b1": 1, "b2": 2}},
]


def test_top_shows_backends_workers_and_live_sessions_and_quits_on_ctrl_c(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux missing: run tools/deps")
    from scapy.utils import wrpcap
    rng = random.Random(7)
    calls = [SipCall(n, VIP, rng, [f"198.51.100.{n % 50 + 1}"], bye=False) for n in range(40)]
    wrpcap(str(tmp_path / "in.pcap"), [frame for call in calls for frame in call.frames()], linktype=1)
    config = tmp_path / "tetherd.cfg"
    config.write_text(config_text(f"net_pcap0,rx_pcap={tmp_path}/in.pcap,infinite_rx=1", SERVICES))
    tetherd = Tetherd(config, tmp_path / "tetherd.sock")
    session = f"top-{tmp_path.name}"[:40]
    try:
        start(session, f"{TETHERCTL} -s {tetherd.socket} top --interval 0.5")
        deadline = time.monotonic() + 20
        while "live sessions:" not in screen(session):
            assert time.monotonic() < deadline, screen(session)
            time.sleep(0.2)
        time.sleep(1.2)  # a screen from two samples taken under load
        shown = screen(session)
        assert "tether top: every 0.5 s, Ctrl-C quits" in shown, shown
        rows = top_rows(shown)
        assert rows["BACKEND"] == ["BACKEND", "STATE", "WEIGHTS", "PACKETS/S", "NEW", "FLOWS/S",
                                   "SESSIONS/S", "LIVE", "CALLS", "LIVE", "RTSP", "LIVE", "FTP"], shown
        for name, weight in (("b1", "voice:1"), ("b2", "voice:2")):
            row = rows[name]
            assert row[1] == "up" and row[2] == weight, shown
            assert float(row[3]) > 0, shown  # packets a second: the replay goes on
            assert int(row[6]) > 0, shown     # live calls: the calls never end
            assert row[7:] == ["0", "0"], shown  # no RTSP or FTP service
        assert rows["b3"][2] == "-", shown   # in no service
        worker = rows["0"]
        assert worker[1].endswith("%") and 0 < float(worker[1][:-1]) <= 100, shown
        assert float(worker[2]) > 0 and float(worker[3]) > 0, shown
        live = re.search(r"live sessions: sip (\d+)", shown)
        assert live and int(live.group(1)) == len(calls), shown

        interrupt(session)  # tetherctl top stops on Ctrl-C
    finally:
        tmux("kill-session", "-t", session)
        assert tetherd.stop() == 0, tetherd.log()[-3000:]


def test_top_refuses_words_and_bad_intervals_and_stops_after_iterations(tmp_path):
    config = tmp_path / "tetherd.cfg"
    config.write_text(config_text("net_null0", SERVICES))
    tetherd = Tetherd(config, tmp_path / "tetherd.sock")
    try:
        def top(*words):
            return subprocess.run([str(TETHERCTL), "-s", str(tetherd.socket), "top", *words],
                                  capture_output=True, text=True, timeout=30)
        assert top("now").returncode == 2
        assert top("--interval", "0.01").returncode == 2
        assert top("--interval", "nan").returncode == 2
        shown = top("--interval", "0.1", "--iterations", "3")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.count("tether top:") == 3 and "\x1b[" not in shown.stdout  # not a terminal
        assert shown.stdout.count("live sessions: none") == 3
    finally:
        assert tetherd.stop() == 0
    gone = subprocess.run([str(TETHERCTL), "-s", str(tetherd.socket), "top", "--iterations", "1"],
                          capture_output=True, text=True, timeout=30)
    assert gone.returncode == 1 and "tetherd" in gone.stderr
