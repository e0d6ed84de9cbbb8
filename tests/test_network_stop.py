"""The network stop rule of ``rounds: auto``: validation counts pooled per group by flooding over
the graph (hand-computed sums), the smoothed-with-patience judgement, the hook that ends a
phase or the run, the wire check of its messages, and its config errors."""

from __future__ import annotations

import threading
from collections import Counter
from types import SimpleNamespace

import networkx as nx
import pytest
from console import in_process, parsefl, refused

from parsefl.config import load_config
from parsefl.experiments.run.driver import RoundEnd
from parsefl.experiments.run.network_stop import (
    NetworkStop,
    StopRule,
    flood,
    group_curves,
    network_record,
    network_tally,
    pooled,
)
from parsefl.runtime import InMemoryTransport, RoundStats
from parsefl.runtime.transport import Message
from parsefl.runtime.wire import WireError, check_control
from parsefl.sharing.phases import Phases

# Four agents on a path 0-1-2-3 (diameter 3): two in group "a", one "b", one "a+b".
OWN = {0: ("a", 3, 4), 1: ("b", 1, 2), 2: ("a", 5, 6), 3: ("a+b", 7, 10)}


class Counting(InMemoryTransport):
    """An in-memory transport that counts its exchanges and the entries they carried."""

    def __init__(self) -> None:
        super().__init__()
        self.calls, self.entries = 0, 0

    def exchange(self, messages):
        messages = list(messages)
        self.calls += 1
        self.entries += sum(len(m.body["counts"]) for m in messages)
        return super().exchange(messages)


def test_flooding_gives_every_agent_every_entry_in_diameter_exchanges():
    transport = Counting()
    views = flood(OWN, nx.path_graph(4), transport)
    assert all(view == OWN for view in views.values())
    assert transport.calls == 3  # the diameter
    # each agent sends each entry on to every neighbour once, but for those it learns in the
    # last exchange (agent 0 learns 3's, 3 learns 0's): 4 entries x 6 directed links - 2
    assert transport.entries == 4 * 6 - 2


def test_the_network_tally_is_the_exact_sum_per_group():
    tally = network_tally(OWN, nx.path_graph(4), InMemoryTransport())
    assert tally == {"a": (8, 10), "a+b": (7, 10), "b": (1, 2)}
    assert group_curves([(5, tally)]) == {"a": [(5, 0.8)], "a+b": [(5, 0.7)], "b": [(5, 0.5)]}


