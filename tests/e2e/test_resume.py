"""A neural run killed with SIGKILL mid-training and resumed ends exactly like an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification

pytestmark = pytest.mark.slow


def honing_cmd(*args):
    return [sys.executable, "-m", "honing.cli", "--quiet", *map(str, args)]


@pytest.fixture
def recipe(tmp_path):
    X, y = make_classification(n_samples=10000, n_features=20, n_informative=10, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)]).assign(label=y)
    frame.to_csv(tmp_path / "data.csv", index=False)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({
        "name": "resume", "seed": 7,
        "data": {"source": str(tmp_path / "data.csv"), "target": "label"},
        "model": {"type": "mlp", "params": {"hidden": [64, 64], "dropout": 0.2}},
        "train": {"epochs": 12, "batch_size": 64, "schedule": {"name": "warmup_cosine"},
                  "early_stopping": {"patience": 3}},
    }))
    return path


def test_sigkill_then_resume_gives_identical_weights(recipe, tmp_path):
    from safetensors.torch import load_file

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(honing_cmd("train", recipe, "--out", tmp_path / "a"), check=True, env=env)

    job = subprocess.Popen(honing_cmd("train", recipe, "--out", tmp_path / "b"), env=env)
    checkpoint = tmp_path / ".b.partial" / "checkpoints" / "mlp.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # into the next epoch
    assert job.poll() is None, "training finished before it could be interrupted"
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not (tmp_path / "b").exists() and checkpoint.exists()

    result = subprocess.run(honing_cmd("train", "--resume", tmp_path / "b"), env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / ".b.partial").exists()
    assert not (tmp_path / "b" / "checkpoints").exists()
    a = load_file(tmp_path / "a" / "bundle" / "model.safetensors")
    b = load_file(tmp_path / "b" / "bundle" / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    history_a = pd.read_csv(tmp_path / "a" / "history.csv").drop(columns=["seconds", "samples_per_s"])
    history_b = pd.read_csv(tmp_path / "b" / "history.csv").drop(columns=["seconds", "samples_per_s"])
    pd.testing.assert_frame_equal(history_a, history_b)
    metrics = [json.loads((tmp_path / r / "metrics.json").read_text())["test"] for r in ("a", "b")]
    assert metrics[0] == metrics[1]


def test_ctrl_c_says_how_to_resume(recipe, tmp_path):
    job = subprocess.Popen(honing_cmd("train", recipe, "--out", tmp_path / "b"), stderr=subprocess.PIPE,
                           text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    checkpoint = tmp_path / ".b.partial" / "checkpoints" / "mlp.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert job.poll() is None, "training finished before it could be interrupted"
    job.send_signal(signal.SIGINT)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130
    assert f"honing train --resume {tmp_path / 'b'}" in err and "Aborted" not in err
    assert checkpoint.exists() and not (tmp_path / "b").exists()


def test_resume_without_an_interrupted_run(cli, tmp_path):
    result = cli("train", "--resume", tmp_path / "nothing")
    assert result.code == 2 and "no interrupted run" in result.err
    result = cli("train")
    assert result.code == 2 and "--resume" in result.err
