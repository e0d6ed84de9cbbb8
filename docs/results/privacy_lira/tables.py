"""The tables of docs/results.md "Shadow agents" (issue 29) from the audited runs of
configs/sweeps/privacy_lira.yaml: copies each run's audit.json here (without the per-pair
component lists), writes audit_kinds.jsonl (one line per run: its accuracy and the audit per
component kind) and summary.md (mean ± std over seeds per method and privacy setting).

    python docs/results/privacy_lira/tables.py runs/privacy_lira
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
KINDS = ["own", "enc", "enc_s", "head_u", "head_r", "synergy", "classifier", "fusion", "all",
         "victim"]


def runs(root: Path) -> list[dict]:
    out = []
    for d in sorted((root / "runs").iterdir()):
        if not (d / "audit.json").is_file() or "shadows" not in json.loads(
                (d / "audit.json").read_text()):
            continue
        audit = json.loads((d / "audit.json").read_text())
        res = json.loads((d / "results.json").read_text())
        eps = audit["privacy"]
        name = f"{audit['method']}-s{audit['seed']}-{'none' if eps is None else 'eps8'}"
        slim = {**audit, "pairs": [{k: v for k, v in p.items() if k != "components"}
                                   for p in audit["pairs"]]}
        (HERE / f"{name}.audit.json").write_text(json.dumps(slim, indent=1) + "\n")
        out.append({"method": audit["method"], "seed": audit["seed"], "epsilon": eps,
                    "accuracy": res["final"]["accuracy"]["overall"],
                    "wall_time_s": res["wall_time_s"], "shadows": audit["shadows"],
                    "kinds": audit["kinds"]})
    return out


def fmt(values: list[float], std: bool = True) -> str:
    a = np.array(values)
    return f"{a.mean():.3f} ± {a.std(ddof=1):.3f}" if std and len(a) > 1 else f"{a.mean():.3f}"


def summary(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["epsilon"] is not None), []).append(r)
    lines = ["Everything received (`all`; mean over pairs per run, then mean ± std over "
             "seeds) and the ceiling (`victim`: the victim's own whole model):", "",
             "| method | privacy | seeds | accuracy | loss AUC | LiRA AUC | offline AUC | "
             "loss TPR@1% | LiRA TPR@1% | offline TPR@1% | worst pair LiRA | ceiling loss / "
             "LiRA |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (method, dp), rs in sorted(groups.items()):
        a, v = [r["kinds"]["all"] for r in rs], [r["kinds"]["victim"] for r in rs]
        lines.append(
            f"| {method} | {'epsilon 8' if dp else 'none'} | "
            f"{','.join(str(r['seed']) for r in rs)} | {fmt([r['accuracy'] for r in rs])} | "
            f"{fmt([k['auc_mean'] for k in a])} | {fmt([k['auc_lira_mean'] for k in a])} | "
            f"{fmt([k['auc_lira_offline_mean'] for k in a])} | "
            f"{fmt([k['tpr_at_1pct_fpr_mean'] for k in a], False)} | "
            f"{fmt([k['tpr_at_1pct_fpr_lira_mean'] for k in a], False)} | "
            f"{fmt([k['tpr_at_1pct_fpr_lira_offline_mean'] for k in a], False)} | "
            f"{max(k['auc_lira_max'] for k in a):.3f} | "
            f"{fmt([k['auc_mean'] for k in v], False)} / "
            f"{fmt([k['auc_lira_mean'] for k in v], False)} |")
    lines += ["", "Per component kind: AUC of LiRA online / LiRA offline / loss threshold, "
              "mean over seeds; – : the rule has no such kind:", "",
              "| method | privacy | " + " | ".join(KINDS) + " |",
              "|---|---|" + "---|" * len(KINDS)]
    for (method, dp), rs in sorted(groups.items()):
        cells = []
        for kind in KINDS:
            ks = [r["kinds"][kind] for r in rs if kind in r["kinds"]]
            cells.append("–" if not ks else
                         f"{fmt([k['auc_lira_mean'] for k in ks], False)} / "
                         f"{fmt([k['auc_lira_offline_mean'] for k in ks], False)} / "
                         f"{fmt([k['auc_mean'] for k in ks], False)}")
        lines.append(f"| {method} | {'eps 8' if dp else 'none'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(root: Path) -> None:
    rows = runs(root)
    with (HERE / "audit_kinds.jsonl").open("w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    (HERE / "summary.md").write_text(summary(rows))
    print(summary(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
