"""The Debian package and tetherd under systemd (README "Installing the package").

tools/package builds build/tether_*.deb (and build/tether-decap_*.deb, for the backends)
from the release build; the tests read their file lists and control fields, extract them
into a scratch root and run the installed tetherd on the installed sample configuration and
the installed tether-decap on a veth, run lintian on both, and verify the installed unit with
systemd-analyze. systemd is not PID 1 here, so the unit is not started: tetherd's side of
Type=notify and WatchdogSec= is tested by running the packaged tetherd with NOTIFY_SOCKET
pointed at a datagram socket of the test's, as systemd would, and a worker thread is
stopped with ptrace to see the watchdog's pets stop while the rest of tetherd runs.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SERVICES
from harness import REPO, config_text
from tetherlab.tetherd import Tetherd, spawn_process

EXPECTED_FILES = {
    "etc/tether/tether.cfg",
    "lib/systemd/system/tetherd.service",
    "usr/lib/sysctl.d/60-tether-hugepages.conf",
    "usr/sbin/tetherctl",
    "usr/sbin/tetherd",
    "usr/share/bash-completion/completions/tetherctl",
    "usr/share/doc/tether/changelog.gz",
    "usr/share/doc/tether/copyright",
    "usr/share/man/man5/tether.cfg.5.gz",
    "usr/share/man/man8/tetherctl.8.gz",
    "usr/share/man/man8/tetherd.8.gz",
    "usr/share/tether/grafana/tether.json",
}
# The package for the backends of ipip and gue services (README "The XDP decapsulator on the
# backends").
DECAP_FILES = {
    "usr/lib/tether/tether_decap.bpf.o",
    "usr/sbin/tether-decap",
    "usr/share/doc/tether-decap/changelog.gz",
    "usr/share/doc/tether-decap/copyright",
    "usr/share/lintian/overrides/tether-decap",
    "usr/share/man/man8/tether-decap.8.gz",
}


@pytest.fixture(scope="module")
def package():
    """tools/package's .deb (built once for the module)."""
    result = subprocess.run([str(REPO / "tools" / "package")], cwd=REPO, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    debs = sorted((REPO / "build").glob("tether_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="module")
def decap_package(package):
    """tools/package's other .deb, tether-decap (built by the same run)."""
    debs = sorted((REPO / "build").glob("tether-decap_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="module")
def installed(package, decap_package, tmp_path_factory):
    """Both packages extracted into a scratch root, as dpkg would install their files."""
    root = tmp_path_factory.mktemp("root")
    for deb in (package, decap_package):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def field(package, name):
    return subprocess.run(["dpkg-deb", "-f", str(package), name], capture_output=True, text=True,
                          check=True).stdout.strip()


def file_list(deb):
    """path -> (mode, owner) of the package's files (not its directories)."""
    files = {}
    for line in subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        mode, owner, _size, _date, _time, path = line.split(None, 5)
        if not mode.startswith("d"):
            files[path.removeprefix("./")] = (mode, owner)
    return files


def test_file_list_owners_and_conffiles(package, tmp_path):
    files = file_list(package)
    assert set(files) == EXPECTED_FILES
    assert all(owner == "root/root" for _mode, owner in files.values())
    assert files["usr/sbin/tetherd"][0] == "-rwxr-xr-x" and files["usr/sbin/tetherctl"][0] == "-rwxr-xr-x"
    assert files["etc/tether/tether.cfg"][0] == "-rw-r--r--"
    # The operator's edits of the sample configuration survive upgrades.
    subprocess.run(["dpkg-deb", "-e", str(package), str(tmp_path / "control")], check=True)
    assert (tmp_path / "control" / "conffiles").read_text().split() == ["/etc/tether/tether.cfg"]
    assert field(package, "Package") == "tether"


def test_depends_are_the_runtime_libraries(package):
    """dpkg-shlibdeps wrote Depends from the libraries the programs link: DPDK's, libconfig,
    Boost.Program_options, Hyperscan, OpenSSL, cpp-httplib, libsystemd; with DPDK's ring mempool, a plugin
    no port opens without. No development package. apt resolves them from the configured
    mirror (simulated, without taking apt's lock: nothing is installed)."""
    depends = [alternative.split()[0] for part in field(package, "Depends").split(",")
               for alternative in part.split("|")]
    for library in ("librte-eal23", "librte-ethdev23", "librte-mempool-ring23", "libconfig++9v5", "libhyperscan5",
                    "libssl3", "libsystemd0", "libc6", "libstdc++6"):
        assert library in depends, depends
    assert any(name.startswith("libboost-program-options") for name in depends), depends
    assert any(name.startswith("libcpp-httplib") for name in depends), depends  # metrics.listen
    assert not [name for name in depends if name.endswith("-dev")]
    simulated = subprocess.run(["apt-get", "install", "-s", "-q", "-o", "Debug::NoLocking=1", str(package)], capture_output=True,
                               text=True, timeout=120)
    assert simulated.returncode == 0, simulated.stdout[-2000:] + simulated.stderr[-2000:]
    installs = re.findall(r"^Inst (\S+)", simulated.stdout, re.M)
    assert "tether" in installs and not [name for name in installs if name.endswith("-dev")]


def test_decap_package_files_and_depends(decap_package, tmp_path):
    """tether-decap: the script, the XDP program and its page; it depends on what the script
    runs (python3, ip, bpftool) and on nothing of tetherd's, and installs no configuration, no
    unit, no hugepages reservation and no maintainer script."""
    files = file_list(decap_package)
    assert set(files) == DECAP_FILES
    assert all(owner == "root/root" for _mode, owner in files.values())
    assert files["usr/sbin/tether-decap"][0] == "-rwxr-xr-x"
    assert files["usr/lib/tether/tether_decap.bpf.o"][0] == "-rw-r--r--"
    assert field(decap_package, "Package") == "tether-decap"
    depends = [part.split()[0] for part in field(decap_package, "Depends").split(",")]
    assert depends == ["python3:any", "iproute2", "bpftool"], depends
    subprocess.run(["dpkg-deb", "-e", str(decap_package), str(tmp_path / "control")], check=True)
    assert sorted(p.name for p in (tmp_path / "control").iterdir()) == ["control", "md5sums"]
    simulated = subprocess.run(["apt-get", "install", "-s", "-q", "-o", "Debug::NoLocking=1", str(decap_package)],
                               capture_output=True, text=True, timeout=120)
    assert simulated.returncode == 0, simulated.stdout[-2000:] + simulated.stderr[-2000:]
    installs = re.findall(r"^Inst (\S+)", simulated.stdout, re.M)
    assert "tether-decap" in installs and not [n for n in installs if n.startswith(("librte", "tether "))], installs


def test_installed_decap_attaches_its_installed_program(installed):
    """The installed tether-decap finds the installed XDP program by itself (/usr/sbin ->
    /usr/lib/tether/), attaches it to a veth in a namespace of its own, reads its counters and
    detaches it."""
    from tetherlab.namespaces import remove_namespace, remove_stale_labs, run
    remove_stale_labs()
    ns = f"tte2e-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}-pkg"
    run("ip", "netns", "add", ns)
    try:
        run("ip", "-n", ns, "link", "add", "dec0", "type", "veth", "peer", "name", "inj0")
        run("ip", "-n", ns, "link", "set", "dec0", "up")

        def decap(*words):
            return run("ip", "netns", "exec", ns, "/usr/bin/python3", str(installed / "usr/sbin/tether-decap"),
                       *words).stdout
        assert decap("attach", "dec0", "--mode", "generic", "--gue-port", "6635") == \
            "tether-decap: tether_decap.bpf.o on dec0 (xdpgeneric)\n"
        link = run("ip", "-n", ns, "-d", "link", "show", "dev", "dec0").stdout
        assert "xdpgeneric" in link and "prog/xdp id" in link, link
        assert json.loads(decap("counters", "dec0", "--json")) == {
            "decapsulated_ipip": 0, "decapsulated_gue": 0, "not_tunnelled": 0, "malformed": 0}
        decap("detach", "dec0")
        assert "prog/xdp" not in run("ip", "-n", ns, "-d", "link", "show", "dev", "dec0").stdout
    finally:
        remove_namespace(ns)


def test_installed_tetherd_checks_the_installed_configuration(installed):
    result = subprocess.run([str(installed / "usr/sbin/tetherd"), "--check", "-c",
                             str(installed / "etc/tether/tether.cfg")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "services:" in result.stdout
    version = subprocess.run([str(installed / "usr/sbin/tetherctl"), "--help"], capture_output=True,
                             text=True, timeout=10)
    assert version.returncode == 0 and "Usage: tetherctl" in version.stdout


def test_unit_runs_the_installed_files(installed):
    unit = (installed / "lib/systemd/system/tetherd.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert settings["Type"] == "notify"
    assert settings["ExecStart"] == "/usr/sbin/tetherd -c /etc/tether/tether.cfg"
    assert settings["ExecReload"] == "/usr/sbin/tetherctl reload"
    assert settings["RuntimeDirectory"] == "tether"  # /run/tether/tetherd.sock, both defaults
    assert int(settings["WatchdogSec"].removesuffix("s")) > 1  # more than a stall takes to see
    assert settings["StandardError"] == "journal"  # journalctl -u tetherd
    for command in ("ExecStartPre", "ExecStart", "ExecReload"):
        program = settings[command].split()[0]
        assert (installed / program.lstrip("/")).is_file(), program
    sysctl = (installed / "usr/lib/sysctl.d/60-tether-hugepages.conf").read_text()
    assert re.search(r"^vm\.nr_hugepages = \d+$", sysctl, re.M)


def test_exec_reload_reaches_tetherd_in_its_runtime_directory(installed, tmp_path):
    """The unit's ExecStart and ExecReload command lines as systemd runs them (only the
    configuration's path and the scratch root differ): neither names a socket, and both meet
    at /run/tether/tetherd.sock, in the RuntimeDirectory systemd makes. /run is a tmpfs of a
    mount namespace of the test's own, so the machine's /run is not touched."""
    unit = (installed / "lib/systemd/system/tetherd.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    config = tmp_path / "t.cfg"
    config.write_text(config_text("net_null0", SERVICES))
    start = settings["ExecStart"].replace("/usr/sbin/", f"{installed}/usr/sbin/").replace(
        "/etc/tether/tether.cfg", str(config))
    reload = settings["ExecReload"].replace("/usr/sbin/", f"{installed}/usr/sbin/")
    assert "-s" not in start.split() and "-s" not in reload.split()
    script = f"""set -e
mount -t tmpfs tmpfs /run
mkdir -m {settings["RuntimeDirectoryMode"]} /run/{settings["RuntimeDirectory"]}
{start} >{tmp_path}/tetherd.log 2>&1 &
tetherd=$!
for i in $(seq 300); do [ -S /run/tether/tetherd.sock ] && break; sleep 0.1; done
{reload}
kill -TERM $tetherd
wait $tetherd
"""
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=90)
    log = (tmp_path / "tetherd.log").read_text() if (tmp_path / "tetherd.log").exists() else ""
    assert result.returncode == 0, result.stdout + result.stderr + log[-2000:]
    assert "backends added: none" in result.stdout, result.stdout  # print_reload: the reload answered


def test_systemd_analyze_verifies_the_unit(installed, tmp_path):
    """systemd-analyze verify, in a copy of the scratch root that also holds this machine's
    systemd units (the targets tetherd.service is ordered after): the unit's syntax, its
    settings, its dependencies, and that the programs it runs exist there."""
    root = tmp_path / "root"
    shutil.copytree(installed, root, symlinks=True)
    units = root / "lib/systemd/system"
    subprocess.run(["cp", "-a", "--no-clobber", "/lib/systemd/system/.", str(units)], check=True)

    def verify(name):
        return subprocess.run(["systemd-analyze", "verify", f"--root={root}", "--man=no",
                               f"/lib/systemd/system/{name}"], capture_output=True, text=True, timeout=60)

    result = verify("tetherd.service")
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    # The check can fail: a unit naming a program that is not there, a bad setting.
    text = (units / "tetherd.service").read_text()
    (units / "tether-broken.service").write_text(text.replace("/usr/sbin/tetherd -c", "/usr/sbin/no-tetherd -c"))
    result = verify("tether-broken.service")
    assert result.returncode != 0 and "no-tetherd" in result.stderr
    (units / "tether-broken.service").write_text(text.replace("WatchdogSec=10s", "WatchdogSec=ten"))
    assert "Failed to parse sec value" in verify("tether-broken.service").stderr


def test_lintian_finds_no_error(package, decap_package):
    result = subprocess.run(["lintian", "--fail-on", "error", "--tag-display-limit", "0", str(package),
                             str(decap_package)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [line for line in result.stdout.splitlines() if line.startswith("E:")], result.stdout
    print(result.stdout)  # the warnings, for the log


class NotifySocket:
    """The datagram socket systemd listens on for sd_notify (NOTIFY_SOCKET)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []  # (monotonic time, {name: value})

    def receive(self, timeout):
        """The messages that arrive within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            self.messages.append((time.monotonic(), dict(line.split("=", 1) for line in data.splitlines())))

    def wait_for(self, name, timeout):
        deadline = time.monotonic() + timeout
        while not any(name in m for _t, m in self.messages) and time.monotonic() < deadline:
            self.receive(0.05)
        assert any(name in m for _t, m in self.messages), f"no {name}=: {self.messages}"

    def times(self, name, since=0.0):
        return [t for t, m in self.messages if name in m and t >= since]

    def close(self):
        self.sock.close()


libc = ctypes.CDLL(None, use_errno=True)
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
WALL = 0x40000000  # waitpid: a thread of another process is waited for by its id


def ptrace(request, tid):
    if libc.ptrace(ctypes.c_long(request), ctypes.c_long(tid), None, None) != 0:
        raise OSError(ctypes.get_errno(), f"ptrace {request:#x} {tid}")


def worker_thread(pid):
    """The thread id of tetherd's first worker lcore (DPDK names them rte-worker-N)."""
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        if (task / "comm").read_text().strip().startswith("rte-worker"):
            return int(task.name)
    raise AssertionError("no rte-worker thread")


def test_ready_watchdog_and_stopping_through_notify_socket(installed, tmp_path):
    """The packaged tetherd as systemd runs it: READY=1 once it serves, WATCHDOG=1 every half
    WATCHDOG_USEC while its worker turns, none while the worker is stopped (ptrace: the
    other threads run on), again once it turns, STOPPING=1 on SIGTERM."""
    notify = NotifySocket(tmp_path / "notify.sock")
    config = tmp_path / "t.cfg"
    config.write_text(config_text("net_null0", SERVICES))
    environment = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="400000")  # pets every 0.2 s
    tetherd = None
    try:
        tetherd = Tetherd(config, tmp_path / "s.sock", binary=installed / "usr/sbin/tetherd",
                          spawn=lambda words, **kw: spawn_process(words, env=environment, **kw))
        notify.wait_for("READY", 10)
        ready = next(m for _t, m in notify.messages if "READY" in m)
        assert ready["READY"] == "1" and ready["STATUS"].startswith("running: 3 service(s)")
        assert not [m for _t, m in notify.messages if "STOPPING" in m]
        notify.receive(1.5)
        pets = notify.times("WATCHDOG")
        assert len(pets) >= 5, notify.messages  # 1.5 s at one each 0.2 s
        # No gap as long as WATCHDOG_USEC: systemd would have killed tetherd.
        assert max(b - a for a, b in zip(pets, pets[1:])) < 0.4

        # ExecReload's command reaches the same tetherd and reloads.
        assert "reloaded" in tetherd.ctl("reload") or tetherd.json("reload")["ok"]

        tid = worker_thread(tetherd.proc.pid)
        ptrace(PTRACE_SEIZE, tid)
        stopped_at = time.monotonic()
        try:
            ptrace(PTRACE_INTERRUPT, tid)
            notify.receive(3.0)
            assert tetherd.running
            # Pets go on until the worker has been still for a second (WorkerProgress), then
            # stop; half a second more for a control loop pass that comes late.
            late = notify.times("WATCHDOG", since=stopped_at + 1.5)
            assert late == [], f"petted {len(late)} times while the worker was stopped"
            assert "systemd watchdog: not petted while worker 0 is stalled" in tetherd.log()
        finally:
            os.waitpid(tid, WALL)
            ptrace(PTRACE_DETACH, tid)
        resumed_at = time.monotonic()
        notify.receive(1.0)
        assert len(notify.times("WATCHDOG", since=resumed_at)) >= 3, notify.messages[-5:]

        tetherd.proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING", 20)
        assert tetherd.proc.wait(timeout=30) == 0, tetherd.log()[-2000:]
    finally:
        if tetherd is not None:
            tetherd.kill()
        notify.close()


def test_without_notify_socket_nothing_is_sent(installed, tmp_path):
    """Outside systemd tetherd runs as before: no NOTIFY_SOCKET, no watchdog message logged."""
    config = tmp_path / "t.cfg"
    config.write_text(config_text("net_null0", SERVICES))
    environment = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    tetherd = Tetherd(config, tmp_path / "s.sock", binary=installed / "usr/sbin/tetherd",
                      spawn=lambda words, **kw: spawn_process(words, env=environment, **kw))
    try:
        assert tetherd.stop() == 0
        assert "watchdog" not in tetherd.log() and "sd_notify" not in tetherd.log()
    finally:
        tetherd.kill()


def test_bash_completion_asks_the_running_tetherd(installed, tmp_path):
    """tetherctl's completion offers the commands tetherd's help lists and the backends'
    names from `show backends`."""
    config = tmp_path / "t.cfg"
    config.write_text(config_text("net_null0", SERVICES))
    sock = tmp_path / "s.sock"
    tetherd = Tetherd(config, sock, binary=installed / "usr/sbin/tetherd")
    completion = installed / "usr/share/bash-completion/completions/tetherctl"

    def complete(*typed):
        words = ["tetherctl", "-s", str(sock), *typed]
        script = (f"source {completion}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
                  f"COMP_CWORD={len(words) - 1}; _tetherctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
        environment = dict(os.environ, PATH=f"{installed / 'usr/sbin'}:{os.environ['PATH']}")
        result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=environment,
                                timeout=30)
        assert result.returncode == 0, result.stderr
        return sorted(set(result.stdout.split()))

    try:
        assert {"show", "backend", "reload", "ha", "drain", "metrics"} <= set(complete(""))
        assert complete("re") == ["reload"]
        assert {"services", "backends", "sessions", "flows"} <= set(complete("show", ""))
        assert complete("backend", "drain", "") == ["b1", "b2", "b3"]
        assert complete("show", "sessions", "protocol", "") == ["flow", "ftp", "rtsp", "sip"]
        assert complete("show", "sessions", "service", "") == ["sip", "web", "web6"]
        assert {"service", "protocol", "backend", "limit"} <= set(complete("show", "sessions", ""))
        assert complete("backend", "weight", "b1", "5", "") == ["sip", "web", "web6"]
        assert complete("--js") == ["--json"]
    finally:
        tetherd.stop()
        tetherd.kill()
