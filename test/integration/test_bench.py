"""tools/bench --quick: the benchmark program runs end to end on the real binaries (testpmd
and tetherd on net_pcap/net_null vdevs) and produces every figure. Speed is never asserted:
this machine's load decides it."""
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import BUILD, REPO

# Beside another test file (tools/test): the quick runs assert what the program reports and
# that it is well formed, never a speed, and the test command has no time for them alone.

SCENARIOS = ["established", "established_1m", "new_flows", "sip", "mixed", "established_gue"]


def test_quick_benchmark_produces_every_figure(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "bench.py"), "--quick", "--warmup", "0.5",
                             "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TETHER_BUILD": str(BUILD)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["quick"] is True and report["memory"].startswith("--no-huge")
    assert [s["key"] for s in report["scenarios"]] == SCENARIOS
    for scenario in report["scenarios"]:
        tether = scenario["tether"]
        assert scenario["io"]["mpps"] > 0 and scenario["5tswap"]["mpps"] > 0, scenario
        assert tether["mpps"] > 0 and tether["rx_mpps"] > 0, scenario  # packets flowed through
        # the two counters are read while the worker updates them, one after the other
        assert tether["cycles_per_packet_loop"] >= 0.99 * tether["cycles_per_packet_busy"] > 0
        assert tether["bytes_per_flow"] > 40 and tether["bytes_per_session"] > 40
        assert 0.3 < tether["tsc_ghz"] < 10, tether  # the chart's cycles axis: the TSC's rate
        # the ratio is the median of each round's tether / io
        per_round = [t["mpps"] / i["mpps"] for t, i in zip(scenario["rounds"]["tether"], scenario["rounds"]["io"])]
        assert scenario["ratio_io_by_round"] == per_round
        assert scenario["ratio_io"] == statistics.median(per_round) > 0
        # the quiet-machine check ran on every run, and said so in the report when it was not
        for run in ("io", "5tswap", "tether"):
            for figures in scenario["rounds"][run]:
                assert figures["others_cpus"] >= 0
                if figures["others_cpus"] > 0.1:
                    assert any("not quiet" in w for w in report["warnings"])
    by_key = {s["key"]: s["tether"] for s in report["scenarios"]}
    # the storm's flows expire before their tuples come back (the benchmark itself refuses a
    # run below 90%)
    assert by_key["new_flows"]["new_flow_share"] >= 0.9
    assert by_key["new_flows"]["new_flows_per_s"] > 0
    assert by_key["sip"]["messages_inspected_per_s"] > 0
    assert by_key["mixed"]["messages_inspected_per_s"] > 0
    table = (tmp_path / "bench.txt").read_text()
    for scenario in report["scenarios"]:
        assert scenario["title"] in table
    # two workers against one (this machine has two CPUs), beside testpmd with two cores
    for key in ("established", "sip"):
        scaling = next(s for s in report["scenarios"] if s["key"] == key)["scaling"]
        assert scaling["workers"] == 2 and scaling["lcores"] == "0@0,1@1,2@0"
        assert scaling["io_mpps"] > 0 and scaling["tether"]["mpps"] > 0 and scaling["tether"]["drops"] == 0
        assert scaling["tether_scaling"] > 0 and scaling["io_scaling"] > 0
        # one TSC, whichever the number of workers whose loops counted it
        assert abs(scaling["tether"]["tsc_ghz"] / by_key[key]["tsc_ghz"] - 1) < 0.2, (scaling, by_key[key])
    assert "scaling: 2 workers against 1" in table
    # GUE's cost against plain DSR: tetherd on the plain scenario in each of the same rounds
    gue = next(s for s in report["scenarios"] if s["key"] == "established_gue")
    plain = gue["against_plain"]
    assert plain["scenario"] == "established" and len(gue["rounds"]["tether_plain"]) == len(plain["rate_by_round"])
    assert plain["rate_by_round"] == [t["mpps"] / p["mpps"] for t, p in
                                      zip(gue["rounds"]["tether"], gue["rounds"]["tether_plain"])]
    assert plain["rate"] > 0 and plain["cycles"] > 0
    assert f"{plain['rate']:.2f} of established's rate in the same rounds" in table
    assert "against_plain" not in next(s for s in report["scenarios"] if s["key"] == "established")
    assert (tmp_path / "bench.png").stat().st_size > 1000  # gnuplot comes with tools/deps


