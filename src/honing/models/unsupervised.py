"""Unsupervised models (``data.task: clustering | reduction | anomaly``) as small bundle-safe wrappers.

Every model is built by :func:`make_model` from ``model.type`` and ``model.params`` and fitted on the
preprocessed training rows.  The wrappers hold only scikit-learn estimators, NumPy arrays and plain
values, so a bundle stores them in skops (never pickle); the autoencoder's torch weights are kept as
NumPy arrays and the network is rebuilt from them when it predicts.

- :class:`ClusterModel` — ``predict(X)`` gives cluster ids.  k-means, mini-batch k-means and Gaussian
  mixtures predict with their own estimator.  Agglomerative clustering and DBSCAN cannot label new
  rows, so the bundle applies a documented rule: agglomerative → the nearest cluster centroid (mean of
  the cluster's training rows, Euclidean); DBSCAN → the label of the nearest core sample when it is
  within ``eps``, else noise (-1).  On the training rows that rule reproduces DBSCAN's own labels for
  core and reachable points (a border point reachable from two clusters may go to either).
- :class:`Embedder` — ``transform(X)`` gives embeddings: PCA or the neural autoencoder's latent codes.
- :class:`AnomalyDetector` — ``score(X)`` (higher = more unusual) and ``predict(X)`` (1 = anomaly):
  isolation forest (score = −``score_samples``; the threshold is sklearn's own ``offset_``, so the
  decisions equal ``IsolationForest.predict``) or the autoencoder's reconstruction error (threshold =
  the training scores' quantile ``1 - contamination``, or ``params.quantile``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from honing.errors import RecipeError, did_you_mean, first_line, with_article

#: Model types of each unsupervised task.
MODELS = {
    "clustering": ("kmeans", "minibatch_kmeans", "agglomerative", "dbscan", "gaussian_mixture"),
    "reduction": ("pca", "autoencoder"),
    "anomaly": ("isolation_forest", "autoencoder"),
}
#: Default model type of each task (model.type: auto).
DEFAULTS = {"clustering": "kmeans", "reduction": "pca", "anomaly": "isolation_forest"}
#: Cluster model types with a number of clusters (params.k).
WITH_K = ("kmeans", "minibatch_kmeans", "agglomerative", "gaussian_mixture")
#: The types a bundle of these models holds, for skops (see honing.loading.TRUSTED_TYPES).
TRUSTED_TYPES = [f"honing.models.unsupervised.{n}" for n in ("ClusterModel", "Embedder", "AnomalyDetector",
                                                                "AutoencoderWeights")]
_AUTOENCODER_KEYS = ("latent", "hidden", "activation", "epochs", "batch_size", "lr", "weight_decay", "patience")


def check_model(task: str, model_type: str) -> str:
    """The model type to train (auto → the task's default); RecipeError when the task has no such type."""
    if model_type == "auto":
        return DEFAULTS[task]
    if model_type not in MODELS[task]:
        raise RecipeError(f"model.type: '{model_type}' is not {with_article(task)} model",
                          did_you_mean(model_type, MODELS[task]))
    return model_type


def _sklearn(kind: str, params: dict, seed: int) -> Any:
    from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans, MiniBatchKMeans
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import GaussianMixture

    k = params.pop("k", None)
    builders = {
        "kmeans": lambda: KMeans(n_clusters=k or 8, random_state=seed, n_init="auto", **params),
        "minibatch_kmeans": lambda: MiniBatchKMeans(n_clusters=k or 8, random_state=seed, n_init="auto", **params),
        "agglomerative": lambda: AgglomerativeClustering(n_clusters=k or 2, **params),
        "gaussian_mixture": lambda: GaussianMixture(n_components=k or 1, random_state=seed, **params),
        "dbscan": lambda: DBSCAN(**params),
        "pca": lambda: PCA(random_state=seed, **params),
        "isolation_forest": lambda: IsolationForest(random_state=seed, **params),
    }
    try:
        return builders[kind]()
    except TypeError as exc:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if unknown:
            raise RecipeError(f"model.params.{unknown[1]}: not a parameter of {kind}",
                              f"see the parameters of scikit-learn's {kind} model") from None
        raise RecipeError(f"model.params: {first_line(exc)}", f"see the parameters of scikit-learn's {kind} model") from None


def _checked_fit(estimator: Any, X: np.ndarray, model_type: str) -> Any:
    """Fit, turning scikit-learn's parameter errors into one-line recipe errors."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        return estimator.fit(X)
    except (InvalidParameterError, ValueError) as exc:
        raise RecipeError(f"model.params: {model_type}: {str(exc).splitlines()[0]}",
                          "fix the parameter in model.params") from None


def _check_components(n: Any, X: np.ndarray) -> None:
    """RecipeError naming model.params.components when a PCA cannot keep ``n`` components of ``X``."""
    most = min(X.shape)
    if isinstance(n, bool) or (isinstance(n, int) and not 1 <= n <= most):
        raise RecipeError(f"model.params.components: {n} components, but these rows allow at most {most} "
                          f"({X.shape[0]} rows × {X.shape[1]} preprocessed features)",
                          "ask for fewer, or for a fraction of the variance to keep, e.g. components: 0.9")
    if isinstance(n, float) and not 0 < n < 1:
        raise RecipeError(f"model.params.components: a fraction of the variance is between 0 and 1 (got {n:g})",
                          "e.g. components: 0.9, or a whole number of components")


def make_model(task: str, model_type: str, params: dict, seed: int, X: np.ndarray) -> Any:
    """The fitted model of ``task`` (``model_type`` already checked) on the preprocessed rows ``X``."""
    params = dict(params)
    if task == "clustering":
        return ClusterModel(model_type).fit(X, params, seed)
    if task == "reduction":
        return Embedder(model_type).fit(X, params, seed)
    return AnomalyDetector(model_type).fit(X, params, seed)


class AutoencoderWeights:
    """A trained :class:`~honing.models.autoencoder.NeuralAutoencoder` as plain arrays (skops-safe);
    the network is rebuilt from them for every call (cheap: a few small layers)."""

    def __init__(self, n_features: int = 0, latent: int = 8, hidden: list | None = None,
                 activation: str = "relu"):
        self.n_features, self.latent, self.hidden, self.activation = n_features, latent, hidden or [64], activation

    @classmethod
    def trained(cls, X: np.ndarray, params: dict, seed: int) -> AutoencoderWeights:
        from honing.models.autoencoder import NeuralAutoencoder

        unknown = sorted(set(params) - set(_AUTOENCODER_KEYS))
        if unknown:
            raise RecipeError(f"model.params: unknown autoencoder parameter '{unknown[0]}'",
                              f"use {', '.join(_AUTOENCODER_KEYS)}")
        net = NeuralAutoencoder(**{**params, "hidden": tuple(params.get("hidden", (64,)))}, random_state=seed).fit(X)
        weights = cls(X.shape[1], net.latent, list(net.hidden), net.activation)
        weights.mean_, weights.scale_ = np.asarray(net.mean_, float), np.asarray(net.scale_, float)
        weights.state_ = {k: v.detach().cpu().numpy().copy() for k, v in net.module_.state_dict().items()}
        weights.history_ = net.history_
        return weights

    def _net_and_input(self, X: np.ndarray) -> tuple[Any, Any]:
        import torch

        from honing.models.nets import build_net

        net = build_net("autoencoder", (self.n_features,), self.n_features,
                        {"latent": self.latent, "hidden": list(self.hidden), "activation": self.activation})
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in self.state_.items()})
        Z = (np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_
        return net.double().eval(), torch.as_tensor(Z, dtype=torch.float64)

    def transform(self, X: np.ndarray) -> np.ndarray:
        import torch

        net, Z = self._net_and_input(X)
        with torch.no_grad():
            return net.encode(Z).numpy()

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Mean squared reconstruction error per row (standardised features)."""
        import torch

        net, Z = self._net_and_input(X)
        with torch.no_grad():
            return ((net(Z) - Z) ** 2).mean(dim=1).numpy()


class ClusterModel:
    """Cluster ids for preprocessed rows (see the module doc for the rule of agglomerative and DBSCAN)."""

    def __init__(self, model_type: str = "kmeans"):
        self.model_type = model_type

    def fit(self, X: np.ndarray, params: dict, seed: int) -> ClusterModel:
        estimator = _checked_fit(_sklearn(self.model_type, params, seed), X, self.model_type)
        labels = estimator.predict(X) if self.model_type == "gaussian_mixture" else estimator.labels_
        self.labels_ = np.asarray(labels, dtype=np.int64)
        if self.model_type == "agglomerative":
            ids = np.unique(self.labels_)
            self.cluster_ids_ = ids
            self.centroids_ = np.vstack([X[self.labels_ == i].mean(axis=0) for i in ids])
        elif self.model_type == "dbscan":
            self.eps_ = float(estimator.eps)
            self.core_ = np.asarray(X[estimator.core_sample_indices_], dtype=float)
            self.core_labels_ = self.labels_[estimator.core_sample_indices_]
        else:
            self.estimator_ = estimator
        self.n_clusters_ = len(set(self.labels_.tolist()) - {-1})
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if self.model_type == "agglomerative":
            return self.cluster_ids_[_nearest(X, self.centroids_)[0]]
        if self.model_type == "dbscan":
            if not len(self.core_):
                return np.full(len(X), -1, dtype=np.int64)
            index, distance = _nearest(X, self.core_)
            return np.where(distance <= self.eps_, self.core_labels_[index], -1).astype(np.int64)
        return np.asarray(self.estimator_.predict(X), dtype=np.int64)


def _nearest(X: np.ndarray, points: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each row of X: the index of the nearest of ``points`` and its Euclidean distance."""
    index, distance = np.empty(len(X), dtype=np.int64), np.empty(len(X))
    squared = (points ** 2).sum(axis=1)
    for start in range(0, len(X), chunk):
        rows = X[start:start + chunk]
        d2 = np.maximum((rows ** 2).sum(axis=1)[:, None] - 2 * rows @ points.T + squared[None, :], 0.0)
        best = d2.argmin(axis=1)
        index[start:start + chunk], distance[start:start + chunk] = best, np.sqrt(d2[np.arange(len(rows)), best])
    return index, distance


class Embedder:
    """Embeddings (columns emb_0 …) of preprocessed rows: PCA or the autoencoder's latent codes."""

    def __init__(self, model_type: str = "pca"):
        self.model_type = model_type

    def fit(self, X: np.ndarray, params: dict, seed: int) -> Embedder:
        if self.model_type == "pca":
            if "components" in params:  # honing's name; n_components is accepted as well
                params["n_components"] = params.pop("components")
            _check_components(params.get("n_components"), X)
            self.estimator_ = _checked_fit(_sklearn("pca", params, seed), X, "pca")
        else:
            self.estimator_ = AutoencoderWeights.trained(X, params, seed)
        self.n_components_ = int(self.transform(X[:1]).shape[1])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator_.transform(np.asarray(X, dtype=float)), dtype=float)


class AnomalyDetector:
    """Anomaly scores (higher = more unusual) and decisions (score > ``threshold_``) of preprocessed rows."""

    def __init__(self, model_type: str = "isolation_forest"):
        self.model_type = model_type

    def fit(self, X: np.ndarray, params: dict, seed: int) -> AnomalyDetector:
        quantile = params.pop("quantile", None)
        contamination = params.pop("contamination", None)
        if quantile is not None and contamination is not None:
            raise RecipeError("model.params: give contamination or quantile, not both",
                              "contamination: 0.05 flags the 5% most unusual training rows (= quantile: 0.95)")
        if quantile is None:
            contamination = 0.05 if contamination is None else contamination
            if not isinstance(contamination, (int, float)) or not 0 < contamination <= 0.5:
                raise RecipeError(f"model.params.contamination: must be in (0, 0.5] (got {contamination!r})",
                                  "the expected fraction of anomalies, e.g. 0.05")
            quantile = 1 - float(contamination)
        elif not isinstance(quantile, (int, float)) or not 0 < quantile < 1:
            raise RecipeError(f"model.params.quantile: must be in (0, 1) (got {quantile!r})", "e.g. 0.95")
        self.quantile_ = float(quantile)
        if self.model_type == "isolation_forest":
            params["contamination"] = round(1 - self.quantile_, 12)
            self.estimator_ = _checked_fit(_sklearn("isolation_forest", params, seed), X, "isolation_forest")
            self.threshold_ = float(-self.estimator_.offset_)  # sklearn: outlier when score_samples < offset_
        else:
            self.estimator_ = AutoencoderWeights.trained(X, params, seed)
            self.threshold_ = float(np.quantile(self.score(X), self.quantile_))
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        scores = self.estimator_.score_samples(X)
        return -np.asarray(scores, dtype=float) if self.model_type == "isolation_forest" else np.asarray(scores)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 for anomalies, 0 for normal rows."""
        return (self.score(X) > self.threshold_).astype(np.int64)
