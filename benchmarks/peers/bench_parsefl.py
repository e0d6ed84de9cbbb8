"""parsefl on the peers workload, through the Python API: seconds per ``RoundLoop.step`` (local
training + ring gossip of the whole model), the same config as the ``parsefl run`` command
that ``run.py`` times end to end. Run with the Python that has parsefl installed.

    python bench_parsefl.py --data DATA.npz --peers 8 --rounds 5 --out result.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402


def overrides(data: Path, peers: int, rounds: int) -> list[str]:
    """The ``-o`` overrides of the workload (also used for the ``parsefl run`` command)."""
    return [
        f"data.name=npz:{data}", "method=dsgd_full", f"mix={{img: {peers}}}",
        "partition.name=iid", "topology.name=ring", "model.encoder.name=mlp",
        f"model.encoder.params={{hidden: [{_common.HIDDEN}]}}", f"model.dim={_common.DIM}",
        f"train.local_epochs={_common.LOCAL_EPOCHS}", f"train.batch_size={_common.BATCH}",
        "train.optimizer=sgd", f"train.lr={_common.LR}", "train.momentum=0",
        f"rounds={rounds}", f"eval_every={rounds}", "diagnostics.gradient_cosine=false",
        "device=cpu", f"seed={_common.SEED}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--peers", type=int, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--t0", type=float, help="the parent's time.time() at launch")
    args = ap.parse_args()
    clock = _common.Clock(args.t0)

    import torch

    from parsefl import __version__ as parsefl_version
    from parsefl.config import load_config
    from parsefl.experiments.build import build_experiment
    from parsefl.runtime import evaluate

    cfg = load_config(None, overrides(args.data.resolve(), args.peers, args.rounds))
    exp = build_experiment(cfg)
    built_at = clock.now()
    phase = _time_phases(exp.loop)
    times = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        exp.loop.step(r)
        times.append(time.perf_counter() - t0)
    ev = evaluate(exp.slots, exp.test_x, exp.test_y, exp.dataset.n_classes)
    acc = float(ev.overall["accuracy"])
    result = _common.summarize(
        times, clock.now(), framework="parsefl", peers=args.peers, built_at_s=built_at,
        train_s=phase["train"], gossip_s=phase["gossip"],
        accuracy=acc, note="dsgd_full, ring gossip of the whole model (Metropolis-Hastings)",
        versions={"parsefl": parsefl_version, "torch": torch.__version__,
                  "threads": torch.get_num_threads()})
    _common.emit(result, args.out)


def _time_phases(loop) -> dict[str, list[float]]:
    """Wrap the loop's executor so that each round's local training and gossip are timed
    separately (``RoundLoop.step`` = handshake/plans + train + gossip)."""
    spent: dict[str, list[float]] = {"train": [], "gossip": []}
    executor = loop.executor
    for name in spent:
        inner = getattr(executor, name)

        def timed(*a, _inner=inner, _name=name, **kw):
            t0 = time.perf_counter()
            try:
                return _inner(*a, **kw)
            finally:
                spent[_name].append(time.perf_counter() - t0)

        setattr(executor, name, timed)
    return spent


if __name__ == "__main__":
    main()
