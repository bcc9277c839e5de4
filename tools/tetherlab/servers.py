"""The servers the lab's backends run, and how to read what they logged: sipp's UAS (the
scenarios in sip/), a TCP name server, vsftpd in passive mode and gst-rtsp-server
(rtsp_server.py)."""
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIP_SCENARIOS = HERE / "sip"
RTSP_SERVER = HERE / "rtsp_server.py"
RTSP_CLIENT = HERE / "rtsp_client.py"  # the failover lab's RTSP client (workloads.ReportingStreams)

# vsftpd, one per backend: anonymous read-only downloads, passive mode only, listening on
# the FTP VIP (so PASV replies name the VIP), every transfer logged. isolate_network=NO keeps
# its processes in the backend's namespace (teardown finds them there).
VSFTPD_CONF = """listen=YES
listen_ipv6=NO
listen_address={vip}
background=NO
anonymous_enable=YES
no_anon_password=YES
anon_root={root}
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_min_port={first}
pasv_max_port={last}
port_enable=NO
connect_from_port_20=NO
xferlog_enable=YES
xferlog_std_format=NO
vsftpd_log_file={log}
secure_chroot_dir={empty}
seccomp_sandbox=NO
isolate_network=NO
isolate=NO
max_clients=0
max_per_ip=0
accept_timeout=10
data_connection_timeout=30
hide_ids=YES
"""


# The backends' TCP service: answers each connection with the backend's name, then echoes
# every line it receives prefixed with that name, until the client closes. It listens on
# all addresses, so it serves the VIP (on lo) and tetherd's TCP health check (the backend's
# own address) alike; replies leave from the address the client connected to.
TCP_SERVER = r"""
import socket, socketserver, sys
name, port = sys.argv[1], int(sys.argv[2])
class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(f"{name}\n".encode())
        for line in self.rfile:
            self.wfile.write(f"{name} {line.decode().strip()}\n".encode())
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128
with Server(("0.0.0.0", port), Handler) as server:
    print("ready", flush=True)
    server.serve_forever()
"""


def parse_sipp_requests(text):
    """(method, Call-ID) of every request in a sipp -trace_msg log that sipp received."""
    found = []
    for block in text.split("\n\n----------------------------------------------- ")[0:]:
        lines = block.replace("\r", "").split("\n")
        try:
            start = next(i for i, l in enumerate(lines) if "message received" in l)
        except StopIteration:
            continue
        body = [l for l in lines[start + 1:] if l.strip()]
        if not body or body[0].startswith("SIP/2.0"):
            continue  # a response
        method = body[0].split(" ", 1)[0]
        call_id = next((l.split(":", 1)[1].strip() for l in body
                        if l.lower().startswith(("call-id:", "i:"))), None)
        found.append((method, call_id))
    return found
