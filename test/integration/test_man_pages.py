"""The manual pages: `meson install` puts tetherd(8), tetherctl(8), tether-decap(8) and
tether.cfg(5) into mandir; each formats without a warning and keeps its sections;
tether.cfg(5) names every setting of conf/reference.cfg, tetherd(8) every option of
`tetherd --help`, tetherctl(8) every command and option of `tetherctl --help`, and
tether-decap(8) every command and option of `tether-decap`'s help. The pages are written from README.md
(docs/man/readme_to_man.py), so these checks also hold the README's reference to the code."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TETHER_BUILD", REPO / "build"))
PAGES = {"tetherd.8": "man8", "tetherctl.8": "man8", "tether-decap.8": "man8", "tether.cfg.5": "man5"}
SECTIONS = {
    "tetherd.8": ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "TELEMETRY AND PACKET CAPTURE",
                  "HEALTH CHECKS", "BACKEND MACS", "ACTIVE-STANDBY PAIR", "SNAPSHOTS", "COUNTERS", "SESSION AWARENESS",
                  "NOTES", "SEE ALSO"],
    "tetherctl.8": ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"],
    "tether-decap.8": ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"],
    "tether.cfg.5": ["NAME", "DESCRIPTION", "SEE ALSO"],
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """{page: its installed file}, from `meson install --destdir` of the build under test."""
    destdir = tmp_path_factory.mktemp("destdir")
    meson = shutil.which("meson")
    assert meson, "meson is not installed (tools/deps)"
    # --no-rebuild: the build is tools/build's; tests only read it. --tags man: only the pages
    # (and decap: tether-decap with its page, the package tether-decap's files).
    result = subprocess.run([meson, "install", "-C", str(BUILD), "--destdir", str(destdir),
                             "--no-rebuild", "--tags", "man,decap"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    pages = {}
    for page, directory in PAGES.items():
        found = list(destdir.rglob(f"{directory}/{page}"))
        assert len(found) == 1, (page, sorted(str(p) for p in destdir.rglob("*")))
        pages[page] = found[0]
    return pages


def source_text(path):
    """The page's roff source with font changes and escaped dashes undone: the words as
    written, without line-filling or hyphenation."""
    text = path.read_text(encoding="ascii")
    return re.sub(r"\\f[BIR]", "", text).replace("\\-", "-").replace("\\e", "\\")


def test_pages_format_without_warnings(installed):
    for page, path in installed.items():
        result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(path)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stderr == "", (page, result.stderr)
        rendered = subprocess.run(["groff", "-man", "-Tutf8", str(path)], capture_output=True,
                                  text=True, timeout=60, check=True).stdout
        assert len(rendered.splitlines()) > 20, (page, rendered)


def test_pages_keep_their_sections(installed):
    for page, path in installed.items():
        lines = path.read_text(encoding="ascii").splitlines()
        headings = [line[4:].strip('"') for line in lines if line.startswith(".SH ")]
        assert headings == SECTIONS[page], page
        # Every section has text of its own before the next heading.
        starts = [i for i, line in enumerate(lines) if line.startswith(".SH ")] + [len(lines)]
        for heading, start, end in zip(headings, starts, starts[1:]):
            body = [line for line in lines[start + 1:end] if not line.startswith(".")]
            assert body, (page, heading)


def reference_settings():
    """Every setting conf/reference.cfg shows, also those shown commented out, as the leaf
    names, and the full names of the settings inside the `tables` and `neighbours` groups."""
    leaves, grouped = set(), set()
    group = None
    for line in (REPO / "conf" / "reference.cfg").read_text().splitlines():
        code, _, comment = line.partition("#")
        commented_out = re.match(r"\s*([a-z_]+)\s*=\s*[^=]*;", comment)
        names = re.findall(r"\b([a-z_]+)\s*=", code)
        if commented_out and not code.strip():
            names.append(commented_out.group(1))
        opened = re.match(r"\s*([a-z_]+)\s*=\s*\{\s*$", code)
        if opened:
            group = opened.group(1)
            continue
        if group and code.strip().startswith("}"):
            group = None
        leaves.update(names)
        if group:
            grouped.update(f"{group}.{name}" for name in names)
    return leaves, grouped


def test_configuration_page_names_every_setting(installed):
    leaves, grouped = reference_settings()
    # What the reference shows today: a parser that finds nothing cannot pass.
    assert {"workers", "flows_per_worker", "passive_ports", "health_check", "caseless",
            "dpi_sessions_per_worker", "expectation_timeout", "mbufs"} <= leaves, leaves
    assert {"tables.sessions", "neighbours.attempts"} <= grouped, grouped
    text = source_text(installed["tether.cfg.5"])
    missing = sorted(name for name in leaves if not re.search(rf"(?<![\w]){name}(?![\w])", text))
    missing += sorted(name for name in grouped if name not in text)
    assert not missing, f"settings of conf/reference.cfg missing from tether.cfg(5): {missing}"


def help_text(program):
    result = subprocess.run([str(BUILD / "control" / program), "--help"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tetherd_page_names_every_option(installed):
    options = re.findall(r"--([a-z][a-z-]*)", help_text("tetherd"))
    assert {"config", "check", "socket", "stats-file", "idle-exit"} <= set(options), options
    text = source_text(installed["tetherd.8"])
    missing = [option for option in options if f"--{option}" not in text]
    assert not missing, f"tetherd options missing from tetherd(8): {missing}"


def test_tetherctl_page_names_every_command_and_option(installed):
    usage = help_text("tetherctl")
    options = re.findall(r"--([a-z][a-z-]*)", usage)
    commands_text = usage.split("Commands:", 1)[1].split("\nOptions", 1)[0]
    commands = []
    for entry in re.split(r",\s*", " ".join(commands_text.split())):
        words = entry.split()
        if not words or not words[0].islower() or words[0].startswith("["):
            continue  # the rest of a bracketed argument list broken over the comma
        verbs = words[1].split("|") if len(words) > 1 and words[1].islower() and not words[1].startswith("[") else [""]
        commands += [f"{words[0]} {verb}".strip() for verb in verbs]
    assert {"show services", "backend drain", "backend add", "reload", "metrics", "help"} <= set(
        commands), commands
    text = source_text(installed["tetherctl.8"])
    synopsis = text.split(".SH SYNOPSIS", 1)[1].split(".SH ", 1)[0]
    documented = set()
    for line in synopsis.splitlines():
        words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) < 2 or words[0] != "tetherctl":
            continue
        verbs = words[2].split("|") if len(words) > 2 and words[2].islower() else [""]
        documented.update(f"{words[1]} {verb}".strip() for verb in verbs)
    missing = [f"--{option}" for option in options if f"--{option}" not in text]
    missing += [command for command in commands if command not in documented]
    assert not missing, f"missing from tetherctl(8): {missing}"


def test_decap_page_names_every_command_and_option(installed):
    """tether-decap(8)'s synopsis has each command of `tether-decap --help` with every option
    of that command's help."""
    def usage(*words):
        result = subprocess.run(["/usr/bin/python3", str(BUILD / "backend" / "tether-decap"), *words, "--help"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout
    commands = re.search(r"\{([a-z,]+)\}", usage()).group(1).split(",")
    assert commands == ["attach", "counters", "detach"], commands
    text = source_text(installed["tether-decap.8"])
    synopsis = text.split(".SH SYNOPSIS", 1)[1].split(".SH ", 1)[0]
    lines = {line.split()[1]: line for line in synopsis.splitlines() if line.startswith("tether-decap ")}
    missing = [command for command in commands if command not in lines]
    missing += [f"{command} --{option}" for command in commands if command in lines
                for option in re.findall(r"--([a-z][a-z-]*)", usage(command))
                if option != "help" and f"--{option}" not in lines[command]]
    assert not missing, f"missing from tether-decap(8)'s synopsis: {missing}"
