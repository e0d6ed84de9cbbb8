"""Memory: where each agent's bytes go on the vectorized backend (scaling.py's workload), by
category, next to the floor of parameters + gradients + optimizer state.

Each N runs in a fresh process: resident memory (RSS) after the imports, then the experiment is
built and trained for two rounds (so gradients and Adam's state exist), and every tensor and
array the experiment reaches is attributed to one category (a storage counted once, in the
first category that reaches it); Python objects are sized by walking the agents, the plans and
the executor. Per-agent figures are slopes between two sizes (fixed costs cancel).

    python benchmarks/memory.py             # N = 256, 1024; appends to RESULTS.md
    python benchmarks/memory.py --quick     # N = 16, 64; prints only
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, scaling_overrides  # noqa: E402

FLOOR = ("stacked parameters", "stacked gradients", "stacked optimizer state")
ORDER = (*FLOOR, "per-agent model parameters", "per-agent optimizers", "gradient sums",
         "data: stacked copies", "data: per-agent tensors", "data: dataset arrays",
         "batch streams + generators", "gossip plans + mixing matrices",
         "Python objects (agents, modules, plans)")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim() -> int:
    """RSS after glibc hands its free heap back to the system (what remains is in use)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss()


class Ledger:
    """Bytes per category; a storage (tensor or array buffer) is counted once."""

    def __init__(self, device_type: str | None = None) -> None:
        self.bytes = dict.fromkeys(ORDER, 0)
        self.device_type = device_type  # count only storages there (None: everywhere)
        self._seen: set[int] = set()

    def add(self, cat: str, obj) -> None:
        if obj is None:
            return
        if isinstance(obj, dict):
            for v in obj.values():
                self.add(cat, v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                self.add(cat, v)
        elif isinstance(obj, torch.Tensor):
            if self.device_type not in (None, obj.device.type):
                return
            if obj.is_sparse:
                self.add(cat, [obj._indices(), obj._values()])
                return
            storage = obj.untyped_storage()
            self._claim(cat, storage.data_ptr(), storage.nbytes())
        elif isinstance(obj, np.ndarray) and self.device_type in (None, "cpu"):
            base = obj if obj.base is None or not isinstance(obj.base, np.ndarray) else obj.base
            self._claim(cat, base.__array_interface__["data"][0], base.nbytes)

    def _claim(self, cat: str, ptr: int, nbytes: int) -> None:
        if ptr and ptr not in self._seen:
            self._seen.add(ptr)
            self.bytes[cat] += nbytes


_SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType,
         torch.Tensor, np.ndarray)


def python_bytes(roots: list, seen: set[int]) -> int:
    """Deep ``sys.getsizeof`` of the objects reachable from ``roots``, not entering tensors,
    arrays (their buffers are counted above; their headers here), classes, modules, code."""
    total, stack = 0, list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj, 64)
        if not isinstance(obj, _SKIP):
            stack.extend(gc.get_referents(obj))
    return total


def _optimizer_state(opt) -> list:
    """A torch optimizer's state tensors, or a stacked optimizer's (state by name)."""
    return [t for state in opt.state.values() for t in state.values()]


def attribute(exp, device_type: str | None = None, python: bool = True) -> Ledger:
    """Every tensor/array of a trained vectorized experiment (on ``device_type``, or anywhere)
    by category; with ``python``, the Python objects too (a walk: seconds per 1,000 agents)."""
    led, executor = Ledger(device_type), exp.loop.executor
    groups = getattr(executor, "groups", [])
    for g in groups:
        led.add(FLOOR[0], list(g.params.values()))
    for g in groups:
        led.add(FLOOR[1], [p.grad for p in g.params.values()])
    for g in groups:
        led.add(FLOOR[2], _optimizer_state(g.optimizer))
    for a in exp.agents:  # rows of their group (views) unless a module was made for one
        weights = list(a.weights().values())
        led.add("per-agent model parameters", weights)
        led.add("per-agent model parameters", [p.grad for p in weights])
        own = getattr(a, "_optimizer", None)  # not `a.optimizer`: that would make one
        led.add("per-agent optimizers", _optimizer_state(own) if own is not None else [])
        led.add("gradient sums", a.grad_sum)
    for g in groups:
        led.add("gradient sums", getattr(g, "grad_sum", None))
    for split in (exp.dataset.train, exp.dataset.test):  # first: the groups read these
        led.add("data: dataset arrays", [split.x, split.y])
    for g in groups:  # first: an agent's own tensors are views of its group's copy
        led.add("data: stacked copies", [g.x, g.y, getattr(g, "rows", None),
                                         getattr(g, "offsets", None), getattr(g, "index", None)])
    for a in exp.agents:  # an agent whose inputs are rows of shared tensors holds its index
        own = [a.source.index] if a.source is not None else [a.x]
        led.add("data: per-agent tensors", [*own, a.y, [v[1] for v in a.views]])
    led.add("data: dataset arrays", [exp.test_x, exp.test_y])
    if device_type in (None, "cpu"):  # the generators' state lives in C++, on the host
        gen_state = sum(a.generator.get_state().numel() for a in exp.agents)
        led.bytes["batch streams + generators"] += gen_state
    for a in exp.agents:
        led.add("batch streams + generators", getattr(a.stream, "perm", None))
    cache = getattr(executor, "_cache", None) or ()
    for mix in (cache[1] if len(cache) > 1 else []):
        led.add("gossip plans + mixing matrices", [mix.matrix, [r for _, r in mix.parts]])
    if not python:
        return led
    seen: set[int] = set()
    led.bytes["gossip plans + mixing matrices"] += python_bytes([exp.loop.plans], seen)
    led.bytes["Python objects (agents, modules, plans)"] += python_bytes(
        [exp.agents, executor, exp.loop], seen)
    return led


