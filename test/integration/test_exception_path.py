"""The exception path end to end, in the lab's net_tap variant (tools/tetherlab, Lab(tap=True)).

tetherd's port is a net_tap device wired by tc to the lb namespace's veth, so the lb
namespace's kernel sees nothing of the port's traffic (unlike net_af_packet, where the
kernel gets a copy of every frame) except what tetherd's kernel interface (`kernel = {
name = "lan0"; }`, owning 198.18.0.1/24) hands it. Through that one path the client pings
198.18.0.1 and opens a TCP connection to a server the lb kernel runs there, and bird2 in the
lb namespace holds a BGP session with bird2 in a router namespace, which installs the VIPs'
host routes tetherd announces. A flood toward 198.18.0.1 is cut to the interface's rate
(kernel_rate_limited) while SIP calls through the VIP complete. The control run without
`kernel` shows the kernel deaf: tetherd answers the ping itself and TCP gets no answer, even
with the address on the kernel's own veth.
"""
import collections
import contextlib
import time

import pytest

from conftest import created_lab
from tetherlab.config import Kernel, lab_config_on_tap
from tetherlab.fragments import fragmented_calls
from tetherlab.namespaces import run
from tetherlab.topology import (ANNOUNCED_PREFIX, BACKENDS, FTP_VIP, LAB_CONFIG, LAN_PREFIX, LB_ADDRESS,
                                RTSP_VIP, SIP_VIP)
from tetherlab.workloads import Calls, Flood, Streams, ftp_downloads

# Measures time or loads the machine itself: runs alone (pytest.ini).
pytestmark = pytest.mark.serial

# A low limit, so that a flood a Python process can send is well above it.
KERNEL = Kernel(rate=1000, burst=100)
HOST_PORT = 8000  # the lb kernel's HTTP server on 198.18.0.1 (below tetherd's probe ports)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The net_tap lab with every backend's servers (sipp's UAS, vsftpd, gst-rtsp-server)
    and BIRD in the router and lb namespaces (the session comes up once tetherd runs)."""
    with created_lab(tmp_path_factory.mktemp("taplab"), tap=True) as lab:
        for name in BACKENDS:
            lab.start_sip_server(name)
        lab.start_media_servers()
        lab.start_birds()
        yield lab


def use_tap_config(balancer, lab, kernel):
    """tetherd on conf/lab.cfg with its port on net_tap, with the exception path `kernel`
    or without one."""
    path = lab.workdir / ("lab-tap-kernel.cfg" if kernel else "lab-tap.cfg")
    path.write_text(lab_config_on_tap(LAB_CONFIG.read_text(), kernel))
    return balancer.ensure(path)


@pytest.fixture
def with_kernel(balancer, lab):
    return use_tap_config(balancer, lab, KERNEL)


@pytest.fixture
def without_kernel(balancer, lab):
    return use_tap_config(balancer, lab, None)


@contextlib.contextmanager
def host_server(lab):
    """python3 -m http.server in the lb namespace on LB_ADDRESS:HOST_PORT serving one file
    whose text is the lab's tag; yields the file's URL."""
    root = lab.workdir / "www"
    root.mkdir(exist_ok=True)
    (root / "host.txt").write_text(lab.tag)
    proc = lab.popen(lab.lb, ["/usr/bin/python3", "-m", "http.server", "--bind", LB_ADDRESS,
                              "--directory", root, HOST_PORT])
    try:
        lab.wait_for_socket(lab.lb, "tcp", HOST_PORT, proc)
        yield f"http://{LB_ADDRESS}:{HOST_PORT}/host.txt"
    finally:
        lab.stop(proc)


def fetch(lab, ns, url, timeout=5):
    """curl in namespace `ns`: (exit code, body)."""
    result = run("ip", "netns", "exec", ns, "curl", "-sS", "--connect-timeout", timeout,
                 "--max-time", timeout, url, check=False)
    return result.returncode, result.stdout


def ping(lab, count=3):
    return run("ip", "netns", "exec", lab.client, "ping", "-n", "-c", count, "-i", "0.2", "-W", "2",
               LB_ADDRESS, check=False)


def counter_deltas(before, after):
    """The growth of the counters this file watches, between two `show counters`."""
    pick = {
        "to_kernel": lambda c: c["counters"]["to_kernel"],
        "icmp_echo_replies": lambda c: c["counters"]["icmp_echo_replies"],
        "kernel_rate_limited": lambda c: c["drops"]["kernel_rate_limited"],
        "kernel_ring_full": lambda c: c["drops"]["kernel_ring_full"],
        "kernel_delivered": lambda c: c["kernel"]["kernel_delivered"],
        "kernel_sent": lambda c: c["kernel"]["kernel_sent"],
    }
    return {name: value(after) - value(before) for name, value in pick.items()}


def test_vip_clients_work_over_net_tap(lab, with_kernel):
    """SIP calls, passive FTP downloads and an RTSP stream through the VIPs, all at once,
    all succeed with tetherd's port on net_tap and the exception path configured."""
    calls = Calls(lab, "tap", 100, 50)
    streams = Streams(lab, 1, "tap", seconds=3)
    transfers = ftp_downloads(lab, 6, "tap")
    assert [t for t in transfers if not t[2]] == []
    received = streams.wait()
    assert all(n >= 0.6 * 3 * 8000 for n in received), received
    assert calls.wait() == (0, 100, 0), (lab.workdir / "uac-tap.err").read_text()[-2000:]


