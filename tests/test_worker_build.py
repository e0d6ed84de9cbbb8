"""What a distributed worker builds: only its own agents, identical to the whole experiment's,
and the launcher's agent count read from the mix alone."""

from __future__ import annotations

import pytest
import torch

from parsefl.config import load_config
from parsefl.experiments.run.build import build_experiment
from parsefl.experiments.run.roster import agent_count, agent_groups

BASE = ["data.name=synthetic_pid", "data.params={n_samples: 400}", "model.dim=12",
        "model.encoder.params.hidden=[16]", "device=cpu", "mix={m1: 2, m2: 1, m1+m2: 3}"]


@pytest.mark.parametrize("mix, n", [
    ("auto", 12), ("{m1: 2, m2: 0, m1+m2: 3}", 5), ("{ratio: 0.25, n_agents: 7}", 7)])
def test_agent_count_reads_the_mix_without_the_dataset(mix, n):
    cfg = load_config(None, [*BASE, f"mix={mix}"])
    assert agent_count(cfg) == n == len(agent_groups(cfg))


def test_a_subset_build_is_the_whole_build_restricted():
    cfg = load_config(None, BASE)
    whole = build_experiment(cfg)
    part = build_experiment(cfg, [1, 4])
    assert [a.id for a in part.agents] == [1, 4] and [s.id for s in part.slots] == [1, 4]
    assert part.n_train == whole.n_train == [s.n_train for s in whole.slots]
    for agent in part.agents:
        same = whole.agents[agent.id]
        assert agent.modalities == same.modalities
        assert torch.equal(agent.y, same.y)
        assert all(torch.equal(p, q) for p, q in zip(agent.model.state_dict().values(),
                                                     same.model.state_dict().values(),
                                                     strict=True))
    assert sorted(part.loop.topology.at(0).edges) == sorted(whole.loop.topology.at(0).edges)


def test_run_resume_needs_the_run_folder(monkeypatch, capsys):
    from parsefl import cli

    monkeypatch.setattr("sys.argv", ["parsefl", "run", "--resume", "-o", "rounds=1"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 2
    assert "--resume" in capsys.readouterr().err
