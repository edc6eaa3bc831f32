"""ONNX export of fitted models, and the parity check of the exported graph against the native model.

:func:`export_onnx` turns a model that predicts on the preprocessed matrix into an
:class:`~honing.bundle.onnx_model.OnnxModel` whose graph takes the same matrix (dynamic batch axis)
and gives probabilities (classification) or values (regression):

* honing's neural estimators through the torch ONNX exporter (``dynamo=True``), wrapped so the graph
  reshapes flat rows to the network's input shape (CNNs), reads token ids as int64 (ids past the
  vocabulary become the unknown id, as the estimator does), ends in a softmax (classifiers) or
  undoes the target's standardisation (regressors).  Recurrent nets run without packed sequences
  (ONNX has none): each direction runs over the padded rows, the backward one over every row
  reversed within its length, which gives what packing gives;
* scikit-learn models through skl2onnx (probabilities as a tensor, no ZipMap), a
  ``TransformedTargetRegressor`` over a ``StandardScaler`` as its regressor's graph plus the scaling;
* LightGBM (``LGBMClassifier``/``LGBMRegressor``, or a bundle's ``LightGBMModel``) through
  onnxmltools' converter of the native booster.

The exporters' chatter (prints, warnings, log lines) is kept off the console.  The graph's
``value_info`` is dropped: it is optional, and the dynamo exporter's entries make ONNX Runtime's
quantizer fail shape inference later.

:func:`check_parity` compares the exported model with the native one on held-out rows, elementwise
within ``atol + rtol·|native|`` (``atol`` scaled by the values' magnitude for regression).  The
defaults (1e-4, 1e-3) hold for every kind of model exported here, measured on scikit-learn's
datasets and California housing: networks (float32 on both sides, different kernels) agree to ~1e-7;
linear models, k-NN and naive Bayes (float64 natively, float32 in the graph) to ~1e-6 in
probabilities and ~1e-7 relative in values; scikit-learn trees compare float32 features natively too
(~1e-6, float32 leaf sums).  LightGBM compares float64 features with float64 thresholds, and
often puts a threshold within float32 rounding of a training value: with the converter's float32
thresholds, such rows fell on the other side of a split (probabilities moved by up to 0.3 on
scikit-learn's wine data), so LightGBM graphs take float64 rows and keep float64 thresholds
(ONNX-ML opset 3), which brings them to ~1e-7 as well.  Rather than loosening the tolerance for
trees, a difference beyond it is reported: it means a real change of predictions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from honing.bundle import LightGBMModel, OnnxModel
from honing.bundle.manifest import SUPERVISED_TASKS
from honing.errors import CompressionError, first_line

#: The default-domain opset asked for (the oldest the torch exporter writes; ONNX Runtime runs it since
#: 1.14).  LightGBM graphs get at most onnxmltools' highest (15), and only what they need (8 or 9).
DEFAULT_OPSET = 18
#: The ai.onnx.ml opset of scikit-learn graphs (3: tree thresholds may be float64 tensors).
ML_OPSET = 3
INPUT = "X"
_HINT = "keep the native model, or train one of the types honing exports (neural nets, scikit-learn, LightGBM)"
_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch._export", "torch.fx", "onnxscript", "onnx_ir",
            "skl2onnx", "onnxmltools")


# ---------------------------------------------------------------------------------------------- export


def export_onnx(model: Any, task: str, sample: np.ndarray, *, opset: int | None = None,
                parity: bool = True) -> OnnxModel:
    """An :class:`OnnxModel` computing what fitted ``model`` predicts on preprocessed rows.

    ``sample`` holds a few preprocessed rows (any number ≥ 1): they fix the number of features,
    serve as the tracing input, and with ``parity`` (the default) the exported model is checked
    against the native one on them (:func:`check_parity`), the largest difference going into
    ``meta["parity"]``.  Unsupported models raise :class:`CompressionError`.
    """
    if task not in SUPERVISED_TASKS:
        raise ValueError(f"task must be one of {SUPERVISED_TASKS}, not {task!r}")
    if isinstance(model, OnnxModel):
        return model
    sample = _check_sample(model, sample)
    opset = int(opset or DEFAULT_OPSET)
    with _quiet():
        if _is_network(model):
            proto, meta = _export_network(model, task, sample, opset)
        elif _is_lightgbm(model):
            proto, meta = _export_lightgbm(model, task, sample.shape[1], opset)
        else:
            proto, meta = _export_sklearn(model, task, sample.shape[1], opset)
    del proto.graph.value_info[:]
    meta = {**meta, "task": task, "n_features": int(sample.shape[1]), "opset": _opset_of(proto),
            "source": _source(model)}
    exported = OnnxModel(proto.SerializeToString(), meta)
    if parity:
        exported = OnnxModel(exported.data, {**meta, "parity": check_parity(model, exported, sample, task)})
    return exported


def _opset_of(proto: Any) -> int:
    """The default-domain opset a graph was written for."""
    return next(int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _check_sample(model: Any, sample: Any) -> np.ndarray:
    """``sample`` as a 2-D float array with at least one row and the model's number of features."""
    sample = np.asarray(sample.toarray() if hasattr(sample, "toarray") else sample)
    if sample.ndim != 2 or len(sample) == 0:
        raise CompressionError(f"ONNX export needs a few preprocessed sample rows, got an array of shape "
                               f"{sample.shape}", "pass rows of the preprocessed matrix")
    expected = _n_features(model)
    if expected is not None and sample.shape[1] != expected:
        raise CompressionError(f"the model takes {expected} features but the sample rows have {sample.shape[1]}",
                               "pass rows preprocessed by the bundle's own preprocessor")
    return sample


