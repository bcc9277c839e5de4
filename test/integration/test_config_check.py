"""Input that must be refused: `tetherd --check` on files with integers libconfig cannot
hold, meaningless addresses and MACs, services with nowhere to send and EAL arguments DPDK
would reject only at start; and the same rules on a running tetherd's `backend add` and
`backend weight`, through its control socket."""
import json
import socket
import subprocess

import pytest

from harness import (BACKENDS, PORT_IPV4, PORT_IPV6, PORT_MAC, TETHERD, config_text, start_tetherd)

VIP = "192.0.2.150"
SERVICES = [{"name": "media", "vip": VIP, "port": 9000, "protocol": "udp",
             "weights": {"b1": 1, "b2": 1, "b3": 1}}]


def check(tmp_path, text, *eal):
    """`tetherd --check` on `text` (and EAL arguments after `--`): (exit code, stdout, stderr)."""
    path = tmp_path / "check.cfg"
    path.write_text(text)
    command = [str(TETHERD), "--check", "-c", str(path)] + (["--", *eal] if eal else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    return result.returncode, result.stdout, result.stderr


def line_of(text, fragment):
    """The 1-based line of `text` holding `fragment` (its last)."""
    return max(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_the_harness_configuration_is_valid(tmp_path):
    code, out, err = check(tmp_path, config_text("net_null0", SERVICES))
    assert code == 0, err
    assert "valid" in out


@pytest.mark.parametrize("literal, shown", [
    ("4294967296", "4294967296"),     # libconfig 1.5 reads 0
    ("4294967297", "4294967297"),     # reads 1
    ("0x100000000", "4294967296"),    # hex, cut to 32 bits too
    ("99999999999999999999", "99999999999999999999"),  # beyond 64 bits
    ("4294967297L", "4294967297"),
    ("-4294967295", "-4294967295"),   # reads 1
])
def test_out_of_range_integers_are_refused_with_their_line(tmp_path, literal, shown):
    services = [dict(SERVICES[0], weights={"b1": 1, "b2": f"weight = {literal};", "b3": 1})]
    text = config_text("net_null0", services)
    code, out, err = check(tmp_path, text)
    assert code == 1, out
    line = line_of(text, literal)
    assert f"check.cfg:{line}: services.[0].backends.[1].weight: {shown} is out of range 0..65535" in err


def test_workers_beyond_32_bits_are_refused(tmp_path):
    text = config_text("net_null0", SERVICES).replace("workers = 1;", "workers = 4294967297;")
    code, out, err = check(tmp_path, text)
    assert code == 1, out
    assert "check.cfg:1: workers: 4294967297 is out of range 1..64" in err


def test_a_float_is_not_an_integer(tmp_path):
    text = config_text("net_null0", SERVICES).replace("workers = 1;", "workers = 1e3;")
    code, out, err = check(tmp_path, text)
    assert code == 1 and "check.cfg:1: workers: expected an integer" in err


def _replace_once(text, old, new):
    assert text.count(old) == 1, old
    return text.replace(old, new)


ADDRESS_CASES = {
    "vip unspecified": (f'vip = "{VIP}"', 'vip = "0.0.0.0"', "services.[0].vip: VIP 0.0.0.0 is unspecified"),
    "vip broadcast": (f'vip = "{VIP}"', 'vip = "255.255.255.255"',
                      "services.[0].vip: VIP 255.255.255.255 is the broadcast address"),
    "vip multicast": (f'vip = "{VIP}"', 'vip = "239.1.2.3"', "services.[0].vip: VIP 239.1.2.3 is multicast"),
    "vip ipv6 unspecified": (f'vip = "{VIP}"', 'vip = "::"', "services.[0].vip: VIP :: is unspecified"),
    "vip ipv6 multicast": (f'vip = "{VIP}"', 'vip = "ff0e::1"', "services.[0].vip: VIP ff0e::1 is multicast"),
    "vip loopback": (f'vip = "{VIP}"', 'vip = "127.0.0.1"', "services.[0].vip: VIP 127.0.0.1 is loopback"),
    "vip is the port's": (f'vip = "{VIP}"', f'vip = "{PORT_IPV4}"',
                          f"services.[0].vip: VIP {PORT_IPV4} is port 'lan0''s own address"),
    "vip is a backend's": (f'vip = "{VIP}"', f'vip = "{BACKENDS["b2"][0]}"',
                           f"services.[0].vip: VIP {BACKENDS['b2'][0]} is backend 'b2''s address"),
    "backend unspecified": (f'address = "{BACKENDS["b1"][0]}"', 'address = "0.0.0.0"',
                            "backends.[0].address: backend address 0.0.0.0 is unspecified"),
    "backend broadcast": (f'address = "{BACKENDS["b1"][0]}"', 'address = "255.255.255.255"',
                          "backends.[0].address: backend address 255.255.255.255 is the broadcast address"),
    "backend multicast": (f'address = "{BACKENDS["b1"][0]}"', 'address = "224.0.0.18"',
                          "backends.[0].address: backend address 224.0.0.18 is multicast"),
    "backend mac broadcast": (f'mac = "{BACKENDS["b1"][1]}"', 'mac = "ff:ff:ff:ff:ff:ff"',
                              "backends.[0].mac: backend MAC ff:ff:ff:ff:ff:ff is the broadcast MAC"),
    "backend mac zero": (f'mac = "{BACKENDS["b1"][1]}"', 'mac = "00:00:00:00:00:00"',
                         "backends.[0].mac: backend MAC 00:00:00:00:00:00 is all zeros"),
    "backend mac multicast": (f'mac = "{BACKENDS["b1"][1]}"', 'mac = "01:00:5e:00:00:12"',
                              "backends.[0].mac: backend MAC 01:00:5e:00:00:12 is a multicast MAC"),
    "backend mac is the port's": (f'mac = "{BACKENDS["b1"][1]}"', f'mac = "{PORT_MAC}"',
                                  f"backends.[0].mac: backend MAC {PORT_MAC} is port 'lan0''s own"),
    "duplicate port address": (f'addresses = ["{PORT_IPV4}",', f'addresses = ["{PORT_IPV4}", "{PORT_IPV4}",',
                               f"ports.[0].addresses.[1]: {PORT_IPV4} is listed twice"),
    "every weight 0": ('{ name = "b1"; weight = 1; }, { name = "b2"; weight = 1; }, { name = "b3"; weight = 1; }',
                       '{ name = "b1"; weight = 0; }, { name = "b2"; weight = 0; }, { name = "b3"; weight = 0; }',
                       "services.[0].backends: every backend has weight 0: nowhere to send"),
}


@pytest.mark.parametrize("case", sorted(ADDRESS_CASES))
def test_meaningless_addresses_are_refused_with_their_line(tmp_path, case):
    old, new, message = ADDRESS_CASES[case]
    text = _replace_once(config_text("net_null0", SERVICES), old, new)
    code, out, err = check(tmp_path, text)
    assert code == 1, out
    assert f"check.cfg:{line_of(text, new)}: {message}" in err


def test_duplicate_addresses_across_ports_are_refused(tmp_path):
    # (the ports are read first: the backends' missing `port` is never reached)
    text = _replace_once(config_text("net_null0", SERVICES), "} );\nbackends",
                         f'}}, {{ name = "lan1"; device = "net_null1";\n  addresses = ["{PORT_IPV4}"]; }} );\nbackends')
    code, out, err = check(tmp_path, text)
    assert code == 1, out
    line = line_of(text, 'name = "lan1"') + 1
    assert f"check.cfg:{line}: ports.[1].addresses.[0]: {PORT_IPV4} is port 'lan0''s address too" in err


class Control:
    """One command per connection to a running tetherd's socket, answered in JSON."""

    def __init__(self, path):
        self.path = str(path)

    def __call__(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.path)
            s.sendall(line.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def weights(self):
        services = self("show services")["services"]
        return {b["name"]: b["weight"] for b in services[0]["backends"]}


@pytest.fixture
def running(tmp_path):
    """A tetherd on net_null0 whose Maglev table (307 slots) holds at most 3 backends. No
    telemetry socket: another test's tetherd may hold the default one, and DPDK waits on it."""
    config = tmp_path / "tetherd.cfg"
    config.write_text(config_text("net_null0", SERVICES)
                      .replace("maglev_size = 65537", "maglev_size = 307")
                      .replace('"--no-pci",', '"--no-pci", "--no-telemetry",'))
    proc = start_tetherd(config, tmp_path / "s.sock")
    try:
        assert proc.poll() is None, proc.communicate()[1]
        yield Control(tmp_path / "s.sock")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_backend_add_refuses_what_a_file_may_not_hold(running):
    control = running
    good_mac = "02:00:00:00:01:04"
    refused = {
        "backend add b4 0.0.0.0 media mac " + good_mac: "backend address 0.0.0.0 is unspecified",
        "backend add b4 255.255.255.255 media mac " + good_mac: "is the broadcast address",
        "backend add b4 224.0.0.1 media mac " + good_mac: "backend address 224.0.0.1 is multicast",
        "backend add b4 ff02::1 media mac " + good_mac: "backend address ff02::1 is multicast",
        "backend add b4 :: media mac " + good_mac: "backend address :: is unspecified",
        f"backend add b4 {VIP} media mac {good_mac}": f"backend address {VIP} is the VIP of service 'media'",
        f"backend add b4 {PORT_IPV4} media mac {good_mac}": f"backend address {PORT_IPV4} is port 'lan0''s own",
        "backend add b4 192.0.2.14 media mac ff:ff:ff:ff:ff:ff": "backend MAC ff:ff:ff:ff:ff:ff is the broadcast MAC",
        "backend add b4 192.0.2.14 media mac 00:00:00:00:00:00": "is all zeros",
        "backend add b4 192.0.2.14 media mac 33:33:00:00:00:01": "is a multicast MAC",
        f"backend add b4 192.0.2.14 media mac {PORT_MAC}": f"backend MAC {PORT_MAC} is port 'lan0''s own",
        # 4 backends need 400 Maglev slots; the table has 307.
        f"backend add b4 192.0.2.14 media mac {good_mac}":
            "service 'media': tables.maglev_size 307 is below 100 x the service's 4 backends",
        f"backend add b4 192.0.2.14 media weight +5 mac {good_mac}": "weight must be a number",
    }
    for command, message in refused.items():
        answer = control(command)
        assert message in answer.get("error", ""), (command, answer)
    backends = [b["name"] for b in control("show backends")["backends"]]
    assert backends == ["b1", "b2", "b3"]

    # With room in the table (b3 leaves first), the same backend is welcome.
    assert control("backend remove b3")["ok"] is True
    assert control(f"backend add b4 192.0.2.14 media weight 2 mac {good_mac}")["ok"] is True
    assert control.weights() == {"b1": 1, "b2": 1, "b4": 2}


def test_backend_weight_takes_only_plain_decimal_digits(running):
    control = running
    for text in ["+5", "5x", "-0", "-1", "0x5", "000005", "65536", "4294967301", "99999999999999999999",
                 "5.0", "1e3", "\u0665"]:
        answer = control(f"backend weight b1 {text}")
        assert "weight must be a number from 0 to 65535" in answer.get("error", ""), (text, answer)
    assert control.weights() == {"b1": 1, "b2": 1, "b3": 1}
    assert control("backend weight b1 65535")["ok"] is True
    assert control("backend weight b2 00007")["ok"] is True
    assert control.weights() == {"b1": 65535, "b2": 7, "b3": 1}


def test_backend_weight_cannot_leave_a_service_with_nowhere_to_send(running):
    control = running
    assert control("backend weight b1 0")["ok"] is True
    assert control("backend weight b2 0")["ok"] is True
    answer = control("backend weight b3 0")
    assert "service 'media': every backend has weight 0: nowhere to send" in answer.get("error", ""), answer
    assert control.weights() == {"b1": 0, "b2": 0, "b3": 1}
    # Nor may removing the last weighted backend.
    answer = control("backend remove b3")
    assert "every backend has weight 0" in answer.get("error", ""), answer
    assert control.weights() == {"b1": 0, "b2": 0, "b3": 1}


@pytest.mark.parametrize("eal, message", [
    (["--no-such-option"], "unknown EAL option '--no-such-option'"),
    (["-q"], "unknown EAL option '-q'"),
    (["-m"], "EAL option '-m' needs a value"),
    (["--file-prefix"], "EAL option '--file-prefix' needs a value"),
    (["--no-pci=1"], "EAL option '--no-pci' takes no value"),
    (["--huge", "/mnt/huge"], "EAL option '--huge' is ambiguous"),
    (["--in-memory", "512"], "'512' is not an option"),
    (["--vdev", "net_null0"], "--vdev net_null0: port 'lan0' is this device; tetherd adds it"),
    (["-l", "0"], "-l 0 gives 1 lcore(s); tetherd needs 2 (the control thread and 1 worker(s))"),
    (["-l", "0-1", "-c", "0x3"], "-c after -l: give one of -c, -l and --lcores"),
    (["--proc-type=secondary"], "--proc-type secondary: tetherd runs as the primary process"),
])
def test_eal_arguments_on_the_command_line_are_judged(tmp_path, eal, message):
    code, out, err = check(tmp_path, config_text("net_null0", SERVICES), *eal)
    assert code == 1, out
    assert "(command line after '--'): " + message in err


def test_eal_arguments_in_the_file_are_judged_with_their_line(tmp_path):
    text = config_text("net_null0", SERVICES).replace('"-m", "512",', '"-m", "512", "--lcores=(0)@0",')
    code, out, err = check(tmp_path, text)
    assert code == 1, out
    assert ("check.cfg:2: eal.[5]: --lcores (0)@0 gives 1 lcore(s); tetherd needs 2 "
            "(the control thread and 1 worker(s))") in err


def test_good_eal_arguments_pass(tmp_path):
    code, out, err = check(tmp_path, config_text("net_null0", SERVICES),
                           "--lcores=(0-1)@0", "--file=tether-x", "-vd", "/usr/lib/dpdk")
    assert code == 0, err


def test_backend_add_refuses_the_port_devices_own_mac(tmp_path):
    """A port without `mac` uses its device's, which only the running tetherd knows."""
    import re
    config = tmp_path / "tetherd.cfg"
    config.write_text(_replace_once(config_text("net_null0", SERVICES), f'mac = "{PORT_MAC}";', "")
                      .replace('"--no-pci",', '"--no-pci", "--no-telemetry",'))
    proc = subprocess.Popen([str(TETHERD), "-c", str(config), "--socket", str(tmp_path / "s.sock")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        log = ""
        while "running:" not in log:
            line = proc.stderr.readline()
            assert line, log
            log += line
        device_mac = re.search(r"port lan0: DPDK port \d+, mac ([0-9a-f:]{17})", log).group(1)
        control = Control(tmp_path / "s.sock")
        answer = control(f"backend add b4 192.0.2.14 media mac {device_mac}")
        assert f"backend MAC {device_mac} is port 'lan0''s own" in answer.get("error", ""), answer
        assert control("backend add b4 192.0.2.14 media mac 02:00:00:00:01:04").get("ok") is True
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# Tunnel forwarding's settings (README "Tunnel forwarding"): (port settings, service settings,
# port addresses, the fragment whose line is blamed, the message).
ROUTE_TO = 'routes = ( { to = "198.51.100.0/24"; via = "192.0.2.254"; } );'
ROUTING_CASES = {
    "mtu below IPv6's minimum": ("mtu = 1000;", "", None, "mtu = 1000", "ports.[0].mtu: 1000 is out of range 1280..9216"),
    "gateway multicast": ('gateways = ["224.0.0.1"];', "", None, "gateways",
                          "ports.[0].gateways.[0]: 224.0.0.1 is multicast (224.0.0.0/4)"),
    "gateway is the port's": (f'gateways = ["{PORT_IPV4}"];', "", None, "gateways",
                              f"ports.[0].gateways.[0]: {PORT_IPV4} is port 'lan0''s own address"),
    "two IPv4 gateways": ('gateways = ["192.0.2.254", "192.0.2.253"];', "", None, "gateways",
                          "ports.[0].gateways.[1]: a second IPv4 gateway: one per family"),
    "gateway of a family the port lacks": ('gateways = ["2001:db8::fe"];', "", (PORT_IPV4,), "gateways",
                                           "ports.[0].gateways.[0]: port 'lan0' has no IPv6 address to ask "
                                           "neighbour discovery for 2001:db8::fe from"),
    "route with host bits": ('routes = ( { to = "198.51.100.1/24"; via = "192.0.2.254"; } );', "", None, "routes",
                             "ports.[0].routes.[0]: route to 198.51.100.1/24 has host bits set"),
    "route via the other family": ('routes = ( { to = "198.51.100.0/24"; via = "2001:db8::fe"; } );', "", None,
                                   "routes", "ports.[0].routes.[0]: route to 198.51.100.0/24 goes via "
                                             "2001:db8::fe, not of its family"),
    "route listed twice": ('routes = ( { to = "198.51.100.0/24"; via = "192.0.2.254"; },\n'
                           '  { to = "198.51.100.0/24"; via = "192.0.2.253"; } );', "", None,
                           'via = "192.0.2.253"', "ports.[0].routes.[1]: route to 198.51.100.0/24 is listed twice"),
    "route via the port's own": (f'routes = ( {{ to = "198.51.100.0/24"; via = "{PORT_IPV4}"; }} );', "", None,
                                 "routes", f"ports.[0].routes.[0]: route to 198.51.100.0/24: {PORT_IPV4} is port "
                                           "'lan0''s own address"),
    "tunnel source multicast": ('tunnel = { sources = ["239.0.0.1"]; };', "", None, "tunnel",
                                "ports.[0].tunnel: tunnel source 239.0.0.1 is multicast"),
    "two IPv6 tunnel sources": ('tunnel = { sources = ["2001:db8::2", "2001:db8::3"]; };', "", None, "tunnel",
                                "ports.[0].tunnel: a second IPv6 tunnel source: one per family"),
    "gue port 0": ("tunnel = { gue_port = 0; };", "", None, "gue_port",
                   "ports.[0].tunnel.gue_port: 0 is out of range 1..65535"),
    "unknown forwarding": ("", 'forwarding = "gre";', None, "forwarding",
                           "services.[0].forwarding: 'gre' is not one of: dsr, ipip, gue"),
    "dsr to a routed backend": ('routes = ( { to = "192.0.2.12/32"; via = "192.0.2.254"; } );',
                                'forwarding = "dsr";', None, "forwarding",
                                "services.[0].forwarding: backend 'b2' (192.0.2.12) is reached through 192.0.2.254: "
                                "DSR rewrites MACs only and needs its backends on port 'lan0''s segment"),
}


@pytest.mark.parametrize("case", sorted(ROUTING_CASES))
def test_tunnel_and_routing_settings_are_checked_with_their_line(tmp_path, case):
    port_settings, service_settings, addresses, blamed, message = ROUTING_CASES[case]
    services = [dict(SERVICES[0], extra=service_settings)]
    text = config_text("net_null0", services, port_settings=port_settings,
                       port_addresses=addresses or (PORT_IPV4, PORT_IPV6))
    code, out, err = check(tmp_path, text)
    assert code == 1, out
    assert f"check.cfg:{line_of(text, blamed)}: {message}" in err, err


def test_a_tunnel_needs_a_source_of_the_backends_family(tmp_path):
    backends = dict(BACKENDS, b1=("2001:db8:5::11", BACKENDS["b1"][1]))
    services = [dict(SERVICES[0], extra='forwarding = "ipip";')]
    text = config_text("net_null0", services, backends=backends, port_addresses=(PORT_IPV4,))
    code, out, err = check(tmp_path, text)
    assert code == 1, out
    assert (f"check.cfg:{line_of(text, 'forwarding')}: services.[0].forwarding: backend 'b1' (2001:db8:5::11) "
            "needs an IPv6 tunnel source on port 'lan0'") in err, err
    # An IPv6 source for it: the IPv6 packets' tunnel is fine from an IPv4-only port's other settings.
    text = config_text("net_null0", services, backends=backends, port_addresses=(PORT_IPV4,),
                       port_settings='tunnel = { sources = ["2001:db8:5::1"]; };')
    code, out, err = check(tmp_path, text)
    assert code == 0, err


def test_routed_backends_with_tunnels_are_valid_and_described(tmp_path):
    backends = dict(BACKENDS, b3=("198.51.100.13", None))
    services = [dict(SERVICES[0], extra='forwarding = "gue";'),
                dict(SERVICES[0], name="tunnelled", port=9001, extra='forwarding = "ipip";')]
    settings = ('mtu = 9000; gateways = ["192.0.2.254"]; ' + ROUTE_TO.replace("192.0.2.254", "192.0.2.253") +
                ' tunnel = { sources = ["192.0.2.2"]; gue_port = 19523; };')
    code, out, err = check(tmp_path, config_text("net_null0", services, backends=backends, port_settings=settings))
    assert code == 0, err
    assert ("mtu 9000  gateway 192.0.2.254  route 198.51.100.0/24 via 192.0.2.253  tunnel source 192.0.2.2  "
            "tunnel source 2001:db8::1  gue port 19523") in out, out
    assert "b3  198.51.100.13  mac (by ARP)  via lan0 (next hop 192.0.2.253)" in out, out
    assert "forwarding gue" in out and "forwarding ipip" in out, out
