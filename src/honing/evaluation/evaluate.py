"""The evaluation stage of ``honing train``: what the chosen model does on held-out data.

It calibrates the probabilities and picks the decision threshold on the validation split (when the
recipe asks), then scores validation and test exactly as the saved bundle will predict, with
bootstrap intervals on test, error analysis, explanations, and their plots.  Cross-validation of
the chosen model against the dummy baseline on the same folds is :func:`cross_validation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from honing.bundle.predictor import Bundle
from honing.data.balance import balance_training
from honing.data.dataset import Dataset
from honing.data.split import time_order
from honing.errors import RecipeError, did_you_mean
from honing.evaluation import calibration, errors, threshold
from honing.evaluation.crossval import CVResult, compare, cross_validate, fold_indices, folds_id, time_folds
from honing.evaluation.intervals import bootstrap_intervals
from honing.evaluation.metrics import compute_metrics, primary_metric
from honing.progress import SILENT, Progress
from honing.recipe import Recipe


@dataclass
class Evaluation:
    """Metrics and analyses for metrics.json, and what the bundle keeps to predict the same way."""

    metrics: dict[str, Any]
    decision: dict[str, Any] = field(default_factory=dict)  # the manifest's "decision"
    calibrator: Any = None
    plots: list[Path] = field(default_factory=list)
    #: each held-out split's predictions (labels or values, probabilities) as the bundle makes them
    predictions: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)


def check_config(recipe: Recipe, dataset: Dataset) -> None:
    """RecipeError when the ``evaluate:`` section cannot apply to this dataset (before training)."""
    check_evaluate(recipe.evaluate, dataset.task, dataset.n_classes, len(dataset.splits["validation"]))


def check_evaluate(cfg: Any, task: str, n_classes: int | None, validation_rows: int) -> None:
    """RecipeError when ``evaluate.calibrate`` / ``evaluate.threshold`` (``cfg``) cannot apply to a
    ``task`` with ``n_classes`` classes and ``validation_rows`` validation rows."""
    for key, value in (("calibrate", cfg.calibrate), ("threshold", cfg.threshold)):
        if value == "none":
            continue
        if task != "classification":
            raise RecipeError(f"evaluate.{key}: {value} is for classifiers, and this is regression",
                              f"set evaluate.{key}: none")
        if not validation_rows:
            raise RecipeError(f"evaluate.{key} is fitted on the validation split, which is empty",
                              f"set data.split.validation > 0, or evaluate.{key}: none")
    if cfg.threshold != "none" and n_classes != 2:
        raise RecipeError(f"evaluate.threshold: {cfg.threshold} is for binary classifiers; "
                          f"this target has {n_classes} classes", "set evaluate.threshold: none")


def check_refit(recipe: Recipe) -> None:
    """RecipeError when ``tune.refit`` (train + validation, no validation split left) meets a step
    that is fitted on the validation split."""
    fitted = [f"evaluate.{k}" for k in ("calibrate", "threshold") if getattr(recipe.evaluate, k) != "none"]
    fitted += ["audit.mitigate: threshold"] if recipe.audit.mitigate == "threshold" else []
    if recipe.tune.refit and fitted:
        raise RecipeError(f"tune.refit: the best recipe is refitted on train + validation, and {fitted[0]} "
                          "is fitted on the validation split", "set tune.refit: false to keep a validation split")


def predictor(model: Any, preprocessor: Any, dataset: Dataset, decision: dict | None = None,
              calibrator: Any = None) -> Bundle:
    """An in-memory bundle: the model predicting exactly as its saved bundle will."""
    manifest = {"task": dataset.task, "classes": dataset.classes, "decision": decision or {}}
    return Bundle(".", manifest, preprocessor, model, calibrator=calibrator)


def evaluate(model: Any, preprocessor: Any, dataset: Dataset, data: dict, recipe: Recipe, plots: Path,
             progress: Progress = SILENT, decision: dict | None = None) -> Evaluation:
    """Calibrate, choose the threshold, score the held-out splits, and analyse the test errors.
    A ``decision`` already made (per-group thresholds of ``audit.mitigate: threshold``) is kept."""
    cfg = recipe.evaluate
    check_config(recipe, dataset)
    out = Evaluation({}, decision=decision or {})
    held_out = [s for s in ("validation", "test") if s in data]
    raw = {}  # a classifier's uncalibrated probabilities: each split is predicted once
    if dataset.task == "classification":
        plain = predictor(model, preprocessor, dataset)
        raw = {s: plain.predict_proba_encoded(data[s][0]) for s in held_out}
        if not decision:
            targets = {s: data[s][1] for s in held_out}
            out.calibrator, out.decision, fitted = fit_decision(raw, targets, dataset.classes, cfg)
            out.metrics.update(fitted)
    bundle = predictor(model, preprocessor, dataset, out.decision, out.calibrator)
    for split in held_out:
        if split in raw:
            proba = out.calibrator.transform(raw[split]) if out.calibrator is not None else raw[split]
            out.predictions[split] = bundle.decide(proba, dataset.splits[split]), proba
        else:
            out.predictions[split] = bundle.scores(data[split][0], dataset.splits[split])
        out.metrics[split] = _scores(dataset, data[split][1], *out.predictions[split])
    if "test" in data:
        with progress.step("analysing the test predictions"):
            out.metrics.update(_test_analysis(bundle, dataset, data, recipe, plots, out))
    return out


def _scores(dataset: Dataset, y: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None) -> dict[str, Any]:
    scores: dict[str, Any] = compute_metrics(dataset.task, y, y_pred, proba, dataset.n_classes)
    if dataset.task == "classification":
        scores["confusion_matrix"] = errors.confusion_analysis(y, y_pred, dataset.classes)["counts"]
    return scores


def fit_decision(raw: dict[str, np.ndarray], targets: dict[str, np.ndarray], classes: list, cfg: Any
                 ) -> tuple[Any, dict, dict]:
    """``evaluate.calibrate`` and ``evaluate.threshold`` fitted on a classifier's uncalibrated
    probabilities of the validation split (``raw``, by split; ``targets``: the class codes): the
    calibrator (or None), the decision ({} for the argmax) and their reports for metrics.json
    (``calibration``: the test split's reliability before and after; ``decision``: the threshold
    chosen, its curve)."""
    calibrator, metrics = None, {"calibration": {}, "decision": {}}
    if cfg.calibrate != "none":
        calibrator = calibration.Calibrator(cfg.calibrate).fit(raw["validation"], targets["validation"])
        metrics["calibration"] = {"method": cfg.calibrate}
        if "test" in raw:
            metrics["calibration"]["before"] = calibration.reliability(targets["test"], raw["test"])
            metrics["calibration"]["after"] = calibration.reliability(targets["test"],
                                                                      calibrator.transform(raw["test"]))
    decision: dict = {}
    if cfg.threshold != "none":
        proba = calibrator.transform(raw["validation"]) if calibrator is not None else raw["validation"]
        y_val, p1 = targets["validation"], proba[:, 1]
        chosen = threshold.choose_threshold(y_val, p1, cfg.threshold, cfg.threshold_value)
        metrics["decision"] = {**chosen, "positive_class": str(classes[1]),
                               "curve": threshold.threshold_curve(y_val, p1)}
        decision = {"threshold": chosen["threshold"], "method": cfg.threshold}
    return calibrator, decision, metrics


def _test_analysis(bundle: Bundle, dataset: Dataset, data: dict, recipe: Recipe, plots: Path,
                   out: Evaluation) -> dict[str, Any]:
    from honing.report import evaluation_plots as draw

    cfg, task = recipe.evaluate, dataset.task
    y = data["test"][1]
    y_pred, proba = out.predictions["test"]
    features = dataset.features("test")
    result: dict[str, Any] = {}
    if cfg.bootstrap:
        intervals = bootstrap_intervals(task, y, y_pred, proba, dataset.n_classes, resamples=cfg.bootstrap,
                                        confidence=cfg.confidence, seed=recipe.seed)
        result["intervals"] = {"confidence": cfg.confidence, "resamples": cfg.bootstrap, "test": intervals}
    analysis: dict[str, Any] = {
        "worst_rows": errors.worst_rows(features, y, y_pred, task, dataset.classes, proba, n=cfg.worst_rows),
    }
    metric = recipe.evaluate.metric
    if task == "classification":
        analysis["confusion"] = errors.confusion_analysis(y, y_pred, dataset.classes)
        analysis["slices"] = errors.slice_metrics(features, y, y_pred, task, proba, dataset.n_classes,
                                                  metric=metric, flag_gap=cfg.slice_gap)
        out.plots.append(draw.confusion_matrix_plot(analysis["confusion"], plots / "confusion_matrix.png",
                                                    "confusion matrix (test)"))
        out.plots.append(draw.roc_plot(y, proba, dataset.classes, plots / "roc.png", "ROC curve (test)"))
        out.plots.append(draw.pr_plot(y, proba, dataset.classes, plots / "pr.png", "precision-recall curve (test)"))
        reliability = out.metrics.get("calibration", {}).get("after") or calibration.reliability(y, proba)
        analysis["reliability"] = reliability
        out.plots.append(draw.reliability_plot(reliability, plots / "reliability.png", "reliability (test)"))
        if out.metrics.get("decision"):
            out.plots.append(draw.threshold_plot(out.metrics["decision"]["curve"], out.metrics["decision"],
                                                 plots / "threshold.png", "threshold (validation)"))
    else:
        analysis["slices"] = errors.slice_metrics(features, y, y_pred, task, metric=metric, flag_gap=cfg.slice_gap)
        analysis["residuals"] = errors.residual_analysis(features, y, y_pred, flag_gap=cfg.slice_gap)
        out.plots.append(draw.residual_plot(analysis["residuals"], plots / "residuals.png", "residuals (test)"))
    result["errors"] = analysis
    if cfg.explain:
        result["explain"] = _explain(bundle, dataset, features, y, recipe, plots, out)
    return result


def _explain(bundle: Bundle, dataset: Dataset, features: Any, y: np.ndarray, recipe: Recipe, plots: Path,
             out: Evaluation) -> dict[str, Any]:
    from honing.evaluation import explain
    from honing.report import explain_plots

    task = dataset.task
    frame_model = explain.FrameModel(bundle.transform, bundle.model, task, dataset.n_classes)
    importance = explain.permutation_importances(frame_model, features, y, task, recipe.evaluate.metric,
                                                 repeats=recipe.evaluate.importance_repeats, seed=recipe.seed,
                                                 n_classes=dataset.n_classes)
    # a column without a value in these rows (a tiny test split) has no curve to draw
    top = [row["feature"] for row in importance if features[row["feature"]].notna().any()][:3]
    dependence = [explain.partial_dependence(frame_model, features, name, task=task) for name in top]
    out.plots.append(explain_plots.importance_plot(importance, plots / "importance.png",
                                                   "permutation importance (test)"))
    if dependence:
        out.plots.append(explain_plots.partial_dependence_plot(dependence, plots / "partial_dependence.png",
                                                               "partial dependence (test)"))
    return {"importance": importance, "partial_dependence": dependence}


def cross_validation(recipe: Recipe, dataset: Dataset, model_type: str, params: dict,
                     progress: Progress = SILENT) -> dict[str, Any]:
    """``evaluate.cv``: the chosen model and the dummy baseline on the same repeated K folds of
    train + validation, preprocessing refitted inside each fold; their paired comparison."""
    import pandas as pd

    from honing.data.preprocess import build_preprocessor, coerce_features
    from honing.models.classic import make_baseline, make_model, neural_options

    cv, task = recipe.evaluate.cv, dataset.task
    rows = pd.concat([dataset.splits["train"], dataset.splits["validation"]], ignore_index=True)
    y = dataset.labels_of(rows)
    group = cv.group or recipe.data.split.group
    if group is not None and group not in rows.columns:
        raise RecipeError(f"evaluate.cv.group: no column '{group}' in {recipe.data.source}",
                          did_you_mean(group, list(map(str, rows.columns))))
    stratify = cv.stratify if cv.stratify is not None else task == "classification"
    time = recipe.data.split.time if cv.group is None else None
    if time:  # the split is in time order: so are the folds (no fold trains on rows after the ones it tests)
        folds = time_folds(time_order(rows[time]), cv.folds, cv.repeats)
    else:
        folds = fold_indices(len(rows), y, folds=cv.folds, repeats=cv.repeats, stratify=stratify and group is None,
                             groups=rows[group].to_numpy() if group else None, seed=recipe.seed)
    X = coerce_features(rows, dataset.schema)

    def model_maker(make: Any) -> Any:
        return lambda: (build_preprocessor(dataset.schema, recipe.data), make())

    def balance(Z: Any, labels: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray | None]:
        """data.balance on a fold's training rows, as training balances the training split."""
        data, weights = balance_training({"train": (Z, labels)}, recipe.data.balance, task, recipe.seed)
        return (*data["train"], weights)

    metric, greater = primary_metric(task, recipe.evaluate.metric)
    with progress.step(f"cross-validating {model_type} ({cv.folds} folds × {cv.repeats})"):
        chosen = cross_validate(X, y, model_maker(lambda: make_model(model_type, task, params, recipe.seed, recipe.train,
                                                                     neural_options(recipe))),
                                folds, task, dataset.n_classes, balance=balance if recipe.data.balance != "none" else None)
        baseline = cross_validate(X, y, model_maker(lambda: make_baseline(task, recipe.seed)), folds, task,
                                  dataset.n_classes)
    return {"folds": cv.folds, "repeats": cv.repeats, "group": group, "time": time, "folds_id": folds_id(folds),
            "data_fingerprint": dataset.fingerprint, "model": chosen.to_dict(recipe.evaluate.confidence),
            "baseline": baseline.to_dict(recipe.evaluate.confidence),
            "comparison": compare(chosen, baseline, metric, greater)}


