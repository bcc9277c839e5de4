"""Runs the real tetherd binary on net_pcap vdevs and reads what it sent.

Each test writes its input pcap(s) and a configuration into a temporary folder, runs
tetherd with --idle-exit so it stops once the pcap is drained, and gets back the output
frames and the counters tetherd wrote with --stats-file. Or it runs tetherd on a veth pair
and plays frames at it (run_tetherd_live). The configuration and the launch are the lab's
(tools/tetherlab); this module holds the test rig's addresses and the frames' plumbing.
"""
import json
import os
import subprocess
from pathlib import Path

import tetherlab.config
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader, wrpcap
from tetherlab.config import TABLES, Port
from tetherlab.tetherd import (BUILD, REPO, TETHERCTL, TETHERD, Tetherd, replay,  # noqa: F401 (for the tests)
                               spawn_process)

PORT_MAC = "02:00:00:00:00:01"
CLIENT_MAC = "02:00:00:00:aa:01"
PORT_IPV4 = "192.0.2.1"
PORT_IPV6 = "2001:db8::1"
BACKENDS = {  # name -> (address, mac)
    "b1": ("192.0.2.11", "02:00:00:00:01:01"),
    "b2": ("192.0.2.12", "02:00:00:00:01:02"),
    "b3": ("192.0.2.13", "02:00:00:00:01:03"),
}


def flow_key_of(frame):
    """(source, source port, destination, destination port, protocol) of a TCP/UDP frame."""
    packet = Ether(frame)
    ip = packet[IP] if IP in packet else packet[IPv6]
    l4 = packet[TCP] if TCP in packet else packet[UDP]
    return (ip.src, l4.sport, ip.dst, l4.dport, "tcp" if TCP in packet else "udp")


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def config_text(device, services, workers=1, flows_per_worker=65536, extra_tables="",
                backends=None, extra="", port_settings="", port_addresses=(PORT_IPV4, PORT_IPV6)):
    """A configuration with one port on `device`, backends b1..b3 and the given services
    (see tetherlab.config.service_text). `backends` replaces BACKENDS (name -> (address,
    mac)); a mac of None leaves it to ARP/ND. `extra` is appended at the top level,
    `port_settings` (raw: mtu, gateways, routes, tunnel) to the port."""
    port = Port("lan0", device, PORT_MAC, tuple(port_addresses), settings=port_settings)
    return tetherlab.config.config_text(
        [port], backends or BACKENDS, services, workers=workers,
        tables=dict(TABLES, flows_per_worker=flows_per_worker), extra_tables=extra_tables, extra=extra)


def pcap_device(workdir, queues):
    """net_pcap with one rx_pcap/tx_pcap pair per queue: in<q>.pcap -> out<q>.pcap."""
    parts = ["net_pcap0"]
    for q in range(queues):
        parts.append(f"rx_pcap={workdir}/in{q}.pcap")
    for q in range(queues):
        parts.append(f"tx_pcap={workdir}/out{q}.pcap")
    return ",".join(parts)


class Run:
    def __init__(self, returncode, stdout, stderr, stats, outputs):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.stats = stats
        self.outputs = outputs  # list (per queue) of lists of raw frames (bytes)

    @property
    def frames(self):
        return [f for queue in self.outputs for f in queue]

    def counter(self, name):
        return self.stats["counters"][name]

    def drops(self, name):
        return self.stats["drops"][name]


def read_frames(path):
    if not path.exists() or path.stat().st_size == 0:
        return []
    return [bytes(data) for data, _meta in RawPcapReader(str(path))]


def run_tetherd(workdir, inputs, services, workers=1, timeout=180, **config_options):
    """inputs: one list of frames (bytes or scapy packets) per RX queue."""
    workdir = Path(workdir)
    for q, frames in enumerate(inputs):
        wrpcap(str(workdir / f"in{q}.pcap"), frames, linktype=1)
    config = workdir / "tetherd.cfg"
    config.write_text(config_text(pcap_device(workdir, len(inputs)), services, workers=workers,
                                  **config_options))
    stats_file = workdir / "stats.json"
    proc = replay(config, workdir / "tetherd.sock", stats_file, timeout)
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else None
    outputs = [read_frames(workdir / f"out{q}.pcap") for q in range(len(inputs))]
    return Run(proc.returncode, proc.stdout, proc.stderr, stats, outputs)


def start_tetherd(config, socket_path):
    """tetherd in the background (its Popen), returned once it serves its control socket."""
    return Tetherd(config, socket_path).proc


