"""summary.md as HTML, through markdown-it-py: headings, paragraphs, tables as ``<table>``,
fenced code as ``<pre><code>``. Raw HTML in the markdown is escaped, not passed through, so no
markup in a cell (a method or grid value) reaches the page; links and images are off, so the
page never fetches anything."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

# "js-default": CommonMark with tables and html=False (raw HTML escaped).
MD = MarkdownIt("js-default").disable(["link", "image", "autolink"])
CODE = ("fence", "code_block")


def split_code(text: str) -> tuple[str, str]:
    """``text`` as HTML in two parts: everything but its code blocks, and the code blocks,
    each with the paragraph that introduces it (one ending in ":" right before it). The
    report shows the tables first and the (long) resolved config further down. Headings are
    shifted one level down (the page owns ``<h1>``)."""
    blocks = _blocks(text)
    moved = set()
    for k, block in enumerate(blocks):
        if block[0].type in CODE:
            moved.add(k)
            if k > 0 and _introduces(blocks[k - 1]):
                moved.add(k - 1)
    rest = [tok for k, block in enumerate(blocks) if k not in moved for tok in block]
    code = [tok for k, block in enumerate(blocks) if k in moved for tok in block]
    return _render(rest), _render(code)


def _blocks(text: str) -> list[list[Token]]:
    """The top-level blocks of ``text`` (a paragraph, a table, a code block: each a run of
    tokens from an opening at level 0 to its closing), headings shifted one level down."""
    blocks: list[list[Token]] = []
    for tok in MD.parse(text):
        if tok.type in ("heading_open", "heading_close"):
            tok.tag = f"h{min(6, int(tok.tag[1]) + 1)}"
        if tok.level == 0 and tok.nesting >= 0:
            blocks.append([])
        blocks[-1].append(tok)
    return blocks


def _introduces(block: list[Token]) -> bool:
    return (block[0].type == "paragraph_open" and len(block) == 3
            and block[1].content.rstrip().endswith(":"))


def _render(tokens: list[Token]) -> str:
    return MD.renderer.render(tokens, MD.options, {}).strip()
