"""``honing monitor``: is a served model still fit for its data?  Reads the prediction log of one bundle
over a time window and judges it against the bundle's training reference profile and the recipe's
``monitor:`` thresholds.

Checks (each is reported; the ones with a threshold can breach):

* data drift per feature (PSI with training's bins, KS or chi-square, missing-value rate change;
  :mod:`honing.serving.drift`), judged only with at least ``monitor.min_rows`` logged rows;
* prediction drift (the predicted classes' or values' distribution against the one on training's
  held-out split);
* performance on the rows that received feedback labels, with the same metrics as training
  (``monitor.performance: {min_accuracy: …}``), and fairness per sensitive group (``audit.sensitive``);
* latency percentiles per request (``monitor.latency_p99_ms``).

:func:`trigger` runs ``monitor.on_breach`` (the retraining command) without a shell and logs it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from honing.audit.fairness import model_fairness
from honing.bundle import Bundle
from honing.bundle.manifest import UNSUPERVISED_TASKS
from honing.bundle.predictor import group_keys
from honing.data.dataset import encode_target
from honing.errors import HoningError, MonitorError, did_you_mean, with_article
from honing.evaluation.metrics import compute_metrics
from honing.recipe import MonitorConfig
from honing.serving import drift
from honing.serving.log_store import log_event, masked, read_predictions
from honing.serving.profile import profile_problem

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: The fewest labelled rows for per-group fairness to be reported.
MIN_FAIRNESS_ROWS = 20


def window_seconds(window: str) -> float | None:
    """``30m`` / ``12h`` / ``1d`` / ``2w`` → seconds; ``all`` → None."""
    if window == "all":
        return None
    match = re.fullmatch(r"([0-9]+)([smhdw])", window.strip())
    if not match:
        raise MonitorError(f"--window {window}: not a duration", "use e.g. 30m, 12h, 1d, 2w, or all")
    return float(match[1]) * _UNITS[match[2]]


@dataclass
class MonitorResult:
    """What :func:`run` found: every check's numbers, the breaches and notes."""

    model: dict[str, Any]
    log: str
    window: str
    since: float | None
    until: float
    thresholds: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    requests: int = 0
    labelled: int = 0
    drift: list[dict] = field(default_factory=list)
    prediction: dict | None = None
    performance: dict | None = None
    fairness: dict | None = None
    latency: dict | None = None
    breaches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    trigger: dict | None = None

    @property
    def breached(self) -> bool:
        """True when any check passed its threshold."""
        return bool(self.breaches)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the JSON output of ``honing monitor``)."""
        return {**asdict(self), "breached": self.breached}


def run(bundle: Bundle, config: MonitorConfig, *, now: float | None = None,
        all_versions: bool = False) -> MonitorResult:
    """Judge the logged predictions of ``bundle`` within ``config.window`` (before ``now``)."""
    if not config.log:
        raise MonitorError("monitor.log is null: there is no prediction log to read",
                           "give the log the server wrote to with --log URL")
    until = time.time() if now is None else now
    span = window_seconds(config.window)
    since = None if span is None else until - span
    version = bundle.version
    result = MonitorResult({"name": bundle.recipe.get("name"), "version": version,
                            "type": bundle.manifest.get("model_type"), "task": bundle.task},
                           masked(config.log), config.window, since, until, config.drift.model_dump())
    frame = read_predictions(config.log, since=since, until=until, model_version=None if all_versions else version)
    result.rows, result.requests = len(frame), int(frame["request_id"].nunique()) if len(frame) else 0
    if frame.empty:
        result.notes.append(f"no predictions of version {version} were logged in the window ({config.window})")
        return result
    _drift(result, bundle, frame, config)
    _performance(result, bundle, frame, config)
    _latency(result, frame, config)
    return result


def _drift(result: MonitorResult, bundle: Bundle, frame: pd.DataFrame, config: MonitorConfig) -> None:
    profile = bundle.manifest.get("reference")
    if not profile and bundle.task in ("generation", "reinforcement"):  # text, images or observations: no profile
        result.notes.append(f"{with_article(bundle.task)} bundle ({bundle.manifest.get('model_type')}) has no feature profile: "
                            "feature and prediction drift do not apply to it")
        return
    if not profile:
        result.notes.append("the bundle has no training reference profile (trained by an older honing): "
                            "drift is not measured; retrain to get one")
        return
    problem = profile_problem(profile)
    if problem is not None:
        raise MonitorError(f"{bundle.path}: the manifest's reference profile is broken ({problem})",
                           "retrain the model to rebuild its reference profile")
    result.drift = drift.judge(drift.feature_drift(profile, frame), config.drift, config.min_rows)
    for row in result.drift:
        if row.get("drifted"):
            result.breaches.append(f"drift in '{row['feature']}': {'; '.join(row['reasons'])}")
    predicted = drift.prediction_drift(profile, frame["prediction"])
    if predicted is not None:
        result.prediction = drift.judge([{"feature": "prediction", **predicted}], config.drift, config.min_rows)[0]
        if result.prediction.get("drifted"):
            result.breaches.append(f"prediction drift: {'; '.join(result.prediction['reasons'])}")
    if len(frame) < config.min_rows:
        result.notes.append(f"{len(frame)} rows in the window, fewer than monitor.min_rows ({config.min_rows}): "
                            "drift is reported but not judged")


def _performance(result: MonitorResult, bundle: Bundle, frame: pd.DataFrame, config: MonitorConfig) -> None:
    labelled = frame[frame["label"].notna()]
    if bundle.task in UNSUPERVISED_TASKS:  # cluster ids, embeddings and scores have no label to be held to
        if len(labelled):
            result.notes.append(f"{len(labelled)} feedback labels: {with_article(bundle.task)} model's answers are not "
                                "scored against labels")
        return
    y_true = encode_target(labelled["label"], bundle.task, bundle.classes)
    y_pred = encode_target(labelled["prediction"], bundle.task, bundle.classes)
    known = (y_true >= 0) if bundle.is_classifier else ~np.isnan(y_true)
    if (~known).any():
        result.notes.append(f"{int((~known).sum())} feedback labels are not classes the model knows; left out")
    labelled, y_true, y_pred = labelled[known], y_true[known], y_pred[known]
    result.labelled = len(labelled)
    if labelled.empty:
        if config.performance:
            result.notes.append("no feedback labels in the window: performance is not judged")
        return
    n_classes = len(bundle.classes or []) or None
    proba = _two_class_proba(labelled["probability"], y_pred) if n_classes == 2 else None
    result.performance = compute_metrics(bundle.task, y_true, y_pred, proba, n_classes)
    result.performance["rows"] = len(labelled)
    for key, bound in config.performance.items():
        result.breaches += _bound_breach(key, bound, result.performance)
    _fairness(result, bundle, labelled, y_true, y_pred)


def _two_class_proba(chosen: pd.Series, y_pred: np.ndarray) -> np.ndarray | None:
    """A two-class model's (n, 2) probabilities from the logged probability of each row's chosen class
    (None when a row has none): P(class 1) is it, or 1 minus it when class 0 was chosen."""
    p = pd.to_numeric(chosen, errors="coerce").to_numpy(dtype=float)
    if not len(p) or np.isnan(p).any():
        return None
    positive = np.where(y_pred == 1, p, 1 - p)
    return np.column_stack([1 - positive, positive])


def _bound_breach(key: str, bound: float, metrics: dict) -> list[str]:
    """A breach message when ``metrics`` passes ``min_<metric>`` / ``max_<metric>``, else nothing."""
    side, _, name = key.partition("_")
    available = [m for m, v in metrics.items() if isinstance(v, (int, float)) and m != "rows"]
    if side in ("min", "max") and name in ("roc_auc", "pr_auc", "log_loss") and name not in available:
        raise MonitorError(f"monitor.performance.{key}: {name} needs every class's probability, and the prediction "
                           "log keeps the chosen class's: it gives them for a two-class model only",
                           "bound a label metric (accuracy, f1_macro, …)")
    if side not in ("min", "max") or name not in available:
        keys = [f"{s}_{m}" for s in ("min", "max") for m in available]
        close = did_you_mean(key, keys)
        raise MonitorError(f"monitor.performance.{key}: not a bound on a measured metric",
                           close if close.startswith("did you mean") else f"choose one of: {', '.join(sorted(keys))}")
    value = metrics[name]
    if (side == "min" and value < bound) or (side == "max" and value > bound):
        where = "below" if side == "min" else "above"
        return [f"{name} {value:.4g} on {metrics['rows']} labelled rows is {where} monitor.performance.{key} ({bound:g})"]
    return []


def _fairness(result: MonitorResult, bundle: Bundle, labelled: pd.DataFrame, y_true: np.ndarray,
              y_pred: np.ndarray) -> None:
    sensitive = [c for c in (bundle.recipe.get("audit") or {}).get("sensitive", []) if c in labelled.columns]
    if not sensitive or len(labelled) < MIN_FAIRNESS_ROWS:
        return
    groups = {name: group_keys(labelled[name]) for name in sensitive}
    groups = {name: g for name, g in groups.items() if g.nunique() >= 2}
    if groups:
        result.fairness, _ = model_fairness(y_true, y_pred, groups, bundle.task)


def _latency(result: MonitorResult, frame: pd.DataFrame, config: MonitorConfig) -> None:
    per_request = pd.to_numeric(frame.groupby("request_id", sort=False)["latency_ms"].first(), errors="coerce").dropna()
    if per_request.empty:
        return
    p50, p90, p99 = np.percentile(per_request.to_numpy(), [50, 90, 99])
    result.latency = {"requests": len(per_request), "p50_ms": float(p50), "p90_ms": float(p90),
                      "p99_ms": float(p99), "max_ms": float(per_request.max()), "mean_ms": float(per_request.mean())}
    if config.latency_p99_ms is not None and p99 > config.latency_p99_ms:
        result.breaches.append(f"latency p99 {p99:.1f} ms is above monitor.latency_p99_ms ({config.latency_p99_ms:g})")


def record(result: MonitorResult, url: str) -> None:
    """Log the breaches as one ``breach`` event in the prediction log's events table."""
    if result.breached:
        log_event(url, "breach", f"{len(result.breaches)} checks breached for {result.model['name']} "
                  f"{result.model['version']}", {"breaches": result.breaches})


def trigger(command: str, url: str | None, timeout: float | None = None) -> dict[str, Any]:
    """Run ``monitor.on_breach`` (no shell; output goes to this terminal) and log it as a ``retrain`` event."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise MonitorError(f"monitor.on_breach: cannot split {command!r} into arguments ({exc})",
                           "check the quotes") from None
    if not argv:
        raise MonitorError("monitor.on_breach is empty", "give a command, or null for none")
    started = time.time()
    try:
        status = subprocess.run(argv, check=False, timeout=timeout).returncode
    except FileNotFoundError:
        raise MonitorError(f"monitor.on_breach: no program '{argv[0]}'", "give a command on the PATH or its full path") from None
    except subprocess.TimeoutExpired:
        status = None
    outcome = {"command": command, "exit_status": status, "seconds": round(time.time() - started, 1)}
    if url:
        try:
            log_event(url, "retrain", f"ran monitor.on_breach: exit status {status}", outcome)
        except HoningError:
            pass  # the command ran; failing to log it must not hide that
    return outcome
