"""RESULTS.md as one section per topic: every measurement pass is an entry (``### title
(date)``) filed under its topic (``## Topic``); a topic shows the newest pass of each
measurement and folds the earlier passes into a ``<details>`` block. :func:`organize` is
idempotent, and ``_common.append_results`` runs it after every new entry, so the file stays in
this shape.

    python benchmarks/results_book.py      # re-file RESULTS.md in place
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

# Topic, then the entry-title prefixes filed under it (first match wins; the rest: "Other").
TOPICS: list[tuple[str, tuple[str, ...]]] = [
    ("Targets: met or not", ("Performance targets", "Issue ")),
    ("Scaling and round time", ("Scaling", "Linear scaling", "Compute floor", "Quickstart",
                                "Build time")),
    ("Peers: parsefl vs Flower vs p2pfl", ("Peers",)),
    ("Memory", ("Memory",)),
    ("Thread policy", ("Thread policy",)),
    ("CLI start-up", ("CLI start-up",)),
    ("Distributed runtime", ("Distributed",)),
    ("Networks: test hosts and time to accuracy", ("Network",)),
    ("Transports and signed messages", ("Transports", "Signed wire")),
    ("Bytes", ("Bytes",)),
    ("Compression", ("Compression",)),
    ("Robust aggregation", ("Robust aggregation",)),
    ("Manifests", ("Manifests",)),
    ("Privacy", ("Privacy",)),
    ("GPU", ("GPU",)),
]
ENTRY = re.compile(r"^#{2,3} (.+) \((\d{4}-\d{2}-\d{2})\)\s*$")
FOLD = re.compile(r"^</?details>|^<summary>")
INTRO = """\
Each topic below shows the newest pass of each measurement; earlier passes of it are
folded under "Earlier passes" (kept as history: a later pass usually follows a code change or
ran on a quieter machine). Every entry names its command, machine and date; scripts add their
entries through `_common.append_results`, which files them here."""


def topic_of(title: str) -> str:
    return next((t for t, prefixes in TOPICS if title.startswith(prefixes)), "Other")


def _split(text: str) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """(the header lines, every entry as (title, date, body lines), oldest first); topic
    headings and fold markers of an organized file are dropped (they are rebuilt), and the
    entries it had folded count as older than those it showed."""
    topics = {f"## {t}" for t, _ in TOPICS} | {"## Other"}
    header: list[str] = []
    shown: list[tuple[str, str, list[str]]] = []
    folded: list[tuple[str, str, list[str]]] = []
    inside, body = False, None
    for line in text.splitlines():
        match = ENTRY.match(line)
        if match:
            body = []
            (folded if inside else shown).append((match.group(1), match.group(2), body))
        elif line.strip() == "<details>" or line.strip() == "</details>":
            inside = line.strip() == "<details>"
        elif line.strip() in topics or FOLD.match(line.strip()):
            continue
        elif body is not None:
            body.append(line)
        else:
            header.append(line)
    return header, folded + shown


def _body(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def organize(text: str) -> str:
    header, entries = _split(text)
    out = _body(header)
    if not any("Each topic below" in line for line in out):
        out += ["", *INTRO.splitlines()]
    by_topic: dict[str, list[tuple[str, str, list[str]]]] = {}
    for entry in entries:
        by_topic.setdefault(topic_of(entry[0]), []).append(entry)
    for topic in [t for t, _ in TOPICS] + ["Other"]:
        group = by_topic.get(topic, [])
        if not group:
            continue
        last = {title: k for k, (title, _, _) in enumerate(group)}  # newest pass per title
        shown = [e for k, e in enumerate(group) if last[e[0]] == k]
        folded = [e for k, e in enumerate(group) if last[e[0]] != k]
        out += ["", f"## {topic}"]
        for title, date, body in shown:
            out += ["", f"### {title} ({date})", "", *_body(body)]
        if folded:
            out += ["", "<details>", f"<summary>Earlier passes ({len(folded)})</summary>"]
            for title, date, body in folded:
                out += ["", f"### {title} ({date})", "", *_body(body)]
            out += ["", "</details>"]
    return "\n".join(out) + "\n"


def main() -> None:
    RESULTS.write_text(organize(RESULTS.read_text()))


if __name__ == "__main__":
    main()