def test_table_shows_the_ratio_of_every_round_when_there_are_several():
    import bench
    figures = {"mpps": 10.0, "cycles_per_packet_loop": 100, "cycles_per_packet_busy": 100, "drops": 0,
               "bytes_per_flow": 96, "bytes_per_session": 113, "messages_inspected_per_s": 0}
    scenario = {"key": "established", "title": "1. established", "io": {"mpps": 40.0},
                "5tswap": {"mpps": 30.0}, "tether": figures, "ratio_io": 0.25, "ratio_5tswap": 0.33,
                "ratio_io_by_round": [0.24, 0.25, 0.31]}

    class Memory:
        reason = "hugepages"
    assert "x io by round 0.24 0.25 0.31" in bench.table([scenario], Memory())
    scenario["ratio_io_by_round"] = [0.25]
    assert "by round" not in bench.table([scenario], Memory())


def test_a_round_whose_io_ceiling_strays_is_played_again_and_said():
    import bench
    io_by_play = iter([10.0, 6.0, 10.4, 9.8])  # round 2 strays (-40%), its second play does not
    plays = []

    def play(n):
        plays.append(n)
        return next(io_by_play)
    del bench.warnings_given[:]
    assert bench.steady_rounds("sip", 3, play, lambda io: io) == [10.0, 9.8, 10.4]
    assert plays == [0, 1, 2, 1]
    assert len(bench.warnings_given) == 1 and "sip round 2" in bench.warnings_given[0]

    del bench.warnings_given[:]
    always_astray = iter([10.0, 6.0, 10.0, 6.0, 6.0, 6.0])
    assert len(bench.steady_rounds("sip", 3, lambda n: next(always_astray), lambda io: io)) == 3
    assert len(bench.warnings_given) == 3  # played again at most as often as there are rounds
    del bench.warnings_given[:]
    assert bench.steady_rounds("sip", 3, lambda n: 10.0 + n, lambda io: io) == [10.0, 11.0, 12.0]
    assert bench.warnings_given == []
    # the peer family's ceiling is in messages a second, and its warning says so
    peer_io = iter([600.0, 900.0, 610.0, 590.0])
    bench.steady_rounds("peer", 3, lambda n: next(peer_io), lambda io: io, unit="k messages/s")
    assert bench.warnings_given == ["peer round 2: io 900.00 k messages/s is +48% off the rounds' median "
                                    "(610.00): played again"]


def test_other_processes_cpu_is_seen_and_the_measured_ones_are_not():
    """The quiet-machine check: a busy process counts as another's load, unless it is the
    program measured (its process group)."""
    import bench
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        time.sleep(0.3)
        measuring_spinner, measuring_another = bench.OtherLoad(spinner.pid), bench.OtherLoad(os.getpid())
        measuring_spinner.begin()
        measuring_another.begin()
        time.sleep(1.5)
        others_beside_spinner, others_with_spinner = measuring_spinner.end(), measuring_another.end()
    finally:
        spinner.kill()
        spinner.wait()
    assert others_with_spinner > bench.QUIET_OTHERS_CPUS
    assert others_with_spinner - others_beside_spinner > 0.2  # the spinner ran about one CPU


