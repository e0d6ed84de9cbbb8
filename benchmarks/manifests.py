"""What manifests cost: seconds to write one checkpoint of N agents (scaling.py's workload,
vectorized backend) with and without its manifest, and to verify it (`verify_state`, what
`--resume` does before reading), unsigned and signed (ECDSA P-256, one signature per part).

Each figure is the median of ``--repeats`` writes into a fresh folder. ``--busy K`` runs K
CPU-bound spinning processes during the measurement (the "another CPU-bound process
running" condition).

    python benchmarks/manifests.py                    # N = 128 and 1024, appended to RESULTS.md
    python benchmarks/manifests.py --quick            # N = 32, prints only
    python benchmarks/manifests.py --busy 1 --label busy
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, busy, scaling_overrides  # noqa: E402


def measure(n: int, repeats: int) -> dict[str, float]:
    import torch

    from parsefl.config import load_config
    from parsefl.experiments.run import checkpoint
    from parsefl.experiments.run.build import build_experiment
    from parsefl.security import Identities, init_keys
    from parsefl.security.manifest import Signer

    torch.set_num_threads(1)
    cfg = load_config(None, [*scaling_overrides(n, "ring", "vectorized"), "runtime.threads=1"])
    exp = build_experiment(cfg)
    exp.loop.step(0)  # optimizer state exists, as in any real checkpoint
    exp.loop.sync()
    meta = {"rounds_done": 1, "fingerprint": checkpoint.fingerprint(cfg)}
    ids_dir = Path(tempfile.mkdtemp()) / "keys"
    init_keys(ids_dir, 1)
    signer = Signer(Identities(ids_dir, [0]), 0)
    agents = [a.id for a in exp.agents]
    out: dict[str, list[float]] = {k: [] for k in ("plain", "sealed", "signed", "verify",
                                                      "bytes")}
    for _ in range(repeats):
        for label, sign, seal in (("plain", None, False), ("sealed", None, True),
                                  ("signed", signer, True)):
            folder = Path(tempfile.mkdtemp()) / "round"
            start = time.perf_counter()
            if seal:
                checkpoint.save_state(folder, exp.agents, exp.loop.executor, "run.json", meta,
                                      signer=sign)
            else:
                with mock.patch.object(checkpoint, "seal", lambda *a, **k: None):
                    checkpoint.save_state(folder, exp.agents, exp.loop.executor, "run.json",
                                          meta)
            out[label].append(time.perf_counter() - start)
            if label == "sealed":
                start = time.perf_counter()
                checkpoint.verify_state(folder, "run.json", meta["fingerprint"], 1, agents)
                out["verify"].append(time.perf_counter() - start)
                out["bytes"].append(sum(p.stat().st_size for p in folder.iterdir()))
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="128,1024")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--busy", type=int, default=0)
    p.add_argument("--label", default="quiet")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    sizes = [32] if args.quick else [int(n) for n in args.agents.split(",")]
    rows = []
    with busy(args.busy):
        for n in sizes:
            m = measure(n, args.repeats)
            rows.append(f"| {n} | {args.label} | {m['bytes'] / 2**20:.1f} | {m['plain']:.3f} | "
                        f"{m['sealed']:.3f} ({m['sealed'] / m['plain']:.2f}x) | "
                        f"{m['signed']:.3f} | {m['verify']:.3f} |")
            print(rows[-1], flush=True)
    if not args.quick:
        append_results(
            "Manifests: checkpoint write and verify", [
                "| agents | load | checkpoint MiB | write, no manifest (s) | write + manifest "
                "(s) | + signature (s) | verify (s) |",
                "|---|---|---|---|---|---|---|", *rows],
            ["Median of the repeats; one process, 1 torch thread. The manifest hashes every "
             "file (SHA-256) and reads each safetensors header; verify re-hashes and compares. "
             f"busy = {args.busy} CPU-bound spinning process(es)."])


if __name__ == "__main__":
    main()
