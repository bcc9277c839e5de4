"""`show sessions` and `show flows` on a running tetherd: what the shared session table and
the workers' own flow tables hold, filtered and limited, checked against the traffic sent."""
import collections
import json
import random
import subprocess

from harness import BACKENDS, TETHERCTL, mac_bytes, run_tetherd_live
from sessions import FtpSession, RtspSession, SipCall, TcpConnection

BACKEND_BY_MAC = {mac_bytes(mac): name for name, (_addr, mac) in BACKENDS.items()}
SIP_VIP, RTSP_VIP, FTP_VIP, WEB_VIP = "192.0.2.150", "192.0.2.151", "192.0.2.152", "192.0.2.153"
SERVICES = [
    {"name": "sip", "vip": SIP_VIP, "port": 5060, "protocol": "udp", "extra": 'dpi = "sip";',
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
    {"name": "rtsp", "vip": RTSP_VIP, "port": 554, "protocol": "tcp", "extra": 'dpi = "rtsp";',
     "weights": {"b1": 1, "b2": 1}},
    {"name": "ftp", "vip": FTP_VIP, "port": 21, "protocol": "tcp", "extra": 'dpi = "ftp";',
     "weights": {"b2": 1, "b3": 1}},
    {"name": "web", "vip": WEB_VIP, "port": 80, "protocol": "tcp", "weights": {"b1": 1, "b2": 1}},
]
CALLS, RTSP_SESSIONS, FTP_SESSIONS, WEB_FLOWS = 30, 2, 2, 50
MASK = (1 << 64) - 1


def call_id_digest(call_id, seed=0x63616C6C2D6964):
    """parsers/sip.cpp hash_unfolded() with the worker's Call-ID seed, written out again so
    that a change to the digest shows here: 8-byte little-endian words (the last one
    zero-padded), the length, then the splitmix64 finaliser."""
    data = call_id.encode()
    h = 0xCBF29CE484222325 ^ seed
    for at in range(0, len(data), 8):
        word = int.from_bytes(data[at:at + 8].ljust(8, b"\0"), "little")
        h = ((h ^ word) * 0x9E3779B97F4A7C15) & MASK
        h ^= h >> 29
    h ^= len(data)
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & MASK
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & MASK
    return f"{h ^ (h >> 31):016x}"


def ask(sock, *words):
    """tetherctl's JSON answer and exit code."""
    result = subprocess.run([str(TETHERCTL), "-s", str(sock), "--json", *words],
                            capture_output=True, text=True, timeout=10)
    return json.loads(result.stdout), result.returncode


def without_time(entries):
    """The entries without their remaining time, which moves between two queries."""
    return sorted(json.dumps({k: v for k, v in e.items() if k != "expires_in_ms"}, sort_keys=True)
                  for e in entries)


def table(sock, *words):
    result = subprocess.run([str(TETHERCTL), "-s", str(sock), *words],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return result.stdout


def traffic():
    """Calls that stay up, RTSP and FTP sessions whose expectations are still waiting, and
    TCP connections to a plain service."""
    rng = random.Random(4242)
    calls = [SipCall(n, SIP_VIP, rng, ["198.51.100.10", "198.51.100.20"], bye=False)
             for n in range(CALLS)]
    rtsp = [RtspSession(n, RTSP_VIP, rng, [f"198.51.100.{30 + n}"]) for n in range(RTSP_SESSIONS)]
    ftp = [FtpSession(n, FTP_VIP, rng, [f"198.51.100.{40 + n}"]) for n in range(FTP_SESSIONS)]
    web = [TcpConnection(f"203.0.113.{n + 1}", 20000 + n, WEB_VIP, 80, rng) for n in range(WEB_FLOWS)]
    frames = [f for c in calls for f in c.frames()]
    frames += [f for s in rtsp for f in s.signalling()]
    frames += [f for s in ftp for f in s.signalling()]
    frames += [c.syn() for c in web]
    return calls, rtsp, ftp, web, frames


def test_show_sessions_and_flows_with_every_filter(tmp_path):
    calls, rtsp, ftp, web, frames = traffic()
    seen = {}

    def query(sock):
        for name, words in {
            "all": [],
            "sip": ["protocol", "sip"],
            "sip_service": ["service", "sip"],
            "sip_limited": ["protocol", "sip", "limit", "5"],
            "rtsp": ["protocol", "rtsp"],
            "ftp": ["service", "ftp", "protocol", "ftp"],
            "b1": ["backend", "b1"],
            "b3_rtsp": ["backend", "b3", "service", "rtsp"],
        }.items():
            seen["sessions " + name] = ask(sock, "show", "sessions", *words)
        for name, words in {
            "all": [],
            "web": ["service", "web"],
            "limited": ["limit", "10"],
            "b2": ["backend", "b2", "worker", "0"],
        }.items():
            seen["flows " + name] = ask(sock, "show", "flows", *words)
        for words in (["sessions", "service", "nosuch"], ["sessions", "backend", "b9"],
                      ["sessions", "protocol", "http"], ["sessions", "limit", "0"],
                      ["sessions", "limit", "10001"], ["sessions", "limit", "many"],
                      ["sessions", "worker", "0"], ["sessions", "service"],
                      ["sessions", "limit", "5", "limit", "6"], ["flows", "worker", "1"],
                      ["flows", "protocol", "sip"], ["flows", "service", "nosuch"]):
            seen["error " + " ".join(words)] = ask(sock, "show", *words)
        seen["help"] = ask(sock, "help")
        seen["sessions table"] = table(sock, "show", "sessions", "limit", "3")
        seen["flows table"] = table(sock, "show", "flows", "service", "web", "limit", "4")

    run = run_tetherd_live(tmp_path, [frames, query], SERVICES)
    assert run.returncode == 0, run.stderr

    # Every call, expectation and flow is where the frames went.
    call_backend = {}
    by_call_id = {c.call_id: c for c in calls}
    for frame in run.frames:
        text = frame[42:].decode(errors="replace")
        for call_id, call in by_call_id.items():
            if call_id in text:
                call_backend[call_id_digest(call_id)] = BACKEND_BY_MAC[frame[:6]]

    everything, code = seen["sessions all"]
    assert code == 0
    assert everything["total"] == everything["matched"] == CALLS + 4 * RTSP_SESSIONS + FTP_SESSIONS
    assert len(everything["sessions"]) == everything["total"] and not everything["truncated"]
    for s in everything["sessions"]:
        assert 0 < s["expires_in_ms"] <= 1800 * 1000

    sip, _ = seen["sessions sip"]
    assert {s["call_id_digest"]: s["backend"] for s in sip["sessions"]} == call_backend
    assert len(call_backend) == CALLS
    assert all(s["kind"] == "sip_call" and s["service"] == "sip" for s in sip["sessions"])
    assert without_time(seen["sessions sip_service"][0]["sessions"]) == without_time(sip["sessions"])

    limited, _ = seen["sessions sip_limited"]
    assert len(limited["sessions"]) == 5 and limited["matched"] == CALLS and limited["truncated"]

    rtsp_answer, _ = seen["sessions rtsp"]
    assert {(s["client"], s["client_port"]) for s in rtsp_answer["sessions"]} == \
        {(r.client, p) for r in rtsp for p in r.client_ports}
    assert all(s["kind"] == "rtp_expectation" and s["backend"] in ("b1", "b2")
               for s in rtsp_answer["sessions"])

    ftp_answer, _ = seen["sessions ftp"]
    assert sorted(s["client"] for s in ftp_answer["sessions"]) == sorted(f.client for f in ftp)
    assert all(s["kind"] == "ftp_expectation" and s["expires_in_ms"] <= 30000
               for s in ftp_answer["sessions"])

    b1, _ = seen["sessions b1"]
    on_b1 = [s for s in everything["sessions"] if s["backend"] == "b1"]
    assert without_time(b1["sessions"]) == without_time(on_b1)
    assert b1["matched"] == len(on_b1) > 0 and b1["total"] == everything["total"]
    assert seen["sessions b3_rtsp"][0]["sessions"] == []  # rtsp has no b3: none, not an error

    # Flows: the web connections and the RTSP and FTP control connections (SIP calls are
    # routed by the session table and keep no flow entry).
    flows, code = seen["flows all"]
    assert code == 0
    assert flows["workers"] == [{"worker": 0, "status": "answered", "flows_in_table": 54,
                                 "sampled": 54, "walked_all": True}]
    assert flows["sampled"] == len(flows["flows"]) == WEB_FLOWS + RTSP_SESSIONS + FTP_SESSIONS
    assert not flows["truncated"]

    web_answer, _ = seen["flows web"]
    assert {(f["client"], f["client_port"], f["vip"], f["port"], f["protocol"])
            for f in web_answer["flows"]} == {(c.client, c.sport, WEB_VIP, 80, "tcp") for c in web}
    sent_to = {}
    for frame in run.frames:
        if frame[30:34] == bytes(map(int, WEB_VIP.split("."))):
            sent_to[int.from_bytes(frame[34:36], "big")] = BACKEND_BY_MAC[frame[:6]]
    assert {f["client_port"]: f["backend"] for f in web_answer["flows"]} == sent_to
    assert all(0 < f["expires_in_ms"] <= 300 * 1000 and not f["closing"] for f in web_answer["flows"])

    limited, _ = seen["flows limited"]
    assert len(limited["flows"]) == limited["sampled"] == 10 and limited["truncated"]

    b2, _ = seen["flows b2"]
    expected_b2 = collections.Counter(f["backend"] for f in flows["flows"])["b2"]
    assert len(b2["flows"]) == expected_b2 > 0 and all(f["backend"] == "b2" for f in b2["flows"])

    errors = {k: v for k, v in seen.items() if k.startswith("error ")}
    for name, (answer, code) in errors.items():
        assert code == 1 and set(answer) == {"error"}, name
    assert "no service named 'nosuch'" in errors["error sessions service nosuch"][0]["error"]
    assert "no backend named 'b9'" in errors["error sessions backend b9"][0]["error"]
    assert "sip, rtsp, ftp or flow" in errors["error sessions protocol http"][0]["error"]
    assert "from 1 to 10000" in errors["error sessions limit 10001"][0]["error"]
    assert "unknown filter 'worker'" in errors["error sessions worker 0"][0]["error"]
    assert "from 0 to 0" in errors["error flows worker 1"][0]["error"]

    commands = seen["help"][0]["commands"]
    assert any(c.startswith("show sessions [service NAME]") for c in commands)
    assert any(c.startswith("show flows [worker N]") for c in commands)
    assert "KIND" in seen["sessions table"] and "truncated by the limit" in seen["sessions table"]
    assert "CLIENT" in seen["flows table"] and "4 flow(s) sampled; more may match" in seen["flows table"]


def test_show_flows_asks_every_worker(tmp_path):
    """Two workers, each with its own flow table: the sample comes from both, per worker
    filtering asks one, and the per-worker counts add up to what was sent."""
    rng = random.Random(7)
    web = [TcpConnection(f"203.0.113.{n % 200 + 1}", 20000 + n, WEB_VIP, 80, rng) for n in range(400)]
    seen = {}

    def query(sock):
        seen["all"] = ask(sock, "show", "flows", "limit", "10000")
        seen["worker 1"] = ask(sock, "show", "flows", "worker", "1", "limit", "10000")
        seen["limited"] = ask(sock, "show", "flows", "limit", "7")
        seen["again"] = ask(sock, "show", "flows", "limit", "7")

    run = run_tetherd_live(tmp_path, [[c.syn() for c in web], query], SERVICES, workers=2)
    assert run.returncode == 0, run.stderr
    everything, code = seen["all"]
    assert code == 0 and not everything["truncated"]
    assert [w["status"] for w in everything["workers"]] == ["answered", "answered"]
    per_worker = collections.Counter(f["worker"] for f in everything["flows"])
    assert per_worker[0] > 0 and per_worker[1] > 0, per_worker
    assert {(f["client"], f["client_port"]) for f in everything["flows"]} == \
        {(c.client, c.sport) for c in web}
    one, _ = seen["worker 1"]
    assert [w["worker"] for w in one["workers"]] == [1]
    assert {f["worker"] for f in one["flows"]} == {1} and len(one["flows"]) == per_worker[1]
    for name in ("limited", "again"):
        answer, _ = seen[name]
        assert len(answer["flows"]) == 7 and answer["truncated"]
    # The walk resumes where the last one stopped: a second sample shows other flows.
    first = {(f["client"], f["client_port"]) for f in seen["limited"][0]["flows"]}
    assert first != {(f["client"], f["client_port"]) for f in seen["again"][0]["flows"]}
