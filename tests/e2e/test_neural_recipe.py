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
