"""data.balance in `honing train`: the minority class's recall on test improves on the imbalanced
bundled pima_diabetes, validation and test rows are never resampled, and misuse names the key."""

from __future__ import annotations

import pytest

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


def test_balancing_mistakes(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {source: builtin:diabetes, balance: smote}\nmodel: {type: ridge}\n")
    assert_user_error(cli("train", recipe), "data.balance", "classification")
    recipe.write_text("data: {source: builtin:pima_diabetes, balance: class_weight}\n"
                      "model: {type: mlp}\ntrain: {epochs: 2}\n")
    assert_user_error(cli("train", recipe), "data.balance", "oversample")
