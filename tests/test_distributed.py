"""The multi-process runtime (gloo on localhost) against the in-memory simulator: same numbers,
same gossip plans, bad payloads rejected, a killed process survived, resume from checkpoints."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from two_ranks import join, run_pair

from parsefl.config import load_config
from parsefl.errors import PartialRun
from parsefl.experiments.distributed.launcher import launch
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.simulate import run_experiment

BASE = [
    "data.name=synthetic_pid", "data.params={label: redundancy, n_samples: 600}",
    "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=12",
    "model.encoder.params.hidden=[16]", "device=cpu", "diagnostics.gradient_cosine=false",
]
EQUAL = [*BASE, "rounds=4", "eval_every=2", "overlay.name=relay", "overlay.hops=2"]
LONG = [*BASE, "rounds=24", "eval_every=8"]
BOUND_S = 120  # no subprocess of this file may run longer


def _simulate(tmp: Path, overrides: list[str]) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers run (numbers do not depend on it; speed does)
    try:
        # the workers run agents one at a time: the reference backend's numbers, bit for bit
        return run_experiment(load_config(None, [*overrides, "runtime.backend=reference"]), tmp)
    finally:
        torch.set_num_threads(threads)


def _strip(results: dict) -> dict:
    return {k: v for k, v in results.items()
            if k not in ("wall_time_s", "diagnostics", "ablations", "distributed")}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    sim = _simulate(tmp / "sim", EQUAL)
    dist = launch(None, EQUAL, nproc=4, out_dir=tmp / "dist", wall_timeout_s=BOUND_S)
    return tmp, sim, dist


def test_four_processes_give_the_simulator_numbers(pair):
    tmp, sim, dist = pair
    assert _strip(dist) == _strip(sim)  # per-agent accuracy/F1, groups, bytes: exactly equal
    assert (tmp / "dist" / "metrics.csv").read_text() == (tmp / "sim" / "metrics.csv").read_text()
    info = dist["distributed"]
    assert info["world_size"] == 4 and info["missing_agents"] == [] and not info["lost_peers"]
    assert 0 < info["wire_bytes"]["params_bytes"] <= sim["communication"]["bytes_total"]
    assert len(list((tmp / "dist" / "checkpoints").glob("agent_*.safetensors"))) == 6
    for rank in range(4):
        assert "round 3 done" in (tmp / "dist" / "logs" / f"rank_{rank}.log").read_text()


def test_handshake_over_the_wire_builds_the_simulator_plans(pair):
    tmp, _, _ = pair
    exp = build_experiment(load_config(None, EQUAL))
    exp.loop.prepare(0)
    expected = {
        str(i): {c: {"paths": {str(j): list(p) for j, p in paths.items()},
                     "self_weight": plan.self_weight[c],
                     "weights": {str(j): w for j, w in plan.weights[c].items()}}
                 for c, paths in plan.paths.items()}
        for i, plan in exp.loop.plans.items()
    }
    got: dict = {}
    for rank in range(4):
        got.update(json.loads((tmp / "dist" / "logs" / f"plans_rank_{rank}.json").read_text()))
    assert got == expected
    assert any(len(p) == 3 for plan in got.values() for c in plan.values()
               for p in c["paths"].values())  # relay paths of two hops did travel


def test_malformed_payloads_are_rejected_logged_and_the_round_goes_on(tmp_path):
    got = run_pair(__file__, tmp_path)
    assert got["first"] == [[1, "c"]]  # only the good message of four was delivered
    assert got["second"] == [[1, "c"]]  # and the next exchange works
    assert got["merged_ok"] and got["rejected"] == 3
    log = (tmp_path / "rank0.log").read_text()
    assert "dtype/shape" in log and "NaN or Inf" in log and "malformed header" in log


def test_wire_format_round_trips_and_placement_is_blocks():
    from parsefl.runtime.distributed import place_agents
    from parsefl.runtime.transport import Message
    from parsefl.runtime.wire import decode_one, encode

    body = {"a": torch.randn(2, 3), "b": torch.arange(4, dtype=torch.bfloat16),
            "c": torch.tensor(True)}
    msgs = [Message(0, 5, "params", body, (0, 1, 5), "enc.m1"),
            Message(0, 1, "caps", [[{"agent": 0, "modalities": ["m1"], "signatures": {}}, [0]]],
                    (0, 1))]
    header, payload = encode(msgs)
    heads = json.loads(bytes(header.numpy()))["messages"]
    back = [decode_one(h, payload, torch.device("cpu")) for h in heads]
    assert back[1] == msgs[1]
    assert back[0].path == (0, 1, 5) and back[0].component == "enc.m1"
    assert all(torch.equal(back[0].body[k], v) and back[0].body[k].dtype == v.dtype
               for k, v in body.items())
    assert place_agents(6, 4) == [0, 0, 1, 1, 2, 3]
    assert place_agents(5, 2, "round_robin") == [0, 1, 0, 1, 0]


def test_killed_process_is_marked_missing_and_resume_matches_the_simulator(tmp_path):
    out = tmp_path / "run"
    opts = dict(nproc=3, out_dir=out, timeout_s=3.0, checkpoint_every=2, wall_timeout_s=BOUND_S)
    box: dict = {}

    def partial() -> None:  # a lost process: never a whole result, unless --allow-partial
        with pytest.raises(PartialRun, match=r"rank\(s\) \[2\] missing") as err:
            launch(None, LONG, **opts)
        box["r"] = err.value.results

    runner = threading.Thread(target=partial)
    runner.start()
    pid = _wait_for_round(out / "logs" / "rank_2.log", 4)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    runner.join(BOUND_S)
    killed = box["r"]
    assert time.monotonic() - killed_at < 45  # one 3 s timeout, then the remaining rounds
    assert killed["complete"] is False and killed["partial"]["missing_ranks"] == [2]
    assert json.loads((out / "results.json").read_text())["partial"] == killed["partial"]
    assert killed["distributed"]["missing_ranks"] == [2]
    assert killed["distributed"]["missing_agents"] == [4, 5]
    assert [a["id"] for a in killed["agents"]] == [0, 1, 2, 3]
    assert "lost rank 2" in (out / "logs" / "rank_1.log").read_text()

    resumed = launch(None, LONG, resume=True, **{**opts, "timeout_s": 30.0})
    first = resumed["distributed"]["resumed_from_round"]
    assert 4 <= first < 24 and first % 2 == 0
    assert resumed["distributed"]["missing_agents"] == []
    assert _strip(resumed) == _strip(_simulate(tmp_path / "sim", LONG))


def test_killed_first_process_the_others_finish_and_merge(tmp_path):
    out = tmp_path / "run"
    box: dict = {}
    overrides = [*BASE, "rounds=8", "eval_every=4"]
    runner = threading.Thread(target=lambda: box.update(r=launch(
        None, overrides, nproc=2, out_dir=out, timeout_s=3.0, wall_timeout_s=BOUND_S,
        allow_partial=True)))
    runner.start()
    os.kill(_wait_for_round(out / "logs" / "rank_0.log", 2), signal.SIGKILL)
    runner.join(BOUND_S)
    info = box["r"]["distributed"]  # merged by the launcher from rank 1's own summary
    assert info["missing_ranks"] == [0] and info["missing_agents"] == [0, 1, 2]
    assert [a["id"] for a in box["r"]["agents"]] == [3, 4, 5]
    assert "lost rank 0" in (out / "logs" / "rank_1.log").read_text()


class _Gone(Exception):
    """Raised in the thread of a rank that "dies"."""


class _Endpoint:
    """One rank of an in-process, two-rank network (threads + a barrier) with the transport
    interface ``DistributedEngine`` uses; rank 1 dies at exchange call ``die_at``."""

    seal = None  # unsigned
    rejoins = False  # lost for good (as over gloo)

    def __init__(self, rank, owner, shared, die_at):
        self.rank, self.owner, self.shared, self.die_at = rank, owner, shared, die_at
        self.lost, self.last_inbox, self.calls = {}, {}, 0
        self.link_bytes = Counter()

    def begin_round(self, r):
        pass

    @property
    def lost_agents(self):
        return {i for i, r in enumerate(self.owner) if r in self.lost}

    def exchange(self, messages):
        self.calls += 1
        if self.rank == 1 and self.calls == self.die_at:
            raise _Gone
        self.shared["posted"][self.rank] = list(messages)
        for _ in range(2):  # all posted, then all read
            if 1 - self.rank not in self.lost:
                try:
                    self.shared["barrier"].wait(timeout=2)
                except threading.BrokenBarrierError:
                    self.lost[1 - self.rank] = "no word in time"
            if _ == 0:
                inbox: dict = {}
                for r, msgs in self.shared["posted"].items():
                    for m in msgs if r not in self.lost else []:
                        if self.owner[m.dst] == self.rank:
                            inbox.setdefault(m.dst, []).append(m)
        self.last_inbox = inbox
        return inbox

    def take_link_bytes(self):
        return self.link_bytes


def test_survivors_replan_when_a_peer_dies_during_the_degree_swap():
    from parsefl.runtime.distributed import DistributedEngine

    cfg = load_config(None, [*BASE, "rounds=3"])
    exp = build_experiment(cfg)
    owner = [0, 0, 0, 0, 1, 1]
    shared = {"posted": {}, "barrier": threading.Barrier(2)}
    loops = [DistributedEngine([a for a in exp.agents if owner[a.id] == r], exp.loop.strategy,
                             exp.loop.topology, _Endpoint(r, owner, shared, die_at=4))
             for r in (0, 1)]
    errors: list = []

    def run(loop):
        try:
            for r in range(3):
                loop.step(r)  # ring, static: calls 1-3 in round 0, 4 = round 1's degree swap
        except _Gone:
            pass
        except Exception as err:  # noqa: BLE001  (reported below; if plan_gossip kept
            # peers whose degree never came, rank 0 would raise ValueError here)
            errors.append(err)

    threads = [threading.Thread(target=run, args=(loop,)) for loop in loops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and loops[0].transport.lost == {1: "no word in time"}
    for plan in loops[0].plans.values():
        for comp, paths in plan.paths.items():
            assert not set(paths) & {4, 5}
            assert plan.self_weight[comp] + sum(plan.weights[comp].values()) == pytest.approx(1)


def _wait_for_round(log: Path, r: int) -> int:
    """The pid of the process writing ``log`` once it has finished round ``r``."""
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        text = log.read_text() if log.is_file() else ""
        if f"round {r} done" in text:
            return int(re.search(r"pid (\d+)", text).group(1))
        time.sleep(0.01)
    raise TimeoutError(f"{log} never reached round {r}")


def _malformed_peer(rank: int, port: int, out: Path) -> None:
    """Two ranks; rank 1 hosts agents 1-3 and sends agent 0 a good message, a wrong shape,
    a NaN and a malformed header entry; rank 0 records what it accepted."""

    from parsefl.aggregation import build_aggregator
    from parsefl.runtime import distributed
    from parsefl.runtime import transport_base as wire  # where frames are encoded

    store = join(rank, port, out)
    owner = [0, 1, 1, 1]
    specs = {(i, "c"): {"w": ("float32", (2, 3))} for i in range(4)}
    transport = distributed.DistributedTransport(rank, owner, specs, store, timeout_s=20.0)
    if rank == 1:
        _send_bad(transport, wire)
        return
    first = transport.exchange([])
    second = transport.exchange([])
    received = {m.src: m.body for m in first[0]}
    merged = build_aggregator("mean").merge({"w": torch.zeros(2, 3)}, received, 0.25,
                                              {1: 0.25, 2: 0.25, 3: 0.25})
    (out / "rank0.json").write_text(json.dumps({
        "first": [[m.src, m.component] for m in first[0]],
        "second": [[m.src, m.component] for m in second[0]],
        "merged_ok": bool(torch.equal(merged["w"], torch.full((2, 3), 0.25))),
        "rejected": transport.wire["rejected"],
    }))


def _send_bad(transport, wire) -> None:
    """Rank 1's side: a good message, a wrong shape, a NaN and a malformed header entry; then
    one good message in the next exchange."""
    from parsefl.runtime.transport import Message
    from parsefl.runtime.wire import _utf8

    original, good = wire.encode, torch.ones(2, 3)

    def corrupt(msgs):  # a header entry whose fields have the wrong types
        header, payload = original(msgs)
        frame = json.loads(bytes(header.numpy()))
        frame["messages"].append({**frame["messages"][0], "offset": "zero"})
        return _utf8(frame), payload

    wire.encode = corrupt
    transport.exchange([
        Message(1, 0, "params", {"w": good}, (1, 0), "c"),
        Message(2, 0, "params", {"w": torch.ones(3, 2)}, (2, 0), "c"),
        Message(3, 0, "params", {"w": torch.full((2, 3), float("nan"))}, (3, 0), "c"),
    ])
    wire.encode = original
    transport.exchange([Message(1, 0, "params", {"w": good}, (1, 0), "c")])


if __name__ == "__main__":
    _malformed_peer(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))


def test_merge_refuses_a_summary_that_does_not_fit_in_one_line(tmp_path):
    """`parsefl merge` over a summary of the right form but the wrong content (a copied file
    from elsewhere, or an older one): exit 2, one line naming RUN_DIR, no traceback."""
    import subprocess

    from parsefl.config import to_yaml

    cfg = load_config(None, ["data.name=synthetic_pid", "mix={m1: 1, m2: 1, m1+m2: 1}",
                             "rounds=2", "eval_every=1"])
    (tmp_path / "logs").mkdir()
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))
    (tmp_path / "logs" / "summary_rank_0.json").write_text(json.dumps(
        {"rank": 0, "history": {"rounds": [{"round": "x"}], "evals": {}}, "wire": {},
         "lost": {}, "resumed_from": 0}))
    proc = subprocess.run(["parsefl", "merge", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: RUN_DIR: "), lines
