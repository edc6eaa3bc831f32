"""``honing tune`` for clustering, reduction and anomaly recipes (called by honing.tuning.objective / space).

A trial fits the sampled recipe's model on the training rows and scores the **validation** split:

- clustering: the silhouette (maximised; a trial whose validation rows fall in fewer than two clusters
  scores -1, the worst silhouette) — or ``evaluate.metric: davies_bouldin`` (minimised),
  ``calinski_harabasz``, ``adjusted_rand`` or ``nmi`` (the last two need labels, ``data.target``);
- anomaly: the ROC AUC of the anomaly score against the labels (``data.target`` is required);
- reduction: the variance a linear map from the embeddings reconstructs.

Without ``tune.space`` a default space is searched: k in 2 … 10 for the models with a k, eps and
min_samples for DBSCAN, n_estimators and max_samples for the isolation forest, the number of
components for PCA, the latent width and learning rate for the autoencoder.  The data is read and
preprocessed once per data section and seed.  The study's best values are refitted by ``honing train``'s
flow like any tuned recipe.
"""

from __future__ import annotations

import math
import time
from typing import Any

from honing.errors import RecipeError
from honing.recipe import Recipe

_CLUSTER_METRICS = {"silhouette": True, "davies_bouldin": False, "calinski_harabasz": True, "adjusted_rand": True,
                    "nmi": True}
_K = {"model.params.k": {"int": [2, 10]}}
DEFAULT_SPACES = {
    "kmeans": _K, "minibatch_kmeans": _K, "agglomerative": _K, "gaussian_mixture": _K,
    "dbscan": {"model.params.eps": {"float": [0.1, 3.0], "log": True}, "model.params.min_samples": {"int": [2, 15]}},
    "isolation_forest": {"model.params.n_estimators": {"int": [50, 400], "log": True},
                         "model.params.max_samples": {"float": [0.1, 1.0]}},
    "pca": {"model.params.components": {"int": [1, 20]}},
    "autoencoder": {"model.params.latent": {"int": [2, 16]}, "model.params.lr": {"float": [1.0e-4, 1.0e-2], "log": True}},
}
_cache: dict[str, Any] = {}


def tune_metric(recipe: Recipe) -> tuple[str, bool]:
    """The objective's metric and whether greater is better (see the module doc)."""
    task = recipe.data.task
    if task == "clustering":
        metric = recipe.evaluate.metric if recipe.evaluate.metric not in (None, "auto") else "silhouette"
        if metric not in _CLUSTER_METRICS:
            raise RecipeError(f"evaluate.metric: '{metric}' is not a clustering metric",
                              f"use one of {', '.join(_CLUSTER_METRICS)}")
        return metric, _CLUSTER_METRICS[metric]
    if task == "anomaly":
        return "roc_auc", True
    return "reconstructed_variance", True


def tune_space(recipe: Recipe) -> tuple:
    """The checked dimensions of ``tune.space`` (default: :data:`DEFAULT_SPACES` of the model type)."""
    from honing.models.unsupervised import check_model
    from honing.recipe import validate_recipe
    from honing.tuning.space import check_space, parse_space

    task = recipe.data.task
    model_type = check_model(task, recipe.model.type)
    metric, _ = tune_metric(recipe)
    if metric in ("adjusted_rand", "nmi", "roc_auc") and recipe.data.target is None \
            and not str(recipe.data.source).startswith("builtin:"):
        raise RecipeError(f"tune: the {metric} objective needs labels, and data.target is not set",
                          "set data.target to the label column (used for evaluation only)")
    if recipe.tune.space is None and model_type not in DEFAULT_SPACES:
        raise RecipeError(f"tune.space: {model_type} has no default space", "give tune.space")
    dims = parse_space(recipe.tune.space if recipe.tune.space is not None else DEFAULT_SPACES[model_type])

    def check(raw: dict) -> None:
        sample = validate_recipe(raw)
        check_model(task, sample.model.type)

    check_space(dims, recipe.model_dump(mode="json"), check)
    return dims


def tune_trial(recipe: Recipe, trial: Any = None) -> tuple[tuple[float, ...], dict[str, Any]]:
    """One trial: the model fitted on the training rows, scored on the validation rows."""
    from honing.models import unsupervised
    from honing.progress import SILENT
    from honing.unsupervised_flow import _metrics, choose_k

    data = _prepared(recipe)
    if "validation" not in data.X:
        raise RecipeError("tune: trials are scored on the validation split, which is empty",
                          "set data.split.validation > 0")
    task, start = recipe.data.task, time.perf_counter()
    model_type = unsupervised.check_model(task, recipe.model.type)
    params = dict(recipe.model.params)
    if task == "clustering":
        params, _ = choose_k(model_type, params, data.X["train"], recipe.seed, SILENT)
    model = unsupervised.make_model(task, model_type, params, recipe.seed, data.X["train"])
    validation = _metrics(task, model_type, model, data, recipe.seed)["validation"]
    metric, greater = tune_metric(recipe)
    value = validation.get(metric, math.nan)
    if not math.isfinite(value):
        if metric not in ("silhouette", "davies_bouldin"):
            raise ValueError(f"the validation {metric} is not a number (labels missing, or one cluster?)")
        value = -1.0 if greater else math.inf  # fewer than two clusters: the worst score
    attrs = {"model": model_type, "validation": {k: v for k, v in validation.items() if isinstance(v, float)},
             "fit_seconds": round(time.perf_counter() - start, 3), "epochs": 0, "refit": {}}
    return (float(value),), attrs


def _prepared(recipe: Recipe) -> Any:
    """The recipe's data, read, split and preprocessed once per data section and seed."""
    from honing.unsupervised_flow import load_unsupervised

    key = f"{recipe.seed}:{recipe.data.model_dump_json()}"
    if key not in _cache:
        data = load_unsupervised(recipe)
        data.fit_preprocessing(recipe)
        _cache.clear()  # one data section at a time: a space over data.* keys reads again
        _cache[key] = data
    return _cache[key]
