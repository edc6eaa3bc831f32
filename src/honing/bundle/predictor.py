"""Loaded bundles: the :class:`Bundle` that predicts on raw feature frames, and :class:`LightGBMModel`,
the adapter giving a native LightGBM booster the scikit-learn ``predict``/``predict_proba`` interface."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from honing.bundle.manifest import SUPERVISED_TASKS, UNSUPERVISED_TASKS
from honing.errors import DataError, HoningError


def as_rows(data: Any) -> pd.DataFrame:
    """Rows to predict as a DataFrame with text column names (``0`` is the column ``"0"`` of a CSV):
    a DataFrame, a list of row dicts, or one row (a dict of values, or a Series); DataError for
    anything else, or for a column name given twice."""
    if isinstance(data, pd.Series):
        data = pd.DataFrame([data.to_dict()])
    elif isinstance(data, dict):
        data = pd.DataFrame([data] if all(np.ndim(v) == 0 for v in data.values()) else data)
    elif isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        data = pd.DataFrame(data)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"the rows to predict are a {type(data).__name__}, not a table",
                        "give a pandas DataFrame with the feature columns, a list of row dicts, or a file path")
    names = [str(c) for c in data.columns]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise DataError(f"the data has the column '{twice}' twice", "give each column once")
    return data if names == list(data.columns) else data.set_axis(names, axis=1)


def group_keys(values: pd.Series) -> pd.Series:
    """A column's values as group names (text; missing values are the group 'missing')."""
    return values.astype("string").fillna("missing").astype(str)


