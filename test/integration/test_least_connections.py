"""least-connections on the real tetherd, against maglev in the same run: connections of
unequal lengths (those a slow backend serves last, the others end after a round), live
connections per backend counted from the SYN to the flow's end (FIN, then fin_timeout; or
idle expiry), and new connections placed by live connections per unit of weight.

One tetherd with two workers on a veth pair (the kernel spreads the flows over both queues
as RSS does, so the counts are summed across workers), two TCP services on disjoint backends:
`lc` (least-connections, b1 b2 b3 of weights 1 1 2) and `mg` (maglev, m1 m2 m3, same
weights). In every round each service gets 16 new connections; the connections the slow
backends (b1, m1) took stay open and send a keepalive each round, the others close (FIN)
at the start of the next round."""
import collections
import json
import random
import re
import subprocess

from harness import CLIENT_MAC, PORT_MAC, TETHERCTL, mac_bytes, run_tetherd, run_tetherd_live
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from sessions import FtpSession

LC_VIP, MG_VIP = "192.0.2.140", "192.0.2.141"
WEIGHTS = {"lc": {"b1": 1, "b2": 1, "b3": 2}, "mg": {"m1": 1, "m2": 1, "m3": 2}}
VIPS = {"lc": LC_VIP, "mg": MG_VIP}
SLOW = {"b1", "m1"}
BACKENDS = {
    "b1": ("192.0.2.11", "02:00:00:00:01:01"), "b2": ("192.0.2.12", "02:00:00:00:01:02"),
    "b3": ("192.0.2.13", "02:00:00:00:01:03"), "m1": ("192.0.2.21", "02:00:00:00:02:01"),
    "m2": ("192.0.2.22", "02:00:00:00:02:02"), "m3": ("192.0.2.23", "02:00:00:00:02:03"),
}
SERVICES = [
    {"name": "lc", "vip": LC_VIP, "port": 80, "protocol": "tcp",
     "extra": 'scheduler = "least-connections"; fin_timeout = 0; idle_timeout = 3;', "weights": WEIGHTS["lc"]},
    {"name": "mg", "vip": MG_VIP, "port": 80, "protocol": "tcp",
     "extra": "fin_timeout = 0; idle_timeout = 3;", "weights": WEIGHTS["mg"]},
]
ROUNDS, NEW_PER_ROUND = 6, 16
# least-connections' bound: right after a round's placements, the live connections per unit
# of weight of any two backends differ by at most one connection of the lightest backend
# (1/1), plus one per other worker that may choose at the same instant from the same counts.
WORKERS = 2
BOUND = 1 + (WORKERS - 1)


def segment(service, client_port, flags, seq=1000):
    client = f"198.51.100.{10 + client_port % 50}"
    return bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=client, dst=VIPS[service])
                 / TCP(sport=client_port, dport=80, flags=flags, seq=seq))


