"""data.balance in `honing train`: the minority class's recall on test improves on the imbalanced
bundled pima_diabetes, validation and test rows are never resampled, and misuse names the key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import honing
from conftest import assert_user_error

pytestmark = pytest.mark.slow


def _minority_recall(run) -> float:
    _, (fn, tp) = run.metrics["test"]["confusion_matrix"]
    return tp / (tp + fn)


def _train(tmp_path, balance: str, model: str = "logistic_regression"):
    recipe = {"name": f"pima-{balance}", "data": {"source": "builtin:pima_diabetes", "balance": balance},
              "model": {"type": model}, "evaluate": {"bootstrap": 0, "explain": False}}
    return honing.train(recipe, out=tmp_path / balance)


@pytest.mark.parametrize("balance", ["class_weight", "oversample", "undersample", "smote"])
def test_balancing_raises_minority_recall(tmp_path, balance):
    plain, balanced = _train(tmp_path, "none"), _train(tmp_path, balance)
    assert _minority_recall(balanced) > _minority_recall(plain) + 0.05
    assert balanced.metrics["rows"] == plain.metrics["rows"]  # the splits themselves are untouched
    assert sum(map(sum, balanced.metrics["test"]["confusion_matrix"])) == plain.metrics["rows"]["test"]
    # the dummy baseline learns the real majority class, from the training rows before resampling
    assert balanced.metrics["baseline"]["test"] == plain.metrics["baseline"]["test"]


def test_balancing_mistakes(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {source: builtin:diabetes, balance: smote}\nmodel: {type: ridge}\n")
    assert_user_error(cli("train", recipe), "data.balance", "classification")
    recipe.write_text("data: {source: builtin:pima_diabetes, balance: class_weight}\n"
                      "model: {type: knn}\n")
    assert_user_error(cli("train", recipe), "data.balance", "oversample")


def _mlp(tmp_path, name: str, **data):
    recipe = {"name": name, "seed": 0, "data": {"target": "outcome", **data},
              "model": {"type": "mlp", "params": {"hidden": [32]}}, "train": {"epochs": 40, "early_stopping": None},
              "evaluate": {"bootstrap": 0, "explain": False}}
    return honing.train(recipe, out=tmp_path / name)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_neural_classifier_weighs_its_classes(tmp_path, streaming):
    """data.balance: class_weight on an mlp (in memory, and streamed from Parquet with the weights from
    the streamed class counts): a weighted cross-entropy that raises the minority's recall."""
    from honing.data.builtin import load_builtin

    load_builtin("pima_diabetes").frame.to_parquet(tmp_path / "pima.parquet", index=False)
    source = {"source": str(tmp_path / "pima.parquet"), "streaming": streaming}
    plain, weighted = _mlp(tmp_path, "plain", **source), _mlp(tmp_path, "weighted", balance="class_weight", **source)
    assert _minority_recall(weighted) > _minority_recall(plain) + 0.05
    assert weighted.metrics["rows"] == plain.metrics["rows"]


def test_the_class_weights_are_sklearns_balanced_ones(monkeypatch):
    """What the neural classifier's cross-entropy is weighted by: scikit-learn's balanced class weights
    (in memory from the labels, streamed from the class counts)."""
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    from honing.models.estimators import NeuralClassifier

    used = []
    real = NeuralClassifier._loss
    monkeypatch.setattr(NeuralClassifier, "_loss", lambda self, w: used.append(w) or real(self, w))
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], 300, p=[0.7, 0.2, 0.1])
    X = rng.normal(size=(300, 4)).astype(np.float32)
    NeuralClassifier(epochs=1, early_stopping=False, class_weight="balanced").fit(X, y)
    expected = compute_class_weight("balanced", classes=np.array(["a", "b", "c"]), y=y)
    np.testing.assert_allclose(used[-1], expected)
    NeuralClassifier(epochs=1, early_stopping=False).fit(X, y)
    assert used[-1] is None  # no weights unless asked
    counts = np.array([(y == c).sum() for c in ("a", "b", "c")])
    batches = [(torch.as_tensor(X), torch.as_tensor(np.searchsorted(["a", "b", "c"], y)))]

    class Stream:
        def __len__(self):
            return 1

        def batches(self, epoch):
            return iter(batches)

    NeuralClassifier(epochs=1, early_stopping=False, class_weight="balanced").fit_stream(
        Stream(), n_features=4, class_counts=counts)
    np.testing.assert_allclose(used[-1], expected)


def test_streaming_refuses_resampling(cli, tmp_path):
    from honing.data.builtin import load_builtin

    load_builtin("pima_diabetes").frame.to_parquet(tmp_path / "pima.parquet", index=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data: {{source: {tmp_path / 'pima.parquet'}, target: outcome, streaming: true, "
                      "balance: oversample}\nmodel: {type: mlp}\n")
    assert_user_error(cli("train", recipe), "data.balance: oversample", "class_weight")


def test_cross_validation_balances_each_folds_training_rows(tmp_path):
    """evaluate.cv scores the model as trained: data.balance: class_weight in every fold equals
    scikit-learn's class_weight="balanced" on the same folds (the folds scored the unbalanced model)."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from honing.data.dataset import load_dataset

    recipe = {"name": "pima-cv", "data": {"source": "builtin:pima_diabetes", "balance": "class_weight"},
              "model": {"type": "logistic_regression"},
              "evaluate": {"bootstrap": 0, "explain": False, "cv": {"folds": 3}}}
    run = honing.train(recipe, out=tmp_path / "cv")
    dataset = load_dataset(run.recipe.data, run.recipe.seed)
    rows = pd.concat([dataset.splits["train"], dataset.splits["validation"]], ignore_index=True)
    X, y = rows.drop(columns=[dataset.target]), rows[dataset.target].to_numpy()
    model = clone(honing.load(run.bundle_dir).model).set_params(class_weight="balanced")
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=run.recipe.seed)
    expected = cross_val_score(make_pipeline(StandardScaler(), model), X, y, cv=folds, scoring="balanced_accuracy")
    got = [fold["balanced_accuracy"] for fold in run.metrics["cv"]["model"]["folds"]]
    np.testing.assert_allclose(got, expected, atol=1e-9)
