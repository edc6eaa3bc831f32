"""Neural model types from a recipe: trained by honing's loop, bundled as safetensors, diagnosed."""

import json

import numpy as np
import pandas as pd
import pytest

import honing

pytestmark = pytest.mark.slow


def test_mlp_recipe_end_to_end(tmp_path):
    run = honing.train({"data": {"source": "builtin:breast_cancer"}, "model": {"type": "mlp"},
                        "train": {"epochs": 60}}, out=tmp_path / "run")
    assert run.model == "mlp" and run.metrics["test"]["accuracy"] > 0.9
    assert run.metrics["test"]["accuracy"] > run.metrics["baseline"]["test"]["accuracy"] + 0.25
    history = pd.read_csv(run.run_dir / "history.csv")
    assert {"epoch", "loss", "val_loss", "lr", "samples_per_s"} <= set(history.columns)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert (run.run_dir / "plots" / "learning_curve.png").stat().st_size > 10_000
    assert isinstance(json.loads((run.run_dir / "metrics.json").read_text())["diagnostics"], list)
    manifest = json.loads((run.bundle_dir / "manifest.json").read_text())
    assert manifest["model_format"] == "torch" and manifest["recipe"]["train"]["epochs"] == 60

    from honing.data.builtin import load_builtin

    frame = load_builtin("breast_cancer").frame
    model = honing.load(run.bundle_dir)
    assert set(model.predict(frame.head(10))) <= {"malignant", "benign"}
    np.testing.assert_allclose(model.predict_proba(frame.head(10)).sum(axis=1), 1.0, rtol=1e-6)


def test_diverging_recipe_is_diagnosed_or_stopped(tmp_path):
    """An absurd learning rate either diverges (a clear error) or is flagged by the diagnostics."""
    from honing.training.trainer import TrainingDiverged

    recipe = {"data": {"source": "builtin:diabetes"}, "model": {"type": "mlp"},
              "train": {"epochs": 15, "optimizer": {"name": "sgd", "lr": 5.0}, "early_stopping": None}}
    try:
        run = honing.train(recipe, out=tmp_path / "run")
    except TrainingDiverged as exc:
        assert "epoch" in str(exc) and "train.optimizer.lr" in str(exc)
        assert not (tmp_path / "run").exists()
    else:
        rules = {f["rule"] for f in run.metrics["diagnostics"]}
        assert rules & {"divergence", "not_decreasing", "exploding_gradients", "underfitting"}


def test_cnn_recipe_on_digits(tmp_path):
    run = honing.train({"data": {"source": "builtin:digits", "scale": "none"}, "model": {"type": "cnn"},
                        "train": {"epochs": 40, "batch_size": 64, "optimizer": {"lr": 3.0e-3}}},
                       out=tmp_path / "run")
    assert run.metrics["test"]["accuracy"] >= 0.95


@pytest.mark.parametrize("net", ["gru", "transformer"])
def test_sequence_models_on_text_with_a_vocabulary(net, tmp_path):
    """Text → token ids from a vocabulary fitted on the training split → a sequence model."""
    rng = np.random.default_rng(0)
    filler = ["the", "movie", "was", "a", "plot", "and", "actors", "it", "really", "story", "film", "quite"]
    positive, negative = ["great", "wonderful", "superb", "moving"], ["awful", "boring", "dull", "terrible"]
    rows = []
    for _ in range(800):
        label = int(rng.integers(0, 2))
        words = list(rng.choice(filler, size=int(rng.integers(4, 12))))
        words.insert(int(rng.integers(0, len(words))), str(rng.choice(positive if label else negative)))
        rows.append({"review": " ".join(words), "sentiment": "pos" if label else "neg"})
    pd.DataFrame(rows).to_csv(tmp_path / "reviews.csv", index=False)
    run = honing.train({"data": {"source": str(tmp_path / "reviews.csv"), "target": "sentiment",
                                 "text": "tokens", "max_tokens": 16, "types": {"review": "text"}},
                        "model": {"type": net}, "train": {"epochs": 25, "batch_size": 32,
                                                         "optimizer": {"lr": 3.0e-3}}},
                       out=tmp_path / "run")
    assert run.metrics["test"]["accuracy"] >= 0.9
    model = honing.load(run.bundle_dir)
    new = pd.DataFrame({"review": ["the film was superb", "a dull and boring story", "zzz unknownword"]})
    assert list(model.predict(new)[:2]) == ["pos", "neg"]
