"""``write_report``: one self-contained HTML page per run or sweep folder — result tables
first, then figures embedded as base64 PNG, per-run tables, and the resolved configs last, as
code blocks; no external assets."""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parsefl.experiments.run.rundir import atomic_write
from parsefl.experiments.sweeps.summary import markdown_report
from parsefl.plots.load import RunData, SweepData, load_any
from parsefl.plots.markdown import split_code
from parsefl.plots.run_plots import plot_run
from parsefl.plots.sweep_plots import plot_sweep

CAPTIONS = {
    "accuracy": "Test accuracy per evaluation round, per modality group and overall.",
    "bytes": "Communication: payload bytes per physical link per round.",
    "gradient_cosine": "Gradient conflict: cosine between the mean gradient of unimodal and "
                       "of multimodal holders of each shared component (1 = agree, "
                       "<0 = pull apart).",
    "ablation": "Final test accuracy per grid point and method (error bars: std over seeds).",
    "frontier": "Accuracy per byte: test accuracy against cumulative bytes sent at each "
                "evaluation round, one curve per run label (log bytes axis).",
    "tsne": "t-SNE of one agent's r/u/s slices on the test set, coloured by class.",
}
STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #bbb;
padding:.25em .6em;text-align:right}th{background:#eee}td:first-child,th:first-child{
text-align:left}img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}
pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.85em;max-height:36em}
code{font-family:ui-monospace,monospace}details{margin:.3em 0}summary{cursor:pointer}
figcaption{color:#555;font-size:.9em}"""


def write_report(path: Path, out: Path | None = None) -> Path:
    """Write a self-contained HTML report of a run folder or a sweep/compare folder.

    Figures are redrawn (PNG, into a temporary folder) so the page matches the folder as it
    is now; t-SNE figures already in ``path/figures`` (``tsne-*.png``) are embedded too.

    Args:
        path: The run or sweep folder.
        out: The HTML file; default ``path/report.html``.

    Returns:
        The written path (written atomically: temp file + rename).

    Raises:
        DataError: ``path`` is neither a run nor a sweep folder.
    """
    data = load_any(path)
    out = out if out is not None else path / "report.html"
    with tempfile.TemporaryDirectory() as tmp:
        pngs = (plot_run(data, Path(tmp), ["png"]) if isinstance(data, RunData)
                else plot_sweep(data, Path(tmp), ["png"]))
        figures = [_figure(p) for p in [*pngs, *sorted((path / "figures").glob("tsne-*.png"))]]
    top, bottom = run_body(data) if isinstance(data, RunData) else sweep_body(data)
    kind = "run" if isinstance(data, RunData) else \
        "compare" if all(r.point == "-" for r in data.runs) else "sweep"
    sections = [*top, "<h2>Figures</h2>", *(figures or ["<p>No figures yet.</p>"]), *bottom]
    atomic_write(out, page(f"parsefl {kind} report: {path.resolve().name}", sections))
    out.chmod(0o644)  # a page to share: atomic_write's temp file is private (0600)
    return out


def page(title: str, sections: Sequence[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>",
        "<body>", f"<h1>{html.escape(title)}</h1>", *sections, "</body>", "</html>", "",
    ])


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = path.stem
    caption = next((c for k, c in CAPTIONS.items() if name.startswith(k)), "")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(name)}">'
            f"<figcaption><code>{html.escape(name)}</code> {html.escape(caption)}"
            "</figcaption></figure>")


def _pre(text: str) -> str:
    """A config.yaml as a code block."""
    return f'<pre><code class="language-yaml">{html.escape(text or "(missing)")}</code></pre>'


def html_table(head: list[str], body: list[list[str]]) -> str:
    """A ``<table>`` of plain-text cells (escaped); ragged rows padded or cut to the header."""
    width = len(head)
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
           + "</tr></thead>", "<tbody>"]
    for row in body:
        row = (row + [""] * width)[:width]
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _num(value: Any, fmt: str = "{:.4f}") -> str:
    return "–" if value is None else fmt.format(value)


