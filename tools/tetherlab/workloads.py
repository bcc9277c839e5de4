"""The lab's clients: sipp UACs placing calls, curl downloading over FTP, ffmpeg playing
RTSP streams, in the client namespace; and where their sessions went, from the backends'
logs. And a UDP flood, for the exception path's rate limit."""
import collections
import hashlib
import subprocess
import time

from .servers import RTSP_CLIENT, SIP_SCENARIOS
from .topology import CLIENT_ADDRESS, CLIENT_ADDRESSES, FTP_FILE, FTP_VIP, RTSP_PATH, RTSP_VIP, SIP_PORT, SIP_VIP


class Calls:
    """A sipp UAC in the client namespace placing `calls` calls to the SIP VIP from one UDP
    socket (address:local_port). Call-IDs start with `tag`, so the backends' logs tell this
    run's calls from others. reinvite=True plays sip/uac_reinvite.xml (a re-INVITE in every
    call; the backends must run the reinvite UAS); `scenario` another file of sip/."""

    def __init__(self, lab, tag, calls, rate, duration_ms=0, local_port=5070,
                 address=CLIENT_ADDRESS, reinvite=False, scenario=None, limit=None):
        self.lab, self.tag, self.calls = lab, tag, calls
        self.address, self.local_port = address, local_port
        self.stats = lab.workdir / f"uac-{tag}.csv"
        if scenario is None and reinvite:
            scenario = "uac_reinvite.xml"
        scenario = ["-sf", SIP_SCENARIOS / scenario] if scenario else ["-sn", "uac"]
        self.proc = lab.popen(
            lab.client,
            ["sipp", *scenario, f"{SIP_VIP}:{SIP_PORT}", "-i", address, "-bind_local",
             "-p", local_port, "-r", rate, "-m", calls, "-d", duration_ms,
             *(["-l", limit] if limit else []),
             "-cid_str", f"{tag}-%u-%p@%s", "-nostdin", "-trace_stat", "-stf", self.stats,
             "-fd", "1", "-trace_err", "-error_file", lab.workdir / f"uac-{tag}.err",
             "-timeout", "90", "-timeout_error"],
            cwd=lab.workdir)

    def wait(self, timeout=120):
        """(sipp's exit code, successful calls, failed calls)."""
        code = self.proc.wait(timeout=timeout)
        last = self.statistics()
        return code, int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])

    def statistics(self):
        """sipp's last statistics row: column -> value."""
        header, *rows = self.stats.read_text().splitlines()
        return dict(zip(header.split(";"), rows[-1].split(";")))

    def placement(self):
        """Call-ID -> backend -> methods received there, for this run's calls."""
        seen = collections.defaultdict(lambda: collections.defaultdict(list))
        for backend, requests in self.lab.sip_messages().items():
            for method, call_id in requests:
                if call_id and call_id.startswith(self.tag + "-"):
                    seen[call_id][backend].append(method)
        return seen


def ftp_downloads(lab, count, tag, addresses=CLIENT_ADDRESSES, timeout=60, limit_rate=None, max_time=30,
                  stall_time=None):
    """`count` concurrent curl downloads of FTP_FILE through the FTP VIP in passive mode,
    alternating EPSV and PASV, spread over the client `addresses` (curl binds both its
    control and data connections to the address), each at most `limit_rate` (curl's
    --limit-rate: "64k") if given, and given up after `stall_time` seconds below 1 KB/s.
    Returns [(address, command, ok)]: ok when curl succeeded and the file has the right
    checksum."""
    jobs = []
    for i in range(count):
        address = addresses[i % len(addresses)]
        epsv = i % 2 == 0
        out = lab.workdir / f"ftp-{tag}-{i}.bin"
        errors = out.with_suffix(".err")
        with open(errors, "wb") as error_file:
            proc = lab.popen(lab.client,
                             ["curl", "-sS", "--ftp-pasv", *([] if epsv else ["--disable-epsv"]),
                              "--interface", address, "--connect-timeout", "5", "--max-time", max_time,
                              *(["--limit-rate", limit_rate] if limit_rate else []),
                              *(["--speed-limit", "1000", "--speed-time", stall_time] if stall_time else []),
                              "-o", out, f"ftp://{FTP_VIP}/{FTP_FILE}"], stderr=error_file)
        jobs.append((address, "EPSV" if epsv else "PASV", out, errors, proc))
    results = []
    deadline = time.monotonic() + timeout
    for address, command, out, errors, proc in jobs:
        code = proc.wait(timeout=max(1, deadline - time.monotonic()))
        ok = (code == 0 and out.exists()
              and hashlib.sha256(out.read_bytes()).hexdigest() == lab.ftp_sha256)
        if not ok:  # for the failure report: why curl gave up
            print(f"curl {command} from {address}: exit {code}: "
                  f"{errors.read_text(errors='replace').strip()}")
        results.append((address, command, ok))
        out.unlink(missing_ok=True)
        errors.unlink(missing_ok=True)
    return results


