"""A program in a terminal, as an operator sees it: tmux runs it in a detached session,
capture-pane reads the screen and send-keys types (test_top, and the lab's `tetherctl top` in
test_lab)."""
import subprocess


def tmux(*words):
    return subprocess.run(["tmux", *words], capture_output=True, text=True, timeout=10)


def screen(session):
    """What the session's pane shows now."""
    return tmux("capture-pane", "-p", "-t", session).stdout


def top_rows(shown):
    """`tetherctl top`'s screen as first word -> the line's words (a backend's name, a
    worker's number, the tables' headings BACKEND and WORKER)."""
    return {line.split()[0]: line.split() for line in shown.splitlines() if line.strip()}
