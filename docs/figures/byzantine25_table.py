"""Tables of the issue-25 study (docs/robustness.md, "`robust`: findings") from the run folders
of configs/studies/byzantine25_ring.yaml (and _ring_long, _er, _attacks, _multimodal, _relay).

    python docs/figures/byzantine25_table.py runs/byz25_ring
    python docs/figures/byzantine25_table.py runs/byz25_attacks --groups

One table per seating found in the folder (``count: 1``, a seeded draw per seed, or fixed
``agents``), each against the same no-attack runs; ``--groups`` adds, per seating, the deltas
of every modality group's adjacent and non-adjacent agents (results.json ``agents[].group``),
``--per-seed`` each seed's overall and adjacent delta; ``--trust`` (instead of the tables)
each robust run's final trust below 1, receiver -> sender.

Every accuracy is the mean over the **honest** agents (results.json ``agents[].honest``); every
delta compares the same honest agents in the run of the gossip ``mean`` without attack of the
same seed (the attacker's seat left out there too), in points, mean ± sample std over the
seeds. "adjacent" are the honest agents with the attacker among their ring neighbours
(results.json ``final.adjacent.agents``), "non-adjacent" the others, each compared with the
same agents in that run. "plateaued": results.json ``convergence.converged`` (every group gained
less than 0.5 points over the last 20 % of the rounds).
"""

from __future__ import annotations

import functools
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

ATTACKS = ("none", "sign_flip", "ipm", "dissensus", "nan", "alie", "label_flip", "free_rider",
           "scale", "gaussian")
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
            "attack": adv["attack"] if adv else "none", "seating": seating(adv),
            "group": {a["id"]: a["group"] for a in r["agents"]},
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


def low_trust(folder: Path) -> None:
    """``--trust``: per robust run under attack, the (receiver -> sender) trust below 1 at the
    last saved round (the checkpoint marker's ``aggregator.trust``): who rejected whom lately.
    The screen's counts include what the attackers' own screens rejected; this tells them
    apart."""
    for res in sorted(folder.glob("runs/*/results.json")):
        r = json.loads(res.read_text())
        marks = sorted((res.parent / "state").glob("round_*/run.json"))
        if not r.get("adversary") or not r.get("screened") or not marks:
            continue
        trust = json.loads(marks[-1].read_text())["aggregator"]["trust"]
        low = [f"{i}->{j} {t:.2f}" for i, j, t in trust if t < 1]
        print(f"- {res.parent.name} seed {r['seed']} {r['adversary']['attack']} attackers "
              f"{r['adversary']['agents']}: {', '.join(low) or 'all trust 1'}")


def seating(adv: dict | None) -> str:
    """How the attackers were chosen ("" without attack): ``count 1``, ``agents 8``, ..."""
    if not adv:
        return ""
    if adv.get("agents") is not None:
        return "agents " + ", ".join(str(i) for i in sorted(adv["agents"]))
    if adv.get("count") is not None:
        return f"count {adv['count']}"
    return "per_group " + ", ".join(f"{g}: {c}" for g, c in adv["per_group"].items())


def main() -> None:
    runs = load(Path(sys.argv[1]))
    if "--trust" in sys.argv[2:]:
        low_trust(Path(sys.argv[1]))
        return
    for seat in sorted({r["seating"] for r in runs if r["seating"]}):
        table(runs, seat, "--groups" in sys.argv[2:], "--per-seed" in sys.argv[2:])


