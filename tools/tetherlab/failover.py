"""The active-standby pair (Lab(pair=True)): two tetherd instances on the lab's segment, each
on net_tap with its exception path (kernel interface lan0 owning its port address) in a
namespace of its own, both running conf/lab.cfg's services, state sync between their port
addresses, and keepalived's VRRP on lan0 telling each tetherd its role through `tetherctl
ha master|backup|fault`. Only the master answers ARP for the VIPs and forwards; the client
reaches the VIPs on the segment, so the new master's gratuitous ARP moves them.

Also the failover scenario of `tools/run --failover` and test_failover.py: the lab's mixed
workload (SIP calls, FTP downloads, RTSP streams) with an event in the middle (the master's
tetherd killed, or a graceful handover), and a probe that measures the outage.

keepalived (Debian 12: 2.2.7) in each instance's namespace:
- VRRPv3 with a sub-second advert_int (VRRPv2 counts whole seconds: 3.6 s to take over),
  multicast to 224.0.0.18 on lan0: the exception path hands VRRP to the kernel and sends
  what the kernel sends, so no unicast_peer is needed.
- keepalived 2.2.7 refuses a VRRPv3 instance without a virtual address ("No VIP specified;
  at least one is required"; `no_virtual_ipaddress` came in 2.2.8). The dataplane owns the
  VIPs, so they are given to keepalived on `lo` of tetherd's namespace: the advertisements
  name them, and the master's kernel holds them where nothing reaches them (tetherd keeps
  every frame to a VIP; arp_ignore=1 keeps the kernel from answering ARP for them).
- `dynamic_interfaces`: lan0 exists only while tetherd runs. When the master's tetherd
  dies, lan0 goes with it, that keepalived goes FAULT and its advertisements stop; the
  backup takes over after 3 x advert_int + skew. When tetherd is back, lan0 is back, but
  before tetherd passes it any frame: a vrrp_script of weight 0 (`tetherctl show ha`)
  holds the instance in FAULT until tetherd answers, or it would hear no master and take
  over for a moment. Then keepalived goes BACKUP (equal priorities: a backup does not
  preempt a master of the same priority).
- a vrrp_script runs `tetherctl ha check` (fails while tetherd is unreachable, stalled or
  released) with a negative weight: `tetherctl ha release` on the master lowers its
  priority below the backup's (within the script's 1 s interval); the backup ignores the
  lower-priority advertisements, takes over when its timer runs out (3 x advert_int) and
  announces the VIPs, and the old master, still forwarding meanwhile, steps down when it
  hears the new one (graceful handover).
"""
import collections
import json
import re
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from .config import Kernel, Port, with_port
from .namespaces import run
from .tetherd import TETHERCTL, tetherctl
from .topology import (BACKENDS, CLIENT_ADDRESSES, INSTANCES, LAB_CONFIG, LAN_PREFIX, PAIR, SPARE_BACKENDS, SYNC_PORT, TAP_DEVICE,
                       TCP_VIP, VIPS, VRRP_ROUTER_ID)
from .workloads import Calls, ReportingStreams, ftp_downloads

PROBE_PORT = 9000  # udp on TCP_VIP (no other service there): the outage probe
ADVERT_INT = 0.2  # seconds between VRRP advertisements (README "The virtual lab": why 0.2)
PRIORITY, CHECK_WEIGHT = 100, -50
SERVICES = ("sip", "ftp", "rtsp")
# The failover lab's FTP clients, one address per concurrent download: without
# passive_ports, a data connection claims its client address's oldest expectation, so two
# downloads at once from one address to two backends may swap data connections (README
# "Session awareness"), a failure of its own that would hide the failover's.
FTP_CLIENTS = tuple(f"198.18.0.{n}" for n in range(31, 43))


def pair_config(instance, key_file, sync=True, text=None):
    """instance_config for one instance of the pair, with an `ha` section (the instance
    starts as backup) and its peer the pair's other instance."""
    return instance_config(instance, [a for i, (a, _m) in PAIR.items() if i != instance], key_file, sync=sync,
                           text=text, extra='ha = { initial = "backup"; };')


