"""tetherd's command line: options, --check, and refusing to start on a bad setup."""
import subprocess

from conftest import SERVICES
from harness import REPO, TETHERD, config_text, pcap_device, start_tetherd


def tetherd(*args, timeout=60):
    return subprocess.run([str(TETHERD), *args], capture_output=True, text=True, timeout=timeout)


def test_version_and_help():
    assert tetherd("--version").stdout.startswith("tetherd ")
    result = tetherd("--help")
    assert result.returncode == 0 and "--config" in result.stdout and "--check" in result.stdout


def test_wrong_option_prints_error_and_usage():
    result = tetherd("--bogus")
    assert result.returncode == 2
    assert "unrecognised option '--bogus'" in result.stderr or "unrecognized option" in result.stderr
    assert "Usage: tetherd" in result.stderr


def test_config_is_required():
    result = tetherd()
    assert result.returncode == 2 and "--config is required" in result.stderr


def test_check_prints_a_readable_summary():
    for name in ("reference.cfg", "lab.cfg"):
        result = tetherd("--check", "-c", str(REPO / "conf" / name))
        assert result.returncode == 0, result.stderr
        assert "valid" in result.stdout and "services:" in result.stdout and "weight" in result.stdout


def test_check_rejects_a_bad_config_with_file_and_line(tmp_path):
    config = tmp_path / "bad.cfg"
    text = config_text("net_null0", SERVICES).replace("weight = 3;", "weight = 70000;", 1)
    config.write_text(text)
    result = tetherd("--check", "-c", str(config))
    assert result.returncode == 1
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "70000" in l)
    assert f"bad.cfg:{line}:" in result.stderr and "70000 is out of range 0..65535" in result.stderr


def test_missing_config_file(tmp_path):
    result = tetherd("--check", "-c", str(tmp_path / "absent.cfg"))
    assert result.returncode == 1 and "cannot read the file" in result.stderr


def test_unknown_device_stops_before_forwarding(tmp_path):
    config = tmp_path / "t.cfg"
    # A vdev name no driver claims: the EAL refuses it and tetherd exits non-zero.
    config.write_text(config_text("net_nosuchdriver0", SERVICES))
    result = tetherd("-c", str(config), "--idle-exit", "1", "--socket", str(tmp_path / "s.sock"))
    assert result.returncode == 1
    assert "EAL initialisation failed" in result.stderr or "no device" in result.stderr


def test_too_many_workers_for_the_device(tmp_path):
    from scapy.utils import wrpcap
    wrpcap(str(tmp_path / "in0.pcap"), [], linktype=1)
    config = tmp_path / "t.cfg"
    # net_pcap with one rx_pcap has one RX queue: two workers cannot each have one.
    config.write_text(config_text(pcap_device(tmp_path, 1), SERVICES, workers=2))
    result = tetherd("-c", str(config), "--idle-exit", "1", "--socket", str(tmp_path / "s.sock"))
    assert result.returncode == 1
    assert "2 workers need one of each per worker" in result.stderr


def test_sigterm_under_load_prints_summary_and_exits_cleanly(tmp_path):
    """net_null receives an endless stream of zeroed frames: tetherd must stop on SIGTERM
    while busy, report them all as dropped, and exit 0."""
    import json
    import signal
    import time

    config = tmp_path / "t.cfg"
    config.write_text(config_text("net_null0", SERVICES))
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen([str(TETHERD), "-c", str(config), "--stats-file", str(stats),
                             "--socket", str(tmp_path / "s.sock")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "tetherd summary" in stdout
    counters = json.loads(stats.read_text())
    received = counters["counters"]["rx_packets"]
    assert received > 10000
    # Zeroed frames: ethertype 0. Some may still sit in the RX ring when the workers stop.
    assert counters["drops"]["unsupported_ethertype"] == received
    assert counters["counters"]["tx_packets"] == 0


def test_second_tetherd_on_the_same_socket_is_refused(tmp_path):
    """The first tetherd answers on the socket; the second must stop before touching ports."""
    config = tmp_path / "t.cfg"
    config.write_text(config_text("net_null0", SERVICES))
    sock = str(tmp_path / "s.sock")
    first = start_tetherd(config, sock)
    try:
        second = tetherd("-c", str(config), "--socket", sock)
        assert second.returncode == 1
        assert "is in use: is another tetherd running?" in second.stderr
        assert first.poll() is None
    finally:
        first.terminate()
        first.communicate(timeout=20)
