#!/usr/bin/env python3
"""Writes tether's manual pages from README.md, so that the reference tables exist once.

    readme_to_man.py README.md PAGE VERSION OUTPUT

PAGE is one of PAGES below (tetherd.8, tetherctl.8, tether-decap.8, tether.cfg.5). Each page is a list of
README sections (by heading) under the man section names they take; the converter knows the
Markdown the README uses and nothing more: paragraphs, `code`, **bold**, links, fenced code,
pipe tables (as tagged paragraphs), bullet lists and headings. Anything else is an error, so a
README change the pages cannot carry fails the build instead of vanishing from them.
Standard library only: any python3 runs it.
"""
import re
import sys

# Man section name, README heading, and which part of that section:
#   "all": the whole section with its subsections (a README "###" becomes .SS);
#   "synopsis": its first fenced code block only; "after-synopsis": all but that block;
#   "first-paragraph": the text before the first blank line.
PAGES = {
    "tetherd.8": {
        "name": "tetherd",
        "summary": "session-aware DPDK load balancer",
        "parts": [
            ("SYNOPSIS", "Running tetherd", "synopsis"),
            ("DESCRIPTION", "tether", "first-paragraph"),
            ("OPTIONS", "Running tetherd", "after-synopsis"),
            ("TELEMETRY AND PACKET CAPTURE", "Telemetry and packet capture", "all"),
            ("HEALTH CHECKS", "Health checks", "all"),
            ("BACKEND MACS", "Backend MACs", "all"),
            ("ACTIVE-STANDBY PAIR", "Active-standby pair", "all"),
            ("SNAPSHOTS", "Snapshots", "all"),
            ("COUNTERS", "Counters", "all"),
            ("SESSION AWARENESS", "Session awareness", "all"),
            ("NOTES", "Behaviour worth knowing", "all"),
        ],
        "see_also": ["tetherctl(8)", "tether.cfg(5)", "dpdk-dumpcap(1)"],
    },
    "tetherctl.8": {
        "name": "tetherctl",
        "summary": "operate a running tetherd",
        "parts": [
            ("SYNOPSIS", "The control socket and tetherctl", "synopsis"),
            ("DESCRIPTION", "The control socket and tetherctl", "after-synopsis"),
        ],
        "see_also": ["tetherd(8)", "tether.cfg(5)"],
    },
    "tether-decap.8": {
        "name": "tether-decap",
        "summary": "XDP decapsulator for the backends of tetherd's ipip and gue services",
        "parts": [
            ("SYNOPSIS", "The XDP decapsulator on the backends", "synopsis"),
            ("DESCRIPTION", "The XDP decapsulator on the backends", "after-synopsis"),
        ],
        "see_also": ["tetherd(8)", "tether.cfg(5)", "ip-link(8)", "bpftool(8)"],
    },
    "tether.cfg.5": {
        "name": "tether.cfg",
        "summary": "tetherd configuration file",
        "parts": [
            ("DESCRIPTION", "Configuration reference", "all"),
        ],
        "see_also": ["tetherd(8)", "tetherctl(8)"],
    },
}


def parse_sections(text):
    """{heading: (level, lines)} where lines run to the next heading of the same or a higher
    level, so a section holds its subsections."""
    lines = text.split("\n")
    headings = []  # (index, level, title)
    in_code = False
    for index, line in enumerate(lines):
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"^(#{1,3}) (.+)$", line)
        if match:
            headings.append((index, len(match.group(1)), match.group(2).strip()))
    sections = {}
    for position, (index, level, title) in enumerate(headings):
        end = len(lines)
        for later_index, later_level, _ in headings[position + 1:]:
            if later_level <= level:
                end = later_index
                break
        if title in sections:
            raise SystemExit(f"README: two sections named {title!r}")
        sections[title] = (level, lines[index + 1:end])
    return sections


def fenced_block_span(lines):
    """(first, last) line indices of the first fenced code block."""
    start = next((i for i, line in enumerate(lines) if line.startswith("```")), None)
    if start is None:
        raise SystemExit("README: no code block where a synopsis is expected")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    return start, end


def select(lines, part):
    if part == "all":
        return lines
    if part == "first-paragraph":
        body = list(lines)
        while body and not body[0].strip():
            body.pop(0)
        return body[: body.index("")] if "" in body else body
    start, end = fenced_block_span(lines)
    if part == "synopsis":
        return lines[start:end + 1]
    if part == "after-synopsis":
        return lines[:start] + lines[end + 1:]
    raise SystemExit(f"unknown part {part!r}")


def escape_text(text):
    """Roff-safe text: backslashes, and characters outside ASCII as \\[uXXXX]."""
    text = text.replace("\\", "\\e")
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