def instance_config(instance, peers, key_file, sync=True, text=None, extra=""):
    """conf/lab.cfg (or `text`) for one instance of the pair or the tier (INSTANCES): its
    net_tap port with the exception path and its own address and MAC; FTP without
    passive_ports (data connections follow the expectations PASV/EPSV made, which the
    peers know only through sync); the probe service; `extra` settings; with sync=True
    state sync with `peers` (addresses) over lan0."""
    address, mac = INSTANCES[instance]
    text = with_port(text or LAB_CONFIG.read_text(),
                     Port("lan0", f"net_tap0,iface={TAP_DEVICE}", mac, (f"{address}/{LAN_PREFIX}",),
                          kernel=Kernel()))
    text = re.sub(r"\s*passive_ports = \[\d+, \d+\];", "", text)
    members = ", ".join(f'{{ name = "{b}"; }}' for b in BACKENDS)
    probe = (f'  {{ name = "probe"; vip = "{TCP_VIP}"; port = {PROBE_PORT}; protocol = "udp";\n'
             f"    backends = ( {members} ); }}")
    end = text.rindex("\n);")
    text = text[:end] + ",\n\n  # the failover lab's outage probe (failover.Probe)\n" + probe + text[end:]
    text += f"\n{extra}\n"
    if sync:
        listed = ", ".join(f'"{a}"' for a in peers)
        text += (f'sync = {{ port = "lan0"; listen_port = {SYNC_PORT}; key_file = "{key_file}";\n'
                 f'         peers = [{listed}]; instance = "lb-{instance}"; }};\n')
    return text


def with_spare_backends(text):
    """A pair configuration's text with SPARE_BACKENDS among the backends, and members (weight
    1) of sip, ftp and rtsp: the consistent hash then moves a share of the new flows."""
    spare = "".join(f',\n  {{ name = "{n}"; address = "{a}"; }}' for n, (a, _m) in SPARE_BACKENDS.items())
    backends = re.compile(r"^(backends = \(.*?)(\n\);)", re.M | re.S)
    assert len(backends.findall(text)) == 1
    text = backends.sub(lambda m: m.group(1) + spare + m.group(2), text)
    members = "".join(f', {{ name = "{n}"; }}' for n in SPARE_BACKENDS)
    for service in SERVICES:
        block = re.compile(r'(\{ name = "' + service + r'";.*?backends = \(.*?\})(\s*\); \})', re.S)
        assert len(block.findall(text)) == 1, service
        text = block.sub(lambda m: m.group(1) + members + m.group(2), text)
    return text


def keepalived_config(instance, socket, advert_int=ADVERT_INT):
    """keepalived.conf for `instance`: see the module's comment."""
    ctl = f"{TETHERCTL} -s {socket}"
    vips = "\n".join(f"    {vip}/32 dev lo" for vip in VIPS)
    return f"""# keepalived for tether instance {instance} (written by tools/tetherlab/failover.py)
global_defs {{
  router_id tether-{instance}
  script_user root
  dynamic_interfaces
  vrrp_version 3
  # tetherd announces the VIPs itself on becoming master; keepalived's own gratuitous ARPs
  # would name addresses on lo
  vrrp_garp_master_repeat 1
  vrrp_garp_master_delay 0
}}

# FAULT until tetherd answers (its workers run): keepalived sees lan0 as soon as tetherd
# creates it, before tetherd passes it any frame, and would take the silence for a dead
# master.
vrrp_script tether_running {{
  script "{ctl} --timeout 1 show ha"
  interval 1
  timeout 1
  rise 2
  fall 1
  weight 0
}}

# Unhealthy or released for a handover: a lower priority, so the peer preempts.
vrrp_script tether_check {{
  script "{ctl} --timeout 1 ha check"
  interval 1
  timeout 1
  rise 1
  fall 1
  weight {CHECK_WEIGHT}
}}

vrrp_instance tether {{
  interface lan0
  state BACKUP
  virtual_router_id {VRRP_ROUTER_ID}
  priority {PRIORITY}
  advert_int {advert_int}
  virtual_ipaddress {{
{vips}
  }}
  track_script {{
    tether_running
    tether_check
  }}
  notify_master "{ctl} ha master"
  notify_backup "{ctl} ha backup"
  notify_fault "{ctl} ha fault"
  notify_stop "{ctl} ha fault"
}}
"""


@dataclass
class Instance:
    """One tetherd of the pair, in namespace `ns`, with its keepalived."""
    name: str
    ns: str
    config: object  # Path
    socket: object  # Path
    tetherd: object = None  # LabTetherd while it runs
    keepalived: object = None  # Popen

    def ha(self):
        """`show ha`, or None while tetherd does not answer."""
        try:
            return json.loads(tetherctl(self.socket, "--json", "show", "ha", timeout=2))
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError):
            return None

    def role(self):
        state = self.ha()
        return state["state"] if state else "down"


