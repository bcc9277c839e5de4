"""A program in a terminal, as an operator sees it: tmux runs it in a detached session,
capture-pane reads the screen and send-keys types (test_top, and the lab's `tetherctl top` in
test_lab)."""
import subprocess
import time


def tmux(*words):
    return subprocess.run(["tmux", *words], capture_output=True, text=True, timeout=10)


def screen(session):
    """What the session's pane shows now."""
    return tmux("capture-pane", "-p", "-t", session).stdout


def top_rows(shown):
    """`tetherctl top`'s screen as first word -> the line's words (a backend's name, a
    worker's number, the tables' headings BACKEND and WORKER)."""
    return {line.split()[0]: line.split() for line in shown.splitlines() if line.strip()}


def start(session, command):
    """`command` in a new detached session of 160x40."""
    started = tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40", command)
    assert started.returncode == 0, started.stderr


def interrupt(session, timeout=10):
    """Ctrl-C, then waits until the program ended and its session with it."""
    tmux("send-keys", "-t", session, "C-c")
    deadline = time.monotonic() + timeout
    while tmux("has-session", "-t", session).returncode == 0:
        assert time.monotonic() < deadline, f"{session}: the program did not stop on Ctrl-C"
        time.sleep(0.1)
