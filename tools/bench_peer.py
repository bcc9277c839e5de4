"""The peer family of tools/bench: tetherd against what an operator would run instead, on a
path both a DPDK application and a kernel-socket application can use.

Three network namespaces, joined by two veth pairs:

  gen   trafgen (netsniff-ng) replays the SIP calls pcap of the main benchmark (INVITE with
        SDP, ACK, BYE) into gen0 as fast as it can, on CPU 0
  lb    the balancer, on CPU 1: its input is lbin (gen0's peer; MAC and VIP of the pcap's
        destination), its output lbout (192.0.2.1/24; the backends are static neighbours)
  sink  sink0 (lbout's peer) counts what reaches each backend's MAC in an nftables netdev
        ingress chain, and drops it

In every round, one run each, measured over the same window from the same counters:
  generator  nothing behind lbin but an ingress drop: the generator's own ceiling
  io         dpdk-testpmd io between two net_af_packet ports on lbin and lbout: the ceiling
             of a DPDK application on this path
  tether     tetherd, one worker, the same two net_af_packet ports, DSR (the main
             benchmark's SIP service)
  kamailio   Kamailio as a stateless SIP dispatcher (dispatcher module, algorithm 0: a hash
             over the Call-ID, stateless forward(), one UDP worker), run with its fast
             allocator (-x fm -X fm) as its documentation recommends for production: Debian
             builds it with the debugging allocator (qm) as the default
  nftables   (L4) the kernel as a DSR balancer: a netdev ingress chain on lbin that sets the
             destination MAC from a hash of the source address and port and forwards to
             lbout. No process of its own: it runs in the receive path, on the generator's
             CPU

tetherd and Kamailio run in turn, reversed every other round. The balancers that are
processes (testpmd, tetherd, Kamailio) run alone on CPU 1 (EAL --lcores 0@0,1@1: tetherd's
control thread shares CPU 0 with the generator, and sleeps between its tasks; Kamailio under
taskset). Forwarded messages are what reached sink0; offered, what lbin received; drops
their difference. After each window a sample of the forwarded frames (tcpdump in the sink)
is checked: every Call-ID in it reached one backend only.
"""
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import time
from pathlib import Path

import bench
from tetherlab.config import Port, config_text
from tetherlab.namespaces import remove_namespace, run
from tetherlab.tetherd import Tetherd

TRAFGEN = shutil.which("trafgen") or "/usr/sbin/trafgen"
KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"

VIP = "192.0.2.102"
LB_OUT_ADDRESS = "192.0.2.1/24"
PORT_MAC, OUT_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
BACKENDS = {f"b{i}": (f"192.0.2.{10 + i}", f"02:00:00:00:01:{i:02x}") for i in range(1, 4)}
GENERATOR_CPU, BALANCER_CPU = 0, 1
# Calls of the SIP pcap (three messages each) that trafgen replays: the main benchmark's
# 100,000 would take it minutes to compile (its packet configuration's parser is
# super-linear: 1,000 calls 0.3 s, 10,000 4.4 s, 100,000 still compiling after 4.5 minutes
# here), so the peer family replays the first 10,000 calls of the same pcap.
CALLS = 10_000
# The af_packet ports' device arguments, the same for testpmd and tetherd (docs/performance.md,
# "A peer on the same path", says what each gave): frames of 2 kB in a ring of 4096 per
# direction, PACKET_QDISC_BYPASS on (DPDK 22.11's default, said explicitly).
AF_PACKET_DEVARGS = "blocksz=4096,framesz=2048,framecnt=4096,qdisc_bypass=1"
# Every balancer's ports take frames of up to this many bytes (af_packet's frame less its header).
MBUF_SIZE = 2048
# DPDK's memory for the peer runs, without hugepages: on this path the kernel's copies
# dominate, and a run with no shared files never meets another DPDK run's (the main
# table's hugepage prefixes are one per program, not per benchmark). tetherd needs the
# most: two ports' pools of MBUF_SIZE buffers and its session table.
EAL_MEMORY = ["--no-huge", "-m", "1024", "--no-shconf", "--no-pci"]
# Frames of the forwarded traffic read after each window to check stickiness.
SAMPLE_FRAMES = 20000
PEERS = ("tether", "kamailio")


