"""tools/run --overload's lab (tools/tetherlab/overload.py): real sipp, curl and ffmpeg offered
more sessions than the backends' max_sessions hold. Under overload no admitted call, download
or stream fails; every refused INVITE got a 503 that sipp parsed as a final response (its
statistics count it as an unexpected message, not a timeout); no backend ever held more than
its capacity, sampled every 50 ms."""
import pytest

from tetherlab.overload import overload_config, overload_report, overload_workload
from tetherlab.topology import BACKENDS, LAB_CONFIG

# Measures time or loads the machine itself: runs alone (pytest.ini).
pytestmark = pytest.mark.serial


@pytest.fixture(scope="module")
def lab(lab):
    for name in BACKENDS:
        lab.start_sip_server(name)
    lab.start_media_servers()
    return lab


def test_overload_admitted_sessions_complete_refused_ones_get_503_or_rst(lab, balancer):
    config = lab.workdir / "lab-overload.cfg"
    config.write_text(overload_config(LAB_CONFIG.read_text()))
    tetherd = balancer.use(config)
    r = overload_workload(lab, tetherd, calls=60, downloads=6, streams=5, seconds=3)
    ok = overload_report(r)
    figures = {k: v for k, v in r.items() if k != "counters"}
    refused_calls = r["calls"] - r["calls_admitted"]
    assert refused_calls > 0 and r["calls_admitted"] > 0, figures  # it was overloaded
    assert r["sipp_503"] == refused_calls and r["sipp_timeouts"] == 0, figures
    assert r["calls_successful"] == r["calls_admitted"] and r["calls_split"] == 0, figures
    assert r["counters"]["refused_full"] >= refused_calls
    assert 0 < r["downloads_admitted"] < r["downloads"] and r["downloads_ok"] == r["downloads_admitted"], figures
    assert 0 < r["streams_admitted"] < r["streams"] and r["streams_ok"] == r["streams_admitted"], figures
    for (service, backend), (peak, capacity) in r["peak"].items():
        assert peak <= capacity, (service, backend, peak, capacity)
    assert ok