def _n_features(model: Any) -> int | None:
    """The number of features ``model`` takes, when it says."""
    if isinstance(model, LightGBMModel):
        return int(model.booster.num_feature())
    n = getattr(model, "n_features_in_", None)
    return int(n) if n is not None else None


def _source(model: Any) -> str:
    """What the graph was exported from, e.g. ``NeuralClassifier/cnn`` or ``RandomForestClassifier``."""
    net = getattr(model, "net_", None)
    return f"{type(model).__name__}/{net}" if _is_network(model) and net else type(model).__name__


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporters' prints, warnings and log lines off the console."""
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [logger.level for logger in loggers]
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _model_error(model: Any, exc: BaseException | None = None) -> CompressionError:
    """The error for a model the converters cannot export (with the converter's reason, when any)."""
    why = f" ({type(exc).__name__}: {first_line(exc)})" if exc is not None else ""
    return CompressionError(f"cannot export a {type(model).__name__} model to ONNX{why}", _HINT)


def _classes(model: Any, task: str) -> int | None:
    """The number of classes of a classifier (None for regression); raise on a task mismatch."""
    classes = getattr(model, "classes_", None)
    if task == "regression":
        if classes is not None:
            raise ValueError(f"a {type(model).__name__} is a classifier, not a regression model")
        return None
    if classes is None:
        raise ValueError(f"a {type(model).__name__} is not a classifier")
    if len(classes) < 2:
        raise CompressionError(f"the {type(model).__name__} was trained on a single class",
                               "train it on at least two classes")
    return len(classes)


# ---------------------------------------------------------------------------------------------- networks


def _is_network(model: Any) -> bool:
    estimators = sys.modules.get("honing.models.estimators")  # a fitted network implies it is imported
    return estimators is not None and isinstance(model, estimators._NeuralBase)


def _export_network(model: Any, task: str, sample: np.ndarray, opset: int) -> tuple[Any, dict]:
    """Export a honing neural estimator through the torch exporter (dynamic batch axis)."""
    import torch

    n_classes = _classes(model, task)
    from honing.compression.onnx_nets import NetworkGraph

    graph = NetworkGraph(model, task).eval()
    rows = np.asarray(sample if len(sample) >= 2 else np.repeat(sample, 2, axis=0), dtype=np.float32)
    example = torch.as_tensor(rows.astype(np.int64) if graph.tokens else rows)  # ≥ 2 rows: 1 is specialised
    try:
        program = torch.onnx.export(graph, (example,), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=[INPUT], output_names=["output"], optimize=True,
                                    dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}})
    except Exception as exc:  # whatever the exporter trips on, the user gets one line
        raise CompressionError(f"cannot export the {model.net_} network to ONNX ({type(exc).__name__}: "
                               f"{first_line(exc)})", "keep the native model (backend native)") from exc
    meta = {"input": INPUT, "input_dtype": "int64" if graph.tokens else "float32", "output": "output",
            "output_kind": "proba" if n_classes else "value", "n_classes": n_classes}
    return program.model_proto, meta


# ---------------------------------------------------------------------------------------------- classic models


def _is_lightgbm(model: Any) -> bool:
    lightgbm = sys.modules.get("lightgbm")  # a LightGBM model implies lightgbm is imported
    if lightgbm is not None and isinstance(model, (lightgbm.LGBMClassifier, lightgbm.LGBMRegressor)):
        return True
    return isinstance(model, LightGBMModel)


def _float_input(n_features: int, tensor_type: type) -> list:
    """The converters' ``initial_types``: one float matrix input with a dynamic batch axis."""
    return [(INPUT, tensor_type([None, n_features]))]


