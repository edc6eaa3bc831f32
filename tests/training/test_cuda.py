"""CUDA paths (mixed precision with a grad scaler, bf16, device auto): run where a GPU exists,
skipped cleanly where none does (CI has none)."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_on_cuda_learns(precision):
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    from honing.models.estimators import NeuralClassifier

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = NeuralClassifier(epochs=30, precision=precision, device="cuda", random_state=0).fit(X, y)
    assert next(model.module_.parameters()).is_cuda
    assert model.history_[-1]["loss"] < model.history_[0]["loss"] and model.score(X, y) > 0.95


def test_device_auto_picks_cuda():
    from honing.training.trainer import resolve_device

    assert str(resolve_device("auto")).startswith("cuda")
