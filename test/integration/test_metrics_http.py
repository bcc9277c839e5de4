"""metrics.listen: tetherd serves Prometheus's /metrics over HTTP on a thread of its own. Debian's
real prometheus server scrapes it, and its query API returns tether_ series with their labels;
clients that connect and send nothing, or ask for another path, cost the control thread
nothing and are counted."""
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from harness import CLIENT_MAC, PORT_MAC, REPO, Tetherd, config_text, pcap_device

DASHBOARD = REPO / "contrib" / "grafana" / "tether.json"

VIP = "192.0.2.160"
SERVICES = [
    {"name": "media", "vip": VIP, "port": 9000, "protocol": "udp", "weights": {"b1": 1, "b2": 1}},
    {"name": "voice", "vip": VIP, "port": 5060, "protocol": "udp", "extra": 'dpi = "sip";',
     "weights": {"b2": "weight = 1; max_sessions = 5;", "b3": 1}},  # a capacity: its gauges exist
]


def free_port(family=socket.AF_INET, address="127.0.0.1"):
    with socket.socket(family) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def frames():
    to_media = [Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=f"198.51.100.{i + 1}", dst=VIP)
                / UDP(sport=20000 + i, dport=9000) / b"payload" for i in range(20)]
    not_sip = Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src="198.51.100.99", dst=VIP) \
        / UDP(sport=5060, dport=5060) / b"not a SIP message"
    return to_media + [not_sip]


def get(url, timeout=10):
    """(status, content type, body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type"), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type"), error.read().decode()


def families(exposition):
    return set(re.findall(r"^# TYPE (\S+) ", exposition, re.M))


def dashboard_queries():
    """Every query of the dashboard's panels, those inside rows too."""
    def panels(within):
        for panel in within.get("panels", []):
            yield panel
            yield from panels(panel)
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in panels(dashboard) if panel.get("type") != "row"
            for target in panel["targets"]]


PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                   "unless", "offset", "inf", "nan"}


