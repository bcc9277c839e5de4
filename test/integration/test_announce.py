"""Health-aware VIP announcement end to end (README "Announcing the VIPs by BGP"), in the
lab's net_tap variant: tetherd keeps a host route per servable VIP on its kernel interface
(`announce`, proto 250), bird2 in its namespace learns those routes and announces them by BGP
over the exception path, with BFD, to bird2 in a router namespace, whose kernel installs
them. The router's table is the judge: it holds the SIP VIP only while tetherd runs and the
service has a backend up; it loses it within about a second when tetherd is SIGKILLed or
frozen (BFD: its packets cross tetherd's workers), and on `tetherctl drain` while tetherd
still runs, which then stops once no new call came for drain_quiet seconds.
"""
import functools
import re
import signal
import time

import pytest

from conftest import created_lab
from tetherlab.config import Kernel, config_text, lab_port
from tetherlab.lab import LabTetherd
from tetherlab.namespaces import run
from tetherlab.topology import BACKENDS, LB_ADDRESS, REPO, SIP_PORT, SIP_VIP
from tetherlab.workloads import Calls

# Measures time or loads the machine itself: runs alone (pytest.ini).
pytestmark = pytest.mark.serial

VIP6 = "2001:db8:1::100"
DRAIN_QUIET = 2  # seconds without a new call before a drained tetherd stops
HEALTH = {"type": "sip-options", "interval": 300, "timeout": 200, "rise": 2, "fall": 2}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The net_tap lab with sipp's UAS on every backend and BIRD in the router and lb
    namespaces; no tetherd yet."""
    with created_lab(tmp_path_factory.mktemp("announcelab"), tap=True) as lab:
        for name in BACKENDS:
            lab.start_sip_server(name)
        lab.start_birds()
        yield lab


@pytest.fixture(scope="module")
def config(lab):
    """The SIP service over the net_tap port with the exception path, announcing its VIP."""
    path = lab.workdir / "announce.cfg"
    service = {"name": "sip", "vip": SIP_VIP, "port": SIP_PORT, "protocol": "udp",
               "weights": {name: 1 for name in BACKENDS}, "extra": 'dpi = "sip";', "health": HEALTH}
    path.write_text(config_text(
        [lab_port(tap=True, kernel=Kernel())], {name: (address, None) for name, (address, _) in BACKENDS.items()},
        [service], extra=f'announce = {{ port = "lan0"; drain_quiet = {DRAIN_QUIET}; drain_timeout = 30; }};'))
    return path


def wait_route(lab, present, timeout, tetherd=None):
    """Polls the router's kernel until it has (or lacks) a BIRD route to the SIP VIP via
    tetherd's address: the seconds it took. AssertionError after `timeout`, saying what
    tetherd and the BIRDs said."""
    start = time.monotonic()
    while True:
        route = lab.router_route(SIP_VIP)
        if (route.startswith(f"{SIP_VIP} via {LB_ADDRESS} ") and "proto bird" in route) == present:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            announce = tetherd.ctl("show", "announce") if tetherd and tetherd.running else "(tetherd not running)"
            raise AssertionError(f"router route {'not ' if present else ''}there after {timeout} s: {route!r}\n"
                                 f"{announce}\n{lab.birds['lb'].protocols()}{lab.birds['router'].protocols()}")
        time.sleep(0.02)


def kernel_routes(lab, family):
    """tetherd's routes (proto 250) in the lb namespace's kernel, one a line."""
    return run("ip", family, "-n", lab.lb, "route", "show", "proto", "250").stdout.strip()


def vip_state(tetherd):
    (vip,) = tetherd.json("show", "announce")["vips"]
    assert vip["vip"] == SIP_VIP and vip["services"] == ["sip"], vip
    return vip


def bfd_up(lab):
    """Whether the router's BFD session with tetherd's address is Up. BGP may reach
    Established before it, and a BFD session never up withdraws nothing when it goes quiet."""
    sessions = lab.birds["router"].birdc("show", "bfd", "sessions").stdout
    return re.search(rf"^{re.escape(LB_ADDRESS)}\s+\S+\s+Up\b", sessions, re.M) is not None


def start(lab, config):
    """tetherd on `config` once every backend is healthy, the BGP session Established and
    the router's BFD session Up."""
    tetherd = lab.start_tetherd(config)
    tetherd.wait_until(lambda b: all(x["healthy"] for x in b.values()), 15, "all healthy")
    for bird in lab.birds.values():
        bird.wait_established(30)
    deadline = time.monotonic() + 15
    while not bfd_up(lab):
        assert time.monotonic() < deadline, lab.birds["router"].birdc("show", "bfd", "sessions").stdout
        time.sleep(0.1)
    return tetherd


