"""`honing train --processes 2`: torchrun runs two ranks; rank 0 alone writes the run."""

import json
import os
import socket
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


def _recipe(tmp_path, **train) -> str:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "ddp", "data": {"source": "builtin:breast_cancer"},
        "model": {"type": "mlp", "params": {"dropout": 0.0}},
        "train": {"epochs": 15, "batch_size": 64, "early_stopping": None, **train},
    }))
    return str(recipe)


def _honing(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "honing.cli", "--quiet", "train", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _metrics(run) -> dict:
    return json.loads((run / "metrics.json").read_text())["validation"]


def test_fsdp_through_the_recipe_matches_one_process_and_bundles_alike(tmp_path):
    from honing import api

    single = api.train(_recipe(tmp_path), out=tmp_path / "one")
    process = _honing(_recipe(tmp_path, strategy="fsdp"), "--processes", "2", "--out", str(tmp_path / "fsdp"))
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    sharded = _metrics(tmp_path / "fsdp")
    for metric in ("accuracy", "log_loss"):
        assert abs(single.metrics["validation"][metric] - sharded[metric]) < 0.03
    one, two = api.load(tmp_path / "one" / "bundle"), api.load(tmp_path / "fsdp" / "bundle")
    from honing.data.sources import read_table

    frame = read_table("builtin:breast_cancer").drop(columns=["target"]).head(100)
    agree = (api.predict(one, frame)["prediction"] == api.predict(two, frame)["prediction"]).mean()
    assert agree > 0.95  # a plain bundle, as one process writes it


def test_two_nodes_meet_at_one_rendezvous(tmp_path):
    """Two "machines" (two torchrun launchers on this one) with one process each, through --rdzv."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    recipe, out = _recipe(tmp_path), tmp_path / "nodes"
    nodes = [_honing(recipe, "--nnodes", "2", "--node-rank", str(rank), "--rdzv", f"127.0.0.1:{port}",
                     "--out", str(out)) for rank in (0, 1)]
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-2000:]
    alone = tmp_path / "alone"
    done = _honing(recipe, "--processes", "2", "--out", str(alone))
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-2000:]
    for metric in ("accuracy", "log_loss"):  # two nodes of one process = one node of two processes
        assert _metrics(out)[metric] == pytest.approx(_metrics(alone)[metric], abs=1e-6)


def test_fsdp_is_refused_for_fine_tuning(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"source": "builtin:sst2"},
                                      "model": {"type": "pretrained", "pretrained": "builtin:minilm"},
                                      "train": {"processes": 2, "strategy": "fsdp"}}))
    result = cli("train", recipe)
    assert result.code == 2 and "train.strategy: fsdp" in result.err and "ddp" in result.err