def test_agents_in_two_processes_reach_the_same_tally():
    """Agents 0, 1 in one process and 2, 3 in another: a shared inbox delivers what each sends
    the other's agents, exchange by exchange, as a distributed transport would."""
    graph = nx.path_graph(4)
    results: dict[str, dict] = {}
    barrier = threading.Barrier(2)
    pending: list[Message] = []
    lock = threading.Lock()

    class Half:
        def __init__(self, mine):
            self.mine = mine

        def exchange(self, messages):
            with lock:
                pending.extend(messages)
            barrier.wait()
            inbox: dict[int, list[Message]] = {}
            for m in list(pending):
                if m.dst in self.mine:
                    inbox.setdefault(m.dst, []).append(m)
            barrier.wait()
            with lock:
                pending[:] = [m for m in pending if m.dst not in self.mine]
            barrier.wait()
            return inbox

    def run(name, mine):
        results[name] = network_tally({i: OWN[i] for i in mine}, graph, Half(set(mine)))

    threads = [threading.Thread(target=run, args=(n, m)) for n, m in (("p", (0, 1)),
                                                                        ("q", (2, 3)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results["p"] == results["q"] == {"a": (8, 10), "a+b": (7, 10), "b": (1, 2)}


def test_a_disconnected_graph_gives_no_point():
    graph = nx.Graph([(0, 1), (2, 3)])
    assert network_tally(OWN, graph, InMemoryTransport()) is None


def test_pooled_reads_the_same_counts_off_the_agents_curves():
    curves = {0: [(5, 0.75), (10, 1.0)], 1: [(5, 0.5), (10, 0.5)], 2: [(5, 5 / 6), (10, 0.5)],
              3: [(5, 0.7), (10, 0.9)]}
    sizes = {0: 4, 1: 2, 2: 6, 3: 10}
    groups = {i: g for i, (g, _, _) in OWN.items()}
    assert pooled(curves, sizes, groups) == [
        (5, {"a": (8, 10), "a+b": (7, 10), "b": (1, 2)}),
        (10, {"a": (7, 10), "a+b": (9, 10), "b": (1, 2)})]


def test_the_rule_smooths_and_waits_for_patience():
    rule = StopRule(patience=5, smoothing=0.5)
    curve = [(5, 0.4), (10, 0.8), (15, 0.8), (20, 0.8), (25, 0.8)]
    # EMA: 0.4, 0.6, 0.7, 0.75, 0.775; every step gains more than 0.5 points
    judged = rule.judge(curve, 25)
    assert [round(s, 6) for _, s in judged["smoothed"]] == [0.4, 0.6, 0.7, 0.75, 0.775]
    assert judged["best_round"] == 25 and not judged["stalled"]
    # 8 validation samples: a gain counts only above one sample (0.125): 0.6 (> 0.525) at 10,
    # then 0.75 (> 0.725) at 20; 0.775 is no gain
    judged = rule.judge(curve, 25, samples=8)
    assert judged["best_round"] == 20 and judged["stalled"]
    assert not StopRule(patience=10, smoothing=0.5).judge(curve, 25, samples=8)["stalled"]
    # a phase starting at round 10: the EMA restarts at its first point
    assert rule.judge(curve, 25, since=10)["smoothed"][0] == (15, 0.8)
    assert rule.judge([], 25) == {"stalled": False, "best_round": None, "smoothed": []}


def test_every_group_must_stall():
    rule = StopRule(patience=10, smoothing=1.0)
    flat = {"a": (5, 10), "b": (5, 10)}
    points = [(5, flat), (10, flat), (15, flat)]
    assert rule.stalled(points, 15)  # best at 5, nothing since
    rising = points[:2] + [(15, {"a": (5, 10), "b": (7, 10)})]
    assert not rule.stalled(rising, 15)
    record = network_record(rising, rule, 15)
    assert record["groups"]["b"]["best_round"] == 15 and not record["plateaued"]
    assert record["groups"]["a"]["curve"] == [[5, 0.5, 5, 10], [10, 0.5, 5, 10],
                                              [15, 0.5, 5, 10]]
    assert not rule.stalled([], 15)


def _hook(phases: Phases, counts: dict[int, tuple[int, int]]) -> NetworkStop:
    agents = [SimpleNamespace(id=0, group="a"), SimpleNamespace(id=1, group="b")]
    validate = SimpleNamespace(agents=agents, counts=counts, network=[])
    loop = SimpleNamespace(strategy=SimpleNamespace(phases=phases),
                           topology=SimpleNamespace(at=lambda r: nx.path_graph(2)),
                           transport=InMemoryTransport())
    return NetworkStop(loop, validate, StopRule(patience=3, smoothing=1.0), every=1,
                       min_rounds=4)


def _end(r: int) -> RoundEnd:
    return RoundEnd(r, RoundStats(r, 0.0, Counter()), last=False)


def test_the_hook_ends_an_earlier_phase_then_the_run():
    phases = Phases(("one", "two"), (0, 50))
    hook = _hook(phases, {0: (5, 10), 1: (2, 4)})
    ends = [_end(r) for r in range(12)]
    for end in ends[:3]:
        hook(end)  # flat from the start, but fewer than min_rounds
        assert not end.last and phases.starts == [0, 50]
    hook(ends[3])  # 4 rounds: best at 1, stalled for 3 -> phase "two" begins at round 4
    assert phases.starts == [0, 4] and not ends[3].last and not hook.stopped
    assert hook.validate.network[0] == (1, {"a": (5, 10), "b": (2, 4)})
    for end in ends[4:7]:
        hook(end)  # phase two: its own min_rounds, its own best (at 5 done)
        assert not end.last
    hook(ends[7])
    assert ends[7].last and hook.stopped
    assert [r for r, _ in hook.validate.network] == list(range(1, 9))


def test_a_group_still_gaining_keeps_the_run_going():
    hook = _hook(Phases(), {0: (5, 10), 1: (0, 4)})
    for r in range(12):
        hook.validate.counts = {0: (5, 10), 1: (min(r, 4), 4)}  # "b" gains until round 5
        end = _end(r)
        hook(end)
        if end.last:
            break
    # "b" (4 samples): a gain counts above one sample, so its best moves at 3 and 5 rounds
    # done (0.5, 1.0), not at 2 or 4; stalled 3 rounds after 5
    assert end.round == 7


@pytest.mark.parametrize("body, ok", [
    ({"counts": [[0, "a", 3, 4], [2, "a+b", 0, 0]]}, True),
    ({"counts": []}, True),
    ({"counts": [[0, "a", 5, 4]]}, False),  # more right than asked
    ({"counts": [[4, "a", 1, 4]]}, False),  # no agent 4 in a run of 4
    ({"counts": [[0, "a", 1, 4], [0, "a", 1, 4]]}, False),  # one agent twice
    ({"counts": [[0, "a", -1, 4]]}, False),
    ({"counts": [[0, 7, 1, 4]]}, False),
    ({"counts": [[0, "a", 1.0, 4]]}, False),
    ({"counts": [[0, "a" * 300, 1, 4]]}, False),
    ({"counts": [[0, "a", 1, 4]], "more": 1}, False),
    ({"counts": "x"}, False),
])
def test_a_val_message_is_checked_before_it_is_read(body, ok):
    msg = Message(1, 0, "val", body, (1, 0))
    if ok:
        check_control(msg, None, 4)
    else:
        with pytest.raises(WireError, match="val body"):
            check_control(msg, None, 4)


def test_the_network_rule_is_the_default_of_rounds_auto():
    cfg = load_config(None, ["rounds=auto", "train.val_fraction=0.1"])
    assert (cfg.train.stop_rule, cfg.train.patience, cfg.train.smoothing) == ("network", 25,
                                                                               0.15)


@pytest.mark.parametrize("override, words", [
    ("train.patience=0", ["train.patience", "greater than or equal to 1"]),
    ("train.patience=2.5", ["train.patience"]),
    ("train.patience=true", ["train.patience"]),
    ("train.smoothing=0", ["train.smoothing", "greater than 0"]),
    ("train.smoothing=1.5", ["train.smoothing", "less than or equal to 1"]),
    ("train.smoothing=nan", ["train.smoothing"]),
    ("train.stop_rule=median", ["train.stop_rule", "network", "agents"]),
    ("topology.name=random_matching", ["train.stop_rule", "disconnected in every round"]),
])
def test_a_bad_stop_rule_value_is_one_line_exit_2(tmp_path, override, words):
    args = ("run", "-o", "rounds=auto", "-o", "train.val_fraction=0.1", "-o", override,
            "--out", str(tmp_path / "run"))
    first = override.startswith("train.patience=0")
    refused((parsefl if first else in_process)(*args, cwd=tmp_path), *words)
    assert not (tmp_path / "run").exists()


def test_the_agents_rule_and_fixed_rounds_still_run_on_a_matching(tmp_path):
    from parsefl.config import load_config

    for extra in (["rounds=auto", "train.val_fraction=0.1", "train.stop_rule=agents"],
                  ["rounds=3"], ["rounds=auto", "train.val_fraction=0.1", "mix={fou: 1, pix: 1}"]):
        load_config(None, ["topology.name=random_matching", *extra])


class _Cut(Exception):
    pass


def test_an_interrupted_auto_run_resumed_stops_where_the_whole_run_did(tmp_path):
    """The network points are run state: a run cut after its checkpoint of round 80 — after
    every group's last gain, before the stop — and resumed (the points before the cut read
    back, not gossiped again) ends as the whole run did; without them its smoothing and
    patience would restart at the cut and stop it later."""
    import torch
    from test_convergence import AUTO

    from parsefl.experiments.run.simulate import run_experiment

    def cut_after_81(stats, ev) -> None:
        if stats.round == 81:
            raise _Cut

    cfg = load_config(None, [*AUTO, "runtime.checkpoint_every=4", "runtime.threads=1"])
    torch.manual_seed(0)
    whole = run_experiment(cfg, tmp_path / "whole")
    groups = whole["convergence"]["network"]["groups"].values()
    assert whole["stopped_by"] == "plateau" and whole["rounds_completed"] > 82
    assert max(g["best_round"] for g in groups) < 80  # the test means something
    with pytest.raises(_Cut):
        run_experiment(cfg, tmp_path / "cut", cut_after_81)
    torch.manual_seed(0)
    resumed = run_experiment(cfg, tmp_path / "cut", resume=True)
    assert {k: v for k, v in resumed.items() if k != "wall_time_s"} == \
        {k: v for k, v in whole.items() if k != "wall_time_s"}


def test_the_network_rule_stops_one_config_at_comparable_rounds_across_seeds(tmp_path):
    """The issue's consistency bound, max/min stop round <= 1.5 over seeds 0, 1, 2, on the
    small synthetic config of the launch test (6 agents, ~40 validation samples a group; about
    15 s here). The quickstart itself meets it too (125-135 rounds for dsgd_full, 130-135 for
    parse; docs/results.md; the last test of this file checks parse there). On
    this config the per-agent rule spreads wider (measured 40-62 rounds, 1.55x)."""
    from test_convergence import AUTO

    from parsefl.experiments.run.simulate import run_experiment

    stops: dict[str, list[int]] = {"network": [], "agents": []}
    for rule, seed in [(r, s) for r in stops for s in (0, 1, 2)]:
        cfg = load_config(None, [*AUTO, f"seed={seed}", f"train.stop_rule={rule}",
                                 "runtime.threads=1"])
        res = run_experiment(cfg, tmp_path / f"{rule}{seed}")
        assert res["stopped_by"] == "plateau", (rule, seed, res["rounds_completed"])
        stops[rule].append(res["rounds_completed"])
    spread = {rule: max(v) / min(v) for rule, v in stops.items()}
    assert spread["network"] <= 1.5, stops
    assert spread["network"] < spread["agents"], stops


def test_rounds_auto_on_the_quickstart_stops_within_1_5x_across_three_seeds(tmp_path):
    """The issue's bound, literally: the quickstart preset (PARSE, mfeat fou + pix, 12 agents on
    a ring) with `rounds: auto` and a tenth of each agent's data for validation stops seeds 0, 1
    and 2 within 1.5x of each other, on a plateau, not at max_rounds (measured 130-135 rounds;
    the per-agent rule gave 50, 60 and 125). About 55 s on one core: the suite's longest test."""
    from parsefl.experiments.run.simulate import run_experiment

    stops = []
    for seed in (0, 1, 2):
        cfg = load_config(None, ["rounds=auto", "train.val_fraction=0.1", f"seed={seed}",
                                 "runtime.threads=1", "device=cpu",
                                 "diagnostics.gradient_cosine=false"])
        res = run_experiment(cfg, tmp_path / f"s{seed}")
        assert res["stopped_by"] == "plateau" and res["convergence"]["converged"], seed
        stops.append(res["rounds_completed"])
    assert max(stops) / min(stops) <= 1.5, stops
    assert min(stops) >= 100, stops  # a real plateau: the curves rise for ~100 rounds
