"""benchmarks/results_book.py: RESULTS.md is one section per topic; the newest pass of each
measurement is shown and the earlier ones are folded, and re-filing changes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_book import organize  # noqa: E402

RAW = """# Benchmark results

Intro.

## Robust aggregation: round time (2026-11-28)

old figure 1.40x

## Manifests: checkpoint write (2026-12-07)

manifest figure

## Robust aggregation: round time (2026-12-07)

new figure 1.05x
"""


def test_passes_are_filed_by_topic_with_history_folded():
    book = organize(RAW)
    assert book.count("## Robust aggregation\n") == 1 and book.count("## Manifests\n") == 1
    robust = book.split("## Robust aggregation\n")[1].split("## Manifests")[0]
    shown, folded = robust.split("<details>")
    assert "new figure 1.05x" in shown and "old figure 1.40x" in folded  # newest first
    assert organize(book) == book  # idempotent


def test_a_new_pass_folds_the_previous_one():
    book = organize(RAW) + "\n## Robust aggregation: round time (2026-12-08)\n\nnewest 1.01x\n"
    again = organize(book)
    shown, folded = again.split("## Robust aggregation\n")[1].split("<details>")
    assert "newest 1.01x" in shown and "new figure 1.05x" in folded
    assert "Earlier passes (2)" in again


def test_the_committed_book_is_filed():
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert organize(text) == text