def run_body(run: RunData) -> tuple[list[str], list[str]]:
    """Sections of a run report before and after the figures."""
    res = run.results
    if not res:
        info = ["<p>results.json is not written yet (the run is unfinished); figures show the "
                "evaluations so far.</p>"]
        return info, ['<h2 id="configuration">Configuration</h2>' + _pre(run.config_text)]
    comm = res.get("communication", {})
    cos = res.get("diagnostics", {}).get("gradient_cosine", {}).get("overall_mean")
    facts = [["method", run.method], ["dataset", str(res.get("dataset"))],
             ["seed", str(run.seed)], ["rounds", str(res.get("rounds_completed"))],
             ["wall time (s)", _num(res.get("wall_time_s"), "{:.1f}")],
             ["bytes in all", _num(comm.get("bytes_total"), "{:,}")],
             ["bytes per link per round (mean)",
              _num(comm.get("bytes_per_link_per_round_mean"), "{:,.0f}")],
             ["bytes per link per round (max)",
              _num(comm.get("bytes_per_link_per_round_max"), "{:,}")],
             ["gradient cosine (mean)", _num(cos)]]
    top = ["<h2>Run</h2>", html_table(["", "value"], facts),
           "<h2>Final results</h2>", html_table(*final_table(res))]
    return top, ["<h2>Agents</h2>", html_table(*agent_table(res)),
                 '<h2 id="configuration">Configuration</h2>' + _pre(run.config_text)]


def final_table(res: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    acc, f1 = res["final"]["accuracy"], res["final"]["macro_f1"]
    counts: dict[str, int] = {}
    for agent in res.get("agents", []):
        group = "+".join(agent["modalities"])
        counts[group] = counts.get(group, 0) + 1
    rows = [[g, str(counts.get(g, "")), _num(acc["groups"][g]), _num(f1["groups"].get(g))]
            for g in acc["groups"]]
    rows.append(["overall", str(len(res.get("agents", []))), _num(acc["overall"]),
                 _num(f1["overall"])])
    return ["group", "agents", "accuracy", "macro-F1"], rows


def agent_table(res: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = [[str(a["id"]), "+".join(a["modalities"]), _num(a.get("accuracy")),
             _num(a.get("macro_f1")), str(a.get("n_train", ""))] for a in res.get("agents", [])]
    return ["agent", "modalities", "accuracy", "macro-F1", "training samples"], rows


def sweep_body(sweep: SweepData) -> tuple[list[str], list[str]]:
    """Sections of a sweep report before and after the figures: the summary's tables
    first; its resolved config (a code block in summary.md) moves to the end, beside each
    run's config."""
    md = sweep.summary_md or (markdown_report(sweep.summary, "parsefl report")
                              if sweep.summary else "")
    summary, shared = split_code(md) if md else ("<p>No summary yet.</p>", "")
    ids = {id(r): r.path.relative_to(sweep.path / "runs").as_posix() for r in sweep.runs}
    rows = [[ids[id(r)], r.point, r.method, str(r.seed),
             _num(r.results["final"]["accuracy"]["overall"]),
             _num(r.results["final"]["macro_f1"]["overall"]),
             _num(r.results.get("wall_time_s"), "{:.1f}")] for r in sweep.runs]
    runs = html_table(["run", "grid point", "method", "seed", "accuracy", "macro-F1",
                       "wall time (s)"], rows)
    configs = "".join(
        f"<details><summary>{html.escape(ids[id(r)])}"
        f"{'' if r.point == '-' else ' · ' + html.escape(r.point)}</summary>"
        f"{_pre(r.config_text)}</details>" for r in sweep.runs)
    return ["<h2>Summary</h2>", summary], [
        "<h2>Runs</h2>", runs, '<h2 id="configuration">Resolved configurations</h2>', shared,
        "<h3>Each run's config.yaml</h3>" + (configs or "<p>No finished runs.</p>")]
