"""The tier of active instances (Lab(instances=N)), the lab of `tools/run --instances N` and
test_instances.py: N tetherds on net_tap behind the router, each in a namespace of its own
with its exception path and a BIRD beside it that announces the VIPs tetherd routes there
(`announce`) by BGP, with BFD, to the router's BIRD; that one installs one multipath route
per VIP over the instances announcing it (`merge paths`), and the router's kernel spreads
the client's flows over them by the 5-tuple (fib_multipath_hash_policy=1). State sync runs
as a full mesh (each instance's peers are all the others). The instances run the pair's
configuration (failover.instance_config) without `ha`, with `announce`.

Also the scenario (tier_scenario): the failover lab's workload (failover.play) played four
times, each with an event in the middle: one instance SIGKILLed (the router's withdrawal
timed by polling its table); that instance restarted (it asks its peers for a bulk dump,
then announces); another drained (`tetherctl drain`: withdraws, exits once no new flow came
for DRAIN_QUIET seconds); the spare backend added on every instance (reload). Each
instance's counters are sampled while it runs, so the traffic it carried survives its
death, and its sync traffic is counted by nftables on its way out (bytes on the wire).
"""
import collections
import itertools
import json
import signal
import threading
import time

from .failover import Instances, instance_config, play
from .namespaces import run
from .topology import FTP_VIP, INSTANCES, RTSP_VIP, SIP_VIP, SPARE_BACKENDS, SYNC_PORT

DRAIN_QUIET = 2  # seconds without a new flow before a drained instance exits
POLL = 0.01  # seconds between two looks at the router's table
ANNOUNCED_VIPS = (SIP_VIP, FTP_VIP, RTSP_VIP)  # the services with health checks
# What the summary takes from each instance's counters (`show counters`).
CARRIED = ("forwarded", "new_flows", "flows_from_sync", "sip_sessions_created")
# An nftables counter of the sync datagrams each instance's kernel sends (to SYNC_PORT).
SYNC_COUNTER = f"""table inet tether_lab_sync {{
  counter sent {{ }}
  chain out {{ type filter hook output priority 0; udp dport {SYNC_PORT} counter name sent; }}
}}
"""


def tier_config(instance, names, key_file, sync=True):
    """instance_config for one instance of the tier: its peers every other instance of
    `names`, and `announce` on lan0."""
    peers = [INSTANCES[n][0] for n in names if n != instance]
    return instance_config(
        instance, peers, key_file, sync=sync,
        extra=f'announce = {{ port = "lan0"; drain_quiet = {DRAIN_QUIET}; drain_timeout = 30; }};')


def flat(counters):
    """`show counters` as one dict: counter -> value (the names are unique across groups)."""
    return {k: v for group in counters.values() if isinstance(group, dict)
            for k, v in group.items() if isinstance(v, int)}