class Inline:
    """Markdown inline markup to roff, with references to README sections rewritten."""

    def __init__(self, references):
        self.references = references  # quoted README heading -> what to say instead

    def __call__(self, text):
        text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1", text)  # links: their text
        for heading, instead in self.references.items():
            text = text.replace(f'"{heading}"', instead)
        out = []
        # Code spans first: nothing inside them is markup.
        for index, piece in enumerate(re.split(r"(`[^`]*`)", text)):
            if index % 2:
                out.append("\\fB" + escape_text(piece[1:-1]).replace("-", "\\-") + "\\fR")
            else:
                piece = escape_text(piece)
                # Only **bold**: a lone * or _ is literal in the README ("truncated_*").
                out.append(re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", piece))
        return "".join(out)


def roff_line(text):
    """A line of text that troff will not take for a request."""
    return "\\&" + text if text.startswith((".", "'")) else text


def table_cells(line):
    body = line.strip()
    if not (body.startswith("|") and body.endswith("|")):
        raise SystemExit(f"README: not a table row: {line!r}")
    cells = re.split(r"(?<!\\)\|", body[1:-1])
    return [cell.strip().replace("\\|", "|") for cell in cells]


def convert(lines, inline, out):
    """Markdown block structure to roff, appended to `out`."""
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            end = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("```"))
            out += [".PP", ".RS 4", ".nf"]
            out += [roff_line(escape_text(code).replace("-", "\\-")) for code in lines[i + 1:end]]
            out += [".fi", ".RE"]
            i = end + 1
        elif re.match(r"^#{2,3} ", line):
            out.append(".SS " + inline(line.lstrip("#").strip()))
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(table_cells(lines[i]))
                i += 1
            if len(rows) < 2 or not all(set(cell) <= set("-: ") for cell in rows[1]):
                raise SystemExit(f"README: a table without its header rule: {rows[0]}")
            header, body = rows[0], rows[2:]
            columns = len(header)
            if any(len(row) != columns for row in body):
                raise SystemExit(f"README: a table row with the wrong number of cells: {header}")
            # A reference table reads best in a terminal as a tagged list: the first cell is
            # the tag, middle cells are "header: value" lines, the last cell the text.
            for row in body:
                out += [".TP", roff_line(inline(row[0]))]
                for name, cell in zip(header[1:-1], row[1:-1]):
                    out += [roff_line(inline(f"{name}: {cell}")), ".br"]
                out.append(roff_line(inline(row[-1])))
            out.append(".PP")
        elif line.startswith("- "):
            while i < len(lines) and lines[i].startswith("- "):
                item = [lines[i][2:]]
                i += 1
                while i < len(lines) and lines[i].startswith("  ") and lines[i].strip():
                    item.append(lines[i].strip())
                    i += 1
                out.append(".IP \\(bu 2")
                out += [roff_line(inline(text)) for text in item]
            out.append(".PP")
        else:
            out.append(".PP")
            while (i < len(lines) and lines[i].strip() and not lines[i].startswith(("```", "|", "- "))
                   and not re.match(r"^#{2,3} ", lines[i])):
                out.append(roff_line(inline(lines[i].strip())))
                i += 1


def references_for(page_key):
    """What a quoted README heading becomes on this page: its man section here, or the page
    that carries it."""
    references = {}
    for key, page in PAGES.items():
        title = page["name"] + "(" + key.rsplit(".", 1)[1] + ")"
        for man_section, heading, _ in page["parts"]:
            if heading in references and key != page_key:
                continue
            references[heading] = man_section if key == page_key else title
    references.pop("tether", None)
    return references


def render(readme_text, page_key, version):
    sections = parse_sections(readme_text)
    page = PAGES[page_key]
    section_number = page_key.rsplit(".", 1)[1]
    inline = Inline(references_for(page_key))
    manual = "File Formats Manual" if section_number == "5" else "System Manager's Manual"
    out = [
        f'.TH {page["name"].upper()} {section_number} "" "tether {version}" "{manual}"',
        ".SH NAME",
        f'{page["name"]} \\- {page["summary"]}',
    ]
    for man_section, heading, part in page["parts"]:
        if heading not in sections:
            raise SystemExit(f"README: no section {heading!r} for {page_key} {man_section}")
        out.append(".SH " + man_section)
        convert(select(sections[heading][1], part), inline, out)
    out += [".SH SEE ALSO", ", ".join(f"\\fB{ref.split('(')[0]}\\fR({ref.split('(')[1]}"
                                      for ref in page["see_also"])]
    # An empty paragraph before a heading or at the end is noise for the formatter.
    cleaned = []
    for line in out:
        if line.startswith((".SH", ".SS")) and cleaned and cleaned[-1] == ".PP":
            cleaned.pop()
        cleaned.append(line)
    if cleaned[-1] == ".PP":
        cleaned.pop()
    return "\n".join(cleaned) + "\n"


def main(argv):
    if len(argv) != 5 or argv[2] not in PAGES:
        raise SystemExit(f"usage: {argv[0]} README.md {'|'.join(PAGES)} VERSION OUTPUT")
    with open(argv[1], encoding="utf-8") as readme:
        text = render(readme.read(), argv[2], argv[3])
    with open(argv[4], "w", encoding="ascii") as output:
        output.write(text)


if __name__ == "__main__":
    main(sys.argv)
