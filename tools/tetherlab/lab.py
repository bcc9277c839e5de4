"""The virtual lab: the namespaces (namespaces.py) with the backends' servers (servers.py)
and tetherd in front of them, for tools/run and the end-to-end tests.

Servers a lab may start on each backend: sipp's UAS (SIP_VIP), a TCP name server
(TCP_VIP), vsftpd in passive mode (FTP_VIP; each backend its own passive port range,
FTP_PASSIVE, serving one file of known checksum) and gst-rtsp-server (RTSP_VIP; each backend
its own media port range, RTSP_PORTS), with tcpdump counting the UDP the backend receives
for RTSP_VIP (the clients' RTCP). The lab's tetherd configuration is conf/lab.cfg.

With tap=True tetherd's port is a net_tap device that the lab wires to the lb namespace's
veth (Namespaces.wire_tap_port), so the lb kernel sees only what tetherd's exception path
hands it; a router namespace joins the segment, and BIRD runs there and in the lb
namespace (routing.py).

With pair=True two tetherd instances run so, each in a namespace of its own (lb_ns), as an
active-standby pair (failover.py: their configurations, state sync, keepalived), and a
spare backend b4 runs the same servers, outside every service until a run adds it.

With instances=N (2 or 3) N tetherd instances run so behind the router, all active, each
with its own BIRD announcing the VIPs to the router's (tier.py: the tier of `tools/run
--instances`); b4 as with pair=True.

With tunnel="ipip" or "gue" the backends sit behind the router on a subnet of their own
(namespaces.py), each with tether's XDP decapsulator on its eth0 (decap.py); tetherd runs
lab_config_tunnel's configuration (its gateway the router) and a capture on the router's
leg toward the backends shows what crossed it (link_capture, link_packets).
"""
import collections
import functools
import hashlib
import random
import re
import subprocess
import threading
import time
from pathlib import Path

from .config import config_text, lab_port
from .decap import attach_decapsulator, decap_counters
from .namespaces import Namespaces, run
from .routing import Bird, peer_protocol, tier_configs
from .servers import RTSP_SERVER, SIP_SCENARIOS, TCP_SERVER, VSFTPD_CONF, parse_sipp_requests
from .tetherd import Tetherd
from .topology import (ANNOUNCED_PREFIX, BACKENDS, FTP_FILE, FTP_FILE_SIZE, FTP_PASSIVE, FTP_PORT, FTP_VIP,
                       GUE_PORT, REPO, RTSP_PORT, RTSP_PORTS, RTSP_VIP, SIP_PORT, SIP_VIP, SPARE_FTP_PASSIVE,
                       SPARE_RTSP_PORTS, TCP_PORT, TUNNEL_SOURCE)

PASSIVE_RANGES = {**FTP_PASSIVE, **SPARE_FTP_PASSIVE}
MEDIA_RANGES = {**RTSP_PORTS, **SPARE_RTSP_PORTS}
# pcap filters: a frame of each tunnel forwarding's encapsulation, from tetherd's tunnel source
ENCAPSULATED = {"ipip": f"src host {TUNNEL_SOURCE} and ip proto 4",
                "gue": f"src host {TUNNEL_SOURCE} and udp dst port {GUE_PORT}"}