class LightGBMModel:
    """A loaded LightGBM booster with the scikit-learn ``predict``/``predict_proba`` interface.

    Classification ``predict`` returns class indices (the argmax of ``predict_proba``).
    """

    def __init__(self, booster: Any, task: str, num_class: int = 1, objective: str | None = None):
        self.booster = booster
        self.task = task
        self.num_class = num_class
        self.objective = objective  # the manifest's, so that the model can be saved again
        self.classes_ = np.arange(num_class) if task == "classification" else None

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of shape (n, K); binary boosters give P(class 1) only."""
        if self.task != "classification":
            raise HoningError("predict_proba is only for classifiers", "this is a regression model")
        p = np.asarray(self.booster.predict(X))
        return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p

    def predict(self, X: Any) -> np.ndarray:
        """Class indices for classification, predicted values for regression."""
        if self.task == "classification":
            return np.argmax(self.predict_proba(X), axis=1)
        return np.asarray(self.booster.predict(X))


class Bundle:
    """A loaded bundle: manifest, fitted preprocessor and model.

    ``prepare`` (identity when None) turns a raw feature frame into what the preprocessor expects.
    ``calibrator`` (optional) recalibrates the model's probabilities; the manifest's ``decision``
    holds a binary classifier's decision threshold, or one threshold per group of a column
    (``audit.mitigate: threshold``), which :meth:`predict` applies.  ``backend`` says which model
    predicts: ``"native"`` (the bundle's own) or ``"onnx"`` (an :class:`~honing.bundle.onnx_model.OnnxModel`
    through ONNX Runtime); preprocessing, calibration and decisions are the same for both.
    """

    def __init__(
        self, path: str | os.PathLike, manifest: dict, preprocessor: Any, model: Any, *,
        prepare: Callable[[pd.DataFrame], Any] | None = None, calibrator: Any = None, backend: str = "native",
    ):
        self.path = Path(path)
        self.manifest = manifest
        self.task: str = manifest["task"]
        self.classes: list | None = manifest.get("classes")
        self.features: dict = manifest.get("features") or {}
        self.metrics: dict = manifest.get("metrics") or {}
        self.recipe: dict = manifest.get("recipe") or {}
        self.decision: dict = manifest.get("decision") or {}
        self.preprocessor = preprocessor
        self.model = model
        self.prepare = prepare
        self.calibrator = calibrator
        self.backend = backend

    @property
    def version(self) -> str:
        """The bundle's version: the first 12 hex digits of its manifest checksum (what the server reports
        and logs with every prediction)."""
        return str(self.manifest.get("manifest_sha256") or "unknown")[:12]

    @property
    def is_classifier(self) -> bool:
        """True for classification bundles."""
        return self.task == "classification"

    @property
    def class_texts(self) -> list[str]:
        """The classes as text outputs name them (``proba_<class>`` columns, the REST probabilities' keys):
        ``true``/``false`` for booleans, as the predictions themselves are written in CSV and JSON."""
        return [("true" if c else "false") if isinstance(c, bool) else str(c) for c in self.classes or []]

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Preprocess a feature frame into the model's numeric array (dense)."""
        if self.task == "generation":  # texts (char_lm) or pixel rows (vae), scored by the model itself
            text = self.manifest.get("model_type") == "char_lm"
            return df.iloc[:, 0].to_numpy(dtype=object) if text else df.to_numpy(dtype=float)
        X = self.preprocessor.transform(df)
        return X.toarray() if hasattr(X, "toarray") else np.asarray(X)

    def predict_encoded(self, X: Any) -> np.ndarray:
        """The model's own predictions on a preprocessed array."""
        return np.asarray(self.model.predict(X))

    def predict_proba_encoded(self, X: Any) -> np.ndarray:
        """Class probabilities (n, K) on a preprocessed array, columns in ``classes`` order."""
        if not self.is_classifier:
            raise HoningError("predict_proba is only for classifiers", "this bundle is a regression model")
        if not hasattr(self.model, "predict_proba"):
            raise HoningError(f"the {self.manifest.get('model_type')} model gives no probabilities")
        proba = np.asarray(self.model.predict_proba(X))
        return self.calibrator.transform(proba) if self.calibrator is not None else proba

    def _encode(self, df: pd.DataFrame) -> np.ndarray:
        """Raw feature frame → preprocessed array."""
        return self.transform(self.prepare(df) if self.prepare else df)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predictions for raw rows (:func:`as_rows`): class labels, or values for regression."""
        df = as_rows(df)
        if len(df) == 0 and self.task in SUPERVISED_TASKS:  # nothing to preprocess (an imputer refuses 0 rows)
            return np.asarray(self.classes)[:0] if self.is_classifier else np.empty(0)
        if self.task in UNSUPERVISED_TASKS:  # cluster ids, or embedding / anomaly columns
            from honing.bundle.unsupervised_outputs import predict_rows
            return predict_rows(self, df)
        X = self._encode(df)
        if not self.is_classifier:
            return self.predict_encoded(X)
        if hasattr(self.model, "predict_proba"):
            return np.asarray(self.classes)[self.decide(self.predict_proba_encoded(X), df)]
        order = list(np.asarray(self.model.classes_).tolist())  # no probabilities: map the labels
        return np.asarray(self.classes)[[order.index(p) for p in self.predict_encoded(X).tolist()]]

    def scores(self, X: Any, rows: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """What :meth:`predict` decides on a preprocessed array, with the probabilities it decided
        from: class indices and (n, K) probabilities, or regression values and None.  ``rows`` (the
        raw rows) are needed only by per-group thresholds."""
        if self.task in UNSUPERVISED_TASKS:  # ids, embeddings (n, d) or anomaly scores
            from honing.bundle.unsupervised_outputs import encoded_scores
            return encoded_scores(self, X), None
        if self.task == "reinforcement":  # an agent's greedy actions (ids, or vectors of a continuous agent)
            return self.predict_encoded(X), None
        if not self.is_classifier:
            return self.predict_encoded(X).astype(float), None
        proba = self.predict_proba_encoded(X)
        return self.decide(proba, rows), proba

    def decide(self, proba: np.ndarray, df: pd.DataFrame | None = None) -> np.ndarray:
        """Class indices from probabilities: the argmax, or for a binary classifier with a stored
        threshold, class 1 when P(class 1) ≥ the threshold (of the row's group, when per group)."""
        groups, threshold = self.decision.get("groups"), self.decision.get("threshold")
        if proba.shape[1] != 2 or (groups is None and threshold is None):
            return np.argmax(proba, axis=1)
        if groups:
            column = groups["column"]
            if df is None or column not in df.columns:
                raise HoningError(f"this model decides with one threshold per '{column}' group (audit.mitigate: "
                                  f"threshold), and the data has no column '{column}'", f"add the '{column}' column")
            thresholds = group_keys(df[column]).map(groups["thresholds"]).fillna(groups["default"]).to_numpy(dtype=float)
        else:
            thresholds = threshold
        return (proba[:, 1] >= thresholds).astype(int)

    def predict_proba(self, df: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities for raw rows (:func:`as_rows`), one column per class (named ``str(class)``)."""
        df = as_rows(df)
        if len(df) == 0 and self.is_classifier:  # nothing to preprocess (an imputer refuses 0 rows)
            proba = np.empty((0, len(self.classes)))
        else:
            proba = self.predict_proba_encoded(self._encode(df))
        return pd.DataFrame(proba, columns=[str(c) for c in self.classes], index=df.index)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """A generative bundle's samples: text from a prompt (char_lm: ``prompt``, ``max_tokens``,
        ``temperature``, ``top_k``, ``seed``) or images (vae: ``samples``, ``seed``, ``out`` for a grid PNG)."""
        if self.task != "generation":
            raise HoningError(f"this is a {self.task} bundle; only generative bundles generate",
                              "train one with data.task: generation (docs/generative.md)")
        return self.model.generate(*args, **kwargs)

    def __repr__(self) -> str:
        return (f"Bundle({str(self.path)!r}, task={self.task!r}, model_type={self.manifest.get('model_type')!r}, "
                f"backend={self.backend!r})")
