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
SIP_CALL, RTP_EXPECTATION, FTP_EXPECTATION, FLOW, BACKEND_HEALTH = 1, 2, 3, 4, 5  # record types
HEADER = struct.Struct("!IBBHIIQQ")  # magic, version, kind, count, sender, length, epoch, sequence


def address(text):
    """16 bytes, IPv4 in its IPv4-mapped form, as the tables keep addresses."""
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return b"\0" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


def record(kind, body):
    return struct.pack("!HH", kind, len(body)) + body


def sip_call(service, digest, backend, state=LIVE, remaining_ms=60000, holds_call=True):
    """`digest`: the Call-ID's digest as an integer (see the tests' call_id_digest).
    `holds_call` False: a transaction outside any call (OPTIONS, REGISTER), flags bit 0."""
    return record(SIP_CALL, struct.pack("!HQHBIB", service, digest, backend, state, remaining_ms,
                                        0 if holds_call else 1))


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


RECORD_FORMATS = {  # record type -> (name, body layout), as the writers above pack them
    SIP_CALL: ("sip_call", struct.Struct("!HQHBIB"),
               ("service", "digest", "backend", "state", "remaining_ms", "flags")),
    RTP_EXPECTATION: ("rtp_expectation", struct.Struct("!H16sHHBI"),
                      ("service", "client", "client_port", "backend", "state", "remaining_ms")),
    FTP_EXPECTATION: ("ftp_expectation", struct.Struct("!H16sHBI"),
                      ("service", "client", "backend", "state", "remaining_ms")),
    FLOW: ("flow", struct.Struct("!16s16sHHBBHHI"),
           ("client", "vip", "client_port", "vip_port", "protocol", "closing", "service", "backend",
            "remaining_ms")),
    BACKEND_HEALTH: ("backend_health", struct.Struct("!HBI"), ("backend", "up", "name_digest")),
}


def text_address(packed):
    ip = ipaddress.ip_address(packed)
    return str(ip.ipv4_mapped or ip)


def read(datagram, key):
    """A message tetherd sent, checked as its peers check it (magic, version, lengths, tag):
    (header as a dict, records as dicts with their `type` name). Raises ValueError."""
    if len(datagram) < HEADER.size + 32:
        raise ValueError("truncated")
    magic, version, kind, count, sender, length, epoch, sequence = HEADER.unpack_from(datagram)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"magic {magic:#x} version {version}")
    if HEADER.size + length + 32 != len(datagram):
        raise ValueError("length")
    signed, tag = datagram[:-32], datagram[-32:]
    if not hmac.compare_digest(tag, hmac.new(key, signed, hashlib.sha256).digest()):
        raise ValueError("bad tag")
    records, offset = [], HEADER.size
    while offset < HEADER.size + length:
        kind_of_record, body_length = struct.unpack_from("!HH", datagram, offset)
        body = datagram[offset + 4:offset + 4 + body_length]
        name, layout, fields = RECORD_FORMATS[kind_of_record]
        values = dict(zip(fields, layout.unpack_from(body)))
        for field in ("client", "vip"):
            if field in values:
                values[field] = text_address(values[field])
        if name == "sip_call":
            values["holds_call"] = not values.pop("flags") & 1
        records.append({"type": name, **values})
        offset += 4 + body_length
    if len(records) != count:
        raise ValueError("record count")
    header = {"kind": kind, "sender": sender, "epoch": epoch, "sequence": sequence}
    return header, records
