"""The exception path on the real tetherd: a port's kernel interface (`kernel = { ... }`, a
net_tap device tetherd makes in its own network namespace) takes the frames tetherd does not
consume, and what the kernel answers leaves through the port. pcap in, pcap out: the kernel's
own ARP, ICMP and TCP answers appear in the port's output beside tetherd's."""
import json
import os
import subprocess
import time
import uuid

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from conftest import SERVICES, VIP_TCP, VIP_UDP
from harness import (CLIENT_MAC, PORT_IPV4, PORT_IPV6, PORT_MAC, config_text, pcap_device,
                     read_frames)
from tetherlab.tetherd import Tetherd, command_line, spawn_process

# Measures time or loads the machine itself: runs alone (pytest.ini).
pytestmark = pytest.mark.serial

CLIENT_IP = "192.0.2.50"
CLIENT_IP6 = "2001:db8::50"
ADDRESSES_TEXT = f'addresses = ["{PORT_IPV4}", "{PORT_IPV6}"];'


@pytest.fixture
def namespace():
    """A network namespace of its own: the kernel interface, and the kernel's answers,
    belong to it alone (no DAD delay for the IPv6 address: the test asks at once)."""
    name = f"ttk-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv6.conf.all.accept_dad=0"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def run_with_kernel(workdir, namespace, frames, kernel='name = "tk0";', idle_exit=2):
    """tetherd with the harness's port (PORT_IPV4/24 and PORT_IPV6/64 on its kernel
    interface) and SERVICES, in `namespace`, until the pcap is drained."""
    wrpcap(str(workdir / "in0.pcap"), frames, linktype=1)
    text = config_text(pcap_device(workdir, 1), SERVICES)
    assert ADDRESSES_TEXT in text
    text = text.replace(ADDRESSES_TEXT, f'addresses = ["{PORT_IPV4}/24", "{PORT_IPV6}/64"];'
                                        f" kernel = {{ {kernel} }};")
    config = workdir / "tetherd.cfg"
    config.write_text(text)
    stats = workdir / "stats.json"
    words = command_line(config, workdir / "tetherd.sock", stats_file=stats, idle_exit=idle_exit)
    run = subprocess.run(["ip", "netns", "exec", namespace, *words], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(stats.read_text()), [Ether(f) for f in read_frames(workdir / "out0.pcap")]


def test_virtio_user_needs_vhost_net(tmp_path, namespace):
    """driver = "virtio-user" makes the kernel interface with virtio-user over vhost-net:
    where the host has /dev/vhost-net the kernel answers for the port's address as with the
    TAP driver; where it has not (this machine), tetherd refuses to start and says why."""
    frames = [to_port(IP(src=CLIENT_IP, dst=PORT_IPV4) / ICMP(type=8, id=7, seq=1) / b"to the host")]
    if os.path.exists("/dev/vhost-net"):
        stats, out = run_with_kernel(tmp_path, namespace, frames, kernel='name = "tk0"; driver = "virtio-user";')
        assert stats["kernel"]["kernel_delivered"] == 1
        assert any(ICMP in p and p[ICMP].type == 0 and p[IP].src == PORT_IPV4 for p in out)
        return
    with pytest.raises(AssertionError, match="driver virtio-user needs /dev/vhost-net"):
        run_with_kernel(tmp_path, namespace, frames, kernel='name = "tk0"; driver = "virtio-user";')
    assert "tk0" not in subprocess.run(["ip", "-n", namespace, "link"], capture_output=True, text=True).stdout


def to_port(layer):
    return Ether(src=CLIENT_MAC, dst=PORT_MAC) / layer


def test_kernel_answers_for_its_addresses_and_tetherd_for_the_vips(tmp_path, namespace):
    frames = [
        Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT_IP, pdst=PORT_IPV4),  # the kernel's
        Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT_IP, pdst=VIP_TCP),  # tetherd's
        to_port(IP(src=CLIENT_IP, dst=PORT_IPV4) / ICMP(type=8, id=7, seq=1) / b"to the host"),
        to_port(IP(src=CLIENT_IP, dst=VIP_TCP) / ICMP(type=8, id=8, seq=1) / b"to the vip"),
        to_port(IP(src=CLIENT_IP, dst=PORT_IPV4) / TCP(sport=40000, dport=179, flags="S", seq=1000)),
        to_port(IP(src=CLIENT_IP, dst=VIP_UDP) / UDP(sport=5070, dport=5060) / b"not sip, forwarded"),
        # tetherd's own: an IP packet to a VIP port without a service is not the kernel's
        to_port(IP(src=CLIENT_IP, dst=VIP_TCP) / TCP(sport=40001, dport=22, flags="S")),
        # LLDP (not IP, not ARP): the kernel's
        Ether(src=CLIENT_MAC, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07\x04" + b"\x00" * 40),
        # IPv6: a neighbour solicitation for the port's address
        Ether(src=CLIENT_MAC, dst="33:33:ff:00:00:01")
        / IPv6(src=CLIENT_IP6, dst="ff02::1:ff00:1", hlim=255)
        / ICMPv6ND_NS(tgt=PORT_IPV6) / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC),
    ]
    stats, out = run_with_kernel(tmp_path, namespace, frames)
    from_port_ipv4 = [p for p in out if IP in p and p[IP].src == PORT_IPV4]
    kernel_arp = [p for p in out if ARP in p and p[ARP].op == 2 and p[ARP].psrc == PORT_IPV4]
    tether_arp = [p for p in out if ARP in p and p[ARP].op == 2 and p[ARP].psrc == VIP_TCP]
    assert len(kernel_arp) == 1 and kernel_arp[0][ARP].hwsrc == PORT_MAC and kernel_arp[0].src == PORT_MAC
    assert len(tether_arp) == 1
    echo = [p for p in from_port_ipv4 if ICMP in p and p[ICMP].type == 0]
    assert [(p[ICMP].id, bytes(p[ICMP].payload)) for p in echo] == [(7, b"to the host")]
    assert echo[0].dst == CLIENT_MAC and echo[0].src == PORT_MAC
    vip_echo = [p for p in out if ICMP in p and p[IP].src == VIP_TCP and p[ICMP].type == 0]
    assert [p[ICMP].id for p in vip_echo] == [8]
    resets = [p for p in from_port_ipv4 if TCP in p and p[TCP].sport == 179]
    assert len(resets) == 1 and "R" in resets[0][TCP].flags and resets[0][TCP].ack == 1001
    assert not any(TCP in p and p[TCP].sport == 22 for p in out)
    forwarded = [p for p in out if UDP in p and p[IP].dst == VIP_UDP]
    assert len(forwarded) == 1
    advertisements = [p for p in out if ICMPv6ND_NA in p and p[ICMPv6ND_NA].tgt == PORT_IPV6]
    assert len(advertisements) == 1 and advertisements[0].src == PORT_MAC

    # ARP request, echo, SYN, LLDP and NS went to the kernel; and nothing else did
    assert stats["counters"]["to_kernel"] == 5
    assert stats["kernel"]["kernel_delivered"] == 5
    assert stats["kernel"]["kernel_delivery_failed"] == 0
    # ARP reply, echo reply, RST, NA, and whatever the kernel announced of its own accord
    assert stats["kernel"]["kernel_sent"] >= 4
    assert stats["kernel"]["kernel_sent_dropped"] == 0
    assert stats["drops"]["no_service"] == 1  # the VIP's port 22
    assert stats["drops"]["kernel_rate_limited"] == 0
    # tetherd answered only for the VIP
    assert stats["counters"]["arp_replies"] == 1
    assert stats["counters"]["icmp_echo_replies"] == 1