def ctl_json(sock, *words):
    result = subprocess.run([str(TETHERCTL), "-s", str(sock), "--json", *words],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def metric_by_backend(sock, family):
    """{backend: value} of a gauge in `tetherctl metrics`."""
    result = subprocess.run([str(TETHERCTL), "-s", str(sock), "metrics"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return {m.group(1): int(m.group(2))
            for m in re.finditer(family + r'\{backend="([^"]+)"\} (\d+)\n', result.stdout)}


def spread(live, weights):
    """max - min of live connections per unit of weight."""
    ratios = [live[b] / w for b, w in weights.items()]
    return max(ratios) - min(ratios)


def test_least_connections_equalises_live_connections_per_weight(tmp_path):
    rounds = []    # per round: {"placed": {service: {port: backend}}, "live": {backend: count}}
    open_ = {"lc": {}, "mg": {}}  # client port -> backend, of connections not closed yet

    def phases():
        next_port = 20000
        for number in range(ROUNDS):
            # Short connections of the last round end; long ones send a keepalive.
            closing, keepalive = [], []
            for service, conns in open_.items():
                for port, backend in list(conns.items()):
                    if backend in SLOW:
                        keepalive.append(segment(service, port, "A", 1001 + number))
                    else:
                        closing.append(segment(service, port, "FA", 1001))
                        del conns[port]
            yield closing + keepalive  # then settle: fin_timeout 0, the sweep uncounts them
            new = {service: list(range(next_port + 1000 * i, next_port + 1000 * i + NEW_PER_ROUND))
                   for i, service in enumerate(open_)}
            next_port += 10
            yield [segment(s, p, "S") for s, ports in new.items() for p in ports]

            def look(sock, new=new):
                flows = ctl_json(sock, "show", "flows", "limit", "10000")["flows"]
                by_port = {(f["service"], f["client_port"]): f["backend"] for f in flows}
                placed = {s: {p: by_port.get((s, p)) for p in ports} for s, ports in new.items()}
                for service, ports in placed.items():
                    open_[service].update(ports)
                live = {b["name"]: b["connections"] for b in ctl_json(sock, "show", "backends")["backends"]}
                expected = collections.Counter(b for conns in open_.values() for b in conns.values())
                rounds.append({"placed": placed, "live": live, "expected": expected,
                               "gauge": metric_by_backend(sock, "tether_backend_connections")})
            yield look

        def idle(sock):  # nothing more is sent: every connection left ends by idle expiry
            import time
            time.sleep(3.5)
            rounds.append({"live": {b["name"]: b["connections"]
                                    for b in ctl_json(sock, "show", "backends")["backends"]}})
        yield idle

    run = run_tetherd_live(tmp_path, phases(), SERVICES, workers=WORKERS, settle=0.3,
                           backends=BACKENDS, flows_per_worker=4096)
    assert run.returncode == 0, run.stderr
    assert len(rounds) == ROUNDS + 1
    assert min(run.stats["rx_per_worker"]) > 0, "the connections were not spread over the workers"
    for number, r in enumerate(rounds[:-1]):
        for service, ports in r["placed"].items():
            assert None not in ports.values(), f"round {number}: a new {service} connection has no flow"
        live = r["live"]
        # The count is exact: every connection open now, and none that closed.
        assert {b: live[b] for b in BACKENDS} == {b: r["expected"][b] for b in BACKENDS}, f"round {number}"
        # Prometheus has the same counts as gauges.
        assert {b: r["gauge"].get(b) for b in BACKENDS} == {b: live[b] for b in BACKENDS}, f"round {number}"
        lc = {b: live[b] for b in WEIGHTS["lc"]}
        mg = {b: live[b] for b in WEIGHTS["mg"]}
        print(f"round {number}: lc {lc} spread {spread(lc, WEIGHTS['lc']):.1f}; "
              f"mg {mg} spread {spread(mg, WEIGHTS['mg']):.1f}")
        assert spread(lc, WEIGHTS["lc"]) <= BOUND, f"round {number}: {lc}"
    # maglev ignores what the slow backend still holds: its connections pile up there.
    final_mg = {b: rounds[-2]["live"][b] for b in WEIGHTS["mg"]}
    final_lc = {b: rounds[-2]["live"][b] for b in WEIGHTS["lc"]}
    assert spread(final_mg, WEIGHTS["mg"]) > 3 * BOUND, final_mg
    assert final_lc["b1"] < final_mg["m1"]
    # Idle expiry ends the rest: every count back to 0.
    assert all(count == 0 for count in rounds[-1]["live"].values()), rounds[-1]["live"]


def test_ftp_data_follows_its_control_connection_under_least_connections(tmp_path):
    """least-connections places control connections; each data connection still follows its
    session's PASV/EPSV to the control connection's backend (one worker, through a pcap)."""
    rng = random.Random(19)
    vip = "192.0.2.142"
    service = {"name": "ftp-lc", "vip": vip, "port": 21, "protocol": "tcp",
               "extra": 'dpi = "ftp"; scheduler = "least-connections";', "weights": {"b1": 1, "b2": 1, "b3": 2}}
    sessions = [FtpSession(n, vip, rng, [f"203.0.{n // 250}.{n % 250 + 1}"]) for n in range(200)]
    parts = [[s.signalling() for s in sessions], [s.transfer() for s in sessions], [s.close() for s in sessions]]
    owner = {f[12:]: s.number for part in parts for s, frames in zip(sessions, part) for f in frames}
    run = run_tetherd(tmp_path, [[f for part in parts for frames in part for f in frames]], [service],
                      backends={b: BACKENDS[b] for b in ("b1", "b2", "b3")})
    assert run.returncode == 0, run.stderr
    by_mac = {mac_bytes(mac): name for name, (_address, mac) in BACKENDS.items()}
    reached = collections.defaultdict(set)
    for frame in run.frames:
        reached[owner[frame[12:]]].add(by_mac[frame[:6]])
    assert all(len(backends) == 1 for backends in reached.values()), "a session split over backends"
    assert len(reached) == len(sessions)
    assert run.stats["sessions"]["ftp_data_expectations_used"] == len(sessions)
    # Every control connection was open when the next came: placed exactly by weight.
    assert collections.Counter(next(iter(b)) for b in reached.values()) == {"b1": 50, "b2": 50, "b3": 100}
