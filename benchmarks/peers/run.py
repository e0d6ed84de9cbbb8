"""Seconds per round and end-to-end wall time of parsefl, Flower (simulation) and p2pfl on one
workload: N peers on a ring, each with an IID slice of 4,000 generated samples (784 features,
10 classes), a 784-256-128-10 MLP, one local epoch of plain SGD (lr 0.01, batch 32) per round,
then averaging of the whole model (see README.md beside this file for what each framework
does and the fairness caveats).

    python benchmarks/peers/run.py              # 8 and 16 peers, 5 rounds; appends to RESULTS.md
    python benchmarks/peers/run.py --quick      # 4 peers, 2 rounds, 1,000 samples; prints only
    python benchmarks/peers/run.py --frameworks parsefl,flower --skip-install

Flower and p2pfl each run in a throwaway venv under ``benchmarks/peers/.venvs/`` that this
script creates when missing (``--skip-install`` reuses them, and skips a framework whose venv
is not there). Every run is one subprocess at a time, bounded by ``--timeout``.

Figures: s/round is the median over the rounds after the first; end-to-end is the wall time
of the whole subprocess (interpreter start, imports, data, start-up, rounds, final evaluation,
teardown); start-up = end-to-end - rounds x s/round. For parsefl, s/round comes from timing
``RoundEngine.step`` through the Python API and end-to-end from the ``parsefl run`` command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import _common  # noqa: E402
import bench_parsefl  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS.md"
VENVS = HERE / ".venvs"
DATA = HERE / "data"
LOGS = HERE / "logs"

# What each throwaway venv holds. torch is pinned: an unpinned torch pulls a multi-GB CUDA
# build for Flower; p2pfl 0.4.4 needs torch 2.14.1 + torchvision 0.29.1 (a CUDA build).
VENV_SPECS = {
    "flower": ["torch==2.13.0", "flwr[simulation]==1.42.0"],
    "p2pfl": ["torch==2.14.1", "torchvision==0.29.1", "p2pfl==0.4.4", "lightning",
              "torchmetrics", "opendp", "pyarrow<20", "huggingface_hub<0.25"],
}
VENV_DISK_GB = {"flower": 3.0, "p2pfl": 8.0}  # free disk needed to create the venv
IMPORT_CHECK = {"flower": "import flwr, ray, torch", "p2pfl": "import p2pfl, lightning, torch"}
FRAMEWORKS = ("parsefl", "flower", "p2pfl")


def log(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- environments


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, skip_install: bool) -> str | None:
    """Create ``.venvs/<name>`` with its packages unless it is already there with the same
    spec (idempotent). Returns None when ready, else why the framework is skipped."""
    marker = VENVS / name / ".peers-bench-spec"
    spec = "\n".join(VENV_SPECS[name])
    py = venv_python(name)
    ready = py.exists() and marker.exists() and marker.read_text() == spec
    if ready:
        return None
    if skip_install:
        return f"no ready venv at {VENVS / name} and --skip-install given"
    free_gb = shutil.disk_usage(HERE).free / 2**30
    if free_gb < VENV_DISK_GB[name]:
        return (f"not enough free disk for the {name} venv: {free_gb:.1f} GiB free, "
                f"{VENV_DISK_GB[name]:.0f} GiB needed")
    log(f"creating {VENVS / name} ({', '.join(VENV_SPECS[name])}); this takes minutes")
    VENVS.mkdir(parents=True, exist_ok=True)
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True)
    LOGS.mkdir(exist_ok=True)
    with (LOGS / f"install-{name}.log").open("w") as fh:
        proc = subprocess.run([str(py), "-m", "pip", "install", *VENV_SPECS[name]],
                              stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        return f"pip install failed for {name} (see {LOGS / f'install-{name}.log'})"
    check = subprocess.run([str(py), "-c", IMPORT_CHECK[name]], capture_output=True, text=True)
    if check.returncode != 0:
        return f"{name} venv does not import: {check.stderr.strip().splitlines()[-1:]}"
    marker.write_text(spec)
    return None


def versions(name: str) -> str:
    """Package versions in a framework's environment, for the record."""
    pkgs = {"parsefl": ["parsefl", "torch"], "flower": ["flwr", "ray", "torch"],
            "p2pfl": ["p2pfl", "lightning", "ray", "torch"]}[name]
    py = sys.executable if name == "parsefl" else str(venv_python(name))
    code = ("from importlib.metadata import version as v;"
            f"print(', '.join(f'{{p}} {{v(p)}}' for p in {pkgs!r}))")
    out = subprocess.run([py, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "?"


# --------------------------------------------------------------------------- running


def run_timed(cmd: list[str], log_path: Path, timeout: float,
              extra_env: dict[str, str] | None = None) -> tuple[float, int | None]:
    """Run ``cmd`` in its own process group; returns (wall seconds, return code or None on
    timeout). The whole group is killed afterwards (Ray leaves helpers behind)."""
    env = dict(os.environ, PYTHONPATH=str(HERE), FLWR_TELEMETRY_ENABLED="0",
               RAY_DEDUP_LOGS="0", PYTHONUNBUFFERED="1", TQDM_DISABLE="1", **(extra_env or {}))
    LOGS.mkdir(exist_ok=True)
    with log_path.open("w") as fh:
        fh.write("$ " + shlex.join(cmd) + "\n")
        fh.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)
        try:
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        wall = time.perf_counter() - t0
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return wall, rc


def child_result(out: Path) -> dict:
    return json.loads(out.read_text()) if out.exists() else {}


def clear(out: Path) -> Path:
    """Remove a previous run's result file, so that a failed run cannot report it."""
    LOGS.mkdir(exist_ok=True)
    out.unlink(missing_ok=True)
    return out


def parsefl_cli(data: Path, peers: int, rounds: int, out_dir: Path,
                steps: int | None = None) -> list[str]:
    exe = str(Path(sys.executable).with_name("parsefl"))
    exe = exe if Path(exe).exists() else shutil.which("parsefl") or "parsefl"
    cmd = [exe, "run"]
    for o in bench_parsefl.overrides(data, peers, rounds, steps):
        cmd += ["-o", o]
    return cmd + ["--out", str(out_dir)]


def run_parsefl(data: Path, peers: int, rounds: int, timeout: float, tmp: Path,
                threads: int, steps: int | None = None) -> dict:
    out = clear(LOGS / f"parsefl-{peers}.json")
    # torch's intra-op threads: parsefl runs every agent in one process; the other frameworks'
    # workers each use one thread (Flower: set in the client, p2pfl: set by its learner).
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    api = [sys.executable, str(HERE / "bench_parsefl.py"), "--data", str(data), "--peers",
           str(peers), "--rounds", str(rounds), "--out", str(out),
           *(["--steps", str(steps)] if steps else [])]
    wall_api, rc = run_timed(api, LOGS / f"parsefl-api-{peers}.log", timeout, env)
    res = child_result(out)
    if rc != 0 or not res:
        return {"error": _failure("parsefl API run", rc, timeout,
                                  LOGS / f"parsefl-api-{peers}.log")}
    cli = parsefl_cli(data.relative_to(REPO), peers, rounds, tmp / f"parsefl-run-{peers}", steps)
    wall, rc = run_timed(cli, LOGS / f"parsefl-cli-{peers}.log", timeout, env)
    if rc != 0:
        return {"error": _failure("parsefl run", rc, timeout, LOGS / f"parsefl-cli-{peers}.log")}
    res.update(wall_s=wall, api_wall_s=wall_api,
               cli=f"OMP_NUM_THREADS={threads} " + shlex.join(["parsefl", *cli[1:-1]])
               + " <tmp dir>")
    res["note"] = res.get("note", "") + f", {threads} torch thread(s), one process"
    return res


def run_flower(data: Path, peers: int, rounds: int, timeout: float, tmp: Path,
               client_cpus: float) -> dict:
    out = clear(LOGS / f"flower-{peers}.json")
    cmd = [str(venv_python("flower")), str(HERE / "bench_flower.py"), "--data", str(data),
           "--peers", str(peers), "--rounds", str(rounds), "--out", str(out),
           "--client-cpus", str(client_cpus)]
    wall, rc = run_timed(cmd, LOGS / f"flower-{peers}.log", timeout)
    res = child_result(out)
    if rc != 0 or not res or res.get("error"):
        res["error"] = res.get("error") or _failure("Flower", rc, timeout,
                                                    LOGS / f"flower-{peers}.log")
    res["wall_s"] = wall
    return res


def run_p2pfl(data: Path, peers: int, rounds: int, timeout: float, tmp: Path) -> dict:
    out = clear(LOGS / f"p2pfl-{peers}.json")
    # The child gives up a little before the parent kills it, to report what it finished.
    cmd = [str(venv_python("p2pfl")), str(HERE / "bench_p2pfl.py"), "--data", str(data),
           "--peers", str(peers), "--rounds", str(rounds), "--out", str(out),
           "--timeout", str(max(timeout - 90, 30))]
    wall, rc = run_timed(cmd, LOGS / f"p2pfl-{peers}.log", timeout)
    res = child_result(out)
    done = len(res.get("round_times", []))
    if rc is None:
        res["error"] = (f"stalled: killed after {timeout:.0f} s with {done} of {rounds} rounds "
                        "finished (p2pfl heartbeat timeouts)")
    elif rc != 0 or not res:
        text = (LOGS / f"p2pfl-{peers}.log").read_text(errors="replace")
        res["error"] = res.get("error") or (
            "did not start: its overlay's heartbeats never converged within 120 s "
            "(wait_convergence; NeighborNotConnectedError)" if "wait_convergence" in text
            else _failure("p2pfl", rc, timeout, LOGS / f"p2pfl-{peers}.log"))
    res["wall_s"] = wall
    return res


def _failure(what: str, rc: int | None, timeout: float, log_path: Path) -> str:
    if rc is None:
        return f"{what} timed out after {timeout:.0f} s (log: {log_path.relative_to(REPO)})"
    return f"{what} exited with {rc} (log: {log_path.relative_to(REPO)})"


# --------------------------------------------------------------------------- report


def fmt(v: float | None, digits: int = 3) -> str:
    if v is None or v != v:
        return "–"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}" if v < 10 else f"{v:.1f}"


