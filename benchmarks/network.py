"""Time to accuracy on bandwidth-bound networks: the quickstart over gRPC (mutual TLS) on test
hosts — network namespaces on a bridge, every link shaped with tbf to a rate each way
(parsefl.experiments.distributed.netlab; needs root) — for PARSE with and without compression
against the baselines; and the scale of processes (8 on 8 hosts, 16 on 4) against the simulator.

    sudo python benchmarks/network.py                  # 4 hosts, 1/10/100 Mbit/s, 5 methods
    sudo python benchmarks/network.py --quick          # 10 Mbit/s, 20 rounds, prints only
    sudo python benchmarks/network.py --scale          # 8 on 8 and 16 on 4 == the simulator
    sudo python benchmarks/network.py --slow           # one 1 Mbit/s link among 100 Mbit/s
    sudo python benchmarks/network.py --config configs/hapt.yaml --hosts 6 --rates 10

Time to accuracy: wall seconds from the start of round 0 (the earliest rank's) to the end of
the first evaluated round whose overall test accuracy (metrics.csv, every ``eval_every``
rounds; evaluation included in the time) reaches the target: ``--target`` or, by default,
dsgd_full's final overall accuracy on unshaped links minus 2 points, reported. Bytes are
``communication.bytes_total`` (the simulator's count: tensor bytes per hop) and what crossed
processes on the wire (``distributed.wire_bytes``: tensors, handshakes and frame headers).
Rounds are synchronous: a round ends when a process has every neighbour's frames, so the
slowest link paces everyone (reported as the median round time).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402

from parsefl.experiments.distributed import netlab  # noqa: E402

METHODS = {
    "parse": [],
    "parse + int8": ["communication.compressor=int8"],
    "parse + overlay auto + int8": ["communication.compressor=int8", "overlay.name=auto"],
    "sliced_hybrid": ["method=sliced_hybrid"],
    "dsgd_full": ["method=dsgd_full"],
}
STAMP = re.compile(r"^(\S+ \S+) rank (\d+) INFO parsefl.worker: round (\d+) done: .* "
                   r"([\d.]+) s$")


def run_once(net: netlab.TestNet, out: Path, world: int, overrides: list[str],
             timeout_s: float, config: str | None = None) -> dict:
    """One gRPC run on the hosts; its results, per-round end times and evaluations."""
    run = netlab.NetRun(net, out, world)
    run.prepare(config, overrides)
    for rank in range(world):
        run.start(rank)
    codes = run.wait(timeout_s)
    if any(c != 0 for c in codes.values()):
        raise RuntimeError(f"exit codes {codes}: see {out / 'logs'}")
    results = run.merge()
    ends: dict[int, float] = {}
    starts = []
    for rank in range(world):
        for line in run.log(rank).splitlines():
            m = STAMP.match(line)
            if not m:
                continue
            t = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            r = int(m[3])
            ends[r] = max(ends.get(r, 0.0), t)
            if r == 0:
                starts.append(t - float(m[4]))
    t0 = min(starts)
    with (out / "metrics.csv").open() as fh:
        evals = [(int(row["round"]), float(row["accuracy.overall"])) for row in csv.DictReader(fh)]
    rounds = sorted(ends)
    per_round = [ends[r] - ends[r - 1] for r in rounds[1:]]
    return {"results": results, "evals": evals, "end": {r: ends[r] - t0 for r in rounds},
            "round_s": statistics.median(per_round) if per_round else float("nan")}


def time_to(run: dict, target: float) -> float | None:
    """Seconds until the first evaluation at or above ``target`` (None: never)."""
    for r, acc in run["evals"]:
        if acc >= target:
            return run["end"].get(r - 1, run["end"].get(r))
    return None


def accuracy_table(args: argparse.Namespace) -> None:
    base = [*([f"rounds={args.rounds}"] if args.rounds else []), "eval_every=5",
            "runtime.timeout_s=60", f"seed={args.seed}", "device=cpu"]
    dataset = Path(args.config).stem if args.config else "quickstart"
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="parsefl-net-"))
    runs: dict[tuple[str, float | None], dict] = {}
    with netlab.TestNet(args.hosts) as net:
        target = args.target
        if target is None:
            ref = run_once(net, tmp / "ref", args.hosts, [*base, *METHODS["dsgd_full"]],
                           args.timeout, args.config)
            target = ref["results"]["final"]["accuracy"]["overall"] - 0.02
            print(f"target: {target:.4f} (dsgd_full unshaped, final overall minus 2 points)")
        for rate in args.rates:
            for i in range(args.hosts):  # 0: unshaped (what compute alone allows)
                net.shape(i, rate or None, rate or None)
            for name in args.methods:
                key = (name, rate)
                runs[key] = run_once(net, tmp / f"{len(runs)}", args.hosts,
                                     [*base, *METHODS[name]], args.timeout, args.config)
                got = runs[key]
                t = time_to(got, target)
                res = got["results"]
                final = res["final"]["accuracy"]["overall"]
                reach = "never" if t is None else f"{t:.1f} s"
                print(f"{rate:>6} Mbit/s  {name:<28} final {final:.4f}  to target {reach}  "
                      f"round {got['round_s']:.3f} s  "
                      f"bytes {res['communication']['bytes_total']:,}", flush=True)
    lines = ["| link (Mbit/s, each way) | method | final overall acc | seconds to target | "
             "speed-up vs dsgd_full | median round (s) | bytes counted | bytes on the wire |",
             "|---|---|---|---|---|---|---|---|"]
    for rate in args.rates:
        ref_t = time_to(runs[("dsgd_full", rate)], target) if "dsgd_full" in args.methods \
            else None
        for name in args.methods:
            got = runs[(name, rate)]
            res, t = got["results"], time_to(got, target)
            wire = res["distributed"]["wire_bytes"]
            speed = f"{ref_t / t:.1f}x" if t and ref_t else "—"
            link = f"{rate:g}" if rate else "unshaped"
            lines.append(
                f"| {link} | {name} | {res['final']['accuracy']['overall']:.4f} | "
                f"{'never' if t is None else f'{t:.1f}'} | {speed} | {got['round_s']:.3f} | "
                f"{res['communication']['bytes_total']:,} | "
                f"{sum(wire.get(k, 0) for k in ('payload_bytes', 'header_bytes')):,} |")
    print("\n".join(lines))
    if not args.quick:
        how = "" if args.target else " (dsgd_full unshaped final minus 2 points)"
        rates = ", ".join("unshaped" if r == 0 else f"{r:g}" for r in args.rates)
        append_results(f"Network: time to accuracy, {dataset} on {args.hosts} test hosts, "
                       f"{rates} Mbit/s",
                       lines, [f"Target overall accuracy {target:.4f}{how};"
                               f" {args.rounds or 'the config file'} rounds, seed {args.seed}, "
                               "evaluation every 5 rounds (included in the time). One gRPC "
                               "process per host (mutual TLS), every host's link shaped with "
                               "tbf to the rate both ways. Not converged runs: the config's "
                               f"budget. 1-minute load average {load:.1f} at the start, "
                               f"{os.getloadavg()[0]:.1f} at the end (other jobs on the "
                               "machine)."])


def scale_check(args: argparse.Namespace) -> None:
    """8 processes on 8 hosts and 16 on 4: the simulator's numbers (16 agents)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_distributed import BASE, _simulate, _strip

    overrides = [*BASE, "mix={m1: 6, m2: 5, m1+m2: 5}", "rounds=4", "eval_every=2",
                 "overlay.name=relay", "overlay.hops=2"]
    tmp = Path(tempfile.mkdtemp(prefix="parsefl-net-scale-"))
    sim = _strip(_simulate(tmp / "sim", overrides))
    lines = ["| processes | hosts | wall (s) | equal to the simulator |", "|---|---|---|---|"]
    for world, n_hosts in ((8, 8), (16, 4)):
        with netlab.TestNet(n_hosts, rate_mbit=100.0) as net:
            run = netlab.NetRun(net, tmp / f"{world}", world)
            run.prepare(None, overrides)
            start = time.perf_counter()
            for rank in range(world):
                run.start(rank)
            codes = run.wait(args.timeout)
            wall = time.perf_counter() - start
            same = all(c == 0 for c in codes.values()) and _strip(run.merge()) == sim
        lines.append(f"| {world} | {n_hosts} | {wall:.1f} | {'yes' if same else 'NO'} |")
        print(lines[-1], flush=True)
    if not args.quick:
        append_results("Network: processes across test hosts vs the simulator", lines,
                       ["synthetic_pid, 16 agents (mix 6/5/5), relay overlay (2 hops), 4 "
                        "rounds, links shaped to 100 Mbit/s; equal = every per-agent accuracy, "
                        "metric and byte count of results.json bit for bit."])


