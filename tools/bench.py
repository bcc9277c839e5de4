"""tether's benchmark: tetherd against dpdk-testpmd on the same vdevs, in the same run.

For every scenario it writes a pcap, then runs, one after the other on the same forwarding
lcore: dpdk-testpmd in io mode (the ceiling of the I/O path), dpdk-testpmd in 5tswap mode
(parses L2-L4 and swaps addresses: the cost of touching headers without a table) and
tetherd with one worker. Each reads the pcap forever (net_pcap, infinite_rx=1) and sends to
net_null. Each runs a warm-up, then a measured window; the figure of a scenario is the
median over the rounds. Throughput is stated as a ratio to io in the same round (the
median of the rounds' ratios), because absolute figures on shared machines drift.

With --compare A --compare B..., it runs tetherd builds A, B... instead, in turn within every
round (in reverse order every other round, so that no build always runs first) after
testpmd's io, and reports each build's median and its per-round speed against
A: on this kind of machine a gain of a few percent shows only when the two builds run side
by side, not in separate runs.

With --sync, it measures what state sync costs the fast path instead (default scenarios: sip
and new_flows): in every round testpmd's io, then tetherd with sync off and with sync on, in
turn (reversed every other round). Both run in a network namespace of their own with a
kernel interface on the input port, so sync is the only difference; with sync on, tetherd
sends every session change and flow (flow_threshold 1) to a peer that a static neighbour
entry makes reachable through that interface, and the frames leave through the input port
(net_pcap, which drops what it transmits). It reports sync on as a ratio of sync off in the
same round, the events the workers queued and lost, and the records and messages sent, and
fails when a sync-on run sent no record (or a sync-off run queued an event).

The machine must be quiet: every run measures the CPU time that other processes (and the
hypervisor's steal) took during its measured window and warns above a tenth of a CPU, and a
round whose io ceiling is more than 15% off the median of the rounds is played again (at most
as many times as there are rounds), so one busy moment does not decide a ratio. The warnings
are printed with the table and kept in the JSON.

The peer family (scenario name `peer`; part of a full run, with --quick only when named)
runs on an af_packet veth path instead of the vdevs: trafgen replays the SIP pcap, and
testpmd io (the path's ceiling), tetherd and Kamailio (a stateless Call-ID dispatcher)
forward it to a sink that counts per backend; see bench_peer.py.

Usage: tools/bench [--quick] [--rounds N] [--seconds S] [--warmup S] [--out DIR]
                   [--peer-devargs ARGS] [--kamailio-allocator fm|qm|tlsf]
                   [--compare TETHERD]... [SCENARIO...] [peer]
       tools/bench --sync [--sync-max-rate N] [--sync-flow-threshold N] [...] [SCENARIO...]
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from tetherlab.config import Kernel, Port, config_text
from tetherlab.tetherd import REPO, TETHERD, Tetherd, spawn_process

TESTPMD = shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd"

PORT_MAC = bytes.fromhex("020000000001")
CLIENT_MAC = bytes.fromhex("020000000aa1")
VIP_UDP, VIP_TCP, VIP_SIP, VIP_RTSP, VIP_FTP = (bytes([192, 0, 2, n]) for n in (100, 101, 102, 103, 104))
UDP_PORT, TCP_PORT, SIP_PORT, RTSP_PORT, FTP_PORT = 5000, 80, 5060, 554, 21
HUGEPAGE_MB = 2
# The scaling table: as many workers as CPUs (this machine: 2), against one.
SCALING_WORKERS = min(2, os.cpu_count() or 1)
# sync.max_rate with --sync: the most tetherd accepts, so that the sender drains the workers'
# rings as fast as it can (docs/performance.md, "State sync's cost").
SYNC_MAX_RATE = 10_000_000


# -- frames --------------------------------------------------------------------------------

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def client_address(n):
    return bytes([10, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])


def ipv4_frame(protocol, source, destination, l4, pad_to=60):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, protocol, 0,
                         source, destination)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    frame = PORT_MAC + CLIENT_MAC + b"\x08\x00" + header + l4
    return frame + b"\0" * max(0, pad_to - len(frame))


def udp(source, destination, sport, dport, payload=b""):
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ipv4_frame(17, source, destination, l4)


def tcp(source, destination, sport, dport, flags, payload=b"", seq=1000):
    l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, 1 if flags & 0x10 else 0, 5 << 4, flags,
                     65535, 0, 0) + payload
    return ipv4_frame(6, source, destination, l4)


ACK, SYN, PSH = 0x10, 0x02, 0x08


def established(count):
    """One 64-byte frame per flow: half UDP, half TCP ACKs, distinct 5-tuples."""
    frames = []
    for n in range(count):
        source, sport = client_address(n // 50000), 1024 + n % 50000
        if n % 2:
            frames.append(tcp(source, VIP_TCP, sport, TCP_PORT, ACK))
        else:
            frames.append(udp(source, VIP_UDP, sport, UDP_PORT, b"x" * 18))
    return frames


def syn_storm(count):
    return [tcp(client_address(n // 60000), VIP_TCP, 1024 + n % 60000, TCP_PORT, SYN)
            for n in range(count)]


SDP = ("v=0\r\no=alice 2890844526 2890844526 IN IP4 10.1.2.3\r\ns=call\r\n"
       "c=IN IP4 10.1.2.3\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 97 101\r\n"
       "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:97 iLBC/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n")


def sip_message(method, call, source, sport, cseq):
    host = ".".join(map(str, source))
    body = SDP if method == "INVITE" else ""
    text = (f"{method} sip:service@192.0.2.102:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{sport};branch=z9hG4bK-{call}-{cseq};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: \"Caller {call}\" <sip:user{call}@{host}>;tag={call * 7919 % 1000003}\r\n"
            "To: <sip:service@192.0.2.102>" + ("" if method == "INVITE" else f";tag=b{call}") + "\r\n"
            f"Call-ID: {call:08x}-{call * 2654435761 % 2**32:08x}@{host}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:user{call}@{host}:{sport}>\r\n"
            "User-Agent: tether-bench/1.0\r\n"
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n{body}")
    return udp(source, VIP_SIP, sport, SIP_PORT, text.encode())


def sip_calls(count):
    frames = []
    for call in range(count):
        source, sport = client_address(call % 5000 + 1), 5060 + call % 7
        for cseq, method in ((1, "INVITE"), (1, "ACK"), (2, "BYE")):
            frames.append(sip_message(method, call, source, sport, cseq))
    return frames


def rtsp_and_ftp(count):
    """Control connections that tetherd inspects: RTSP SETUP/PLAY and FTP PASV/RETR, plus
    the media and data packets that follow them."""
    frames = []
    for n in range(count):
        client = client_address(0x200000 + n)
        rtp = 20000 + 2 * (n % 10000)
        setup = (f"SETUP rtsp://192.0.2.103/movie/track1 RTSP/1.0\r\nCSeq: 3\r\n"
                 f"Transport: RTP/AVP;unicast;client_port={rtp}-{rtp + 1}\r\n\r\n").encode()
        play = b"PLAY rtsp://192.0.2.103/movie RTSP/1.0\r\nCSeq: 4\r\nSession: 12345678\r\n\r\n"
        frames += [tcp(client, VIP_RTSP, 40000, RTSP_PORT, SYN, seq=999),
                   tcp(client, VIP_RTSP, 40000, RTSP_PORT, PSH | ACK, setup, seq=1000),
                   tcp(client, VIP_RTSP, 40000, RTSP_PORT, PSH | ACK, play, seq=1000 + len(setup))]
        frames += [udp(client, VIP_RTSP, rtp + 1, 6971, b"\x80\xc9" + b"\0" * 30)]  # RTCP
        frames += [tcp(client, VIP_FTP, 41000, FTP_PORT, SYN, seq=499),
                   tcp(client, VIP_FTP, 41000, FTP_PORT, PSH | ACK, b"PASV\r\n", seq=500),
                   tcp(client, VIP_FTP, 41001, 30000 + n % 1000, SYN, seq=7)]
    return frames


def mixed(scale):
    """A blend: mostly established flows, SIP calls, new connections, RTSP and FTP control
    with their media and data, interleaved so every burst mixes them."""
    parts = [established(6 * scale), sip_calls(scale // 2), syn_storm(scale), rtsp_and_ftp(scale // 5)]
    frames, iterators = [], [iter(p) for p in parts]
    while iterators:
        for it in list(iterators):
            chunk = [f for _, f in zip(range(4), it)]
            if not chunk:
                iterators.remove(it)
            frames += chunk
    return frames


def write_pcap(path, frames):
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for frame in frames:
            out.write(struct.pack("<IIII", 0, 0, len(frame), len(frame)))
            out.write(frame)


# -- scenarios -----------------------------------------------------------------------------

class Scenario:
    def __init__(self, key, title, make, packets, mbuf_size, services, flows=1 << 18,
                 sessions=1 << 18, min_new_flow_share=None, scaling=False, out_port_settings="", plain=None):
        self.key, self.title, self.make, self.packets = key, title, make, packets
        # The scenario this one adds a feature to (the same pcap): tetherd runs it too in every
        # round, and the feature's cost is this one's rate against that one's in the same round.
        self.plain = plain
        # also run with as many workers (and testpmd forwarding cores) as the machine has CPUs
        self.scaling = scaling
        # raw settings of the output port: its tunnel source for a tunnel scenario
        self.out_port_settings = out_port_settings
        self.mbuf_size, self.services = mbuf_size, services
        self.flows, self.sessions = flows, sessions
        # a run in which fewer packets made a new flow measured something else: an error
        self.min_new_flow_share = min_new_flow_share


def scenarios(quick):
    scale = (lambda n: max(1000, n // 100)) if quick else (lambda n: n)
    web = [("udp", VIP_UDP, UDP_PORT, "udp", ""), ("tcp", VIP_TCP, TCP_PORT, "tcp", "")]
    sip = [("sip", VIP_SIP, SIP_PORT, "udp", 'dpi = "sip"; linger = 0;')]
    # The same with admission on: capacities (and a rate) far above what the scenario holds,
    # so nothing is refused and only the checks cost (docs/performance.md).
    sip_capacity = [("sip", VIP_SIP, SIP_PORT, "udp", 'dpi = "sip"; linger = 0; admission = { rate = 10000000; };',
                     "weight = 1; max_sessions = 100000000;")]
    media = [("rtsp", VIP_RTSP, RTSP_PORT, "tcp", 'dpi = "rtsp";'),
             ("ftp", VIP_FTP, FTP_PORT, "tcp", 'dpi = "ftp";')]
    # Every tuple must come back after its flow's idle timeout ran out, however fast tether
    # forwards: at 17.8 Mpps (a quiet machine, sync off) 4M tuples take 225 ms, 4.5 times the
    # 50 ms timeout; quick mode's 300k take 17 ms against 10 ms.
    storm_idle = "0.01" if quick else "0.05"
    storm = [("tcp", VIP_TCP, TCP_PORT, "tcp", f"idle_timeout = {storm_idle};")]
    storm_flows = 300_000 if quick else 4_000_000
    # The established flows again, wrapped in GUE (README "Tunnel forwarding"): what the
    # tunnel costs beside DSR's MAC rewrite.
    web_gue = [(name, vip, port, proto, 'forwarding = "gue";') for name, vip, port, proto, _extra in web]
    return [
        Scenario("established", "1. established, 100k flows", lambda: established(scale(100_000)),
                 scale(100_000), 128, web, scaling=True),
        Scenario("established_1m", "2. established, 1M flows", lambda: established(scale(1_000_000)),
                 scale(1_000_000), 128, web, flows=1 << 21),
        Scenario("new_flows", "3. new flows (SYN storm)", lambda: syn_storm(storm_flows),
                 storm_flows, 128, storm, flows=1 << 23 if not quick else 1 << 19, min_new_flow_share=0.9),
        Scenario("sip", "4. SIP calls (INVITE/ACK/BYE)", lambda: sip_calls(scale(100_000)),
                 3 * scale(100_000), 1024, sip, sessions=1 << 19, scaling=True),
        Scenario("sip_capacity", "4b. SIP calls, capacities and a rate set", lambda: sip_calls(scale(100_000)),
                 3 * scale(100_000), 1024, sip_capacity, sessions=1 << 19, plain="sip"),
        Scenario("mixed", "5. mixed", lambda: mixed(scale(20_000)), None, 1024, web + sip + media,
                 sessions=1 << 19),
        Scenario("established_gue", "6. established, 100k flows, GUE", lambda: established(scale(100_000)),
                 scale(100_000), 128, web_gue, out_port_settings='tunnel = { sources = ["192.0.2.2"]; };',
                 plain="established"),
    ]


# -- hugepages -----------------------------------------------------------------------------

class Memory:
    """Reserves 2 MB hugepages for the largest scenario, or falls back to --no-huge."""

    def __init__(self, megabytes, quick):
        self.original = None
        self.huge = False
        self.megabytes = megabytes
        if quick:
            self.reason = "--no-huge (quick mode)"
            return
        path = Path("/proc/sys/vm/nr_hugepages")
        try:
            self.original = int(path.read_text())
            wanted = megabytes // HUGEPAGE_MB + 64
            if self.free_pages() < wanted:
                path.write_text(str(self.original + wanted - self.free_pages()))
            if not Path("/dev/hugepages").is_mount():
                Path("/dev/hugepages").mkdir(exist_ok=True)
                subprocess.run(["mount", "-t", "hugetlbfs", "nodev", "/dev/hugepages"], check=True)
            if self.free_pages() >= wanted:
                self.huge = True
                self.reason = f"hugepages ({wanted} x 2 MB)"
            else:
                self.reason = f"--no-huge: only {self.free_pages()} of {wanted} hugepages could be reserved"
        except (OSError, subprocess.CalledProcessError) as error:
            self.reason = f"--no-huge: hugepages unavailable ({error})"

    @staticmethod
    def free_pages():
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
        return 0

    PREFIXES = ("bench_pmd", "bench_tetherd")

    def file_prefix(self, prefix):
        # This run's own: release() must not delete the hugepage files of a bench (or a test
        # of it) running beside this one.
        return f"{prefix}{os.getpid()}_"

    def eal(self, prefix):
        assert prefix in self.PREFIXES
        if self.huge:
            return [f"--file-prefix={self.file_prefix(prefix)}", "--no-pci"]
        return ["--no-huge", "-m", str(self.megabytes), "--no-shconf", "--no-pci"]

    def release(self):
        # A DPDK primary leaves the hugepage files it still mapped at exit; as long as they
        # exist, their pages cannot go back to the kernel.
        for prefix in self.PREFIXES:
            for path in Path("/dev/hugepages").glob(f"{self.file_prefix(prefix)}map_*"):
                path.unlink(missing_ok=True)
            shutil.rmtree(f"/var/run/dpdk/{self.file_prefix(prefix)}", ignore_errors=True)  # EAL's runtime files
        if self.original is not None:
            Path("/proc/sys/vm/nr_hugepages").write_text(str(self.original))


def drop_page_cache():
    """Every binary and library starts from pages read afresh. On this VM a freshly linked
    tetherd ran at 171 cycles a packet where a copy of the same bytes ran at 110, until the
    page cache was dropped; then both ran at 110. Dropping it before the runs makes that
    state the same for tether and testpmd in every benchmark."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1")
        return "dropped"
    except OSError as error:
        return f"not dropped ({error})"