def test_route_follows_tetherd_and_its_backends(lab, config):
    """No route before tetherd runs (the BGP session cannot even come up); once it runs with
    a backend up, the router learns the VIP; disabling the service's last backend withdraws
    it while BGP stays up, enabling one announces it again; and a health check that fails
    withdraws it as well."""
    time.sleep(1)
    assert lab.router_route(SIP_VIP) == ""
    tetherd = start(lab, config)
    try:
        learnt = wait_route(lab, True, 10, tetherd)
        assert vip_state(tetherd) | {"services": None} == {
            "vip": SIP_VIP, "announced": True, "reason": "announced", "route_installed": True, "services": None}
        for name in ("b1", "b2"):
            tetherd.ctl("backend", "disable", name)
        time.sleep(0.5)
        assert "proto bird" in lab.router_route(SIP_VIP)  # b3 still up
        tetherd.ctl("backend", "disable", "b3")
        withdrawn = wait_route(lab, False, 5, tetherd)
        state = vip_state(tetherd)
        assert (state["announced"], state["reason"], state["route_installed"]) == (False, "no backend up", False)
        shown = tetherd.ctl("show", "announce")  # tetherctl's table
        assert shown.startswith("VIP routes on lan0, proto 250 (added 1, removed 1, refused 0)\n"), shown
        assert re.search(rf"^{re.escape(SIP_VIP)}\s+no\s+no backend up\s+no\s+sip$", shown, re.M), shown
        assert lab.birds["router"].established()  # the session stays: only the route went
        tetherd.ctl("backend", "enable", "b2")
        relearnt = wait_route(lab, True, 5, tetherd)
        # The health check's view counts too: b2's UAS stops answering OPTIONS.
        lab.stop_sip_server("b2")
        unhealthy = wait_route(lab, False, 10, tetherd)
        assert vip_state(tetherd)["reason"] == "no backend up"
        counters = tetherd.json("show", "counters")["announce"]
        assert counters["announce_routes_added"] == 2 and counters["announce_routes_removed"] == 2, counters
        assert counters["announce_vips_announced"] == 0 and counters["announce_route_failures"] == 0, counters
        print(f"\nrouter learnt the VIP {learnt:.2f} s after tetherd was healthy and BGP up; lost it "
              f"{withdrawn:.2f} s after the last backend was disabled, relearnt it {relearnt:.2f} s after "
              f"one was enabled, lost it {unhealthy:.2f} s after its server stopped")
    finally:
        lab.start_sip_server("b2")
        assert tetherd.stop() == 0
    assert "announce: withdrawing" in tetherd.log()


def test_sigkill_withdraws_within_a_second(lab, config):
    """tetherd SIGKILLed: its kernel interface goes, BFD packets stop crossing its workers,
    and the router's BFD (100 ms x 3) takes the BGP session and the route down: the router's
    kernel loses the VIP within about a second (asserted under 1.5 s; the BGP hold timer
    alone would take 240 s). Restarted, it is announced again."""
    tetherd = start(lab, config)
    wait_route(lab, True, 10, tetherd)
    time.sleep(0.5)
    tetherd.proc.send_signal(signal.SIGKILL)
    lost = wait_route(lab, False, 10)
    tetherd.proc.wait()
    protocols = lab.birds["router"].protocols()  # BFD, not the hold timer, took the session down
    assert re.search(r"^tether\s.*BFD session down", protocols, re.M), protocols
    print(f"\nrouter lost the VIP {lost * 1000:.0f} ms after tetherd was SIGKILLed")
    assert lost < 1.5, lost
    # Restarted, it rejoins: BFD up again (start() waits for it), the VIP announced again.
    # BFD stayed down here before tetherd put the addresses on its new kernel interface
    # before bringing it up (control/kernel_interfaces.cpp).
    time.sleep(1)  # as a supervisor restarts it; BIRD has settled on the interface's loss
    tetherd = start(lab, config)
    wait_route(lab, True, 10, tetherd)
    assert tetherd.stop() == 0