def metric_names(expression):
    """The metric names a PromQL expression selects: its identifiers once strings, label
    matchers, ranges and label lists are taken out, other than functions (a name before
    "(") and keywords. A query naming a series nobody exports is valid PromQL and simply
    returns nothing, so this is what catches a misspelt name."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    return {name for name in re.findall(r"(?<![\w:.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", bare)
            if name.lower() not in PROMQL_KEYWORDS}


def unknown_metrics(queries, exported):
    """query -> the names it selects that are not among `exported` families."""
    return {query: sorted(metric_names(query) - exported) for query in queries
            if not metric_names(query) or metric_names(query) - exported}


@pytest.fixture
def tetherd(tmp_path):
    wrpcap(str(tmp_path / "in0.pcap"), frames(), linktype=1)
    port = free_port()
    config = tmp_path / "tetherd.cfg"
    config.write_text(config_text(pcap_device(tmp_path, 1), SERVICES,
                                  extra=f'metrics = {{ listen = "127.0.0.1:{port}"; }};\n'))
    daemon = Tetherd(config, tmp_path / "tetherd.sock")
    daemon.url = f"http://127.0.0.1:{port}"
    try:
        yield daemon
    finally:
        assert daemon.stop() == 0, daemon.log()[-3000:]


def test_metrics_over_http_are_tetherctls_and_hostile_clients_cost_the_control_thread_nothing(tetherd):
    deadline = time.monotonic() + 30
    while tetherd.json("show", "counters")["counters"]["rx_packets"] < len(frames()):
        assert time.monotonic() < deadline, "tetherd did not read its pcap"
        time.sleep(0.1)

    status, content_type, body = get(tetherd.url + "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4"), (status, content_type)
    assert families(body) == families(tetherd.ctl("metrics"))
    assert 'tether_backend_packets_total{backend="b1"}' in body
    assert 'tether_dpi_fallbacks_total{worker="0",reason="not_sip"} 1' in body
    promtool = shutil.which("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr

    assert get(tetherd.url + "/")[0] == 404
    assert get(tetherd.url + "/metrics/../admin")[0] == 404
    post = urllib.request.Request(tetherd.url + "/metrics", data=b"x" * 100, method="POST")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(post, timeout=10)

    # Clients that take both request threads and send nothing, and one that sends half a
    # request: the control socket answers at once, and a scrape gets through once their read
    # timeout (5 s) closed them.
    hostile = [socket.create_connection(("127.0.0.1", int(tetherd.url.rsplit(":", 1)[1]))) for _ in range(3)]
    hostile[2].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    try:
        started = time.monotonic()
        tetherd.ctl("show", "counters")
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        status, _, body = get(tetherd.url + "/metrics", timeout=30)
        assert status == 200 and "tether_rx_packets_total" in body
        assert time.monotonic() - started < 15
    finally:
        for s in hostile:
            s.close()

    # The Grafana dashboard names only families tetherd exports (every query, every name in
    # it), and the check sees a misspelt name in any query: a letter doubled or dropped.
    exported = families(body)
    queries = dashboard_queries()
    assert len(queries) >= 30 and unknown_metrics(queries, exported) == {}, unknown_metrics(queries, exported)
    for panel in ("refused_full_sessions", "backend_held", "backend_capacity", "sip_unavailable_sent"):
        assert any(f"tether_{panel}" in query for query in queries), panel
    for query in queries:
        name = sorted(metric_names(query))[0]
        for misspelt in (name.replace("_", "__", 1), name[:-1], "tehter" + name[6:]):
            assert unknown_metrics([query.replace(name, misspelt)], exported), (query, misspelt)
    assert metric_names("sum by (reason) (rate(tether_a_total{reason=~\"x|y\"}[1m])) / on (reason) tether_b > 0") \
        == {"tether_a_total", "tether_b"}

    counts = tetherd.json("show", "counters")["metrics"]
    assert counts["metrics_scrapes"] >= 2 and counts["metrics_not_found"] == 2, counts
    assert counts["metrics_render_timeouts"] == 0, counts


def test_metrics_listen_on_an_ipv6_address(tmp_path):
    """metrics.listen takes an IPv6 address in brackets, and a scrape over IPv6 gets the
    same exposition."""
    port = free_port(socket.AF_INET6, "::1")
    config = tmp_path / "tetherd.cfg"
    config.write_text(config_text("net_null0", SERVICES, extra=f'metrics = {{ listen = "[::1]:{port}"; }};\n'))
    daemon = Tetherd(config, tmp_path / "tetherd.sock")
    try:
        status, content_type, body = get(f"http://[::1]:{port}/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4"), (status, content_type)
        assert families(body) == families(daemon.ctl("metrics"))
    finally:
        assert daemon.stop() == 0, daemon.log()[-3000:]


def test_prometheus_scrapes_tetherd_and_has_its_series_by_label(tetherd, tmp_path):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus missing: run tools/deps")
    web = free_port()
    scrape_config = tmp_path / "prometheus.yml"
    scrape_config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: tether\n    static_configs:\n      - targets: ['{tetherd.url.split('//')[1]}']\n")
    with open(tmp_path / "prometheus.log", "w") as log:
        server = subprocess.Popen([prometheus, f"--config.file={scrape_config}",
                                   f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{web}"],
                                  stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{web}/api/v1/query?query="

    def answer(expression):
        """Prometheus's answer (its JSON) to an instant query, or None while it does not listen."""
        try:
            return json.loads(get(api + urllib.parse.quote(expression), timeout=5)[2])
        except (urllib.error.URLError, ConnectionError, ValueError):
            return None

    def query(expression):
        found = answer(expression)
        return found["data"]["result"] if found and found["status"] == "success" else []

    try:
        deadline = time.monotonic() + 60
        while not query('up{job="tether"} == 1'):
            assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "prometheus never scraped tetherd: " + \
                (tmp_path / "prometheus.log").read_text()[-3000:]
            time.sleep(0.5)
        weights = query("tether_backend_weight")
        assert {(s["metric"]["service"], s["metric"]["backend"]) for s in weights} == {
            ("media", "b1"), ("media", "b2"), ("voice", "b2"), ("voice", "b3")}, weights
        fallbacks = query('tether_dpi_fallbacks_total{reason="not_sip"}')
        assert [s["value"][1] for s in fallbacks] == ["1"], fallbacks
        packets = query("tether_backend_packets_total")
        assert {s["metric"]["backend"] for s in packets} == {"b1", "b2", "b3"}, packets
        assert sum(float(s["value"][1]) for s in packets) == 21, packets

        # The Grafana dashboard: every family its queries name is one tetherd has, and
        # Prometheus evaluates every query.
        named = {name for expression in dashboard_queries() for name in re.findall(r"\btether_[a-z0-9_]+", expression)}
        assert named and named <= families(tetherd.ctl("metrics")), named - families(tetherd.ctl("metrics"))
        for expression in dashboard_queries():
            found = answer(expression)
            assert found and found["status"] == "success", (expression, found)
        assert query("tether_backend_up") and query('rate(tether_backend_packets_total[1m])') is not None
        # The capacity panel's series: one per backend with a capacity, by service.
        for gauge in ("tether_backend_capacity", "tether_backend_held"):
            series = query(gauge)
            assert [(s["metric"]["service"], s["metric"]["backend"], s["metric"]["counts"]) for s in series] == [
                ("voice", "b2", "sessions")], series
        assert [s["value"][1] for s in query("tether_backend_capacity")] == ["5"]
    finally:
        server.terminate()
        server.wait(timeout=30)
