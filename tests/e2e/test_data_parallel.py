"""`honing train --processes 2`: torchrun runs two ranks; rank 0 alone writes the run."""

import json
import os
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.slow


def test_two_processes_match_one(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "ddp", "data": {"source": "builtin:breast_cancer"},
        "model": {"type": "mlp", "params": {"dropout": 0.0}},
        "train": {"epochs": 15, "batch_size": 64, "early_stopping": None},
    }))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        done = subprocess.run([sys.executable, "-m", "honing.cli", "--quiet", "train", str(recipe),
                               "--processes", str(processes), "--out", str(out)],
                              env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[processes] = json.loads((out / "metrics.json").read_text())
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    for metric in ("accuracy", "log_loss"):
        assert abs(runs[1]["validation"][metric] - runs[2]["validation"][metric]) < 0.03


def test_processes_need_a_neural_model(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"source": "builtin:iris"}, "model": {"type": "random_forest"}}))
    result = cli("train", recipe, "--processes", "2")
    assert result.code == 2 and "train.processes" in result.err


def test_processes_with_auto_is_refused(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"source": "builtin:iris"}, "train": {"processes": 2}}))
    result = cli("train", recipe)
    assert result.code == 2 and "not 'auto'" in result.err and "mlp" in result.err
