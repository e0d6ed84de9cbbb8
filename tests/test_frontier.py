"""The accuracy-per-byte frontier: curves per run label from hand-written run folders, points
equal to the metrics (mean over seeds), one figure per setting, rendered through plot_dir."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.image import imread

from parsefl.config import load_config, to_yaml
from parsefl.plots.frontier import frontier_curves, frontier_figure, plot_frontier
from parsefl.plots.load import load_run
from parsefl.plots.sweep_plots import sweep_accuracy_figure

QUICK = ["data.name=synthetic_pid", "mix={m1: 1, m2: 1, m1+m2: 1}"]
# (method, seed, topology, overlay) -> (cumulative bytes, overall accuracy, m1 accuracy) at
# rounds 5 and 10.
RUNS = {
    ("parse", 0, "ring", "induced"): ([100, 200], [0.5, 0.7], [0.4, 0.6]),
    ("parse", 1, "ring", "induced"): ([110, 220], [0.6, 0.8], [0.5, 0.7]),
    ("dsgd_full", 0, "ring", "induced"): ([1000, 2000], [0.4, 0.9], [0.3, 0.8]),
    ("local", 0, "ring", "induced"): ([0, 0], [0.3, 0.4], [0.2, 0.3]),
    ("parse", 0, "erdos_renyi", "auto"): ([300, 600], [0.7, 0.85], [0.6, 0.75]),
}


def write_run(folder: Path, method: str, seed: int, topology: str, overlay: str,
              values: tuple[list[int], list[float], list[float]], extra: tuple = ()) -> None:
    folder.mkdir(parents=True)
    cfg = load_config(None, [*QUICK, f"method={method}", f"seed={seed}",
                             f"topology.name={topology}", f"overlay.name={overlay}", *extra])
    (folder / "config.yaml").write_text(to_yaml(cfg))
    cum, overall, m1 = values
    with (folder / "metrics.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["round", "bytes_cumulative", "accuracy.overall", "accuracy.m1"])
        writer.writerows(zip([5, 10], cum, overall, m1, strict=True))
    (folder / "results.json").write_text("{}")  # unfinished: the frontier reads metrics.csv


@pytest.fixture()
def runs(tmp_path):
    for (method, seed, topo, overlay), values in RUNS.items():
        write_run(tmp_path / "runs" / f"{method}-{topo}-{overlay}" / f"seed{seed}", method, seed,
                  topo, overlay, values)
    return [load_run(p.parent) for p in sorted((tmp_path / "runs").rglob("results.json"))]


def test_curves_are_the_metrics_averaged_over_seeds(runs):
    settings = frontier_curves(runs)
    assert list(settings) == ["topology.name=erdos_renyi", "topology.name=ring"]
    ring = {c.label: c for c in settings["topology.name=ring"]}
    assert sorted(ring) == ["dsgd_full", "local", "parse"]
    parse = ring["parse"]
    assert parse.seeds == 2
    np.testing.assert_array_equal(parse.rounds, [5, 10])
    np.testing.assert_allclose(parse.bytes, [105, 210])
    np.testing.assert_allclose(parse.accuracy["overall"], [[0.5, 0.7], [0.6, 0.8]])
    np.testing.assert_allclose(parse.accuracy["m1"], [[0.4, 0.6], [0.5, 0.7]])
    (auto,) = settings["topology.name=erdos_renyi"]
    assert auto.label == "parse overlay=auto"
    np.testing.assert_allclose(auto.bytes, [300, 600])


def test_drawn_points_equal_the_metrics(runs):
    curves = frontier_curves(runs)["topology.name=ring"]
    fig = frontier_figure(curves, "ring")
    overall, m1 = fig.axes[:2]
    assert overall.get_title() == "overall" and m1.get_title() == "m1"
    assert overall.get_xscale() == "log"
    lines = {line.get_label(): line.get_xydata() for line in overall.lines}
    np.testing.assert_allclose(lines["parse (n=2)"],
                               [[105, 0.55], [210, 0.75]])
    np.testing.assert_allclose(lines["dsgd_full (n=1)"],
                               [[1000, 0.4], [2000, 0.9]])
    assert not any(label.startswith("local") for label in lines)  # sends nothing: no log x
    assert ("Not drawn: local (n=1) sent no bytes (0 has no place on the log bytes axis)."
            in [t.get_text() for t in fig.texts])  # named, not silently dropped
    m1_lines = {line.get_label(): line.get_xydata() for line in m1.lines}
    np.testing.assert_allclose(m1_lines["parse (n=2)"],
                               [[105, 0.45], [210, 0.65]])
    # the ± std band of parse's two seeds: 0.5/0.6 -> 0.55 ± 0.0707
    band = overall.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(0.55 - np.std([0.5, 0.6], ddof=1))


def test_one_png_per_setting(runs, tmp_path):
    paths = plot_frontier(runs, tmp_path / "figs", ["png"])
    assert [p.name for p in paths] == ["frontier-00-erdos_renyi.png", "frontier-01-ring.png"]
    for path in paths:
        image = imread(path)
        assert image.shape[0] > 100 and image.std() > 0


def test_a_label_names_only_what_differs_from_the_defaults(runs, tmp_path):
    comm = "communication={compressor: int8, kinds: {enc: {period: 4}}}"
    write_run(tmp_path / "c" / "seed0", "parse", 0, "ring", "induced", RUNS[("parse", 0, "ring",
              "induced")], (comm,))
    curves = frontier_curves([*runs, load_run(tmp_path / "c" / "seed0")])
    labels = [c.label for c in curves["topology.name=ring"]]
    assert "parse compressor=int8 kinds={enc: {period: 4}}" in labels and "parse" in labels


def looks(fig) -> dict[str, tuple]:
    """Label -> (colour, line style, dash pattern, marker) of the first panel's lines."""
    return {line.get_label().split(" (n=")[0]: (
        to_hex(line.get_color()), line.get_linestyle(),
        line._unscaled_dash_pattern,  # the dashes as set, before scaling by the line width
        line.get_marker()) for line in fig.axes[0].lines}


