"""Signalling sessions for the session-awareness tests: SIP calls, RTSP sessions with their
RTP/RTCP flows, FTP sessions with their data connections. Each session knows every frame it
sends, so a test can check that all of them reached one backend.
"""
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from harness import CLIENT_MAC, PORT_MAC


def ether():
    return Ether(src=CLIENT_MAC, dst=PORT_MAC)


SDP = ("v=0\r\no=alice 2890844526 2890844526 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\n"
       "t=0 0\r\nm=audio 49170 RTP/AVP 0 8 97\r\na=rtpmap:0 PCMU/8000\r\n"
       "a=rtpmap:8 PCMA/8000\r\na=rtpmap:97 iLBC/8000\r\n")


class SipCall:
    """INVITE, ACK, optionally re-INVITE + ACK, BYE; each message may use another source
    port. Call-IDs come in the forms real stacks write: full name, compact `i`, lower case,
    spaces around the colon, folded over two lines."""

    def __init__(self, number, vip, rng, clients, method="INVITE", reinvite=False, bye=True,
                 call_id=None, sdp=True):
        self.number = number
        self.vip = vip
        self.clients = clients
        self.client = rng.choice(clients)
        self.call_id = call_id or f"{rng.getrandbits(64):016x}-{number}@{self.client}"
        self.sdp = sdp
        self.to_tag = f"callee{number}"  # on requests inside the dialog
        self.method = method
        self.style = number % 5
        self.ports = [rng.randrange(5060, 65000) for _ in range(4)]
        self.rng = rng
        self.reinvite = reinvite
        self.bye = bye

    def call_id_header(self):
        if self.style == 0:
            return f"Call-ID: {self.call_id}\r\n"
        if self.style == 1:
            return f"i: {self.call_id}\r\n"
        if self.style == 2:
            return f"call-id:{self.call_id}\r\n"
        if self.style == 3:
            return f"CALL-ID   :   {self.call_id}\r\n"
        return f"Call-ID:\r\n   {self.call_id}\r\n"  # folded continuation line

    def message(self, method, cseq, port, body="", client=None, response=None, in_dialog=True):
        """A request inside the dialog (or a response) carries the To tag; the initial
        INVITE and a CANCEL of it do not (RFC 3261 8.1.1.2, 9.1)."""
        client = client or self.client
        start = (f"SIP/2.0 {response}\r\n" if response else f"{method} sip:bob@{self.vip} SIP/2.0\r\n")
        to_tag = f";tag={self.to_tag}" if in_dialog else ""
        text = (start +
                f"Via: SIP/2.0/UDP {client}:{port};branch=z9hG4bK{self.rng.getrandbits(32):x}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:alice@{self.client}>;tag={self.number}\r\n"
                f"To: <sip:bob@{self.vip}>{to_tag}\r\n{self.call_id_header()}CSeq: {cseq} {method}\r\n"
                f"Contact: <sip:alice@{self.client}:{port}>\r\n"
                f"User-Agent: tether-test\r\nContent-Length: {len(body)}\r\n\r\n{body}")
        return bytes(ether() / IP(src=client, dst=self.vip)
                     / UDP(sport=port, dport=5060) / text.encode())

    def invite(self):
        """The INVITE that opens the call."""
        return self.message("INVITE", 1, self.ports[0], SDP.format(ip=self.client) if self.sdp else "",
                            in_dialog=False)

    def frames(self):
        if self.method == "REGISTER":
            return [self.message("REGISTER", 1, self.ports[0], in_dialog=False),
                    self.message("REGISTER", 2, self.ports[1], in_dialog=False)]
        sdp = SDP.format(ip=self.client) if self.sdp else ""
        frames = [self.invite(),
                  self.message("ACK", 1, self.ports[1])]
        if self.reinvite:
            frames += [self.message("INVITE", 2, self.ports[2], sdp),
                       self.message("ACK", 2, self.ports[2])]
        if self.number % 4 == 1:
            # the client answering a re-INVITE the server side sent: a response
            frames.append(self.message("INVITE", 101, self.ports[1], sdp, response="200 OK"))
        if self.bye:
            # some calls end through another proxy: another client address
            other = self.clients[(self.clients.index(self.client) + 1) % len(self.clients)]
            frames.append(self.message("BYE", 3, self.ports[3],
                                       client=other if self.number % 7 == 0 else None))
        return frames


class TcpConnection:
    def __init__(self, client, sport, vip, dport, rng):
        self.client, self.sport, self.vip, self.dport = client, sport, vip, dport
        self.seq = rng.getrandbits(32)

    def segment(self, flags, payload=b"", seq=None):
        seq = self.seq if seq is None else seq
        return bytes(ether() / IP(src=self.client, dst=self.vip)
                     / TCP(sport=self.sport, dport=self.dport, flags=flags, seq=seq & 0xffffffff,
                           ack=1) / payload)

    def syn(self):
        frame = self.segment("S")
        self.seq += 1
        return frame

    def send(self, payload, split=None, reorder=False, retransmit=False):
        """The payload as one or two segments, optionally reordered, optionally with the
        first segment retransmitted."""
        if split is None:
            frames = [self.segment("PA", payload)]
        else:
            first = self.segment("A", payload[:split])
            second = self.segment("PA", payload[split:], seq=self.seq + split)
            frames = [second, first] if reorder else [first, second]
            if retransmit:
                frames.append(first)
        self.seq += len(payload)
        return frames

    def fin(self):
        frame = self.segment("FA")
        self.seq += 1
        return frame