def test_frozen_tetherd_is_withdrawn_by_bfd_though_bird_runs(lab, config):
    """tetherd stopped with SIGSTOP (a wedged box): its kernel interface and routes stay, the
    BIRD beside it still runs and holds its BGP session, but BFD's packets no longer cross
    tetherd's workers, so the router withdraws the VIP within about a second all the same:
    the router follows the dataplane, not the BGP daemon's process. SIGCONT: BFD and BGP
    come back up and the router learns the VIP again."""
    tetherd = start(lab, config)
    wait_route(lab, True, 10, tetherd)
    time.sleep(0.5)
    tetherd.proc.send_signal(signal.SIGSTOP)
    try:
        lost = wait_route(lab, False, 10)
        assert SIP_VIP in kernel_routes(lab, "-4")  # tetherd's route is still there
        assert lab.birds["lb"].proc.poll() is None
    finally:
        tetherd.proc.send_signal(signal.SIGCONT)
    relearnt = wait_route(lab, True, 30, tetherd)
    print(f"\nrouter lost the VIP {lost * 1000:.0f} ms after tetherd froze; relearnt it {relearnt:.1f} s "
          f"after it went on")
    assert lost < 1.5, lost
    assert tetherd.stop() == 0


def test_drain_withdraws_then_stops_once_traffic_moved(lab, config):
    """`tetherctl drain`: the router loses the VIP while tetherd still runs and forwards;
    calls placed meanwhile (traffic the router has not moved yet, as here where the client
    does not route through it) all complete, and tetherd stops only once no new call came
    for drain_quiet seconds, with exit code 0 and the drain in its log."""
    tetherd = start(lab, config)
    wait_route(lab, True, 10, tetherd)
    answer = tetherd.json("drain")
    assert answer["ok"] and answer["changed"] and answer["announced"] == 0, answer
    assert tetherd.ctl("drain").startswith("already draining\ndraining for ")  # once
    lost = wait_route(lab, False, 5, tetherd)
    assert tetherd.running
    state = vip_state(tetherd)
    assert (state["announced"], state["reason"]) == (False, "draining"), state
    calls = Calls(lab, "drain", 30, 10)  # 3 s of new calls, each a new session on tetherd
    assert calls.wait() == (0, 30, 0), (lab.workdir / "uac-drain.err").read_text()[-2000:]
    last_call = time.monotonic()
    assert tetherd.running, "stopped while calls still came"
    code = tetherd.proc.wait(timeout=DRAIN_QUIET + 10)
    stopped = time.monotonic() - last_call
    assert code == 0
    assert "drain: no new flow or session for the quiet period" in tetherd.log(), tetherd.log()[-2000:]
    assert "announce_drains" in tetherd.output(), tetherd.output()
    print(f"\ndrain: router lost the VIP {lost:.2f} s after the command; 30 calls during the drain "
          f"completed; tetherd stopped {stopped:.1f} s after the last (quiet period {DRAIN_QUIET} s)")
    assert stopped < DRAIN_QUIET + 3, stopped


def test_drain_and_show_announce_without_announce(lab):
    """Without `announce`, `drain` is refused (nothing to withdraw) and `show announce` says
    it is off."""
    path = lab.workdir / "no-announce.cfg"
    service = {"name": "sip", "vip": SIP_VIP, "port": SIP_PORT, "protocol": "udp",
               "weights": {name: 1 for name in BACKENDS}, "extra": 'dpi = "sip";'}
    path.write_text(config_text([lab_port(tap=True, kernel=Kernel())],
                                {name: (address, None) for name, (address, _) in BACKENDS.items()}, [service]))
    tetherd = lab.start_tetherd(path)
    try:
        assert tetherd.json("show", "announce") == {"enabled": False, "vips": []}
        with pytest.raises(RuntimeError, match="no 'announce' section"):
            tetherd.ctl("drain")
    finally:
        assert tetherd.stop() == 0


