"""runtime.threads: auto (runtime/threads.py): the threads follow the cores other processes
leave free, drop at once, rise only on two checks in a row, and never change a number."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from parsefl.runtime.threads import ThreadPolicy, free_cores, read_stat, threads_for


class FakeMachine:
    """A 2-core machine: each tick of ``wall`` seconds, ``others`` cores busy with other
    processes and ``own`` with ours (jiffies at 100 per core-second)."""

    def __init__(self) -> None:
        self.t, self.cpu_s, self.busy, self.total = 0.0, 0.0, 0, 0
        self.set: list[int] = []

    def tick(self, wall: float, others: float, own: float) -> None:
        self.t += wall
        self.cpu_s += own * wall
        self.busy += round(100 * wall * (others + own))
        self.total += round(100 * wall * 2)

    def policy(self, every_s: float = 5.0) -> ThreadPolicy:
        return ThreadPolicy(every_s=every_s, cores=2, clock=lambda: self.t,
                            cpu=lambda: self.cpu_s, stat=lambda: (self.busy, self.total),
                            set_threads=self.set.append)


def end(done: int) -> SimpleNamespace:
    return SimpleNamespace(done=done)


def test_free_cores_and_threads_by_hand():
    assert free_cores(2, busy_share=0.5, own_cores=1.0) == 2.0  # only we were busy
    assert free_cores(2, busy_share=1.0, own_cores=1.0) == 1.0  # a spinner beside us
    assert free_cores(2, busy_share=1.0, own_cores=0.0) == 0.0
    assert [threads_for(f, 2) for f in (0.0, 0.9, 1.5, 1.75, 2.0, 3.0)] == [1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("others, first", [(0.0, 2), (1.0, 1), (2.0, 1), (0.5, 1)])
def test_the_first_choice_is_the_free_cores(monkeypatch, others, first):
    m = FakeMachine()
    policy = m.policy()
    monkeypatch.setattr("parsefl.runtime.threads.time.sleep",
                        lambda s: m.tick(s, others=others, own=0.0))
    assert policy.start() == first
    assert m.set == [1, first] and policy.changes == [(0, first)]


def test_threads_drop_at_once_and_rise_only_on_two_checks_in_a_row(monkeypatch):
    m = FakeMachine()
    policy = m.policy(every_s=5.0)
    monkeypatch.setattr("parsefl.runtime.threads.time.sleep",
                        lambda s: m.tick(s, others=0.0, own=0.0))
    assert policy.start() == 2
    m.tick(2.0, others=0.0, own=2.0)
    policy(end(1))  # checked only every 5 s: nothing yet
    assert policy.threads == 2 and len(policy.changes) == 1
    m.tick(4.0, others=1.0, own=1.0)  # a CPU-bound process arrives
    policy(end(2))
    assert policy.threads == 1 and policy.changes[-1] == (2, 1)
    m.tick(6.0, others=0.0, own=1.0)  # it left: one quiet check is not enough
    policy(end(3))
    assert policy.threads == 1
    m.tick(6.0, others=0.0, own=1.0)
    policy(end(4))
    assert policy.threads == 2 and policy.changes[-1] == (4, 2)
    m.tick(6.0, others=0.0, own=1.0)
    m.tick(6.0, others=0.9, own=1.0)  # a brief neighbour, then quiet: a rise needs 2 again
    policy(end(5))
    assert policy.threads == 1
    m.tick(6.0, others=0.0, own=1.0)
    policy(end(6))
    assert policy.threads == 1
    assert m.set == [1, 2, 1, 2, 1]


def test_without_proc_stat_it_keeps_one_thread(monkeypatch):
    calls: list[int] = []
    policy = ThreadPolicy(cores=2, stat=lambda: None, set_threads=calls.append)
    monkeypatch.setattr("parsefl.runtime.threads.time.sleep", lambda s: None)
    assert policy.start() == 1
    policy(end(1))
    assert calls == [1, 1] and policy.threads == 1


def test_read_stat_reads_the_cpu_line(tmp_path):
    path = tmp_path / "stat"
    path.write_text("cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    assert read_stat(str(path), count_nice=True) == (100 + 5 + 50 + 3 + 2, 980)
    # niced processes' time (5) yields to an un-niced one: not busy for it
    assert read_stat(str(path), count_nice=False) == (100 + 50 + 3 + 2, 980)
    path.write_text("intr 1 2 3\n")
    assert read_stat(str(path)) is None
    assert read_stat(str(tmp_path / "missing")) is None


def test_auto_threads_give_the_numbers_of_one_thread(tmp_path):
    from parsefl.config import load_config
    from parsefl.experiments.run.simulate import run_experiment

    base = ["data.name=synthetic_pid", "data.params={n_samples: 300}", "partition.name=iid",
            "mix={m1: 1, m2: 1, m1+m2: 1}", "model.dim=9", "model.encoder.params.hidden=[8]",
            "rounds=3", "device=cpu"]
    one = run_experiment(load_config(None, [*base, "runtime.threads=1"]), tmp_path / "one")
    auto = run_experiment(load_config(None, [*base, "runtime.threads=auto"]), tmp_path / "a")
    assert auto["final"] == one["final"]
