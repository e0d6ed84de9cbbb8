"""What each agent's differentially private training costs, from Opacus's accountants (RDP or
PRV) and its noise calibration: nothing here computes a privacy bound itself.

The accountant's assumptions, and how parsefl meets them (README "Privacy"):

- *Sampling.* The accountant analyses Poisson sampling with rate ``q`` (each sample in each
  step independently with probability ``q``). With ``privacy.sampling: poisson`` (the
  default) that is what parsefl does: ``q = min(batch, n) / n``, ``local_epochs`` epochs of
  ceil(n / batch) steps each (or ``local_steps``), variable batch sizes, the clipped sum
  divided by the expected batch size. With ``shuffle`` it draws fixed-size batches from seeded
  shuffles (``train.local_steps``: an endless stream of permutations; ``local_epochs``: each
  epoch a permutation cut into batches) and reports the accountant's epsilon at the same
  ``q``, as Opacus itself does when its data loader is not Poisson: the usual practice, not
  a proof for shuffled batches.
- *Steps.* Every step an agent takes counts (``steps`` per agent in results.json); the plan
  (the noise calibration and the budget check) counts every round the schedules let it train.
- *Unequal data sizes.* Each agent has its own ``n``, hence its own ``q``, noise (when
  calibrated) and epsilon; a neighbour's data is never counted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parsefl.errors import ConfigError
from parsefl.privacy.dpsgd import poisson_steps, sample_rate

SAMPLING = {"poisson": "Poisson sampling at q = batch / n (as the accountant assumes)",
            "shuffle": "shuffled fixed-size batches; the accountant assumes Poisson sampling "
                       "at q = batch / n"}


def check_privacy(cfg: Any) -> None:
    """Config-time rules of the ``privacy`` section (one line naming the field)."""
    p = cfg.privacy
    if p.epsilon is None and p.noise_multiplier is None:
        raise ConfigError("privacy.epsilon", "give epsilon (the noise is calibrated to spend "
                          "it by the last round) or noise_multiplier (fixed noise)")
    if p.stop_at_budget and (p.epsilon is None or p.noise_multiplier is None):
        raise ConfigError("privacy.stop_at_budget", "needs both epsilon (the budget) and "
                          "noise_multiplier (fixed noise); with epsilon alone the noise is "
                          "calibrated to spend it exactly by the last round")
    from parsefl.registry import SHARING

    if SHARING.get(cfg.method, field="method").centralized:
        raise ConfigError("privacy", f"{cfg.method} pools every agent's data into one model; "
                          "per-agent privacy does not apply to it")
    imp = cfg.imperfect
    if imp.missing_modality or imp.missing_labels:
        field = "missing_modality" if imp.missing_modality else "missing_labels"
        raise ConfigError(f"imperfect.{field}", "privacy accounts each agent's samples as one "
                          "pool sampled at q = batch / n; an agent trained on several views "
                          "or a subset of its samples is not supported with privacy")


def _accountant(name: str) -> Any:
    from opacus.accountants import PRVAccountant, RDPAccountant

    return RDPAccountant() if name == "rdp" else PRVAccountant()


@functools.lru_cache(maxsize=4096)  # pure, and a call costs ~0.2 s (RDP, 2 cores)
def spent(noise: float, q: float, steps: int, delta: float, accountant: str) -> float:
    """Epsilon at ``delta`` after ``steps`` steps of noise ``noise`` at sampling rate ``q``,
    by Opacus's ``accountant`` (``rdp`` or ``prv``)."""
    if steps <= 0:
        return 0.0
    acc = _accountant(accountant)
    for _ in range(steps):  # Opacus folds repeated identical steps into one history entry
        acc.step(noise_multiplier=noise, sample_rate=q)
    with warnings.catch_warnings():
        # RDP's "optimal order is the largest alpha": the bound holds, it is only loose.
        warnings.simplefilter("ignore", UserWarning)
        return float(acc.get_epsilon(delta=delta))


Calibration = tuple[float, float, float, int, str]  # epsilon, delta, q, steps, accountant


_CALIBRATED: dict[Calibration, float] = {}  # this process's, each checked once
TOLERANCE = 0.01  # get_noise_multiplier's epsilon_tolerance: it returns a noise whose epsilon
# lies in [epsilon - TOLERANCE, epsilon]


