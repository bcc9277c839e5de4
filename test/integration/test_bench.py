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
    assert "scaling: 2 workers against 1" in table
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