def table(rows: list[dict], rounds: int) -> str:
    head = ("framework", "peers", "s/round", "end-to-end s", "start-up s",
            "× parsefl per round", "× parsefl end to end", "CPU s/round",
            "× parsefl CPU per round", "accuracy", "rounds done", "note")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = {r["peers"]: r for r in rows if r["framework"] == "parsefl" and not r.get("error")}
    for r in rows:
        p = base.get(r["peers"])
        done = len(r.get("round_times", []))
        per = r.get("s_per_round") if done > 1 else None
        wall = r.get("wall_s") if not r.get("error") else None
        startup = wall - done * per if wall is not None and per is not None else None
        ratio_r = per / p["s_per_round"] if p and per else None
        ratio_w = wall / p["wall_s"] if p and wall else None
        cpu, base_cpu = cpu_per_round(r), cpu_per_round(p) if p else None
        ratio_c = cpu / base_cpu if cpu and base_cpu else None
        note = r.get("error") or r.get("note", "")
        acc = r.get("accuracy")
        lines.append("| " + " | ".join([
            r["framework"], str(r["peers"]), fmt(per), fmt(r.get("wall_s"), 1), fmt(startup, 1),
            f"{ratio_r:.1f}×" if ratio_r else "–", f"{ratio_w:.1f}×" if ratio_w else "–",
            fmt(cpu), f"{ratio_c:.1f}×" if ratio_c else "–",
            f"{acc:.3f}" if acc is not None else "–", f"{done}/{rounds}", note,
        ]) + " |")
    return "\n".join(lines)