def calibrate_all(keys: Iterable[Calibration], workers: int | Callable[[], int] = 1
                  ) -> dict[Calibration, float]:
    """Opacus's noise calibration of each key. A call costs about 0.5-1 s (a bisection of
    ~15 RDP evaluations), and a run with agents of many sizes needs one per size (HAPT: 28
    sizes, 16-29 s in one process on 2 cores, benchmarks/calibration.py), so each result is
    kept in the cache (``<cache root>/privacy/``, one file per key and Opacus version) and
    missing ones are computed by up to ``workers`` processes (or a function that counts them,
    called only when two or more are missing: ``runtime.threads.idle_cores``). A value read
    from the cache is used only after one accountant call shows that it spends between
    ``epsilon - 0.01`` and ``epsilon`` (what the bisection guarantees): a stale or edited file
    cannot weaken the privacy a run reports; it is recomputed."""
    keys = list(dict.fromkeys(keys))
    missing = [k for k in keys if k not in _CALIBRATED and not _from_cache(k)]
    if missing:
        import multiprocessing

        # A daemonic process (a multiprocessing pool's worker) may not start children.
        daemon = multiprocessing.current_process().daemon
        if daemon or len(missing) < 2:
            workers = 1
        workers = min(len(missing), workers() if callable(workers) else workers)
        if workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                values = list(pool.map(_calibrate_one, missing))
        else:
            values = [_calibrate_one(k) for k in missing]
        for k, value in zip(missing, values, strict=True):
            _CALIBRATED[k] = value
            _to_cache(k, value)
    return {k: _CALIBRATED[k] for k in keys}


def _calibrate_one(key: Calibration) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    epsilon, delta, q, steps, accountant = key
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta,
                                              sample_rate=q, steps=steps,
                                              accountant=accountant,
                                              epsilon_tolerance=TOLERANCE))
    except ValueError as err:
        raise ConfigError("privacy.epsilon", f"no noise reaches epsilon={epsilon} at "
                          f"delta={delta} in {steps} steps at q={q:.4g} ({err})") from None


def _cache_file(key: Calibration) -> Path:
    from importlib.metadata import version

    from parsefl.data.wheels import cache_root

    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    return cache_root() / "privacy" / f"opacus-{version('opacus')}" / f"{digest}.json"


def _from_cache(key: Calibration) -> bool:
    """Take ``key``'s noise from the cache if its file is there and checks out."""
    path = _cache_file(key)
    try:
        if path.stat().st_size > 4096:  # a kept calibration is ~150 bytes: not one of ours
            return False
        got = json.loads(path.read_text())
        noise = float(got["noise_multiplier"]) if got.get("key") == list(key) else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # any file not ours
        return False
    epsilon, delta, q, steps, accountant = key
    if noise is None or not noise > 0 or not (
            epsilon - TOLERANCE - 1e-9 <= spent(noise, q, steps, delta, accountant) <= epsilon):
        return False
    _CALIBRATED[key] = noise
    return True


def _to_cache(key: Calibration, noise: float) -> None:
    """Best effort: an unwritable cache only costs the next run the calibration again."""
    from parsefl.data.wheels import atomic_write

    path = _cache_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({"key": list(key), "noise_multiplier": noise}).encode())
    except Exception:  # noqa: BLE001 - a cache must never fail a run
        pass


@dataclass(frozen=True)
class AgentPlan:
    """One agent's accounting: its samples ``n``, sampling rate ``q``, noise multiplier and
    the steps it may take in each round (what the schedules let it train)."""

    agent: int
    n: int
    q: float
    noise: float
    steps: tuple[int, ...]  # per round

    def epsilon(self, steps: int, delta: float, accountant: str) -> float:
        return spent(self.noise, self.q, steps, delta, accountant)


@dataclass(frozen=True)
class PrivacyPlan:
    """Every agent's plan, and the rounds the run may take (fewer than configured only with
    ``stop_at_budget``)."""

    agents: dict[int, AgentPlan]
    rounds: int
    configured_rounds: int

    def record(self, cfg: Any, steps: dict[int, int], rounds: int) -> dict[str, Any]:
        """results.json's ``privacy``: per agent what the accountant was given (q, noise, the
        steps taken) and the epsilon spent at delta."""
        p = cfg.privacy
        rows = []
        for i, plan in sorted(self.agents.items()):
            taken = steps.get(i, 0)
            rows.append({"id": i, "n_train": plan.n, "sample_rate": plan.q,
                         "noise_multiplier": plan.noise, "steps": taken,
                         "planned_steps": sum(plan.steps[:rounds]),
                         "epsilon": plan.epsilon(taken, p.delta, p.accountant)})
        return {"accountant": p.accountant, "delta": p.delta, "max_grad_norm": p.max_grad_norm,
                "epsilon_budget": p.epsilon, "calibrated": p.noise_multiplier is None,
                "sampling": SAMPLING[p.sampling],
                "stopped_at_budget": rounds < self.configured_rounds and self.rounds == rounds,
                "budget_rounds": self.rounds,
                "epsilon_max": max((r["epsilon"] for r in rows), default=0.0), "agents": rows}


