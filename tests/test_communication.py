"""``communication:`` in runs: periods send on the right rounds with the right bytes, both
simulator backends give the same numbers, encoded copies pass the receive checks as decoded
tensors, and bad config is one line naming the field."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch
from console import in_process, parsefl

from parsefl.compressors import Communication, encode_tensors
from parsefl.compressors.int8 import Int8
from parsefl.config import load_config
from parsefl.errors import ConfigError
from parsefl.experiments.run.build import build_communication, build_experiment
from parsefl.runtime.checks import ReceiveChecks
from parsefl.runtime.distributed import DistributedTransport
from parsefl.runtime.transport import Message
from parsefl.runtime.vectorized import VectorizedExecutor

BASE = ["data.name=synthetic_pid", "data.params={n_samples: 600}", "partition.name=dirichlet",
        "partition.alpha=1.0", "mix={m1: 3, m2: 2, m1+m2: 3}", "model.dim=12",
        "model.encoder.params={hidden: [16]}", "train.local_steps=3", "topology.name=ring"]
PERIODS = ["communication.period=3",
           "communication.kinds={enc: {compressor: int8, period: 2}, head_r: {period: 1}}"]


def test_no_section_means_no_policy():
    assert build_communication(load_config(None, BASE)) is None
    assert build_communication(load_config(None, ["communication.period=2"])) is not None


def _expected_bytes(exp, r: int) -> int:
    """By hand: every due component's payload on every hop of every planned path; int8:
    one byte per element plus a 4-byte scale per tensor, plain: 4 bytes per element."""
    total = 0
    for i, plan in exp.loop.plans.items():
        agent = exp.agents[i]
        for comp, peers in plan.paths.items():
            kind = comp.partition(".")[0]
            if r % {"enc": 2, "head_r": 1}.get(kind, 3):
                continue
            sizes = [math.prod(agent.model.get_parameter(n).shape)
                     for n in agent.component_params[comp]]
            size = sum(n + 4 for n in sizes) if kind == "enc" else 4 * sum(sizes)
            total += size * sum(len(path) - 1 for path in peers.values())
    return total


def test_periods_send_on_the_right_rounds_with_the_right_bytes():
    exp = build_experiment(load_config(None, [*BASE, *PERIODS, "runtime.backend=reference"]))
    loop, agent = exp.loop, exp.agents[0]
    enc = [n for n in agent.component_params["enc.m1"]]
    totals = []
    for r in range(7):  # gossip only (no training): what changes is what was exchanged
        before = {n: agent.model.get_parameter(n).detach().clone() for n in enc}
        loop.prepare(r)
        loop.round = r
        loop.gossip()
        totals.append(sum(loop.transport.take_link_bytes().values()))
        assert totals[-1] == _expected_bytes(exp, r), r
        moved = any(not torch.equal(before[n], agent.model.get_parameter(n)) for n in enc)
        assert moved == (r % 2 == 0), r  # enc is exchanged in rounds 0, 2, 4, 6 only
    assert loop.plan_version == 1  # the periods never re-plan (no handshake, no degree swap)
    assert totals[0] > totals[2] > totals[1] > 0 and totals[3] > totals[1]
    assert totals[1] == totals[5] and totals[0] == totals[6]


def test_due_plans_are_reused_while_nothing_changes():
    comm = Communication.from_config(load_config(None, PERIODS).communication)
    exp = build_experiment(load_config(None, [*BASE, "runtime.backend=reference"]))
    exp.loop.prepare(0)
    plans = exp.loop.plans
    p1, v1 = comm.due_plans(plans, 1, 1)
    p5, v5 = comm.due_plans(plans, 1, 5)
    assert p1 is p5 and v1 == v5 and v1 != 1  # same rounds left out: the same cached plans
    assert all("head_r" in p.paths and not any(c.startswith("enc.") for c in p.paths)
               for p in p1.values())
    assert comm.due_plans(plans, 1, 0) == (plans, 1)  # everything due: the plans themselves
    assert comm.due_plans(plans, 2, 1)[1] != v1  # a re-plan is a new version


CASES = {
    "fp16": ["communication.compressor=fp16"],
    "int8_per_row_periods": ["communication.compressor=int8", *PERIODS[:1],
                             "communication.params={per_row: true}",
                             "communication.kinds={head_r: {compressor: none, period: 1}}"],
    "topk_choco": ["communication.compressor=topk", "communication.params={fraction: 0.3}",
                   "communication.error_feedback=true", "communication.gamma=0.5"],
    "int8_median": ["communication.compressor=int8", "aggregation.name=median"],
    "bf16_choco_median": ["communication.compressor=bf16", "communication.error_feedback=true",
                          "aggregation.name=median"],
    "int8_sign_flip": ["communication.compressor=int8",
                       "adversary={agents: [1], attack: sign_flip}"],
    "topk_alie_median": ["communication.compressor=topk", "communication.params={fraction: 0.5}",
                         "adversary={agents: [1], attack: alie}", "aggregation.name=median"],
}


def _run(backend: str, extra, rounds: int = 3):
    exp = build_experiment(load_config(None, [*BASE, "method=parse",
                                              f"runtime.backend={backend}", *extra]))
    stats = [exp.loop.step(r) for r in range(rounds)]
    exp.loop.sync()
    return exp, stats


@pytest.mark.parametrize("case", sorted(CASES))
def test_vectorized_equals_reference_with_compression(case):
    ref, ref_stats = _run("reference", CASES[case])
    vec, vec_stats = _run("vectorized", CASES[case])
    assert isinstance(vec.loop.executor, VectorizedExecutor)
    for s, t in zip(ref_stats, vec_stats, strict=True):
        assert s.link_bytes == t.link_bytes  # bytes as encoded, billed the same way
        assert s.loss == pytest.approx(t.loss, abs=1e-5)
    with torch.no_grad():
        for a, b in zip(ref.agents, vec.agents, strict=True):
            for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
                assert torch.allclose(p, q, atol=1e-4), a.id


def test_error_feedback_with_an_adversary_runs_on_the_reference_backend():
    extra = [*BASE, "communication.compressor=int8", "communication.error_feedback=true",
             "adversary={agents: [1], attack: sign_flip}"]
    auto = build_experiment(load_config(None, extra))
    assert not isinstance(auto.loop.executor, VectorizedExecutor)
    with pytest.raises(ConfigError, match="error feedback with an adversary") as err:
        build_experiment(load_config(None, [*extra, "runtime.backend=vectorized"]))
    assert err.value.field == "runtime.backend"


def test_compression_bills_fewer_bytes_by_the_formula():
    plain = sum(sum(s.link_bytes.values()) for s in _run("vectorized", [], 1)[1])
    int8 = sum(sum(s.link_bytes.values()) for s in _run("vectorized", CASES["int8_median"],
                                                         1)[1])
    assert plain / 4 < int8 < plain / 4 * 1.1  # one byte per element, plus the scales


def _transport() -> DistributedTransport:
    comm = Communication.from_config(load_config(None, ["communication.compressor=int8"])
                                     .communication)
    expected = {(1, "head_r"): {"w": ("float32", (2, 2))}}
    return DistributedTransport(1, [0, 1], expected, None, codec=comm, checks=ReceiveChecks())


def test_the_wire_decodes_before_the_receive_checks():
    transport = _transport()
    body = encode_tensors(Int8(), {"w": torch.tensor([[1.0, -0.5], [0.25, 0.0]])}, {"w": 3})
    inbox: dict = defaultdict(list)
    transport._accept(Message(0, 1, "params", body, (0, 1), "head_r"), inbox, "rank 0")
    assert inbox[1][0].body["w"][0, 0] == 1.0  # decoded to the receiver's tensors
    bad = {**body, "w#s": torch.tensor(float("nan"))}  # a NaN scale decodes to NaN values
    transport._accept(Message(0, 1, "params", bad, (0, 1), "head_r"), inbox, "rank 0")
    wrong = {**body, "w#q": body["w#q"].flatten()}  # another shape: does not decode
    transport._accept(Message(0, 1, "params", wrong, (0, 1), "head_r"), inbox, "rank 0")
    assert len(inbox[1]) == 1 and transport.wire["rejected"] == 2
    assert transport.checks.counts == {"non_finite": 1, "names": 1}
    # frames are bounded by the larger of the plain and the encoded copy
    assert set(transport.bounds[1, "head_r"]) == {"w", "w#q", "w#s"}


@pytest.mark.parametrize("override,field", [
    ("communication.compressor=zip", "communication.compressor"),
    ("communication.kinds={encoder: {period: 2}}", "communication.kinds.encoder"),
    ("communication.params={fraction: 1.5}", "communication.params.fraction"),
    ("communication.kinds={enc: {period: 0}}", "communication.kinds.enc.period"),
])
def test_bad_communication_config_is_one_line_exit_2(override, field, tmp_path):
    args = ["-o", override, "-o", "communication.compressor=topk"] if "fraction" in override \
        else ["-o", override]
    if "zip" in override:  # through the real console script once; the others in process
        proc = parsefl("run", *args, "--out", str(tmp_path / "x"))
    else:
        proc = in_process("run", *args, "--out", str(tmp_path / "x"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and field in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_launch_gives_the_simulator_numbers_with_compression(tmp_path):
    """Two processes on 127.0.0.1: encoded copies over the wire, decoded before the checks,
    error feedback's public copies kept per process, periods in lockstep."""
    from parsefl.experiments.distributed.launcher import launch
    from parsefl.experiments.run.simulate import run_experiment

    cfg = ["data.name=synthetic_pid", "data.params={label: redundancy, n_samples: 600}",
           "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=12",
           "model.encoder.params.hidden=[16]", "device=cpu", "diagnostics.gradient_cosine=false",
           "rounds=3", "eval_every=3", "communication.compressor=int8",
           "communication.error_feedback=true",
           "communication.kinds={enc: {compressor: topk, params: {fraction: 0.2}, period: 2}}"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers run
    try:
        sim = run_experiment(load_config(None, cfg), tmp_path / "sim")
    finally:
        torch.set_num_threads(threads)
    dist = launch(None, cfg, nproc=2, out_dir=tmp_path / "dist", wall_timeout_s=120)
    skip = ("wall_time_s", "diagnostics", "ablations", "distributed")
    assert {k: v for k, v in dist.items() if k not in skip} == \
        {k: v for k, v in sim.items() if k not in skip}  # accuracies and bytes, exactly
    assert (tmp_path / "dist" / "metrics.csv").read_text() == \
        (tmp_path / "sim" / "metrics.csv").read_text()
    wire = dist["distributed"]["wire_bytes"]
    assert 0 < wire["params_bytes"] < sim["communication"]["bytes_total"]
    assert not wire.get("rejected")
