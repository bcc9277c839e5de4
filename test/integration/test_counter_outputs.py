"""Every counter of tetherd's stats file appears in `tetherctl metrics` (Prometheus) and in DPDK
telemetry, and the metrics pass `promtool check metrics`: the outputs are generated from one
list per counter family, and this test is what notices an output that forgot one."""
import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from harness import CLIENT_MAC, PORT_MAC, TETHERCTL, TETHERD, config_text, pcap_device

VIP = "192.0.2.150"
SERVICES = [
    {"name": "media", "vip": VIP, "port": 9000, "protocol": "udp", "weights": {"b1": 1, "b2": 1}},
    {"name": "voice", "vip": VIP, "port": 5060, "protocol": "udp", "extra": 'dpi = "sip";',
     "weights": {"b2": 1, "b3": 1}},
]


def frames():
    to_media = [Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=f"198.51.100.{i + 1}", dst=VIP)
                / UDP(sport=20000 + i, dport=9000) / b"payload" for i in range(20)]
    not_sip = Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src="198.51.100.99", dst=VIP) \
        / UDP(sport=5060, dport=5060) / b"not a SIP message"
    junk = Ether(src=CLIENT_MAC, dst=PORT_MAC, type=0x88b5) / b"local experimental ethertype"
    return to_media + [not_sip, junk]


def telemetry(prefix, commands):
    """Each command's answer from DPDK telemetry, as dpdk-telemetry.py prints it."""
    for _ in range(20):
        result = subprocess.run(["/usr/bin/python3", "/usr/bin/dpdk-telemetry.py", "-f", prefix],
                                input="".join(c + "\n" for c in commands), capture_output=True,
                                text=True, timeout=30)
        if "Error connecting" not in result.stdout:
            break
        time.sleep(0.5)
    answers = {}
    for line in result.stdout.splitlines():
        if line.startswith('{"/'):
            answers.update(json.loads(line))
    assert set(answers) == set(commands), result.stdout + result.stderr
    return answers


def parse_exposition(text):
    """{(family, frozenset of (label, value))} of every sample line."""
    samples = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? (\d+(?:\.\d+)?)', line)
        assert match, line
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        samples.add((match.group(1), labels))
    return samples


def stats_names(stats):
    """Every counter of the stats file: (section, name), (section, index) for rx_per_worker
    and (section, backend, name) for the backends."""
    names = []
    for section, values in stats.items():
        if isinstance(values, list):
            names += [(section, i) for i in range(len(values))]
        elif section in ("backends", "services"):
            names += [(section, b, n) for b, fields in values.items() for n in fields]
        else:
            names += [(section, n) for n in values]
    return names


