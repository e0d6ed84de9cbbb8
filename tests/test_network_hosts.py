"""gRPC runs across test hosts (network namespaces on a bridge, links shaped with tbf:
parsefl.experiments.distributed.netlab): the simulator's numbers on three hosts, a late joiner,
a killed process that rejoins, a partition that heals; and ``--resume`` over gRPC (no store)
after every process was killed, equal to the uninterrupted run. The host tests need root and
``ip netns`` and skip with the reason where those are missing."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading

import pytest
from test_distributed import BASE, BOUND_S, EQUAL, LONG, _simulate, _strip, _wait_for_round

from parsefl.experiments.distributed import netlab
from parsefl.experiments.distributed.launcher import launch

OK, WHY = netlab.available()
hosts = pytest.mark.skipif(not OK, reason=WHY or "test hosts unavailable")
pytestmark = pytest.mark.xdist_group("network")  # one harness at a time: bounded CPU and links


def _summary(run: netlab.NetRun, rank: int) -> dict:
    return json.loads((run.out / "logs" / f"summary_rank_{rank}.json").read_text())


@hosts
def test_three_hosts_give_the_simulator_numbers(tmp_path):
    with netlab.TestNet(3, rate_mbit=10.0) as net:
        run = netlab.NetRun(net, tmp_path / "run", 3)
        run.prepare(None, EQUAL)
        for rank in range(3):
            run.start(rank)
        assert run.wait(BOUND_S) == {0: 0, 1: 0, 2: 0}
        got = run.merge()
    assert _strip(got) == _strip(_simulate(tmp_path / "sim", EQUAL))
    info = got["distributed"]
    assert (info["transport"], info["encrypted"], info["missing_ranks"], info["lost_peers"]) \
        == ("grpc", True, [], {})
    # every rank listened on its own host's address (the peers file's)
    assert re.search(r"10\.77\.0\.2:50052", (tmp_path / "run" / "keys" / "peers.json").read_text())


@hosts
def test_a_late_joiner_is_admitted_and_trains(tmp_path):
    overrides = [*BASE, "rounds=120", "eval_every=40", "runtime.timeout_s=3"]
    with netlab.TestNet(3) as net:
        run = netlab.NetRun(net, tmp_path / "run", 3)
        run.prepare(None, overrides)
        for rank in (0, 1):  # rank 2 is not there: its peers give up on it after 2 s
            run.start(rank, "--startup-s", "2")
        assert netlab.wait_for(lambda: run.done(0) >= 5, BOUND_S)
        run.start(2, "--join")
        assert run.wait(BOUND_S) == {0: 0, 1: 0, 2: 0}
        got = run.merge()
    joined = _summary(run, 2)["joined"]
    start = joined["round"]
    assert joined["from_checkpoint"] == 0 and 5 < start < 120
    for rank in (0, 1):  # both peers took it back in the round it started at
        assert f"took rank 2 back from round {start}" in run.log(rank)
        assert {"rank": 2, "round": start} in _summary(run, rank)["readmitted"]
    assert f"joined at round {start} from its neighbours' copies" in run.log(2)
    rounds = [r["round"] for r in _summary(run, 2)["history"]["rounds"]]
    assert rounds == list(range(start, 120))
    assert got.get("complete", True) and got["distributed"]["missing_agents"] == []
    late = [a for a in got["agents"] if a["id"] in (4, 5)]
    assert len(late) == 2 and all(a["accuracy"] > 0.8 for a in late)  # chance is 1/2


@hosts
def test_a_killed_process_rejoins_from_its_checkpoint(tmp_path):
    overrides = [*BASE, "rounds=160", "eval_every=40", "runtime.timeout_s=2",
                 "runtime.checkpoint_every=4"]
    with netlab.TestNet(3) as net:
        run = netlab.NetRun(net, tmp_path / "run", 3)
        run.prepare(None, overrides)
        for rank in range(3):
            run.start(rank)
        assert netlab.wait_for(lambda: run.done(1) >= 10, BOUND_S)
        net.kill(run.ranks[1])
        assert netlab.wait_for(lambda: "lost rank 1" in run.log(0), 30)
        run.start(1, "--join")
        assert run.wait(BOUND_S) == {0: 0, 1: 0, 2: 0}
        got = run.merge()
    joined = _summary(run, 1)["joined"]
    start, done = joined["round"], joined["from_checkpoint"]
    assert done >= 8 and done % 4 == 0 and done <= start < 160
    assert f"joined at round {start} from its checkpoint of round {done}" in run.log(1)
    for rank in (0, 2):
        assert f"took rank 1 back from round {start}" in run.log(rank)
    rounds = [r["round"] for r in _summary(run, 1)["history"]["rounds"]]
    assert rounds == [*range(done), *range(start, 160)]
    assert got.get("complete", True) and got["distributed"]["missing_agents"] == []


@hosts
def test_a_partition_heals_and_both_sides_go_on(tmp_path):
    # ranks 0, 1 on host 0 and ranks 2, 3 on host 1: host 1's link down splits the ring
    overrides = [*BASE, "mix={m1: 3, m2: 3, m1+m2: 2}", "rounds=160", "eval_every=40",
                 "runtime.timeout_s=1.5"]
    with netlab.TestNet(2) as net:
        run = netlab.NetRun(net, tmp_path / "run", 4, host_of={0: 0, 1: 0, 2: 1, 3: 1})
        run.prepare(None, overrides)
        for rank in range(4):
            run.start(rank)
        assert netlab.wait_for(lambda: run.done(0) >= 10, BOUND_S)
        net.set_link(1, up=False)
        assert netlab.wait_for(lambda: "lost rank 2" in run.log(1)
                               and "lost rank 1" in run.log(2), 30)
        net.set_link(1, up=True)
        assert run.wait(BOUND_S) == {0: 0, 1: 0, 2: 0, 3: 0}
        got = run.merge()
    back = {r: _summary(run, r)["readmitted"] for r in range(4)}
    healed = [e["round"] for e in back[1] if e["rank"] == 2]
    assert healed and {"rank": 1, "round": healed[-1]} in back[2]  # the same round both ends
    assert got.get("complete", True) and got["distributed"]["missing_agents"] == []
    assert got["distributed"]["lost_peers"] == {}  # everyone was taken back by the end


@hosts
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_test_hosts_are_removed_when_the_harness_is_killed(how):
    """Killed politely, the harness removes its namespaces and links itself; killed hard, the
    next harness removes them (their names carry the dead creator's pid)."""
    code = ("import sys, time\nfrom parsefl.experiments.distributed import netlab\n"
            "with netlab.TestNet(2, rate_mbit=5.0) as net:\n"
            "    print(net.tag, flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    tag = proc.stdout.readline().strip()

    def ours() -> list[str]:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        return re.findall(rf"\b{netlab.PREFIX}{tag}\w*", names + links)

    assert len(ours()) >= 5  # 2 namespaces, 2 host-side links, the bridge
    proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    proc.wait(30)
    if how == "sigkill":
        assert ours()  # nobody cleaned up
        assert any(tag in name for name in netlab.sweep_stale())  # a veth goes with its netns
    assert ours() == []


def test_resume_over_grpc_after_every_process_was_killed_equals_the_whole_run(tmp_path):
    out = tmp_path / "run"
    opts = dict(nproc=3, out_dir=out, timeout_s=3.0, checkpoint_every=2, wall_timeout_s=BOUND_S,
                transport="grpc")
    box: dict = {}

    def interrupted() -> None:
        try:
            launch(None, LONG, **opts)
        except BaseException as err:  # noqa: BLE001  (every process killed: whatever it says)
            box["err"] = err

    runner = threading.Thread(target=interrupted)
    runner.start()
    pids = [_wait_for_round(out / "logs" / f"rank_{r}.log", 6) for r in range(3)]
    for pid in pids:
        import os

        os.kill(pid, signal.SIGKILL)
    runner.join(BOUND_S)
    resumed = launch(None, LONG, resume=True, **opts)
    first = resumed["distributed"]["resumed_from_round"]
    assert 6 <= first < 24 and first % 2 == 0
    assert resumed["distributed"]["missing_agents"] == []
    assert _strip(resumed) == _strip(_simulate(tmp_path / "sim", LONG))