def cpu_per_round(r: dict) -> float | None:
    """Median CPU seconds per round (rounds 2..) of the framework's whole process group."""
    import statistics

    cpu = r.get("cpu_s") or []
    return statistics.median(cpu[1:]) if len(cpu) > 1 and any(cpu) else None


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets: parsefl >= 20x faster per round than Flower simulation and
    >= 100x faster than p2pfl."""
    out = []
    base = {r["peers"]: r for r in rows if r["framework"] == "parsefl" and not r.get("error")}
    for fw, goal in (("flower", 20), ("p2pfl", 100)):
        for r in rows:
            if r["framework"] != fw or r["peers"] not in base:
                continue
            done = len(r.get("round_times", []))
            if done < 2:
                out.append(f"- {fw}, {r['peers']} peers: no steady round measured "
                           f"({r.get('error', 'no result')}); target ≥{goal}× not assessable"
                           + (" — a stall is slower than any ratio" if done < 2 and
                              "stall" in str(r.get("error", "")) else ""))
                continue
            ratio = r["s_per_round"] / base[r["peers"]]["s_per_round"]
            verdict = "met" if ratio >= goal else "NOT met"
            extra = f" ({r['error']})" if r.get("error") else ""
            out.append(f"- {fw}, {r['peers']} peers: parsefl is {ratio:.1f}× faster per round; "
                       f"target ≥{goal}× {verdict}{extra}")
    return out


def parsefl_source() -> str:
    """The parsefl code that was measured: commit, and whether src/ had uncommitted changes."""
    def git(*a: str) -> str:
        out = subprocess.run(["git", *a], capture_output=True, text=True, cwd=REPO)
        return out.stdout.strip() if out.returncode == 0 else ""

    sha = git("rev-parse", "--short", "HEAD") or "unknown commit"
    dirty = git("status", "--porcelain", "--", "src")
    return f"parsefl at {sha}" + (" with uncommitted changes in src/" if dirty else "")


def breakdown(rows: list[dict]) -> list[str]:
    """parsefl's median local-training and gossip seconds per round (rounds 2..)."""
    import statistics

    out = []
    for r in rows:
        if r["framework"] == "parsefl" and r.get("train_s") and len(r["train_s"]) > 1:
            tr, go = statistics.median(r["train_s"][1:]), statistics.median(r["gossip_s"][1:])
            out.append(f"- parsefl, {r['peers']} peers: a round is {tr:.3f} s of local training "
                       f"+ {go:.3f} s of gossip (medians)")
        if r["framework"] == "parsefl" and len(r.get("floor_s") or []) > 1:
            fl = statistics.median(r["floor_s"][1:])
            out.append(f"- compute floor, {r['peers']} peers (the same stacked steps in a plain "
                       f"PyTorch loop, same process): {fl:.3f} s/round; parsefl / floor = "
                       f"{r['s_per_round'] / fl:.2f}; Flower / floor = "
                       + next((f"{f['s_per_round'] / fl:.1f}" for f in rows
                               if f["framework"] == "flower" and f["peers"] == r["peers"]
                               and len(f.get("round_times", [])) > 1), "–"))
    return out