def deltas(runs: list[dict], seat: str) -> tuple[dict, dict, dict]:
    """Per (aggregation, attack): one row per seed; and the attackers and adjacent agents per
    seed of this seating."""
    attacker = {r["seed"]: set(r["acc"]) - r["honest"] for r in runs if r["seating"] == seat}
    adjacent = {r["seed"]: r["adjacent"] for r in runs if r["seating"] == seat}
    base = {r["seed"]: r for r in runs if r["agg"] == "mean" and r["attack"] == "none"}
    rows: dict = defaultdict(list)
    for r in runs:
        if r["seating"] not in ("", seat):
            continue
        s = r["seed"]
        honest = r["honest"] - attacker.get(s, set())  # no attack: the same seat left out
        adj = adjacent.get(s, set())
        far = honest - adj
        b = base.get(s)
        d = functools.partial(delta, r, b)
        groups = sorted(set(r["group"].values()))
        rows[r["agg"], r["attack"]].append({
            "acc": mean_of(r, honest), "d": d(honest), "d_adj": d(adj), "d_far": d(far),
            "groups": {g: (d({i for i in honest if r["group"][i] == g}),
                           d({i for i in adj if r["group"][i] == g}),
                           d({i for i in far if r["group"][i] == g})) for g in groups},
            "converged": r["converged"], "wall": r["wall"] or float("nan"),
            "screened": r["screened"], "attacker": attacker.get(s, set()),
        })
    return rows, attacker, adjacent


def delta(run: dict, base: dict | None, ids: set[int]) -> float:
    """Points gained by ``ids`` in ``run`` over the same agents in ``base`` (nan: none)."""
    return 100 * (mean_of(run, ids) - mean_of(base, ids)) if base and ids else float("nan")


def table(runs: list[dict], seat: str, groups: bool, per_seed: bool) -> None:
    rows, attacker, adjacent = deltas(runs, seat)
    order = [a for a in ATTACKS if any(k[1] == a for k in rows)] + sorted(
        {k[1] for k in rows} - set(ATTACKS))
    print(f"seating: {seat}; {sum(len(x) for x in rows.values())} runs; attackers per seed: "
          f"{ {s: sorted(a) for s, a in sorted(attacker.items())} }; adjacent: "
          f"{ {s: sorted(a) for s, a in sorted(adjacent.items())} }\n")
    print("| aggregation | attack | honest acc | Δ overall | Δ adjacent | Δ non-adjacent "
          "| plateaued | seeds | wall s | screen: rejected from attacker / honest of copies |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    keys = [(agg, a) for agg in AGGS for a in order if (agg, a) in rows]
    for agg, attack in keys:
        xs = rows[agg, attack]
        print(f"| `{agg}` | {attack} | {cell([x['acc'] for x in xs], '.3f')} | "
              f"{cell([x['d'] for x in xs])} | {cell([x['d_adj'] for x in xs])} | "
              f"{cell([x['d_far'] for x in xs])} | "
              f"{sum(x['converged'] for x in xs)}/{len(xs)} | {len(xs)} | "
              f"{np.mean([x['wall'] for x in xs]):.0f} | {screen(xs, attack)} |")
    if per_seed:
        print("\nper seed (seeds in order): Δ overall; Δ adjacent\n")
        for agg, attack in keys:
            xs = rows[agg, attack]
            print(f"- `{agg}` {attack}: " + ", ".join(f"{x['d']:+.1f}" for x in xs) + "; "
                  + ", ".join(f"{x['d_adj']:+.1f}" for x in xs))
    if groups:
        names = sorted({g for xs in rows.values() for x in xs for g in x["groups"]},
                       key=lambda g: (g.count("+"), g))  # unimodal groups first
        print("\nper group, Δ of the group's honest agents (Δ adjacent / Δ non-adjacent; — where "
              "the group has no such agent)\n")
        print("| aggregation | attack | " + " | ".join(names) + " |")
        print("|---|---|" + "---|" * len(names))
        for agg, attack in keys:
            xs = rows[agg, attack]
            print(f"| `{agg}` | {attack} | " + " | ".join(
                f"{cell([x['groups'][g][0] for x in xs])} "
                f"({cell([x['groups'][g][1] for x in xs])} / "
                f"{cell([x['groups'][g][2] for x in xs])})" for g in names) + " |")
    print()


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
