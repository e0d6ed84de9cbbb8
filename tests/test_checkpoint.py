"""experiments/run/checkpoint.py: an agent restored from its checkpoint continues exactly as the
agent that wrote it (model, optimizer moments, batch generator and stream), and the run
fingerprint ignores what may change on resume."""

from __future__ import annotations

import pytest
import torch

from parsefl.config import LossConfig, TrainConfig, load_config
from parsefl.experiments.run.checkpoint import (
    complete_rounds,
    fingerprint,
    load_agent_state,
    round_folder,
    save_agent_state,
)
from parsefl.model import ModelSpec, SlicedModel
from parsefl.runtime import Agent

INPUT = {"a": (4,), "b": (5,)}


def _agent(init_seed: int) -> Agent:
    model = SlicedModel(("a", "b"), INPUT, ModelSpec(n_classes=3, dim=6,
                                                     encoder_params={"hidden": [6]}))
    model.reset_components(init_seed)
    gen = torch.Generator().manual_seed(5)
    x = {m: torch.randn(12, *INPUT[m], generator=gen) for m in INPUT}
    return Agent(0, model, x, torch.arange(12) % 3, TrainConfig(batch_size=4, lr=1e-2),
                 LossConfig(), seed=0)


def test_a_restored_agent_continues_bit_for_bit(tmp_path):
    writer = _agent(init_seed=0)
    writer.train_local()
    save_agent_state(writer, tmp_path / "agent.safetensors")
    writer.train_local()  # the round the restored agent must reproduce
    reader = _agent(init_seed=1)  # other initial values, fresh optimizer and stream
    load_agent_state(reader, tmp_path / "agent.safetensors")
    reader.train_local()
    for (name, p), q in zip(writer.model.named_parameters(), reader.model.parameters(),
                            strict=True):
        assert torch.equal(p, q), name


def test_fingerprint_ignores_rounds_and_runtime_but_not_the_method():
    base = load_config(None, [])
    assert fingerprint(base) == fingerprint(load_config(None, ["rounds=7", "eval_every=1",
                                                               "runtime.threads=2"]))
    assert fingerprint(base) != fingerprint(load_config(None, ["method=local"]))


def test_only_folders_with_their_manifest_count_as_complete(tmp_path):
    for done in (2, 4, 6):
        round_folder(tmp_path, done).mkdir(parents=True)
        (round_folder(tmp_path, done) / "run.json").write_text("{}")
    (round_folder(tmp_path, 2) / "manifest_run.json").write_text("{}")
    (round_folder(tmp_path, 6) / "manifest_run.json").write_text("{}")
    (tmp_path / "state" / "round_x7").mkdir()  # not a round: ignored, not a traceback
    assert complete_rounds(tmp_path, "run.json") == [2, 6]  # round 4 was interrupted


def test_final_weights_load_only_into_the_model_their_header_describes(tmp_path):
    """``checkpoints/agent_NNNN.safetensors`` (parsefl audit, t-SNE): the header is checked
    against the model before a tensor is read; a file made for another model, or one whose
    header claims a huge tensor, is one line naming the file."""
    import json as _json
    import struct

    from safetensors.torch import save_file

    from parsefl.errors import ConfigError
    from parsefl.experiments.run.checkpoint import load_model_file

    model, other = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    good = tmp_path / "good.safetensors"
    save_file({k: v.detach() for k, v in other.state_dict().items()}, str(good))
    load_model_file(model, good, "RUN_DIR")
    assert torch.equal(model.weight, other.weight)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"weight": torch.zeros(4, 3), "bias": torch.zeros(4)}, str(wrong))
    with pytest.raises(ConfigError, match="wrong.safetensors does not fit") as err:
        load_model_file(model, wrong, "RUN_DIR")
    assert err.value.field == "RUN_DIR" and "\n" not in str(err.value)
    header = _json.dumps({"weight": {"dtype": "F32", "shape": [10**9, 3],
                                     "data_offsets": [0, 24]},
                          "bias": {"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}})
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", len(header)) + header.encode() + bytes(32))
    with pytest.raises(ConfigError, match="huge.safetensors does not fit"):
        load_model_file(model, huge, "RUN_DIR")
    assert torch.equal(model.weight, other.weight)  # untouched
