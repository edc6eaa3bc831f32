"""A model held as ONNX bytes that predicts through ONNX Runtime: :class:`OnnxModel`.

The graph takes the preprocessed matrix the native model takes, one row per sample: float32
features (n, F) (float64 for LightGBM, which compares in float64), or int64 token ids (n, T) for
sequence networks, and gives class probabilities
(n, K) in class-index order 0..K-1 (``output_kind: proba``) or predicted values (n,) or (n, 1)
(``output_kind: value``).  ``meta`` is a small JSON object saying so; a bundle keeps it in its
manifest (``"onnx": meta``), so :func:`meta_problem` checks it before anything is built from it.

``meta`` keys::

    input          name of the graph's input
    input_dtype    "float32" or "float64" (a feature matrix), or "int64" (token ids)
    n_features     F (or T): the number of columns of the input
    output         name of the graph output read
    output_kind    "proba" (classification) or "value" (regression)
    task           "classification" or "regression"
    n_classes      K (classification; null for regression)
    opset          the default-domain opset of the graph
    source         what it was exported from (e.g. "NeuralClassifier/mlp", "LGBMClassifier"), optional
    quantized      how its weights were quantized (e.g. "int8-dynamic"), optional
    parity         the largest absolute difference from the native model found at export, optional

Only this module's own checks and ONNX Runtime read the bytes: no code is run from a bundle.
``onnxruntime`` is imported when a session is first needed, so importing this module is cheap.
"""

from __future__ import annotations

import threading
from numbers import Integral, Real
from typing import Any

import numpy as np

from honing.errors import HoningError

INPUT_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64}
_ORT_TYPES = {"float32": "float", "float64": "double", "int64": "int64"}
OUTPUT_KINDS = {"classification": "proba", "regression": "value"}
_TEXT_KEYS = ("input", "output")
_OPTIONAL_TEXT = ("source", "quantized")


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= low


def meta_problem(meta: Any) -> str | None:
    """What is wrong with an ONNX model's ``meta`` (see the module docstring), or None when it is valid."""
    if not isinstance(meta, dict):
        return "must be an object"
    for key in _TEXT_KEYS:
        if not isinstance(meta.get(key), str) or not meta[key]:
            return f"'{key}' must be a non-empty string"
    if meta.get("input_dtype") not in INPUT_DTYPES:
        return f"'input_dtype' must be one of {', '.join(INPUT_DTYPES)}"
    task = meta.get("task")
    if task not in OUTPUT_KINDS:
        return f"'task' must be one of {', '.join(OUTPUT_KINDS)}"
    if meta.get("output_kind") != OUTPUT_KINDS[task]:
        return f"'output_kind' must be {OUTPUT_KINDS[task]!r} for {task}"
    if not _is_int(meta.get("n_features"), 1):
        return "'n_features' must be a positive integer"
    if not _is_int(meta.get("opset"), 1):
        return "'opset' must be a positive integer"
    n_classes = meta.get("n_classes")
    if task == "classification" and not _is_int(n_classes, 2):
        return "'n_classes' must be an integer ≥ 2 for classification"
    if task == "regression" and n_classes is not None:
        return "'n_classes' must be null for regression"
    for key in _OPTIONAL_TEXT:
        if meta.get(key) is not None and not isinstance(meta[key], str):
            return f"'{key}' must be a string or null"
    parity = meta.get("parity")
    if parity is not None and (not isinstance(parity, Real) or isinstance(parity, bool) or not parity >= 0):
        return "'parity' must be a non-negative number or null"
    return None


