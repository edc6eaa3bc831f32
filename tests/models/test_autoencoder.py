"""The autoencoder reduces dimensions and scores anomalies; it is a scikit-learn transformer."""

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from honing.models.autoencoder import NeuralAutoencoder


@parametrize_with_checks([NeuralAutoencoder(epochs=5, latent=2, random_state=0)])
def test_scikit_learn_compatible(estimator, check):
    check(estimator)


MIXING = np.random.default_rng(42).normal(size=(2, 10))


def _low_rank(n, rng):
    """10 features that are noisy mixtures of the same 2 hidden factors."""
    factors = rng.normal(size=(n, 2))
    return (factors @ MIXING + 0.05 * rng.normal(size=(n, 10))).astype(np.float32)


def test_latent_codes_and_anomaly_scores():
    rng = np.random.default_rng(0)
    X = _low_rank(2000, rng)
    model = NeuralAutoencoder(latent=2, epochs=150, lr=3e-3, random_state=0).fit(X)
    assert model.transform(X).shape == (2000, 2)
    normal = _low_rank(200, np.random.default_rng(1))
    outliers = np.random.default_rng(2).normal(scale=2.0, size=(50, 10)).astype(np.float32)
    scores = model.score_samples(np.vstack([normal, outliers]))
    labels = np.r_[np.zeros(200), np.ones(50)]
    assert roc_auc_score(labels, scores) > 0.95  # rows off the learned 2-D structure stand out
    assert model.history_[-1]["loss"] < model.history_[0]["loss"] / 5
