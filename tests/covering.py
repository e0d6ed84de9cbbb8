"""Pairwise covering designs for the combination contract (tests/test_contract.py): a small set
of cells in which every allowed pair of levels of any two factors appears at least once, and
the sub-design in which every level of every factor appears at least once.

A greedy construction (AETG-style, deterministic): each new cell starts from the first pair
still uncovered and fills the other factors, one at a time, with the level that covers the
most uncovered pairs and forms no forbidden pair with what the cell holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import combinations

Cell = dict[str, str]


def pairs_of(cell: Mapping[str, str]) -> set[tuple[str, str, str, str]]:
    names = sorted(cell)
    return {(a, cell[a], b, cell[b]) for a, b in combinations(names, 2)}


def pairwise(factors: Mapping[str, Sequence[str]],
             forbidden: Callable[[str, str, str, str], bool]) -> list[Cell]:
    """Cells covering every pair ``(factor a = x, factor b = y)`` that is not ``forbidden``."""
    names = list(factors)
    todo = {(a, x, b, y) for a, b in combinations(sorted(names), 2)
            for x in factors[a] for y in factors[b] if not forbidden(a, x, b, y)}
    cells: list[Cell] = []
    while todo:
        a, x, b, y = min(todo)
        cell = {a: x, b: y}
        for f in names:
            if f in cell:
                continue
            best, gain = None, -1
            for level in factors[f]:
                if any(_bad(forbidden, f, level, g, v) for g, v in cell.items()):
                    continue
                new = sum(_key(f, level, g, v) in todo for g, v in cell.items())
                if new > gain:
                    best, gain = level, new
            if best is None:
                raise ValueError(f"no level of {f} fits {cell}")
            cell[f] = best
        todo -= pairs_of(cell)
        cells.append(cell)
    return cells


def each_level(cells: Sequence[Cell], factors: Mapping[str, Sequence[str]]) -> list[Cell]:
    """A subset of ``cells`` in which every level of every factor appears (greedy)."""
    todo = {(f, v) for f, levels in factors.items() for v in levels}
    picked: list[Cell] = []
    while todo:
        cell = max(cells, key=lambda c: sum((f, v) in todo for f, v in c.items()))
        if not any((f, v) in todo for f, v in cell.items()):
            raise ValueError(f"no cell holds {sorted(todo)[:3]}")
        todo -= set(cell.items())
        picked.append(cell)
    return picked


def _key(f: str, x: str, g: str, y: str) -> tuple[str, str, str, str]:
    return (f, x, g, y) if f < g else (g, y, f, x)


def _bad(forbidden: Callable[[str, str, str, str], bool], f: str, x: str, g: str,
         y: str) -> bool:
    return forbidden(*_key(f, x, g, y))