class Instances:
    """The tetherd instances of a pair or tier lab (one per namespace of lab.lb_ns): their
    configurations, config_of(name, key file), as STEM-NAME.cfg and a shared sync key in
    the lab's workdir; the client prepared for the failover workload (play)."""

    def __init__(self, lab, config_of, stem):
        self.lab = lab
        key = lab.workdir / "sync.key"
        key.write_text(secrets.token_hex(32) + "\n")
        key.chmod(0o600)
        # A small receive window: the backends send as fast as curl reads (--limit-rate), so a
        # download's ACKs cross tether for its whole length instead of the file landing in
        # the client's socket buffer within milliseconds.
        lab.sysctl(lab.client, "net.ipv4.tcp_rmem=4096 16384 16384")
        present = run("ip", "-n", lab.client, "-4", "addr", "show", "eth0").stdout
        for address in FTP_CLIENTS:
            if f" {address}/" not in present:
                run("ip", "-n", lab.client, "addr", "add", f"{address}/{LAN_PREFIX}", "dev", "eth0")
        self.instances = {}
        for name, ns in lab.lb_ns.items():
            config = lab.workdir / f"{stem}-{name}.cfg"
            config.write_text(config_of(name, key))
            self.instances[name] = Instance(name, ns, config, lab.workdir / f"tetherd-{name}.sock")

    def __getitem__(self, name):
        return self.instances[name]

    def start_tetherd(self, name):
        instance = self.instances[name]
        instance.tetherd = self.lab.start_tetherd(instance.config, instance=name)
        return instance.tetherd

    def running(self):
        """The names of the instances whose tetherd runs."""
        return [n for n, i in self.instances.items() if i.tetherd is not None and i.tetherd.running]

    def add_backend(self):
        """The spare backend joins sip, ftp and rtsp in every instance's file, and the
        running instances reload (as an operator would: a restarted instance must run the
        same backends in the same order, since sync records name backends by index);
        healthy on each."""
        for instance in self.instances.values():
            instance.config.write_text(with_spare_backends(instance.config.read_text()))
        running = self.running()
        for name in running:
            self.instances[name].tetherd.ctl("reload")
        for name in running:
            self.instances[name].tetherd.wait_until(
                lambda b: all(b.get(n, {}).get("healthy") for n in SPARE_BACKENDS), 15, "the spare backends healthy")

    def stop(self):
        for name in self.running():
            self.instances[name].tetherd.stop()


