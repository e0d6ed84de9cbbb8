"""Tables of the issue-25 study (docs/robustness.md, "`robust`: findings") from the run folders
of configs/studies/byzantine25_ring.yaml.

    python docs/figures/byzantine25_table.py runs/byz25_ring

Every accuracy is the mean over the **honest** agents (results.json ``agents[].honest``); every
delta compares the same honest agents in the run of the gossip ``mean`` without attack of the
same seed (the attacker's seat left out there too), in points, mean ± sample std over the
seeds. "adjacent" are the honest agents with the attacker among their ring neighbours
(results.json ``final.adjacent.agents``), "non-adjacent" the others, each compared with the
same agents in that run. "plateaued": results.json ``convergence.converged`` (every group gained
less than 0.5 points over the last 20 % of the rounds).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

ATTACKS = ("none", "sign_flip", "ipm", "dissensus", "nan")
AGGS = ("mean", "clipped", "robust")


def load(folder: Path) -> list[dict]:
    runs = []
    for res in sorted(folder.glob("runs/*/results.json")):
        cfg = yaml.safe_load((res.parent / "config.yaml").read_text())
        r = json.loads(res.read_text())
        adv = cfg.get("adversary")
        final = r["final"]
        runs.append({
            "agg": cfg["aggregation"]["name"], "seed": cfg["seed"],
            "attack": adv["attack"] if adv else "none",
            "acc": {a["id"]: a["accuracy"] for a in r["agents"]},
            "honest": {a["id"] for a in r["agents"] if a["honest"]},
            "adjacent": set(final.get("adjacent", {}).get("agents", [])),
            "converged": bool(r.get("convergence", {}).get("converged")),
            "screened": r.get("screened"),
            "wall": r.get("wall_time_s"),
        })
    return runs


def mean_of(run: dict, ids: set[int]) -> float:
    return float(np.mean([run["acc"][i] for i in ids])) if ids else float("nan")


def cell(vals: list[float], fmt: str = "+.1f") -> str:
    vals = [v for v in vals if v == v]
    if not vals:
        return "—"
    sd = f" ± {np.std(vals, ddof=1):{fmt.lstrip('+')}}" if len(vals) > 1 else ""
    return f"{np.mean(vals):{fmt}}{sd}"


def main() -> None:
    runs = load(Path(sys.argv[1]))
    attacker = {r["seed"]: set(r["acc"]) - r["honest"] for r in runs if r["attack"] != "none"}
    adjacent = {r["seed"]: r["adjacent"] for r in runs if r["attack"] != "none"}
    base = {r["seed"]: r for r in runs if r["agg"] == "mean" and r["attack"] == "none"}
    rows: dict = defaultdict(list)
    for r in runs:
        s = r["seed"]
        honest = r["honest"] - attacker.get(s, set())  # no attack: the same seat left out
        adj = adjacent.get(s, set())
        far = honest - adj
        b = base.get(s)
        rows[r["agg"], r["attack"]].append({
            "acc": mean_of(r, honest),
            "d": 100 * (mean_of(r, honest) - mean_of(b, honest)) if b else float("nan"),
            "d_adj": 100 * (mean_of(r, adj) - mean_of(b, adj)) if b else float("nan"),
            "d_far": 100 * (mean_of(r, far) - mean_of(b, far)) if b else float("nan"),
            "converged": r["converged"], "wall": r["wall"] or float("nan"),
            "screened": r["screened"], "attacker": attacker.get(s, set()),
        })
    print(f"{len(runs)} runs; attackers per seed: "
          f"{ {s: sorted(a) for s, a in sorted(attacker.items())} }; adjacent: "
          f"{ {s: sorted(a) for s, a in sorted(adjacent.items())} }\n")
    print("| aggregation | attack | honest acc | Δ overall | Δ adjacent | Δ non-adjacent "
          "| plateaued | seeds | wall s | screen: rejected from attacker / honest of copies |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for agg in AGGS:
        for attack in ATTACKS:
            xs = rows.get((agg, attack))
            if not xs:
                continue
            print(f"| `{agg}` | {attack} | {cell([x['acc'] for x in xs], '.3f')} | "
                  f"{cell([x['d'] for x in xs])} | {cell([x['d_adj'] for x in xs])} | "
                  f"{cell([x['d_far'] for x in xs])} | "
                  f"{sum(x['converged'] for x in xs)}/{len(xs)} | {len(xs)} | "
                  f"{np.mean([x['wall'] for x in xs]):.0f} | {screen(xs, attack)} |")


def screen(xs: list[dict], attack: str) -> str:
    """Summed over the seeds: copies the screen rejected from the attacker and from honest
    senders, of the copies it screened (results.json ``screened``)."""
    if not all(x["screened"] for x in xs):
        return "—"
    bad = sum(n for x in xs for j, n in x["screened"]["rejected_from"]
              if attack != "none" and j in x["attacker"])
    total = sum(x["screened"]["rejected"] for x in xs)
    return f"{bad} / {total - bad} of {sum(x['screened']['copies'] for x in xs)}"


if __name__ == "__main__":
    main()
