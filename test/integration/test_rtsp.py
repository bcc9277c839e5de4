"""RTSP control connections on the real tetherd: SETUPs whose segments arrive out of order,
RTSP/2.0 transports (dest_addr, src_addr), and inspection that one client's many connections
cannot exhaust. In every test the media from the client's announced ports must reach the
backend that holds the control connection. FTP control connections share the inspection
machinery: their data connections must follow PASV/EPSV alike."""
import itertools
import random

from harness import BACKENDS, mac_bytes, run_tetherd
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from sessions import FtpSession, TcpConnection, ether

BACKEND_BY_MAC = {mac_bytes(mac): name for name, (_addr, mac) in BACKENDS.items()}
VIP, VIP6, FTP_VIP = "192.0.2.140", "2001:db8::140", "192.0.2.141"
SERVICES = [
    {"name": "ftp", "vip": FTP_VIP, "port": 21, "protocol": "tcp", "extra": 'dpi = "ftp";',
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
    {"name": "rtsp", "vip": VIP, "port": 554, "protocol": "tcp", "extra": 'dpi = "rtsp";',
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
    {"name": "rtsp6", "vip": VIP6, "port": 554, "protocol": "tcp", "extra": 'dpi = "rtsp";',
     "weights": {"b1": 1, "b2": 1, "b3": 1}},
]


def setup_request(number, transport, version="1.0"):
    return (f"SETUP rtsp://{VIP}/stream{number}/trackID=0 RTSP/{version}\r\nCSeq: 3\r\n"
            f"User-Agent: tether-test\r\nTransport: {transport}\r\n\r\n").encode()


def media(client, ports, vip=VIP, packets=2):
    ip = IPv6(src=client, dst=vip) if ":" in client else IP(src=client, dst=vip)
    return [bytes(ether() / ip / UDP(sport=port, dport=6970 + (port & 1)) / (b"\x80\x00" + b"m" * 40))
            for port in ports for _ in range(packets)]


class Session:
    """One control connection (frames built by TcpConnection), the client ports its SETUP
    announces, and the frames of each, so a run can be checked frame by frame."""

    def __init__(self, number, client, sport, rng, vip=VIP):
        self.number = number
        self.client = client
        self.vip = vip
        self.control = TcpConnection(client, sport, vip, 554, rng)
        self.control_frames = []
        self.media_frames = []

    def segment(self, flags, payload=b"", seq=None):
        if ":" not in self.client:
            return self.control.segment(flags, payload, seq)
        seq = self.control.seq if seq is None else seq
        return bytes(ether() / IPv6(src=self.client, dst=self.vip)
                     / TCP(sport=self.control.sport, dport=554, flags=flags, seq=seq & 0xffffffff,
                           ack=1) / payload)

    def syn(self):
        frame = self.segment("S")
        self.control.seq += 1
        self.control_frames.append(frame)
        return frame

    def pieces(self, payload, cuts):
        """The payload cut at `cuts` into segments, in stream order; the stream advances."""
        bounds = [0, *cuts, len(payload)]
        frames = [self.segment("PA", payload[a:b], seq=self.control.seq + a)
                  for a, b in zip(bounds, bounds[1:])]
        self.control.seq += len(payload)
        self.control_frames += frames
        return frames

    def rtp(self, ports, packets=2):
        frames = media(self.client, ports, self.vip, packets)
        self.media_frames += frames
        return frames


def check_media_follows_control(run, sessions):
    """Every frame reached a backend unchanged; each session's media went where its control
    connection went."""
    assert run.returncode == 0, run.stderr
    backend_of = {}
    for frame in run.frames:
        backend = BACKEND_BY_MAC.get(frame[:6])
        assert backend is not None, f"output to unknown MAC {frame[:6].hex(':')}"
        backend_of.setdefault(frame[12:], set()).add(backend)
    wrong = []
    for s in sessions:
        control = set().union(*(backend_of.get(f[12:], set()) for f in s.control_frames))
        assert len(control) == 1, f"session {s.number}: control connection on {control}"
        reached = [backend_of.get(f[12:]) for f in s.media_frames]
        if any(r != control for r in reached):
            wrong.append((s.number, control, reached))
    assert not wrong, f"{len(wrong)} sessions' media missed their backend, e.g. {wrong[:3]}"
    assert run.drops("no_expectation") == 0


def test_reordered_setup_segments_of_two_and_three(tmp_path):
    """A SETUP as the first request, cut in two (reversed) or three (every order) segments:
    the balancer knows the stream starts at the SYN's ISN + 1, so a segment that overtakes
    the first is held, not taken for the start of a request."""
    rng = random.Random(7)
    sessions, frames = [], []
    orders = [(1, 0)] + list(itertools.permutations(range(3)))
    for number, order in enumerate(orders * 4):
        s = Session(number, f"198.51.100.{10 + number}", 31000 + number, rng)
        ports = (5000 + 2 * number, 5001 + 2 * number)
        frames.append(s.syn())
        request = setup_request(number, f"RTP/AVP;unicast;client_port={ports[0]}-{ports[1]}")
        third = len(request) // 3
        cuts = [len(request) // 2] if len(order) == 2 else [third, 2 * third]
        pieces = s.pieces(request, cuts)
        frames += [pieces[i] for i in order]
        if number % 4 == 3:
            frames.append(pieces[order[0]])  # and a retransmission of the one that came first
        sessions.append(s)
    for s, number in zip(sessions, itertools.count()):
        frames += s.rtp((5000 + 2 * number, 5001 + 2 * number))
    run = run_tetherd(tmp_path, [frames], SERVICES)
    check_media_follows_control(run, sessions)
    counts = run.stats["sessions"]
    assert counts["rtsp_sessions_created"] == len(sessions)
    assert counts["rtp_expectations_created"] == 2 * len(sessions)
    assert sum(run.stats["dpi_fallbacks"].values()) == 0, run.stats["dpi_fallbacks"]


def test_rtsp2_dest_addr_routes_media(tmp_path):
    """RTSP/2.0 clients announce their ports with dest_addr (host optional, IPv6 in brackets)
    and may add src_addr: media from those ports reaches the control connection's backend,
    over IPv4 and IPv6, whatever order the parameters come in."""
    rng = random.Random(8)
    transports = [
        ('RTP/AVP;unicast;dest_addr=":{0}"/":{1}"', None),
        ('RTP/AVP/UDP;unicast;dest_addr="{host}:{0}"/"{host}:{1}";mode="PLAY"', None),
        ('RTP/AVP;ssrc=0A13C760;dest_addr=":{0}";RTCP-mux;unicast', "mux"),
        ('RTP/AVP/TCP;unicast;interleaved=0-1,RTP/AVP;unicast;dest_addr=":{0}"/":{1}"', None),
        ('RTP/AVP;unicast;mode="RECORD";src_addr=":{0}"/":{1}";dest_addr=":{0}"/":{1}"', None),
        # A host other than the client's: the ports still count for the client's address.
        ('RTP/AVP;unicast;dest_addr="203.0.113.9:{0}"/"203.0.113.9:{1}"', None),
    ]
    sessions, signalling, media_frames = [], [], []
    for number in range(60):
        v6 = number % 2 == 1
        client = f"2001:db8:100::{number + 1:x}" if v6 else f"198.51.100.{100 + number}"
        s = Session(number, client, 32000 + number, rng, vip=VIP6 if v6 else VIP)
        ports = (6000 + 2 * number, 6001 + 2 * number)
        text, mux = transports[number % len(transports)]
        host = f"[{client}]" if v6 else client
        transport = text.format(*ports, host=host)
        signalling.append(s.syn())
        request = setup_request(number, transport, version="2.0")
        signalling += s.pieces(request, [] if number % 3 else [len(request) // 2])
        s.ports = ports[:1] if mux else ports
        media_frames += s.rtp(s.ports)
        sessions.append(s)
    run = run_tetherd(tmp_path, [signalling + media_frames], SERVICES)
    check_media_follows_control(run, sessions)
    counts = run.stats["sessions"]
    assert counts["rtsp_sessions_created"] == len(sessions)
    assert counts["rtp_expectations_used"] == sum(len(s.ports) for s in sessions)
    assert sum(run.stats["dpi_fallbacks"].values()) == 0, run.stats["dpi_fallbacks"]


def test_ten_thousand_sessions_with_sixteen_buffers(tmp_path):
    """10,000 concurrent RTSP sessions on one worker with 16 reassembly buffers: a SETUP that
    arrives whole is read from its packet and needs none, so every session's media is
    routed."""
    rng = random.Random(9)
    sessions, signalling, media_frames = [], [], []
    for number in range(10000):
        client = f"10.{number // 250 % 250}.{number % 250}.{1 + number // 62500}"
        s = Session(number, client, 20000 + number % 40000, rng)
        ports = (5000 + 2 * (number % 200), 5001 + 2 * (number % 200))
        signalling.append(s.syn())
        signalling += s.pieces(setup_request(number, f"RTP/AVP;unicast;client_port={ports[0]}-{ports[1]}"), [])
        media_frames += s.rtp(ports, packets=1)
        sessions.append(s)
    run = run_tetherd(tmp_path, [signalling + media_frames], SERVICES,
                      extra_tables="dpi_streams_per_worker = 16;", timeout=600)
    check_media_follows_control(run, sessions)
    assert len(run.frames) == len(signalling) + len(media_frames)
    counts = run.stats["sessions"]
    assert counts["rtsp_sessions_created"] == len(sessions)
    assert counts["rtp_expectations_used"] == 2 * len(sessions)
    assert sum(run.stats["dpi_fallbacks"].values()) == 0, run.stats["dpi_fallbacks"]


def test_idle_partial_requests_are_evicted(tmp_path):
    """Sixteen connections each leave a partial request and go quiet, holding all 16
    buffers: later sessions whose SETUPs come in two segments take the oldest idle buffer
    rather than go uninspected, and the evictions are counted."""
    rng = random.Random(10)
    idle, sessions, frames = [], [], []
    for number in range(16):
        s = Session(number, f"198.51.100.{number + 1}", 33000 + number, rng)
        frames.append(s.syn())
        request = setup_request(number, f"RTP/AVP;unicast;client_port={7000 + 2 * number}-{7001 + 2 * number}")
        frames.append(s.pieces(request, [40])[0])  # the first part only
        idle.append(s)
    # Then three groups of 16 sessions: each group's first parts, then their second parts,
    # so the first group needs every buffer at once.
    for group in range(3):
        firsts, seconds = [], []
        for number in range(16 + 16 * group, 32 + 16 * group):
            s = Session(number, f"198.51.100.{number + 1}", 33000 + number, rng)
            ports = (7000 + 2 * number, 7001 + 2 * number)
            firsts.append(s.syn())
            request = setup_request(number, f"RTP/AVP;unicast;client_port={ports[0]}-{ports[1]}")
            first, second = s.pieces(request, [40])
            firsts.append(first)
            seconds.append(second)
            s.rtp(ports)
            sessions.append(s)
        frames += firsts + seconds
    frames += [f for s in sessions for f in s.media_frames]
    # The idle connections wake up: their requests' ends come, but the starts are gone.
    for s in idle:
        request = setup_request(s.number, "RTP/AVP;unicast;client_port=1-2")
        frames.append(s.segment("PA", request[40:], seq=s.control.seq + 40))
    run = run_tetherd(tmp_path, [frames], SERVICES, extra_tables="dpi_streams_per_worker = 16;")
    check_media_follows_control(run, sessions)
    fallbacks = run.stats["dpi_fallbacks"]
    assert fallbacks["stream_evicted"] == 16, fallbacks
    # What remained of the evicted requests is not read as requests of their own.
    assert fallbacks["rtsp_malformed"] == 16, fallbacks
    assert run.stats["sessions"]["rtsp_sessions_created"] == len(sessions)


def test_inspection_resumes_after_a_segment_it_cannot_hold(tmp_path):
    """A segment far beyond the buffer's window (here: bogus) loses its stream's place
    without taking a buffer from the 16 connections that hold partial requests (they all
    complete later); the stream's next request, whole in its segment, is read again."""
    rng = random.Random(11)
    waiting, rests, frames = [], [], []
    for number in range(1, 17):
        w = Session(number, f"198.51.100.{number}", 34000 + number, rng)
        frames.append(w.syn())
        first, rest = w.pieces(setup_request(number, f"RTP/AVP;unicast;client_port={9000 + 2 * number}-"
                                                     f"{9001 + 2 * number}"), [30])
        frames.append(first)
        rests.append(rest)
        w.rtp((9000 + 2 * number, 9001 + 2 * number))
        waiting.append(w)
    s = Session(0, "198.51.100.200", 34000, rng)
    frames.append(s.syn())
    frames += s.pieces(b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\n\r\n", [])
    far = s.segment("PA", b"junk", seq=s.control.seq + 100000)
    s.control_frames.append(far)
    frames.append(far)
    frames += s.pieces(setup_request(0, "RTP/AVP;unicast;client_port=9000-9001"), [])
    frames += s.rtp((9000, 9001))
    frames += rests + [f for w in waiting for f in w.media_frames]
    run = run_tetherd(tmp_path, [frames], SERVICES, extra_tables="dpi_streams_per_worker = 16;")
    check_media_follows_control(run, [s] + waiting)
    fallbacks = run.stats["dpi_fallbacks"]
    assert fallbacks["stream_overflow"] == 1 and fallbacks["stream_evicted"] == 0, fallbacks


def test_ftp_commands_arriving_whole_need_no_buffer(tmp_path):
    """300 FTP control connections open at once on one worker with 16 buffers: commands that
    arrive whole are read from their packets, so every PASV/EPSV is seen and every data
    connection reaches its control connection's backend."""
    rng = random.Random(12)
    sessions = [FtpSession(n, FTP_VIP, rng, [f"10.200.{n // 250}.{n % 250 + 1}"]) for n in range(300)]
    for x in sessions:
        x.style = 0  # whole commands only
    controls = [x.signalling() for x in sessions]
    transfers = [x.transfer() for x in sessions]
    frames = [f for c in controls for f in c] + [f for t in transfers for f in t]
    run = run_tetherd(tmp_path, [frames], SERVICES, extra_tables="dpi_streams_per_worker = 16;")
    assert run.returncode == 0, run.stderr
    backend_of = {}
    for frame in run.frames:
        backend_of.setdefault(frame[12:], set()).add(BACKEND_BY_MAC[frame[:6]])
    for x, control_frames, transfer in zip(sessions, controls, transfers):
        control = set().union(*(backend_of.get(f[12:], set()) for f in control_frames))
        data = set().union(*(backend_of.get(f[12:], set()) for f in transfer))
        assert len(control) == 1 and data == control, f"session {x.number}: {control} {data}"
    assert run.drops("no_expectation") == 0
    assert run.stats["sessions"]["ftp_data_expectations_used"] == len(sessions)
    assert sum(run.stats["dpi_fallbacks"].values()) == 0, run.stats["dpi_fallbacks"]