class Pair(Instances):
    """The two instances of a pair lab (`lab`, a Lab(pair=True)): tetherd and keepalived in
    each namespace."""

    def __init__(self, lab, sync=True, advert_int=ADVERT_INT):
        self.sync, self.advert_int = sync, advert_int
        for ns in lab.lb_ns.values():
            # The kernel must not answer ARP on lan0 for the VIPs keepalived puts on lo.
            lab.sysctl(ns, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
        super().__init__(lab, lambda name, key: pair_config(name, key, sync=sync), "pair")

    def start_keepalived(self, name):
        instance = self.instances[name]
        stem = self.lab.workdir / f"keepalived-{name}"
        conf = stem.with_suffix(".conf")
        conf.write_text(keepalived_config(name, instance.socket, self.advert_int))
        with open(stem.with_suffix(".log"), "a") as log:
            instance.keepalived = self.lab.popen(
                instance.ns, ["keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp",
                              "-f", conf, "-p", stem.with_suffix(".pid"), "-r", f"{stem}-vrrp.pid"],
                stdout=log, stderr=subprocess.STDOUT)
        return instance.keepalived

    def keepalived_log(self, name):
        path = self.lab.workdir / f"keepalived-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout=20):
        """Both tetherds, then keepalived in a's namespace; once a is master, keepalived in
        b's, which stays backup (equal priority)."""
        for name in self.instances:
            self.start_tetherd(name)
        for name in self.instances:
            self.instances[name].tetherd.wait_until(lambda b: all(x["healthy"] for x in b.values()), 20,
                                                    "all backends healthy")
        self.start_keepalived("a")
        self.wait_role("a", "master", timeout)
        self.start_keepalived("b")
        self.wait_role("b", "backup", timeout)

    def wait_role(self, name, role, timeout):
        """Seconds until instance `name`'s tetherd says `role`."""
        start = time.monotonic()
        while (now := self.instances[name].role()) != role:
            assert time.monotonic() - start < timeout, (
                f"instance {name}: {now}, not {role} within {timeout} s; keepalived:\n"
                f"{self.keepalived_log(name)[-3000:]}")
            time.sleep(0.02)
        return time.monotonic() - start

    def master(self):
        """The name of the instance whose tetherd says master, or None."""
        return next((n for n, i in self.instances.items() if i.role() == "master"), None)

    def kill_tetherd(self, name):
        """SIGKILL to instance `name`'s tetherd (its lan0 goes with it); the time it was sent."""
        instance = self.instances[name]
        at = time.time()
        instance.tetherd.proc.send_signal(signal.SIGKILL)
        instance.tetherd.proc.wait()
        return at

    def kill_box(self, name):
        """Instance `name`'s whole box fails: keepalived and tetherd get SIGKILL together, so
        no priority-0 advertisement leaves it; the time it happened."""
        instance = self.instances[name]
        at = time.time()
        self.lab.stop(instance.keepalived, signal.SIGKILL)
        instance.keepalived = None
        instance.tetherd.proc.send_signal(signal.SIGKILL)
        instance.tetherd.proc.wait()
        return at

    def stop(self):
        for instance in self.instances.values():
            if instance.keepalived is not None:
                self.lab.stop(instance.keepalived)
                instance.keepalived = None
        super().stop()


# The probe: a datagram with a sequence number every INTERVAL seconds from the client to
# TCP_VIP:PROBE_PORT (one flow: one backend), for SECONDS; prints how many it sent.
PROBE_SENDER = r"""
import socket, struct, sys, time
address, port, interval, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.time()
sent = 0
while sent * interval < seconds:
    delay = start + sent * interval - time.time()
    if delay > 0:
        time.sleep(delay)
    try:
        sock.sendto(struct.pack("!Id", sent, time.time()), (address, port))
    except OSError:  # no ARP answer for the VIP yet: that datagram is lost, like any other
        pass
    sent += 1
print(sent, flush=True)
"""

# On each backend: logs "SEQUENCE SENT_AT" of every probe datagram it receives.
PROBE_RECEIVER = r"""
import socket, struct, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, _peer = sock.recvfrom(64)
    if len(data) >= 12:
        sequence, sent_at = struct.unpack("!Id", data[:12])
        print(sequence, repr(sent_at), flush=True)
"""


class Probe:
    """The outage probe: PROBE_RECEIVER on every backend of the lab (started once), and a
    PROBE_SENDER run per phase."""

    def __init__(self, lab, interval=0.01):
        self.lab, self.interval = lab, interval
        self.logs = {}
        for name, ns in lab.backend_ns.items():
            path = lab.workdir / f"probe-{name}.log"
            out = open(path, "a")
            proc = lab.popen(ns, ["/usr/bin/python3", "-u", "-c", PROBE_RECEIVER, TCP_VIP, PROBE_PORT],
                             stdout=out)
            out.close()
            lab.wait_for_socket(ns, "udp", PROBE_PORT, proc)
            self.logs[name] = path
        self.sender = None
        self.runs = 0

    def start(self, seconds):
        self.runs += 1
        self.offsets = {name: len(path.read_text().splitlines()) for name, path in self.logs.items()}
        self.sender = self.lab.popen(self.lab.client, ["/usr/bin/python3", "-c", PROBE_SENDER, TCP_VIP,
                                                       PROBE_PORT, self.interval, seconds],
                                     stdout=subprocess.PIPE, text=True)

    def wait(self, timeout=120):
        """The phase's Outage: sent, received per backend, the lost sequence numbers."""
        out, _err = self.sender.communicate(timeout=timeout)
        sent = int(out)
        time.sleep(0.2)  # the last datagrams' way to the backends
        received, per_backend = {}, {}
        for name, path in self.logs.items():
            lines = path.read_text().splitlines()[self.offsets[name]:]
            per_backend[name] = len(lines)
            for line in lines:
                if line.strip() and line.split()[0] != "ready":
                    sequence, sent_at = line.split()
                    received[int(sequence)] = float(sent_at)
        return Outage(self.interval, sent, received, per_backend)


@dataclass(repr=False)
class Outage:
    interval: float
    sent: int
    received: dict  # sequence -> when it was sent (time.time())
    per_backend: dict

    @property
    def lost(self):
        return [s for s in range(self.sent) if s not in self.received]

    def longest_gap(self):
        """(first lost, last lost) of the longest run of lost datagrams, or None."""
        best, run_start, previous = None, None, None
        for s in self.lost + [None]:
            if s is not None and previous is not None and s == previous + 1:
                previous = s
                continue
            if run_start is not None and (best is None or previous - run_start > best[1] - best[0]):
                best = (run_start, previous)
            run_start = previous = s
        return best

    @property
    def seconds(self):
        """The longest time the probe's datagrams were lost: from the last one that got
        through before the gap to the first one after it (0 when none was lost)."""
        gap = self.longest_gap()
        if gap is None:
            return 0.0
        return (gap[1] - gap[0] + 2) * self.interval

    def __repr__(self):
        return f"Outage({self.describe()})"

    def describe(self, event_at=None):
        gap = self.longest_gap()
        if gap is None:
            return f"no probe datagram lost ({self.sent} sent every {self.interval * 1000:.0f} ms)"
        first, last = gap
        text = (f"{self.seconds:.2f} s: probe datagrams {first}..{last} lost "
                f"({len(self.lost)} of {self.sent} in all, one every {self.interval * 1000:.0f} ms")
        if event_at is not None:
            start = self.received.get(0, None)
            if start is not None:  # sequence n was due at start + n * interval
                text += (f"; the first lost was sent {1000 * (start + first * self.interval - event_at):.0f} ms"
                         f" and the last {1000 * (start + last * self.interval - event_at):.0f} ms after the event")
        return text + ")"


def play(lab, probe, *, calls, downloads, streams, seconds, event_after, event, label,
         sip_sockets=len(CLIENT_ADDRESSES)):
    """The lab's mixed workload through the pair (or tier) for about `seconds`: SIP calls of
    2 s from `sip_sockets` UDP sockets over the four client addresses, FTP downloads at 64
    KB/s (8 s each), RTSP streams, and the probe; event() runs `event_after` seconds in and
    returns a dict: "at", when it acted (time.time()), "taken_over", when the other instance
    was master (or the router had moved the traffic), and figures of its own. Returns the
    phase's figures."""
    phase_start = time.time()
    setups_before = {b: len(s) for b, s in lab.rtsp_setups().items()}
    ftp_before = {b: sum(c.values()) for b, c in lab.ftp_downloads().items()}
    per_uac = max(1, calls // sip_sockets)
    rate = max(1, round(per_uac / max(1, seconds - 4)))
    # Calls in progress whenever the event happens; sipp retransmits across an outage
    # (timer A doubles from 500 ms).
    call_runs = [Calls(lab, f"{label}{i}", per_uac, rate, duration_ms=2000,
                       address=CLIENT_ADDRESSES[i % len(CLIENT_ADDRESSES)], local_port=5070 + i)
                 for i in range(sip_sockets)]
    rtsp = ReportingStreams(lab, streams, label, seconds=seconds)
    probe.start(seconds + 2)
    acted = {}

    def act():
        time.sleep(event_after)
        acted.update(event())

    actor = threading.Thread(target=act, daemon=True)
    actor.start()
    assert downloads <= len(FTP_CLIENTS), f"at most {len(FTP_CLIENTS)} downloads at once"
    # A download at 64 KB/s takes 8 s; one stalled for 5 s has failed (a failover pauses
    # it for about a second, plus TCP's retransmission backoff).
    transfers = ftp_downloads(lab, downloads, label, addresses=FTP_CLIENTS, limit_rate="64k", max_time=60,
                              stall_time=5, timeout=120)
    received = rtsp.wait(timeout=seconds + 60)
    sip = [c.wait(timeout=180) for c in call_runs]
    actor.join(timeout=60)
    outage = probe.wait()
    event_at = acted.get("at")

    # RTCP of this phase's RTSP sessions: where it went over the phase, and whether some,
    # sent once the other instance had taken over, still reached the session's backend.
    setups = {b: s[setups_before.get(b, 0):] for b, s in lab.rtsp_setups().items()}
    whole = lab.rtsp_udp_received(since=phase_start)
    taken_over = acted.get("taken_over")
    after = lab.rtsp_udp_received(since=taken_over) if taken_over else whole
    sessions = {}
    for backend, answered in setups.items():
        for address, _rtp, rtcp in answered:
            sessions[(address, rtcp)] = {
                "backend": backend,
                "reached": {b: seen[(address, rtcp)] for b, seen in whole.items() if seen[(address, rtcp)]},
                "after_event": after[backend][(address, rtcp)]}
    placements = [backends for c in call_runs for backends in c.placement().values()]
    return {
        "label": label, "event_at": event_at,
        "calls": sum(c.calls for c in call_runs),
        "calls_failed": sum(c.calls - ok for c, (_code, ok, _failed) in zip(call_runs, sip)),
        "calls_split": sum(1 for backends in placements if len(backends) > 1),
        "calls_per_backend": collections.Counter(next(iter(backends)) for backends in placements),
        "ftp_per_backend": {b: sum(c.values()) - ftp_before.get(b, 0) for b, c in lab.ftp_downloads().items()},
        "rtsp_per_backend": collections.Counter(s["backend"] for s in sessions.values()),
        "downloads": len(transfers), "downloads_failed": sum(1 for t in transfers if not t[2]),
        "streams": len(received),
        "streams_failed": sum(1 for n in received if n < 0.5 * seconds * 8000),
        "rtsp_sessions": len(sessions),
        "rtcp_misrouted": sum(1 for s in sessions.values() if set(s["reached"]) - {s["backend"]}),
        "rtcp_lost_after_event": sum(1 for s in sessions.values() if not s["after_event"]),
        "outage": outage,
        **{k: v for k, v in acted.items() if k not in ("at", "taken_over")},
    }


def failover_scenario(lab, pair, probe, *, calls=400, downloads=12, streams=4, seconds=12, event_after=4,
                      add_backend=False, failback=True, whole_box=False, log=print):
    """What `tools/run --failover` plays (the pair started): optionally the spare backend
    joins the services; the workload with the master's tetherd SIGKILLed in the middle (with
    whole_box, its keepalived too: the box fails); with failback, the killed instance
    restarted (it syncs and stays backup) and the workload again with a graceful handover
    back (`tetherctl ha release` on the master). Returns the phases' figures."""
    if add_backend:
        log(f"failover: {next(iter(SPARE_BACKENDS))} joins sip, ftp and rtsp on both instances (reload)")
        pair.add_backend()
    victim = pair.master()
    assert victim is not None, "no master"
    survivor = next(n for n in pair.instances if n != victim)

    def kill():
        at = pair.kill_box(victim) if whole_box else pair.kill_tetherd(victim)
        pair.wait_role(survivor, "master", 10)
        taken_over = time.time()
        return {"at": at, "taken_over": taken_over, "takeover_s": taken_over - at, "survivor": survivor,
                "victim": victim, "sync": pair[survivor].tetherd.ctl("show", "sync")}

    log(f"failover: workload; instance {victim}'s {'keepalived and tetherd' if whole_box else 'tetherd'} "
        f"(master) {'get' if whole_box else 'gets'} SIGKILL after {event_after} s")
    first = play(lab, probe, calls=calls, downloads=downloads, streams=streams, seconds=seconds,
                 event_after=event_after, event=kill, label="fo")
    if not failback:
        return (first,)

    log(f"failover: restarting instance {victim}'s tetherd")
    pair.start_tetherd(victim)
    if whole_box:
        pair.start_keepalived(victim)
    pair.wait_role(victim, "backup", 20)
    time.sleep(1)  # the bulk dump the restarted instance asked for
    restarted_sync = pair[victim].tetherd.ctl("show", "sync")

    def release():
        at = time.time()
        pair[survivor].tetherd.ctl("ha", "release")
        pair.wait_role(victim, "master", 10)
        taken_over = time.time()
        pair.wait_role(survivor, "backup", 10)
        pair[survivor].tetherd.ctl("ha", "claim")
        return {"at": at, "taken_over": taken_over, "handover_s": taken_over - at,
                "restarted_sync": restarted_sync}

    log(f"failover: workload; graceful handover back to {victim} (tetherctl ha release on {survivor}) "
        f"after {event_after} s")
    second = play(lab, probe, calls=calls // 2, downloads=downloads // 2, streams=streams, seconds=seconds,
                  event_after=event_after, event=release, label="fb")
    return first, second
