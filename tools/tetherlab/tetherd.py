"""The one way tetherd is started for the lab, the tests and the benchmark, and tetherctl.

`Tetherd` runs it in the background, its stdout and stderr in files, and returns once the
control socket answers: the control loop serves commands only after the workers were
launched ("running:" in the log), whatever the log level. `replay` runs it in the
foreground until its input pcaps are drained (--idle-exit).
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from .topology import REPO

BUILD = Path(os.environ.get("TETHER_BUILD", REPO / "build"))
TETHERD = BUILD / "control" / "tetherd"
TETHERCTL = BUILD / "control" / "tetherctl"


def command_line(config, socket, binary=TETHERD, stats_file=None, idle_exit=None):
    words = [str(binary), "-c", str(config)]
    if idle_exit is not None:
        words += ["--idle-exit", str(idle_exit)]
    if stats_file is not None:
        words += ["--stats-file", str(stats_file)]
    return words + ["--socket", str(socket)]


def replay(config, socket, stats_file, timeout):
    """tetherd in the foreground until no packet arrived for 1 s: a CompletedProcess."""
    return subprocess.run(command_line(config, socket, stats_file=stats_file, idle_exit=1),
                          capture_output=True, text=True, timeout=timeout)


def tetherctl(socket, *words, timeout=10):
    """tetherctl's output; RuntimeError when it fails."""
    result = subprocess.run([str(TETHERCTL), "-s", str(socket), *map(str, words)],
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"tetherctl {' '.join(map(str, words))}: {result.stderr.strip()}")
    return result.stdout


def spawn_process(words, **kwargs):
    """tetherd in a session of its own: its owner stops it (a Ctrl-C in the terminal goes
    to the driver, whose teardown decides)."""
    return subprocess.Popen(words, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)


class Tetherd:
    """tetherd in the background with a control socket, its stdout and stderr in
    `output`.out and `output`.err (default: beside the config). `spawn(words, stdout=,
    stderr=, cwd=)` starts the process (another network namespace, for the lab)."""

    def __init__(self, config, socket, binary=TETHERD, stats_file=None, output=None,
                 spawn=spawn_process, cwd=None, start_timeout=60):
        self.config, self.socket = Path(config), Path(socket)
        output = Path(output) if output else self.config.with_suffix("")
        self.stdout_path = output.with_name(output.name + ".out")
        self.stderr_path = output.with_name(output.name + ".err")
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = spawn(command_line(config, socket, binary, stats_file), stdout=out, stderr=err,
                              cwd=cwd)
        deadline = time.monotonic() + start_timeout
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"tetherd did not start: {self.log()[-3000:]}")
            if self.socket.exists():
                try:
                    self.ctl("show", "workers")
                    return
                except (RuntimeError, subprocess.TimeoutExpired):
                    pass
            time.sleep(0.1)

    def log(self):
        """What tetherd wrote to stderr so far."""
        return self.stderr_path.read_text()

    def output(self):
        """What tetherd wrote to stdout (its summary, once it stopped)."""
        return self.stdout_path.read_text()

    def ctl(self, *words):
        return tetherctl(self.socket, *words)

    def json(self, *words):
        return json.loads(self.ctl("--json", *words))

    def backends(self):
        return {b["name"]: b for b in self.json("show", "backends")["backends"]}

    def wait_until(self, predicate, timeout, what):
        """Polls `show backends` until predicate(backends) holds; returns the seconds taken."""
        start = time.monotonic()
        while True:
            if predicate(self.backends()):
                return time.monotonic() - start
            assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
            time.sleep(0.03)

    @property
    def running(self):
        return self.proc.poll() is None

    def stop(self, timeout=30):
        """SIGTERM (tetherd prints its summary and writes its stats file), SIGKILL if it has
        not exited within `timeout` seconds; its exit code."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self):
        if self.running:
            self.proc.kill()
        self.proc.wait()
