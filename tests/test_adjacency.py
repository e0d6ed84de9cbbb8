"""Byzantine results split the honest agents into the attacker's neighbours and the rest,
overall and per modality group, in results.json and in sweep summaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from parsefl.config import load_config
from parsefl.experiments.run.simulate import run_experiment
from parsefl.experiments.sweeps.summary import summarize_method, tidy_rows
from parsefl.experiments.sweeps.sweep import RunSpec

BASE = [
    "data.name=synthetic_pid", "data.params={label: redundancy, n_samples: 600}",
    "mix={m1: 2, m2: 2, m1+m2: 2}", "partition.name=iid", "model.dim=12",
    "model.encoder.params.hidden=[16]", "device=cpu", "diagnostics.gradient_cosine=false",
    "rounds=1", "eval_every=1", "runtime.threads=1", "runtime.backend=reference",
]


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    torch.set_num_threads(1)
    over = [*BASE, "adversary={agents: [3], attack: sign_flip}"]
    return run_experiment(load_config(None, over), tmp_path_factory.mktemp("adj"))


def test_honest_agents_are_split_by_adjacency_to_the_attacker(attacked):
    final = attacked["final"]
    rows = {a["id"]: a for a in attacked["agents"]}
    # the ring 0-1-2-3-4-5-0: agent 3's neighbours are 2 and 4
    assert final["adjacent"]["agents"] == [2, 4]
    assert final["non_adjacent"]["agents"] == [0, 1, 5]
    for side in ("adjacent", "non_adjacent"):
        ids = final[side]["agents"]
        want = np.mean([rows[i]["accuracy"] for i in ids])
        assert final[side]["accuracy"]["overall"] == pytest.approx(want)
        for g, value in final[side]["accuracy"]["groups"].items():
            members = [rows[i]["accuracy"] for i in ids if rows[i]["group"] == g]
            assert value == pytest.approx(np.mean(members))
    summary = summarize_method([attacked])
    assert summary["adjacent"]["accuracy"]["overall"]["mean"] == \
        pytest.approx(final["adjacent"]["accuracy"]["overall"])
    scopes = {r["scope"] for r in tidy_rows({RunSpec((), "parse", 0): attacked})}
    assert {"adjacent", "non_adjacent"} <= scopes
    assert any(s.startswith("adjacent.") for s in scopes)


def test_a_run_without_attackers_has_no_split(tmp_path):
    torch.set_num_threads(1)
    res = run_experiment(load_config(None, BASE), tmp_path)
    assert "adjacent" not in res["final"] and "adjacent" not in summarize_method([res])