class Tier(Instances):
    """The instances of a tier lab (`lab`, a Lab(instances=N)), with the BIRDs; sync on or off."""

    def __init__(self, lab, sync=True):
        self.sync = sync
        super().__init__(lab, lambda name, key: tier_config(name, lab.lb_ns, key, sync), "tier")
        self.runs = {name: [] for name in self.instances}  # per run: {"last": counters, "moved": time}
        self.exits = {}  # name -> when its tetherd exited by itself (drain)
        for ns in lab.lb_ns.values():
            run("ip", "netns", "exec", ns, "nft", "-f", "-", input=SYNC_COUNTER)
        self.stopping = threading.Event()
        self.sampler = None

    # -- instances ------------------------------------------------------------------------

    def start_tetherd(self, name):
        # The run's record first: the sampler must not take the new tetherd for the last one.
        self.runs[name].append({"last": {}, "moved": None})
        return super().start_tetherd(name)

    def start(self, timeout=40):
        """Every tetherd, once all backends are healthy on each, the BIRDs (the first time),
        and the router's route to every VIP through every instance; then the sampler."""
        for name in self.instances:
            self.start_tetherd(name)
        for name in self.instances:
            self.instances[name].tetherd.wait_until(lambda b: all(x["healthy"] for x in b.values()), 20,
                                                    "all backends healthy")
        if not self.lab.birds:
            self.lab.start_birds()
        for name in self.instances:
            self.wait_announced(name, True, timeout)
        self.stopping.clear()
        self.sampler = threading.Thread(target=self._sample_all, daemon=True)
        self.sampler.start()

    def announcing(self, vip=SIP_VIP):
        """The instances the router's route to `vip` goes through."""
        nexthops = self.lab.router_nexthops(vip)
        return {n for n in self.instances if INSTANCES[n][0] in nexthops}

    def wait_announced(self, name, present, timeout, vips=None):
        """Polls the router's table every POLL s until its routes to `vips` (default: for
        present=True all the health-checked VIPs, else the SIP VIP) go (or no longer go)
        through instance `name`: time.time() then. AssertionError after `timeout`."""
        vips = vips or (ANNOUNCED_VIPS if present else (SIP_VIP,))
        deadline = time.monotonic() + timeout
        while any((name in self.announcing(vip)) != present for vip in vips):
            if time.monotonic() > deadline:
                instance = self.instances[name]
                shown = (instance.tetherd.ctl("show", "announce") if instance.tetherd and instance.tetherd.running
                         else "(tetherd not running)")
                raise AssertionError(f"instance {name} {'not ' if present else 'still '}announced after "
                                     f"{timeout} s: {self.lab.router_route()!r}\n{shown}\n"
                                     f"{self.lab.birds['router'].protocols()}")
            time.sleep(POLL)
        return time.time()

    def kill(self, name):
        """SIGKILL to instance `name`'s tetherd (its counters sampled just before): when."""
        self.sample(name)
        tetherd = self.instances[name].tetherd
        at = time.time()
        tetherd.proc.send_signal(signal.SIGKILL)
        tetherd.proc.wait()
        return at

    def drain(self, name):
        """`tetherctl drain` on instance `name`; a thread notes when it exits. When it was sent."""
        tetherd = self.instances[name].tetherd
        at = time.time()
        answer = tetherd.json("drain")
        assert answer["ok"] and answer["changed"], answer

        def watch():
            tetherd.proc.wait()
            self.exits[name] = time.time()

        threading.Thread(target=watch, daemon=True).start()
        return at

    def wait_exit(self, name, timeout):
        deadline = time.monotonic() + timeout
        while name not in self.exits:
            assert time.monotonic() < deadline, f"instance {name} did not exit within {timeout} s"
            time.sleep(0.05)
        return self.exits[name]

    def stop(self):
        self.stopping.set()
        if self.sampler is not None:
            self.sampler.join(timeout=5)
        super().stop()

    # -- what each instance carried -------------------------------------------------------

    def sample(self, name):
        """Notes instance `name`'s counters (this run's), and when its forwarded packets last
        grew (`moved`: its traffic, as far as the samples say)."""
        tetherd = self.instances[name].tetherd
        try:
            counters = flat(tetherd.json("show", "counters"))
        except (RuntimeError, json.JSONDecodeError, OSError):
            return  # exiting, or gone
        current = self.runs[name][-1]
        if counters.get("forwarded", 0) != current["last"].get("forwarded", 0):
            current["moved"] = time.time()
        current["last"] = counters

    def _sample_all(self):
        while not self.stopping.wait(0.25):
            for name in self.running():
                self.sample(name)

    def carried(self):
        """instance -> Counter of CARRIED and sync counters over all its runs."""
        result = {}
        for name, runs in self.runs.items():
            total = collections.Counter()
            for r in runs:
                total.update({k: v for k, v in r["last"].items() if k in CARRIED or k.startswith("sync_sent")})
            result[name] = total
        return result

    def sync_volume(self):
        """instance -> (records sent, sync datagrams and bytes its kernel sent) so far: the
        records over this run of tetherd (show sync), the wire over the namespace's life."""
        result = {}
        for name in self.running():
            counters = self.instances[name].tetherd.json("show", "counters")["sync"]
            records = sum(v for k, v in counters.items() if k.startswith("sync_sent_") and isinstance(v, int))
            listed = json.loads(run("ip", "netns", "exec", self.instances[name].ns, "nft", "-j", "list", "counter",
                                    "inet", "tether_lab_sync", "sent").stdout)
            counter = next(i["counter"] for i in listed["nftables"] if "counter" in i)
            result[name] = (records, counter["packets"], counter["bytes"])
        return result