def test_compare_runs_builds_side_by_side(tmp_path):
    tetherd = str(BUILD / "control" / "tetherd")
    copy = tmp_path / "tetherd-copy"
    copy.write_bytes(Path(tetherd).read_bytes())
    copy.chmod(0o755)
    result = subprocess.run([sys.executable, str(REPO / "tools" / "bench.py"), "--quick", "--warmup", "0.5",
                             "--rounds", "2", "--out", str(tmp_path), "--compare", tetherd, "--compare", str(copy),
                             "established"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TETHER_BUILD": str(BUILD)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "compare.json").read_text())
    [scenario] = report["scenarios"]
    assert scenario["key"] == "established" and len(scenario["io_mpps"]) == 2
    first, second = scenario["builds"]
    assert first["tetherd"] == tetherd and second["tetherd"] == str(copy)
    for build in (first, second):
        assert len(build["mpps"]) == 2 and min(build["mpps"]) > 0  # packets flowed, every round
        assert build["ratio_io"] == statistics.median(m / i for m, i in zip(build["mpps"], scenario["io_mpps"]))
    assert first["against_first"] == 1.0
    assert second["against_first"] == statistics.median(b / a for a, b in zip(first["mpps"], second["mpps"]))
    # the same per second of each run's worker CPU time, the measure a loaded machine distorts least
    assert first["per_cpu_against_first"] == 1.0 and min(second["mpps_per_worker_cpu"]) > 0
    assert second["per_cpu_against_first"] == statistics.median(
        b / a for a, b in zip(first["mpps_per_worker_cpu"], second["mpps_per_worker_cpu"]))
    assert str(copy) in result.stdout and "vs first" in result.stdout
    assert not (tmp_path / "bench.json").exists()  # the main table is not run


def test_compare_refuses_what_is_not_an_executable_file(tmp_path):
    for path in (tmp_path / "no-such-tetherd", tmp_path):  # missing; a directory
        result = subprocess.run([sys.executable, str(REPO / "tools" / "bench.py"), "--quick",
                                 "--compare", str(path), "established"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert f"{path} is not an executable file" in result.stderr


def test_quick_sync_scenario_sends_records_with_sync_on_only(tmp_path):
    """tools/bench --sync: tetherd with state sync off and on in the same round, both in a
    namespace with a kernel interface; the sync-on runs really sent records (the stats
    file says so, and the benchmark checks it itself), the sync-off runs queued nothing."""
    result = subprocess.run([sys.executable, str(REPO / "tools" / "bench.py"), "--quick", "--sync", "--warmup", "0.5",
                             "--seconds", "1", "--out", str(tmp_path), "sip", "new_flows"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TETHER_BUILD": str(BUILD)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "sync.json").read_text())
    assert report["quick"] is True and report["max_rate"] == 10_000_000 and report["flow_threshold"] == 1
    assert [s["key"] for s in report["scenarios"]] == ["new_flows", "sip"]  # in the main table's order
    sent_kind = {"sip": "sync_sent_sip_call", "new_flows": "sync_sent_flow"}
    for scenario in report["scenarios"]:
        assert min(scenario["io_mpps"]) > 0 and min(scenario["off_mpps"]) > 0 and min(scenario["on_mpps"]) > 0
        per_round = [on / off for on, off in zip(scenario["on_mpps"], scenario["off_mpps"])]
        assert scenario["on_x_off_by_round"] == per_round
        assert scenario["on_x_off"] == statistics.median(per_round)
        # the worker ran part of the wall time (all of it on a quiet machine), and the speed
        # while it ran is forwarded packets over that time
        for run in scenario["rounds"]["off"] + scenario["rounds"]["on"]:
            assert 0 < run["worker_cpu_share"] <= 1.05, run
            assert run["mpps_per_worker_cpu"] * run["worker_cpu_share"] == pytest.approx(run["mpps"])
        assert scenario["on_x_off_per_cpu"] == statistics.median(scenario["on_x_off_per_cpu_by_round"]) > 0
        for totals in scenario["sync_totals_by_round"]:  # from the sync-on runs' stats files
            assert totals[sent_kind[scenario["key"]]] > 0, totals
            assert totals["sync_sent"] > 0 and totals["sync_events"] > 0, totals
            # the messages left through the kernel interface and the port (the last poll's
            # may still be in the interface as tetherd stops)
            assert totals["kernel_sent"] >= 0.9 * totals["sync_sent"], totals
        for off in scenario["rounds"]["off"]:
            assert off["sync_totals"]["sync_events"] == 0 and off["sync_totals"]["sync_sent"] == 0, off
    # Quick mode's storm is too small to outlive the 1 s idle timeout: its flows are set up
    # (and sent) in the warm-up, then sent again every flow_period passes of the pcap, which
    # the 1 s window may miss; a SIP call changes on every pass.
    sip = next(s["sync"] for s in report["scenarios"] if s["key"] == "sip")
    assert sip["sync_events_per_s"] > 0 and sip["sync_records_sent_per_s"] > 0 and sip["sync_messages_sent_per_s"] > 0
    text = (tmp_path / "sync.txt").read_text()
    assert "on x off" in text and "records sent" in text
    for scenario in report["scenarios"]:
        assert scenario["title"] in text
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert report["namespace"].startswith("tether-bench-") and report["namespace"] not in netns  # removed


def test_quick_peer_path_forwards_and_keeps_every_call_on_one_backend(tmp_path):
    """tools/bench peer: trafgen into a veth, tetherd (net_af_packet) and Kamailio (and
    nftables) in turn behind it, the sink counting per backend. Every balancer forwarded
    to all three backends, no more than it was offered, and a sample of what tetherd and
    Kamailio forwarded kept every Call-ID on one backend."""
    result = subprocess.run([sys.executable, str(REPO / "tools" / "bench.py"), "--quick", "--warmup", "0.5",
                             "--seconds", "1", "--out", str(tmp_path), "peer"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TETHER_BUILD": str(BUILD)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["scenarios"] == [] and report["memory"].startswith("none reserved")  # only the peer family was named
    peer = report["peer"]
    assert peer["kamailio_allocator"] == "fm" and "qdisc_bypass=1" in peer["devargs"]
    runs = peer["rounds"]
    assert list(runs) == ["generator", "io", "tether", "kamailio", "nftables"]
    for what, [figures] in runs.items():
        assert figures["forwarded_per_s"] > 0 and figures["offered_per_s"] > 0, (what, figures)
        # what reached the sink came through lbin (some slack: the sink's and lbin's counters are
        # read by two commands, one after the other, each a few milliseconds on a busy machine)
        assert figures["forwarded_per_s"] <= 1.05 * figures["offered_per_s"] + 100, (what, figures)
        assert figures["drops_per_s"] >= 0 and figures["others_cpus"] >= 0
        if what in ("tether", "kamailio", "nftables"):
            per_backend = figures["per_backend_per_s"]
            assert min(per_backend.values()) > 0, (what, per_backend)  # the hash spread the calls
            assert sum(per_backend.values()) == pytest.approx(figures["forwarded_per_s"], rel=0.02), (what, figures)
            sample = figures["sample"]
            assert sample["calls_with_several_messages"] >= 100, (what, sample)
            assert sample["calls_on_several_backends"] == 0, (what, sample)
            assert len(sample["messages_per_backend"]) == 3, (what, sample)
        if what in ("io", "tether", "kamailio"):  # processes on CPU 1: their CPU time per million
            assert 0 < figures["cpu_share"] <= 1.1 and figures["cpu_seconds_per_million"] > 0, (what, figures)
    assert runs["tether"][0]["tether_drops"] == {} or all(v >= 0 for v in runs["tether"][0]["tether_drops"].values())
    ratio = runs["tether"][0]["forwarded_per_s"] / runs["kamailio"][0]["forwarded_per_s"]
    assert peer["tether_x_kamailio"] == pytest.approx(ratio) and peer["tether_x_kamailio_by_round"] == [ratio]
    assert peer["tether_x_io"] == pytest.approx(runs["tether"][0]["forwarded_per_s"] / runs["io"][0]["forwarded_per_s"])
    # per CPU second: the other's CPU seconds per million over tetherd's
    for other in ("kamailio", "io"):
        assert peer[f"tether_x_{other}_per_cpu"] == pytest.approx(
            runs[other][0]["cpu_seconds_per_million"] / runs["tether"][0]["cpu_seconds_per_million"])
    text = (tmp_path / "bench.txt").read_text()
    assert "tether / Kamailio" in text and "Kamailio dispatcher" in text and "testpmd io, af_packet" in text
    assert (tmp_path / "bench.png").stat().st_size > 1000
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert len(peer["namespaces"]) == 3 and not set(peer["namespaces"]) & set(netns)  # the lab went away


def test_stickiness_counts_a_call_split_over_backends():
    import bench_peer
    b1, b2 = (bench_peer.BACKENDS[name][1] for name in ("b1", "b2"))
    sample = [(b1, "a@x"), (b1, "a@x"), (b2, "b@x"), (b1, "b@x"), (b2, "c@x"), (b1, None)]
    figures = bench_peer.stickiness(sample)
    assert figures["calls"] == 3 and figures["calls_with_several_messages"] == 2
    assert figures["calls_on_several_backends"] == 1
    assert figures["messages_per_backend"] == {"b1": 3, "b2": 2}


def test_a_run_whose_worker_received_too_little_is_played_again_not_judged(monkeypatch):
    import bench
    storm = next(s for s in bench.scenarios(quick=True) if s.key == "new_flows")
    starved = {"received": 12, "worker_cpu_share": 0.01, "others_cpus": 1.9, "new_flow_share": 0.0}
    # Starved: its own error, not the share of new flows (0% of almost nothing says nothing).
    with pytest.raises(bench.StarvedRun, match="received 12 packets"):
        bench.judge_run(storm, starved, 1.0)
    with pytest.raises(RuntimeError, match="only 0% of packets made a new flow"):
        bench.judge_run(storm, {**starved, "received": 10 * bench.MIN_RECEIVED}, 1.0)
    bench.judge_run(storm, {**starved, "received": 10 * bench.MIN_RECEIVED, "new_flow_share": 1.0}, 1.0)

    runs = []

    def starved_twice(*args, **kwargs):
        runs.append(args)
        if len(runs) <= bench.STARVED_RETRIES:
            raise bench.StarvedRun(f"new_flows: tetherd's workers received 0 packets (run {len(runs)})")
        return {"mpps": 1.0}
    monkeypatch.setattr(bench, "run_tetherd_once", starved_twice)
    monkeypatch.setattr(bench, "warnings_given", [])
    assert bench.run_tetherd("workdir") == {"mpps": 1.0}
    assert len(runs) == bench.STARVED_RETRIES + 1
    assert sum("played again" in w for w in bench.warnings_given) == bench.STARVED_RETRIES

    def always_starved(*args, **kwargs):
        raise bench.StarvedRun("new_flows: tetherd's workers received 0 packets")
    monkeypatch.setattr(bench, "run_tetherd_once", always_starved)
    with pytest.raises(RuntimeError, match="the machine is too busy to measure"):
        bench.run_tetherd("workdir")
