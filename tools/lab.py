#!/usr/bin/python3
"""The virtual lab behind tools/run: network namespaces with tetherd (conf/lab.cfg) in front
of three backends running real SIP, FTP and RTSP servers, a short mixed workload of real
clients through the VIPs, a summary per backend, and a teardown that leaves nothing behind
(also on Ctrl-C, SIGTERM or a failure). The lab itself is the tetherlab package beside this
script, shared with the end-to-end tests (test/integration/test_lab.py).

    tools/lab.py [--calls N] [--downloads N] [--streams N] [--seconds S] [--tap | --tunnel ipip|gue]
    tools/lab.py --failover [--no-sync] [--add-backend] [--whole-box] [--advert-int S]
                 [--calls N] [--downloads N] [--streams N] [--seconds S]
    tools/lab.py --instances N [--no-sync] [--calls N] [--downloads N] [--streams N] [--seconds S]
    tools/lab.py --overload [--calls N] [--downloads N] [--streams N]
    tools/lab.py --fragments [--calls N]

--tap: tetherd's port is net_tap instead of net_af_packet, with the exception path (kernel
interface lan0 owning 198.18.0.1/24), and bird2 in tetherd's namespace announces the VIPs
tetherd routes there (`announce`) over it, with BFD, to bird2 in a router namespace
(test/integration/test_exception_path.py, test_announce.py).

--tunnel ipip|gue: the backends on a subnet of their own (198.19.0.0/24) behind a router
namespace, not on tetherd's segment; tetherd's services forward with `forwarding = "ipip"`
or `"gue"` through the router (its port's gateway), the outer source its port's address;
each backend decapsulates with tether's XDP program (backend/, attached by tether-decap),
holds the VIPs on lo, answers the client directly through the router and advertises an MSS
lowered by the encapsulation's overhead. It prints each backend's decapsulator counters and
what the router sent the backends: encapsulated, or (never) plain to a VIP
(test/integration/test_tunnel_lab.py).

--failover: an active-standby pair (tools/tetherlab/failover.py): two tetherds on net_tap
with the exception path, keepalived's VRRP between them, state sync; the workload with the
master's tetherd killed (SIGKILL) in the middle, the measured outage and what the backup
had received; then the killed instance restarted and a graceful handover back (`tetherctl
ha release`), its outage measured too. --no-sync: the control run without state sync.
--add-backend: a fourth backend joins the services before the failover, so the consistent
hash alone would move some flows (test/integration/test_failover.py). --whole-box: the
master's keepalived is killed with its tetherd, as when the box fails.

--instances N (2 or 3): a tier of N active instances behind a router (tools/tetherlab/tier.py):
tetherds on net_tap with their exception paths, each with bird2 announcing the VIPs by BGP
with BFD to the router's bird2 (ECMP, the kernel's L4 hash), state sync in full mesh; the
workload four times with, in the middle: the last instance SIGKILLed, then restarted (bulk
dump, then announced), the second drained (`tetherctl drain`), the spare backend added on
every instance. It prints each phase's failures, the traffic each instance carried, the
withdrawal times the router saw and the sync volume (test/integration/test_instances.py).
--no-sync: the control run (the kill only).

--overload: admission (tools/tetherlab/overload.py): the services' backends get small
max_sessions, sipp offers calls at a rate and a limit above them, and more FTP downloads and
RTSP streams than they hold start at once. It prints per backend the sessions admitted and
the peak held against capacity, and at the clients the 503s received and the admitted
sessions that failed (test/integration/test_overload.py).

--fragments: SIP calls whose INVITE the client's kernel sends in three IP fragments (the
path MTU to the SIP VIP locked at 1000, tools/tetherlab/fragments.py), tetherd on net_tap
(net_af_packet's fanout would have the kernel reassemble them first). It prints the calls per
backend, tetherd's fragment counters, and the calls that reached several backends
(test/integration/test_exception_path.py).

Exits 0 when every call, transfer and stream succeeded and every RTSP session's RTCP
reached the backend serving it (with --tap: and the BGP session is established and the
router holds the VIPs' routes); 1 otherwise. Needs root and a built tetherd (build/).
"""
import argparse
import collections
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from tetherlab.config import Kernel, lab_config_on_tap, lab_config_tunnel
from tetherlab.failover import ADVERT_INT, Pair, Probe, failover_scenario
from tetherlab.fragments import fragmented_calls, fragments_report
from tetherlab.lab import Lab
from tetherlab.namespaces import remove_stale_labs
from tetherlab.tier import Tier, tier_scenario
from tetherlab.topology import BACKENDS, CLIENT_ADDRESSES, INSTANCES, LAB_CONFIG, REPO, SIP_VIP
from tetherlab.overload import overload_config, overload_report, overload_workload
from tetherlab.workloads import Calls, Streams, ftp_downloads, rtcp_placement

