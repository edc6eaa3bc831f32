"""Unsupervised models and metrics against scikit-learn as the oracle (honing.models.unsupervised,
honing.evaluation.unsupervised)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.mixture import GaussianMixture

from honing.errors import RecipeError
from honing.evaluation import unsupervised as ev
from honing.models.unsupervised import (
    AnomalyDetector,
    ClusterModel,
    Embedder,
    check_model,
    make_model,
)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=300, centers=[[0, 0], [6, 0], [0, 6]], cluster_std=0.7, random_state=0)
    return X, y


def planted(seed: int = 0, n: int = 400, outliers: int = 20):
    """Normal rows in 5 dimensions plus ``outliers`` rows far from them (the last ones)."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n, 5))
    far = rng.normal(size=(outliers, 5))
    far = 7 * far / np.linalg.norm(far, axis=1, keepdims=True)  # on a sphere of radius 7
    return np.vstack([normal, far]), np.r_[np.zeros(n, int), np.ones(outliers, int)]


def test_kmeans_and_gaussian_mixture_predict_as_sklearn(blobs):
    X, _ = blobs
    new = np.random.default_rng(1).normal(3, 3, size=(50, 2))
    ours = ClusterModel("kmeans").fit(X, {"k": 3}, 7)
    oracle = KMeans(n_clusters=3, random_state=7, n_init="auto").fit(X)
    assert np.array_equal(ours.predict(new), oracle.predict(new))
    assert np.array_equal(ours.labels_, oracle.labels_)
    gmm = ClusterModel("gaussian_mixture").fit(X, {"k": 3}, 7)
    assert np.array_equal(gmm.predict(new), GaussianMixture(n_components=3, random_state=7).fit(X).predict(new))