def test_a_method_looks_the_same_in_the_accuracy_and_the_frontier_figure(runs):
    ring = [r for r in runs if r.config["topology"]["name"] == "ring"]
    accuracy = looks(sweep_accuracy_figure(ring, "-", ["local", "dsgd_full", "parse"]))
    alone = looks(sweep_accuracy_figure([r for r in ring if r.method == "parse"], "-",
                                        ["parse"]))
    frontier = looks(frontier_figure(frontier_curves(ring)["-"], "ring"))
    assert sorted(accuracy) == ["dsgd_full", "local", "parse"]
    assert sorted(frontier) == ["dsgd_full", "parse"]  # local sent no bytes
    for method in frontier:
        assert frontier[method] == accuracy[method]
    assert alone["parse"] == accuracy["parse"]
    assert len({look[0] for look in accuracy.values()}) == 3


def test_a_variant_of_a_method_keeps_its_colour_in_the_frontier(runs, tmp_path):
    write_run(tmp_path / "c" / "seed0", "parse", 0, "ring", "induced",
              RUNS[("parse", 0, "ring", "induced")], ("communication={compressor: int8}",))
    ring = [r for r in runs if r.config["topology"]["name"] == "ring"]
    curves = frontier_curves([*ring, load_run(tmp_path / "c" / "seed0")])["-"]
    drawn = looks(frontier_figure(curves, "ring"))
    plain, variant = drawn["parse"], drawn["parse compressor=int8"]
    assert variant[0] == plain[0] and variant[1:] != plain[1:]
    assert plain == looks(frontier_figure([c for c in curves if c.label == "parse"], "-"))[
        "parse"]