def _export_lightgbm(model: Any, task: str, n_features: int, opset: int) -> tuple[Any, dict]:
    """Export a LightGBM model through onnxmltools' converter of its native booster (at most at the
    converter's highest opset, 15 for onnxmltools 1.16: tree ensembles need nothing newer), then make
    it compare features with thresholds in float64 as LightGBM does (:func:`_compare_in_double`)."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType
    from onnxmltools.convert.common.onnx_ex import get_maximum_opset_supported

    booster = model.booster if isinstance(model, LightGBMModel) else model.booster_
    n_classes = _classes(model, task)
    try:
        proto = onnxmltools.convert_lightgbm(booster, initial_types=_float_input(n_features, FloatTensorType),
                                             target_opset=min(opset, get_maximum_opset_supported()), zipmap=False)
    except Exception as exc:  # e.g. an objective the converter does not know
        raise _model_error(model, exc) from exc
    meta = _classic_meta(proto, n_classes)
    if _compare_in_double(proto, booster):
        meta["input_dtype"] = "float64"
    return proto, meta


def _compare_in_double(proto: Any, booster: Any) -> bool:
    """Give the graph's tree ensemble LightGBM's own float64 thresholds and a float64 input; True when done.

    The converter writes thresholds as float32, and LightGBM often puts a threshold within float32
    rounding of feature values seen in training (small data): such rows then fall on the other side
    of the split (a probability moves by tenths).  ONNX-ML opset 3 takes thresholds as a double
    tensor.  Each graph node is matched with its booster node by walking both trees from the root
    (true branch = left child); the thresholds are used only if every node matches (same feature,
    same threshold after rounding), so an unexpected layout keeps the float32 graph.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    trees = [n for n in graph.node if n.op_type in ("TreeEnsembleClassifier", "TreeEnsembleRegressor")]
    if len(trees) != 1 or len(graph.input) != 1 or list(trees[0].input) != [graph.input[0].name]:
        return False
    node = trees[0]
    attributes = {a.name: a for a in node.attribute}
    try:
        thresholds = _booster_thresholds({k: helper.get_attribute_value(a) for k, a in attributes.items()},
                                         booster.dump_model()["tree_info"])
    except (KeyError, TypeError, ValueError, IndexError):
        return False
    if thresholds is None:
        return False
    node.attribute.remove(attributes["nodes_values"])
    node.attribute.append(helper.make_attribute("nodes_values_as_tensor", numpy_helper.from_array(thresholds)))
    graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    for entry in proto.opset_import:
        if entry.domain == "ai.onnx.ml":
            entry.version = max(entry.version, 3)  # the opset where thresholds may be a double tensor
    return True


def _booster_thresholds(attrs: dict, tree_info: list[dict]) -> np.ndarray | None:
    """The float64 threshold of every node of the converted tree ensemble (0 for leaves), or None when
    the graph's trees do not match the booster's."""
    keys = ("nodes_treeids", "nodes_nodeids", "nodes_truenodeids", "nodes_falsenodeids", "nodes_featureids")
    tree_ids, node_ids, true_ids, false_ids, features = (list(attrs[k]) for k in keys)
    values = np.asarray(attrs["nodes_values"], dtype=np.float32)
    index = {(t, n): i for i, (t, n) in enumerate(zip(tree_ids, node_ids, strict=True))}
    structures = {tree["tree_index"]: tree["tree_structure"] for tree in tree_info}
    thresholds = np.zeros(len(values))
    seen = 0
    for tree in sorted(set(tree_ids)):
        stack = [(0, structures[tree])]
        while stack:
            node_id, node = stack.pop()
            i = index[(tree, node_id)]
            seen += 1
            if "left_child" not in node:
                continue
            threshold = node["threshold"]
            if not isinstance(threshold, (int, float)) or features[i] != node["split_feature"] \
                    or np.float32(threshold) != values[i]:
                return None
            thresholds[i] = threshold
            stack += [(true_ids[i], node["left_child"]), (false_ids[i], node["right_child"])]
    return thresholds if seen == len(values) else None


def _export_sklearn(model: Any, task: str, n_features: int, opset: int) -> tuple[Any, dict]:
    """Export a scikit-learn model through skl2onnx (classifiers give a probability tensor)."""
    if not hasattr(model, "predict") or not hasattr(model, "get_params"):
        raise CompressionError(f"a {type(model).__name__} is not a model honing can export to ONNX", _HINT)
    n_classes = _classes(model, task)
    if n_classes and not hasattr(model, "predict_proba"):
        raise CompressionError(f"the {type(model).__name__} classifier gives no probabilities, so its ONNX "
                               "graph could not give them", _HINT)
    inner, scaling = _target_scaling(model)
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        options = {id(inner): {"zipmap": False}} if n_classes else None
        proto = convert_sklearn(inner, initial_types=_float_input(n_features, FloatTensorType), options=options,
                                target_opset={"": opset, "ai.onnx.ml": ML_OPSET})
    except Exception as exc:  # skl2onnx raises many kinds for unsupported models
        raise _model_error(model, exc) from exc
    if scaling is not None:
        _append_scaling(proto, *scaling)
    return proto, _classic_meta(proto, n_classes)