def test_sip_invites_fragmented_at_the_client_mtu(lab, with_kernel):
    """Calls whose INVITE (2.2 KB: 1 KB of headers before the Call-ID, a 30-codec SDP) the
    client's kernel sends in three IP fragments over a path MTU of 1000 (tools/run
    --fragments' workload): tetherd reassembles each to read its Call-ID, forwards the
    fragments to the call's backend, and every call completes there, the one client socket's
    calls spread over the backends. On net_tap: net_af_packet's fanout has the lb kernel
    reassemble fragments before tetherd sees them."""
    figures = fragmented_calls(lab, with_kernel, calls=40)
    assert figures["result"] == (0, 40, 0), figures["errors"].read_text()[-2000:]
    placed = {}
    for call_id, backends in figures["placement"].items():
        assert len(backends) == 1, (call_id, backends)
        (backend, methods), = backends.items()
        assert {"INVITE", "ACK", "BYE"} <= set(methods), (call_id, methods)
        placed[call_id] = backend
    assert len(placed) == 40 and len(set(placed.values())) >= 2, collections.Counter(placed.values())
    assert figures["counters"]["fragments_reassembled"] >= 40
    assert figures["counters"]["fragments_followed"] >= 2 * 40


def test_host_address_answers_through_the_kernel(lab, with_kernel):
    """From the client, ping and a TCP connection reach 198.18.0.1, owned by the lb
    kernel's lan0: the kernel, not tetherd, answers the pings, and the frames went to it and
    back through tetherd's exception path."""
    before = with_kernel.json("show", "counters")
    pinged = ping(lab)
    assert pinged.returncode == 0, pinged.stdout + pinged.stderr
    with host_server(lab) as url:
        assert fetch(lab, lab.client, url) == (0, lab.tag)
    grown = counter_deltas(before, with_kernel.json("show", "counters"))
    assert grown["icmp_echo_replies"] == 0, grown  # the kernel answered, not tetherd
    assert grown["to_kernel"] >= 3 + 3 and grown["kernel_delivered"] >= 3 + 3, grown  # echo, SYN/ACK/GET...
    assert grown["kernel_sent"] >= 3 + 3, grown  # echo replies, SYN-ACK, the answer...
    print(f"\nexception path: ping and HTTP to {LB_ADDRESS} answered by the lb kernel; {grown}")


def test_bgp_session_through_the_exception_path(lab, with_kernel):
    """bird2 in tetherd's namespace (over lan0) and bird2 in the router namespace reach
    Established, and the router's kernel holds a host route to each of conf/lab.cfg's VIPs
    via 198.18.0.1 from BIRD (tetherd announces them: `announce`, README "Announcing the
    VIPs by BGP"), and nothing else within the VIPs' prefix."""
    for bird in lab.birds.values():
        bird.wait_established(30)
    vips = (SIP_VIP, FTP_VIP, RTSP_VIP)
    deadline = time.monotonic() + 10
    while not all("proto bird" in lab.router_route(vip) for vip in vips):  # written after the update
        assert time.monotonic() < deadline, lab.router_route()
        time.sleep(0.1)
    for vip in vips:
        route = lab.router_route(vip)
        assert route.startswith(f"{vip} via {LB_ADDRESS} ") and "proto bird" in route, route
    routes = lab.router_route().splitlines()
    assert len(routes) == len(vips) and not any(r.startswith(ANNOUNCED_PREFIX) for r in routes), routes
    print(f"\nlb namespace: birdc show protocols\n{lab.birds['lb'].protocols()}"
          f"router namespace:\n{lab.router_route()}")