def slow_link(args: argparse.Namespace) -> None:
    """Whether the slowest link paces everyone: the median round with every link at 100
    Mbit/s, with one host's link at 1 Mbit/s (the others at 100), and with every link at 1."""
    base = ["rounds=12", "eval_every=1000", "runtime.timeout_s=120", "device=cpu"]
    tmp = Path(tempfile.mkdtemp(prefix="parsefl-net-slow-"))
    lines = ["| method | all links 100 Mbit/s | host 0 at 1, others 100 | all links 1 Mbit/s |",
             "|---|---|---|---|"]
    with netlab.TestNet(args.hosts) as net:
        for name in ("parse + int8", "dsgd_full"):
            cells = []
            for slow, rest in ((100.0, 100.0), (1.0, 100.0), (1.0, 1.0)):
                for i in range(args.hosts):
                    rate = slow if i == 0 else rest
                    net.shape(i, rate, rate)
                got = run_once(net, tmp / f"{len(cells)}{name[:5]}", args.hosts,
                               [*base, *METHODS[name]], args.timeout, args.config)
                cells.append(f"{got['round_s']:.3f} s")
            lines.append(f"| {name} | {' | '.join(cells)} |")
            print(lines[-1], flush=True)
    if not args.quick:
        append_results(f"Network: the slowest link paces the round ({args.hosts} test hosts)",
                       lines, ["Median round time over rounds 1-11 of the config (default the "
                               "quickstart), one gRPC process per host, no evaluation inside "
                               "the rounds. Rounds are synchronous: one slow link makes "
                               "every round as slow as that host's transfers."])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=None, help="a config file (default: the quickstart)")
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--rates", type=float, nargs="+", default=[1.0, 10.0, 100.0],
                   help="Mbit/s each way per host link (0: unshaped)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--rounds", type=int, default=None, help="default: the config's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run at most")
    p.add_argument("--quick", action="store_true", help="10 Mbit/s, 20 rounds, prints only")
    p.add_argument("--scale", action="store_true", help="8 on 8 and 16 on 4 hosts only")
    p.add_argument("--slow", action="store_true", help="one slow link against all fast")
    args = p.parse_args()
    ok, why = netlab.available()
    if not ok:
        sys.exit(f"benchmarks/network.py: {why}")
    if args.quick:
        args.rates, args.rounds = [10.0], 20
    if args.scale:
        scale_check(args)
    elif args.slow:
        slow_link(args)
    else:
        accuracy_table(args)


if __name__ == "__main__":
    main()