class Veth:
    """A veth pair: tetherd's net_af_packet port on one end, the test's raw socket on the
    other. Kernel chatter is switched off (no IPv6, no addresses) so every frame is ours."""

    def __init__(self, tag):
        self.inside = f"tt{tag}a"
        self.outside = f"tt{tag}b"
        self.close()
        subprocess.run(["ip", "link", "add", self.inside, "type", "veth", "peer", "name",
                        self.outside], check=True)
        for name in (self.inside, self.outside):
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1"], check=True)
            subprocess.run(["ip", "link", "set", name, "up"], check=True)

    def close(self):
        subprocess.run(["ip", "link", "del", self.inside], capture_output=True)


def run_tetherd_live(workdir, phases, services, workers=1, settle=0.5, respond=None,
                     namespace=None, edit_config=None, **config_options):
    """tetherd on net_af_packet over a veth pair. Each phase's frames are sent (a phase may
    instead be a callable, given the control socket's path), then the test waits `settle` seconds, so a later phase (media) cannot overtake an earlier one
    (signalling) whatever worker it lands on; the kernel spreads flows over the queues by
    their 5-tuple hash, as RSS does. Returns a Run with every frame tetherd sent back.
    With `namespace`, tetherd and its end of the pair live in that network namespace (for a
    kernel interface of its own); `edit_config` rewrites the configuration's text."""
    import socket
    import threading
    import time

    workdir = Path(workdir)
    veth = Veth(os.getpid() % 100000)
    spawn = spawn_process
    if namespace:
        subprocess.run(["ip", "link", "set", veth.inside, "netns", namespace], check=True)
        inside = ["ip", "netns", "exec", namespace]
        subprocess.run(inside + ["sysctl", "-qw", f"net.ipv6.conf.{veth.inside}.disable_ipv6=1"], check=True)
        subprocess.run(inside + ["ip", "link", "set", veth.inside, "up"], check=True)
        # tetherd gives its end the port's MAC, so the namespace's own stack would take the
        # port's frames too, beside the kernel interface: a rule ahead of the local table
        # discards what comes in on it (packet sockets, tetherd's, see every frame first).
        for rule in (["add", "pref", "100", "lookup", "local"], ["del", "pref", "0"],
                     ["add", "pref", "10", "iif", veth.inside, "blackhole"]):
            subprocess.run(inside + ["ip", "rule", *rule], check=True)

        def spawn(words, **kwargs):
            return spawn_process(inside + list(words), **kwargs)
    device = f"net_af_packet0,iface={veth.inside},qpairs={workers},framecnt=4096"
    config = workdir / "tetherd.cfg"
    text = config_text(device, services, workers=workers, **config_options)
    config.write_text(edit_config(text) if edit_config else text)
    stats_file = workdir / "stats.json"
    frames, stop = [], threading.Event()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE: no loss while we send
    sock.bind((veth.outside, 0))
    sock.settimeout(0.2)

    def receive():
        while not stop.is_set():
            try:
                data, address = sock.recvfrom(65535)
            except socket.timeout:
                continue
            if address[2] != socket.PACKET_OUTGOING:
                reply = respond(data) if respond else None
                if reply is None:
                    frames.append(data)
                elif reply:  # a backend answering tetherd's health probe (b"": swallow)
                    sock.send(reply)

    receiver = threading.Thread(target=receive)
    receiver.start()
    tetherd = None
    try:
        tetherd = Tetherd(config, workdir / "tetherd.sock", stats_file=stats_file, spawn=spawn)
        for phase in phases:
            if callable(phase):  # an operator's step between traffic phases
                phase(workdir / "tetherd.sock")
                time.sleep(settle)
                continue
            for frame in phase:
                sock.send(frame)
            time.sleep(settle)
        # Wait until nothing more comes back (bounded: probes may keep coming).
        count, waited = -1, 0
        while count != len(frames) and waited < 20:
            count = len(frames)
            time.sleep(0.5)
            waited += 1
        tetherd.stop(timeout=30)
    finally:
        stop.set()
        receiver.join()
        sock.close()
        if tetherd is not None:
            tetherd.kill()
        if namespace:  # its end is in there: deleting it deletes the pair
            subprocess.run(["ip", "netns", "exec", namespace, "ip", "link", "del", veth.inside],
                           capture_output=True)
        veth.close()
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else None
    return Run(tetherd.proc.returncode, tetherd.output(), tetherd.log(), stats, [frames])