def frame_bytes_fit(devargs):
    """The mbuf data room a net_af_packet port with these device arguments needs: its rx
    queue refuses a pool whose buffers are smaller than its frames' data."""
    framesz = int(dict(kv.split("=", 1) for kv in devargs.split(",") if "=" in kv).get("framesz", 2048))
    return max(MBUF_SIZE, framesz)


class PeerLab:
    """The three namespaces and their counters. Names follow the lab's (tte2e-PID-...), so a
    lab left by a killed run is removed by the next one (remove_stale_labs)."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        tag = f"tte2e-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"
        self.gen, self.lb, self.sink = f"{tag}-pgen", f"{tag}-plb", f"{tag}-psink"
        self.quiet = False
        try:
            self._create()
        except BaseException:
            self.remove()
            raise

    def _create(self):
        for ns in (self.gen, self.lb, self.sink):
            run("ip", "netns", "add", ns)
            run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                   "net.ipv6.conf.default.disable_ipv6=1", "net.ipv4.conf.all.rp_filter=0",
                   "net.ipv4.conf.default.rp_filter=0")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", "gen0", "netns", self.gen, "type", "veth", "peer", "name", "lbin",
               "netns", self.lb, "address", PORT_MAC)
        run("ip", "link", "add", "lbout", "netns", self.lb, "address", OUT_MAC, "type", "veth",
               "peer", "name", "sink0", "netns", self.sink)
        for ns, device in ((self.gen, "gen0"), (self.lb, "lbin"), (self.lb, "lbout"), (self.sink, "sink0")):
            run("ip", "-n", ns, "link", "set", device, "up")
        # Kamailio's side: the VIP on the input, the backends on the output's subnet, their
        # MACs as static neighbours (as tetherd has them in its configuration).
        run("ip", "-n", self.lb, "addr", "add", f"{VIP}/32", "dev", "lbin")
        run("ip", "-n", self.lb, "addr", "add", LB_OUT_ADDRESS, "dev", "lbout")
        self.pin_backends()
        # One counter per backend and one for every other frame (testpmd io's keep their
        # destination MAC), all read at once: the forwarded total is their sum.
        counters = "".join(f"counter {name} {{ }}\n" for name in [*BACKENDS, "other"])
        rules = "".join(f"ether daddr {mac} counter name {name} drop\n" for name, (_a, mac) in BACKENDS.items())
        self.nft(self.sink, f"table netdev sink {{\n{counters}chain in {{ type filter hook ingress device "
                            f"sink0 priority 0; policy drop;\n{rules}counter name other drop\n}}\n}}\n")
        self.set_quiet(True)

    def pin_backends(self):
        """The backends' MACs as lb's static neighbours on lbout. Again before each Kamailio
        run: a DPDK port setting lbout's MAC (even to the same one) makes the kernel flush
        the device's neighbours, permanent ones too, and Kamailio's datagrams would then
        wait for ARP answers that never come."""
        for address, mac in BACKENDS.values():
            run("ip", "-n", self.lb, "neigh", "replace", address, "lladdr", mac, "dev", "lbout",
                   "nud", "permanent")

    def nft(self, ns, script):
        result = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True,
                                capture_output=True)
        if result.returncode != 0:
            raise RuntimeError(f"nft in {ns}: {result.stderr}\n{script}")

    def set_quiet(self, quiet):
        """With `quiet`, lb's kernel drops whatever lbin receives at ingress, after the
        af_packet sockets took their copy (they see a frame first): the generator's ceiling,
        and the DPDK runs, where the kernel must not answer the VIP's traffic itself."""
        if quiet == self.quiet:
            return
        if quiet:
            self.nft(self.lb, "table netdev quiet {\nchain in { type filter hook ingress device lbin priority 0; "
                              "policy drop; }\n}\n")
        else:
            self.nft(self.lb, "delete table netdev quiet\n")
        self.quiet = quiet

    def spawn(self, ns, words, cpu=None, **kwargs):
        """A process in namespace `ns` (on `cpu`), in a session of its own."""
        prefix = ["ip", "netns", "exec", ns] + (["taskset", "-c", str(cpu)] if cpu is not None else [])
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.Popen([*prefix, *map(str, words)], stdin=subprocess.DEVNULL, start_new_session=True,
                                **kwargs)

    def link_packets(self, ns, device):
        stats = json.loads(run("ip", "-n", ns, "-j", "-s", "link", "show", "dev", device).stdout)[0]["stats64"]
        return stats["rx"]["packets"], stats["rx"]["dropped"]

    def counts(self):
        """Offered (lbin's received), its drops at the backlog, forwarded (what sink0's
        ingress counted) and the forwarded per backend."""
        listed = json.loads(run("ip", "netns", "exec", self.sink, "nft", "-j", "list", "counters",
                                   "table", "netdev", "sink").stdout)
        offered, offered_dropped = self.link_packets(self.lb, "lbin")
        counted = {item["counter"]["name"]: item["counter"]["packets"]
                   for item in listed["nftables"] if "counter" in item}
        return {"time": time.monotonic(), "offered": offered, "offered_dropped": offered_dropped,
                "forwarded": sum(counted.values()), "per_backend": {name: counted[name] for name in BACKENDS}}

    def sample(self, frames, timeout):
        """Up to `frames` forwarded frames as the sink receives them: [(destination MAC,
        Call-ID)], the Call-ID None for a frame without one."""
        path = self.workdir / "sample.pcap"
        path.unlink(missing_ok=True)
        proc = self.spawn(self.sink, ["tcpdump", "-i", "sink0", "-n", "-s", "2048", "-B", "32768", "-c", frames,
                                      "-w", path])
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        bench.stop_group(proc, signal.SIGINT, 5)
        return list(call_ids(path)) if path.exists() else []

    def remove(self):
        for ns in (self.gen, self.lb, self.sink):
            remove_namespace(ns)


