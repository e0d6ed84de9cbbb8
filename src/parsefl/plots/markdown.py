"""The small subset of markdown that summary.md uses, as HTML: pipe tables, ``#`` headings,
paragraphs, ``**bold**`` and ``code``. Everything is escaped first, so no markup in a cell
(a method or grid value) can reach the page as HTML."""

from __future__ import annotations

import html
import re

BOLD = re.compile(r"\*\*(.+?)\*\*")
CODE = re.compile(r"`([^`]+)`")


def inline(text: str) -> str:
    """Escape, then render **bold** and `code`."""
    out = CODE.sub(r"<code>\1</code>", html.escape(text, quote=False))
    return BOLD.sub(r"<strong>\1</strong>", out)


def markdown_to_html(text: str) -> str:
    """Convert summary.md-style markdown to HTML blocks (headings shifted one level down,
    since the page owns ``<h1>``)."""
    blocks: list[str] = []
    para: list[str] = []
    table: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()
        if table:
            blocks.append(pipe_table(table))
            table.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("|"):
            if para:
                flush()
            table.append(line)
            continue
        flush()
        heading = re.match(r"(#{1,5})\s+(.*)", line)
        if heading:
            level = len(heading.group(1)) + 1
            blocks.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif line:
            para.append(line)
    flush()
    return "\n".join(blocks)


def pipe_table(lines: list[str]) -> str:
    """A pipe table (first row the header; ``|---|`` separator rows dropped) as HTML."""
    rows = [_cells(line) for line in lines if not re.fullmatch(r"\|?[\s:|-]+\|?", line)]
    if not rows:
        return ""
    head, body = rows[0], rows[1:]
    return html_table(head, body, markdown=True)


def html_table(head: list[str], body: list[list[str]], markdown: bool = False) -> str:
    """A ``<table>`` of plain-text cells (escaped), or inline-markdown cells if ``markdown``."""
    cell = inline if markdown else html.escape
    width = len(head)
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{cell(h)}</th>" for h in head)
           + "</tr></thead>", "<tbody>"]
    for row in body:
        row = (row + [""] * width)[:width]  # ragged rows: pad or cut to the header
        out.append("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return [c.strip() for c in inner.split("|")]
