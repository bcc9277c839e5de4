#!/usr/bin/python3
"""One backend's RTSP server for the lab: GStreamer's gst-rtsp-server on VIP:PORT, serving
/audio (a live test tone, PCMU over RTP) with a pipeline per client (not shared), and UDP
server ports from [FIRST, LAST] on the VIP (a unicast address pool), so each backend's
media ports are its own. Prints one line per SETUP it answers:

    setup CLIENT_ADDRESS RTP_PORT-RTCP_PORT

(the client's address and the ports its Transport header announced), so a test can tell
which backend serves which client's session. Prints "ready" once it listens.

    rtsp_server.py NAME VIP PORT FIRST LAST
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

name, vip, port, first, last = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
Gst.init(None)

server = GstRtspServer.RTSPServer()
server.set_address(vip)
server.set_service(port)

pool = GstRtspServer.RTSPAddressPool()
if not pool.add_range(vip, vip, first, last, 0):  # ttl 0: unicast
    sys.exit(f"{name}: cannot add port range {first}-{last}")

factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch("( audiotestsrc is-live=1 wave=sine freq=440 ! audio/x-raw,rate=8000,channels=1"
                   " ! audioconvert ! mulawenc ! rtppcmupay name=pay0 pt=0 )")
factory.set_shared(False)
factory.set_address_pool(pool)
factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
server.get_mount_points().add_factory("/audio", factory)


def on_setup(client, ctx):
    ok, transport = ctx.request.get_header(GstRtsp.RTSPHeaderField.TRANSPORT, 0)
    ports = next((p.split("=", 1)[1] for p in (transport or "").split(";")
                  if p.startswith("client_port=")), "-")
    print(f"setup {client.get_connection().get_ip()} {ports}", flush=True)


def on_client(_server, client):
    client.connect("setup-request", on_setup)


server.connect("client-connected", on_client)
if server.attach(None) == 0:
    sys.exit(f"{name}: cannot listen on {vip}:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