# -- state sync ----------------------------------------------------------------------------

class SyncLab:
    """What tetherd needs to send state sync in the benchmark: a network namespace of its
    own (the kernel interface tetherd makes for the input port lives there, with the port's
    address), a key file, and a peer on that interface's subnet that a static neighbour
    entry makes reachable without ARP. The kernel hands the datagrams to the interface,
    tetherd transmits them on the input port, and net_pcap drops them: they count nothing
    on the forwarding figures. Nobody answers, so tetherd keeps asking the peer for a bulk
    dump every 2 s: one small message."""

    INTERFACE = "tbsync0"
    PORT_ADDRESS = "192.0.2.1/24"
    PEER, PEER_MAC = "192.0.2.2", "02:00:00:00:0b:02"
    LISTEN_PORT = 7788

    def __init__(self, workdir, max_rate, flow_threshold):
        self.max_rate, self.flow_threshold = max_rate, flow_threshold
        self.namespace = f"tether-bench-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.namespace], check=True)
        self.key_file = Path(workdir) / "sync.key"
        self.key_file.write_text(os.urandom(32).hex() + "\n")
        self.key_file.chmod(0o600)  # tetherd refuses a key others may read

    def spawn(self, words, **kwargs):
        return spawn_process(["ip", "netns", "exec", self.namespace, *map(str, words)], **kwargs)

    def settings(self):
        return (f'sync = {{ port = "in"; listen_port = {self.LISTEN_PORT}; key_file = "{self.key_file}"; '
                f'peers = ["{self.PEER}"]; instance = "bench"; flow_threshold = {self.flow_threshold}; '
                f"max_rate = {self.max_rate}; }};")

    def reach_peer(self):
        """Once tetherd made its interface: the peer's MAC, so the kernel sends at once."""
        subprocess.run(["ip", "-n", self.namespace, "neigh", "replace", self.PEER, "lladdr", self.PEER_MAC,
                        "dev", self.INTERFACE, "nud", "permanent"], check=True)

    def remove(self):
        subprocess.run(["ip", "netns", "del", self.namespace], check=False)