def test_a_flood_toward_the_host_is_limited_while_vip_traffic_flows(tmp_path, namespace):
    """3,000 pings to the host address at once, beside 3,000 datagrams to a VIP and 15 ARP
    requests for the host address: the pings pass up to the burst (and the rate's share of
    the milliseconds the replay takes), every VIP datagram is forwarded, and every ARP
    request reaches the kernel, which answers it: neighbour discovery has an allowance of
    its own that a flood of anything else cannot use up."""
    flood = [to_port(IP(src=CLIENT_IP, dst=PORT_IPV4) / ICMP(type=8, id=9, seq=i)) for i in range(3000)]
    vip = [to_port(IP(src=CLIENT_IP, dst=VIP_UDP) / UDP(sport=6000 + i, dport=5060) / b"x")
           for i in range(3000)]
    frames = [f for pair in zip(flood, vip) for f in pair]
    for i in range(15):  # spread over the flood
        frames.insert(400 * i + 200, Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
                      / ARP(op=1, hwsrc=CLIENT_MAC, psrc=f"192.0.2.{60 + i}", pdst=PORT_IPV4))
    stats, out = run_with_kernel(tmp_path, namespace, frames, kernel='name = "tk0"; rate = 1000; burst = 20;')
    passed = stats["counters"]["to_kernel"] - 15
    limited = stats["drops"]["kernel_rate_limited"]
    assert passed + limited == 3000
    # the burst, and the rate's share of the time the replay took (milliseconds)
    assert 20 <= passed <= 200, passed
    assert stats["kernel"]["kernel_delivered"] == passed + 15
    answered = {p[ARP].pdst for p in out if ARP in p and p[ARP].op == 2 and p[ARP].psrc == PORT_IPV4}
    assert answered == {f"192.0.2.{60 + i}" for i in range(15)}
    assert len([p for p in out if UDP in p and p[IP].dst == VIP_UDP]) == 3000
    assert stats["counters"]["forwarded"] == 3000


