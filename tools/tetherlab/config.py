"""The one writer of tetherd configurations, for the lab, the tests and the benchmark.

Every caller describes what differs (its ports, backends, services, tables, EAL arguments)
and gets the same layout back, so a test can still find and replace a setting by its text
(`"workers = 1;"`, `'mac = "02:..";'`, `"} );\\nbackends"`).
"""
import re
from dataclasses import dataclass

from .topology import (BACKENDS, FTP_PASSIVE, FTP_VIP, KERNEL_INTERFACE, LAN_PREFIX, LB_ADDRESS,
                       LB_MAC, ROUTER_ADDRESS, RTSP_PORTS, RTSP_VIP, TAP_DEVICE, TUNNEL_BACKENDS,
                       TUNNEL_SOURCE)

# The EAL without hugepages, shared configuration files or PCI scans: what the lab and the
# tests run (tools/bench reserves hugepages when it can, see its Memory).
EAL_NO_HUGE = ("--no-huge", "--no-shconf", "--no-pci", "-m", "512", "--log-level=lib.*:error")
TABLES = {"flows_per_worker": 65536, "maglev_size": 65537}


@dataclass
class Kernel:
    """A port's exception path: the kernel interface tetherd creates, and the limit on the
    frames it hands that kernel (None: tetherd's defaults)."""
    name: str = KERNEL_INTERFACE
    rate: int = None  # frames a second, split between the workers
    burst: int = None


@dataclass
class Port:
    name: str
    device: str
    mac: str = None  # None: the device's own
    addresses: tuple = ()
    mbufs: int = None  # None: tables.mbufs_per_port
    kernel: Kernel = None  # None: no exception path
    settings: str = ""  # raw settings: mtu, gateways, routes, tunnel (README "Tunnel forwarding")


def port_text(port):
    text = f'{{ name = "{port.name}"; device = "{port.device}";'
    if port.mac:
        text += f' mac = "{port.mac}";'
    if port.addresses:
        text += "\n            addresses = [" + ", ".join(f'"{a}"' for a in port.addresses) + "];"
    if port.mbufs is not None:
        text += f" mbufs = {port.mbufs};"
    if port.kernel:
        settings = [f'name = "{port.kernel.name}";']
        settings += [f"{k} = {v};" for k, v in (("rate", port.kernel.rate), ("burst", port.kernel.burst))
                     if v is not None]
        text += "\n            kernel = { " + " ".join(settings) + " };"
    if port.settings:
        text += "\n            " + port.settings
    return text + " }"


def lab_port(workers=1, tap=False, kernel=None):
    """The lab's one port, with tetherd's MAC and address: net_af_packet on the lb namespace's
    eth0, or with tap=True the net_tap device TAP_DEVICE that the lab wires to eth0 (so the
    lb kernel sees none of the port's traffic) and, with `kernel` (a Kernel), the exception
    path, whose interface then owns LB_ADDRESS with the lab's prefix."""
    if not tap:
        return Port("lan0", f"net_af_packet0,iface=eth0,qpairs={workers}", LB_MAC, (LB_ADDRESS,), kernel=kernel)
    address = f"{LB_ADDRESS}/{LAN_PREFIX}" if kernel else LB_ADDRESS
    return Port("lan0", f"net_tap0,iface={TAP_DEVICE}", LB_MAC, (address,), kernel=kernel)


def lab_config_on_tap(text, kernel=None):
    """conf/lab.cfg's text (or another lab configuration's) with its port replaced by the
    net_tap port of lab_port, with the exception path `kernel` (a Kernel) or none. With the
    exception path, tetherd announces its VIPs there (`announce`, for bird/lb.conf)."""
    text = with_port(text, lab_port(tap=True, kernel=kernel))
    if kernel:
        text += '\nannounce = { port = "lan0"; };\n'
    return text


def with_port(text, port):
    """A lab configuration's text with its one port replaced by `port` (a Port)."""
    ports = re.compile(r"^ports = \(.*?^\);", re.M | re.S)
    assert len(ports.findall(text)) == 1, "one ports list expected"
    return ports.sub(lambda _m: f"ports = ( {port_text(port)} );", text)


def health_check_text(check):
    """`health_check` from a dict: type, interval, timeout, rise, fall (ms)."""
    return (f' health_check = {{ type = "{check["type"]}"; interval = {check["interval"]};'
            f' timeout = {check["timeout"]}; rise = {check["rise"]}; fall = {check["fall"]}; }};')