PROTOCOLS = ("sip", "ftp", "rtsp")


def sigterm(_signum, _frame):
    raise KeyboardInterrupt  # unwinds into the teardown


def live_sessions(tetherd):
    """backend -> protocol -> live entries of tetherd's session table."""
    result = {}
    for name in BACKENDS:
        result[name] = {p: tetherd.json("show", "sessions", "protocol", p, "backend", name,
                                        "limit", "1")["matched"] for p in PROTOCOLS}
    return result


def flows_by_service(tetherd):
    """(service, backend) -> flows in the workers' tables (a sample: see README), truncated?"""
    answer = tetherd.json("show", "flows", "limit", "10000")
    counts = collections.Counter((f["service"], f["backend"]) for f in answer["flows"])
    return counts, answer["truncated"]


def workload(lab, tetherd, args):
    """Plays SIP, FTP and RTSP at once; returns the figures."""
    before = tetherd.backends()
    per_uac = max(1, args.calls // len(CLIENT_ADDRESSES))
    calls = [Calls(lab, f"run{i}", per_uac, 30, address=address, local_port=5070 + i,
                   reinvite=i == 0) for i, address in enumerate(CLIENT_ADDRESSES)]
    streams = Streams(lab, args.streams, "run", seconds=args.seconds)
    peak = {b: dict.fromkeys(PROTOCOLS, 0) for b in BACKENDS}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for b, counts in live_sessions(tetherd).items():
                for p, n in counts.items():
                    peak[b][p] = max(peak[b][p], n)
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    transfers = ftp_downloads(lab, args.downloads, "run")
    received = streams.wait()
    sip = [c.wait() for c in calls]
    stop.set()
    sampler.join()
    flows, truncated = flows_by_service(tetherd)
    after = tetherd.backends()

    placement = {}
    split_calls = 0
    for c in calls:
        for call_id, backends in c.placement().items():
            if len(backends) > 1:
                split_calls += 1
            placement[call_id] = next(iter(backends))
    rtcp = rtcp_placement(lab)
    return {
        "calls": sum(c.calls for c in calls), "reinvite_calls": calls[0].calls,
        "calls_failed": sum(c.calls - ok for c, (_code, ok, _failed) in zip(calls, sip)),
        "calls_split": split_calls,
        "calls_per_backend": collections.Counter(placement.values()),
        "downloads": len(transfers), "downloads_failed": sum(1 for t in transfers if not t[2]),
        "ftp_per_backend": {b: sum(c.values()) for b, c in lab.ftp_downloads().items()},
        "streams": len(received),
        "streams_failed": sum(1 for n in received if n < 0.5 * args.seconds * 8000),
        "rtsp_per_backend": collections.Counter(b for b, _r in rtcp.values()),
        "rtcp_misrouted": sum(1 for b, reached in rtcp.values() if set(reached) != {b}),
        "peak_sessions": peak, "flows": flows, "flows_truncated": truncated,
        "tetherd_flows": {b: after[b]["flows"] - before[b]["flows"] for b in BACKENDS},
        "tetherd_sessions": {b: after[b]["sessions"] - before[b]["sessions"] for b in BACKENDS},
        "counters": tetherd.json("show", "counters"),
    }


def exception_path(lab, tetherd):
    """With --tap: whether BIRD's session through the exception path is up and the router
    installed the route, after printing them and the kernel interface's counters."""
    try:
        for bird in lab.birds.values():
            bird.wait_established(30)
        established = True
    except AssertionError as error:
        print(f"exception path: {error}")
        established = False
    route = lab.router_route()
    counters = tetherd.json("show", "counters")
    print(f"\nexception path (lan0, 198.18.0.1/24): birdc show protocols in tetherd's namespace:\n"
          f"{lab.birds['lb'].protocols().rstrip()}\nrouter's kernel: {route or 'no route'}\n"
          f"to_kernel {counters['counters']['to_kernel']}, kernel {counters['kernel']}, "
          f"kernel_rate_limited {counters['drops']['kernel_rate_limited']}, "
          f"kernel_ring_full {counters['drops']['kernel_ring_full']}")
    return established and "proto bird" in route


def report(r, elapsed, port, forwarding="DSR"):
    weights = {"b1": 2, "b2": 1, "b3": 1}
    print(f"\ntether lab: {LAB_CONFIG.relative_to(REPO)}, tetherd on {port} (1 worker), "
          f"backends b1..b3 in {forwarding}; workload {elapsed:.0f} s:")
    print(f"  {r['calls']} SIP calls ({r['reinvite_calls']} with a re-INVITE) from "
          f"{len(CLIENT_ADDRESSES)} client sockets, {r['downloads']} passive FTP downloads "
          f"(EPSV and PASV) from {len(CLIENT_ADDRESSES)} addresses, {r['streams']} RTSP streams over UDP\n")
    header = (f"{'backend':8} {'sip w':>5} {'calls':>6} {'share':>6} {'ftp':>5} {'rtsp':>5}"
              f" | {'flows':>6} {'sessions':>8} | {'live sip':>8} {'live ftp':>8} {'live rtsp':>9}"
              f" | {'in table sip/ftp/rtsp':>21}")
    print("servers' logs (calls, transfers, sessions served) | tetherd: new flows, sessions created"
          " | peak live sessions by protocol | flows in the tables at the end")
    print(header)
    print("-" * len(header))
    total_calls = sum(r["calls_per_backend"].values()) or 1
    for b in BACKENDS:
        table = "/".join(str(r["flows"][(s, b)]) for s in PROTOCOLS)
        peak = r["peak_sessions"][b]
        print(f"{b:8} {weights[b]:>5} {r['calls_per_backend'][b]:>6} "
              f"{100 * r['calls_per_backend'][b] / total_calls:>5.1f}% {r['ftp_per_backend'][b]:>5} "
              f"{r['rtsp_per_backend'][b]:>5} | {r['tetherd_flows'][b]:>6} {r['tetherd_sessions'][b]:>8} | "
              f"{peak['sip']:>8} {peak['ftp']:>8} {peak['rtsp']:>9} | {table:>21}")
    print("-" * len(header))
    print(f"{'total':8} {sum(weights.values()):>5} {sum(r['calls_per_backend'].values()):>6} {'':>6} "
          f"{sum(r['ftp_per_backend'].values()):>5} {sum(r['rtsp_per_backend'].values()):>5} | "
          f"{sum(r['tetherd_flows'].values()):>6} {sum(r['tetherd_sessions'].values()):>8} |")
    if r["flows_truncated"]:
        print("(the flow sample was truncated)")
    s = r["counters"]["sessions"]
    drops = {k: v for k, v in r["counters"]["drops"].items() if v}
    print(f"\ntetherd: sip_sessions_created {s.get('sip_sessions_created')}, "
          f"ftp_data_expectations_used {s.get('ftp_data_expectations_used')}, "
          f"rtp_expectations_created {s.get('rtp_expectations_created')}, "
          f"rtp_expectations_used {s.get('rtp_expectations_used')}, drops {drops or 0}")
    print(f"failed: SIP calls {r['calls_failed']} of {r['calls']} (split over backends: "
          f"{r['calls_split']}), FTP transfers {r['downloads_failed']} of {r['downloads']}, "
          f"RTSP streams {r['streams_failed']} of {r['streams']} (RTCP on another backend: "
          f"{r['rtcp_misrouted']})")
    return not (r["calls_failed"] or r["calls_split"] or r["downloads_failed"]
                or r["streams_failed"] or r["rtcp_misrouted"])


def tunnel_report(lab, before):
    """With --tunnel: each backend's decapsulator counters over the workload (`before`: at its
    start) and what the router sent it, encapsulated or plain to a VIP; whether every backend
    received its traffic encapsulated only and decapsulated it all."""
    traffic = lab.tunnel_traffic(lab.tunnel, before)
    print(f"\ntunnel ({lab.tunnel}): the backends' XDP decapsulators (tether-decap counters, over the "
          f"workload) | what the router sent each backend (tcpdump on its leg toward them)")
    header = (f"{'backend':8} {'address':>12} {'decap ipip':>10} {'decap gue':>9} {'not tunnelled':>13} "
              f"{'malformed':>9} | {'encapsulated':>12} {'plain to a VIP':>14}")
    print(header)
    print("-" * len(header))
    ok = True
    for name, t in traffic.items():
        print(f"{name:8} {lab.backends[name][0]:>12} {t['decapsulated_ipip']:>10} {t['decapsulated_gue']:>9} "
              f"{t['not_tunnelled']:>13} {t['malformed']:>9} | {t['encapsulated']:>12} {t['plain to a VIP']:>14}")
        decapsulated = t[f"decapsulated_{lab.tunnel}"]
        ok = (ok and t["encapsulated"] > 0 and decapsulated >= t["encapsulated"] and t["malformed"] == 0
              and t["plain to a VIP"] == 0)
    return ok


def nonzero(show_sync):
    """`tetherctl show sync` without its counters that are 0."""
    return "\n".join(line for line in show_sync.rstrip().splitlines()
                     if not re.fullmatch(r"sync_\w+\s+0", line.strip()))


def phase_failures(r, event):
    """Prints a failover or tier phase's failures; whether there were none."""
    print(f"  failed: SIP calls {r['calls_failed']} of {r['calls']} (split over backends: "
          f"{r['calls_split']}), FTP transfers {r['downloads_failed']} of {r['downloads']}, "
          f"RTSP streams {r['streams_failed']} of {r['streams']} (RTCP on another backend: "
          f"{r['rtcp_misrouted']}, RTCP after {event} that never reached its backend: "
          f"{r['rtcp_lost_after_event']} of {r['rtsp_sessions']})")
    return not (r["calls_failed"] or r["calls_split"] or r["downloads_failed"] or r["streams_failed"]
                or r["rtcp_misrouted"] or r["rtcp_lost_after_event"])


def failover_report(phases, args):
    """Prints each phase of the failover scenario; whether every session survived."""
    ok = True
    for r in phases:
        kill = r["label"] == "fo"
        title = (f"failover: instance {r.get('victim')}'s "
                 f"{'keepalived and tetherd' if args.whole_box else 'tetherd'} (master) killed with SIGKILL, "
                 f"{r.get('survivor')} master {r.get('takeover_s', float('nan')):.2f} s later" if kill else
                 f"failback: tetherctl ha release on the master, the restarted instance master "
                 f"{r.get('handover_s', float('nan')):.2f} s later")
        print(f"\n{title}")
        print(f"  outage (probe, one datagram every {r['outage'].interval * 1000:.0f} ms to one backend): "
              f"{r['outage'].describe(r['event_at'])}")
        ok = phase_failures(r, "the failover" if kill else "the handover") and ok
        if kill:
            print(f"\nwhat the backup had received when it took over (tetherctl show sync, counters "
                  f"not 0):\n{nonzero(r.get('sync', '(sync off)'))}")
        elif "restarted_sync" in r:
            print(f"\nthe restarted instance as backup before the handover (tetherctl show sync, "
                  f"counters not 0):\n{nonzero(r['restarted_sync'])}")
    return ok


def run_failover(lab, args):
    """--failover: the pair, the scenario, the report; whether it passed (without sync: it
    is expected to break sessions, and passes when it did)."""
    for name in lab.backends:
        lab.start_sip_server(name)
    lab.start_media_servers()
    probe = Probe(lab)
    pair = Pair(lab, sync=not args.no_sync, advert_int=args.advert_int)
    print(f"lab: sipp UAS, vsftpd and gst-rtsp-server on {', '.join(lab.backends)}; tetherd a and b, "
          f"keepalived (VRRPv3, advert_int {args.advert_int} s){'' if args.no_sync else ', state sync'}",
          flush=True)
    pair.start()
    print("lab: a is master, b backup; playing the workload", flush=True)
    phases = failover_scenario(lab, pair, probe, calls=args.calls, downloads=args.downloads,
                               streams=args.streams, seconds=args.seconds, add_backend=args.add_backend,
                               whole_box=args.whole_box,
                               log=lambda text: print(text, flush=True))
    ok = failover_report(phases, args)
    pair.stop()
    return verdict(ok, args, "sessions the hash cannot recompute")


TIER_EVENTS = {  # phase label -> what happened, what "after" counts from
    "ik": ("instance {instance}'s tetherd killed with SIGKILL: the router withdrew it {withdrawal_s:.2f} s later",
           "the withdrawal"),
    "ir": ("instance {instance}'s tetherd restarted: running {started_s:.1f} s later, announced (bulk dump "
           "received first, see below) and in the router's routes {announced_s:.1f} s later", "its announcement"),
    "id": ("instance {instance} drained (tetherctl drain): the router withdrew it {withdrawal_s:.2f} s later; "
           "it exited {exit_s:.1f} s after the command", "the withdrawal"),
    "ib": ("b4 joined sip, ftp and rtsp on every running instance (reload, healthy {joined_s:.1f} s later)",
           "the reload"),
}


def tier_report(phases, tier, args):
    """Prints each phase of the tier scenario, the backends' and the instances' shares and the
    sync volume; whether every session survived."""
    ok = True
    backends = list(tier.lab.backends)
    for r in phases:
        title, after = TIER_EVENTS[r["label"]]
        print(f"\n{title.format(**r)}")
        print(f"  outage (probe, one datagram every {r['outage'].interval * 1000:.0f} ms, one flow): "
              f"{r['outage'].describe(r['event_at'])}")
        print("  served: " + ", ".join(
            f"{b} {r['calls_per_backend'][b]} calls/{r['ftp_per_backend'].get(b, 0)} ftp/"
            f"{r['rtsp_per_backend'][b]} rtsp" for b in backends))
        ok = phase_failures(r, after) and ok
        if r["label"] == "ir":
            print("  the restarted instance on announcing (tetherctl show sync, counters not 0):\n"
                  + "\n".join("    " + line for line in nonzero(r["restarted_sync"]).splitlines()))
        if r["label"] == "id":
            moved = r["last_forwarded_at"]
            print(f"  its last forwarded packet (sampled every 0.25 s) {moved - r['event_at']:.1f} s after the "
                  f"command, {r['exited_at'] - moved:.1f} s before it exited" if moved else
                  "  no forwarded packet in its samples")
        rates = r["sync_rates"]
        if rates:
            print(f"  sync over the phase ({r['sync_rates_span']:.0f} s), per instance running throughout: "
                  + ", ".join(f"{n} {rec:.0f} records/s, {pk:.0f} datagrams/s, {by / 1000:.1f} kB/s"
                              for n, (rec, pk, by) in rates.items()))
    carried = tier.carried()
    total = sum(c["forwarded"] for c in carried.values()) or 1
    print("\nwhat each instance carried over the run (its counters, summed over its runs):")
    header = f"{'instance':8} {'runs':>4} {'forwarded':>10} {'share':>6} {'new flows':>9} {'from sync':>9} {'sip sessions':>12}"
    print(header)
    print("-" * len(header))
    for name, c in carried.items():
        print(f"{name:8} {len(tier.runs[name]):>4} {c['forwarded']:>10} "
              f"{100 * c['forwarded'] / total:>5.1f}% {c['new_flows']:>9} {c['flows_from_sync']:>9} "
              f"{c['sip_sessions_created']:>12}")
    withdrawals = [f"{r['withdrawal_s'] * 1000:.0f} ms ({'SIGKILL' if r['label'] == 'ik' else 'drain'})"
                   for r in phases if "withdrawal_s" in r]
    print(f"withdrawals the router saw (its table polled every 10 ms): {', '.join(withdrawals)}")
    return ok


def run_instances(lab, args):
    """--instances N: the tier, the scenario, the report; whether it passed (without sync:
    it is expected to break sessions, and passes when it did)."""
    for name in lab.backends:
        lab.start_sip_server(name)
    lab.start_media_servers()
    probe = Probe(lab)
    tier = Tier(lab, sync=not args.no_sync)
    print(f"lab: sipp UAS, vsftpd and gst-rtsp-server on {', '.join(lab.backends)}; tetherd "
          f"{', '.join(tier.instances)} behind the router, each with bird2 (BGP, BFD){'' if args.no_sync else ', state sync in full mesh'}",
          flush=True)
    tier.start()
    print(f"lab: the router's ECMP route: {lab.router_route(SIP_VIP)}; playing the workload", flush=True)
    phases = tier_scenario(lab, tier, probe, calls=args.calls, downloads=args.downloads, streams=args.streams,
                           seconds=args.seconds, full=not args.no_sync,
                           log=lambda text: print(text, flush=True))
    ok = tier_report(phases, tier, args)
    tier.stop()
    return verdict(ok, args, "sessions that reach another instance")


def verdict(ok, args, breaks):
    """Whether a pair or tier run passed: with --no-sync, the control run, when it broke
    sessions (`breaks` says which), as it is expected to."""
    if not args.no_sync:
        return ok
    print(f"\n--no-sync: the control run is expected to break {breaks}: " + ("it did not" if ok else "it did"))
    return not ok


def run_overload(lab, args, workdir):
    """--overload: the lab with small capacities, offered more sessions than they hold."""
    for name in BACKENDS:
        lab.start_sip_server(name)
    lab.start_media_servers()
    config = workdir / "lab-overload.cfg"
    config.write_text(overload_config(LAB_CONFIG.read_text()))
    tetherd = lab.start_tetherd(config)
    tetherd.wait_until(lambda b: all(x["healthy"] for x in b.values()), 20, "all backends healthy")
    print("lab: all backends up; offering more sessions than the backends' max_sessions", flush=True)
    ok = overload_report(overload_workload(lab, tetherd, calls=args.calls, streams=args.streams,
                                           downloads=args.downloads))
    return tetherd.stop() == 0 and ok


def run_fragments(lab, args, workdir):
    """--fragments: calls with fragmented INVITEs through tetherd on net_tap."""
    for name in BACKENDS:
        lab.start_sip_server(name)
    config = workdir / "lab-fragments.cfg"
    config.write_text(lab_config_on_tap(LAB_CONFIG.read_text()))
    tetherd = lab.start_tetherd(config)
    tetherd.wait_until(lambda b: all(x["healthy"] for x in b.values()), 20, "all backends healthy")
    print("lab: all backends up; calls with INVITEs in three IP fragments", flush=True)
    ok = fragments_report(fragmented_calls(lab, tetherd, calls=args.calls))
    return tetherd.stop() == 0 and ok


def run_single(lab, args, workdir):
    """tools/run's lab with one tetherd (net_af_packet, or --tap); whether it passed."""
    for name in BACKENDS:
        lab.start_sip_server(name, reinvite=True)
    lab.start_media_servers()
    config, port, forwarding = LAB_CONFIG, "net_af_packet", "DSR"
    if args.tunnel:
        config, forwarding = workdir / f"lab-{args.tunnel}.cfg", f"{args.tunnel} behind a router"
        config.write_text(lab_config_tunnel(LAB_CONFIG.read_text(), args.tunnel))
        lab.start_link_capture()
        print(f"lab: backends on 198.19.0.0/24 behind the router, decapsulating {args.tunnel} with XDP",
              flush=True)
    if args.tap:
        lab.start_birds()
        config, port = workdir / "lab-tap.cfg", "net_tap with the exception path"
        config.write_text(lab_config_on_tap(LAB_CONFIG.read_text(), Kernel()))
        print("lab: bird2 in the router and lb namespaces", flush=True)
    print("lab: sipp UAS, vsftpd and gst-rtsp-server on b1, b2, b3; starting tetherd", flush=True)
    tetherd = lab.start_tetherd(config)
    tetherd.wait_until(lambda b: all(x["healthy"] for x in b.values()), 20, "all backends healthy")
    print("lab: all backends up; playing the workload", flush=True)
    start = time.monotonic()
    decap_before = lab.decap_counters() if args.tunnel else None
    figures = workload(lab, tetherd, args)
    ok = report(figures, time.monotonic() - start, port, forwarding)
    if args.tunnel:
        ok = tunnel_report(lab, decap_before) and ok
    if args.tap:
        ok = exception_path(lab, tetherd) and ok
    return tetherd.stop() == 0 and ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--downloads", type=int, default=40)
    parser.add_argument("--streams", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--tap", action="store_true",
                        help="tetherd's port on net_tap with the exception path, and BGP over it")
    parser.add_argument("--overload", action="store_true",
                        help="small capacities (max_sessions), more SIP, FTP and RTSP sessions than they hold")
    parser.add_argument("--fragments", action="store_true",
                        help="SIP calls whose INVITEs come in IP fragments (a path MTU of 1000), on net_tap")
    parser.add_argument("--tunnel", choices=("ipip", "gue"),
                        help="the backends behind a router, reached with ipip or gue, decapsulating with XDP")
    parser.add_argument("--failover", action="store_true",
                        help="an active-standby pair; the master's tetherd killed in the middle")
    parser.add_argument("--instances", type=int, metavar="N",
                        help="N active instances behind a router's ECMP, each announcing the VIPs by BGP; "
                             "one killed, restarted, another drained, a backend added")
    parser.add_argument("--no-sync", action="store_true", help="--failover or --instances without state sync")
    parser.add_argument("--add-backend", action="store_true",
                        help="--failover: a backend joins the services before the failover")
    parser.add_argument("--advert-int", type=float, default=ADVERT_INT,
                        help="--failover: keepalived's advert_int, seconds (VRRPv3: hundredths)")
    parser.add_argument("--whole-box", action="store_true",
                        help="--failover: the master's keepalived is killed with its tetherd")
    args = parser.parse_args()
    if (args.add_backend or args.whole_box) and not args.failover:
        parser.error("--add-backend and --whole-box go with --failover")
    if args.no_sync and not (args.failover or args.instances):
        parser.error("--no-sync goes with --failover or --instances")
    if (args.failover or args.instances) and args.tap:
        parser.error("--failover and --instances run on net_tap already; --tap goes alone")
    if args.tunnel and (args.tap or args.failover or args.instances or args.overload):
        parser.error("--tunnel goes alone")
    if args.failover and args.instances:
        parser.error("--failover (a pair) or --instances (a tier), not both")
    if args.instances is not None and not 2 <= args.instances <= len(INSTANCES):
        parser.error(f"--instances: 2 to {len(INSTANCES)} in this lab")
    if args.overload and (args.failover or args.instances or args.tap):
        parser.error("--overload goes alone")
    if args.fragments and (args.tap or args.tunnel or args.failover or args.instances or args.overload):
        parser.error("--fragments goes alone (on net_tap)")
    if args.fragments and args.calls == parser.get_default("calls"):
        args.calls = 40
    if args.overload:
        for name, value in (("calls", 120), ("downloads", 6), ("streams", 5)):
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    if args.failover or args.instances:  # smaller defaults: the scenarios play the workload several times
        for name, value in (("calls", 400), ("downloads", 12), ("streams", 4), ("seconds", 12)):
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    signal.signal(signal.SIGTERM, sigterm)
    remove_stale_labs()
    workdir = Path(tempfile.mkdtemp(prefix="tether-lab-"))
    lab = Lab(workdir, tap=args.tap or args.fragments, pair=args.failover, instances=args.instances,
              tunnel=args.tunnel)
    ok = False
    try:
        print(f"lab: creating namespaces {lab.tag} (work files in {workdir})", flush=True)
        lab.create()
        if args.overload:
            ok = run_overload(lab, args, workdir)
        elif args.fragments:
            ok = run_fragments(lab, args, workdir)
        elif args.instances:
            ok = run_instances(lab, args)
        else:
            ok = run_failover(lab, args) if args.failover else run_single(lab, args, workdir)
    except KeyboardInterrupt:
        print("\nlab: interrupted", file=sys.stderr)
    except Exception as error:  # noqa: BLE001: report it, then tear down
        print(f"lab: failed: {error}", file=sys.stderr)
        for log in sorted(workdir.glob("tetherd-*.err")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip this
        lab.teardown()
        left = lab.leftovers()
        print(f"lab: torn down ({'nothing left' if not left else 'LEFT: ' + ' '.join(left)})")
        if not left and ok:
            import shutil
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print(f"lab: logs kept in {workdir}", file=sys.stderr)
    return 0 if ok and not left else 1


if __name__ == "__main__":
    sys.exit(main())