def _target_scaling(model: Any) -> tuple[Any, tuple[float, float] | None]:
    """(the model to convert, (scale, mean) to apply to its output or None): a
    ``TransformedTargetRegressor`` over a ``StandardScaler`` becomes its regressor plus the scaling."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler

    if not isinstance(model, TransformedTargetRegressor):
        return model, None
    scaler = getattr(model, "transformer_", None)
    if not isinstance(scaler, StandardScaler) or getattr(model, "_training_dim", 1) != 1:
        raise CompressionError(f"cannot export a TransformedTargetRegressor with a {type(scaler).__name__} "
                               "target transformer to ONNX", _HINT)
    scale = float(scaler.scale_[0]) if scaler.scale_ is not None else 1.0
    mean = float(scaler.mean_[0]) if scaler.mean_ is not None else 0.0
    return model.regressor_, (scale, mean)


def _append_scaling(proto: Any, scale: float, mean: float) -> None:
    """Make the graph's single output ``output * scale + mean`` (in its float32)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    (output,) = graph.output
    graph.initializer.extend([numpy_helper.from_array(np.array([scale], np.float32), "target_scale"),
                              numpy_helper.from_array(np.array([mean], np.float32), "target_mean")])
    graph.node.extend([helper.make_node("Mul", [output.name, "target_scale"], ["target_scaled"]),
                       helper.make_node("Add", ["target_scaled", "target_mean"], ["target"])])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("target", TensorProto.FLOAT, [None, 1]))


def _classic_meta(proto: Any, n_classes: int | None) -> dict:
    """The meta of a converted classic model: its probability output, or its only value output."""
    names = [o.name for o in proto.graph.output]
    if n_classes:
        if "probabilities" not in names:
            raise CompressionError(f"the converted classifier gives {names}, not probabilities", _HINT)
        output = "probabilities"
    else:
        output = names[-1]
    return {"input": INPUT, "input_dtype": "float32", "output": output,
            "output_kind": "proba" if n_classes else "value", "n_classes": n_classes}


# ---------------------------------------------------------------------------------------------- parity


def check_parity(native: Any, exported: OnnxModel, X: np.ndarray, task: str, *, atol: float = 1e-4,
                 rtol: float = 1e-3) -> float:
    """The largest absolute difference between ``exported``'s and ``native``'s predictions on rows ``X``
    (probabilities for classifiers, values for regressors).

    Raises :class:`CompressionError`, naming the largest difference and where it is, when any
    element differs by more than ``atol·scale + rtol·|native|``: ``scale`` is 1 for probabilities and
    the largest ``|native|`` value (at least 1) for regression, whose float32 rounding grows with the
    values (see the module docstring for why one tolerance fits every kind of model).
    """
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X)
    if task == "classification":
        expected = np.asarray(native.predict_proba(X), dtype=np.float64)
        got = exported.predict_proba(X)
    else:
        expected = np.asarray(native.predict(X), dtype=np.float64).reshape(-1)
        got = exported.predict(X)
    if got.shape != expected.shape:
        raise CompressionError(f"the ONNX model gives predictions of shape {got.shape}, the native model "
                               f"{expected.shape}", "re-export the model")
    if got.size == 0:
        return 0.0
    diff = np.abs(got - expected)
    scale = 1.0 if task == "classification" else max(1.0, float(np.nanmax(np.abs(expected))))
    over = diff > atol * scale + rtol * np.abs(expected)
    if over.any() or not np.isfinite(diff).all():
        where = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(diff), diff, np.inf))), diff.shape)
        what = "probabilities" if task == "classification" else "predictions"
        at = f"row {where[0]}" + (f", class {where[1]}" if len(where) > 1 else "")
        raise CompressionError(
            f"the ONNX model's {what} differ from the native model's by up to {diff[where]:.3g} ({at}: "
            f"{got[where]:.6g} vs {expected[where]:.6g}; {int(over.sum())} of {over.size} values over "
            f"atol={atol:g}·{scale:g} + rtol={rtol:g}·|native|)",
            "keep the native model; the exported graph does not compute the same function")
    return float(diff.max())
