"""Bytes per link per round of parse vs dsgd_full and dsgd_hybrid (and the other methods) on
the quickstart mix (mfeat fou + pix, 12 agents, ring). Bytes do not depend on training, so
one round each is enough; the figures are exact, not timings.

    python benchmarks/bytes.py            # appended to RESULTS.md
    python benchmarks/bytes.py --quick    # parse, dsgd_full, dsgd_hybrid; prints only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402


def bytes_of(method: str) -> tuple[float, int, dict[str, int]]:
    """Mean bytes per link, max bytes on a link, and bytes by component, in round 1."""
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment
    from parsefl.runtime.transport import payload_bytes

    exp = build_experiment(load_config(None, [f"method={method}", "rounds=1",
                                              "train.local_steps=1"]))
    exp.loop.prepare(0)
    by_comp: dict[str, int] = {}
    for i, plan in exp.loop.plans.items():
        for comp, peers in plan.paths.items():
            size = payload_bytes(exp.agents[i].get_component(comp))
            hops = sum(len(p) - 1 for p in peers.values())
            by_comp[comp.split(".")[0]] = by_comp.get(comp.split(".")[0], 0) + size * hops
    stats = exp.loop.step(0)
    links = exp.loop.topology.at(0).number_of_edges()
    return sum(stats.link_bytes.values()) / links, max(stats.link_bytes.values(), default=0), \
        by_comp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import parsefl.components  # noqa: F401
    from parsefl.registry import SHARING

    methods = ["parse", "dsgd_full", "dsgd_hybrid"]
    if not args.quick:
        methods += [m for m in SHARING.names() if m not in methods and m != "centralized"]
    rows = ["| method | mean bytes/link/round | max bytes on a link | parse / method | "
            "by component kind (bytes/round, all links) |", "|---|---|---|---|---|"]
    parse_mean = None
    for m in methods:
        mean, peak, by = bytes_of(m)
        parse_mean = mean if m == "parse" else parse_mean
        ratio = f"{parse_mean / mean:.2f}" if mean else "–"
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(by.items()))
        rows.append(f"| {m} | {mean:,.0f} | {peak:,} | {ratio} | {kinds or '–'} |")
        print(rows[-1], flush=True)
    if not args.quick:
        append_results("Bytes per link per round on the quickstart mix", rows,
                       ["Payload bytes of the tensors sent (float32), counted on every "
                        "physical link crossed; exact figures."])


if __name__ == "__main__":
    main()
