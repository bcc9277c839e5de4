"""The backends' side of tunnel forwarding in the lab: tether's XDP decapsulator
(backend/tether_decap.bpf.c, built into BUILD/backend/) attached to an interface in a network
namespace by the shipped tether-decap, and its counters read back through it."""
import json

from .namespaces import run
from .tetherd import BUILD

DECAP_OBJECT = BUILD / "backend" / "tether_decap.bpf.o"
DECAP_TOOL = BUILD / "backend" / "tether-decap"


def attach_decapsulator(ns, device="eth0", gue_port=None):
    """tether-decap attach DEVICE in namespace `ns` (native XDP on a veth)."""
    assert DECAP_OBJECT.exists(), f"{DECAP_OBJECT} is missing: tools/build (needs clang)"
    words = ["ip", "netns", "exec", ns, "/usr/bin/python3", DECAP_TOOL, "attach", device, "--mode", "native",
             "--object", DECAP_OBJECT]
    if gue_port is not None:
        words += ["--gue-port", gue_port]
    run(*words)


def decap_counters(ns, device="eth0"):
    """counter -> packets of the decapsulator on `device` in `ns`."""
    return json.loads(run("ip", "netns", "exec", ns, "/usr/bin/python3", DECAP_TOOL, "counters", device,
                          "--json").stdout)