def test_kernel_frames_larger_than_the_ports_buffers_leave_whole(tmp_path, namespace):
    """tables.mbuf_size sizes the ports' buffers and may be below the kernel interface's
    1500-byte MTU (the benchmark runs 128 and 1024): a datagram the kernel sends at the MTU
    (as a state sync message is: a 1442-byte frame) still leaves through the port, whole,
    beside a small one."""
    wrpcap(str(tmp_path / "in0.pcap"), [to_port(IP(src=CLIENT_IP, dst=VIP_UDP) / UDP(sport=5070, dport=5060) / b"x")],
           linktype=1)
    text = config_text(pcap_device(tmp_path, 1), SERVICES, extra_tables="mbuf_size = 512;")
    text = text.replace(ADDRESSES_TEXT, f'addresses = ["{PORT_IPV4}/24"]; kernel = {{ name = "tk0"; }};')
    config = tmp_path / "tetherd.cfg"
    config.write_text(text)
    inside = ["ip", "netns", "exec", namespace]
    tetherd = Tetherd(config, tmp_path / "tetherd.sock", stats_file=tmp_path / "stats.json",
                      spawn=lambda words, **kwargs: spawn_process(inside + list(map(str, words)), **kwargs))
    peer, payloads = "192.0.2.2", [b"s" * 100, b"L" * 1472]  # 1472: the most a 1500-byte MTU carries
    try:
        # the peer's MAC, so that the kernel sends at once, without ARP
        subprocess.run(["ip", "-n", namespace, "neigh", "replace", peer, "lladdr", "02:00:00:00:0b:02", "dev",
                        "tk0", "nud", "permanent"], check=True)
        send = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                f"[s.sendto(payload, ('{peer}', 9)) for payload in {payloads!r}]")
        subprocess.run(inside + ["/usr/bin/python3", "-c", send], check=True, timeout=30)
        deadline = time.monotonic() + 10
        while tetherd.json("show", "counters")["kernel"]["kernel_sent"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        tetherd.stop()
    to_peer = [p for p in (Ether(f) for f in read_frames(tmp_path / "out0.pcap")) if UDP in p and p[IP].dst == peer]
    assert [bytes(p[UDP].payload) for p in to_peer] == payloads, [len(p) for p in to_peer]
    assert [len(p) for p in to_peer] == [142, 1514]


def test_kernel_interface_settings_are_checked(tmp_path):
    base = config_text("net_null0", SERVICES)
    cases = {
        'name = "a-name-longer-than-15";': "must be 1 to 15 letters",
        'name = "tk0"; rate = 0;': "out of range",
        'name = "tk0"; colour = "red";': "unknown setting",
        'name = "tk0"; driver = "kni";': "'kni' is not one of: tap, virtio-user",
    }
    for kernel, message in cases.items():
        path = tmp_path / "bad.cfg"
        path.write_text(base.replace(ADDRESSES_TEXT, f"{ADDRESSES_TEXT} kernel = {{ {kernel} }};"))
        run = subprocess.run(command_line(path, tmp_path / "s.sock")[:3] + ["--check"],
                             capture_output=True, text=True)
        assert run.returncode == 1 and message in run.stderr, (kernel, run.stderr)
    path = tmp_path / "prefix.cfg"
    path.write_text(base.replace(ADDRESSES_TEXT, f'addresses = ["{PORT_IPV4}/33"];'))
    run = subprocess.run(command_line(path, tmp_path / "s.sock")[:3] + ["--check"], capture_output=True, text=True)
    assert run.returncode == 1 and "prefix length must be 1..32" in run.stderr, run.stderr
    path.write_text(base.replace(ADDRESSES_TEXT, f'addresses = ["{PORT_IPV4}/24"]; kernel = {{ name = "tk0"; }};'))
    run = subprocess.run(command_line(path, tmp_path / "s.sock")[:3] + ["--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f"{PORT_IPV4}/24" in run.stdout and "kernel interface tk0 (tap)" in run.stdout
