"""What clustering, reduction and anomaly bundles predict (``data.task`` of :mod:`honing.unsupervised_flow`).

Output columns, by task (the manifest's ``outputs`` lists them):

- clustering: ``cluster`` — the cluster id (int; -1 = DBSCAN noise);
- reduction: ``emb_0`` … ``emb_{d-1}`` — the embedding;
- anomaly: ``anomaly_score`` (higher = more unusual) and ``is_anomaly`` (1 when the score is above the
  threshold fitted in training, else 0).

``Bundle.predict(df)`` gives the cluster ids (an array) for clustering and a frame of those columns
otherwise; ``honing predict`` writes the columns after the ``--keep`` ones
(:mod:`honing.serving.unsupervised_batch`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def output_columns(task: str, model: Any) -> list[str]:
    """The columns a bundle of ``task`` predicts."""
    if task == "clustering":
        return ["cluster"]
    if task == "anomaly":
        return ["anomaly_score", "is_anomaly"]
    return [f"emb_{i}" for i in range(model.n_components_)]


def outputs(bundle: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The output columns for raw rows ``frame`` (index kept)."""
    if len(frame) == 0:  # nothing to preprocess (an imputer refuses 0 rows)
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("cluster", "is_anomaly") else "float64")
                             for c in columns(bundle)}, index=frame.index)
    X = bundle.transform(bundle.prepare(frame) if bundle.prepare else frame)
    model = bundle.model
    if bundle.task == "clustering":
        return pd.DataFrame({"cluster": model.predict(X)}, index=frame.index)
    if bundle.task == "anomaly":
        scores = model.score(X)
        return pd.DataFrame({"anomaly_score": scores, "is_anomaly": (scores > model.threshold_).astype(np.int64)},
                            index=frame.index)
    embeddings = model.transform(X)
    return pd.DataFrame(embeddings, columns=[f"emb_{i}" for i in range(embeddings.shape[1])], index=frame.index)


def encoded_scores(bundle: Any, X: np.ndarray) -> np.ndarray:
    """What ``Bundle.scores`` (and so ``honing serve``'s ``predictions``) gives on preprocessed rows: the
    cluster ids, the embeddings (one list per row) or the anomaly scores (``is_anomaly`` is a score above
    the manifest's ``metrics.threshold``)."""
    if bundle.task == "clustering":
        return np.asarray(bundle.model.predict(X), dtype=float)
    if bundle.task == "anomaly":
        return np.asarray(bundle.model.score(X), dtype=float)
    return np.asarray(bundle.model.transform(X), dtype=float)


def predict_rows(bundle: Any, frame: pd.DataFrame) -> np.ndarray | pd.DataFrame:
    """What ``Bundle.predict`` gives: cluster ids, or the embedding / anomaly columns."""
    out = outputs(bundle, frame)
    return out["cluster"].to_numpy() if bundle.task == "clustering" else out


def columns(bundle: Any) -> list[str]:
    """The output columns of a loaded bundle."""
    return list(bundle.manifest.get("outputs") or output_columns(bundle.task, bundle.model))
