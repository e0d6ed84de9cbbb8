"""Tests of the per-agent description: rows, rich table and stacked bar chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from parsefl.data import (
    describe_partition,
    load_dataset,
    partition_indices,
    plot_partition,
    render_table,
    split_over_agents,
)
from parsefl.data.synthetic import synthetic_pid
from parsefl.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def described() -> tuple[list[dict], tuple[str, ...]]:
    data = synthetic_pid(0, n_samples=400)
    groups, parts = split_over_agents(
        data, {"m1": 2, "m2": 1, "m1+m2": 2}, "dirichlet", 0, {"alpha": 0.3, "min_samples": 5}
    )
    return describe_partition(data, groups, parts), data.class_names


def test_rows(described: tuple[list[dict], tuple[str, ...]]) -> None:
    rows, names = described
    assert [r["agent"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["modalities"] for r in rows] == ["m1", "m1", "m2", "m1+m2", "m1+m2"]
    assert all(len(r["classes"]) == len(names) == 8 for r in rows)
    assert all(sum(r["classes"]) == r["n_samples"] >= 5 for r in rows)
    assert sum(r["n_samples"] for r in rows) == 320
    data = synthetic_pid(0, n_samples=400)
    parts = partition_indices("dirichlet", data.train.y, 5, 0, {"alpha": 0.3, "min_samples": 5})
    assert [r["classes"] for r in rows] == [
        np.bincount(data.train.y[p], minlength=8).tolist() for p in parts
    ]
    with pytest.raises(DataError, match="2 modality groups but 1 index arrays"):
        describe_partition(data, [("m1",), ("m2",)], [parts[0]])


def _text(table: object) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


def test_table_wide_and_narrow(described: tuple[list[dict], tuple[str, ...]]) -> None:
    rows, names = described
    table = render_table(rows, names)
    assert len(table.columns) == 3 + 8 and table.row_count == 6
    text = _text(table)
    assert "m1+m2" in text and "total" in text and "320" in text
    many = [f"c{i}" for i in range(20)]
    narrow_rows = [{"agent": 0, "modalities": "a", "n_samples": 3,
                    "classes": [0] * 18 + [1, 2]}]
    narrow = render_table(narrow_rows, many)
    assert len(narrow.columns) == 4
    assert "c18:1 c19:2" in _text(narrow)


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_png_and_svg(
    described: tuple[list[dict], tuple[str, ...]], tmp_path: Path, suffix: str, magic: bytes
) -> None:
    rows, names = described
    path = plot_partition(rows, names, tmp_path / "sub" / f"agents{suffix}")
    assert path.read_bytes().startswith(magic)
    assert not list(path.parent.glob("*.tmp"))


def test_plot_refuses_other_suffixes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must end in .png or .svg") as info:
        plot_partition([], ["a"], tmp_path / "x.pdf")
    assert info.value.field == "path"


def test_natural_partition_through_split_over_agents(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "nat.npz"
    np.savez(path, x_a=rng.normal(size=(40, 3)), x_b=rng.normal(size=(40, 2)),
             y=np.arange(40) % 2, agent=np.arange(40) // 10)
    data = load_dataset(f"npz:{path}", 0, {"test_fraction": 0.25}, None)
    groups, parts = split_over_agents(data, {"ratio": 0.5, "n_agents": 4}, "natural", 0)
    rows = describe_partition(data, groups, parts)
    assert [r["modalities"] for r in rows] == ["a", "b", "a+b", "a+b"]
    assert sum(r["n_samples"] for r in rows) == 30