def metric_for(counter, samples):
    """The Prometheus samples a stats-file counter became. Names follow one rule: tether_NAME
    (with _total for counters, and a unit when NAME does not say what it counts); a name
    made of a label value and a stem (sip_sessions_created, rtp_expectations_used) is the
    stem with that label; a reason is a label of tether_drops_total or
    tether_dpi_fallbacks_total; the backends' counters are tether_backend_NAME_total by
    backend, but for refused_REASON, tether_backend_sessions_refused_total by backend and
    reason; the services' (admission) are tether_service_sessions_admitted_total and
    tether_service_sessions_refused_total by service (and reason); rx_per_worker[i] is
    tether_rx_packets_total of worker i."""
    section = counter[0]
    found = []
    for family, labels in samples:
        stem = re.sub(r"_total$", "", family.removeprefix("tether_"))
        label = dict(labels)
        if section in ("drops", "dpi_fallbacks"):
            ok = stem == section and label.get("reason") == counter[1]
        elif section == "backends" and counter[2].startswith("refused_"):
            ok = (stem == "backend_sessions_refused" and label.get("backend") == counter[1]
                  and label.get("reason") == counter[2].removeprefix("refused_"))
        elif section == "backends":
            ok = stem == f"backend_{counter[2]}" and label.get("backend") == counter[1]
        elif section == "services" and counter[2].startswith("refused_"):
            ok = (stem == "service_sessions_refused" and label.get("service") == counter[1]
                  and label.get("reason") == counter[2].removeprefix("refused_"))
        elif section == "services":
            ok = stem == f"service_sessions_{counter[2]}" and label.get("service") == counter[1]
        elif section == "rx_per_worker":
            ok = stem == "rx_packets" and label.get("worker") == str(counter[1])
        else:
            named = [stem] + [f"{label[k]}_{stem}" for k in ("protocol", "kind") if k in label]
            ok = any(n == counter[1] or n.startswith(counter[1] + "_") for n in named)
        if ok:
            found.append((family, labels))
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_every_counter_is_in_prometheus_and_telemetry(tmp_path, workers):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing: run tools/deps (package prometheus)")
    for queue in range(workers):
        wrpcap(str(tmp_path / f"in{queue}.pcap"), frames(), linktype=1)
    received = len(frames()) * workers
    prefix = f"tether-counters-{tmp_path.name}"
    config = tmp_path / "tetherd.cfg"
    config.write_text(config_text(pcap_device(tmp_path, workers), SERVICES, workers=workers).replace(
        '"--no-pci",', f'"--no-pci", "--file-prefix={prefix}",'))
    sock, stats_file = tmp_path / "tetherd.sock", tmp_path / "stats.json"
    proc = subprocess.Popen([str(TETHERD), "-c", str(config), "--socket", str(sock),
                             "--stats-file", str(stats_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while not sock.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)

        def tetherctl(*words):
            result = subprocess.run([str(TETHERCTL), "-s", str(sock), *words],
                                    capture_output=True, text=True, timeout=10)
            assert result.returncode == 0, result.stderr
            return result.stdout

        # once the pcap is drained, the counters stay put (but for the loop's own)
        while json.loads(tetherctl("--json", "show", "counters"))["counters"]["rx_packets"] < received:
            assert time.time() < deadline, "tetherd did not read its pcap"
            time.sleep(0.2)
        metrics = tetherctl("metrics")
        listed = telemetry(prefix, ["/"])["/"]
        commands = [c for c in listed if c.startswith("/tether/")]
        answers = telemetry(prefix, commands)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    stats = json.loads(stats_file.read_text())

    (tmp_path / "metrics.txt").write_text(metrics)
    check = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    for family in re.findall(r"^# TYPE (\S+) (\S+)$", metrics, re.M):
        assert family[0].startswith("tether_")
        assert family[0].endswith("_total") == (family[1] == "counter"), family
        assert f"# HELP {family[0]} " in metrics, family

    samples = parse_exposition(metrics)
    missing = [c for c in stats_names(stats) if not metric_for(c, samples)]
    assert not missing, f"stats-file counters missing from tetherctl metrics: {missing}"

    # telemetry: one command per section of the stats file, with the same names
    assert sorted(commands) == sorted(f"/tether/{s}" for s in stats), commands
    for section, values in stats.items():
        answer = answers[f"/tether/{section}"]
        if isinstance(values, list):
            assert len(answer) == len(values), (section, answer)
        elif section in ("backends", "services"):
            assert {b: sorted(f) for b, f in answer.items()} == \
                {b: sorted(f) for b, f in values.items()}, (section, answer)
        else:
            assert sorted(answer) == sorted(values), (section, answer)
    # and the values are the same counters: the pcap's packets, and the one not-SIP datagram
    assert answers["/tether/counters"]["rx_packets"] == stats["counters"]["rx_packets"] == received
    assert len(stats["rx_per_worker"]) == workers
    # what the control thread owns reaches telemetry too (it publishes it from its loop)
    assert answers["/tether/memory"]["session_table_entries"] == \
        stats["memory"]["session_table_entries"] > 0
    assert stats["dpi_fallbacks"]["not_sip"] == workers
    assert stats["drops"]["unsupported_ethertype"] == workers
    for worker in range(workers):
        assert f'tether_dpi_fallbacks_total{{worker="{worker}",reason="not_sip"}} 1' in metrics
