"""tether's lab: tetherd in front of real servers in network namespaces, played by real
clients. tools/run (tools/lab.py) plays it, tools/bench and the integration tests start
tetherd and write its configuration through it.

    topology    the lab's addresses, VIPs, ports and per-backend port ranges
    config      the one tetherd configuration writer
    tetherd     the one tetherd launcher, and tetherctl
    namespaces  the network namespaces on one bridge, the processes started in them
    servers     the backends' server programs and their logs' formats
    lab         Lab: the namespaces, their servers and the lab's tetherd
    routing     BIRD (configurations in bird/) for the net_tap variant's BGP session
    workloads   the clients: SIP calls, FTP downloads, RTSP streams
    failover    the active-standby pair (keepalived), its failover scenario and probe
    tier        N active instances behind the router (BGP, ECMP), their scenario

It lives beside the scripts that use it: Python puts a script's own folder on sys.path, so
tools/lab.py and tools/bench.py import it as they are; pytest.ini adds tools/ for the tests.
"""