# the sync section's sending counts, and the workers' event counts, as the stats file has them
SYNC_SENT_RECORDS = ("sync_sent_sip_call", "sync_sent_rtp_expectation", "sync_sent_ftp_expectation",
                     "sync_sent_flow")
SYNC_SENDING = ("sync_sent", *SYNC_SENT_RECORDS, "sync_send_failed", "sync_throttled", "sync_backlog")
SYNC_WORKER = ("sync_events", "sync_events_lost")


def sync_totals(stats):
    """What tetherd's stats file says about sending state sync."""
    totals = {name: stats["sync"][name] for name in SYNC_SENDING}
    totals.update({name: stats["counters"][name] for name in SYNC_WORKER})
    totals["kernel_sent"] = stats["kernel"]["kernel_sent"]
    return totals


def check_sync(totals, sync_on):
    """The benchmark's own check that sync on really sent, and sync off queued nothing."""
    records = sum(totals[name] for name in SYNC_SENT_RECORDS)
    if sync_on and not (totals["sync_sent"] > 0 and records > 0 and totals["sync_events"] > 0):
        raise RuntimeError(f"sync on, but tetherd sent no sync records: {totals}")
    if not sync_on and totals["sync_events"] + totals["sync_events_lost"] + totals["sync_sent"] > 0:
        raise RuntimeError(f"sync off, but tetherd queued or sent sync events: {totals}")


# -- runs ----------------------------------------------------------------------------------

def vdevs(pcap):
    """`pcap`: one file, or a list of them, one per receive queue (a worker or forwarding
    core each)."""
    queues = pcap if isinstance(pcap, list) else [pcap]
    return ["net_pcap0," + "".join(f"rx_pcap={q}," for q in queues) + "infinite_rx=1", "net_null0,no-rx=1"]


def lcores(workers):
    """EAL's --lcores: the main lcore (tetherd's control thread, testpmd's console) on CPU 0,
    forwarding lcore w on CPU w modulo the CPUs: one worker has CPU 1 to itself, as in the
    main table; with as many workers as CPUs, one shares CPU 0 with the main lcore, which
    sleeps between its tasks."""
    cpus = os.cpu_count()
    return ["--lcores", ",".join(["0@0"] + [f"{w}@{w % cpus}" for w in range(1, workers + 1)])]


def split_by_flow(frames, queues):
    """The frames dealt to `queues` receive queues by their IPv4 addresses and ports, as RSS
    would: a flow, and a SIP call from one client socket, stays on one queue."""
    dealt = [[] for _ in range(queues)]
    for frame in frames:
        dealt[zlib.crc32(frame[26:38]) % queues].append(frame)
    return dealt


def mbufs_for(packets):
    return packets + 32768  # the whole pcap is held in mbufs, plus the working set


def stop_group(proc, signum, timeout):
    """Stops a run started in its own session: `signum` to its group, SIGKILL after
    `timeout` seconds. Reads any output left in its pipe so that it cannot block."""
    if proc.poll() is None:
        os.killpg(proc.pid, signum)
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


# -- a quiet machine ----------------------------------------------------------------------
# Other processes' CPU during a measured window above this (CPUs) makes a warning: a quiet
# machine shows a few hundredths (kernel threads, this script's own sampling).
QUIET_OTHERS_CPUS = 0.10
# A round whose io ceiling is further than this from the rounds' median is played again.
IO_DEVIATION = 0.15
warnings_given = []


def warn(text):
    warnings_given.append(text)
    print(f"warning: {text}", file=sys.stderr, flush=True)


def process_group_cpu_ticks(groups):
    """CPU ticks (user + system, all threads) of the processes in these process groups."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[2]) in groups:  # pgrp; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total


def machine_busy_ticks():
    """CPU ticks every CPU spent not idle since boot, the hypervisor's steal included."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    return user + nice + system + irq + softirq + steal


class OtherLoad:
    """The CPU time other processes took while a measured program ran: the machine's busy
    time less that of the program's process group and of this script's own."""

    def __init__(self, pid):
        self.groups = {os.getpgid(pid), os.getpgrp()}
        self.started = None

    def begin(self):
        self.started = (time.monotonic(), machine_busy_ticks(), process_group_cpu_ticks(self.groups))

    def end(self):
        """Other processes' CPUs on average since begin() (1.0: one CPU all the time)."""
        t0, busy0, own0 = self.started
        t1, busy1, own1 = time.monotonic(), machine_busy_ticks(), process_group_cpu_ticks(self.groups)
        ticks = (busy1 - busy0) - (own1 - own0)
        return max(0.0, ticks / os.sysconf("SC_CLK_TCK") / max(1e-3, t1 - t0))


def check_quiet(others_cpus, what):
    if others_cpus > QUIET_OTHERS_CPUS:
        warn(f"the machine was not quiet during {what}: other processes took {others_cpus:.2f} of "
             f"its {os.cpu_count()} CPUs; measure on a quiet machine")


def steady_rounds(key, count, play, io_mpps, unit="Mpps"):
    """Plays rounds 0..count-1 (`play(n)` gives a round's figures, `io_mpps` its io ceiling,
    in `unit`) and plays again a round whose io ceiling is more than IO_DEVIATION off the
    rounds' median, the furthest first, at most `count` times in all."""
    played = [play(n) for n in range(count)]
    for _ in range(count if count >= 2 else 0):
        median = statistics.median(io_mpps(r) for r in played)
        furthest = max(range(count), key=lambda n: abs(io_mpps(played[n]) / median - 1))
        deviation = io_mpps(played[furthest]) / median - 1
        if abs(deviation) <= IO_DEVIATION:
            break
        warn(f"{key} round {furthest + 1}: io {io_mpps(played[furthest]):.2f} {unit} is {100 * deviation:+.0f}% "
             f"off the rounds' median ({median:.2f}): played again")
        played[furthest] = play(furthest)
    return played


