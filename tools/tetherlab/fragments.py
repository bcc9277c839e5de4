"""tools/run --fragments: SIP calls whose INVITE (2.2 KB: 1 KB of headers before the Call-ID, a
30-codec SDP, sip/uac_fragmented.xml) the client's kernel sends in three IP fragments, the
path MTU to the SIP VIP locked at 1000. tetherd reassembles each INVITE to read its Call-ID,
sends its fragments to the call's backend, and every call completes there
(test/integration/test_exception_path.py). On net_tap: with net_af_packet, the packet fanout
has the lb namespace's kernel reassemble fragments before tetherd sees them (README)."""
import collections

from .namespaces import run
from .topology import SIP_VIP
from .workloads import Calls

PATH_MTU = 1000
COUNTERS = ("fragments_reassembled", "fragments_followed", "fragments_held", "fragments_handed")


def fragmented_calls(lab, tetherd, calls=40, rate=40, tag="frag"):
    """Places `calls` calls with fragmented INVITEs; returns the figures: sipp's result
    (exit code, successful, failed), each call's backends and the methods each received
    there, and the growth of tetherd's fragment counters and drops."""
    before = tetherd.json("show", "counters")
    route = run("ip", "-n", lab.client, "route", "show", f"{SIP_VIP}/32").stdout.split()
    run("ip", "-n", lab.client, "route", "replace", *route, "mtu", "lock", PATH_MTU)
    try:
        uac = Calls(lab, tag, calls, rate, scenario="uac_fragmented.xml")
        result = uac.wait()
    finally:
        run("ip", "-n", lab.client, "route", "replace", *route)
    after = tetherd.json("show", "counters")
    return {
        "calls": calls, "result": result, "errors": lab.workdir / f"uac-{tag}.err",
        "placement": {call_id: dict(backends) for call_id, backends in uac.placement().items()},
        "counters": {name: after["counters"][name] - before["counters"][name] for name in COUNTERS},
        "drops": {name: value - before["drops"][name] for name, value in after["drops"].items()
                  if value != before["drops"][name]},
    }


def split_calls(figures):
    """The calls that reached more than one backend, or lack INVITE, ACK or BYE on theirs."""
    return {call_id: backends for call_id, backends in figures["placement"].items()
            if len(backends) != 1 or not {"INVITE", "ACK", "BYE"} <= set(next(iter(backends.values())))}


def fragments_report(figures):
    """Prints the figures; whether every call completed on one backend."""
    code, successful, failed = figures["result"]
    per_backend = collections.Counter(next(iter(b)) for b in figures["placement"].values())
    split = split_calls(figures)
    print(f"\nfragments: {figures['calls']} SIP calls, each INVITE in 3 IP fragments (path MTU {PATH_MTU}); "
          f"sipp exit {code}, {successful} successful, {failed} failed")
    print("  calls per backend: " + ", ".join(f"{b} {n}" for b, n in sorted(per_backend.items())))
    print("  tetherd: " + ", ".join(f"{k} {v}" for k, v in figures["counters"].items())
          + f"; drops {figures['drops'] or 0}")
    print(f"  calls on several backends or incomplete there: {len(split)}")
    return (code, successful, failed) == (0, figures["calls"], 0) and not split and \
        len(figures["placement"]) == figures["calls"]