class Streams:
    """`count` concurrent ffmpeg RTSP clients of RTSP_PATH over UDP transport, each
    receiving `seconds` of audio (PCMU, 8,000 bytes a second) into a file."""

    def __init__(self, lab, count, tag, seconds=5):
        self.lab, self.seconds = lab, seconds
        self.jobs = []
        for i in range(count):
            out = lab.workdir / f"rtsp-{tag}-{i}.raw"
            proc = lab.popen(lab.client, self.command(f"rtsp://{RTSP_VIP}{RTSP_PATH}", seconds, out))
            self.jobs.append((out, proc))

    @staticmethod
    def command(url, seconds, out):
        return ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "udp",
                "-i", url, "-t", seconds, "-c", "copy", "-f", "mulaw", "-y", out]

    def wait(self, timeout=60):
        """[bytes of audio each client received, or -1 if ffmpeg failed]."""
        received = []
        deadline = time.monotonic() + timeout
        for out, proc in self.jobs:
            code = proc.wait(timeout=max(1, deadline - time.monotonic()))
            received.append(out.stat().st_size if code == 0 and out.exists() else -1)
            out.unlink(missing_ok=True)
        return received


class ReportingStreams(Streams):
    """Streams played by GStreamer's rtspsrc (rtsp_client.py) instead of ffmpeg, sending an
    RTCP receiver report every second for the whole stream: ffmpeg's RTCP crosses tether
    only at the start of a short session, these keep crossing it (the failover lab)."""

    @staticmethod
    def command(url, seconds, out):
        return ["/usr/bin/python3", RTSP_CLIENT, url, seconds, out, 1]


def rtcp_placement(lab):
    """For every RTSP session the backends answered a SETUP for: (client address, RTCP
    port) -> (serving backend, Counter of backends its datagrams from that port reached)."""
    received = lab.rtsp_udp_received()
    result = {}
    for backend, setups in lab.rtsp_setups().items():
        for address, _rtp, rtcp in setups:
            reached = collections.Counter({b: seen[(address, rtcp)] for b, seen in received.items()
                                           if seen[(address, rtcp)]})
            result[(address, rtcp)] = (backend, reached)
    return result


# A paced UDP flood (Python, so no flooding tool is needed and the rate is known): `rate`
# datagrams a second of 64 bytes to address:port for `seconds`, sent in 1 ms slices; prints
# how many it sent.
FLOOD = r"""
import socket, sys, time
address, port, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload, sent, start = bytes(64), 0, time.monotonic()
while (elapsed := time.monotonic() - start) < seconds:
    while sent < rate * elapsed:
        try:
            sock.sendto(payload, (address, port))
        except OSError:  # a full socket buffer, an unresolved neighbour: a flood goes on
            pass
        sent += 1
    time.sleep(0.001)
print(sent)
"""


class Flood:
    """FLOOD toward `address` (UDP to `port`) from namespace `ns` (default: the client's)."""

    def __init__(self, lab, address, rate, seconds, port=9, ns=None):
        self.proc = lab.popen(ns or lab.client, ["/usr/bin/python3", "-c", FLOOD, address, port, rate, seconds],
                              stdout=subprocess.PIPE, text=True)

    def wait(self, timeout=60):
        """The datagrams it sent."""
        out, _err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, self.proc.returncode
        return int(out)
