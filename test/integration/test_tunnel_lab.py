"""Tunnel forwarding end to end (tools/run --tunnel): the lab's backends on a subnet of their
own behind a router namespace, tetherd reaching them through it with `forwarding = "ipip"`,
then `"gue"`, and each backend decapsulating with tether's XDP program (backend/), holding
the VIPs on lo and answering the client directly. A short SIP, FTP and RTSP workload per
mode: nothing fails, every session stays on one backend, every backend's decapsulator
counted the mode's encapsulation, and what the router sent the backends was encapsulated,
never a plain packet to a VIP; and a TCP connection through the tunnel sends segments that
fit once wrapped (the backends' lowered MSS). One lab for both modes (the decapsulator takes both; the
backends' MSS is lowered for GUE, the larger overhead)."""
import socket
import types

import pytest

from conftest import created_lab
from lab import workload
from tetherlab.config import lab_config_tunnel
from tetherlab.topology import BACKENDS, CLIENT_ADDRESS, FTP_PORT, FTP_VIP, LAB_CONFIG, TUNNEL_OVERHEAD

SHORT = types.SimpleNamespace(calls=40, downloads=4, streams=2, seconds=3)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with created_lab(tmp_path_factory.mktemp("tunnel"), tunnel="gue") as lab:
        for name in BACKENDS:
            lab.start_sip_server(name, reinvite=True)
        lab.start_media_servers()
        # over both modes: each counts only its own encapsulation's frames, and a run of
        # tetherd sends only its mode's
        lab.start_link_capture()
        yield lab


@pytest.mark.parametrize("forwarding", ["ipip", "gue"])
def test_workload_through_tunnels_to_decapsulating_backends(lab, balancer, forwarding):
    config = lab.workdir / f"lab-{forwarding}.cfg"
    config.write_text(lab_config_tunnel(LAB_CONFIG.read_text(), forwarding))
    tetherd = balancer.ensure(config)
    before = lab.decap_counters()
    r = workload(lab, tetherd, SHORT)
    figures = {k: r[k] for k in ("calls", "calls_failed", "calls_split", "downloads", "downloads_failed",
                                 "streams", "streams_failed", "rtcp_misrouted")}
    assert r["calls"] > 0 and r["calls_failed"] == 0 and r["calls_split"] == 0, figures
    assert r["downloads_failed"] == 0 and r["streams_failed"] == 0 and r["rtcp_misrouted"] == 0, figures
    assert sum(r["rtsp_per_backend"].values()) >= SHORT.streams, figures
    assert sum(r["ftp_per_backend"].values()) >= SHORT.downloads, figures

    traffic = lab.tunnel_traffic(forwarding, before)
    other = "gue" if forwarding == "ipip" else "ipip"
    for name, t in traffic.items():
        # every backend got sessions (SIP 2:1:1 over 40 calls, health checks aside), wrapped
        assert t["encapsulated"] > 0, (name, traffic)
        assert t[f"decapsulated_{forwarding}"] >= t["encapsulated"], (name, traffic)
        assert t[f"decapsulated_{other}"] == 0, (name, traffic)
        assert t["malformed"] == 0, (name, traffic)
        assert t["plain to a VIP"] == 0, traffic


    # The client's segments toward a backend, wrapped, must fit the 1500-byte links: the MSS
    # it may send (TCP_MAXSEG, the backend's advertised MSS less options) is lowered by GUE's
    # overhead, the larger of the two.
    with lab.inside(lab.client):
        connection = socket.create_connection((FTP_VIP, FTP_PORT), timeout=5,
                                              source_address=(CLIENT_ADDRESS, 0))
    with connection:
        assert connection.recv(100).startswith(b"220")
        mss = connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    assert 1000 < mss <= 1500 - 20 - 20 - TUNNEL_OVERHEAD["gue"], mss