class Lab(Namespaces):
    """The namespaces, the servers each backend runs, and the lab's tetherd."""

    def __init__(self, workdir, tag=None, tap=False, pair=False, instances=None, tunnel=None):
        super().__init__(workdir, tag, router=(tap and not pair) or bool(instances),
                         instances=instances or (2 if pair else 1), tunnel=tunnel)
        self.tap = tap or pair or bool(instances)
        self.birds = {}  # "lb", "router" (a tier: "lb-a", "lb-b"...) -> Bird
        self.tcp_servers = {}  # backend -> Popen
        self.sip_servers = {}  # backend -> (Popen, message log path)
        self.ftp_servers = {}  # backend -> Popen
        self.rtsp_servers = {}  # backend -> Popen
        self.captures = {}  # backend -> Popen (tcpdump)
        self.ftp_sha256 = None  # of FTP_FILE, once create() wrote it
        self.tetherds_started = 0
        self.link_capture_file = None  # the router's capture toward the backends (tunnel labs)

    def create(self):
        super().create()
        if self.tunnel:  # the decapsulator takes both encapsulations, on tetherd's gue_port
            for ns in self.backend_ns.values():
                attach_decapsulator(ns)
        for name, (address, _mac) in self.backends.items():
            # The servers listen on the VIPs only (their replies must come from the VIP);
            # tetherd's health checks go to the backend's own address, so that is mapped
            # to the same sockets. Conntrack gives the answer its original source back.
            rules = (f"table ip tether_lab {{\n chain prerouting {{\n"
                     f"  type nat hook prerouting priority -100\n"
                     f"  ip daddr {address} udp dport {SIP_PORT} dnat to {SIP_VIP}\n"
                     f"  ip daddr {address} tcp dport {FTP_PORT} dnat to {FTP_VIP}\n"
                     f"  ip daddr {address} tcp dport {RTSP_PORT} dnat to {RTSP_VIP}\n }}\n}}\n")
            run("ip", "netns", "exec", self.backend_ns[name], "nft", "-f", "-", input=rules)
        self._write_ftp_roots()

    def _write_ftp_roots(self):
        """The same file of known checksum in every backend's FTP root (root-owned, not
        writable by the ftp user, as vsftpd's chroot wants)."""
        data = random.Random(self.tag).randbytes(FTP_FILE_SIZE)
        self.ftp_sha256 = hashlib.sha256(data).hexdigest()
        for name in self.backends:
            root = self.workdir / f"ftp-{name}"
            root.mkdir(mode=0o755, exist_ok=True)
            (root / FTP_FILE).write_bytes(data)
            (root / FTP_FILE).chmod(0o644)
        empty = self.workdir / "vsftpd-empty"
        empty.mkdir(mode=0o755, exist_ok=True)

    # -- servers ----------------------------------------------------------------------------

    def start_tcp_server(self, name):
        proc = self.popen(self.backend_ns[name],
                          ["/usr/bin/python3", "-c", TCP_SERVER, name, TCP_PORT],
                          stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"TCP server on {name} did not start"
        self.tcp_servers[name] = proc
        return proc

    def stop_tcp_server(self, name):
        self.stop(self.tcp_servers.pop(name))

    def start_sip_server(self, name, reinvite=False, options_pause_ms=None):
        """sipp's built-in UAS on VIP:5060, with -aa answering tetherd's OPTIONS checks, or
        with reinvite=True the same UAS that also answers re-INVITEs (sip/uas.xml), or with
        options_pause_ms the same UAS answering OPTIONS only after that pause
        (sip/uas_slow_options.xml). Every message it receives is logged (trace_msg) for the
        tests to count calls."""
        logs = self.workdir / f"uas-{name}-{len(self.processes)}"
        scenario = ["-sf", SIP_SCENARIOS / "uas.xml"] if reinvite else ["-sn", "uas"]
        if options_pause_ms is not None:
            slow = self.workdir / f"uas-slow-options-{options_pause_ms}.xml"
            slow.write_text((SIP_SCENARIOS / "uas_slow_options.xml").read_text()
                            .replace("OPTIONS_PAUSE_MS", str(int(options_pause_ms))))
            scenario = ["-sf", slow]
        proc = self.popen(self.backend_ns[name],
                          ["sipp", *scenario, "-i", SIP_VIP, "-p", SIP_PORT, "-bind_local",
                           "-aa", "-nostdin", "-trace_msg", "-message_file", f"{logs}.msg",
                           "-trace_err", "-error_file", f"{logs}.err"],
                          cwd=self.workdir)
        self.wait_for_socket(self.backend_ns[name], "udp", SIP_PORT, proc)
        self.sip_servers[name] = (proc, Path(f"{logs}.msg"))
        return proc

    def stop_sip_server(self, name):
        proc, _log = self.sip_servers.pop(name)
        self.stop(proc)

    def start_ftp_server(self, name):
        """vsftpd on FTP_VIP:21 with the backend's passive range; its transfer log is
        ftp-NAME.log (see ftp_downloads)."""
        first, last = PASSIVE_RANGES[name]
        conf = self.workdir / f"vsftpd-{name}.conf"
        conf.write_text(VSFTPD_CONF.format(vip=FTP_VIP, root=self.workdir / f"ftp-{name}",
                                           first=first, last=last, log=self.workdir / f"ftp-{name}.log",
                                           empty=self.workdir / "vsftpd-empty"))
        proc = self.popen(self.backend_ns[name], ["vsftpd", conf])
        self.wait_for_socket(self.backend_ns[name], "tcp", FTP_PORT, proc)
        self.ftp_servers[name] = proc
        return proc

    def start_rtsp_server(self, name, timeout=30):
        """gst-rtsp-server (rtsp_server.py) on RTSP_VIP:554 serving RTSP_PATH, media ports
        from the backend's RTSP_PORTS; the SETUPs it answered are logged to rtsp-NAME.log."""
        first, last = MEDIA_RANGES[name]
        log = open(self.workdir / f"rtsp-{name}.log", "a")
        proc = self.popen(self.backend_ns[name],
                          ["/usr/bin/python3", RTSP_SERVER, name, RTSP_VIP, RTSP_PORT,
                           first, last], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.wait_for_socket(self.backend_ns[name], "tcp", RTSP_PORT, proc, timeout=timeout)
        self.rtsp_servers[name] = proc
        return proc

    def start_capture(self, name, timeout=15):
        """tcpdump on the backend's eth0: every UDP datagram to RTSP_VIP it receives, one
        line each, in udp-NAME.log (see rtsp_udp_received)."""
        with open(self.workdir / f"udp-{name}.log", "a") as out:
            proc = self._tcpdump(self.backend_ns[name], f"udp-{name}", name, timeout, stdout=out,
                                 words=["-i", "eth0", "-n", "-l", "-tt", "-Q", "in", "-p",
                                        f"udp and dst host {RTSP_VIP}"])
        self.captures[name] = proc
        return proc

    def _tcpdump(self, ns, stem, what, timeout, words, **kwargs):
        """tcpdump `words` in `ns`, its messages in STEM.err; returns once it listens."""
        err_path = self.workdir / f"{stem}.err"
        with open(err_path, "a") as err:
            proc = self.popen(ns, ["tcpdump", *words], stderr=err, **kwargs)
        deadline = time.monotonic() + timeout
        while "listening on" not in err_path.read_text():
            assert proc.poll() is None, f"tcpdump on {what}: {err_path.read_text()}"
            assert time.monotonic() < deadline, f"tcpdump on {what} did not start"
            time.sleep(0.05)
        return proc

    def start_media_servers(self, names=None):
        """FTP and RTSP servers and the RTSP capture on every backend (the RTSP servers,
        slow to import GStreamer, start together)."""
        names = list(names or self.backends)
        for name in names:
            self.start_ftp_server(name)
            self.start_capture(name)
        for name in names:
            self.start_rtsp_server(name, timeout=60)

    def start_birds(self):
        """BIRD in the router and the lb namespace (tap labs), or in every instance's (a
        tier: "lb-a", "lb-b"...): BGP comes up once tetherd's exception path carries it."""
        if len(self.lb_ns) == 1:
            self.birds["router"] = Bird(self, self.router, "router")
            self.birds["lb"] = Bird(self, self.lb, "lb")
            return self.birds
        configs = tier_configs(self.workdir, self.lb_ns)
        self.birds["router"] = Bird(self, self.router, "router", config=configs["router"],
                                    peers=[peer_protocol(name) for name in self.lb_ns])
        for name, ns in self.lb_ns.items():
            self.birds[f"lb-{name}"] = Bird(self, ns, f"lb-{name}", config=configs[f"lb-{name}"],
                                              peers=["upstream"])
        return self.birds

    def router_route(self, vip=None):
        """The router kernel's host route to `vip` as `ip route` prints it, or without `vip`
        every route within ANNOUNCED_PREFIX, one a line ("" if none)."""
        selector = [vip] if vip else ["root", ANNOUNCED_PREFIX]
        return run("ip", "-n", self.router, "route", "show", *selector).stdout.strip()

    def router_nexthops(self, vip):
        """The gateways of the router kernel's route to `vip` (one, or a multipath route's
        every nexthop), as a set of addresses (empty if none)."""
        return set(re.findall(r"\bvia (\S+)", self.router_route(vip)))

    def start_link_capture(self, timeout=15):
        """A tunnel lab: tcpdump on the router's leg toward the backends (eth1), every IPv4
        frame it sends them, headers only, into link.pcap (see link_packets)."""
        self.link_capture_file = self.workdir / "link.pcap"
        return self._tcpdump(self.router, "link", "the router", timeout,
                             words=["-i", "eth1", "-n", "-Q", "out", "-p", "-s", "128", "-U",
                                    "-w", self.link_capture_file, "ip"])

    def link_packets(self, pcap_filter):
        """How many frames of the router's capture toward the backends match `pcap_filter`."""
        result = run("tcpdump", "-n", "-r", self.link_capture_file, pcap_filter, check=False)
        return len(result.stdout.splitlines())

    def decap_counters(self):
        """backend -> its decapsulator's counters (tether-decap counters)."""
        return {name: decap_counters(ns) for name, ns in self.backend_ns.items()}

    def tunnel_traffic(self, forwarding, before):
        """backend -> what its decapsulator counted since `before` (decap_counters()) and
        what the router sent it since the capture started: frames of `forwarding`'s
        encapsulation ("encapsulated") and frames to a VIP not encapsulated ("plain to a
        VIP", for the whole link)."""
        plain = self.link_packets(f"dst net {ANNOUNCED_PREFIX}")
        result = {}
        for name, after in self.decap_counters().items():
            wrapped = f"dst host {self.backends[name][0]} and {ENCAPSULATED[forwarding]}"
            result[name] = {**{k: v - before[name][k] for k, v in after.items()},
                            "encapsulated": self.link_packets(wrapped), "plain to a VIP": plain}
        return result

    def server_logs(self, prefix):
        """backend -> the text of its log PREFIX-NAME.log, "" while there is none."""
        result = {}
        for name in self.backends:
            path = self.workdir / f"{prefix}-{name}.log"
            result[name] = path.read_text(errors="replace") if path.exists() else ""
        return result

    def ftp_downloads(self):
        """backend -> Counter of client addresses whose downloads of FTP_FILE it completed."""
        done = r'OK DOWNLOAD: Client "([0-9.]+)", "/' + re.escape(FTP_FILE) + '"'
        return {name: collections.Counter(re.findall(done, text))
                for name, text in self.server_logs("ftp").items()}

    def rtsp_setups(self):
        """backend -> [(client address, RTP port, RTCP port)] of the SETUPs it answered."""
        return {name: [(a, int(rtp), int(rtcp))
                       for a, rtp, rtcp in re.findall(r"^setup (\S+) (\d+)-(\d+)$", text, re.M)]
                for name, text in self.server_logs("rtsp").items()}

    def rtsp_udp_received(self, since=None):
        """backend -> Counter of (client address, client port) of the UDP datagrams to
        RTSP_VIP that reached it (with `since`, a time.time(): those captured after it)."""
        datagram = r"^(\d+\.\d+) IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > " + re.escape(RTSP_VIP) + r"\.\d+: UDP"
        return {name: collections.Counter((a, int(p)) for at, a, p in re.findall(datagram, text, re.M)
                                          if since is None or float(at) > since)
                for name, text in self.server_logs("udp").items()}

    def wait_for_socket(self, ns, protocol, port, proc, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listening = run("ip", "netns", "exec", ns, "ss", "-Hln", "--udp" if protocol == "udp"
                            else "--tcp", f"sport = :{port}").stdout
            if listening.strip():
                return
            assert proc.poll() is None, f"server in {ns} exited with {proc.returncode}"
            time.sleep(0.05)
        raise AssertionError(f"nothing listens on {protocol} port {port} in {ns}")

    def sip_messages(self, names=None):
        """backend -> list of (method, Call-ID) of the SIP requests its UAS received, over
        all the UAS processes it ran."""
        result = {}
        for name in names or self.backends:
            result[name] = []
            for path in sorted(self.workdir.glob(f"uas-{name}-*.msg")):
                result[name] += parse_sipp_requests(path.read_text(errors="replace"))
        return result

    # -- tetherd --------------------------------------------------------------------------

    def start_tetherd(self, config, workers=1, start_timeout=60, instance="a"):
        """tetherd in the lb namespace (a pair's `instance`'s, see lb_ns), once it serves its
        control socket and has learnt the backends' MACs by ARP. `config` is either a list
        of services for tetherd_config (the backends' MACs left to ARP, as in production) or
        the path of a configuration file. In a tap lab, its net_tap port is wired to its
        namespace's veth as soon as it exists (before that, ARP retries cover the gap)."""
        self.tetherds_started += 1
        ns = self.lb_ns[instance]
        stem = self.workdir / (f"tetherd-{self.tetherds_started}" if len(self.lb_ns) == 1
                               else f"tetherd-{instance}-{self.tetherds_started}")
        if isinstance(config, (str, Path)):
            config = Path(config)
        else:
            services, config = config, stem.with_suffix(".cfg")
            config.write_text(tetherd_config(services, workers=workers, backend_macs=False, tap=self.tap))
        # A pair's instance keeps its socket over restarts: keepalived's hooks name it.
        socket = stem.with_suffix(".sock") if len(self.lb_ns) == 1 else self.workdir / f"tetherd-{instance}.sock"
        # The TAP device is wired while tetherd starts, so its kernel interface hears the
        # segment by the time tetherd answers (keepalived on it must hear its peer).
        wiring = {}
        if self.tap:
            def wire():
                try:
                    self.wire_tap_port(ns, timeout=start_timeout)
                except Exception as error:  # noqa: BLE001: raised again below
                    wiring["error"] = error
            wirer = threading.Thread(target=wire, daemon=True)
            wirer.start()
        tetherd = LabTetherd(self, config, socket, output=stem, cwd=REPO,
                             spawn=functools.partial(self.popen, ns), start_timeout=start_timeout)
        if self.tap:
            wirer.join()
            if "error" in wiring:
                raise wiring["error"]
        tetherd.wait_until(lambda b: all(x["mac_source"] == "arp" for x in b.values()), 5,
                           "backend MACs learnt by ARP")
        return tetherd

    def teardown(self):
        super().teardown()
        self.tcp_servers.clear()
        self.sip_servers.clear()
        self.ftp_servers.clear()
        self.rtsp_servers.clear()
        self.captures.clear()
        self.birds.clear()


class LabTetherd(Tetherd):
    """tetherd in a lab's lb namespace: `lab` is where its clients and servers are."""

    def __init__(self, lab, config, socket, **options):
        self.lab = lab
        super().__init__(config, socket, **options)


def tetherd_config(services, workers=1, backend_macs=True, health=None, tap=False):
    """tetherd's configuration for the lab: one net_af_packet port on the lb namespace's
    eth0 (with tap=True a net_tap port, without exception path: config.lab_port) with
    tetherd's MAC and address, backends b1..b3, and `services` (see config.service_text),
    `health` their default health check. backend_macs=False leaves the backends' MACs out,
    for when tetherd resolves them itself."""
    port = lab_port(workers, tap=tap)
    backends = {name: (address, mac if backend_macs else None) for name, (address, mac) in BACKENDS.items()}
    return config_text([port], backends, services, workers=workers, health=health)