def run_testpmd(mode, pcap, packets, scenario, memory, warmup, seconds, cores=1):
    """Forwarded packets per second (port 1's Tx-pps, median over the measured seconds);
    `cores` forwarding cores, one receive queue each (`pcap` a list of as many files)."""
    args = [TESTPMD, *lcores(cores), *memory.eal("bench_pmd"), "--log-level=lib.*:error"]
    for vdev in vdevs(pcap):
        args += ["--vdev", vdev]
    args += ["--", f"--forward-mode={mode}", "--auto-start", "--stats-period=1", f"--nb-cores={cores}",
             f"--rxq={cores}", f"--txq={cores}",
             f"--total-num-mbufs={mbufs_for(packets)}",
             f"--mbuf-size={scenario.mbuf_size + 128}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    samples, port, started = [], None, None
    deadline = time.monotonic() + 120
    output = []
    others = OtherLoad(proc.pid)
    others.begin()  # again at every sample of the warm-up: the window ends at the last one
    try:
        for line in proc.stdout:
            output.append(line)
            header = re.search(r"NIC statistics for port (\d+)", line)
            if header:
                port = int(header.group(1))
                started = started or time.monotonic()
            tx = re.search(r"Tx-pps:\s+(\d+)", line)
            if tx and port == 1 and started is not None:
                if time.monotonic() - started > warmup:
                    samples.append(int(tx.group(1)))
                else:
                    others.begin()
                if len(samples) >= max(1, round(seconds)):
                    break
            if time.monotonic() > deadline:
                break
        others_cpus = others.end() if samples else 0.0  # while testpmd runs: its ticks leave with it
    finally:  # also when interrupted: an orphaned testpmd would spin a core forever
        stop_group(proc, signal.SIGINT, 30)
    if not samples:
        raise RuntimeError(f"testpmd {mode} reported nothing:\n" + "".join(output[-30:]))
    check_quiet(others_cpus, f"testpmd {mode} on {scenario.key}")
    return {"mpps": statistics.median(samples) / 1e6, "others_cpus": others_cpus}


def tetherd_config(pcap, scenario, packets, memory, sync_lab=None, sync_on=False, workers=1):
    """With `sync_lab` (a SyncLab), the input port has a kernel interface, and `sync_on`
    adds state sync through it."""
    pcap_dev, null_dev = vdevs(pcap)
    if sync_lab:
        inbound = Port("in", pcap_dev, "02:00:00:00:00:01", (SyncLab.PORT_ADDRESS,),
                       kernel=Kernel(SyncLab.INTERFACE))
    else:
        inbound = Port("in", pcap_dev, "02:00:00:00:00:01", ("192.0.2.1",))
    ports = [inbound, Port("out", null_dev, "02:00:00:00:00:02", mbufs=65535, settings=scenario.out_port_settings)]
    backends = {f"b{i}": (f"192.0.2.{10 + i}", f"02:00:00:00:01:{i:02x}") for i in range(1, 4)}
    # A service's sixth field, if any: each member's settings instead of weight 1.
    services = [{"name": name, "vip": ".".join(map(str, vip)), "port": port, "protocol": proto,
                 "extra": extra, "weights": dict.fromkeys(backends, member[0] if member else 1)}
                for name, vip, port, proto, extra, *member in scenario.services]
    tables = {"flows_per_worker": scenario.flows, "sessions": scenario.sessions,
              "dpi_streams_per_worker": 16384, "mbufs_per_port": mbufs_for(packets),
              "mbuf_size": scenario.mbuf_size}
    return config_text(ports, backends, services, workers=workers, eal=[*lcores(workers), *memory.eal("bench_tetherd"),
                                                       "--log-level=lib.*:error"],
                       tables=tables, log_level="warning", backend_port="out",
                       extra=sync_lab.settings() if sync_on else "")


def worker_cpu_seconds(pid):
    """The CPU time tetherd's worker threads ran so far (the first field of each thread's
    schedstat). On a shared machine a worker runs only part of the wall time: forwarded
    packets over this time are its speed while it ran, whatever the other processes took."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().startswith("rte-worker"):
                total += int((task / "schedstat").read_text().split()[0])
        except OSError:  # a thread that just ended
            continue
    return total / 1e9


# A tetherd run whose workers received fewer packets than this in the measured window measured
# nothing: on a loaded machine the worker got (almost) no CPU, and every figure, the share of
# new flows first, would say something false. Such a run is played again, at most
# STARVED_RETRIES times, then the benchmark stops with an error that says so.
MIN_RECEIVED = 10_000
STARVED_RETRIES = 2


class StarvedRun(RuntimeError):
    """The workers received too few packets in the measured window to judge the run."""


def run_tetherd(*args, **kwargs):
    """tetherd's figures (run_tetherd_once), played again when the workers were starved."""
    for attempt in range(STARVED_RETRIES + 1):
        try:
            return run_tetherd_once(*args, **kwargs)
        except StarvedRun as error:
            if attempt == STARVED_RETRIES:
                raise RuntimeError(f"{error}; {STARVED_RETRIES + 1} runs in a row: the machine is too busy "
                                   "to measure") from None
            warn(f"{error}: played again")
    raise AssertionError("unreachable")


def run_tetherd_once(workdir, pcap, packets, scenario, memory, warmup, seconds, tetherd=None, sync_lab=None,
                     sync_on=False, workers=1):
    """tetherd's figures; with `sync_lab`, in its namespace with a kernel interface, and
    with `sync_on` sending state sync (see SyncLab), plus the sync figures."""
    config = workdir / "tetherd.cfg"
    config.write_text(tetherd_config(pcap, scenario, packets, memory, sync_lab, sync_on, workers))
    stats_file = workdir / "stats.json"
    stats_file.unlink(missing_ok=True)
    # up once its workers answer on the control socket
    daemon = Tetherd(config, workdir / "tetherd.sock", binary=tetherd or TETHERD, start_timeout=120,
                     stats_file=stats_file if sync_lab else None,
                     **({"spawn": sync_lab.spawn} if sync_lab else {}))
    try:
        if sync_lab:
            sync_lab.reach_peer()
        time.sleep(warmup)

        def sample():
            per_worker = daemon.json("show", "workers")["workers"]
            if len(per_worker) != workers:
                raise RuntimeError(f"tetherd runs {len(per_worker)} workers, {workers} asked")
            worker = {name: sum(w[name] for w in per_worker)
                      for name in ("rx_packets", "tx_packets", "loop_cycles", "busy_cycles")}
            counters = daemon.json("show", "counters")
            drops = sum(counters["drops"].values())
            return time.monotonic(), worker, counters, drops, worker_cpu_seconds(daemon.proc.pid)

        others = OtherLoad(daemon.proc.pid)
        others.begin()
        t0, w0, c0, d0, cpu0 = sample()
        time.sleep(seconds)
        t1, w1, c1, d1, cpu1 = sample()
        others_cpus = others.end()
        check_quiet(others_cpus, f"tetherd on {scenario.key}")
        elapsed = t1 - t0
        received = w1["rx_packets"] - w0["rx_packets"]
        forwarded = w1["tx_packets"] - w0["tx_packets"]
        new_flows = c1["counters"]["new_flows"] - c0["counters"]["new_flows"]
        inspected = sum(c1["sessions"].get(f"{p}_messages_inspected", 0)
                        - c0["sessions"].get(f"{p}_messages_inspected", 0) for p in ("sip", "rtsp", "ftp"))
        memory_figures = c1["memory"]
        # the shared session table's contention counters (0 from a tetherd without them)
        table_count = lambda name: c1["counters"].get(name, 0) - c0["counters"].get(name, 0)  # noqa: E731
        figures = {
            "mpps": forwarded / elapsed / 1e6,
            "worker_cpu_share": (cpu1 - cpu0) / elapsed,
            "mpps_per_worker_cpu": forwarded / max(1e-9, cpu1 - cpu0) / 1e6,
            "rx_mpps": received / elapsed / 1e6,
            "cycles_per_packet_loop": (w1["loop_cycles"] - w0["loop_cycles"]) / max(1, received),
            "cycles_per_packet_busy": (w1["busy_cycles"] - w0["busy_cycles"]) / max(1, received),
            # A worker's loop counts TSC cycles without a gap, so its cycles over the wall time
            # are the TSC's rate: what turns the stages' ns into cycles in the chart.
            "tsc_ghz": (w1["loop_cycles"] - w0["loop_cycles"]) / elapsed / workers / 1e9,
            "drops": d1 - d0,
            "new_flows_per_s": new_flows / elapsed,
            "new_flow_share": new_flows / max(1, received),
            "messages_inspected_per_s": inspected / elapsed,
            "bytes_per_flow": memory_figures["flow_table_bytes"] / max(1, memory_figures["flow_table_entries"]),
            "bytes_per_session": memory_figures["session_table_bytes"] / max(1, memory_figures["session_table_entries"]),
            "others_cpus": others_cpus,
            "received": received,
            "session_table_adds_per_s": table_count("session_table_adds") / elapsed,
            "session_table_cas_failed_per_s": table_count("session_table_cas_failed") / elapsed,
            "cycles_per_session_table_add": table_count("session_table_add_cycles")
                                            / max(1, table_count("session_table_adds_timed")),
        }
        if sync_lab:
            rate = lambda section, name: (c1[section][name] - c0[section][name]) / elapsed  # noqa: E731
            figures.update({
                "sync_events_per_s": rate("counters", "sync_events"),
                "sync_events_lost_per_s": rate("counters", "sync_events_lost"),
                "sync_records_sent_per_s": sum(rate("sync", name) for name in SYNC_SENT_RECORDS),
                "sync_messages_sent_per_s": rate("sync", "sync_sent"),
            })
    finally:
        daemon.stop(timeout=60)
    judge_run(scenario, figures, elapsed)
    if sync_lab:
        # The whole run's counts, from the stats file tetherd wrote as it stopped.
        if not stats_file.exists():
            raise RuntimeError(f"tetherd wrote no stats file: {daemon.log()[-3000:]}")
        figures["sync_totals"] = sync_totals(json.loads(stats_file.read_text()))
        check_sync(figures["sync_totals"], sync_on)
    return figures


def judge_run(scenario, figures, elapsed):
    """Raises if a run's figures measured something else than the scenario: StarvedRun when
    the workers received too few packets to judge anything (played again), a RuntimeError when
    too few of the packets made new flows in a scenario that must make them."""
    if figures["received"] < MIN_RECEIVED:
        raise StarvedRun(f"{scenario.key}: tetherd's workers received {figures['received']} packets in the "
                         f"{elapsed:.1f} s window (they ran {100 * figures['worker_cpu_share']:.0f}% of it, other "
                         f"processes took {figures['others_cpus']:.2f} CPUs): too few to measure")
    if scenario.min_new_flow_share is not None and figures["new_flow_share"] < scenario.min_new_flow_share:
        raise RuntimeError(f"{scenario.key}: only {100 * figures['new_flow_share']:.0f}% of packets made a new flow "
                           f"(at least {100 * scenario.min_new_flow_share:.0f}% expected): the pcap's tuples came "
                           f"back before their flows expired, so the run measured established flows")


def median_of(rounds, key):
    values = [r[key] for r in rounds]
    return statistics.median(values)


# -- report --------------------------------------------------------------------------------

def table(results, memory):
    lines = [f"tether benchmark: one worker on lcore 1, net_pcap (infinite_rx) in, net_null out; {memory.reason}",
             "",
             f"{'scenario':32} {'io Mpps':>8} {'5tswap':>8} {'tether':>8} {'x io':>6} {'x 5tswap':>8} "
             f"{'cyc/pkt':>8} {'busy':>6} {'drops':>7} {'B/flow':>7} {'B/sess':>7}  notes"]
    for r in results:
        t = r["tether"]
        notes = []
        if r["key"] == "new_flows":
            notes.append(f"{t['new_flows_per_s'] / 1e6:.2f} M new flows/s, {100 * t['new_flow_share']:.0f}% of packets new")
        if t["messages_inspected_per_s"]:
            notes.append(f"{t['messages_inspected_per_s'] / 1e6:.2f} M messages inspected/s")
        if "against_plain" in r:
            plain = r["against_plain"]
            notes.append(f"{plain['rate']:.2f} of {plain['scenario']}'s rate in the same rounds ("
                         + " ".join(f"{x:.2f}" for x in plain["rate_by_round"])
                         + f"), {plain['cycles']:.2f} of its cycles a packet")
        if len(r["ratio_io_by_round"]) > 1:  # the spread behind the median: this machine drifts
            notes.append("x io by round " + " ".join(f"{x:.2f}" for x in r["ratio_io_by_round"]))
        lines.append(
            f"{r['title']:32} {r['io']['mpps']:8.2f} {r['5tswap']['mpps']:8.2f} {t['mpps']:8.2f} "
            f"{r['ratio_io']:6.2f} {r['ratio_5tswap']:8.2f} {t['cycles_per_packet_loop']:8.0f} "
            f"{t['cycles_per_packet_busy']:6.0f} {t['drops']:7.0f} {t['bytes_per_flow']:7.0f} "
            f"{t['bytes_per_session']:7.0f}  {'; '.join(notes)}")
    lines.append("")
    lines.append("cyc/pkt: TSC cycles of tether's whole loop per received packet; busy: of the loop "
                 "iterations that received packets. B/flow, B/sess: DPDK heap bytes of the flow and "
                 "session tables per entry they hold.")
    return "\n".join(lines)


# Where a packet's time goes, from the ablation builds of docs/performance.md ("Where an
# established packet's time goes"): each stage cut off in turn, A/B against the full build
# in one session. Nanoseconds a packet; the SIP path's "rest" is its total (237 ns) less
# the parts measured on their own.
PROFILE_STAGES = [
    ("established, 100k flows", [("receive and transmit", 19), ("parse and classify", 12),
                                  ("flow lookup (rte_hash)", 10), ("forward and rewrite", 12)]),
    ("SIP message", [("receive and transmit", 74), ("session table", 42),
                     ("parse, digest, classify", 237 - 74 - 42)]),
]


def chart(results, out_dir, peer=None):
    """bench.png: Mpps of io, 5tswap and tether per scenario, tether's ratio to io per
    scenario, the scaling factors of io and tether with more cores (if measured), the peer
    family's forwarded messages per run (if measured), and the time a packet spends in each
    stage (PROFILE_STAGES), in ns and in cycles at the TSC rate the run measured."""
    data = out_dir / "bench.dat"
    with open(data, "w") as f:
        for r in results:
            f.write(f"\"{r['title'][3:]}\" {r['io']['mpps']:.3f} {r['5tswap']['mpps']:.3f} {r['tether']['mpps']:.3f} "
                    f"{r['ratio_io']:.3f}\n")
    scaled = [r for r in results if "scaling" in r]
    scaling_data = out_dir / "scaling.dat"
    with open(scaling_data, "w") as f:
        for r in scaled:
            f.write(f"\"{r['title'][3:]}\" {r['scaling']['io_scaling']:.3f} {r['scaling']['tether_scaling']:.3f}\n")
    scaling_plot = ""
    if scaled:
        workers = scaled[0]["scaling"]["workers"]
        scaling_plot = f"""set title 'with {workers} cores: the rate over the rate with one (median of the rounds)'
set ylabel 'x one core'
set key top right
plot '{scaling_data}' using 2:xtic(1) title 'testpmd io, {workers} cores', '' using 3 title 'tether, {workers} workers'
"""
    stages = out_dir / "stages.dat"
    names = [name for _, parts in PROFILE_STAGES for name, _ in parts]
    columns = list(dict.fromkeys(names))
    with open(stages, "w") as f:
        f.write("path " + " ".join(f'"{c}"' for c in columns) + "\n")
        for path, parts in PROFILE_STAGES:
            ns = dict(parts)
            f.write(f'"{path}" ' + " ".join(str(ns.get(c, 0)) for c in columns) + "\n")
    stage_plot = ", ".join(f"'{stages}' using {i + 2}{':xtic(1)' if i == 0 else ''} title columnheader"
                           for i in range(len(columns)))
    # The stages in cycles too, at this run's TSC rate (the right-hand axis): the ns are the
    # ablation builds' measure, cycles what the table's cyc/pkt counts.
    rates = [r["tether"]["tsc_ghz"] for r in results if r["tether"].get("tsc_ghz")]
    ghz = statistics.median(rates) if rates else None
    cycles_axis = (f"set y2label 'cycles per packet (TSC {ghz:.2f} GHz)'\n"
                   f"set y2tics\nset link y2 via y*{ghz:.4f} inverse y/{ghz:.4f}\n") if ghz else ""
    peer_plot = ""
    if peer:
        peer_data = out_dir / "peer.dat"
        runs = list(peer["medians"])
        with open(peer_data, "w") as f:
            for what in runs:
                f.write(f"\"{what}\" {peer['medians'][what]['forwarded_per_s'] / 1e3:.1f}\n")
        peer_plot = f"""set title 'SIP messages forwarded on the af_packet veth path, one core each (median of the rounds)'
set ylabel 'k messages/s'
set style histogram cluster gap 1
unset key
plot '{peer_data}' using 2:xtic(1) lc rgb '#228833'
"""
    plots = (3 if results else 0) + (1 if scaled else 0) + (1 if peer else 0)
    main_plots = ""
    if results:
        main_plots = f"""set title 'tether vs dpdk-testpmd, one forwarding core, 64-byte frames (SIP and mixed: real sizes)'
set ylabel 'Mpps'
set style histogram cluster gap 1
set key top right
plot '{data}' using 2:xtic(1) title 'testpmd io', '' using 3 title 'testpmd 5tswap', '' using 4 title 'tether'
set title "tether's share of testpmd io's rate on the same vdevs (median of the rounds)"
set ylabel 'x io'
unset key
plot '{data}' using 5:xtic(1) title 'tether / io' lc rgb '#4477aa'
{scaling_plot}"""
    stage_plot_text = ""
    if results:
        stage_plot_text = f"""set title 'where a packet goes, by stage (ablation builds, docs/performance.md)'
set ylabel 'ns per packet'
{cycles_axis}set style histogram rowstacked
set key outside right
set xtics norotate
plot {stage_plot}
"""
    png = out_dir / "bench.png"
    script = f"""set terminal pngcairo size 1000,{430 * plots} noenhanced
set output '{png}'
set multiplot layout {plots},1
set style data histogram
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set xtics rotate by -15
{main_plots}{peer_plot}{stage_plot_text}unset multiplot
"""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        return None
    subprocess.run([gnuplot], input=script, text=True, check=True)
    return png


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds: small pcaps, --no-huge")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3; quick 1)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 4; quick 1)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (default 2; quick 1)")
    parser.add_argument("--out", default=str(REPO / "bench-results"), help="where the JSON and PNG go")
    parser.add_argument("--compare", action="append", metavar="TETHERD",
                        help="a tetherd binary to run side by side with the others given so "
                             "(repeat it), instead of the main table")
    parser.add_argument("--sync", action="store_true",
                        help="state sync's cost: tetherd with sync off and on, side by side in every round "
                             "(default scenarios: sip new_flows), instead of the main table")
    parser.add_argument("--sync-max-rate", type=int, default=SYNC_MAX_RATE, metavar="N",
                        help=f"sync.max_rate with sync on (records/s; default {SYNC_MAX_RATE}, the most "
                             "tetherd takes: the sender drains as fast as it can)")
    parser.add_argument("--sync-flow-threshold", type=int, default=1, metavar="N",
                        help="sync.flow_threshold with sync on (default 1: every flow is sent on its first "
                             "packet, the most events new flows can make)")
    parser.add_argument("--peer-devargs", default=None, metavar="ARGS",
                        help="the peer family's net_af_packet device arguments, for testpmd and tetherd alike "
                             "(default: bench_peer.AF_PACKET_DEVARGS)")
    parser.add_argument("--kamailio-allocator", default="fm", choices=("fm", "qm", "tlsf"),
                        help="the peer family's Kamailio memory manager, -x and -X (default fm: its fast "
                             "allocator; Debian's default is qm, the debugging one)")
    parser.add_argument("scenario", nargs="*", help="run only these (established, established_1m, "
                                                    "new_flows, sip, mixed, established_gue, peer; sip_capacity "
                                                    "only when named; peer in a full run by default, with --quick "
                                                    "only when named)")
    args = parser.parse_args()
    # bench_peer uses this module's helpers: run as a script, it is still `bench` to it.
    sys.modules.setdefault("bench", sys.modules[__name__])
    import bench_peer
    # The peer family (bench_peer.py) runs on the af_packet veth path, not on the vdevs:
    # tetherd against Kamailio (and nftables), beside testpmd io on the same path.
    named_peer = "peer" in args.scenario
    run_peer = named_peer or not (args.scenario or args.quick or args.compare or args.sync)
    if named_peer and (args.compare or args.sync):
        parser.error("peer: not with --compare or --sync")
    args.scenario = [name for name in args.scenario if name != "peer"]
    only_peer = named_peer and not args.scenario
    for build in args.compare or []:
        if not (Path(build).is_file() and os.access(build, os.X_OK)):
            parser.error(f"--compare: {build} is not an executable file")
    if args.sync and args.compare:
        parser.error("--sync and --compare: one at a time")
    if args.sync and not args.scenario:
        args.scenario = ["sip", "new_flows"]
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (1 if args.quick else 4)
    warmup = args.warmup or (1 if args.quick else 2)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    # Run only when named: sip_capacity is sip with admission's checks, for their cost.
    opt_in = {"sip_capacity"}
    chosen = [s for s in scenarios(args.quick)
              if (s.key in args.scenario if args.scenario else s.key not in opt_in and not only_peer)]
    unknown = set(args.scenario) - {s.key for s in scenarios(args.quick)}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    workdir = Path(tempfile.mkdtemp(prefix="tether-bench-"))
    results = []
    peer = None
    memory = None
    lab = None
    try:
        pcaps = {}
        for s in chosen:
            frames = s.make()
            s.packets = len(frames)
            pcaps[s.key] = workdir / f"{s.key}.pcap"
            write_pcap(pcaps[s.key], frames)
            if s.scaling and SCALING_WORKERS > 1:
                pcaps[s.key, SCALING_WORKERS] = []
                for q, part in enumerate(split_by_flow(frames, SCALING_WORKERS)):
                    pcaps[s.key, SCALING_WORKERS].append(workdir / f"{s.key}.q{q}.pcap")
                    write_pcap(pcaps[s.key, SCALING_WORKERS][-1], part)
            print(f"{s.title}: {len(frames)} packets, {sum(map(len, frames)) // len(frames)} bytes average",
                  flush=True)
        # mbufs (data + headroom + header + pool overhead) plus the tables, with room to spare
        need = max((mbufs_for(s.packets) * (s.mbuf_size + 128 + 128 + 64) + s.flows * 130 + s.sessions * 200
                    for s in chosen), default=0)
        if chosen:  # the peer family brings its own EAL memory (bench_peer.EAL_MEMORY)
            memory = Memory(need // (1 << 20) + 512, args.quick)
            print(f"memory: {memory.reason}", flush=True)
        if not args.quick:
            print(f"page cache: {drop_page_cache()}", flush=True)
        if args.compare:
            compared = compare_builds(args.compare, chosen, pcaps, workdir, memory, rounds, warmup, seconds)
        elif args.sync:
            lab = SyncLab(workdir, args.sync_max_rate, args.sync_flow_threshold)
            results = measure_sync(chosen, pcaps, workdir, memory, rounds, warmup, seconds, lab)
        else:
            results = measure_scenarios(chosen, pcaps, workdir, memory, rounds, warmup, seconds)
        if run_peer:
            peer = bench_peer.measure_peers(
                sip_calls(1000 if args.quick else bench_peer.CALLS), workdir, rounds, warmup, seconds,
                devargs=args.peer_devargs or bench_peer.AF_PACKET_DEVARGS,
                kamailio_allocator=args.kamailio_allocator)
    finally:
        if lab is not None:
            lab.remove()
        if memory is not None:
            memory.release()
        shutil.rmtree(workdir, ignore_errors=True)

    warnings_text = "".join(f"\nwarning: {w}" for w in warnings_given)
    if args.sync:
        text = sync_table(results, memory, lab) + warnings_text
        print()
        print(text)
        (out_dir / "sync.json").write_text(json.dumps(
            {"memory": memory.reason, "rounds": rounds, "seconds": seconds, "warmup": warmup,
             "quick": args.quick, "max_rate": lab.max_rate, "flow_threshold": lab.flow_threshold,
             "namespace": lab.namespace, "warnings": warnings_given,
             "scenarios": results}, indent=2))
        (out_dir / "sync.txt").write_text(text + "\n")
        print(f"\nwrote {out_dir / 'sync.json'}")
        return 0
    if args.compare:
        text = compare_table(compared) + warnings_text
        print()
        print(text)
        (out_dir / "compare.json").write_text(json.dumps(
            {"memory": memory.reason, "rounds": rounds, "seconds": seconds, "warmup": warmup,
             "quick": args.quick, "warnings": warnings_given, "scenarios": compared}, indent=2))
        print(f"\nwrote {out_dir / 'compare.json'}")
        return 0
    text = ((table(results, memory) + scaling_table(results) if results else "")
            + (bench_peer.peer_table(peer) if peer else "") + warnings_text)
    print()
    print(text)
    report = {"memory": memory.reason if memory else "none reserved (only the peer family ran)", "rounds": rounds,
              "seconds": seconds, "warmup": warmup, "quick": args.quick, "warnings": warnings_given,
              "scenarios": results}
    if peer:
        report["peer"] = peer
    (out_dir / "bench.json").write_text(json.dumps(report, indent=2))
    (out_dir / "bench.txt").write_text(text + "\n")
    png = chart(results, out_dir, peer)
    print(f"\nwrote {out_dir / 'bench.json'}" + (f" and {png}" if png else " (no gnuplot: no chart)"))
    return 0


def measure_scenarios(chosen, pcaps, workdir, memory, rounds, warmup, seconds):
    """io, 5tswap and tetherd on every scenario, round after round: the main table's figures."""
    results = []
    # A plain scenario's services and tables (quick mode's are the same; its pcap is the variant's)
    by_key = {s.key: s for s in scenarios(quick=False)}
    for s in chosen:
        scaled = (s.key, SCALING_WORKERS) in pcaps
        plain = by_key[s.plain] if s.plain else None

        def play(n):
            figures = {"io": run_testpmd("io", pcaps[s.key], s.packets, s, memory, warmup, seconds),
                       "5tswap": run_testpmd("5tswap", pcaps[s.key], s.packets, s, memory, warmup, seconds),
                       "tether": run_tetherd(workdir, pcaps[s.key], s.packets, s, memory, warmup, seconds)}
            line = (f"  {s.key} round {n + 1}: io {figures['io']['mpps']:.2f}, 5tswap {figures['5tswap']['mpps']:.2f}, "
                    f"tether {figures['tether']['mpps']:.2f} Mpps")
            if plain:  # the plain scenario's config on this one's pcap, right after it
                figures["tether_plain"] = run_tetherd(workdir, pcaps[s.key], s.packets, plain, memory, warmup, seconds)
                line += f"; {s.plain} {figures['tether_plain']['mpps']:.2f} Mpps"
            if scaled:  # the same round, so that the factors compare runs of one moment
                queues = pcaps[s.key, SCALING_WORKERS]
                figures["io_scaled"] = run_testpmd("io", queues, s.packets, s, memory, warmup, seconds,
                                                   cores=SCALING_WORKERS)
                figures["tether_scaled"] = run_tetherd(workdir, queues, s.packets, s, memory, warmup, seconds,
                                                       workers=SCALING_WORKERS)
                line += (f"; with {SCALING_WORKERS}: io {figures['io_scaled']['mpps']:.2f}, "
                         f"tether {figures['tether_scaled']['mpps']:.2f} Mpps")
            print(line, flush=True)
            return figures

        played = steady_rounds(s.key, rounds, play, lambda r: r["io"]["mpps"])
        per_round = {run: [r[run] for r in played] for run in played[0]}
        summary = {
            "key": s.key, "title": s.title, "packets_in_pcap": s.packets,
            "io": {"mpps": median_of(per_round["io"], "mpps")},
            "5tswap": {"mpps": median_of(per_round["5tswap"], "mpps")},
            "tether": {k: median_of(per_round["tether"], k) for k in per_round["tether"][0]},
            "rounds": per_round,
        }
        # The ratio of each round's own runs, then the median: the machine's speed drifts
        # between rounds, and medians of the columns taken apart could pair a fast io
        # round with a slow tether one.
        for reference in ("io", "5tswap"):
            by_round = [t["mpps"] / r["mpps"] for t, r in zip(per_round["tether"], per_round[reference])]
            summary[f"ratio_{reference}_by_round"] = by_round
            summary[f"ratio_{reference}"] = statistics.median(by_round)
        if scaled:
            summary["scaling"] = scaling_summary(per_round)
        if plain:
            summary["against_plain"] = against_plain(s.plain, per_round)
        results.append(summary)
    return results


def against_plain(plain_key, per_round):
    """A feature's cost: tetherd's rate with it over tetherd's on the plain scenario, each
    round's own pair, then the median. Both met the same io ceiling, so this is also the
    quotient of their ratios to io, without io's swings between the scenarios' rounds."""
    by_round = [t["mpps"] / p["mpps"] for t, p in zip(per_round["tether"], per_round["tether_plain"])]
    cycles = [t["cycles_per_packet_busy"] / max(1e-9, p["cycles_per_packet_busy"])
              for t, p in zip(per_round["tether"], per_round["tether_plain"])]
    return {"scenario": plain_key, "mpps": median_of(per_round["tether_plain"], "mpps"),
            "rate": statistics.median(by_round), "rate_by_round": by_round,
            "cycles": statistics.median(cycles), "cycles_by_round": cycles}


def scaling_summary(per_round):
    """SCALING_WORKERS against one: each round's factor of its own runs, then the median."""
    def factor(scaled, single):
        return [a["mpps"] / b["mpps"] for a, b in zip(per_round[scaled], per_round[single])]
    io_by_round, tether_by_round = factor("io_scaled", "io"), factor("tether_scaled", "tether")
    return {
        "workers": SCALING_WORKERS, "lcores": lcores(SCALING_WORKERS)[1],
        "io_mpps": median_of(per_round["io_scaled"], "mpps"),
        "tether": {k: median_of(per_round["tether_scaled"], k) for k in per_round["tether_scaled"][0]},
        "io_scaling": statistics.median(io_by_round), "io_scaling_by_round": io_by_round,
        "tether_scaling": statistics.median(tether_by_round), "tether_scaling_by_round": tether_by_round,
        "tether_against_io_scaling": statistics.median(t / i for t, i in zip(tether_by_round, io_by_round)),
        "ratio_io": statistics.median(factor("tether_scaled", "io_scaled")),
    }


def scaling_table(results):
    rows = [r for r in results if "scaling" in r]
    if not rows:
        return ""
    workers = rows[0]["scaling"]["workers"]
    lines = ["", f"scaling: {workers} workers against 1, and testpmd io with {workers} forwarding cores against 1, "
             f"one receive queue each (the pcap dealt by flow; EAL --lcores {rows[0]['scaling']['lcores']})",
             "",
             f"{'scenario':32} {'io 1':>7} {f'io {workers}':>7} {'io x':>6} {'tether 1':>8} {f'tether {workers}':>8} "
             f"{'tether x':>8} {'t x / io x':>10} {f'x io at {workers}':>9}  notes"]
    for r in rows:
        sc = r["scaling"]
        notes = []
        if sc["tether"]["session_table_adds_per_s"]:  # the shared session table, 1 worker against N
            one = r["tether"]
            notes.append(f"session adds {one['session_table_adds_per_s'] / 1e6:.2f}M/s at "
                         f"{one['cycles_per_session_table_add']:.0f} cycles, with {workers}: "
                         f"{sc['tether']['session_table_adds_per_s'] / 1e6:.2f}M/s at "
                         f"{sc['tether']['cycles_per_session_table_add']:.0f} cycles, "
                         f"{sc['tether']['session_table_cas_failed_per_s']:.0f} CAS lost/s")
        if len(sc["tether_scaling_by_round"]) > 1:
            notes.append("tether x by round " + " ".join(f"{x:.2f}" for x in sc["tether_scaling_by_round"]))
        lines.append(f"{r['title']:32} {r['io']['mpps']:7.2f} {sc['io_mpps']:7.2f} {sc['io_scaling']:6.2f} "
                     f"{r['tether']['mpps']:8.2f} {sc['tether']['mpps']:8.2f} {sc['tether_scaling']:8.2f} "
                     f"{sc['tether_against_io_scaling']:10.2f} {sc['ratio_io']:9.2f}  {'; '.join(notes)}")
    lines.append("")
    lines.append("io x, tether x: the rate with more cores over the rate with one (each round's own runs, then "
                 "the median); t x / io x: tether's factor as a share of testpmd's on the same vdevs.")
    return "\n".join(lines)


def compare_builds(builds, chosen, pcaps, workdir, memory, rounds, warmup, seconds):
    """Each build's Mpps by round, run in turn after testpmd's io within every round."""
    results = []
    for s in chosen:
        def play(n):
            io = run_testpmd("io", pcaps[s.key], s.packets, s, memory, warmup, seconds)["mpps"]
            builds_mpps = [0.0] * len(builds)
            per_cpu = [0.0] * len(builds)
            # Reversed every other round: a build's place in the round is not a constant bias.
            order = list(enumerate(builds))
            for i, build in order if n % 2 == 0 else reversed(order):
                figures = run_tetherd(workdir, pcaps[s.key], s.packets, s, memory, warmup, seconds, tetherd=build)
                builds_mpps[i], per_cpu[i] = figures["mpps"], figures["mpps_per_worker_cpu"]
            print(f"  {s.key} round {n + 1}: io {io:.2f}, tetherd "
                  + ", ".join(f"{m:.2f}" for m in builds_mpps) + " Mpps; per worker CPU-second "
                  + ", ".join(f"{m:.2f}" for m in per_cpu), flush=True)
            return io, builds_mpps, per_cpu

        played = steady_rounds(s.key, rounds, play, lambda r: r[0])
        io = [r[0] for r in played]
        mpps = [[r[1][i] for r in played] for i in range(len(builds))]
        # Mpps per second of the worker's CPU time: on a loaded machine, what a build did
        # while it ran (docs/performance.md, "Measuring on a shared machine").
        cpu = [[r[2][i] for r in played] for i in range(len(builds))]
        results.append({"key": s.key, "title": s.title, "io_mpps": io, "builds": [
            {"tetherd": build, "mpps": runs, "median_mpps": statistics.median(runs),
             "ratio_io": statistics.median(m / i for m, i in zip(runs, io)),
             "against_first": statistics.median(m / f for m, f in zip(runs, mpps[0])),
             "mpps_per_worker_cpu": per_cpu,
             "per_cpu_against_first": statistics.median(m / f for m, f in zip(per_cpu, cpu[0]))}
            for runs, per_cpu, build in zip(mpps, cpu, builds)]})
    return results


def compare_table(results):
    lines = []
    for r in results:
        lines.append(f"{r['title']} (io median {statistics.median(r['io_mpps']):.2f} Mpps)")
        for b in r["builds"]:
            lines.append(f"  {b['median_mpps']:7.2f} Mpps  x io {b['ratio_io']:.2f}  "
                         f"vs first {100 * (b['against_first'] - 1):+5.1f}%, per worker CPU-second "
                         f"{100 * (b['per_cpu_against_first'] - 1):+5.1f}%  {b['tetherd']}  "
                         f"(rounds {' '.join(f'{m:.2f}' for m in b['mpps'])}; per CPU-second "
                         f"{' '.join(f'{m:.2f}' for m in b['mpps_per_worker_cpu'])})")
    return "\n".join(lines)


def measure_sync(chosen, pcaps, workdir, memory, rounds, warmup, seconds, lab):
    """testpmd's io, then tetherd with sync off and on (reversed every other round), round
    after round: what state sync costs the fast path, as the ratio of on to off in each
    round."""
    results = []
    for s in chosen:
        def play(n):
            figures = {"io": run_testpmd("io", pcaps[s.key], s.packets, s, memory, warmup, seconds)["mpps"]}
            for sync_on in (False, True) if n % 2 == 0 else (True, False):
                figures[sync_on] = run_tetherd(workdir, pcaps[s.key], s.packets, s, memory, warmup, seconds,
                                               sync_lab=lab, sync_on=sync_on)
            print(f"  {s.key} round {n + 1}: io {figures['io']:.2f}, sync off {figures[False]['mpps']:.2f}, "
                  f"sync on {figures[True]['mpps']:.2f} Mpps; {sync_line(figures[True]['sync_totals'])}", flush=True)
            return figures

        played = steady_rounds(s.key, rounds, play, lambda r: r["io"])
        io = [r["io"] for r in played]
        runs = {sync_on: [r[sync_on] for r in played] for sync_on in (False, True)}
        off_mpps = [r["mpps"] for r in runs[False]]
        on_mpps = [r["mpps"] for r in runs[True]]
        per_second = ("sync_events_per_s", "sync_events_lost_per_s", "sync_records_sent_per_s",
                      "sync_messages_sent_per_s")
        results.append({
            "key": s.key, "title": s.title, "packets_in_pcap": s.packets,
            "io_mpps": io, "off_mpps": off_mpps, "on_mpps": on_mpps,
            "on_x_off_by_round": [on / off for on, off in zip(on_mpps, off_mpps)],
            "on_x_off": statistics.median(on / off for on, off in zip(on_mpps, off_mpps)),
            "off_x_io": statistics.median(off / i for off, i in zip(off_mpps, io)),
            "on_x_io": statistics.median(on / i for on, i in zip(on_mpps, io)),
            # the same per second of the worker's CPU time: what the worker did while it ran
            "on_x_off_per_cpu_by_round": [on["mpps_per_worker_cpu"] / off["mpps_per_worker_cpu"]
                                          for on, off in zip(runs[True], runs[False])],
            "on_x_off_per_cpu": statistics.median(on["mpps_per_worker_cpu"] / off["mpps_per_worker_cpu"]
                                                  for on, off in zip(runs[True], runs[False])),
            "worker_cpu_share_off": median_of(runs[False], "worker_cpu_share"),
            "worker_cpu_share_on": median_of(runs[True], "worker_cpu_share"),
            "new_flow_share_off": median_of(runs[False], "new_flow_share"),
            "new_flow_share_on": median_of(runs[True], "new_flow_share"),
            "cycles_per_packet_off": median_of(runs[False], "cycles_per_packet_loop"),
            "cycles_per_packet_on": median_of(runs[True], "cycles_per_packet_loop"),
            "sync": {key: median_of(runs[True], key) for key in per_second},
            "sync_totals_by_round": [r["sync_totals"] for r in runs[True]],
            "rounds": {"off": runs[False], "on": runs[True]},
        })
    return results


def sync_line(totals):
    """A sync-on run's totals from its stats file, in a line."""
    records = sum(totals[name] for name in SYNC_SENT_RECORDS)
    kinds = ", ".join(f"{name[len('sync_sent_'):]} {totals[name]}" for name in SYNC_SENT_RECORDS if totals[name])
    return (f"stats file: {totals['sync_events']} events queued, {totals['sync_events_lost']} lost; "
            f"{records} records sent ({kinds}) in {totals['sync_sent']} messages, "
            f"{totals['sync_send_failed']} failed; throttled {totals['sync_throttled']} polls, "
            f"backlog {totals['sync_backlog']}; {totals['kernel_sent']} frames out of the kernel interface")


def sync_table(results, memory, lab):
    lines = [f"tether state sync: one worker on lcore 1, net_pcap (infinite_rx) in, net_null out; {memory.reason}; "
             f"sync on: to one peer through the input port's kernel interface, max_rate {lab.max_rate} "
             f"records/s, flow_threshold {lab.flow_threshold}",
             "",
             f"{'scenario':32} {'io Mpps':>8} {'off':>7} {'on':>7} {'on x off':>8} {'per cpu':>7} {'cpu':>9} "
             f"{'off x io':>8} {'on x io':>7} {'cyc off':>7} {'cyc on':>7} {'events/s':>9} {'lost':>5} "
             f"{'records/s':>9} {'msgs/s':>7}  notes"]
    for r in results:
        sync = r["sync"]
        events = sync["sync_events_per_s"] + sync["sync_events_lost_per_s"]
        lost = sync["sync_events_lost_per_s"] / events if events else 0
        notes = []
        if r["key"] == "new_flows":  # a storm forwarded fast enough meets its tuples' flows still alive
            notes.append(f"new flows {100 * r['new_flow_share_off']:.0f}%/{100 * r['new_flow_share_on']:.0f}% "
                         "of packets off/on")
        if len(r["on_x_off_by_round"]) > 1:
            notes.append("on x off by round " + " ".join(f"{x:.2f}" for x in r["on_x_off_by_round"]))
            notes.append("per cpu " + " ".join(f"{x:.2f}" for x in r["on_x_off_per_cpu_by_round"]))
        cpu = f"{r['worker_cpu_share_off']:.2f}/{r['worker_cpu_share_on']:.2f}"
        lines.append(
            f"{r['title']:32} {statistics.median(r['io_mpps']):8.2f} {statistics.median(r['off_mpps']):7.2f} "
            f"{statistics.median(r['on_mpps']):7.2f} {r['on_x_off']:8.2f} {r['on_x_off_per_cpu']:7.2f} {cpu:>9} "
            f"{r['off_x_io']:8.2f} {r['on_x_io']:7.2f} "
            f"{r['cycles_per_packet_off']:7.0f} {r['cycles_per_packet_on']:7.0f} {events / 1e6:8.2f}M "
            f"{100 * lost:4.0f}% {sync['sync_records_sent_per_s'] / 1e6:8.2f}M "
            f"{sync['sync_messages_sent_per_s'] / 1e3:6.1f}k  {'; '.join(notes)}")
    lines.append("")
    lines.append("off, on: tether's Mpps with state sync off and on (both with the kernel interface); on x off: "
                 "the median of each round's on / off (the issue's bound: at least 0.90); per cpu: the same of "
                 "packets forwarded per second of the worker thread's CPU time, and cpu: the share of the wall "
                 "time the worker ran, off/on (below 1.00: other processes took its core). cyc: TSC cycles of the "
                 "whole loop per received packet. events/s: session changes and flows the worker made with sync "
                 "on; lost: the share the ring had no room for (the sender is bound by max_rate and its own "
                 "speed; workers never wait); records/s, msgs/s: what the control thread sent.")
    for r in results:
        lines.append(f"{r['title']}, last round's {sync_line(r['sync_totals_by_round'][-1])}")
    return "\n".join(lines)


def stop_on_sigterm(signum, _frame):
    """SIGTERM unwinds like Ctrl-C, so the hugepages and the temporary folder go back. A
    second SIGTERM must not cut that cleanup short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    sys.exit(main())
