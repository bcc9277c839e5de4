"""The active-standby pair, tetherd's side: with `ha` configured, a backup forwards nothing
and answers neither ARP/ND nor echo for a VIP (each counted as `ha_standby`) while it still
answers for its own port address; `tetherctl ha master` makes it forward and answer, and puts
gratuitous ARP and unsolicited neighbour advertisements for every VIP on the wire (checked
byte by byte); `ha backup` stops it again; `ha check` follows the workers and the release
flag; bad `ha` settings are refused with their line."""
import json
import subprocess

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap
from tetherlab.tetherd import command_line

from harness import (BACKENDS, CLIENT_MAC, PORT_IPV4, PORT_IPV6, PORT_MAC, TETHERCTL, TETHERD, config_text,
                     mac_bytes, pcap_device, read_frames, run_tetherd, run_tetherd_live)
from test_kernel_interface import namespace  # noqa: F401 (the fixture)

VIP, VIP6 = "192.0.2.150", "2001:db8::150"
CLIENT, CLIENT6 = "198.51.100.7", "2001:db8:1::7"
SERVICES = [
    {"name": "media", "vip": VIP, "port": 9000, "protocol": "udp", "weights": {"b1": 1, "b2": 1}},
    {"name": "media6", "vip": VIP6, "port": 9000, "protocol": "udp", "weights": {"b1": 1, "b2": 1}},
]
BACKEND_MACS = {mac_bytes(mac) for _address, mac in BACKENDS.values()}
ROUNDS = 3


def ha_text(initial="backup", count=ROUNDS, interval=50):
    return f'ha = {{ initial = "{initial}"; gratuitous = {{ count = {count}; interval = {interval}; }}; }};\n'


def datagrams(first_source_port, count=5):
    """UDP to each VIP, from source ports that tell the phases apart."""
    out = []
    for i in range(count):
        out.append(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=CLIENT, dst=VIP)
                   / UDP(sport=first_source_port + i, dport=9000) / b"media")
        out.append(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IPv6(src=CLIENT6, dst=VIP6)
                   / UDP(sport=first_source_port + i, dport=9000) / b"media")
    return [bytes(f) for f in out]


def arp_request(target, source=CLIENT):
    return bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
                 / ARP(op=1, hwsrc=CLIENT_MAC, psrc=source, pdst=target))


def solicitation(target):
    """A neighbour solicitation for VIP6, to its solicited-node group."""
    assert target == VIP6
    return bytes(Ether(src=CLIENT_MAC, dst="33:33:ff:00:01:50") / IPv6(src=CLIENT6, dst="ff02::1:ff00:150", hlim=255)
                 / ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC))


def echo(target, source=CLIENT):
    return bytes(Ether(src=CLIENT_MAC, dst=PORT_MAC) / IP(src=source, dst=target) / ICMP(id=7, seq=1))


def forwarded_sources(frames):
    """The source ports of the datagrams tetherd sent to a backend."""
    ports = []
    for frame in frames:
        if frame[:6] in BACKEND_MACS:
            packet = Ether(frame)
            ports.append(packet[UDP].sport)
    return ports


def arp_replies(frames, address):
    return [f for f in frames if ARP in Ether(f) and Ether(f)[ARP].op == 2 and Ether(f)[ARP].psrc == address]


def echo_replies(frames, address):
    return [f for f in frames
            if IP in Ether(f) and ICMP in Ether(f) and Ether(f)[IP].src == address and Ether(f)[ICMP].type == 0]


def solicited_advertisements(frames, address):
    return [f for f in frames if ICMPv6ND_NA in Ether(f) and Ether(f)[ICMPv6ND_NA].tgt == address
            and Ether(f)[ICMPv6ND_NA].S == 1]


# What a new master sends, as the RFCs spell them: RFC 5227's ARP announcement (a request
# with the VIP as sender and target, padded to the Ethernet minimum) and RFC 4861 7.2.6's
# unsolicited advertisement (override, to all-nodes, with our MAC as the target's).
GRATUITOUS_ARP = bytes(Ether(src=PORT_MAC, dst="ff:ff:ff:ff:ff:ff")
                       / ARP(op=1, hwsrc=PORT_MAC, psrc=VIP, hwdst="00:00:00:00:00:00", pdst=VIP)).ljust(60, b"\0")