def test_routes_in_tetherds_namespace_follow_ha_and_each_vip(lab):
    """In tetherd's own namespace: a host route per VIP on lan0 with proto 250, IPv4 and
    IPv6 alike, only while the pair's state is master (a backup announces nothing, `show
    announce` says why), a route the kernel refuses is tried again until it takes, and per
    VIP: the IPv6 service losing its only backend withdraws its VIP and leaves the IPv4 one
    announced, as does a reload that removes the service."""
    path = lab.workdir / "ha-announce.cfg"
    services = [{"name": "sip", "vip": SIP_VIP, "port": SIP_PORT, "protocol": "udp",
                 "weights": {"b1": 1}, "extra": 'dpi = "sip";'},
                {"name": "web6", "vip": VIP6, "port": 80, "protocol": "tcp", "weights": {"b6": 1}}]
    backends = {"b1": (BACKENDS["b1"][0], None), "b6": ("2001:db8::11", "02:e2:e0:00:01:06")}
    path.write_text(config_text([lab_port(tap=True, kernel=Kernel())], backends, services,
                                extra='ha = { initial = "backup"; };\nannounce = { port = "lan0"; };'))
    # Not lab.start_tetherd, which waits for every backend's MAC by ARP: b6's is static.
    tetherd = LabTetherd(lab, path, lab.workdir / "ha-announce.sock", output=lab.workdir / "ha-announce",
                         cwd=REPO, spawn=functools.partial(lab.popen, lab.lb))
    lab.wire_tap_port()
    try:
        tetherd.wait_until(lambda b: b["b1"]["state"] == "up", 10, "b1 up")
        assert kernel_routes(lab, "-4") == "" and kernel_routes(lab, "-6") == ""
        vips = tetherd.json("show", "announce")["vips"]
        assert [(v["vip"], v["announced"], v["reason"]) for v in vips] == [
            (SIP_VIP, False, "not master"), (VIP6, False, "not master")], vips
        tetherd.ctl("ha", "master")
        time.sleep(0.3)
        assert kernel_routes(lab, "-4").split() == [SIP_VIP, "dev", "lan0", "scope", "link"]
        # The lab's namespaces run with IPv6 off, so the kernel refuses the IPv6 route
        # (EACCES): counted, shown, and tried again each second until IPv6 is on.
        announce = tetherd.json("show", "announce")
        assert [(v["announced"], v["route_installed"]) for v in announce["vips"]] == [(True, True), (True, False)]
        assert announce["route_failures"] >= 1, announce
        lab.sysctl(lab.lb, "net.ipv6.conf.lan0.disable_ipv6=0")
        deadline = time.monotonic() + 3
        while kernel_routes(lab, "-6") == "":
            assert time.monotonic() < deadline, tetherd.log()[-1500:]
            time.sleep(0.05)
        assert kernel_routes(lab, "-6").split()[:3] == [VIP6, "dev", "lan0"], kernel_routes(lab, "-6")  # proto 250: the filter
        assert all(v["route_installed"] for v in tetherd.json("show", "announce")["vips"])
        tetherd.ctl("backend", "disable", "b6")
        time.sleep(0.3)
        assert kernel_routes(lab, "-6") == "" and SIP_VIP in kernel_routes(lab, "-4")
        assert [v["reason"] for v in tetherd.json("show", "announce")["vips"]] == ["announced", "no backend up"]
        tetherd.ctl("backend", "enable", "b6")
        time.sleep(0.3)
        assert VIP6 in kernel_routes(lab, "-6")
        # A reload without the IPv6 service: its VIP goes with it.
        path.write_text(config_text([lab_port(tap=True, kernel=Kernel())], backends, services[:1],
                                    extra='ha = { initial = "backup"; };\nannounce = { port = "lan0"; };'))
        tetherd.ctl("reload")
        time.sleep(0.3)
        assert kernel_routes(lab, "-6") == "" and SIP_VIP in kernel_routes(lab, "-4")
        assert [v["vip"] for v in tetherd.json("show", "announce")["vips"]] == [SIP_VIP]
        assert f"announce: withdrawing {VIP6} (no service)" in tetherd.log()
        tetherd.ctl("ha", "backup")
        time.sleep(0.3)
        assert kernel_routes(lab, "-4") == ""
    finally:
        assert tetherd.stop() == 0