@pytest.mark.parametrize("linkage", ["ward", "complete", "average", "single"])
def test_agglomerative_labels_and_nearest_centroid_rule(blobs, linkage):
    X, y = blobs
    model = ClusterModel("agglomerative").fit(X, {"k": 3, "linkage": linkage}, 0)
    oracle = AgglomerativeClustering(n_clusters=3, linkage=linkage).fit(X)
    assert np.array_equal(model.labels_, oracle.labels_)
    # the rule for new rows, by hand: the nearest mean of each cluster's training rows
    new = np.random.default_rng(2).uniform(-3, 9, size=(40, 2))
    centroids = np.vstack([X[oracle.labels_ == c].mean(axis=0) for c in range(3)])
    by_hand = np.argmin(((new[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert np.array_equal(model.predict(new), by_hand)
    assert metrics.adjusted_rand_score(y, model.predict(X)) > 0.95  # well-separated blobs


def test_dbscan_rule_nearest_core_within_eps_else_noise(blobs):
    X, _ = blobs
    X = np.vstack([X, [[30.0, 30.0], [-30.0, 5.0]]])  # two isolated points: noise
    model = ClusterModel("dbscan").fit(X, {"eps": 0.8, "min_samples": 5}, 0)
    oracle = DBSCAN(eps=0.8, min_samples=5).fit(X)
    assert np.array_equal(model.labels_, oracle.labels_)
    again = model.predict(X)
    core = oracle.core_sample_indices_
    assert np.array_equal(again[core], oracle.labels_[core])  # core samples keep their cluster
    assert list(again[-2:]) == [-1, -1]  # noise stays noise
    assert np.array_equal(again, oracle.labels_)  # well-separated blobs: no border point is shared
    # non-core rows: the nearest core sample's label when within eps, by hand
    new = np.array([[0.2, 0.1], [6.3, -0.2], [3.0, 3.0], [100.0, 0.0]])
    d = np.linalg.norm(new[:, None, :] - X[core][None], axis=2)
    by_hand = np.where(d.min(axis=1) <= 0.8, oracle.labels_[core][d.argmin(axis=1)], -1)
    assert np.array_equal(model.predict(new), by_hand)
    assert model.n_clusters_ == len(set(oracle.labels_) - {-1})


def test_isolation_forest_decisions_equal_sklearn_and_find_planted_outliers():
    X, truth = planted()
    model = AnomalyDetector("isolation_forest").fit(X, {"contamination": 0.05}, 3)
    oracle = IsolationForest(contamination=0.05, random_state=3).fit(X)
    assert np.array_equal(model.predict(X), (oracle.predict(X) == -1).astype(int))
    assert np.allclose(model.score(X), -oracle.score_samples(X))
    assert metrics.recall_score(truth, model.predict(X)) >= 0.95
    assert metrics.roc_auc_score(truth, model.score(X)) > 0.99


def test_quantile_threshold_and_autoencoder_reconstruction_error():
    X, truth = planted(seed=1)
    model = AnomalyDetector("autoencoder").fit(X[truth == 0], {"quantile": 0.99, "latent": 2, "hidden": [16],
                                                               "epochs": 60}, 0)
    train_scores = model.score(X[truth == 0])
    assert model.threshold_ == pytest.approx(np.quantile(train_scores, 0.99))
    assert np.mean(train_scores > model.threshold_) == pytest.approx(0.01, abs=0.005)
    flagged = model.predict(X)
    assert metrics.recall_score(truth, flagged) >= 0.9  # the planted outliers reconstruct badly
    assert flagged[truth == 0].mean() < 0.03


def test_pca_embeddings_equal_sklearn(blobs):
    X = np.random.default_rng(0).normal(size=(200, 6)) @ np.random.default_rng(1).normal(size=(6, 6))
    ours = Embedder("pca").fit(X, {"components": 0.9}, 0)
    oracle = PCA(n_components=0.9, random_state=0).fit(X)
    assert np.allclose(ours.transform(X), oracle.transform(X))
    assert ours.n_components_ == oracle.n_components_
    assert ev.reconstruction_variance(X, ours.transform(X)) == pytest.approx(oracle.explained_variance_ratio_.sum())


def test_autoencoder_embeddings_have_the_latent_width(blobs):
    X, _ = blobs
    model = make_model("reduction", "autoencoder", {"latent": 3, "epochs": 5}, 0, X)
    assert model.transform(X[:7]).shape == (7, 3) and model.n_components_ == 3
    assert np.allclose(model.transform(X[:7]), model.transform(X)[:7])  # a row's code does not depend on its batch


def test_cluster_metrics_equal_sklearn(blobs, monkeypatch):
    X, y = blobs
    labels = KMeans(n_clusters=3, random_state=0, n_init="auto").fit_predict(X)
    out = ev.cluster_metrics(X, labels, y, seed=0)
    assert out["silhouette"] == pytest.approx(metrics.silhouette_score(X, labels))
    assert out["davies_bouldin"] == pytest.approx(metrics.davies_bouldin_score(X, labels))
    assert out["calinski_harabasz"] == pytest.approx(metrics.calinski_harabasz_score(X, labels))
    assert out["adjusted_rand"] == pytest.approx(metrics.adjusted_rand_score(y, labels))
    assert out["nmi"] == pytest.approx(metrics.normalized_mutual_info_score(y, labels))
    assert out["silhouette_sampled"] is False
    monkeypatch.setattr(ev, "SILHOUETTE_ROWS", 100)  # large data: a seeded sample of SILHOUETTE_ROWS rows
    sampled = ev.cluster_metrics(X, labels, seed=5)
    assert sampled["silhouette_sampled"] is True
    assert sampled["silhouette"] == pytest.approx(metrics.silhouette_score(X, labels, sample_size=100, random_state=5))


def test_noise_is_left_out_of_internal_metrics(blobs):
    X, _ = blobs
    labels = KMeans(n_clusters=3, random_state=0, n_init="auto").fit_predict(X)
    labels[:30] = -1
    out = ev.cluster_metrics(X, labels)
    assert out["noise_fraction"] == pytest.approx(0.1)
    assert out["silhouette"] == pytest.approx(metrics.silhouette_score(X[30:], labels[30:]))


def test_anomaly_labels_and_metrics():
    import pandas as pd

    assert ev.anomaly_labels(pd.Series(["a", "b", "a", "a"]))[1] == "b"  # the rarest label is the anomaly
    assert list(ev.anomaly_labels(pd.Series([0, 1, 1, 0]))[0]) == [0, 1, 1, 0]
    scores, flagged, truth = np.array([0.1, 0.9, 0.8, 0.2]), np.array([0, 1, 0, 0]), np.array([0, 1, 1, 0])
    out = ev.anomaly_metrics(scores, flagged, truth)
    assert out["precision"] == 1.0 and out["recall"] == 0.5 and out["roc_auc"] == 1.0


def test_user_mistakes_are_recipe_errors(blobs):
    X, _ = blobs
    with pytest.raises(RecipeError, match="model.type: 'kmean' is not a clustering model"):
        check_model("clustering", "kmean")
    assert check_model("anomaly", "auto") == "isolation_forest"
    with pytest.raises(RecipeError, match="contamination or quantile"):
        AnomalyDetector().fit(X, {"contamination": 0.1, "quantile": 0.9}, 0)
    with pytest.raises(RecipeError, match="contamination"):
        AnomalyDetector().fit(X, {"contamination": 0.9}, 0)
    with pytest.raises(RecipeError, match="model.params"):
        ClusterModel("kmeans").fit(X, {"k": 3, "bogus": 1}, 0)
    with pytest.raises(RecipeError, match="unknown autoencoder parameter 'latnt'"):
        Embedder("autoencoder").fit(X, {"latnt": 2}, 0)
