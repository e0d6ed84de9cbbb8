"""Output of benchmarks/gpu.py: the JSON file, the Markdown table, the RESULTS.md section."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from _common import RESULTS, machine


def write_json(path: Path, rows: list[dict], meta: dict) -> None:
    """The rows and the machine, rewritten after every row (a killed run keeps its figures)."""
    meta = {"command": " ".join(sys.argv), "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "load_average": os.getloadavg(), **meta}
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


def table(rows: list[dict]) -> str:
    lines = ["| N | device | status | build s | s/round | GPU peak MiB | GPU MiB/agent | "
             "host peak MiB |", "|---|---|---|---|---|---|---|---|"]
    for d in rows:
        if d["kind"] != "size":
            continue
        if d["status"] != "ok":
            lines.append(f"| {d['n']:,} | {d['device']} | {d['status']}: "
                         f"{d.get('why') or d.get('error') or ''} | | | | | |")
            continue
        gpu = d.get("gpu_peak_mib")
        per = f"{gpu / d['n']:.3f}" if gpu else "–"
        lines.append(f"| {d['n']:,} | {d['device']} | ok | {d['build_s']:.1f} | "
                     f"{d['s_per_round']:.4f} | {f'{gpu:,.0f}' if gpu else '–'} | {per} | "
                     f"{d['host_peak_mib']:,.0f} |")
    for d in rows:
        if d["kind"] == "check" and d["status"] in ("ok", "mismatch"):
            tol = d["tolerance"]
            lines.append(f"\nCPU≡{d['device']} check, N = {d['n']}, {d['rounds']} rounds: "
                         f"max |Δparameter| {d['max_abs_param_diff']:.2e} (tol {tol['param']}), "
                         f"max relative Δloss {d['max_rel_loss_diff']:.2e} "
                         f"(tol {tol['loss_rel']}), Δ mean accuracy {d['mean_acc_diff']:.4f} "
                         f"(tol {tol['mean_acc']}): {d['status']}")
        elif d["kind"] == "check":
            lines.append(f"\nCPU≡{d['device']} check: {d['status']} {d.get('error', '')}")
    return "\n".join(lines)


def record(path: Path, results: Path | None = None) -> None:
    """Append a run's JSON (from the GPU machine) to RESULTS.md, with its targets stated."""
    doc = json.loads(path.read_text())
    meta, rows = doc["meta"], doc["rows"]
    sizes = {r["n"]: r for r in rows if r["kind"] == "size" and r["status"] == "ok"}
    gpu = next((r["gpu"] for r in sizes.values() if "gpu" in r), "no GPU")
    ten, hundred = sizes.get(10_000), sizes.get(100_000)
    met = ["- 10,000 agents under 1 s per round: " + (
               f"{ten['s_per_round']:.3f} s, {'met' if ten['s_per_round'] < 1 else 'NOT met'}"
               if ten else "not run, NOT met"),
           "- 100,000 agents run: " + (f"yes, {hundred['s_per_round']:.3f} s per round"
                                        if hundred else "NOT met (see the table)")]
    if sizes:  # where the largest size's device bytes went
        big = sizes[max(sizes)]
        cats = ", ".join(f"{k} {v:.0f}" for k, v in big.get("kib_per_agent", {}).items())
        met.append(f"- KiB per agent on the device at N = {big['n']:,}: {cats}")
    lines = [f"\n## GPU: vectorized backend at 1,000–100,000 agents ({meta['date'][:10]})\n",
             f"`python {meta['command']}` on {meta['machine']}, {gpu}; load average "
             f"{', '.join(f'{x:.1f}' for x in meta['load_average'])}, {meta['wall_s']:.0f} s "
             "in all. Workload: scaling.py's (PARSE, ring, mix 1:1:1, 100 samples per agent, 4 "
             "steps of 25), data drawn in memory. s/round: median after one warm-up round, "
             "with torch.cuda.synchronize; GPU peak: torch.cuda.max_memory_allocated over the "
             "build and the rounds.\n", table(rows), "", *met]
    with (results or RESULTS).open("a") as fh:
        fh.write("\n".join(lines) + "\n")
