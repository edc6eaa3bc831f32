"""Loaded bundles: the :class:`Bundle` that predicts on raw feature frames, and :class:`LightGBMModel`,
the adapter giving a native LightGBM booster the scikit-learn ``predict``/``predict_proba`` interface."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from honing.errors import HoningError


class LightGBMModel:
    """A loaded LightGBM booster with the scikit-learn ``predict``/``predict_proba`` interface.

    Classification ``predict`` returns class indices (the argmax of ``predict_proba``).
    """

    def __init__(self, booster: Any, task: str, num_class: int = 1):
        self.booster = booster
        self.task = task
        self.num_class = num_class
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
    """

    def __init__(
        self, path: str | os.PathLike, manifest: dict, preprocessor: Any, model: Any, *,
        prepare: Callable[[pd.DataFrame], Any] | None = None,
    ):
        self.path = Path(path)
        self.manifest = manifest
        self.task: str = manifest["task"]
        self.classes: list | None = manifest.get("classes")
        self.features: dict = manifest.get("features") or {}
        self.metrics: dict = manifest.get("metrics") or {}
        self.recipe: dict = manifest.get("recipe") or {}
        self.preprocessor = preprocessor
        self.model = model
        self.prepare = prepare

    @property
    def is_classifier(self) -> bool:
        """True for classification bundles."""
        return self.task == "classification"

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Preprocess a feature frame into the model's numeric array (dense)."""
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
        return np.asarray(self.model.predict_proba(X))

    def _encode(self, df: pd.DataFrame) -> np.ndarray:
        """Raw feature frame → preprocessed array."""
        return self.transform(self.prepare(df) if self.prepare else df)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predictions for a raw feature frame: class labels, or values for regression."""
        X = self._encode(df)
        if not self.is_classifier:
            return self.predict_encoded(X)
        if hasattr(self.model, "predict_proba"):
            return np.asarray(self.classes)[np.argmax(self.predict_proba_encoded(X), axis=1)]
        order = list(np.asarray(self.model.classes_).tolist())  # no probabilities: map the labels
        return np.asarray(self.classes)[[order.index(p) for p in self.predict_encoded(X).tolist()]]

    def predict_proba(self, df: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities for a raw feature frame, one column per class (named ``str(class)``)."""
        proba = self.predict_proba_encoded(self._encode(df))
        return pd.DataFrame(proba, columns=[str(c) for c in self.classes], index=df.index)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, task={self.task!r}, model_type={self.manifest.get('model_type')!r})"