def service_text(service, health=None):
    """`service`: name, vip, port, protocol, weights {backend: weight}, optional raw `extra`
    settings and `health` (a dict for health_check_text; `health` applies when it has none).
    A weight may be raw settings instead, e.g. "weight = 1; passive_ports = [1, 2];"."""
    members = ", ".join(
        f'{{ name = "{b}"; {w if isinstance(w, str) else f"weight = {w};"} }}'
        for b, w in service["weights"].items())
    extra = service.get("extra", "")
    check = service.get("health", health)
    if check:
        extra += health_check_text(check)
    return (f'  {{ name = "{service["name"]}"; vip = "{service["vip"]}"; port = {service["port"]}; '
            f'protocol = "{service["protocol"]}"; {extra}\n    backends = ( {members} ); }}')


def config_text(ports, backends, services, workers=1, eal=EAL_NO_HUGE, tables=TABLES, extra_tables="",
                log_level=None, backend_port=None, health=None, extra=""):
    """A tetherd configuration.

    ports: Port list. backends: name -> (address, mac); a mac of None leaves it to ARP/ND;
    backend_port names the port every backend is reached through (needed with several
    ports). services: dicts for service_text, `health` their default health check. tables:
    setting -> value, then `extra_tables` as raw settings. `extra` is appended at the top
    level.
    """
    backend_lines = []
    for name, (address, mac) in backends.items():
        settings = [f'name = "{name}";', f'address = "{address}";']
        if mac:
            settings.append(f'mac = "{mac}";')
        if backend_port:
            settings.append(f'port = "{backend_port}";')
        backend_lines.append("  { " + " ".join(settings) + " }")
    table_settings = "".join(f"{k} = {v}; " for k, v in tables.items())
    eal_words = ", ".join(f'"{word}"' for word in eal)
    return (f"workers = {workers};\n"
            f"eal = [{eal_words}];\n"
            + (f'log_level = "{log_level}";\n' if log_level else "")
            + f"tables = {{ {table_settings}{extra_tables} }};\n"
            f"ports = ( " + ",\n          ".join(port_text(p) for p in ports) + " );\n"
            "backends = (\n" + ",\n".join(backend_lines) + "\n);\n"
            "services = (\n" + ",\n".join(service_text(s, health) for s in services) + "\n);\n"
            f"{extra}\n")


def lab_config_without_dpi(text):
    """The lab's control configuration: conf/lab.cfg's text with every service's dpi "none"
    and, as a flow-level balancer (LVS, Maglev) would be set up, a service on the VIP for
    every port the backends' FTP and RTSP servers can use (passive FTP data, RTP/RTCP),
    balanced over all backends. Only session awareness is missing."""
    text = re.sub(r'dpi = "\w+";', 'dpi = "none";', text)
    text = re.sub(r"\s*passive_ports = \[\d+, \d+\];", "", text)
    members = ", ".join(f'{{ name = "{b}"; }}' for b in BACKENDS)
    extra = []
    for vip, protocol, ranges, what in ((FTP_VIP, "tcp", FTP_PASSIVE, "ftp-data"),
                                        (RTSP_VIP, "udp", RTSP_PORTS, "rtp")):
        for first, last in ranges.values():
            for port in range(first, last + 1):
                extra.append(f'  {{ name = "{what}-{port}"; vip = "{vip}"; port = {port}; '
                             f'protocol = "{protocol}"; backends = ( {members} ); }}')
    end = text.rindex("\n);")
    return text[:end] + ",\n" + ",\n".join(extra) + text[end:]


def lab_config_tunnel(text, forwarding):
    """conf/lab.cfg's text for the tunnel lab: the backends at their addresses behind the
    router (TUNNEL_BACKENDS), the router as the port's gateway, TUNNEL_SOURCE its tunnels'
    outer source, every service's forwarding `forwarding` ("ipip" or "gue")."""
    for name, (address, _mac) in BACKENDS.items():
        old = f'{{ name = "{name}"; address = "{address}"; }}'
        assert old in text, old
        text = text.replace(old, f'{{ name = "{name}"; address = "{TUNNEL_BACKENDS[name][0]}"; }}')
    port_address = f'addresses = ["{LB_ADDRESS}"];'
    assert text.count(port_address) == 1
    text = text.replace(port_address, f'{port_address} gateways = ["{ROUTER_ADDRESS}"];\n'
                                      f'    tunnel = {{ sources = ["{TUNNEL_SOURCE}"]; }};')
    text, services = re.subn(r'(protocol = "\w+";)', rf'\1 forwarding = "{forwarding}";', text)
    assert services == 3, services
    return text