def measure(n: int) -> dict:
    from parsefl.config import load_config
    from parsefl.experiments.run.build import build_experiment

    overrides = [*scaling_overrides(n, "ring", "vectorized"), "runtime.threads=1"]
    cfg = load_config(None, overrides)
    gc.collect()
    base = _rss()
    exp = build_experiment(cfg)
    gc.collect()
    built = _rss() - base - sum(attribute(exp).bytes.values())
    for r in range(2):
        exp.loop.step(r)
    gc.collect()
    after = _rss()
    led = attribute(exp)
    return {"n": n, "base_mib": base / 2**20, "rss_after_mib": after / 2**20,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "grown": after - base, "bytes": led.bytes, "slack_built": built,
            "trimmed": _trim() - base,
            "params_per_agent": sum(p.numel() for a in exp.agents
                                    for p in a.weights().values()) / n}


def child(n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(lo: dict, hi: dict) -> tuple[list[str], dict]:
    """Per-agent KiB by category: the slope between the two sizes, and each size's mean."""
    dn = hi["n"] - lo["n"]

    def per(key_lo: float, key_hi: float) -> float:
        return (key_hi - key_lo) / dn / 1024

    rows = [f"| category | KiB/agent (slope {lo['n']}→{hi['n']}) | KiB/agent at N = {lo['n']} "
            f"| KiB/agent at N = {hi['n']} |", "|---|---|---|---|"]
    slopes = {}
    for cat in ORDER:
        slopes[cat] = per(lo["bytes"][cat], hi["bytes"][cat])
        rows.append(f"| {cat} | {slopes[cat]:.1f} | {lo['bytes'][cat] / lo['n'] / 1024:.1f} | "
                    f"{hi['bytes'][cat] / hi['n'] / 1024:.1f} |")
    rest = {d["n"]: d["grown"] - sum(d["bytes"].values()) for d in (lo, hi)}
    freed = {d["n"]: d["grown"] - d["trimmed"] for d in (lo, hi)}
    for key, label, val in (
        ("unattributed", "unattributed after 2 rounds", rest),
        ("slack_built", "of which unattributed after building, before training",
         {d["n"]: d["slack_built"] for d in (lo, hi)}),
        ("freed", "of which free heap glibc returns on malloc_trim", freed),
    ):
        slopes[key] = per(val[lo["n"]], val[hi["n"]])
        rows.append(f"| {label} | {slopes[key]:.1f} | {val[lo['n']] / lo['n'] / 1024:.1f} | "
                    f"{val[hi['n']] / hi['n'] / 1024:.1f} |")
    slopes["rss"] = per(lo["grown"], hi["grown"])
    slopes["peak"] = (hi["peak_mib"] - lo["peak_mib"]) * 1024 / dn
    slopes["floor"] = sum(slopes[c] for c in FLOOR)
    rows += [f"| **RSS growth after 2 rounds** | **{slopes['rss']:.1f}** | "
             f"{lo['grown'] / lo['n'] / 1024:.1f} | {hi['grown'] / hi['n'] / 1024:.1f} |",
             f"| peak RSS (ru_maxrss) | {slopes['peak']:.1f} | | |",
             f"| floor: parameters + gradients + optimizer state | {slopes['floor']:.1f} | | |"]
    return rows, slopes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    lo, hi = (child(n) for n in ((16, 64) if args.quick else (256, 1024)))
    rows, s = table(lo, hi)
    notes = [f"Parameters per agent: {hi['params_per_agent']:,.0f} float32 on average "
             f"({hi['params_per_agent'] * 4 / 1024:.1f} KiB); Adam keeps two states per "
             "parameter, so the floor is 4 × the parameters.",
             f"RSS growth is {s['rss'] / s['floor']:.2f} × the floor; the peak grows "
             f"{s['peak'] / s['floor']:.2f} × the floor per agent (ring, mix 1:1:1, "
             "100 samples per agent, 2 rounds, 1 torch thread).",
             f"Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}."]
    print("\n".join(rows + [""] + notes))
    if not args.quick:
        append_results("Memory per agent by category (vectorized backend, CPU)", rows, notes)


if __name__ == "__main__":
    main()