UNSOLICITED_NA = bytes(Ether(src=PORT_MAC, dst="33:33:00:00:00:01")
                       / IPv6(src=VIP6, dst="ff02::1", hlim=255)
                       / ICMPv6ND_NA(R=0, S=0, O=1, tgt=VIP6) / ICMPv6NDOptDstLLAddr(lladdr=PORT_MAC))


def announcements(frames):
    return ([f for f in frames if f == GRATUITOUS_ARP], [f for f in frames if f == UNSOLICITED_NA])


def tetherctl(socket_path, *words):
    return subprocess.run([str(TETHERCTL), "-s", str(socket_path), "--timeout", "5", *words],
                          capture_output=True, text=True, timeout=20)


def ask(socket_path, *words):
    result = tetherctl(socket_path, "--json", *words)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_backup_forwards_nothing_and_answers_only_for_its_own_address(tmp_path):
    frames = (datagrams(10000) + [arp_request(VIP), solicitation(VIP6), echo(VIP), arp_request(PORT_IPV4),
                                  echo(PORT_IPV4)])
    result = run_tetherd(tmp_path, [frames], SERVICES, extra=ha_text())
    assert result.returncode == 0, result.stderr[-3000:]
    sent = result.frames
    assert forwarded_sources(sent) == []
    assert arp_replies(sent, VIP) == [] and echo_replies(sent, VIP) == []
    assert solicited_advertisements(sent, VIP6) == []
    assert announcements(sent) == ([], [])  # a backup claims nothing
    # The port's own address is this instance's, whatever the pair's state.
    assert len(arp_replies(sent, PORT_IPV4)) == 1
    assert len(echo_replies(sent, PORT_IPV4)) == 1
    assert result.drops("ha_standby") == 10 + 3
    assert result.counter("forwarded") == 0
    assert result.stats["ha"] == {"ha_transitions": 0, "ha_gratuitous_arp_sent": 0, "ha_unsolicited_na_sent": 0}
    assert "active-standby" in result.stdout  # the summary's section


