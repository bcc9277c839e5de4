#!/usr/bin/python3
"""An RTSP client for the failover lab: GStreamer's rtspsrc over UDP, receiving SECONDS of
the server's audio (PCMU) into OUT, and sending an RTCP receiver report every INTERVAL
seconds from its RTCP port to the server's (ffmpeg sends its first report only after 280 KB
of media, 35 s of PCMU, so only its first datagrams cross tether in a short run; a session
whose RTCP keeps crossing tether shows whether the expectation survived a failover).
Prints the bytes of audio received at the end.

    rtsp_client.py URL SECONDS OUT [INTERVAL]
"""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

url, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
interval = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
Gst.init(None)

pipeline = Gst.parse_launch(f"rtspsrc name=src location={url} protocols=udp latency=100"
                            f" ! rtppcmudepay ! filesink name=sink location={out}")
loop = GLib.MainLoop()


def shorten_rtcp_interval(rtpbin, session, _ssrc):
    """RFC 3550's minimum of 5 s is the default; the lab wants reports every `interval`."""
    internal = rtpbin.emit("get-internal-session", session)
    internal.set_property("rtcp-min-interval", int(interval * Gst.SECOND))


def on_manager(_src, rtpbin):
    rtpbin.connect("on-new-ssrc", shorten_rtcp_interval)


def on_message(_bus, message):
    if message.type == Gst.MessageType.ERROR:
        error, _debug = message.parse_error()
        print(f"error: {error.message}", file=sys.stderr, flush=True)
        loop.quit()
    elif message.type == Gst.MessageType.EOS:
        loop.quit()


def finish():
    # EOS makes rtspsrc send TEARDOWN over the control connection before the sink closes.
    pipeline.send_event(Gst.Event.new_eos())
    GLib.timeout_add_seconds(3, loop.quit)
    return False


pipeline.get_by_name("src").connect("new-manager", on_manager)
bus = pipeline.get_bus()
bus.add_signal_watch()
bus.connect("message", on_message)
pipeline.set_state(Gst.State.PLAYING)
GLib.timeout_add(int(seconds * 1000), finish)
loop.run()
pipeline.set_state(Gst.State.NULL)
with open(out, "rb") as audio:
    print(len(audio.read()), flush=True)
