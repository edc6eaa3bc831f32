"""Metrics of unsupervised models, on the preprocessed features (scikit-learn's implementations).

- clustering: silhouette (higher is better, in [-1, 1]), Davies-Bouldin (lower is better),
  Calinski-Harabasz (higher is better), and, when the recipe names a label column (``data.target``,
  used for evaluation only), the adjusted Rand index and normalised mutual information.  Rows that
  DBSCAN leaves as noise (-1) are left out of the internal metrics (they are no cluster) and counted
  in ``noise_fraction``; the label metrics count noise as one more cluster.  On more than
  :data:`SILHOUETTE_ROWS` rows, the silhouette is computed on a seeded uniform sample of that many
  rows (``silhouette_sampled: true``), as ``sklearn.metrics.silhouette_score(sample_size=…)`` does.
- anomaly: with labels, precision and recall of ``is_anomaly`` and the ROC AUC of the anomaly score,
  the anomaly class being 1 / True when the labels are 0/1 or boolean, else the rarest label.
- reduction: the fraction of variance a linear reconstruction from the embeddings keeps is
  reported by the flow (PCA: ``explained_variance``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: Above this many rows the silhouette is computed on a sample of this size.
SILHOUETTE_ROWS = 5000


def cluster_metrics(X: np.ndarray, labels: np.ndarray, truth: np.ndarray | None = None,
                    seed: int = 0) -> dict[str, Any]:
    """Internal metrics of cluster ids ``labels`` on rows ``X`` (and ARI/NMI against ``truth``)."""
    from sklearn import metrics

    labels = np.asarray(labels)
    clustered = labels != -1
    out: dict[str, Any] = {"rows": len(labels), "clusters": len(set(labels[clustered].tolist())),
                           "noise_fraction": float(1 - clustered.mean()) if len(labels) else 0.0}
    Xc, lc = X[clustered], labels[clustered]
    if 2 <= out["clusters"] < len(lc):
        sampled = len(lc) > SILHOUETTE_ROWS
        out["silhouette"] = float(metrics.silhouette_score(Xc, lc, sample_size=SILHOUETTE_ROWS if sampled else None,
                                                           random_state=seed))
        out["silhouette_sampled"] = sampled
        out["davies_bouldin"] = float(metrics.davies_bouldin_score(Xc, lc))
        out["calinski_harabasz"] = float(metrics.calinski_harabasz_score(Xc, lc))
    else:  # undefined (metrics.NEEDS says why, where they are shown)
        out.update(silhouette=math.nan, davies_bouldin=math.nan, calinski_harabasz=math.nan)
    if truth is not None:
        out["adjusted_rand"] = float(metrics.adjusted_rand_score(truth, labels))
        out["nmi"] = float(metrics.normalized_mutual_info_score(truth, labels))
    return out


def anomaly_labels(values: pd.Series) -> tuple[np.ndarray, str]:
    """Labels as 0/1 (1 = anomaly) and the label taken as the anomaly (see the module doc)."""
    kept = values.dropna()
    distinct = set(kept.tolist())
    if distinct <= {0, 1} or distinct <= {True, False}:
        return values.astype(float).fillna(0).to_numpy().astype(int), "1"
    rarest = kept.astype(str).value_counts().sort_index().idxmin()
    return (values.astype(str) == rarest).to_numpy().astype(int), rarest


def anomaly_metrics(scores: np.ndarray, flagged: np.ndarray, truth: np.ndarray | None) -> dict[str, Any]:
    """The flagged fraction, and with 0/1 ``truth``: precision, recall (of ``flagged``) and ROC AUC (of ``scores``)."""
    from sklearn import metrics

    out: dict[str, Any] = {"rows": len(scores), "anomaly_fraction": float(np.mean(flagged)) if len(scores) else 0.0}
    if truth is not None and len(truth):
        out["precision"] = float(metrics.precision_score(truth, flagged, zero_division=0))
        out["recall"] = float(metrics.recall_score(truth, flagged, zero_division=0))
        if len(set(truth.tolist())) == 2:
            out["roc_auc"] = float(metrics.roc_auc_score(truth, scores))
    return out


def reconstruction_variance(X: np.ndarray, embeddings: np.ndarray) -> float:
    """The fraction of the (centred) variance of X that a least-squares linear map from the embeddings
    reconstructs: PCA's explained variance ratio for PCA, a comparable number for the autoencoder."""
    Xc = X - X.mean(axis=0)
    E = np.column_stack([embeddings, np.ones(len(embeddings))])
    coef, *_ = np.linalg.lstsq(E, Xc, rcond=None)
    total = float((Xc ** 2).sum())
    return float(1 - ((Xc - E @ coef) ** 2).sum() / total) if total else 1.0


def evaluate_frame(bundle: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """``honing evaluate`` for these bundles: the metrics above on ``frame``
    (its label column, the run's ``data.target``, for ARI/NMI or precision/recall/ROC AUC when present)."""
    target = bundle.manifest.get("target")
    labels = frame[target] if target is not None and target in frame.columns else None
    X = bundle.transform(bundle.prepare(frame) if bundle.prepare else frame)
    if bundle.task == "clustering":
        return cluster_metrics(X, bundle.model.predict(X), None if labels is None else labels.astype(str))
    if bundle.task == "anomaly":
        truth = anomaly_labels(labels)[0] if labels is not None else None
        return anomaly_metrics(bundle.model.score(X), bundle.model.predict(X), truth)
    return {"rows": len(X), "reconstructed_variance": reconstruction_variance(X, bundle.model.transform(X))}
