"""Seconds per round of `parsefl launch` on the quickstart preset by transport: gloo, gloo with
signed messages, gRPC with mutual TLS (and signed messages), gRPC plaintext (--insecure).

    python benchmarks/transports.py [--nproc 4 8] [--rounds 8]   # prints a Markdown table

A round's time is the median over rounds 1..R-2 of rank 0's log (round 0 holds the handshake
and, for gRPC, the connection set-up; the last one the evaluation)."""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from parsefl.experiments.distributed.launcher import launch

ROUND_LINE = re.compile(r"round (\d+) done: .* ([\d.]+) s$")
VARIANTS = {  # name -> (launch keywords, extra overrides)
    "gloo": ({}, []),
    "gloo, signed": ({}, ["runtime.auth=true"]),
    "gRPC, mutual TLS + signed": ({"transport": "grpc"}, []),
    "gRPC, --insecure": ({"transport": "grpc", "insecure": True}, []),
}


def round_s(out: Path) -> float:
    times = [float(m.group(2)) for line in (out / "logs" / "rank_0.log").read_text().splitlines()
             if (m := ROUND_LINE.search(line))]
    return statistics.median(times[1:-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, nargs="+", default=[4])
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    overrides = [f"rounds={args.rounds}", f"eval_every={args.rounds}", "runtime.threads=1"]
    lines = ["| processes | transport | s/round | wall s | rejected |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.nproc:
            for name, (kw, extra) in VARIANTS.items():
                out = Path(tmp) / f"{n}-{len(lines)}"
                t0 = time.perf_counter()
                res = launch(None, [*overrides, *extra], nproc=n, out_dir=out,
                             wall_timeout_s=900, **kw)
                lines.append(f"| {n} | {name} | {round_s(out):.3f} | "
                             f"{time.perf_counter() - t0:.1f} | "
                             f"{res['distributed']['rejected_messages']} |")
                print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
