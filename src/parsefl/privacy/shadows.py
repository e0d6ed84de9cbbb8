"""Shadow runs of the membership audit (``parsefl audit RUN_DIR --shadows K``): K re-runs of a
finished run in which every agent trains on a random half of its own training samples, the
reference a likelihood-ratio attack needs (``parsefl.privacy.lira``): how a neighbour's view of
a sample looks when the victim did and did not train on it.

Shadows come in complementary pairs: shadow ``2m`` trains agent ``i`` on a seeded random half
of its samples (``floor(n / 2)`` of them, drawn from ``(run seed, m, i)``), shadow ``2m + 1`` on
the other half, so every training sample is IN exactly K/2 shadows and OUT of the other K/2 —
for any even K, and shadow k is the same whatever K is (a larger K reuses the smaller one's).
Shadow k draws its batches and DP noise from seed ``1000 * run seed + 1 + k``; the data,
partition, graph and initial values stay the run's (a neighbour knows them: every component
starts from the run's seed). Same config otherwise (method, topology, privacy: a DP run's
shadows calibrate their noise to their own, halved, sample counts).

A shadow lives in ``RUN_DIR/shadows/k/``, an ordinary run folder plus ``shadow.json`` (its
seed and each agent's kept positions). It is run in ``shadows/.k.partial/`` and renamed into
place when complete, so a folder ``shadows/k`` is a finished shadow; one whose results do not
verify or whose ``shadow.json`` differs from what it should be is run again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from parsefl.config import RunConfig
from parsefl.errors import ConfigError, ParseflError
from parsefl.experiments.run.build import Subsample

RECORD = "shadow.json"


def check_count(k: int) -> None:
    """Refuse a number of shadows the attack cannot use (they come in IN/OUT pairs)."""
    if k < 0 or k % 2:
        raise ConfigError("--shadows", f"expected an even number >= 0 (shadows come in "
                                       f"complementary pairs; 0: no shadows), got {k}")


def shadow_seed(seed: int, k: int) -> int:
    return 1000 * seed + 1 + k


def subsample(seed: int, k: int, sizes: list[int]) -> Subsample:
    """Shadow ``k``'s seed and each agent's kept positions (sorted) within its part."""
    keep = []
    for i, n in enumerate(sizes):
        half = np.random.default_rng([seed, k // 2, i, 29]).permutation(n)[: n // 2]
        mask = np.zeros(n, bool)
        mask[half] = True
        keep.append(np.flatnonzero(mask if k % 2 == 0 else ~mask))
    return Subsample(shadow_seed(seed, k), tuple(keep))


def record(k: int, sub: Subsample) -> str:
    """``shadow.json``'s text: the shadow, its seed and each agent's kept positions."""
    return json.dumps({"shadow": k, "seed": sub.seed, "keep": [p.tolist() for p in sub.keep]}
                      ) + "\n"


def ensure_shadows(run_dir: Path, cfg: RunConfig, sizes: list[int], count: int,
                   on_done: Callable[[int, bool], None] | None = None) -> list[Subsample]:
    """Shadows 0..count-1 of the run in ``run_dir`` (agents' part sizes ``sizes``): those
    already complete are kept, the others run (``on_done(k, reused)`` after each)."""
    from parsefl.experiments.run.simulate import run_experiment

    subs = []
    for k in range(count):
        sub = subsample(cfg.seed, k, sizes)
        folder = shadow_dir(run_dir, k)
        reused = _complete(folder, record(k, sub))
        if not reused:
            partial = folder.with_name(f".{k}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            run_experiment(cfg, partial, shadow=sub)
            (partial / RECORD).write_text(record(k, sub))
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
        subs.append(sub)
        if on_done is not None:
            on_done(k, reused)
    return subs


def in_out(members: np.ndarray, kept: list[np.ndarray], nonmembers: int, key: list[int]
           ) -> tuple[np.ndarray, np.ndarray]:
    """(K, members + non-members) masks of the shadow observations that count as IN and as
    OUT of each candidate: a member (``members``: its position in the victim's part) is IN
    where the victim's shadow kept it (``kept``: per shadow) and OUT elsewhere; a non-member
    is IN nowhere and OUT in one shadow of each complementary pair (seeded by ``key``), as
    many as a member is."""
    inside = np.stack([np.r_[np.isin(members, k), np.zeros(nonmembers, bool)] for k in kept])
    outside = ~inside
    for m in range(len(kept) // 2):
        coin = np.random.default_rng([*key, m, 31]).integers(0, 2, nonmembers).astype(bool)
        outside[2 * m, len(members):] = coin
        outside[2 * m + 1, len(members):] = ~coin
    return inside, outside


def shadow_dir(run_dir: Path, k: int) -> Path:
    return run_dir / "shadows" / str(k)


def _complete(folder: Path, text: str) -> bool:
    from parsefl.experiments.run.results import read_results

    try:  # read only a file of the expected size: anything else is not this shadow's record
        path = folder / RECORD
        done = path.stat().st_size == len(text) and path.read_text() == text
        return done and read_results(folder, "RUN_DIR").get("complete") is not False
    except (OSError, ValueError, ParseflError):
        return False
