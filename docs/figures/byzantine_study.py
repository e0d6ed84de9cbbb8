"""Tables and figures of the issue-12 study (docs/results.md, "Byzantine neighbours and
containment") from the run folders of the byzantine3_*.yaml sweeps.

    python docs/figures/byzantine_study.py runs/byz3_ring runs/byz3_clipped runs/byz3_contain

Every accuracy is the mean over the **honest** agents (results.json ``agents[].honest``), and
every delta compares the same honest agents in the run without attack of the same method,
aggregator, topology and seed (the attacker's seat is left out of that run too), in points,
then averaged over the seeds that finished (the seed count is printed beside each cell).
Also checked per run: every parameter of every saved agent model is finite (non-finite values
accepted: 0) and whether the test-accuracy curves had plateaued (results.json convergence).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file

GROUPS = ("fou", "pix", "fou+pix")


def attack_label(adv: dict | None) -> str:
    if not adv:
        return "none"
    who = (f"{adv['count']}x" if adv.get("count") is not None else
           "+".join(f"{g}" for g in adv.get("per_group", {})) if adv.get("per_group") else
           "ids" + ",".join(map(str, adv.get("agents", []))))
    return f"{adv['attack']}@{who}"


def load_runs(folders: list[Path]) -> list[dict]:
    runs = []
    for folder in folders:
        for res in sorted(folder.glob("runs/*/results.json")):
            cfg = yaml.safe_load((res.parent / "config.yaml").read_text())
            r = json.loads(res.read_text())
            finite = all(bool(torch.isfinite(t).all()) for p in
                         (res.parent / "checkpoints").glob("*.safetensors")
                         for t in load_file(str(p)).values() if t.is_floating_point())
            runs.append({
                "method": cfg["method"], "agg": cfg["aggregation"]["name"],
                "topology": f"{cfg['topology']['name']}, {cfg['rounds']} rounds",
                "seed": cfg["seed"],
                "attack": attack_label(cfg.get("adversary")),
                "agents": {a["id"]: a for a in r["agents"]},
                "rejected": r.get("rejected_messages", {}), "finite": finite,
                "converged": r.get("convergence", {}).get("converged"),
                "groups_conv": {g: v.get("converged") for g, v in
                                r.get("convergence", {}).get("groups", {}).items()},
            })
    return runs


def honest_mean(run: dict, ids: set[int], group: str | None = None) -> float:
    vals = [a["accuracy"] for i, a in run["agents"].items()
            if i in ids and (group is None or a["group"] == group)]
    return float(np.mean(vals)) if vals else float("nan")


def table(runs: list[dict], base_agg: str | None = None) -> dict:
    """(method, agg, topology, attack) -> per-seed (acc, delta, group accs, group deltas)."""
    clean = {(r["method"], r["agg"], r["topology"], r["seed"]): r
             for r in runs if r["attack"] == "none"}
    out: dict = defaultdict(list)
    for r in runs:
        ref = clean.get((r["method"], base_agg or r["agg"], r["topology"], r["seed"]))
        honest = {i for i, a in r["agents"].items() if a["honest"]}
        row = {"acc": honest_mean(r, honest), "rejected": r["rejected"], "finite": r["finite"],
               "converged": r["converged"], "groups_conv": r["groups_conv"],
               "groups": {g: honest_mean(r, honest, g) for g in GROUPS}}
        if ref is not None:
            row["delta"] = 100 * (row["acc"] - honest_mean(ref, honest))
            row["gdelta"] = {g: 100 * (row["groups"][g] - honest_mean(ref, honest, g))
                             for g in GROUPS}
        out[(r["method"], r["agg"], r["topology"], r["attack"])].append(row)
    return out


def fmt(rows: list[dict], key: str = "delta") -> str:
    accs = [x["acc"] for x in rows]
    d = [x[key] for x in rows if key in x]
    sd = f" ± {np.std(d, ddof=1):.1f}" if len(d) > 1 else ""
    delta = f" ({np.mean(d):+.1f}{sd})" if d else ""
    return f"{np.mean(accs):.3f}{delta} n={len(rows)}"


def main() -> None:
    runs = load_runs([Path(p) for p in sys.argv[1:]])
    print(f"{len(runs)} runs; non-finite parameters in saved models: "
          f"{sum(not r['finite'] for r in runs)} runs; plateaued (every group): "
          f"{sum(bool(r['converged']) for r in runs)}")
    own = table(runs)
    vs_mean = table(runs, base_agg="mean")
    print("\n| method | aggregator | topology | attack | honest acc (delta vs same agg, "
          "no attack) | delta vs mean, no attack | rejected |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(own):
        rej = defaultdict(int)
        for x in own[key]:
            for k, v in x["rejected"].items():
                rej[k] += v
        d = [x["delta"] for x in vs_mean[key] if "delta" in x]
        print(f"| {' | '.join(key)} | {fmt(own[key])} | "
              f"{np.mean(d):+.1f} | {dict(rej) or '-'} |" if d else
              f"| {' | '.join(key)} | {fmt(own[key])} | - | {dict(rej) or '-'} |")
    print("\nper group (delta vs same method and aggregator without attack, points):")
    for key in sorted(own):
        rows = [x for x in own[key] if "gdelta" in x]
        if key[3] == "none" or not rows:
            continue
        cells = " | ".join(f"{np.mean([x['groups'][g] for x in rows]):.3f} "
                           f"({np.mean([x['gdelta'][g] for x in rows]):+.1f})" for g in GROUPS)
        print(f"| {' | '.join(key)} | {cells} | {fmt(rows)} |")
    conv = defaultdict(lambda: [0, 0])
    for r in runs:
        for g, c in r["groups_conv"].items():
            conv[(r["topology"], g)][0] += bool(c)
            conv[(r["topology"], g)][1] += 1
        conv[(r["topology"], "every group")][0] += bool(r["converged"])
        conv[(r["topology"], "every group")][1] += 1
    print("\nplateaued (runs):", {k: f"{a}/{b}" for k, (a, b) in sorted(conv.items())})
    ring_table(own, vs_mean)
    containment_table(own)
    figures(own, vs_mean)


def _mean_sd(vals: list[float]) -> str:
    if not vals:
        return "-"
    sd = f" ± {np.std(vals, ddof=1):.1f}" if len(vals) > 1 else ""
    return f"{np.mean(vals):+.1f}{sd}"


def ring_table(own: dict, vs_mean: dict) -> None:
    """PARSE on the 60-round ring, one attacker: mean vs clipped per attack."""
    topo = "ring, 60 rounds"
    attacks = sorted({k[3] for k in own if k[0] == "parse" and k[2] == topo},
                     key=lambda a: (a != "none", a.split("@")[-1], a))
    print("\n| attack | mean: honest acc (Δ) | clipped: honest acc (Δ own no-attack; Δ mean "
          "no-attack) | best Δ vs mean no-attack | seeds |")
    print("|---|---|---|---|---|")
    for at in attacks:
        m = own.get(("parse", "mean", topo, at), [])
        c = own.get(("parse", "clipped", topo, at), [])
        cm = [x["delta"] for x in vs_mean.get(("parse", "clipped", topo, at), []) if "delta" in x]
        md = [x["delta"] for x in m if "delta" in x]
        means = ([np.mean(md)] if md else []) + ([np.mean(cm)] if cm else [])
        best = max(means) if means else float("nan")
        cell_m = f"{np.mean([x['acc'] for x in m]):.3f} ({_mean_sd(md)})" if m else "not run"
        cell_c = (f"{np.mean([x['acc'] for x in c]):.3f} "
                  f"({_mean_sd([x['delta'] for x in c if 'delta' in x])}; {_mean_sd(cm)})"
                  if c else "not run")
        label = at if at == "none" else \
            f"{at.split('@')[0]}, {at.split('@')[1][:-1]} attacker(s)"
        print(f"| {label} | {cell_m} | {cell_c} | {best:+.1f} | "
              f"{len(m)} / {len(c)} |")


def containment_table(own: dict) -> None:
    topo = "ring, 30 rounds"
    print("\n| method | attacker in | fou | pix | fou+pix | overall | seeds |")
    print("|---|---|---|---|---|---|---|")
    for place in ("sign_flip@fou", "sign_flip@pix", "sign_flip@fou+pix"):
        for method in ("parse", "sliced_hybrid", "dsgd_full"):
            rows = [x for x in own.get((method, "mean", topo, place), []) if "gdelta" in x]
            if not rows:
                print(f"| {method} | {place.split('@')[1]} | not run | | | | 0 |")
                continue
            cells = " | ".join(_mean_sd([x["gdelta"][g] for x in rows]) for g in GROUPS)
            print(f"| {method} | {place.split('@')[1]} | {cells} | "
                  f"{_mean_sd([x['delta'] for x in rows])} | {len(rows)} |")


def figures(own: dict, vs_mean: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(__file__).resolve().parent
    topo = "ring, 60 rounds"
    ring = {k: v for k, v in vs_mean.items() if k[0] == "parse" and k[2] == topo
            and k[3] != "none"}
    bars = sorted({(k[1], k[3].split("@")[1]) for k in ring})  # (aggregator, "1x"/"2x")
    attacks = sorted({k[3].split("@")[0] for k in ring})
    if ring:
        fig, ax = plt.subplots(figsize=(9, 3.6))
        width = 0.8 / max(len(bars), 1)
        for b, (agg, count) in enumerate(bars):
            ys = [np.mean([x["delta"] for x in ring.get(("parse", agg, topo, f"{at}@{count}"),
                                                         []) if "delta" in x] or [np.nan])
                  for at in attacks]
            ax.bar(np.arange(len(attacks)) + b * width, ys, width,
                   label=f"{agg}, {count[:-1]} attacker(s)")
        ax.axhline(-2, color="k", ls="--", lw=0.8, label="target, 1 attacker: -2")
        ax.axhline(-5, color="grey", ls=":", lw=0.8, label="target, 2 attackers: -5")
        ax.set_xticks(np.arange(len(attacks)) + width * (len(bars) - 1) / 2)
        ax.set_xticklabels(attacks, rotation=30)
        ax.set_ylabel("honest accuracy change (points)")
        ax.set_title("PARSE, quickstart ring, 60 rounds: vs gossip mean without attack "
                     "(mean of 3 seeds)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "byzantine_ring_attacks.png", dpi=120)
    contain = {k: v for k, v in own.items() if k[1] == "mean" and "@" in k[3]
               and not k[3].split("@")[1][0].isdigit()}
    if contain:
        methods = sorted({k[0] for k in contain})
        places = [p for p in ("sign_flip@fou", "sign_flip@pix", "sign_flip@fou+pix")
                  if any(k[3] == p for k in contain)]
        fig, axes = plt.subplots(1, len(places), figsize=(4 * len(places), 3.4), sharey=True)
        for ax, place in zip(np.atleast_1d(axes), places, strict=False):
            for m, method in enumerate(methods):
                rows = [x for x in contain.get((method, "mean", "ring, 30 rounds", place), [])
                        if "gdelta" in x]
                ys = [np.mean([x["gdelta"][g] for x in rows]) if rows else np.nan
                      for g in GROUPS]
                ax.bar(np.arange(3) + m * 0.27, ys, 0.27, label=method)
            ax.set_xticks(np.arange(3) + 0.27)
            ax.set_xticklabels(GROUPS)
            ax.set_title(f"attacker in {place.split('@')[1]}")
        np.atleast_1d(axes)[0].set_ylabel("honest accuracy change (points)")
        np.atleast_1d(axes)[0].legend(fontsize=7)
        fig.suptitle("Containment: one sign-flipping agent, gossip mean, damage per group")
        fig.tight_layout()
        fig.savefig(out / "byzantine_containment.png", dpi=120)


if __name__ == "__main__":
    main()
