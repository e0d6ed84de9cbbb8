"""How long a command that only shows text takes: `parsefl --help`, `parsefl list` and
`parsefl list sharing`, each a fresh process (`python -m parsefl.cli ...`, the code of the
parsefl this Python imports), median of ``--repeats`` runs, quiet or beside ``--busy K``
CPU-bound processes. Also whether the process imported torch.

    python benchmarks/cli_startup.py --label after            # quiet, appended to RESULTS.md
    python benchmarks/cli_startup.py --busy 1 --label after   # beside one CPU-bound process
    python benchmarks/cli_startup.py --quick                  # 3 repeats, prints only
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, busy, timing_options  # noqa: E402

COMMANDS = (["--help"], ["list"], ["list", "sharing"])
# The command runs, then says whether torch was imported (-c keeps the same import path).
PROBE = ("import sys; sys.argv = ['parsefl', *sys.argv[1:]]\n"
         "from parsefl.cli import main\n"
         "try:\n    main()\nexcept SystemExit:\n    pass\n"
         "print('torch' in sys.modules, file=sys.stderr)")


def _env() -> dict[str, str]:
    import parsefl

    src = str(Path(parsefl.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": src}


def seconds(args: list[str], repeats: int) -> float:
    """Median wall seconds of ``python -m parsefl.cli ARGS`` over ``repeats`` fresh runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "parsefl.cli", *args], env=_env(), check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def imports_torch(args: list[str]) -> bool:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=_env(), check=True,
                          capture_output=True, text=True)
    return done.stderr.strip().splitlines()[-1] == "True"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    timing_options(p, "3 repeats, print only")
    args = p.parse_args()
    repeats = 3 if args.quick else args.repeats
    load = os.getloadavg()[0]  # the machine may be shared: how busy it was already
    with busy(args.busy):
        rows = {" ".join(c): (seconds(c, repeats), imports_torch(c)) for c in COMMANDS}
    base = rows["--help"][0]
    table = ["| command | seconds (median) | x `--help` | imports torch |", "|---|---:|---:|---|",
             *(f"| `parsefl {c}` | {s:.2f} | {s / base:.1f} | {'yes' if t else 'no'} |"
               for c, (s, t) in rows.items())]
    print("\n".join(table))
    if not args.quick:
        cond = f"beside {args.busy} CPU-bound process(es)" if args.busy else "quiet"
        append_results(f"CLI start-up: help and list, {args.label or 'as found'}, {cond}",
                       table, [f"Median of {repeats} fresh processes each; 1-minute load "
                               f"average {load:.1f} before it started."])


if __name__ == "__main__":
    main()
