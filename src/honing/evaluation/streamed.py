"""Evaluation of a model trained on a streamed table (:mod:`honing.stream_flow`).

:func:`evaluate_stream` predicts the validation and test rows in one more pass over the file, exactly
as the saved bundle predicts them (the fitted preprocessor, then the model), keeps the targets and
predictions (a few numbers per held-out row, not the rows), and scores them with the same metrics as
the in-memory evaluation (:func:`honing.evaluation.metrics.compute_metrics`, confusion counts).
For the test split it adds the confusion analysis, the ROC / precision-recall / reliability plots of
a classifier and the residuals of a regressor.  What needs the test rows' features (worst rows,
slices, permutation importance, partial dependence) or resampling every test row (bootstrap
intervals) is left out when streaming.  :func:`baseline_scores` scores the dummy baseline (the class
priors of the training rows, or their mean) on the same predictions' targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from honing.bundle.predictor import Bundle
from honing.data.stream_batches import RowStream
from honing.data.streaming import SPLITS
from honing.evaluation import calibration, errors
from honing.evaluation.metrics import compute_metrics, confusion

#: Rows predicted at a time in the evaluation pass.
EVAL_BATCH = 8192


@dataclass
class StreamEvaluation:
    """Held-out targets and predictions per split, their metrics, and the plots drawn."""

    targets: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    calibrator: Any = None  # evaluate.calibrate, fitted on the validation rows
    decision: dict = field(default_factory=dict)  # evaluate.threshold's, chosen on the validation rows
    groups: dict[str, pd.DataFrame] = field(default_factory=dict)  # the stream's group columns, per split
    before: dict[str, np.ndarray] = field(default_factory=dict)  # predictions before audit.mitigate


def evaluate_stream(bundle: Bundle, stream: RowStream, rows: dict[str, int], classes: list | None,
                    plots: Path, cfg: Any = None, mitigate: str | None = None) -> StreamEvaluation:
    """Predict every row of ``stream`` (validation and test, ``with_split``; at most ``rows[split]``
    rows each, in arrays allocated once) and score each split; the values of the stream's ``groups``
    columns are kept beside (e.g. for the fairness audit).  With ``cfg`` (``evaluate:``), a
    classifier's probabilities are calibrated and its threshold chosen on the validation rows, as in
    memory; the evaluation then holds the calibrator and decision the bundle is saved with.  With
    ``mitigate`` (a group column of the stream: ``audit.mitigate: threshold``), the decision is one
    threshold per group, chosen on the validation rows, and the predictions before are kept."""
    k = len(classes) if classes is not None else 0
    kept = {code: _Held(rows.get(SPLITS[code], 0), k, stream.groups) for code in (1, 2)}
    for xb, yb, sb, *groups in stream.batches(0):
        X, y, codes = xb.numpy(), yb.numpy(), sb.numpy()
        values, proba = bundle.scores(X)
        for code, held in kept.items():
            mask = codes == code
            if mask.any():
                held.put(y[mask], values[mask], None if proba is None else proba[mask],
                         [np.asarray(g)[mask] for g in groups])
    out = StreamEvaluation()
    for code, held in kept.items():
        if held.filled:
            y, values, proba = held.arrays()
            out.targets[SPLITS[code]], out.predictions[SPLITS[code]] = y, (values, proba)
            out.groups[SPLITS[code]] = held.group_frame()
    if cfg is not None and classes is not None and (cfg.calibrate != "none" or cfg.threshold != "none"):
        _fit_decision(bundle, out, classes, cfg)
    elif mitigate is not None:
        _fit_group_thresholds(bundle, out, mitigate)
    for split, (values, proba) in out.predictions.items():
        out.metrics[split] = split_scores(bundle.task, out.targets[split], values, proba, classes)
    if "test" in out.targets:
        out.metrics["errors"] = _test_analysis(bundle.task, out, classes, plots)
    return out


def _fit_decision(bundle: Bundle, out: StreamEvaluation, classes: list, cfg: Any) -> None:
    """Calibrate / choose the threshold on the held validation probabilities, then decide every held
    split again from its probabilities, calibrated as the saved bundle will (no second pass)."""
    from honing.evaluation.evaluate import fit_decision

    raw = {split: proba for split, (_, proba) in out.predictions.items()}
    out.calibrator, out.decision, fitted = fit_decision(raw, out.targets, classes, cfg)
    out.metrics.update(fitted)
    deciding = Bundle(".", {**bundle.manifest, "decision": out.decision}, bundle.preprocessor, bundle.model,
                      calibrator=out.calibrator)
    for split, proba in raw.items():
        proba = out.calibrator.transform(proba) if out.calibrator is not None else proba
        out.predictions[split] = deciding.decide(proba), proba


def _fit_group_thresholds(bundle: Bundle, out: StreamEvaluation, column: str) -> None:
    """``audit.mitigate: threshold`` on the held validation probabilities, then every held split
    decided again by its group's threshold, as the saved bundle will (no second pass)."""
    from honing.evaluation.fairness_check import group_thresholds

    out.decision = group_thresholds(out.predictions["validation"][1], out.targets["validation"],
                                    out.groups["validation"][column], column)
    deciding = Bundle(".", {**bundle.manifest, "decision": out.decision}, bundle.preprocessor, bundle.model)
    for split, (values, proba) in out.predictions.items():
        out.before[split] = values
        out.predictions[split] = deciding.decide(proba, out.groups[split]), proba


