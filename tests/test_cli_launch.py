"""What ``parsefl launch`` says and leaves, through the real console script: the run folder
named at the start and a progress bar over the rounds."""

from __future__ import annotations

import json
import re

from console import parsefl

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