class RtspSession:
    """TCP control connection: OPTIONS, DESCRIBE, SETUP (audio and video, RTP/RTCP port
    pairs), PLAY, then UDP media from the client's ports to the VIP, then TEARDOWN."""

    def __init__(self, number, vip, rng, clients, interleaved=False):
        self.number = number
        self.vip = vip
        self.client = rng.choice(clients)
        self.control = TcpConnection(self.client, 30000 + number, vip, 554, rng)
        # Distinct per session, as one host's concurrent clients never share a port.
        base = 5000 + 4 * number
        self.client_ports = [base, base + 1, base + 2, base + 3]
        self.server_port = rng.choice([6970, 6972, 50000])
        self.interleaved = interleaved
        self.rng = rng
        self.style = number % 4

    def request(self, method, url, cseq, extra=""):
        return (f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: LibVLC/3.0.18\r\n"
                f"{extra}\r\n").encode()

    def signalling(self):
        url = f"rtsp://{self.vip}/stream{self.number}"
        c = self.control
        frames = [c.syn()]
        frames += c.send(self.request("OPTIONS", url, 1))
        frames += c.send(self.request("DESCRIBE", url, 2, "Accept: application/sdp\r\n"))
        for track, cseq in ((0, 3), (1, 4)):
            if self.interleaved:
                transport = f"RTP/AVP/TCP;unicast;interleaved={2 * track}-{2 * track + 1}"
            else:
                p = self.client_ports[2 * track]
                transport = f"RTP/AVP;unicast;client_port={p}-{p + 1}"
            setup = self.request("SETUP", f"{url}/trackID={track}", cseq,
                                 f"Transport: {transport}\r\n" + ("Session: 12345678\r\n" if track else ""))
            # Split the SETUP over two segments in some sessions, out of order or with a
            # retransmission in others.
            split = None if self.style == 0 else len(setup) // 2
            frames += c.send(setup, split=split, reorder=self.style == 2, retransmit=self.style == 3)
        frames += c.send(self.request("PLAY", url, 5, "Session: 12345678\r\nRange: npt=0.000-\r\n"))
        return frames

    def media(self, packets=3):
        if self.interleaved:
            return []
        frames = []
        for port in self.client_ports:
            for i in range(packets):
                frames.append(bytes(ether() / IP(src=self.client, dst=self.vip)
                                    / UDP(sport=port, dport=self.server_port + (port & 1))
                                    / (b"\x80\xc8" if port & 1 else b"\x80\x00") / (b"m" * 40)))
        return frames

    def teardown(self):
        url = f"rtsp://{self.vip}/stream{self.number}"
        return self.control.send(self.request("TEARDOWN", url, 6, "Session: 12345678\r\n")) + \
            [self.control.fin()]


class FtpSession:
    """Control connection with USER/PASS/TYPE/PASV (or EPSV)/RETR, then the data connection
    the client opens to the VIP port the server announced."""

    def __init__(self, number, vip, rng, clients, data_port=None):
        self.number = number
        self.vip = vip
        self.client = rng.choice(clients)
        self.control = TcpConnection(self.client, 30000 + number, vip, 21, rng)
        self.data = TcpConnection(self.client, 50000 + number, vip,
                                  data_port or rng.randrange(40000, 50000), rng)
        self.epsv = number % 2 == 1
        self.style = number % 3

    def signalling(self):
        c = self.control
        frames = [c.syn()]
        for line in (b"USER anonymous\r\n", b"PASS guest@\r\n", b"TYPE I\r\n"):
            frames += c.send(line)
        command = b"EPSV\r\n" if self.epsv else b"PASV\r\n"
        frames += c.send(command, split=2 if self.style == 1 else None,
                         reorder=self.style == 2 and False)
        return frames

    def transfer(self):
        d = self.data
        return [d.syn(), d.segment("A"), d.segment("A"), d.fin()]

    def close(self):
        return self.control.send(b"RETR file.bin\r\n") + self.control.send(b"QUIT\r\n") + \
            [self.control.fin()]


def shuffle_sessions(groups, rng):
    """Interleave the frame lists of many sessions, each list's order kept."""
    order = [i for i, g in enumerate(groups) for _ in g]
    rng.shuffle(order)
    cursors = [0] * len(groups)
    out = []
    for i in order:
        out.append(groups[i][cursors[i]])
        cursors[i] += 1
    return out