CALL_ID = re.compile(rb"\r\n(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]+)", re.I)


def call_ids(path):
    """(destination MAC, Call-ID or None) of every frame of a pcap file."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        return
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offset = 24
    while offset + 16 <= len(data):
        _sec, _frac, captured, _length = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        found = CALL_ID.search(frame)
        yield frame[:6].hex(":"), found.group(1).strip().decode(errors="replace") if found else None


def stickiness(sample):
    """What a sample says about Call-ID stickiness: the Call-IDs seen, those seen in more
    than one message, those that reached more than one backend (must be 0), and each
    backend's share of the sample's messages."""
    backends_of, messages_of, per_backend = {}, {}, {}
    macs = {mac: name for name, (_a, mac) in BACKENDS.items()}
    for mac, call in sample:
        if call is None:
            continue
        name = macs.get(mac, mac)
        backends_of.setdefault(call, set()).add(name)
        messages_of[call] = messages_of.get(call, 0) + 1
        per_backend[name] = per_backend.get(name, 0) + 1
    return {"frames": len(sample), "calls": len(backends_of),
            "calls_with_several_messages": sum(1 for n in messages_of.values() if n > 1),
            "calls_on_several_backends": sum(1 for names in backends_of.values() if len(names) > 1),
            "messages_per_backend": per_backend}


# -- the balancers -------------------------------------------------------------------------

class Running:
    """A balancer while it runs: its process (None: the kernel's), and how it stops."""

    def __init__(self, proc, stop):
        self.proc, self._stop = proc, stop

    def stop(self):
        self._stop()


def start_nothing(lab, workdir, options):
    lab.set_quiet(True)
    return Running(None, lambda: None)


def start_testpmd(lab, workdir, options):
    devargs = options["devargs"]
    lab.set_quiet(True)
    args = [bench.TESTPMD, *bench.lcores(1), *EAL_MEMORY, "--log-level=lib.*:error",
            "--vdev", f"net_af_packet0,iface=lbin,{devargs}", "--vdev", f"net_af_packet1,iface=lbout,{devargs}",
            "--", "--forward-mode=io", "--auto-start", "--stats-period=1", "--nb-cores=1", "--total-num-mbufs=32768",
            f"--mbuf-size={frame_bytes_fit(devargs) + 128}"]
    log = open(workdir / "testpmd.log", "w")
    proc = lab.spawn(lab.lb, args, stdout=log, stderr=subprocess.STDOUT)
    log.close()

    def stop():
        bench.stop_group(proc, signal.SIGINT, 30)
    return Running(proc, stop)


def tetherd_peer_config(devargs):
    ports = [Port("in", f"net_af_packet0,iface=lbin,{devargs}", PORT_MAC, ("192.0.2.1",)),
             Port("out", f"net_af_packet1,iface=lbout,{devargs}", OUT_MAC, mbufs=16384)]
    services = [{"name": "sip", "vip": VIP, "port": 5060, "protocol": "udp", "extra": 'dpi = "sip"; linger = 0;',
                 "weights": dict.fromkeys(BACKENDS, 1)}]
    tables = {"flows_per_worker": 1 << 16, "sessions": 1 << 19, "dpi_streams_per_worker": 16384,
              "mbufs_per_port": 32768, "mbuf_size": frame_bytes_fit(devargs)}
    return config_text(ports, BACKENDS, services, eal=[*bench.lcores(1), *EAL_MEMORY,
                                                       "--log-level=lib.*:error"],
                       tables=tables, log_level="warning", backend_port="out")


def start_tetherd(lab, workdir, options):
    lab.set_quiet(True)
    config = workdir / "tetherd-peer.cfg"
    config.write_text(tetherd_peer_config(options["devargs"]))
    daemon = Tetherd(config, workdir / "tetherd-peer.sock", start_timeout=120,
                     spawn=lambda words, **kw: lab.spawn(lab.lb, words, **kw))
    running = Running(daemon.proc, lambda: daemon.stop(timeout=60))
    running.daemon = daemon
    return running


def kamailio_config(workdir, children=1):
    """A stateless SIP dispatcher: the Call-ID's hash (algorithm 0) picks one of the three
    backends, forward() sends the request on without a transaction. No DNS, no TCP, one
    UDP worker."""
    listed = workdir / "dispatcher.list"
    listed.write_text("".join(f"1 sip:{address}:5060\n" for address, _mac in BACKENDS.values()))
    config = workdir / "kamailio.cfg"
    config.write_text(f"""#!KAMAILIO
debug=-1
log_stderror=yes
fork=yes
children={children}
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
listen=udp:{VIP}:5060
mpath="{KAMAILIO_MODULES}"
loadmodule "dispatcher.so"
modparam("dispatcher", "list_file", "{listed}")
request_route {{
    if (!ds_select_dst("1", "0")) {{
        drop;
    }}
    forward();
    exit;
}}
""")
    return config


def start_kamailio(lab, workdir, options):
    lab.set_quiet(False)
    lab.pin_backends()
    config = kamailio_config(workdir)
    log = open(workdir / "kamailio.log", "w")
    allocator = options["kamailio_allocator"]
    proc = lab.spawn(lab.lb, [KAMAILIO, "-f", config, "-DD", "-E", "-x", allocator, "-X", allocator, "-m", "128", "-M", "16",
                              "-P", workdir / "kamailio.pid", "-Y", workdir, "-w", workdir],
                     cpu=BALANCER_CPU, stdout=log, stderr=subprocess.STDOUT)
    log.close()

    def stop():
        bench.stop_group(proc, signal.SIGTERM, 30)
        lab.set_quiet(True)
    return Running(proc, stop)


def start_nftables(lab, workdir, options):
    """The kernel as an L4 DSR balancer: each VIP datagram's destination MAC from a hash of
    its source address and port (the 5-tuple's varying part here), forwarded to lbout."""
    lab.set_quiet(False)
    macs = ", ".join(f"{n} : {mac}" for n, (_a, mac) in enumerate(BACKENDS.values()))
    lab.nft(lab.lb, f"""table netdev l4 {{
chain in {{ type filter hook ingress device lbin priority -1; policy drop;
ip daddr {VIP} udp dport 5060 ether saddr set {OUT_MAC} ether daddr set jhash ip saddr . udp sport mod {len(BACKENDS)} map {{ {macs} }} fwd to "lbout"
}}
}}
""")

    def stop():
        lab.nft(lab.lb, "delete table netdev l4\n")
        lab.set_quiet(True)
    return Running(None, stop)


BALANCERS = {"generator": start_nothing, "io": start_testpmd, "tether": start_tetherd,
             "kamailio": start_kamailio, "nftables": start_nftables}


# -- runs ----------------------------------------------------------------------------------

# A run of at least 4 printable bytes other than '"' and '\\': one string token of
# trafgen's packet language, the rest decimal bytes.
PRINTABLE_RUN = re.compile(rb'[\x20\x21\x23-\x5b\x5d-\x7e]{4,}')


def write_trafgen_config(frames, path):
    """The frames as trafgen's packet configuration, one packet a line. trafgen reads a pcap
    too, but sends it once and stops; a configuration it sends round and round. Its
    netsniff-ng conversion writes every byte in hex: 0.9 GB for 100,000 calls."""
    with open(path, "w") as out:
        for frame in frames:
            tokens, position = [], 0
            for text in PRINTABLE_RUN.finditer(frame):
                tokens += map(str, frame[position:text.start()])
                tokens.append(f'"{text.group().decode()}"')
                position = text.end()
            tokens += map(str, frame[position:])
            out.write("{" + ",".join(tokens) + "}\n")


def start_generator(lab, config, workdir):
    """trafgen, one process on CPU 0, sending the configuration's packets in turn without
    gaps through its TX_RING (qdisc bypassed), forever. --no-sock-mem: it would raise the
    machine's default socket buffer sizes while it runs."""
    log = open(workdir / "trafgen.log", "w")
    proc = lab.spawn(lab.gen, [TRAFGEN, "--dev", "gen0", "--in", config, "--cpus", "1", "--no-sock-mem",
                               "--no-cpu-stats"],
                     cpu=GENERATOR_CPU, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def softirq_ticks():
    with open("/proc/stat") as stat:
        return int(stat.readline().split()[7])


def flowing(counts, what):
    """The frames that show `what` works: lbin's with nothing behind it, the sink's for
    testpmd io (which forwards the frames unchanged), the backends' for a balancer (a
    stray frame of the kernel's is no sign)."""
    if what == "generator":
        return counts["offered"]
    return counts["forwarded"] if what == "io" else sum(counts["per_backend"].values())


def wait_for_traffic(lab, proc, what, timeout):
    """Until a thousand frames flowed (see flowing())."""
    start = flowing(lab.counts(), what)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before forwarding anything: "
                               + log_tail(lab.workdir, what))
        time.sleep(0.2)
        if flowing(lab.counts(), what) >= start + 1000:
            return
    raise RuntimeError(f"{what}: nothing forwarded within {timeout} s: " + log_tail(lab.workdir, what))


def log_tail(workdir, what):
    logs = {"generator": "trafgen.log", "io": "testpmd.log", "tether": "tetherd-peer.err", "kamailio": "kamailio.log"}
    path = Path(workdir) / logs.get(what, "")
    return path.read_text()[-2000:] if what in logs and path.exists() else ""


def measure(lab, what, workdir, options, warmup, seconds, sample_frames):
    """One balancer's run while the generator replays: its figures over the window."""
    running = BALANCERS[what](lab, workdir, options)
    try:
        wait_for_traffic(lab, running.proc, what, 60)
        time.sleep(warmup)
        groups = {0}  # kernel threads (ksoftirqd) carry the path's own packets
        if running.proc is not None:
            groups.add(os.getpgid(running.proc.pid))
        others = bench.OtherLoad(os.getpid())
        others.groups |= groups | {os.getpgid(lab.generator.pid)}
        others.begin()
        c0, cpu0, soft0 = lab.counts(), bench.process_group_cpu_ticks(groups - {0}), softirq_ticks()
        time.sleep(seconds)
        c1, cpu1, soft1 = lab.counts(), bench.process_group_cpu_ticks(groups - {0}), softirq_ticks()
        others_cpus = max(0.0, others.end() - (soft1 - soft0) / os.sysconf("SC_CLK_TCK") / (c1["time"] - c0["time"]))
        tether_drops = None
        if what == "tether":
            counters = running.daemon.json("show", "counters")
            tether_drops = {k: v for k, v in counters["drops"].items() if v}
        sample = stickiness(lab.sample(sample_frames, 10)) if what in ("tether", "kamailio", "nftables") else None
    finally:
        running.stop()
    bench.check_quiet(others_cpus, f"{what} on the peer path")
    elapsed = c1["time"] - c0["time"]
    forwarded = c1["forwarded"] - c0["forwarded"]
    offered = c1["offered"] - c0["offered"]
    cpu_seconds = (cpu1 - cpu0) / os.sysconf("SC_CLK_TCK")
    figures = {
        "offered_per_s": offered / elapsed,
        "offered_dropped_per_s": (c1["offered_dropped"] - c0["offered_dropped"]) / elapsed,
        "forwarded_per_s": forwarded / elapsed,
        "drops_per_s": max(0, offered - forwarded) / elapsed if what != "generator" else 0.0,
        "per_backend_per_s": {name: (c1["per_backend"][name] - c0["per_backend"][name]) / elapsed
                              for name in BACKENDS},
        "cpu_share": cpu_seconds / elapsed,
        "cpu_seconds_per_million": cpu_seconds / max(1, forwarded) * 1e6 if running.proc is not None else None,
        "softirq_seconds_per_million": (soft1 - soft0) / os.sysconf("SC_CLK_TCK")
                                       / max(1, offered if what == "generator" else forwarded) * 1e6,
        "others_cpus": others_cpus,
    }
    if what == "generator":  # nothing forwards: the rate is what lbin took
        figures["forwarded_per_s"] = figures["offered_per_s"]
    if tether_drops is not None:
        figures["tether_drops"] = tether_drops
    if sample is not None:
        figures["sample"] = sample
    return figures


def measure_peers(frames, workdir, rounds, warmup, seconds, devargs=AF_PACKET_DEVARGS,
                  kamailio_allocator="fm", with_nftables=True, sample_frames=SAMPLE_FRAMES):
    """The peer family, round after round: the generator's ceiling, testpmd io's, then
    tetherd and Kamailio in turn (reversed every other round), then nftables."""
    options = {"devargs": devargs, "kamailio_allocator": kamailio_allocator}
    config = workdir / "peer-sip.trafgen"
    write_trafgen_config(frames, config)
    lab = PeerLab(workdir)
    try:
        lab.generator = start_generator(lab, config, workdir)
        # trafgen compiles its configuration first: ~5 s for a full run's 30,000 messages
        wait_for_traffic(lab, lab.generator, "generator", 300)

        def play(n):
            order = ["generator", "io", *(PEERS if n % 2 == 0 else reversed(PEERS))]
            if with_nftables:
                order.append("nftables")
            figures = {what: measure(lab, what, workdir, options, warmup, seconds, sample_frames)
                       for what in order}
            if lab.generator.poll() is not None:
                raise RuntimeError(f"trafgen exited: {(workdir / 'trafgen.log').read_text()[-2000:]}")
            print(f"  peer round {n + 1}: " + ", ".join(f"{what} {figures[what]['forwarded_per_s'] / 1e3:.0f}k"
                                                     for what in order) + " messages/s", flush=True)
            return figures

        played = bench.steady_rounds("peer", rounds, play, lambda r: r["io"]["forwarded_per_s"] / 1e3,
                                     unit="k messages/s")
    finally:
        if getattr(lab, "generator", None) is not None:
            bench.stop_group(lab.generator, signal.SIGINT, 10)
        lab.remove()
    summary = summarise(played, options, len(frames))
    summary["namespaces"] = [lab.gen, lab.lb, lab.sink]
    return summary


def summarise(played, options, frames):
    runs = {what: [r[what] for r in played] for what in played[0]}

    def ratio(a, b):
        by_round = [x["forwarded_per_s"] / y["forwarded_per_s"] for x, y in zip(runs[a], runs[b])]
        return statistics.median(by_round), by_round
    summary = {**options, "frames_in_pcap": frames, "rounds": runs, "medians": {}}
    for what, figures in runs.items():
        summary["medians"][what] = {key: statistics.median(f[key] for f in figures)
                                    for key in ("offered_per_s", "forwarded_per_s", "drops_per_s", "cpu_share",
                                                "softirq_seconds_per_million")}
        cpu = [f["cpu_seconds_per_million"] for f in figures if f["cpu_seconds_per_million"] is not None]
        summary["medians"][what]["cpu_seconds_per_million"] = statistics.median(cpu) if cpu else None
        samples = [f["sample"] for f in figures if "sample" in f]
        if samples:
            summary["medians"][what]["calls_on_several_backends"] = sum(s["calls_on_several_backends"] for s in samples)
            summary["medians"][what]["calls_sampled"] = sum(s["calls"] for s in samples)
    for name, (a, b) in {"tether_x_kamailio": ("tether", "kamailio"), "tether_x_io": ("tether", "io"),
                         "io_x_generator": ("io", "generator"), "kamailio_x_io": ("kamailio", "io")}.items():
        summary[name], summary[name + "_by_round"] = ratio(a, b)
    # per CPU second: what each forwarded for the CPU time its processes took (tetherd polls,
    # so its share is a whole core whether or not it is saturated)
    for name, other in (("tether_x_kamailio_per_cpu", "kamailio"), ("tether_x_io_per_cpu", "io")):
        per_cpu = [o["cpu_seconds_per_million"] / t["cpu_seconds_per_million"]
                   for t, o in zip(runs["tether"], runs[other])]
        summary[name], summary[name + "_by_round"] = statistics.median(per_cpu), per_cpu
    if "nftables" in runs:
        summary["tether_x_nftables"], summary["tether_x_nftables_by_round"] = ratio("tether", "nftables")
    return summary


def peer_table(summary):
    m = summary["medians"]
    lines = ["", "peer: SIP calls (INVITE/ACK/BYE) replayed by trafgen into a veth; tetherd and the peers on CPU 1 "
             f"(one worker, one UDP worker), net_af_packet devargs {summary['devargs']}", "",
             f"{'run':34} {'offered/s':>10} {'fwd/s':>10} {'drops/s':>9} {'cpu':>5} {'cpu s/M':>8} {'sirq s/M':>8} "
             f"{'x io':>6}  notes"]
    titles = {"generator": "generator ceiling (drop behind)", "io": "testpmd io, af_packet (ceiling)",
              "tether": "tetherd, 1 worker, DSR", "kamailio": f"Kamailio dispatcher, 1 worker, {summary['kamailio_allocator']}",
              "nftables": "nftables netdev fwd (L4)"}
    io = m["io"]["forwarded_per_s"]
    for what in summary["rounds"]:
        f = m[what]
        notes = []
        if "calls_sampled" in f:
            notes.append(f"{f['calls_sampled']} calls sampled, {f['calls_on_several_backends']} on several backends")
        if what == "tether":
            drops = {}
            for figures in summary["rounds"]["tether"]:
                for reason, count in figures.get("tether_drops", {}).items():
                    drops[reason] = drops.get(reason, 0) + count
            if drops:
                notes.append("tetherd drops " + ", ".join(f"{k} {v}" for k, v in drops.items()))
        cpu_per_million = f"{f['cpu_seconds_per_million']:8.2f}" if f["cpu_seconds_per_million"] is not None else f"{'-':>8}"
        lines.append(f"{titles[what]:34} {f['offered_per_s'] / 1e3:9.0f}k {f['forwarded_per_s'] / 1e3:9.0f}k "
                     f"{f['drops_per_s'] / 1e3:8.0f}k {f['cpu_share']:5.2f} {cpu_per_million} "
                     f"{f['softirq_seconds_per_million']:8.2f} {f['forwarded_per_s'] / io:6.2f}  {'; '.join(notes)}")
    lines.append("")
    by_round = lambda key: " ".join(f"{x:.2f}" for x in summary[key + "_by_round"])  # noqa: E731
    lines.append(f"tether / Kamailio {summary['tether_x_kamailio']:.2f} (by round {by_round('tether_x_kamailio')}), "
                 f"per CPU second {summary['tether_x_kamailio_per_cpu']:.2f}; "
                 f"tether / io ceiling {summary['tether_x_io']:.2f} (by round {by_round('tether_x_io')}), "
                 f"per CPU second {summary['tether_x_io_per_cpu']:.2f}; "
                 f"io / generator {summary['io_x_generator']:.2f}"
                 + (f"; tether / nftables {summary['tether_x_nftables']:.2f}" if "tether_x_nftables" in summary else ""))
    lines.append("offered: what lbin received; fwd: what reached the sink; drops: their difference; cpu: the "
                 "balancer's processes' CPU time over the window (tetherd polls: 1 core), cpu s/M its CPU seconds "
                 "per million forwarded (per CPU second: the inverse ratio of these, which a busy machine "
                 "disturbs less than the rates); sirq s/M: the machine's softirq time per million (the veths' receive "
                 "paths, nftables' work). Stickiness: a tcpdump sample of the forwarded frames after each window.")
    return "\n".join(lines)