class _Held:
    """Targets, predictions and probabilities of one split, in arrays of its row count, and the
    values of the ``groups`` columns (text as per-batch categoricals: a few bytes a row)."""

    def __init__(self, rows: int, classes: int, groups: tuple[str, ...] = ()):
        self.y = np.empty(rows, dtype=np.int64 if classes else np.float64)
        self.values = np.empty(rows, dtype=self.y.dtype)
        self.proba = np.empty((rows, classes)) if classes else None
        self.filled = 0
        self.groups: dict[str, list[Any]] = {name: [] for name in groups}

    def put(self, y: np.ndarray, values: np.ndarray, proba: np.ndarray | None, groups: list[np.ndarray]) -> None:
        end = self.filled + len(y)
        if end > len(self.y):
            raise AssertionError(f"the evaluation pass gave more rows ({end}) than the statistics pass counted")
        self.y[self.filled: end], self.values[self.filled: end] = y, values
        if self.proba is not None:
            self.proba[self.filled: end] = proba
        for parts, part in zip(self.groups.values(), groups, strict=True):
            parts.append(pd.Categorical(part) if part.dtype == object else part)
        self.filled = end

    def group_frame(self) -> pd.DataFrame:
        """The group columns' values of the held rows, in their order (text as object columns)."""
        columns = {}
        for name, parts in self.groups.items():
            column = pd.concat([pd.Series(p) for p in parts], ignore_index=True)
            columns[name] = column.astype(object) if isinstance(column.dtype, pd.CategoricalDtype) else column
        return pd.DataFrame(columns, index=pd.RangeIndex(self.filled))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        n = self.filled
        return self.y[:n], self.values[:n], None if self.proba is None else self.proba[:n]


def split_scores(task: str, y: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None,
                 classes: list | None) -> dict[str, Any]:
    """The metrics of one split (classification: with its confusion counts), as the in-memory evaluation."""
    n_classes = None if classes is None else len(classes)
    scores: dict[str, Any] = compute_metrics(task, y, predicted, proba, n_classes)
    if task == "classification":
        scores["confusion_matrix"] = errors.confusion_analysis(y, predicted, classes)["counts"]
    return scores


def baseline_scores(task: str, targets: dict[str, np.ndarray], class_counts: np.ndarray | None,
                    y_mean: float) -> dict[str, dict[str, Any]]:
    """The dummy baseline's metrics on each held-out split: the training class frequencies as
    probabilities (the most frequent class predicted), or the training mean."""
    out: dict[str, dict[str, Any]] = {}
    for split, y in targets.items():
        if task == "classification":
            prior = class_counts / class_counts.sum()
            predicted = np.full(len(y), int(np.argmax(prior)))
            proba = np.tile(prior, (len(y), 1))
            scores: dict[str, Any] = compute_metrics(task, y, predicted, proba, len(prior))
            scores["confusion_matrix"] = confusion(y, predicted, len(prior))
        else:
            scores = compute_metrics(task, y, np.full(len(y), y_mean), None)
        out[split] = scores
    return out


def _test_analysis(task: str, out: StreamEvaluation, classes: list | None, plots: Path) -> dict[str, Any]:
    from honing.report import evaluation_plots as draw

    y = out.targets["test"]
    predicted, proba = out.predictions["test"]
    if task == "classification":
        analysis = {"confusion": errors.confusion_analysis(y, predicted, classes)}
        out.plots.append(draw.confusion_matrix_plot(analysis["confusion"], plots / "confusion_matrix.png",
                                                    "confusion matrix (test)"))
        out.plots.append(draw.roc_plot(y, proba, classes, plots / "roc.png", "ROC curve (test)"))
        out.plots.append(draw.pr_plot(y, proba, classes, plots / "pr.png", "precision-recall curve (test)"))
        analysis["reliability"] = calibration.reliability(y, proba)
        out.plots.append(draw.reliability_plot(analysis["reliability"], plots / "reliability.png",
                                               "reliability (test)"))
        if "decision" in out.metrics:  # evaluate.threshold's curve
            decision = out.metrics["decision"]
            out.plots.append(draw.threshold_plot(decision["curve"], decision, plots / "threshold.png",
                                                 "threshold (validation)"))
        return analysis
    residuals = errors.residual_analysis(pd.DataFrame(index=range(len(y))), y, predicted)
    out.plots.append(draw.residual_plot(residuals, plots / "residuals.png", "residuals (test)"))
    return {"residuals": residuals}