class OnnxModel:
    """An ONNX graph plus its ``meta``, with the scikit-learn ``predict``/``predict_proba`` interface.

    ``data`` is the serialized ONNX model.  The ONNX Runtime session (CPU) is created on first use
    (or by :meth:`session`) and is safe to share between threads; it is not pickled.  Classification
    ``predict`` returns class indices (the argmax of ``predict_proba``), like :class:`LightGBMModel`.
    """

    def __init__(self, data: bytes, meta: dict):
        problem = meta_problem(meta)
        if problem:
            raise ValueError(f"invalid ONNX model meta: {problem}")
        self.data = bytes(data)
        self.meta = dict(meta)
        self.task: str = meta["task"]
        self.n_features_in_ = int(meta["n_features"])
        self.classes_ = np.arange(meta["n_classes"]) if self.task == "classification" else None
        self._session: Any = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ session

    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` (created once, on the CPU provider)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._new_session()
        return self._session

    def _new_session(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no optimizer chatter on the user's console
        session = ort.InferenceSession(self.data, sess_options=options, providers=["CPUExecutionProvider"])
        problem = self._signature_problem(session)
        if problem:
            raise ValueError(f"the ONNX graph does not match its meta: {problem}")
        return session

    def _signature_problem(self, session: Any) -> str | None:
        """What differs between the graph's inputs/outputs and ``meta``, or None."""
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != self.meta["input"]:
            return f"it takes inputs {[i.name for i in inputs]}, not just {self.meta['input']!r}"
        expected_type = f"tensor({_ORT_TYPES[self.meta['input_dtype']]})"
        if inputs[0].type != expected_type:
            return f"its input is a {inputs[0].type}, not a {expected_type}"
        shape = inputs[0].shape
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != self.n_features_in_):
            return f"its input has shape {shape}, not (n, {self.n_features_in_})"
        outputs = {o.name: o for o in session.get_outputs()}
        output = outputs.get(self.meta["output"])
        if output is None:
            return f"it has no output {self.meta['output']!r} (only {sorted(outputs)})"
        if self.task == "classification":
            width = output.shape[-1] if output.shape else None
            if len(output.shape) != 2 or (isinstance(width, int) and width != self.meta["n_classes"]):
                return f"its output has shape {output.shape}, not (n, {self.meta['n_classes']})"
        return None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_session"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ prediction

    def _input(self, X: Any) -> np.ndarray:
        """``X`` as the graph's input: a C-contiguous (n, F) array of its dtype."""
        X = np.asarray(X.toarray() if hasattr(X, "toarray") else X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise HoningError(f"the model takes rows of {self.n_features_in_} features, got an array of "
                              f"shape {X.shape}", "preprocess the rows as the bundle does")
        if self.meta["input_dtype"] != "int64":
            return np.ascontiguousarray(X, dtype=INPUT_DTYPES[self.meta["input_dtype"]])
        ids = np.asarray(X, dtype=np.float32)  # as the native estimator reads them: float32, then truncated
        if not np.isfinite(ids).all():
            raise HoningError("token ids must be finite numbers", "preprocess the text as the bundle does")
        return np.ascontiguousarray(ids.astype(np.int64))

    def _run(self, X: Any) -> np.ndarray:
        """The graph's output for ``X``, as float64."""
        inputs = self._input(X)
        if len(inputs) == 0:
            width = (self.meta["n_classes"],) if self.task == "classification" else ()
            return np.zeros((0, *width))
        out = self.session().run([self.meta["output"]], {self.meta["input"]: inputs})[0]
        return np.asarray(out, dtype=np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of shape (n, K), columns in class-index order."""
        if self.task != "classification":
            raise HoningError("predict_proba is only for classifiers", "this is a regression model")
        return self._run(X).reshape(-1, self.meta["n_classes"])

    def predict(self, X: Any) -> np.ndarray:
        """Class indices for classification, predicted values for regression."""
        if self.task == "classification":
            return np.argmax(self.predict_proba(X), axis=1)
        return self._run(X).reshape(-1)

    def __repr__(self) -> str:
        kind = self.meta.get("source") or self.task
        return f"OnnxModel({kind!r}, {len(self.data)} bytes, opset {self.meta['opset']})"