def test_flood_to_host_address_is_limited_while_vip_calls_complete(lab, with_kernel):
    """A UDP flood of 10,000 datagrams a second toward 198.18.0.1 for 3 s: what reaches the
    kernel stays within the interface's rate and burst, the rest is dropped and counted
    (kernel_rate_limited), and SIP calls placed through the VIP meanwhile all complete."""
    before, start = with_kernel.json("show", "counters"), time.monotonic()
    calls = Calls(lab, "flood", 150, 50)
    flood = Flood(lab, LB_ADDRESS, rate=10000, seconds=3)
    sent = flood.wait()
    assert calls.wait() == (0, 150, 0), (lab.workdir / "uac-flood.err").read_text()[-2000:]
    grown = counter_deltas(before, with_kernel.json("show", "counters"))
    elapsed = time.monotonic() - start
    assert sent >= 10000, sent
    assert grown["kernel_rate_limited"] >= sent // 2, (sent, grown)
    assert grown["to_kernel"] <= KERNEL.rate * elapsed + KERNEL.burst, (elapsed, grown)
    assert grown["kernel_ring_full"] == 0, grown  # the limit stops the flood, not the ring
    print(f"\nflood: {sent} datagrams in 3 s, {grown['to_kernel']} to the kernel in {elapsed:.1f} s, "
          f"{grown['kernel_rate_limited']} dropped by the limit; 150 calls through the VIP completed")


def seconds_to_resolve(lab, limit):
    """The client forgets 198.18.0.1's MAC and pings it once: the seconds until it has
    resolved it again (`limit` at most)."""
    run("ip", "-n", lab.client, "neigh", "flush", "to", LB_ADDRESS)
    run("ip", "netns", "exec", lab.client, "ping", "-n", "-c", "1", "-W", "0.01", LB_ADDRESS, check=False)
    start = time.monotonic()
    while "lladdr" not in run("ip", "-n", lab.client, "neigh", "show", LB_ADDRESS).stdout:
        if time.monotonic() - start > limit:
            break
        time.sleep(0.02)
    return time.monotonic() - start


def test_vip_next_hop_resolves_during_a_flood(lab, with_kernel):
    """While another station (the router namespace) floods 198.18.0.1 at 20 times the
    interface's rate, the client, whose ARP entry for 198.18.0.1 expired (as an upstream
    router's does), resolves it again within half a second, as it does at once without the
    flood; else the VIP traffic it routes via 198.18.0.1 stops meanwhile. Here it took 1 to
    more than 4 s in five tries while its ARP requests shared the limit with the flood; now
    neighbour discovery draws on an allowance of its own."""
    assert seconds_to_resolve(lab, 2) < 0.5  # without the flood
    flood = Flood(lab, LB_ADDRESS, rate=20 * KERNEL.rate, seconds=4, ns=lab.router)
    try:
        time.sleep(1)
        assert seconds_to_resolve(lab, 2) < 0.5
    finally:
        flood.wait()


def test_without_kernel_the_lb_kernel_hears_nothing(lab, without_kernel):
    """Without `kernel` (the control run): tetherd answers the ping to 198.18.0.1 itself, and
    TCP to it gets no answer although the lb kernel holds 198.18.0.1 on its veth and a server
    listens there: over net_tap only the exception path lets that kernel speak."""
    run("ip", "-n", lab.lb, "addr", "add", f"{LB_ADDRESS}/{LAN_PREFIX}", "dev", "eth0")
    try:
        with host_server(lab) as url:
            assert fetch(lab, lab.lb, url) == (0, lab.tag)  # it does listen
            before = without_kernel.json("show", "counters")
            pinged = ping(lab)
            assert pinged.returncode == 0, pinged.stdout + pinged.stderr
            code, _body = fetch(lab, lab.client, url, timeout=3)
            assert code != 0
            grown = counter_deltas(before, without_kernel.json("show", "counters"))
            assert grown["icmp_echo_replies"] >= 3 and grown["to_kernel"] == 0, grown
    finally:
        run("ip", "-n", lab.lb, "addr", "del", f"{LB_ADDRESS}/{LAN_PREFIX}", "dev", "eth0")
