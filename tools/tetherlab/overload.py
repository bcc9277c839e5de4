"""tools/run --overload: the lab's services with small capacities (max_sessions), offered more
SIP calls, FTP downloads and RTSP streams than the backends may hold. tetherd refuses the
new sessions beyond capacity at the door (503 for SIP, a RST for FTP and RTSP) and every
admitted session completes (docs/design.md "Admission", test/integration/test_overload.py)."""
import re
import threading

from .topology import BACKENDS
from .workloads import Calls, Streams, ftp_downloads

# max_sessions per backend and service: b1 has twice the others' weight and capacity.
CAPACITY = {"sip": {"b1": 4, "b2": 2, "b3": 2}, "ftp": {"b1": 1, "b2": 1, "b3": 1},
            "rtsp": {"b1": 1, "b2": 1, "b3": 1}}
RETRY_AFTER = 5


def overload_config(text):
    """conf/lab.cfg's text with CAPACITY, a 1 s SIP linger (an ended call holds its place
    until its linger ends) and the 503's Retry-After."""
    for service, capacities in CAPACITY.items():
        start = text.index(f'{{ name = "{service}";')
        end = text.index("); }", start)
        block = text[start:end]
        for backend, capacity in capacities.items():
            block = re.sub(rf'{{ name = "{backend}";', f'{{ name = "{backend}"; max_sessions = {capacity};', block)
        text = text[:start] + block + text[end:]
    return text.replace('dpi = "sip"; linger = 8;',
                        f'dpi = "sip"; linger = 1; admission = {{ retry_after = {RETRY_AFTER}; }};')


def held(tetherd):
    """(service, backend) -> (sessions held, capacity), from `show backends`."""
    return {(c["service"], b["name"]): (c["held"], c["capacity"])
            for b in tetherd.json("show", "backends")["backends"] for c in b["capacity"]}


def overload_workload(lab, tetherd, calls=120, rate=20, limit=40, duration_ms=2000, downloads=6, streams=5,
                      seconds=4):
    """Offers sipp calls at `rate` a second (at most `limit` at once, each `duration_ms`),
    `downloads` slow FTP downloads and `streams` RTSP streams at once, while sampling the
    sessions each backend holds; returns the figures."""
    before = tetherd.backends()
    peak = {}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for key, (n, capacity) in held(tetherd).items():
                peak[key] = (max(n, peak.get(key, (0, 0))[0]), capacity)
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    uac = Calls(lab, "over", calls, rate, duration_ms=duration_ms, limit=limit)
    played = Streams(lab, streams, "over", seconds=seconds)
    # 512 KB at 128 KB/s: 4 s each, so the downloads overlap.
    transfers = ftp_downloads(lab, downloads, "over", limit_rate="128k")
    received = played.wait()
    code, successful, _failed = uac.wait()
    stop.set()
    sampler.join()
    after = tetherd.backends()
    statistics = uac.statistics()
    placed = uac.placement()
    admitted_downloads = sum(sum(c.values()) for c in lab.ftp_downloads().values())
    admitted_streams = sum(len(s) for s in lab.rtsp_setups().values())
    counters = tetherd.json("show", "counters")["counters"]
    return {
        "calls": calls, "sipp_exit": code,
        "calls_admitted": len(placed), "calls_successful": successful,
        "calls_split": sum(1 for backends in placed.values() if len(backends) > 1),
        "sipp_503": int(statistics["FailedUnexpectedMessage(C)"]),
        "sipp_timeouts": sum(int(v) for k, v in statistics.items()
                             if k.startswith(("FailedMaxUDPRetrans", "FailedTimeoutOn", "FailedCallRejected"))),
        "downloads": len(transfers), "downloads_ok": sum(1 for t in transfers if t[2]),
        "downloads_admitted": admitted_downloads,
        "streams": len(received), "streams_ok": sum(1 for n in received if n >= 0.5 * seconds * 8000),
        "streams_admitted": admitted_streams,
        "admitted": {b: after[b]["admitted"] - before[b]["admitted"] for b in BACKENDS},
        "peak": peak, "counters": counters,
    }


def overload_report(r):
    """Prints the figures; whether admission held: no admitted session failed, every refused
    call got a 503 that sipp counted, no backend ever held more than its capacity."""
    print(f"\noverload: {r['calls']} SIP calls offered (sipp, 20 a second, 2 s each, at most 40 at "
          f"once), {r['downloads']} FTP downloads and {r['streams']} RTSP streams at once")
    header = f"{'backend':8} {'admitted':>8} | " + " | ".join(f"{s:>4} peak/cap" for s in CAPACITY)
    print(header)
    print("-" * len(header))
    over = []
    for b in BACKENDS:
        cells = []
        for service in CAPACITY:
            n, capacity = r["peak"].get((service, b), (0, CAPACITY[service][b]))
            cells.append(f"{n:>8}/{capacity:<4}")
            if n > capacity:
                over.append((service, b, n, capacity))
        print(f"{b:8} {r['admitted'][b]:>8} | " + " | ".join(cells))
    c = r["counters"]
    refused_calls = r["calls"] - r["calls_admitted"]
    admitted_calls_failed = r["calls_admitted"] - r["calls_successful"]
    print(f"\nclients: SIP 503s received {r['sipp_503']} (refused calls {refused_calls}), timeouts "
          f"{r['sipp_timeouts']}, admitted calls failed {admitted_calls_failed} of {r['calls_admitted']}; "
          f"FTP admitted {r['downloads_admitted']} (failed {r['downloads_admitted'] - r['downloads_ok']}), "
          f"refused {r['downloads'] - r['downloads_admitted']}; RTSP admitted {r['streams_admitted']} "
          f"(failed {r['streams_admitted'] - r['streams_ok']}), refused {r['streams'] - r['streams_admitted']}")
    print(f"tetherd: sessions_admitted {c['sessions_admitted']}, refused_full {c['refused_full']}, "
          f"sip_unavailable_sent {c['sip_unavailable_sent']} (retransmissions {c['sip_unavailable_retransmitted']}), "
          f"sip_acks_absorbed {c['sip_acks_absorbed']}, tcp_resets_sent {c['tcp_resets_sent']}")
    if over:
        print(f"OVER CAPACITY: {over}")
    return not (over or admitted_calls_failed or r["calls_split"] or r["sipp_timeouts"]
                or r["sipp_503"] != refused_calls
                or r["downloads_ok"] != r["downloads_admitted"] or r["streams_ok"] != r["streams_admitted"])
