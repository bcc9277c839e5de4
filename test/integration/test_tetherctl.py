"""tetherctl's human output for every command, on a running tetherd with calls and flows:
the printer is chosen by the command that was sent, each answer prints as its table or
message with exit code 0, errors go to stderr with exit code 1, and nothing ever shows an
exception."""
import json
import random
import re
import socket
import subprocess
import threading
import time

from harness import BACKENDS, TETHERCTL, config_text, run_tetherd_live
from sessions import SipCall, TcpConnection

SIP_VIP, WEB_VIP = "192.0.2.160", "192.0.2.161"
SERVICES = [
    {"name": "sip", "vip": SIP_VIP, "port": 5060, "protocol": "udp", "extra": 'dpi = "sip";',
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
    {"name": "web", "vip": WEB_VIP, "port": 80, "protocol": "tcp", "weights": {"b1": 1, "b2": 1}},
    {"name": "web6", "vip": "2001:db8::161", "port": 443, "protocol": "tcp", "weights": {"b3": 1}},
]
CALLS, WEB_FLOWS = 12, 20
# What a crash, an uncaught exception or a Python-style failure would leave in the output.
EXCEPTION_TEXT = ("terminate called", "instance of", "what()", "json.exception", "Traceback", "Aborted",
                  "core dumped", "type_error", "out_of_range")


def run(sock, *words):
    result = subprocess.run([str(TETHERCTL), "-s", str(sock), *words],
                            capture_output=True, text=True, timeout=30)
    for text in (result.stdout, result.stderr):
        for bad in EXCEPTION_TEXT:
            assert bad not in text, (words, result.stdout, result.stderr)
    return result


def human(sock, *words):
    """The human output of a command that must succeed."""
    result = run(sock, *words)
    assert result.returncode == 0, (words, result.stderr)
    assert result.stderr == "", (words, result.stderr)
    assert result.stdout.strip(), words
    return result.stdout


def answer(sock, *words):
    result = run(sock, "--json", *words)
    assert result.returncode == 0, (words, result.stderr)
    return json.loads(result.stdout)


def table_rows(output, header):
    """The rows under the table whose header line starts with `header`, split on runs of
    two or more spaces, up to the first blank line or line that is not a row."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    columns = len(re.split(r"\s{2,}", lines[start].strip()))
    rows = []
    for line in lines[start + 1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if not line.strip() or len(cells) < columns - 1:
            break
        rows.append(cells)
    return rows


def test_every_command_prints_a_sane_human_answer(tmp_path):
    rng = random.Random(1313)
    calls = [SipCall(n, SIP_VIP, rng, ["198.51.100.10"], bye=False) for n in range(CALLS)]
    web = [TcpConnection(f"203.0.113.{n + 1}", 30000 + n, WEB_VIP, 80, rng) for n in range(WEB_FLOWS)]
    frames = [f for c in calls for f in c.frames()] + [c.syn() for c in web]
    seen = {}

    def operate(sock):
        for words in (["show", "services"], ["show", "backends"], ["show", "counters"],
                      ["show", "workers"], ["show", "sessions"], ["show", "flows"],
                      ["show", "sessions", "protocol", "sip", "limit", "5"],
                      ["show", "flows", "service", "web", "limit", "4"], ["show", "sync"], ["metrics"],
                      ["help"]):
            seen[" ".join(words)] = (answer(sock, *words), human(sock, *words))
        for words in (["backend", "weight", "b1", "2"], ["backend", "weight", "b1", "3", "web"],
                      ["backend", "drain", "b2"], ["backend", "disable", "b2"],
                      ["backend", "enable", "b2"],
                      ["backend", "add", "b4", "192.0.2.14", "web", "weight", "2",
                       "mac", "02:00:00:00:01:04"],
                      ["show", "backends"], ["backend", "remove", "b4", "web"],
                      ["backend", "remove", "b4"], ["reload"]):
            seen[" ".join(words) + " (changes)"] = human(sock, *words)
        # The file gains b5 in web: the reload says so.
        config = tmp_path / "tetherd.cfg"
        device = re.search(r'device = "([^"]+)"', config.read_text()).group(1)
        services = [dict(s) for s in SERVICES]
        services[1] = dict(services[1], weights={"b1": 1, "b2": 1, "b5": 1})  # web
        config.write_text(config_text(device, services, backends={
            **BACKENDS, "b5": ("192.0.2.15", "02:00:00:00:01:05")}))
        seen["reload b5"] = human(sock, "reload")
        for words in (["frobnicate"], ["backend", "weight", "b1", "lots"], ["show", "flows", "worker", "9"],
                      ["show", "sessions", "backend", "b9"], ["backend", "remove", "b9"], ["show"]):
            seen["error " + " ".join(words)] = run(sock, *words)

    result = run_tetherd_live(tmp_path, [frames, operate], SERVICES)
    assert result.returncode == 0, result.stderr

    services, text = seen["show services"]
    rows = table_rows(text, "SERVICE")
    assert len(rows) == sum(len(s["backends"]) for s in services["services"]) == 6
    assert ["sip", f"{SIP_VIP}:5060/udp", "maglev", "sip", "b1", "1", "up"] in rows
    assert ["web", f"{WEB_VIP}:80/tcp", "maglev", "none", "b2", "1", "up"] in rows
    assert ["web6", "[2001:db8::161]:443/tcp", "maglev", "none", "b3", "1", "up"] in rows

    backends, text = seen["show backends"]
    rows = table_rows(text, "BACKEND")
    assert [r[0] for r in rows] == [b["name"] for b in backends["backends"]] == ["b1", "b2", "b3"]
    assert rows[0][1:4] == ["192.0.2.11", "02:00:00:00:01:01 (static)", "up"]

    counters, text = seen["show counters"]
    for section in ("COUNTERS", "SESSIONS", "DROPS", "DPI_FALLBACKS", "MEMORY"):
        assert re.search(rf"^{section}\s+VALUE$", text, re.M), section
    received = int(re.search(r"^rx_packets\s+(\d+)$", text, re.M).group(1))
    assert received >= counters["counters"]["rx_packets"] >= len(frames)
    assert re.search(r"^sip_sessions_created\s+\d+$", text, re.M)
    assert re.search(r"^rx_per_worker: \d+$", text, re.M)
    assert [r[0] for r in table_rows(text, "BACKEND")] == ["b1", "b2", "b3"]
    assert "PACKETS" in text and "SESSIONS" in text

    workers, text = seen["show workers"]
    rows = table_rows(text, "WORKER")
    assert len(rows) == len(workers["workers"]) == 1 and rows[0][0] == "0"
    assert f"snapshot generation {workers['snapshot_generation']} (" in text

    sync, text = seen["show sync"]  # no `sync` in the configuration
    assert sync == {"enabled": False} and text == "state sync is not configured\n"

    sessions, text = seen["show sessions"]
    rows = table_rows(text, "KIND")
    assert len(rows) == len(sessions["sessions"]) == CALLS
    assert all(r[0] == "sip_call" and r[1] == "sip" and r[2] in BACKENDS for r in rows)
    assert f"{CALLS} of {CALLS} matched ({CALLS} in the table)\n" in text
    _, text = seen["show sessions protocol sip limit 5"]
    assert len(table_rows(text, "KIND")) == 5 and "truncated by the limit" in text

    flows, text = seen["show flows"]
    rows = table_rows(text, "WORKER")
    assert len(rows) == len(flows["flows"]) == WEB_FLOWS
    assert all(r[1] == "tcp" and r[3] == f"{WEB_VIP}:80" and r[4] == "web" for r in rows)
    assert f"{WEB_FLOWS} flow(s) sampled\n" in text
    _, text = seen["show flows service web limit 4"]
    assert len(table_rows(text, "WORKER")) == 4 and "4 flow(s) sampled; more may match" in text

    metrics, text = seen["metrics"]
    # two calls: the worker loop's own counters (polls, cycles) moved in between
    def settled(exposition):
        return re.sub(r"^(tether_\w+_(?:polls|cycles)_total\S*) \d+$", r"\1 N", exposition, flags=re.M)
    assert settled(text) == settled(metrics["metrics"])
    assert "# TYPE tether_rx_packets_total counter" in text and 'tether_backend_up{backend="b1"} 1' in text

    commands, text = seen["help"]
    assert text.splitlines() == commands["commands"]

    changes = {k[:-len(" (changes)")]: v for k, v in seen.items() if k.endswith(" (changes)")}
    generations = []
    for words in ("backend weight b1 2", "backend weight b1 3 web", "backend drain b2",
                  "backend disable b2", "backend enable b2", "backend add b4 192.0.2.14 web weight 2 "
                  "mac 02:00:00:00:01:04", "backend remove b4 web", "backend remove b4"):
        done = re.fullmatch(r"done: snapshot generation (\d+)\n", changes[words])
        assert done, (words, changes[words])
        generations.append(int(done.group(1)))
    assert generations == sorted(generations) and len(set(generations)) == len(generations)
    assert re.fullmatch(r"done: snapshot generation \d+\nbackends added: none\nbackends removed: none\n",
                        changes["reload"])
    assert re.fullmatch(r"done: snapshot generation \d+\nbackends added: b5\nbackends removed: none\n",
                        seen["reload b5"])
    rows = table_rows(changes["show backends"], "BACKEND")
    assert [r[0] for r in rows] == ["b1", "b2", "b3", "b4"] and rows[1][3] == "up"

    errors = {k: v for k, v in seen.items() if k.startswith("error ")}
    for name, result in errors.items():
        assert result.returncode == 1 and result.stdout == "", name
        assert result.stderr.startswith("tetherctl: ") and result.stderr.count("\n") == 1, name
    assert "unknown command 'frobnicate'" in errors["error frobnicate"].stderr
    assert "weight must be a number" in errors["error backend weight b1 lots"].stderr
    assert "no backend named 'b9'" in errors["error show sessions backend b9"].stderr
    assert "no backend named 'b9'" in errors["error backend remove b9"].stderr


def test_usage_errors_and_a_missing_tetherd(tmp_path):
    result = run(tmp_path / "none.sock")
    assert result.returncode == 2 and "Usage: tetherctl" in result.stdout
    result = run(tmp_path / "none.sock", "--bogus", "show", "counters")
    assert result.returncode == 2 and "Usage: tetherctl" in result.stderr
    result = run(tmp_path / "none.sock", "--timeout", "0", "show", "counters")
    assert result.returncode == 2 and "--timeout" in result.stderr
    result = run(tmp_path / "none.sock", "show", "counters")
    assert result.returncode == 1 and "is tetherd running?" in result.stderr


class FakeTetherd(threading.Thread):
    """A control socket that drops the first `drop` connections (after reading what they
    sent, or before, as tetherd drops an idle client) and answers the next ones, or never
    answers when `answer` is None. Counts the connections and commands."""

    def __init__(self, path, drop=0, answer=b'{"ok":true,"snapshot_generation":7}\n', read_first=False):
        super().__init__(daemon=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.drop, self.answer, self.read_first = drop, answer, read_first
        self.connections, self.commands, self.held = 0, [], []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            self.connections += 1
            if self.connections <= self.drop:
                if self.read_first:
                    # Read nothing but wait for the command to be there: closing with unread
                    # data is a reset for the client, as when tetherd evicts an idle client.
                    time.sleep(0.05)
                client.close()
                continue
            self.commands.append(client.recv(4096))
            if self.answer is None:
                self.held.append(client)  # never answers
                continue
            client.sendall(self.answer)
            client.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join()
        for client in self.held:
            client.close()
        self.listener.close()


def test_tetherctl_tries_again_while_tetherd_drops_it_unanswered(tmp_path):
    for read_first in (False, True):
        path = tmp_path / f"fake{read_first}.sock"
        with FakeTetherd(path, drop=5, read_first=read_first) as fake:
            result = run(path, "backend", "drain", "b1")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "done: snapshot generation 7\n"
        assert fake.connections == 6 and fake.commands == [b"backend drain b1\n"]


def test_tetherctl_gives_up_in_bounded_time(tmp_path):
    # Always dropped unanswered: retried until --timeout, then a message.
    with FakeTetherd(tmp_path / "drop.sock", drop=10**9) as fake:
        start = time.monotonic()
        result = run(tmp_path / "drop.sock", "--timeout", "1", "show", "counters")
        took = time.monotonic() - start
    assert result.returncode == 1 and "tetherd did not answer" in result.stderr
    assert 0.8 < took < 3 and fake.connections > 3
    # The command was taken but never answered: it may be running, so no second try.
    with FakeTetherd(tmp_path / "mute.sock", answer=None) as fake:
        start = time.monotonic()
        result = run(tmp_path / "mute.sock", "--timeout", "1", "backend", "disable", "b1")
        took = time.monotonic() - start
    assert result.returncode == 1 and "no answer from tetherd within 1 s" in result.stderr
    assert 0.8 < took < 3 and fake.connections == 1
    # A backlog nobody accepts from: connect() fails with EAGAIN, tried again until --timeout.
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    busy.bind(str(tmp_path / "busy.sock"))
    busy.listen(0)
    waiting = []
    for _ in range(4):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(str(tmp_path / "busy.sock"))
        except BlockingIOError:
            pass
        waiting.append(s)
    start = time.monotonic()
    result = run(tmp_path / "busy.sock", "--timeout", "1", "show", "counters")
    took = time.monotonic() - start
    for s in waiting + [busy]:
        s.close()
    assert result.returncode == 1 and "its control socket is busy" in result.stderr
    assert 0.8 < took < 3
    # A socket file nobody listens on (tetherd gone): refused, tried again for a second.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()
    start = time.monotonic()
    result = run(tmp_path / "stale.sock", "show", "counters")
    took = time.monotonic() - start
    assert result.returncode == 1 and "is tetherd running?" in result.stderr and took < 3
