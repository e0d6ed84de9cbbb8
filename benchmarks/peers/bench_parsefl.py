"""parsefl on the peers workload, through the Python API: seconds per ``RoundEngine.step`` (local
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


def overrides(data: Path, peers: int, rounds: int, steps: int | None = None) -> list[str]:
    """The ``-o`` overrides of the workload (also used for the ``parsefl run`` command).
    ``steps``: a fixed number of local steps per round on the vectorized backend instead of
    ``train.local_epochs`` (the same batches when every agent holds steps x batch samples)."""
    local = [f"train.local_steps={steps}", "runtime.backend=vectorized"] if steps else \
        [f"train.local_epochs={_common.LOCAL_EPOCHS}"]
    return [
        f"data.name=npz:{data}", "method=dsgd_full", f"mix={{img: {peers}}}",
        "partition.name=iid", "topology.name=ring", "model.encoder.name=mlp",
        f"model.encoder.params={{hidden: [{_common.HIDDEN}]}}", f"model.dim={_common.DIM}",
        *local, f"train.batch_size={_common.BATCH}",
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
    ap.add_argument("--steps", type=int, help="fixed local steps (vectorized backend)")
    args = ap.parse_args()
    clock = _common.Clock(args.t0)

    import torch

    from parsefl import __version__ as parsefl_version
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment
    from parsefl.runtime import evaluate

    cfg = load_config(None, overrides(args.data.resolve(), args.peers, args.rounds, args.steps))
    exp = build_experiment(cfg)
    built_at = clock.now()
    phase = _time_phases(exp.loop)
    times, floor, cpu = [], [], []
    groups = getattr(exp.loop.executor, "groups", None)  # the vectorized backend's stacks
    for r in range(args.rounds):
        t0, c0 = time.perf_counter(), _common.group_cpu_s()
        exp.loop.step(r)
        times.append(time.perf_counter() - t0)
        cpu.append(_common.group_cpu_s() - c0)
    ev = evaluate(exp.slots, exp.test_x, exp.test_y, exp.dataset.n_classes)
    acc = float(ev.overall["accuracy"])
    for _ in range(args.rounds if groups is not None else 0):  # after evaluating: it trains
        t0 = time.perf_counter()
        plain_round(groups, cfg.train.local_steps, cfg.train.batch_size)
        floor.append(time.perf_counter() - t0)
    result = _common.summarize(
        times, clock.now(), framework="parsefl", peers=args.peers, built_at_s=built_at,
        train_s=phase["train"], gossip_s=phase["gossip"], floor_s=floor, cpu_s=cpu,
        backend=type(exp.loop.executor).__name__,
        accuracy=acc, note="dsgd_full, ring gossip of the whole model (Metropolis-Hastings)"
        + (f", {args.steps} fixed local steps, vectorized backend" if args.steps else
           f", {_common.LOCAL_EPOCHS} local epoch, {type(exp.loop.executor).__name__}"),
        versions={"parsefl": parsefl_version, "torch": torch.__version__,
                  "threads": torch.get_num_threads()})
    _common.emit(result, args.out)


def plain_round(groups: list, steps: int, batch: int) -> None:
    """One round of the bare stacked training loop over the executor's groups."""
    for g in groups:
        g.bare_steps(steps, batch)


def _time_phases(loop) -> dict[str, list[float]]:
    """Wrap the loop's executor so that each round's local training and gossip are timed
    separately (``RoundEngine.step`` = handshake/plans + train + gossip)."""
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