def test_without_ha_nothing_changes(tmp_path):
    """The control run: standalone tetherd forwards and answers for the VIPs as always."""
    frames = datagrams(10000) + [arp_request(VIP), solicitation(VIP6), echo(VIP)]
    result = run_tetherd(tmp_path, [frames], SERVICES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(forwarded_sources(result.frames)) == sorted(list(range(10000, 10005)) * 2)
    assert len(arp_replies(result.frames, VIP)) == 1
    assert len(echo_replies(result.frames, VIP)) == 1
    assert len(solicited_advertisements(result.frames, VIP6)) == 1
    assert result.drops("ha_standby") == 0
    assert announcements(result.frames) == ([], [])


def test_configured_master_forwards_and_announces_at_start(tmp_path):
    result = run_tetherd(tmp_path, [datagrams(10000)], SERVICES, extra=ha_text("master", count=2, interval=20))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(forwarded_sources(result.frames)) == 10
    garp, na = announcements(result.frames)
    assert (len(garp), len(na)) == (2, 2)
    assert result.stats["ha"]["ha_gratuitous_arp_sent"] == 2
    assert result.stats["ha"]["ha_unsolicited_na_sent"] == 2
    assert result.drops("ha_standby") == 0


def test_master_backup_release_and_check_on_a_live_tetherd(tmp_path):
    seen = {}

    def as_backup(socket_path):
        seen["backup"] = ask(socket_path, "show", "ha")
        seen["check_backup"] = tetherctl(socket_path, "ha", "check")
        seen["drops_backup"] = ask(socket_path, "show", "counters")["drops"]["ha_standby"]
        became = ask(socket_path, "ha", "master")
        assert became["state"] == "master" and became["changed"] is True
        assert ask(socket_path, "ha", "master")["changed"] is False  # keepalived may repeat itself

    def as_master(socket_path):
        seen["master"] = ask(socket_path, "show", "ha")
        seen["drops_master"] = ask(socket_path, "show", "counters")["drops"]["ha_standby"]
        seen["release"] = tetherctl(socket_path, "ha", "release")
        seen["check_released"] = tetherctl(socket_path, "ha", "check")
        seen["check_released_json"] = tetherctl(socket_path, "--json", "ha", "check")
        seen["released"] = ask(socket_path, "show", "ha")
        seen["claim"] = tetherctl(socket_path, "ha", "claim")
        seen["check_claimed"] = tetherctl(socket_path, "ha", "check")
        seen["to_backup"] = tetherctl(socket_path, "ha", "backup")
        seen["show_text"] = tetherctl(socket_path, "show", "ha")

    def at_the_end(socket_path):
        seen["fault"] = ask(socket_path, "ha", "fault")
        seen["end"] = ask(socket_path, "show", "ha")
        seen["help"] = ask(socket_path, "help")["commands"]
        seen["bad"] = tetherctl(socket_path, "ha", "primary")

    phases = [datagrams(10000) + [arp_request(VIP), solicitation(VIP6)], as_backup,
              datagrams(20000) + [arp_request(VIP), solicitation(VIP6)], as_master,
              datagrams(30000) + [arp_request(VIP)], at_the_end]
    result = run_tetherd_live(tmp_path, phases, SERVICES, extra=ha_text())
    assert result.returncode == 0, result.stderr[-3000:]

    assert seen["backup"]["state"] == "backup" and seen["backup"]["forwarding"] is False
    assert seen["check_backup"].returncode == 0, seen["check_backup"]  # a healthy backup may take over
    assert seen["drops_backup"] == 10 + 2
    assert seen["master"]["state"] == "master" and seen["master"]["transitions"] == 1
    assert seen["master"]["gratuitous_arp_sent"] == ROUNDS
    assert seen["master"]["unsolicited_na_sent"] == ROUNDS
    assert seen["drops_master"] == seen["drops_backup"]  # nothing dropped while master

    # Only what was sent while master reached a backend, and all of it.
    assert sorted(forwarded_sources(result.frames)) == sorted(list(range(20000, 20005)) * 2)
    assert len(arp_replies(result.frames, VIP)) == 1
    assert len(solicited_advertisements(result.frames, VIP6)) == 1
    garp, na = announcements(result.frames)
    assert (len(garp), len(na)) == (ROUNDS, ROUNDS)

    # The graceful handover: still master, but the check fails until claimed back.
    assert seen["release"].returncode == 0, seen["release"].stderr
    assert seen["check_released"].returncode == 1
    assert "released" in seen["check_released"].stdout
    assert seen["check_released_json"].returncode == 1
    assert json.loads(seen["check_released_json"].stdout)["healthy"] is False
    assert seen["released"]["released"] is True and seen["released"]["forwarding"] is True
    assert seen["claim"].returncode == 0 and seen["check_claimed"].returncode == 0
    assert seen["to_backup"].returncode == 0 and seen["to_backup"].stdout == "backup\n"
    assert seen["show_text"].stdout.startswith("backup, not forwarding\n"), seen["show_text"].stdout

    assert seen["fault"]["state"] == "fault"
    assert seen["end"]["transitions"] == 3
    assert {"show ha", "ha master", "ha backup", "ha fault", "ha release", "ha claim",
            "ha check"} <= set(seen["help"])
    assert seen["bad"].returncode == 1 and "usage: show ha" not in seen["bad"].stderr
    assert "ha master" in seen["bad"].stderr  # the group's usage
    assert result.stats["drops"]["ha_standby"] == 10 + 2 + 10 + 1
    assert result.stats["ha"]["ha_transitions"] == 3
    log = result.stderr
    assert "ha: backup -> master by command" in log and "ha: master -> backup by command" in log


def test_ha_commands_on_a_standalone_tetherd(tmp_path):
    seen = {}

    def operate(socket_path):
        seen["master"] = tetherctl(socket_path, "ha", "master")
        seen["release"] = tetherctl(socket_path, "ha", "release")
        seen["show"] = ask(socket_path, "show", "ha")
        seen["check"] = tetherctl(socket_path, "ha", "check")

    result = run_tetherd_live(tmp_path, [operate, datagrams(10000)], SERVICES)
    assert result.returncode == 0, result.stderr[-3000:]
    for command in ("master", "release"):
        assert seen[command].returncode == 1
        assert "no 'ha' section in the configuration" in seen[command].stderr
    assert seen["show"] == {"enabled": False, "state": "standalone", "forwarding": True}
    assert seen["check"].returncode == 0, seen["check"].stdout
    assert len(forwarded_sources(result.frames)) == 10


def test_a_backup_keeps_its_kernel_interface(tmp_path, namespace):  # noqa: F811
    """With the exception path, a backup's kernel still gets VRRP and answers ARP and echo for
    the port's address: keepalived runs there whatever tetherd's state. The VIP is nobody's
    on this box: neither tetherd nor the kernel answers for it."""
    vrrp = (Ether(src=CLIENT_MAC, dst="01:00:5e:00:00:12")
            / IP(src=CLIENT, dst="224.0.0.18", ttl=255, proto=112) / bytes.fromhex("2133640100016c3ec0000296"))
    on_link = "192.0.2.50"  # the kernel answers on its /24 (and learnt its MAC from the ARP request)
    frames = ([arp_request(PORT_IPV4, on_link), echo(PORT_IPV4, on_link), vrrp, arp_request(VIP), echo(VIP)]
              + datagrams(10000, 1))
    wrpcap(str(tmp_path / "in0.pcap"), frames, linktype=1)
    text = config_text(pcap_device(tmp_path, 1), SERVICES) + ha_text()
    ports = f'addresses = ["{PORT_IPV4}", "{PORT_IPV6}"];'
    assert ports in text
    text = text.replace(ports, f'addresses = ["{PORT_IPV4}/24", "{PORT_IPV6}/64"]; kernel = {{ name = "tk0"; }};')
    (tmp_path / "tetherd.cfg").write_text(text)
    words = command_line(tmp_path / "tetherd.cfg", tmp_path / "tetherd.sock", stats_file=tmp_path / "stats.json",
                         idle_exit=2)
    run = subprocess.run(["ip", "netns", "exec", namespace, *words], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    out = read_frames(tmp_path / "out0.pcap")
    kernel_arp = arp_replies(out, PORT_IPV4)
    assert len(kernel_arp) == 1 and Ether(kernel_arp[0])[ARP].hwsrc == PORT_MAC
    assert len(echo_replies(out, PORT_IPV4)) == 1
    assert arp_replies(out, VIP) == [] and echo_replies(out, VIP) == []
    assert forwarded_sources(out) == []
    assert stats["counters"]["to_kernel"] == 3  # ARP, echo and VRRP
    assert stats["kernel"]["kernel_delivered"] == 3
    assert stats["drops"]["ha_standby"] == 2 + 2
    assert stats["counters"]["arp_replies"] == 0 and stats["counters"]["icmp_echo_replies"] == 0


@pytest.mark.parametrize("ha, message", [
    ('ha = { initial = "fault"; };', "ha.initial: 'fault' is not one of: backup, master"),
    ('ha = { initial = 1; };', "ha.initial: expected a string"),
    ('ha = { gratuitous = { count = 0; }; };', "ha.gratuitous.count: 0 is out of range 1..100"),
    ('ha = { gratuitous = { interval = 5; }; };', "ha.gratuitous.interval: 5 is out of range 10..10000"),
    ('ha = { gratuitous = { interval_ms = 200; }; };', "ha.gratuitous.interval_ms: unknown setting"),
    ('ha = { preempt = true; };', "ha.preempt: unknown setting"),
])
def test_bad_ha_settings_are_refused_with_their_line(tmp_path, ha, message):
    text = config_text("net_null0", SERVICES) + ha + "\n"
    path = tmp_path / "check.cfg"
    path.write_text(text)
    result = subprocess.run([str(TETHERD), "--check", "-c", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stdout
    line = len(text.splitlines())
    assert f"check.cfg:{line}: {message}" in result.stderr


def test_check_describes_the_pair(tmp_path):
    path = tmp_path / "check.cfg"
    path.write_text(config_text("net_null0", SERVICES) + ha_text(count=4, interval=300))
    result = subprocess.run([str(TETHERD), "--check", "-c", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert ("active-standby: starts as backup (forwards and answers for the VIPs only as master, "
            "as `tetherctl ha` sets it); on becoming master 4 round(s) of gratuitous ARP / "
            "unsolicited NA per VIP, 300 ms apart") in result.stdout
