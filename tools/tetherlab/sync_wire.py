"""State sync messages as tetherd reads them (sync/wire.hpp; docs/design.md "State sync: the
wire format"), written again in Python so that the tests and the lab can speak to a tetherd
without a second tetherd: a header, records, an HMAC-SHA256 tag, every field big-endian."""
import hashlib
import hmac
import ipaddress
import struct

MAGIC = 0x54535943  # "TSYC"
VERSION = 1
RECORDS, BULK_REQUEST, BULK_END = 1, 2, 3  # message kinds
LIVE, ENDED = 1, 2  # session states
SIP_CALL, RTP_EXPECTATION, FTP_EXPECTATION, FLOW = 1, 2, 3, 4  # record types
HEADER = struct.Struct("!IBBHIIQQ")  # magic, version, kind, count, sender, length, epoch, sequence


def address(text):
    """16 bytes, IPv4 in its IPv4-mapped form, as the tables keep addresses."""
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return b"\0" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


def record(kind, body):
    return struct.pack("!HH", kind, len(body)) + body


def sip_call(service, digest, backend, state=LIVE, remaining_ms=60000):
    """`digest`: the Call-ID's digest as an integer (see the tests' call_id_digest)."""
    return record(SIP_CALL, struct.pack("!HQHBI", service, digest, backend, state, remaining_ms))


def rtp_expectation(service, client, client_port, backend, state=LIVE, remaining_ms=60000):
    return record(RTP_EXPECTATION, struct.pack("!H16sHHBI", service, address(client), client_port,
                                               backend, state, remaining_ms))


def ftp_expectation(service, client, backend, state=LIVE, remaining_ms=30000):
    return record(FTP_EXPECTATION, struct.pack("!H16sHBI", service, address(client), backend, state,
                                               remaining_ms))


def flow(client, vip, client_port, vip_port, protocol, service, backend, closing=False,
         remaining_ms=60000):
    return record(FLOW, struct.pack("!16s16sHHBBHHI", address(client), address(vip), client_port,
                                    vip_port, protocol, 1 if closing else 0, service, backend,
                                    remaining_ms))


def message(key, sender, epoch, sequence, records=(), kind=RECORDS):
    """One datagram: the header, the records (bytes from the functions above) and the tag."""
    payload = b"".join(records)
    header = HEADER.pack(MAGIC, VERSION, kind, len(records), sender, len(payload), epoch, sequence)
    signed = header + payload
    return signed + hmac.new(key, signed, hashlib.sha256).digest()
