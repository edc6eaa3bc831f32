"""`data.task: generation` end to end: recipe → honing train → run directory and bundle → predict, generate."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import assert_user_error
from honing import api

LM_PARAMS = {"block_size": 32, "d_model": 32, "heads": 2, "layers": 1, "dropout": 0.0}


def _sentences(nouns: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    verbs, adjectives = ["sees", "likes", "finds", "paints"], ["a red", "the old", "a small", "the happy"]
    return [f"{rng.choice(adjectives)} {rng.choice(nouns)} {rng.choice(verbs)} {rng.choice(adjectives)} "
            f"{rng.choice(nouns)}." for _ in range(n)]


def _lm_recipe(source, out_name: str, epochs: int = 3, **extra) -> dict:
    recipe = {"name": out_name, "tracking": False, "data": {"source": str(source), "task": "generation"},
              "model": {"type": "char_lm", "params": LM_PARAMS},
              "train": {"epochs": epochs, "batch_size": 32, "device": "cpu", "optimizer": {"lr": 3e-3}}}
    for key, value in extra.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    return recipe


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    rows = _sentences(["cat", "dog", "bird", "fish"], 300, 0)
    pd.DataFrame({"id": range(len(rows)), "text": rows}).to_csv(folder / "text.csv", index=False)
    result = api.train(_lm_recipe(folder / "text.csv", "lm", data={"target": "text"}), out=folder / "run")
    return result, folder


def test_a_char_lm_run_writes_a_run_directory_with_perplexities(lm_run):
    result, _folder = lm_run
    run = result.run_dir
    for name in ("bundle/manifest.json", "bundle/model.safetensors", "recipe.yaml", "metrics.json", "history.csv",
                 "plots/learning_curve.png", "samples.txt", "report.html"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "generation" and metrics["model"] == "char_lm"
    assert metrics["selection_metric"] == "perplexity" and metrics["target"] == "text"
    val = metrics["validation"]
    assert val["perplexity"] == pytest.approx(math.exp(val["cross_entropy"]))
    # learnt something: better than the add-one unigram baseline and far below uniform guessing
    assert val["perplexity"] < metrics["baseline"]["validation"]["perplexity"] < metrics["vocabulary_size"]
    assert sum(result.metrics["rows"].values()) == 300
    manifest = json.loads((run / "bundle/manifest.json").read_text())
    assert manifest["task"] == "generation" and manifest["torch"]["vocabulary"][0] == "<unk>"
    assert "perplexity" in (run / "report.html").read_text()


def test_the_bundle_round_trips_and_generates(lm_run):
    result, folder = lm_run
    bundle = api.load(result.bundle_dir)
    # the bundle's model scores the validation text as the run did (the same split, recomputed here)
    rows = pd.read_csv(folder / "text.csv")["text"].astype(str).to_numpy()
    order = np.random.default_rng(42).permutation(len(rows))
    validation = "".join(r + "\n" for r in rows[np.sort(order[:round(len(rows) * 0.15)])])
    assert bundle.model.perplexity(validation) == pytest.approx(result.metrics["validation"]["perplexity"], rel=1e-6)
    greedy = bundle.generate("a red ", 30, top_k=1)
    assert greedy.startswith("a red ") and greedy == bundle.generate("a red ", 30, top_k=1, seed=5)
    scored = api.predict(bundle, pd.DataFrame({"text": ["a red cat sees the old dog.", "zzqx zzqx zzqx"]}))
    assert scored["prediction"].iloc[0] < scored["prediction"].iloc[1]  # a sentence like training's is likelier


def test_honing_generate_prints_the_continuation(lm_run, cli, tmp_path):
    result, _ = lm_run
    first = cli("generate", result.bundle_dir, "--prompt", "the old ", "--max-tokens", "25", "--top-k", "1")
    assert first.code == 0, first.err
    assert first.out.startswith("the old ") and len(first.out.rstrip("\n")) >= len("the old ")
    again = cli("generate", result.bundle_dir, "--prompt", "the old ", "--max-tokens", "25", "--top-k", "1",
                "--seed", "9")
    assert again.out == first.out
    sampled = cli("generate", result.bundle_dir, "-p", "a ", "-n", "40", "--temperature", "0.8", "--top-k", "5",
                  "--seed", "1", "-o", tmp_path / "text.txt")
    assert sampled.code == 0 and (tmp_path / "text.txt").read_text() == sampled.out.rstrip("\n")
    assert_user_error(cli("generate", result.bundle_dir, "--temperature", "0"), "--temperature")


def test_honing_predict_scores_rows_with_perplexity(lm_run, cli, tmp_path):
    result, folder = lm_run
    done = cli("predict", result.bundle_dir, folder / "text.csv", "-o", tmp_path / "scores.csv", "--keep", "id")
    assert done.code == 0, done.err
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert list(scores.columns) == ["id", "prediction"] and len(scores) == 300
    assert (scores["prediction"] >= 1.0).all()


def test_a_text_file_source_trains_and_the_flow_checks_its_keys(tmp_path, cli):
    text = "\n".join(_sentences(["cat", "dog"], 120, 1)) + "\n"
    (tmp_path / "corpus.txt").write_text(text)
    result = api.train(_lm_recipe(tmp_path / "corpus.txt", "txt", epochs=1), out=tmp_path / "run")
    assert result.metrics["validation"]["characters"] > 100
    # errors: one line naming the key
    pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]}).to_csv(tmp_path / "numbers.csv", index=False)
    (tmp_path / "r.yaml").write_text(json.dumps(_lm_recipe(tmp_path / "numbers.csv", "bad")))
    assert_user_error(cli("train", tmp_path / "r.yaml", "--out", tmp_path / "x"), "data.target", "no text column")
    assert_user_error(cli("train", tmp_path / "r.yaml", "--out", tmp_path / "y", "--set", "data.target=txt"),
                      "data.target", "'txt'")
    assert_user_error(cli("train", tmp_path / "r.yaml", "--out", tmp_path / "z", "--set", "model.type=gpt"),
                      "model.type", "gpt")
    assert_user_error(cli("generate", tmp_path / "nothing"), "nothing")


def test_fine_tuning_from_a_bundle_beats_training_from_scratch(tmp_path):
    """Pretrained on one corpus, one epoch on a related one is better than one epoch from scratch."""
    pd.DataFrame({"text": _sentences(["cat", "dog", "bird", "horse"], 600, 2)}).to_csv(tmp_path / "a.csv")
    pd.DataFrame({"text": _sentences(["cow", "dog", "fox", "horse"], 150, 3)}).to_csv(tmp_path / "b.csv")
    base = api.train(_lm_recipe(tmp_path / "a.csv", "a", epochs=6, data={"target": "text"}), out=tmp_path / "base")
    scratch = api.train(_lm_recipe(tmp_path / "b.csv", "b", epochs=1, data={"target": "text"}),
                        out=tmp_path / "scratch")
    tuned_recipe = _lm_recipe(tmp_path / "b.csv", "b", epochs=1, data={"target": "text"},
                              model={"type": "pretrained", "pretrained": str(base.run_dir), "params": {}})
    tuned = api.train(tuned_recipe, out=tmp_path / "tuned")
    assert tuned.model == "char_lm"
    assert tuned.metrics["validation"]["perplexity"] < scratch.metrics["validation"]["perplexity"]
    assert tuned.metrics["pretrained"]["validation_before"]["perplexity"] > tuned.metrics["validation"]["perplexity"]
    # the pretrained vocabulary is kept: 'w' (in "cow") and 'x' (in "fox") were never seen, so they read as <unk>
    assert api.load(tuned.bundle_dir).model.vocabulary.chars == api.load(base.bundle_dir).model.vocabulary.chars


def test_a_vae_run_samples_a_grid(tmp_path, cli):
    recipe = {"name": "vae", "tracking": False, "data": {"source": "builtin:digits", "task": "generation"},
              "model": {"type": "vae", "params": {"latent": 4, "hidden": 64}},
              "train": {"epochs": 20, "batch_size": 64, "device": "cpu", "optimizer": {"lr": 3e-3}}}
    result = api.train(recipe, out=tmp_path / "run")
    metrics = result.metrics
    assert metrics["selection_metric"] == "elbo"
    assert metrics["test"]["elbo"] == pytest.approx(-(metrics["test"]["reconstruction"] + metrics["test"]["kl"]))
    assert metrics["validation"]["elbo"] > metrics["baseline"]["validation"]["elbo"]  # beats per-pixel means
    assert (result.run_dir / "plots/samples.png").is_file()
    assert "samples" in (result.run_dir / "report.html").read_text()
    done = cli("generate", result.bundle_dir, "--samples", "9", "-o", tmp_path / "grid.png")
    assert done.code == 0, done.err
    with Image.open(tmp_path / "grid.png") as png:
        assert png.format == "PNG"
    assert_user_error(cli("generate", result.bundle_dir), "--out")
    from honing.data.sources import read_table

    scored = api.predict(result.bundle_dir, read_table("builtin:digits").head(5))
    assert np.isfinite(scored["prediction"]).all() and (scored["prediction"] < 0).all()  # per-image ELBO (nats)


def test_a_vae_says_how_its_pixels_were_scaled_and_what_was_clipped(tmp_path):
    """Values in 0-16 are divided by their largest (digits); signed values outside [0, 1] are clipped with a
    note giving their share (they were clipped silently)."""
    rng = np.random.default_rng(0)
    pixels = pd.DataFrame(rng.normal(size=(120, 4)), columns=list("abcd"))
    pixels.to_csv(tmp_path / "signed.csv", index=False)
    recipe = {"name": "signed", "tracking": False, "data": {"source": str(tmp_path / "signed.csv"), "task": "generation"},
              "model": {"type": "vae", "params": {"latent": 2, "hidden": 8}}, "train": {"epochs": 1, "device": "cpu"}}
    notes = api.train(recipe, out=tmp_path / "run").notes
    assert any("images, divided by" in n for n in notes), notes
    clipped = [n for n in notes if "are clipped" in n]  # about half the training values are negative
    assert len(clipped) == 1 and 40 < float(clipped[0].split("%")[0]) < 60, clipped


def test_honing_evaluate_scores_text(lm_run, cli, tmp_path):
    result, _folder = lm_run
    rows = pd.DataFrame({"text": ["a red cat sees the old dog.", "the happy bird paints a small fish."]})
    scores = api.evaluate(result.bundle_dir, rows)
    joined = "".join(r + "\n" for r in rows["text"])
    assert scores["rows"] == 2
    assert scores["perplexity"] == pytest.approx(api.load(result.bundle_dir).model.perplexity(joined), rel=1e-9)
    rows.rename(columns={"text": "words"}).to_csv(tmp_path / "words.csv", index=False)
    assert_user_error(cli("evaluate", result.bundle_dir, tmp_path / "words.csv"), "text")


def test_honing_tune_minimises_validation_perplexity(lm_run, tmp_path):
    _, folder = lm_run
    recipe = _lm_recipe(folder / "text.csv", "tune-lm", epochs=2, data={"target": "text"},
                        tune={"trials": 2, "sampler": "random", "pruner": "none",
                              "space": {"train.optimizer.lr": {"float": [1e-3, 1e-2], "log": True}}})
    result = api.tune(recipe, out=tmp_path / "tune")
    assert result.metric == "perplexity"
    scores = [row["perplexity"] for row in result.leaderboard]
    assert result.best_score == pytest.approx(min(scores))  # minimised, not maximised
    assert (tmp_path / "tune" / "best" / "bundle" / "manifest.json").is_file()
    assert result.trained.metrics["model"] == "char_lm"


def test_the_rest_server_scores_text_rows(lm_run):
    from fastapi.testclient import TestClient

    from honing.recipe import ServeConfig
    from honing.serving.app import create_app

    result, _ = lm_run
    bundle = api.load(result.bundle_dir)
    rows = ["a red cat sees the old dog.", "zzqx zzqx"]
    with TestClient(create_app(bundle, ServeConfig(), None)) as client:
        answer = client.post("/v1/predict", json={"instances": [{"text": r} for r in rows]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == pytest.approx(bundle.model.predict(rows).tolist())


def test_an_interrupted_char_lm_run_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    """Ctrl-C after epoch 2 of 4 keeps the checkpoint; --resume continues from it and ends with the
    very weights and history of a run that was never interrupted."""
    from safetensors.torch import load_file

    from honing.tracking import Interrupted
    from honing.training.checkpoint import Checkpoint

    rows = _sentences(["cat", "dog", "bird"], 200, 1)
    pd.DataFrame({"text": rows}).to_csv(tmp_path / "text.csv", index=False)
    recipe = {**_lm_recipe(tmp_path / "text.csv", "resume", epochs=4), "seed": 5}
    api.train(recipe, out=tmp_path / "a")

    save = Checkpoint.on_epoch_end

    def interrupted_after_epoch_2(self, trainer, epoch, logs):
        save(self, trainer, epoch, logs)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoint, "on_epoch_end", interrupted_after_epoch_2)
    with pytest.raises(Interrupted):
        api.train(recipe, out=tmp_path / "b")
    assert (tmp_path / ".b.partial" / "checkpoints" / "char_lm.pt").is_file() and not (tmp_path / "b").exists()
    monkeypatch.setattr(Checkpoint, "on_epoch_end", save)
    api.train(recipe, out=tmp_path / "b", resume=True)

    a, b = (load_file(tmp_path / run / "bundle" / "model.safetensors") for run in ("a", "b"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    history = [pd.read_csv(tmp_path / run / "history.csv").drop(columns=["seconds", "samples_per_s"])
               for run in ("a", "b")]
    pd.testing.assert_frame_equal(*history)