def steps_per_round(cfg: Any, n: int, override: int | None) -> int:
    """The batches ``Agent.batches`` draws in one round from ``n`` samples."""
    steps = override or cfg.train.local_steps
    if steps is not None:
        return steps
    if cfg.privacy is not None and cfg.privacy.sampling == "poisson":
        return poisson_steps(cfg.train.batch_size, n, cfg.train.local_epochs)
    b = min(cfg.train.batch_size, n)
    return cfg.train.local_epochs * (n // b + (n % b > 1)) if n > 1 else 0


def plan_privacy(cfg: Any, n_train: list[int], membership: Any = None,
                 local_steps: Any = None, workers: int | Callable[[], int] = 1
                 ) -> PrivacyPlan:
    """Each agent's plan for ``cfg.rounds`` rounds (``rounds: auto``: its bound,
    ``train.max_rounds``); refuses, in one line, a budget that would be exceeded before the
    last round (unless ``stop_at_budget``: then the rounds stop before it). ``membership`` and
    ``local_steps``: the run's schedules over every agent (None: always online, the configured
    steps), so that every process of a distributed run plans every agent alike. ``workers``:
    processes that may calibrate at once (:func:`calibrate_all`)."""
    p, rounds = cfg.privacy, cfg.rounds
    schedule = {}
    for i, n in enumerate(n_train):
        schedule[i] = (n, sample_rate(cfg.train.batch_size, n), tuple(
            steps_per_round(cfg, n, local_steps(i, r) if local_steps else None)
            if membership is None or i in membership.at(r) else 0 for r in range(rounds)))
    keys = {i: (p.epsilon, p.delta, q, sum(steps), p.accountant)
            for i, (_, q, steps) in schedule.items()}
    noises = {} if p.noise_multiplier is not None else calibrate_all(
        (k for k in keys.values() if k[3]), workers)
    agents = {i: AgentPlan(i, n, q, p.noise_multiplier if p.noise_multiplier is not None
                           else noises.get(keys[i], 0.0), steps)
              for i, (n, q, steps) in schedule.items()}
    budget = rounds
    if p.epsilon is not None and p.noise_multiplier is not None:
        lasts = {i: _lasts(a, p, rounds) for i, a in agents.items()}
        budget = min(lasts.values(), default=rounds)
        if budget < rounds and not p.stop_at_budget:
            worst = agents[min(lasts, key=lasts.__getitem__)]
            e = worst.epsilon(sum(worst.steps), p.delta, p.accountant)
            raise ConfigError("privacy.epsilon", f"agent {worst.agent} ({worst.n} samples, "
                              f"q={worst.q:.3g}, noise {worst.noise}) would spend epsilon "
                              f"{e:.3g} > {p.epsilon} by round {rounds}; its budget lasts "
                              f"{budget} round{'s' * (budget != 1)}: lower rounds, raise "
                              "noise_multiplier or set privacy.stop_at_budget: true")
        if budget == 0:
            raise ConfigError("privacy.epsilon", f"one round already spends more than "
                              f"epsilon {p.epsilon}; raise privacy.noise_multiplier")
    return PrivacyPlan(agents, budget, rounds)


def _lasts(plan: AgentPlan, p: Any, rounds: int) -> int:
    """The most rounds ``plan``'s agent can train within the budget (bisection: epsilon grows
    with the steps)."""
    cum = [0]
    for s in plan.steps:
        cum.append(cum[-1] + s)
    lo, hi = 0, rounds
    if plan.epsilon(cum[hi], p.delta, p.accountant) <= p.epsilon:
        return rounds
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if plan.epsilon(cum[mid], p.delta, p.accountant) <= p.epsilon:
            lo = mid
        else:
            hi = mid
    return lo
