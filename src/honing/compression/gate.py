"""The accuracy gate of ``honing compress``: every candidate is measured on the same validation rows
(metric, size on disk, batch-1 latency, batch throughput) and the smallest — or fastest — whose metric
drop stays within ``compress.max_metric_drop`` wins.

A *candidate* is a model that can take the original's place in the bundle (a neural estimator, a
scikit-learn or LightGBM model, an :class:`~honing.bundle.onnx_model.OnnxModel`): it predicts on the
bundle's preprocessed matrix.  Scoring goes through :class:`~honing.bundle.Bundle`, so the parent's
calibrator and decision threshold apply to every candidate exactly as they will once it is saved.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from honing.bundle import Bundle
from honing.bundle.store import model_files
from honing.evaluation.metrics import compute_metrics, primary_metric

#: Rows predicted at once when measuring throughput.
BATCH = 1024


@dataclass
class Candidate:
    """A model to try in the original's place; ``details`` (sparsity, description, …) go to the report."""

    name: str
    model: Any
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Measurement:
    """What one candidate scored; ``error`` is set (and the numbers are None) when it could not be built."""

    name: str
    metric: float | None = None
    drop: float | None = None
    size_bytes: int | None = None
    latency_ms: float | None = None
    rows_per_s: float | None = None
    parameters: int | None = None
    qualifies: bool = False
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != {}}


@dataclass
class Rows:
    """The validation rows every candidate is measured on: the preprocessed matrix, the encoded target,
    and the raw rows (per-group thresholds need them)."""

    X: np.ndarray
    y: np.ndarray
    raw: Any = None


class Gate:
    """Measures candidates against the parent bundle's model and picks the winner.

    ``metric`` is a metric name of the task (``auto`` → accuracy / r2); ``max_drop`` is in its units
    (a drop is a decrease for accuracy-like metrics, an increase for error metrics).
    """

    def __init__(self, parent: Bundle, rows: Rows, metric: str, max_drop: float, *,
                 prefer: str = "size", latency_rows: int = 200):
        self.parent = parent
        self.rows = rows
        self.metric, self.higher_is_better = primary_metric(parent.task, metric)
        self.max_drop = max_drop
        self.prefer = prefer
        self.latency_rows = latency_rows
        self.measured: list[Measurement] = []
        self.candidates: dict[str, Candidate] = {}
        self.reference: float | None = None

    # ------------------------------------------------------------------ measuring

    def metrics(self, model: Any, rows: Rows | None = None) -> dict[str, Any]:
        """Every metric of the task for ``model`` on ``rows`` (default: the validation rows), decided as
        the saved bundle would."""
        rows = rows or self.rows
        bundle = Bundle(self.parent.path, self.parent.manifest, self.parent.preprocessor, model,
                        calibrator=self.parent.calibrator)
        y_pred, proba = bundle.scores(rows.X, rows.raw)
        n_classes = len(self.parent.classes or []) or None
        return compute_metrics(self.parent.task, rows.y, y_pred, proba, n_classes)

    def score(self, model: Any) -> float:
        """The gate's metric of ``model`` on the validation rows."""
        return float(self.metrics(model)[self.metric])

    def add(self, name: str, build: Callable[[], Candidate]) -> Measurement:
        """Build a candidate and measure it; a :class:`~honing.errors.HoningError` while building (an
        unsupported model, a failed parity check) is recorded as the candidate's error, not raised."""
        from honing.errors import HoningError

        try:
            candidate = build()
        except HoningError as exc:
            measurement = Measurement(name, error=str(exc))
        else:
            measurement = self.measure(candidate)
            self.candidates[candidate.name] = candidate
        self.measured.append(measurement)
        return measurement

    def measure(self, candidate: Candidate) -> Measurement:
        """Metric, drop against the original, size on disk, latency and throughput of ``candidate``."""
        value = self.score(candidate.model)
        if self.reference is None:  # the first candidate measured is the original
            self.reference = value
        drop = (self.reference - value) if self.higher_is_better else (value - self.reference)
        latency, throughput = speed(candidate.model, self.parent.is_classifier, self.rows.X, self.latency_rows)
        return Measurement(
            candidate.name, metric=value, drop=drop, size_bytes=size_on_disk(candidate.model, self.parent.task),
            latency_ms=latency, rows_per_s=throughput, parameters=parameter_count(candidate.model),
            qualifies=drop <= self.max_drop + 1e-12, details=candidate.details,
        )

    # ------------------------------------------------------------------ choosing

    def winner(self) -> Measurement | None:
        """The qualifying candidate that is smallest (``prefer: size``; latency breaks ties) or fastest
        (``prefer: latency``), if it beats the original on that; None when none does."""
        if not self.measured or self.measured[0].error:
            return None
        original, rest = self.measured[0], [m for m in self.measured[1:] if m.qualifies]
        key = (lambda m: (m.size_bytes, m.latency_ms)) if self.prefer == "size" else \
            (lambda m: (m.latency_ms, m.size_bytes))
        better = [m for m in rest if key(m)[0] < key(original)[0]]
        return min(better, key=key) if better else None

    def qualifying(self, prefix: str) -> Measurement | None:
        """The smallest qualifying candidate whose name starts with ``prefix`` (to combine it further)."""
        found = [m for m in self.measured if m.name.startswith(prefix) and m.qualifies]
        return min(found, key=lambda m: m.size_bytes) if found else None


def speed(model: Any, classifier: bool, X: np.ndarray, rows: int) -> tuple[float, float]:
    """(median single-row latency in ms over ``rows`` calls, rows per second at batch :data:`BATCH`)."""
    predict = model.predict_proba if classifier else model.predict
    for i in range(min(5, len(X))):  # warm up (lazy sessions, allocator, thread pools)
        predict(X[i:i + 1])
    times = []
    for i in range(rows):
        row = X[i % len(X):i % len(X) + 1]
        start = time.perf_counter()
        predict(row)
        times.append(time.perf_counter() - start)
    batch = X[np.arange(BATCH) % len(X)]
    best = min(_timed(predict, batch) for _ in range(3))
    return float(np.median(times) * 1000), float(BATCH / best)


def _timed(fn: Callable[[Any], Any], arg: Any) -> float:
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


def size_on_disk(model: Any, task: str) -> int:
    """Bytes of the model's file(s) as a bundle would store them."""
    with tempfile.TemporaryDirectory() as tmp:
        model_files(Path(tmp), model, task)
        return sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())


def parameter_count(model: Any) -> int | None:
    """Non-zero weights of a neural model (pruned weights do not count); None for other models."""
    from honing.compression.prune import parameter_count as count

    module = getattr(model, "module_", None)
    return None if module is None else count(module, nonzero=True)