_scenarios = itertools.count()


def tier_scenario(lab, tier, probe, *, calls=300, downloads=8, streams=4, seconds=10, sip_sockets=8,
                  full=True, log=print):
    """What `tools/run --instances` plays (the tier started): the workload four times, with
    in the middle of each: the last instance SIGKILLed; it restarted (bulk dump, then
    announced); the second drained (it exits only once its traffic moved); the spare backend
    added on every instance. full=False: the first only. Returns the phases' figures,
    each with the sync volume over it (sync_rates: instance -> records/s, bytes/s, for the
    instances that ran throughout)."""
    names = list(tier.instances)
    victim, drained = names[-1], names[1]
    workload = {"calls": calls, "downloads": downloads, "streams": streams, "sip_sockets": sip_sockets}
    run_tag = next(_scenarios)  # the Call-IDs of another scenario in the same lab are not this one's

    def phase(label, event, event_after, longer=0):
        before, start = tier.sync_volume(), time.time()
        figures = play(lab, probe, seconds=seconds + longer, event_after=event_after, event=event,
                       label=f"{label}{run_tag}r", **workload)
        figures["label"] = label
        after, elapsed = tier.sync_volume(), time.time() - start
        figures["sync_rates"] = {n: tuple((a - b) / elapsed for a, b in zip(after[n], before[n]))
                                 for n in after if n in before}
        figures["sync_rates_span"] = elapsed
        return figures

    def kill():
        at = tier.kill(victim)
        withdrawn = tier.wait_announced(victim, False, 10)
        return {"at": at, "taken_over": withdrawn, "withdrawal_s": withdrawn - at, "instance": victim}

    def rejoin():
        at = time.time()
        tier.start_tetherd(victim)
        started = time.time()
        announced = tier.wait_announced(victim, True, 30)
        return {"at": at, "taken_over": announced, "started_s": started - at, "announced_s": announced - at,
                "instance": victim, "restarted_sync": tier[victim].tetherd.ctl("show", "sync")}

    def drain():
        at = tier.drain(drained)
        withdrawn = tier.wait_announced(drained, False, 5)
        return {"at": at, "taken_over": withdrawn, "withdrawn_at": withdrawn, "withdrawal_s": withdrawn - at,
                "instance": drained}

    def join():
        at = time.time()
        tier.add_backend()
        return {"at": at, "taken_over": time.time(), "joined_s": time.time() - at}

    phases = []
    log(f"tier: workload; instance {victim}'s tetherd gets SIGKILL after 3 s")
    phases.append(phase("ik", kill, 3))
    if not full:
        return phases
    log(f"tier: workload; instance {victim}'s tetherd restarted after 2 s")
    phases.append(phase("ir", rejoin, 2, longer=4))
    log(f"tier: workload; instance {drained} drained (tetherctl drain) after 3 s")
    phases.append(phase("id", drain, 3))
    exited = tier.wait_exit(drained, DRAIN_QUIET + 20)
    run_figures = tier.runs[drained][-1]
    phases[-1].update({"exit_s": exited - phases[-1]["event_at"], "exited_at": exited,
                       "last_forwarded_at": run_figures["moved"]})
    log(f"tier: workload; {', '.join(SPARE_BACKENDS)} joins sip, ftp and rtsp on every instance "
        f"(reload) after 3 s")
    phases.append(phase("ib", join, 3))
    return phases
