"""The commands made for one kind of bundle, given another kind: compress, export and explain on clustering,
generative and reinforcement-learning bundles; generate's options of the other generative kind; monitor's
note on a bundle with no feature profile. Each answers one clear line (or note), never a traceback."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conftest import assert_user_error
from honing import api
from honing.data.sources import read_table
from honing.recipe import MonitorConfig, ServeConfig
from honing.serving import monitor
from honing.serving.app import create_app
from honing.serving.predict_log import PredictionLog

TINY_LM = {"block_size": 16, "d_model": 16, "heads": 2, "layers": 1, "dropout": 0.0}
RECIPES = {  # the smallest bundles of each kind, with rows a served model of that kind takes
    "char_lm": ({"data": {"source": "text.csv", "task": "generation", "target": "text"},
                 "model": {"type": "char_lm", "params": TINY_LM}, "train": {"epochs": 1, "device": "cpu"}},
                "text.csv"),
    "vae": ({"data": {"source": "builtin:digits", "task": "generation"},
             "model": {"type": "vae", "params": {"latent": 2, "hidden": 16}}, "train": {"epochs": 1, "device": "cpu"}},
            "digits.csv"),
    "kmeans": ({"data": {"source": "builtin:iris", "task": "clustering", "drop": ["species"]},
                "model": {"type": "kmeans", "params": {"k": 3}}}, "iris.csv"),
    "q_learning": ({"data": {"task": "reinforcement", "env": "FrozenLake-v1", "env_params": {"is_slippery": False}},
                    "model": {"type": "q_learning", "params": {"episodes": 20}}, "evaluate": {"episodes": 2}},
                   "obs.csv"),
    "ppo": ({"data": {"task": "reinforcement", "env": "CartPole-v1"},
             "model": {"type": "ppo", "params": {"total_timesteps": 64, "n_steps": 64, "batch_size": 64,
                                                "n_epochs": 1, "net_arch": [8]}}, "evaluate": {"episodes": 2}},
            "pole.csv"),
}
TASKS = {"char_lm": "generation", "vae": "generation", "kmeans": "clustering", "q_learning": "reinforcement",
         "ppo": "reinforcement"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The training text and a few rows of every kind's input."""
    root = tmp_path_factory.mktemp("kinds")
    rng = random.Random(0)
    text = [f"a {rng.choice(['cat', 'dog'])} sees the {rng.choice(['bird', 'fish'])}." for _ in range(120)]
    pd.DataFrame({"text": text}).to_csv(root / "text.csv", index=False)
    read_table("builtin:digits").head(20).to_csv(root / "digits.csv", index=False)
    read_table("builtin:iris").drop(columns="species").to_csv(root / "iris.csv", index=False)
    pd.DataFrame({"obs": range(16)}).to_csv(root / "obs.csv", index=False)
    pd.DataFrame({f"obs_{i}": [0.01 * j for j in range(20)] for i in range(4)}).to_csv(root / "pole.csv", index=False)
    return root


@pytest.fixture(scope="module")
def bundle(folder):
    """``bundle(kind)``: that kind's bundle directory, trained on first use, and its rows file."""
    trained = {}

    def get(kind: str):
        if TASKS[kind] == "reinforcement":
            pytest.importorskip("gymnasium")
            if kind == "ppo":
                pytest.importorskip("stable_baselines3")
        recipe, rows = RECIPES[kind]
        if kind not in trained:
            recipe = {"name": kind, "seed": 0, "tracking": False, **json.loads(json.dumps(recipe))}
            if recipe["data"].get("source") == "text.csv":
                recipe["data"]["source"] = str(folder / "text.csv")
            trained[kind] = api.train(recipe, out=folder / kind).bundle_dir
        return trained[kind], folder / rows

    return get


@pytest.mark.parametrize("kind", list(RECIPES))
def test_compress_export_and_explain_refuse_a_bundle_they_cannot_handle(bundle, kind, cli, tmp_path):
    path, rows = bundle(kind)
    words = [f"a {TASKS[kind]} bundle ({kind})", "classification and regression"]
    assert_user_error(cli("compress", path), *words, "cannot be compressed")
    assert_user_error(cli("compress", path, "--data", rows), *words)
    # refused before any data is read: a file that does not exist is not what the error is about
    assert_user_error(cli("export", path, "--data", tmp_path / "gone.csv"), *words, "exported to ONNX")
    assert_user_error(cli("export", path), *words)
    assert not (path / "model.onnx").exists() and not path.with_name(f"{path.name}-compressed").exists()
    assert_user_error(cli("explain", path, rows), *words[:1], "cannot be explained", "honing explain")