def machine() -> str:
    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.platform()}, {os.cpu_count()} CPU cores, Python "
            f"{sys.version.split()[0]}, torch {torch.__version__} (parsefl); load average "
            f"at the end {load}")


def workload(args: argparse.Namespace, peers: list[int], samples: int, rounds: int,
             steps: int | None) -> str:
    """The workload paragraph of the RESULTS.md section."""
    f, h, d, b = _common.FEATURES, _common.HIDDEN, _common.DIM, _common.BATCH
    data = (f"{_common.PER_AGENT} generated training samples per agent" if
            args.regime == "overhead" else f"an IID split of {samples:,} generated training "
            "samples")
    local = (f"{steps} fixed local steps of batch {b} (= one epoch of {steps * b} samples) on "
             "parsefl's vectorized backend (`train.local_steps`)" if steps else
             f"1 local epoch of batch {b} (`train.local_epochs=1`, backend auto)")
    return (f"Workload: {', '.join(map(str, peers))} peers on a ring, {data} ({f} features, "
            f"10 classes; {_common.N_TEST:,} test), MLP {f}-{h}-{d}-10 (no ReLU after the {d} "
            f"projection, as parsefl's monolithic model), plain SGD (lr {_common.LR}), "
            f"{local}; Flower and p2pfl train one epoch of the same batches' size; {rounds} "
            "rounds. parsefl: `dsgd_full`, whole model averaged with ring neighbours "
            "(Metropolis–Hastings). Flower 1.42 simulation (Ray, 1 CPU per client actor): "
            "FedAvg over all clients per round, the closest a server-based framework offers. "
            "p2pfl: every peer trains, the train set's FedAvg is gossiped over the ring. "
            "s/round: median over rounds 2.., end-to-end: the whole process (for parsefl the "
            "`parsefl run` command below), start-up = end-to-end − rounds × s/round. parsefl "
            f"runs all peers in one process with {args.parsefl_threads} torch thread(s); "
            "Flower and p2pfl use two Ray worker processes (one thread each) on the two "
            "cores. Flower's in-memory grid polls for replies every 0.1 s, a floor under its "
            "round time. The compute floor is the same stacked training steps without the "
            "federation machinery, timed in the parsefl process after its rounds. ")


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="4 peers, 2 rounds, 1,000 samples; prints only")
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                    help="comma-separated subset of parsefl,flower,p2pfl")
    ap.add_argument("--peers", help="comma-separated peer counts (default 8,16; quick 4)")
    ap.add_argument("--rounds", type=int, help="rounds per run (default 5; quick 2)")
    ap.add_argument("--samples", type=int, help="training samples (default 4000; quick 1000)")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="seconds allowed to one framework run (default 600)")
    ap.add_argument("--flower-client-cpus", type=float, default=1.0,
                    help="Ray num_cpus per Flower client actor (default 1)")
    ap.add_argument("--parsefl-threads", type=int, default=1,
                    help="torch threads of the parsefl process (OMP_NUM_THREADS; default 1)")
    ap.add_argument("--regime", choices=sorted(_common.REGIMES), default="compute",
                    help="compute (8-16 peers, big MLP) or overhead (64-1,024 agents x 100 "
                         "samples, scaling.py's small model; see README.md)")
    ap.add_argument("--parsefl-local", choices=("steps", "epochs"),
                    help="parsefl's local training: fixed steps = one epoch on the vectorized "
                         "backend, or train.local_epochs (backend auto) (default: steps in "
                         "the overhead regime, epochs in the compute regime)")
    ap.add_argument("--p2pfl-timeout", type=float,
                    help="seconds allowed to one p2pfl run (default: --timeout)")
    ap.add_argument("--p2pfl-max-peers", type=int, default=64,
                    help="overhead regime: run p2pfl only up to this many peers (default 64)")
    ap.add_argument("--skip-install", action="store_true",
                    help="reuse the venvs; skip a framework whose venv is missing")
    ap.add_argument("--results", type=Path, default=RESULTS, help="file the table is appended to")
    args = ap.parse_args()
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = sorted(set(frameworks) - set(FRAMEWORKS))
    if unknown:
        ap.error(f"unknown framework(s) {unknown}; choose from {', '.join(FRAMEWORKS)}")
    overhead = args.regime == "overhead"
    if overhead:
        os.environ[_common.ENV_REGIME] = "overhead"  # every child and Ray actor reads it
        _common.set_regime("overhead")
    default_peers = ("16" if args.quick else "64,256,1024") if overhead else \
        ("4" if args.quick else "8,16")
    peers = [int(p) for p in (args.peers or default_peers).split(",")]
    rounds = args.rounds or (2 if args.quick else 4 if overhead else 5)
    samples = args.samples or (1000 if args.quick else 4000)
    steps = _common.PER_AGENT // _common.BATCH if (args.parsefl_local or (
        "steps" if overhead else "epochs")) == "steps" else None
    t_all = time.perf_counter()

    skipped: dict[str, str] = {}
    for fw in frameworks:
        if fw != "parsefl" and (why := ensure_venv(fw, args.skip_install)):
            skipped[fw] = why
            log(f"SKIPPING {fw}: {why}")

    def data_for(n: int) -> Path:
        """The compute regime shares one data set; the overhead regime gives each agent
        PER_AGENT samples (N x PER_AGENT in all)."""
        size = n * _common.PER_AGENT if overhead else samples
        path = DATA / f"{args.regime}_{size}_f{_common.FEATURES}_s{_common.SEED}.npz"
        if not path.exists():
            _common.generate(path, size)
            log(f"data: {path.relative_to(REPO)} ({size} train + {_common.N_TEST} test)")
        return path

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="peers-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for n in peers:
            data = data_for(n)
            for fw in frameworks:
                if fw in skipped or (overhead and fw == "p2pfl" and n > args.p2pfl_max_peers):
                    continue
                log(f"{fw}, {n} peers, {rounds} rounds ...")
                if fw == "parsefl":
                    res = run_parsefl(data, n, rounds, args.timeout, tmp, args.parsefl_threads,
                                      steps)
                elif fw == "flower":
                    res = run_flower(data, n, rounds, args.timeout, tmp, args.flower_client_cpus)
                else:
                    res = run_p2pfl(data, n, rounds, args.p2pfl_timeout or args.timeout, tmp)
                res.update(framework=fw, peers=n)
                res["load_after"] = os.getloadavg()[0]
                rows.append(res)
                per = res.get("s_per_round")
                log(f"  -> s/round {fmt(per)}, end-to-end {fmt(res.get('wall_s'), 1)} s"
                    + (f"  [{res['error']}]" if res.get("error") else ""))

    text = table(rows, rounds)
    verdicts = targets(rows) + breakdown(rows)
    cli = next((r["cli"] for r in rows if r.get("cli")), None)
    print("\n" + text + "\n")
    for line in verdicts:
        print(line)
    for fw, why in skipped.items():
        print(f"- {fw} skipped: {why}")
    log(f"done in {time.perf_counter() - t_all:.0f} s")
    if args.quick:
        return

    command = "python " + " ".join([str(Path(sys.argv[0]).resolve().relative_to(REPO)),
                                    *sys.argv[1:]])
    envs = "; ".join(f"{fw}: {versions(fw)}" for fw in frameworks if fw not in skipped)
    with args.results.open("a") as fh:
        fh.write(
            f"\n## Peers{' (overhead regime)' if overhead else ''}: parsefl vs Flower vs p2pfl "
            f"({time.strftime('%Y-%m-%d')})\n\n"
            f"`{command}` on {machine()}. Packages: {envs}; {parsefl_source()}.\n\n"
            + workload(args, peers, samples, rounds, steps) +
            "See benchmarks/peers/README.md for the caveats. One run each on a shared "
            "machine: compare ratios, not absolute seconds.\n\n"
            + (f"parsefl command ({peers[0]} peers; `mix={{img: N}}` for N peers): "
               f"`{cli}`\n\n" if cli else "")
            + f"{text}\n\n" + "\n".join(verdicts)
            + "".join(f"\n- {fw} skipped: {why}" for fw, why in skipped.items()) + "\n")
    log(f"appended to {args.results}")


if __name__ == "__main__":
    main()
