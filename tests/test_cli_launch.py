"""What ``parsefl launch``, ``run`` and ``compare`` say and leave, through the real console script:
the run folder named at the start, a progress bar over the rounds, and no folder left behind
by a start that was refused."""

from __future__ import annotations

import json
import re

import pytest
import torch
from console import in_process, parsefl, refused

SMALL = ["-o", "data.name=synthetic_pid", "-o", "mix={m1: 2, m1+m2: 2}", "-o", "eval_every=1",
         "-o", "partition.name=iid", "-o", "model.encoder.params.hidden=[16]",
         "-o", "runtime.threads=1"]


def test_launch_names_its_run_folder_first_and_shows_rounds_done(tmp_path):
    done = parsefl("launch", *SMALL, "-o", "rounds=3", "--nproc", "2", cwd=tmp_path,
                   timeout=300)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    folder = re.search(r"-> (runs/\S+)$", first)
    assert folder, first
    run = tmp_path / folder.group(1)
    assert json.loads((run / "results.json").read_text())["rounds_completed"] == 3
    assert re.search(r"round .* 3/3", done.stdout), done.stdout  # the bar reached the end
    assert json.loads((run / "logs" / "progress.json").read_text()) == {"done": 3, "rounds": 3}


@pytest.mark.parametrize("args, words", [
    (["--data", "npz:/no/such.npz"], ["/no/such.npz", "no such file"]),
    (["-o", "mix={fou: 2, bogus: 2}"], ["mix.bogus", "unknown modality"]),
    pytest.param(["-o", "device=cuda"], ["device", "no CUDA device"], marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="a CUDA device is there")),
])
@pytest.mark.parametrize("command", ["run", "launch", "compare"])
def test_a_refused_start_leaves_no_run_folder(tmp_path, command, args, words):
    if args[0] == "--data":  # through the real console script, once per command
        done = parsefl(command, *args, cwd=tmp_path, timeout=300)
    else:  # the same code path, without starting an interpreter for each case
        done = in_process(command, *args, cwd=tmp_path)
    refused(done, *words)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), \
        list((tmp_path / "runs").iterdir())


def test_a_refused_resume_keeps_the_folder_it_was_given(tmp_path):
    out = tmp_path / "given"
    (out / "state").mkdir(parents=True)
    done = parsefl("launch", "--data", "npz:/no/such.npz", "--resume", "--out", str(out),
                   cwd=tmp_path, timeout=300)
    refused(done, "no such file")
    assert (out / "state").is_dir()