def compare_runs(a: dict, b: dict, names: tuple[str, str], metric: str | None = None) -> dict[str, Any]:
    """The paired test of two runs' cross-validation (their metrics.json), which must share folds."""
    for run, name in ((a, names[0]), (b, names[1])):
        if not run.get("cv"):
            raise RecipeError(f"{name}: the run has no cross-validation to compare",
                              "train it with evaluate.cv: {folds: 5} (both runs on the same data and seed)")
    if a["cv"]["folds_id"] != b["cv"]["folds_id"] or a["cv"]["data_fingerprint"] != b["cv"]["data_fingerprint"]:
        raise RecipeError(f"{names[0]} and {names[1]} were cross-validated on different folds",
                          "train both on the same data with the same seed and evaluate.cv")
    name, greater = primary_metric(a["task"], metric or a["selection_metric"])
    first, second = CVResult.from_dict(a["cv"]["model"]), CVResult.from_dict(b["cv"]["model"])
    return {"metric": name, "runs": list(names), "models": [a["model"], b["model"]],
            "summary": [first.summary().get(name), second.summary().get(name)],
            "baseline": a["cv"]["baseline"]["summary"].get(name),
            "vs_baseline": [a["cv"]["comparison"]["p_value"], b["cv"]["comparison"]["p_value"]],
            "comparison": compare(first, second, name, greater)}
