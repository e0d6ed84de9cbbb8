"""Figures and the HTML report from real (tiny) run, compare and sweep folders."""

from __future__ import annotations

import html
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from matplotlib.image import imread

from parsefl.config import load_config, validate
from parsefl.errors import ConfigError, DataError
from parsefl.experiments.run.simulate import run_experiment
from parsefl.experiments.sweeps.compare import compare_sweep, write_outputs
from parsefl.experiments.sweeps.sweep import Sweep, load_sweep
from parsefl.plots import plot_dir, plot_slices_tsne, write_report
from parsefl.plots.markdown import split_code
from parsefl.plots.tsne import embed

QUICK = ["data.name=synthetic_pid", "data.params={n_samples: 300}", "partition.name=iid",
         "mix={m1: 1, m2: 1, m1+m2: 1}", "model.dim=9", "model.encoder.params.hidden=[8]",
         "train.local_steps=1", "rounds=2", "eval_every=1"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_sweep_inline(sweep: Sweep, out: Path) -> None:
    """Each run of ``sweep`` in this process, then the real summary files. (run_sweep would
    set torch to one thread per core; on tiny models with busy cores one thread is 10-50x
    faster, see the fixture.)"""
    results = {spec: run_experiment(validate(sweep.raw_config(spec)), out / "runs" / spec.run_id)
               for spec in sweep.specs()}
    write_outputs(sweep, results, out)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """One parse run, a compare (dsgd_task, parse x seeds 0, 1) and a grid sweep (model.dim x
    local, parse, one seed; its local run serves as the run without gradient cosine)."""
    root = tmp_path_factory.mktemp("plots")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add synchronisation cost
    try:
        run_experiment(load_config(None, QUICK), root / "run")
        run_sweep_inline(compare_sweep(None, ["dsgd_task", "parse"], [0, 1], QUICK),
                         root / "compare")
        spec = {"overrides": {k: yaml.safe_load(v) for k, v in (q.split("=", 1) for q in QUICK)},
                "grid": {"model.dim": [6, 9]}, "methods": ["local", "parse"], "seeds": [0]}
        (root / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        run_sweep_inline(load_sweep(root / "sweep.yaml"), root / "grid")
    finally:
        torch.set_num_threads(threads)
    local = next((root / "grid" / "runs").glob("local-*"))
    return {"run": root / "run", "local": local, "compare": root / "compare",
            "grid": root / "grid"}


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # not a blank canvas


def assert_figures(paths: list[Path], expected: set[str]) -> None:
    assert {p.name for p in paths} == expected
    for path in paths:
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert_png(path)
        else:
            assert ET.parse(path).getroot().tag.endswith("svg")


def test_run_folder_figures_in_png_and_svg(folders):
    paths = plot_dir(folders["run"], formats=("png", "svg"))
    assert all(p.parent == folders["run"] / "figures" for p in paths)
    assert_figures(paths, {f"{n}.{f}" for n in ("accuracy", "bytes", "gradient_cosine")
                           for f in ("png", "svg")})


def test_local_run_has_no_gradient_cosine_figure(folders, tmp_path):
    assert_figures(plot_dir(folders["local"], tmp_path), {"accuracy.png", "bytes.png"})


def test_compare_folder_figures(folders, tmp_path):
    paths = plot_dir(folders["compare"], tmp_path, formats=["svg", "png"])
    assert_figures(paths, {f"{n}.{f}" for n in ("accuracy", "gradient_cosine", "bytes",
                                                "frontier") for f in ("png", "svg")})


def test_grid_sweep_has_one_figure_per_point_and_the_ablation(folders, tmp_path):
    names = {p.name for p in plot_dir(folders["grid"], tmp_path)}
    assert "ablation.png" in names and "bytes.png" in names
    assert sorted(n for n in names if n.startswith("accuracy")) == [
        "accuracy-00-6.png", "accuracy-01-9.png"]
    # local logs no cosine, parse does: each point still gets its dilemma figure
    assert len([n for n in names if n.startswith("gradient_cosine")]) == 2
    for name in names:
        assert_png(tmp_path / name)


def test_sweep_without_summary_single_method_single_seed(folders, tmp_path):
    """An interrupted compare (no summary.json / results.csv yet) with one finished run."""
    src = folders["compare"] / "runs" / "parse" / "seed0"
    shutil.copytree(src, tmp_path / "cmp" / "runs" / "parse" / "seed0")
    paths = plot_dir(tmp_path / "cmp")
    assert {p.name for p in paths} == {"accuracy.png", "gradient_cosine.png", "bytes.png",
                                       "frontier.png"}
    page = write_report(tmp_path / "cmp").read_text()
    assert "parse" in page and "<table>" in page


def test_grid_points_of_a_running_sweep_come_from_the_configs(folders, tmp_path):
    """Before summary.json / results.csv exist, the grid keys are the differing config
    fields; the labels match what the finished sweep's summary.json uses."""
    shutil.copytree(folders["grid"] / "runs", tmp_path / "grid" / "runs")
    names = {p.name for p in plot_dir(tmp_path / "grid")}
    assert {"accuracy-00-6.png", "accuracy-01-9.png", "ablation.png"} <= names


def test_nan_cells_and_missing_columns_are_tolerated(folders, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(folders["run"], run)
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [k for k, col in enumerate(header) if not col.startswith(("grad_cos", "bytes_cum"))]
    rows = [line.split(",") for line in lines[1:]]
    rows[0][header.index("accuracy.m1")] = "nan"
    rows[1][header.index("accuracy.overall")] = ""
    text = [",".join(header[k] for k in keep)] + [",".join(r[k] for k in keep) for r in rows]
    (run / "metrics.csv").write_text("\n".join(text) + "\n")
    (run / "results.json").unlink()  # as if still running: cosine only from metrics.csv
    (run / "manifest_results.json").unlink()  # (written last, with results.json)
    assert_figures(plot_dir(run), {"accuracy.png", "bytes.png"})
    assert "unfinished" in write_report(run).read_text()


def test_a_run_whose_results_do_not_match_their_manifest_is_refused(folders, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(folders["run"], run)
    with (run / "metrics.csv").open("a") as fh:
        fh.write("99,0.1,0.99\n")  # a row appended after the run
    with pytest.raises(ConfigError, match="RUN_DIR: .*manifest_results.json: metrics.csv"):
        plot_dir(run)


def test_bad_inputs_fail_clearly(folders, tmp_path):
    with pytest.raises(DataError, match="neither a run folder"):
        plot_dir(tmp_path)
    with pytest.raises(ConfigError, match="--format"):
        plot_dir(folders["run"], tmp_path, formats=("jpg",))
    with pytest.raises(ConfigError, match="--tsne-agent"):
        plot_dir(folders["compare"], tmp_path, tsne_agent=0)


def test_tsne_of_slices(folders, tmp_path):
    path = plot_slices_tsne(folders["run"], 2, tmp_path / "tsne.png", max_points=50)
    assert path == tmp_path / "tsne.png"
    assert_png(path)
    paths = plot_dir(folders["run"], tmp_path / "figs", formats=("svg",), tsne_agent=0)
    assert (tmp_path / "figs" / "tsne-agent0000.svg") in paths


def test_tsne_is_deterministic():
    feats = np.random.default_rng(0).normal(size=(40, 6))
    assert np.array_equal(embed(feats, 3), embed(feats, 3))


def test_tsne_errors_name_the_problem(folders, tmp_path):
    with pytest.raises(ConfigError, match="agent: 7 is out of range"):
        plot_slices_tsne(folders["run"], 7, tmp_path / "t.png")
    baseline = folders["compare"] / "runs" / "dsgd_task" / "seed0"
    with pytest.raises(ConfigError, match="MonolithicModel"):
        plot_slices_tsne(baseline, 0, tmp_path / "t.png")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(folders["run"] / "config.yaml", bare / "config.yaml")
    with pytest.raises(DataError, match="checkpoints"):
        plot_slices_tsne(bare, 0, tmp_path / "t.png")


class StrictHTML(HTMLParser):
    """Fails on unbalanced or misnested tags (html.parser itself never complains)."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def parse_html(text: str) -> None:
    parser = StrictHTML()
    parser.feed(text)
    parser.close()
    assert parser.doctype and parser.stack == []


def assert_self_contained(text: str) -> None:
    """Every src/href is inline data; no scripts or stylesheets are fetched."""
    assert re.findall(r'(?:src|href)="(?!data:)', text) == []
    assert "<script" not in text and "<link" not in text


def test_report_of_a_run(folders, tmp_path):
    out = write_report(folders["run"], tmp_path / "r.html")
    text = out.read_text()
    parse_html(text)
    assert "parse" in text and "<img" in text and "data:image/png;base64," in text
    assert html.escape((folders["run"] / "config.yaml").read_text()) in text
    assert "m1+m2" in text
    assert_self_contained(text)
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temp file left


def test_report_of_a_compare_and_a_sweep(folders):
    for kind in ("compare", "grid"):
        text = write_report(folders[kind]).read_text()
        parse_html(text)
        assert "<img" in text and "<table>" in text
        assert_self_contained(text)
    text = (folders["compare"] / "report.html").read_text()
    assert "dsgd_task" in text and "parse" in text
    config = folders["compare"] / "runs" / "parse" / "seed1" / "config.yaml"
    assert html.escape(config.read_text()) in text


def test_compare_report_shows_tables_first_and_the_config_as_code(folders, tmp_path):
    """summary.md's resolved config (a ```yaml fence) is one code block with its indentation,
    after the summary tables and the figures; no fence is left as text."""
    text = write_report(folders["compare"], tmp_path / "r.html").read_text()
    assert "```" not in text
    blocks = re.findall(r'<pre><code class="language-yaml">(.*?)</code></pre>', text, re.S)
    shared = html.unescape(blocks[0])
    assert shared.startswith("method: dsgd_task\n") and "\n  name: " in shared
    assert yaml.safe_load(shared)["rounds"] == 2
    first_table, first_figure = text.index("<table>"), text.index("<img")
    intro = text.index("Resolved config of the first run")
    assert first_table < first_figure < intro < text.index("<pre><code")


def test_markdown_tables_are_escaped():
    out, code = split_code("### a<b\n\n**x** `y` <i>z</i> [l](http://e) ![i](http://e/i.png)"
                           "\n\n| m | <i> |\n|---|---|\n| p&q | 1 |\n")
    assert "<h4>a&lt;b</h4>" in out
    assert "<strong>x</strong> <code>y</code> &lt;i&gt;z&lt;/i&gt;" in out
    assert "<a " not in out and "<img" not in out  # the page fetches nothing
    assert "<th>&lt;i&gt;</th>" in out and "<td>p&amp;q</td>" in out and code == ""
    parse_html(f"<!DOCTYPE html><html><body>{out}</body></html>")


def test_code_blocks_are_split_from_the_tables():
    text = ("Made by `x`.\n\nResolved config:\n\n```yaml\na:\n  b: <1>\n```\n\n"
            "**accuracy**\n\n| m | v |\n|---|---|\n| p | 1 |\n")
    rest, code = split_code(text)
    assert code == ('<p>Resolved config:</p>\n'
                    '<pre><code class="language-yaml">a:\n  b: &lt;1&gt;\n</code></pre>')
    assert rest.startswith("<p>Made by <code>x</code>.</p>\n<p><strong>accuracy</strong></p>")
    assert "<table>" in rest and "<pre>" not in rest
