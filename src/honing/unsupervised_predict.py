"""Predictions of clustering, reduction and anomaly bundles (``data.task`` of :mod:`honing.unsupervised_flow`).

Output columns, by task (the manifest's ``outputs`` lists them):

- clustering: ``cluster`` — the cluster id (int; -1 = DBSCAN noise);
- reduction: ``emb_0`` … ``emb_{d-1}`` — the embedding;
- anomaly: ``anomaly_score`` (higher = more unusual) and ``is_anomaly`` (1 when the score is above the
  threshold fitted in training, else 0).

``Bundle.predict(df)`` gives the cluster ids (an array) for clustering and a frame of those columns
otherwise; ``honing predict`` (:func:`predict_file`) writes the columns after the ``--keep`` ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from honing.errors import DataError, ServingError
from honing.progress import SILENT, Progress

UNSUPERVISED_TASKS = ("clustering", "reduction", "anomaly")


def output_columns(task: str, model: Any) -> list[str]:
    """The columns a bundle of ``task`` predicts."""
    if task == "clustering":
        return ["cluster"]
    if task == "anomaly":
        return ["anomaly_score", "is_anomaly"]
    return [f"emb_{i}" for i in range(model.n_components_)]


def outputs(bundle: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The output columns for raw rows ``frame`` (index kept)."""
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


def evaluate_frame(bundle: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """``honing evaluate`` for these bundles: the metrics of honing.evaluation.unsupervised on ``frame``
    (its label column, the run's ``data.target``, for ARI/NMI or precision/recall/ROC AUC when present)."""
    from honing.evaluation import unsupervised as ev

    target = bundle.manifest.get("target")
    labels = frame[target] if target is not None and target in frame.columns else None
    X = bundle.transform(bundle.prepare(frame) if bundle.prepare else frame)
    if bundle.task == "clustering":
        return ev.cluster_metrics(X, bundle.model.predict(X), None if labels is None else labels.astype(str))
    if bundle.task == "anomaly":
        truth = ev.anomaly_labels(labels)[0] if labels is not None else None
        return ev.anomaly_metrics(bundle.model.score(X), bundle.model.predict(X), truth)
    return {"rows": len(X), "reconstructed_variance": ev.reconstruction_variance(X, bundle.model.transform(X))}


def predict_rows(bundle: Any, frame: pd.DataFrame) -> np.ndarray | pd.DataFrame:
    """What ``Bundle.predict`` gives: cluster ids, or the embedding / anomaly columns."""
    out = outputs(bundle, frame)
    return out["cluster"].to_numpy() if bundle.task == "clustering" else out


def predict_frame(bundle: Any, frame: pd.DataFrame, keep: list[str] | None = None) -> pd.DataFrame:
    """The ``keep`` columns of ``frame``, then the output columns."""
    keep = _checked_keep(bundle, keep, frame.columns)
    return pd.concat([frame[keep].copy(), outputs(bundle, frame)], axis=1)


def _checked_keep(bundle: Any, keep: list[str] | None, columns: Any) -> list[str]:
    keep = list(dict.fromkeys(keep or []))
    missing = [c for c in keep if c not in set(map(str, columns))]
    if missing:
        raise DataError(f"--keep: no column {', '.join(missing)} in the data", "check the column names")
    clash = [c for c in keep if c in _columns(bundle)]
    if clash:
        raise DataError(f"--keep {clash[0]}: the output has its own '{clash[0]}' column", "keep another column")
    return keep


def _columns(bundle: Any) -> list[str]:
    return list(bundle.manifest.get("outputs") or output_columns(bundle.task, bundle.model))


def predict_file(bundle: Any, data: str | Path, out: str | Path, *, keep: list[str] | None = None,
                 chunk_rows: int = 50_000, progress: Progress = SILENT) -> int:
    """``honing predict`` for these bundles: like :func:`honing.serving.batch.predict_file` (chunks,
    atomic output), with the output columns of the module doc."""
    from honing.serving import batch
    from honing.serving.batch_read import open_source

    out = batch._checked_out(out, data)
    if chunk_rows < 1:
        raise ServingError(f"chunk_rows {chunk_rows}: must be at least 1", "e.g. 50000")
    keep = list(dict.fromkeys(keep or []))
    clash = [c for c in keep if c in _columns(bundle)]
    if clash:
        raise DataError(f"--keep {clash[0]}: the output has its own '{clash[0]}' column", "keep another column")
    source = open_source(bundle, data, keep, chunk_rows)
    batch._note_extra_columns(source.columns, bundle, progress)
    types = {"cluster": pa.int64(), "is_anomaly": pa.int64()}
    schema = pa.schema([*source.keep_fields, *(pa.field(c, types.get(c, pa.float64())) for c in _columns(bundle))])
    rows, seen = 0, batch._ChunkWarnings()
    with batch._Output(out, schema) as output:
        for frame, kept in source.chunks:
            with seen.watch(), batch._naming(data, rows, len(frame)):
                values = outputs(bundle, frame)
            arrays = [*kept, *(pa.array(values[f.name].to_numpy(), type=f.type) for f in list(schema)[len(kept):])]
            output.write(pa.Table.from_arrays(arrays, schema=schema))
            rows += len(frame)
        if rows == 0:
            raise DataError(f"data file '{data}' has no rows", "the file must have a header and at least one row")
        seen.emit()
    return rows