@pytest.mark.parametrize(("kind", "args", "words"), [
    ("vae", ["--prompt", "hi", "-o", "grid.png"], ["--prompt: applies to a char_lm bundle", "a vae takes --samples"]),
    ("vae", ["-t", "0.5", "-o", "grid.png"], ["--temperature: applies to a char_lm bundle"]),
    ("vae", ["--top-k", "2", "-o", "grid.png"], ["--top-k: applies to a char_lm bundle"]),
    ("char_lm", ["--samples", "4"], ["--samples: applies to a vae bundle", "a char_lm takes --prompt"]),
    ("char_lm", ["--temperature", "nan"], ["--temperature", "finite number > 0", "nan"]),
    ("char_lm", ["--temperature", "inf"], ["--temperature", "finite number > 0", "inf"]),
    ("char_lm", ["-o", "."], ["--out", "is a folder"]),
    ("vae", ["-o", "."], ["--out", "is a folder"]),
])
def test_generate_refuses_options_that_do_not_apply(bundle, cli, tmp_path, monkeypatch, kind, args, words):
    monkeypatch.chdir(tmp_path)
    path, _ = bundle(kind)
    assert_user_error(cli("generate", path, *args), *words)
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_generate_writes_the_text_or_grid_into_missing_folders(bundle, cli, tmp_path):
    lm, _ = bundle("char_lm")
    done = cli("generate", lm, "-p", "a ", "-n", "12", "--top-k", "1", "-o", tmp_path / "new" / "deeper" / "text.txt")
    assert done.code == 0, done.err
    assert (tmp_path / "new" / "deeper" / "text.txt").read_text() == done.out.rstrip("\n")
    vae, _ = bundle("vae")
    done = cli("generate", vae, "--samples", "4", "--seed", "1", "-o", tmp_path / "other" / "grid.png")
    assert done.code == 0, done.err
    assert (tmp_path / "other" / "grid.png").is_file()


@pytest.mark.parametrize("kind", ["char_lm", "ppo"])
def test_monitor_says_a_bundle_of_this_kind_has_no_feature_profile(bundle, kind, tmp_path, cli):
    path, rows = bundle(kind)
    loaded = api.load(path)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    instances = json.loads(pd.read_csv(rows).head(10).to_json(orient="records"))
    with TestClient(create_app(loaded, ServeConfig(), PredictionLog(url))) as client:
        answer = client.post("/v1/predict", json={"instances": instances})
    assert answer.status_code == 200, answer.text
    result = monitor.run(loaded, MonitorConfig(log=url, window="all"))
    assert result.rows == 10 and result.drift == [] and result.prediction is None and not result.breached
    assert any(f"a {TASKS[kind]} bundle ({kind}) has no feature profile" in note for note in result.notes)
    assert not any("older honing" in note or "retrain" in note for note in result.notes), result.notes
    shown = cli("monitor", path, "--log", url, "--window", "all")
    assert shown.code == 0, shown.err
    assert "drift do not apply" in " ".join(shown.out.split())


@pytest.mark.parametrize("kind", ["q_learning", "ppo"])
def test_evaluate_refuses_data_for_an_agent_and_episodes_for_the_others(bundle, kind, cli):
    path, rows = bundle(kind)
    assert_user_error(cli("evaluate", path, rows), str(rows), "playing episodes", "--episodes")
    assert cli("evaluate", path, "--episodes", "2").code == 0
    lm, text = bundle("char_lm")
    assert_user_error(cli("evaluate", lm, text, "--episodes", "2"), "--episodes", "generation bundle")


def test_evaluate_without_data_asks_a_clustering_bundle_for_rows_not_labels(bundle, cli):
    path, _ = bundle("kmeans")
    assert_user_error(cli("evaluate", path), "rows to score", "a clustering bundle", "optional")
