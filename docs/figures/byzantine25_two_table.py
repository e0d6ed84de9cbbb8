"""Table of the issue-25 two-attacker runs (docs/robustness.md, "Two attackers") from the run
folder of configs/studies/byzantine25_two.yaml.

    python docs/figures/byzantine25_two_table.py runs/byz25_two

As docs/figures/byzantine25_table.py: accuracy is the mean over the honest agents; every delta
compares the same honest agents in the run of the gossip ``mean`` without attack of the same
seed (the attackers' seats left out there too), in points, mean ± sample std over the seeds.
"adjacent": honest agents with an attacker among their ring neighbours (results.json
``final.adjacent.agents``); "both sides": honest agents whose two ring neighbours are both
attackers (agent 2 for seats 1 and 3); "non-adjacent": the others.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from byzantine25_table import AGGS, cell, load, mean_of  # noqa: E402


def main() -> None:
    runs = load(Path(sys.argv[1]))
    base = {r["seed"]: r for r in runs if r["agg"] == "mean" and r["attack"] == "none"}
    seats = sorted({tuple(sorted(set(r["acc"]) - r["honest"])) for r in runs
                    if r["attack"] != "none"})
    rows: dict = defaultdict(list)
    for r in runs:
        n = len(r["acc"])
        bad = set(r["acc"]) - r["honest"]
        for seat in ([tuple(sorted(bad))] if bad else seats):  # no attack: every seating's baseline
            honest = set(r["acc"]) - set(seat)
            adj = {i for i in honest if (i - 1) % n in seat or (i + 1) % n in seat}
            both = {i for i in honest if (i - 1) % n in seat and (i + 1) % n in seat}
            far = honest - adj
            b = base[r["seed"]]
            d = lambda ids, r=r, b=b: 100 * (mean_of(r, ids) - mean_of(b, ids))  # noqa: E731
            rows[r["agg"], seat, bool(bad)].append({
                "acc": mean_of(r, honest), "d": d(honest), "d_adj": d(adj),
                "d_both": d(both) if both else float("nan"), "d_far": d(far),
                "converged": r["converged"], "screened": r["screened"], "seat": set(seat)})
    print("| attackers | aggregation | attack | honest acc | Δ overall | Δ adjacent | Δ both sides "
          "| Δ non-adjacent | plateaued | screen: rejected from attackers / honest of copies |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seat in seats:
        for attacked in (False, True):
            for agg in AGGS:
                xs = rows.get((agg, seat, attacked))
                if not xs:
                    continue
                print(f"| {', '.join(map(str, seat))} | `{agg}` | "
                      f"{'sign_flip' if attacked else 'none'} | "
                      f"{cell([x['acc'] for x in xs], '.3f')} | {cell([x['d'] for x in xs])} | "
                      f"{cell([x['d_adj'] for x in xs])} | {cell([x['d_both'] for x in xs])} | "
                      f"{cell([x['d_far'] for x in xs])} | "
                      f"{sum(x['converged'] for x in xs)}/{len(xs)} | {screen(xs, attacked)} |")


def screen(xs: list[dict], attacked: bool) -> str:
    if not all(x["screened"] for x in xs):
        return "—"
    bad = sum(n for x in xs for j, n in x["screened"]["rejected_from"]
              if attacked and j in x["seat"])
    total = sum(x["screened"]["rejected"] for x in xs)
    return f"{bad:,} / {total - bad:,} of {sum(x['screened']['copies'] for x in xs):,}"


if __name__ == "__main__":
    main()
