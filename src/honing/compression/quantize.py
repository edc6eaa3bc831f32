"""Quantization: int8 ONNX models through ONNX Runtime, and neural weights stored in half precision.

- ``dynamic`` (:func:`quantize_dynamic_bytes`): the weights of MatMul/Gemm (ONNX Runtime rewrites Gemm as
  MatMul), Conv, LSTM, Attention and Gather (embedding tables) become int8; activations are quantized to
  uint8 on the fly, batch by batch, so no calibration data is needed.  ONNX Runtime has no dynamic GRU/RNN
  kernel: those recurrent layers stay fp32 (the layers around them are still quantized).
- ``static`` (:func:`quantize_static_bytes`): weights and activations int8 in the QDQ format (ONNX
  Runtime's recommended one: ``QuantizeLinear``/``DequantizeLinear`` pairs that its CPU kernels fuse into
  integer operators), activation ranges calibrated on sample rows (min/max), after ONNX Runtime's
  pre-processing (shape inference, constant folding and fusions such as Conv+BatchNorm).
- ``fp16`` / ``bf16`` (:func:`cast_weights`): a honing neural estimator whose weights are *stored* in 16
  bits (half the size on disk) and computed in float32 once loaded (CPU half-precision matmuls are slow).

The int8 functions take and return ONNX bytes; :func:`quantize_dynamic` and :func:`quantize_static` do
the same on an :class:`~honing.bundle.onnx_model.OnnxModel`.  A model with no layer to quantize (a tree
ensemble, a linear model converted by skl2onnx as ``LinearClassifier``) raises :class:`CompressionError`.

Choices, measured on MLPs (64→256→256→10, 64→512→256→128→10) and a CNN on scikit-learn's digits:
weights int8, activations uint8 (the only type of dynamic quantization, ONNX Runtime's advice for static
quantization on x86 CPUs).  Weights use 7 bits of the 8 (``reduce_range``): on x86 CPUs without VNNI the
uint8 × int8 kernels can saturate, a bundle may be served on another machine than the one that compressed
it, and the measured cost was small (same accuracy, mean |Δlogit| up 0-3%).  Per-channel scales (one per
output neuron / filter) made no difference on the MLPs with dynamic quantization, so ``dynamic`` keeps one
scale per tensor (smaller, ONNX Runtime's fastest); with ``static`` they lowered the CNN's mean |Δlogit|
by 5% and the MLPs' disagreement with fp32, so ``static`` is per channel.  Static int8 tracked fp32 about
twice as closely as dynamic int8 on these models (activation ranges from calibration vs from each batch).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from honing.errors import CompressionError, first_line

#: Operators whose constant weight input (by position) int8 quantization can make int8.
WEIGHTED_OPS = {"MatMul": 1, "Gemm": 1, "Conv": 1, "LSTM": 1, "Gather": 0, "Attention": 1}
#: Operators quantized by ``dynamic`` (Gemm is turned into MatMul by ONNX Runtime first).
DYNAMIC_OPS = ["MatMul", "Conv", "LSTM", "Attention", "Gather"]
#: Rows per calibration batch of ``static``.
CALIBRATION_BATCH = 64
#: ``compress.quantize`` names of the half-precision weight types, and the stored dtype they mean.
HALF_DTYPES = {"fp16": "float16", "float16": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16"}

_NOTHING = "int8 quantization applies to linear layers; this model has none"
_NOTHING_HINT = ("quantize neural networks (MatMul/Gemm/Conv/LSTM layers); for tree ensembles and linear models "
                 "try compress.distill into an mlp student instead")


# ---------------------------------------------------------------------- int8 on ONNX bytes

def quantize_dynamic_bytes(data: bytes) -> bytes:
    """``data`` (a serialized ONNX model) with int8 weights and dynamically quantized activations.

    Raises :class:`CompressionError` when the model has no layer ONNX Runtime can quantize dynamically.
    """
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    model = _load(data)
    _require_weighted_ops(model, DYNAMIC_OPS + ["Gemm"])
    with tempfile.TemporaryDirectory(prefix="honing-quantize-") as tmp:
        source, target = Path(tmp) / "model.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(data)
        with _onnxruntime("dynamic"):
            ort_quantize_dynamic(source, target, op_types_to_quantize=DYNAMIC_OPS, per_channel=False,
                                 reduce_range=True, weight_type=QuantType.QInt8)
        out = target.read_bytes()
    _require_int8(model, _load(out))
    return out


def quantize_static_bytes(data: bytes, calibration: np.ndarray, input_name: str) -> bytes:
    """``data`` (a serialized ONNX model) with int8 weights and activations (QDQ format), the activation
    ranges calibrated by running the model on ``calibration`` (rows of its input ``input_name``).

    Raises :class:`CompressionError` when the model has no layer to quantize or no calibration rows.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    model = _load(data)
    _require_weighted_ops(model, list(WEIGHTED_OPS))
    calibration = np.asarray(calibration)
    if len(calibration) == 0:
        raise CompressionError("static int8 quantization needs calibration rows, and none were given",
                               "set compress.calibration_rows to a positive number")
    batch, fixed = _batch_rows(model, input_name)
    if fixed and len(calibration) < batch:
        raise CompressionError(f"static int8 quantization of this model needs batches of {batch} rows, "
                               f"and {len(calibration)} calibration rows were given",
                               f"set compress.calibration_rows to at least {batch}")
    rows = calibration.astype(_input_dtype(model, input_name), copy=False)
    reader = _CalibrationRows(rows, input_name, batch, fixed)
    with tempfile.TemporaryDirectory(prefix="honing-quantize-") as tmp:
        source, prepared, target = (Path(tmp) / name for name in ("model.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(data)
        with _onnxruntime("static"):
            quant_pre_process(source, prepared, skip_symbolic_shape=True)
            ort_quantize_static(prepared, target, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                                reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
        out = target.read_bytes()
    _require_int8(model, _load(out))
    return out


class _CalibrationRows:
    """ONNX Runtime's ``CalibrationDataReader`` over an array of rows, ``batch`` rows at a time (only whole
    batches when the model's batch size is ``fixed``)."""

    def __init__(self, rows: np.ndarray, input_name: str, batch: int, fixed: bool):
        self.rows, self.input_name, self.batch, self.fixed = rows, input_name, batch, fixed
        self._batches = self._iterate()

    def _iterate(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.rows), self.batch):
            rows = self.rows[start: start + self.batch]
            if len(rows) == self.batch or not self.fixed:
                yield {self.input_name: rows}

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch as ONNX Runtime feeds it, or None at the end."""
        return next(self._batches, None)

    def rewind(self) -> None:
        """Start again from the first batch."""
        self._batches = self._iterate()


# ---------------------------------------------------------------------- OnnxModel wrappers

def quantize_dynamic(model: Any) -> Any:
    """An :class:`~honing.bundle.onnx_model.OnnxModel` with int8 dynamic quantization (see
    :func:`quantize_dynamic_bytes`); its meta is the original's with ``quantized: int8-dynamic``."""
    return _rewrapped(model, quantize_dynamic_bytes(model.data), "int8-dynamic")


def quantize_static(model: Any, calibration: np.ndarray) -> Any:
    """An :class:`~honing.bundle.onnx_model.OnnxModel` with static int8 quantization calibrated on
    ``calibration`` (preprocessed training rows; see :func:`quantize_static_bytes`); its meta is the
    original's with ``quantized: int8-static``."""
    return _rewrapped(model, quantize_static_bytes(model.data, calibration, _input_name(model)), "int8-static")


def _rewrapped(model: Any, data: bytes, quantized: str) -> Any:
    from honing.bundle.onnx_model import OnnxModel

    return OnnxModel(data, {**model.meta, "quantized": quantized})


def _input_name(model: Any) -> str:
    """The name of the graph's (single) input, read from the model itself."""
    inputs = _graph_inputs(_load(model.data))
    if len(inputs) != 1:
        raise CompressionError(f"static int8 quantization feeds one input, and this model has {len(inputs)}",
                               "use quantize: [dynamic] for this model")
    return inputs[0].name


# ---------------------------------------------------------------------- half-precision weights

def cast_weights(estimator: Any, dtype: str) -> Any:
    """A copy of the fitted honing neural ``estimator`` whose weights are stored as ``dtype`` (``fp16`` /
    ``float16`` or ``bf16`` / ``bfloat16``) and computed in float32: it predicts exactly as it will once
    saved in a bundle and loaded again (every floating tensor rounded to ``dtype`` and back).
    ``estimator`` itself is left unchanged."""
    if dtype not in HALF_DTYPES:
        raise CompressionError(f"unknown weight type {dtype!r}", f"use one of {sorted(HALF_DTYPES)}")
    if not hasattr(estimator, "export_state"):
        raise CompressionError(f"{dtype} weights apply to neural models, and this is a {type(estimator).__name__}",
                               "use quantize: [dynamic] (int8 through ONNX) instead")
    from honing.models.estimators import WEIGHT_DTYPES, import_state

    name = HALF_DTYPES[dtype]
    tensors, meta = estimator.export_state()
    stored = {k: v.to(WEIGHT_DTYPES[name]) if v.is_floating_point() else v for k, v in tensors.items()}
    copy = import_state(stored, {**meta, "weights_dtype": name})
    for attr in ("history_", "health_", "baseline_loss_"):  # what training left, for reports
        if hasattr(estimator, attr):
            setattr(copy, attr, getattr(estimator, attr))
    return copy


# ---------------------------------------------------------------------- helpers

def _load(data: bytes) -> Any:
    import onnx

    try:
        return onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - a user's file
        raise CompressionError(f"cannot read the ONNX model ({exc})", "export the model again") from None


def _graph_inputs(model: Any) -> list[Any]:
    """The graph's real inputs (old exporters also list initializers as inputs)."""
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _require_weighted_ops(model: Any, op_types: list[str]) -> None:
    """Raise :class:`CompressionError` unless a node of ``op_types`` has a constant weight to quantize."""
    constants = {t.name for t in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    for node in model.graph.node:
        position = WEIGHTED_OPS.get(node.op_type)
        if node.op_type in op_types and position is not None and len(node.input) > position \
                and node.input[position] in constants:
            return
    raise CompressionError(_NOTHING, _NOTHING_HINT)


def _require_int8(before: Any, after: Any) -> None:
    """Raise :class:`CompressionError` unless quantization produced int8 weights (else nothing changed)."""
    import onnx

    def eight_bit(model: Any) -> set[str]:
        kinds = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
        return {t.name for t in model.graph.initializer if t.data_type in kinds}

    if not eight_bit(after) - eight_bit(before):
        raise CompressionError(_NOTHING, _NOTHING_HINT)


def _input_dtype(model: Any, input_name: str) -> np.dtype:
    """The numpy dtype of the graph input ``input_name``."""
    from onnx import helper

    for graph_input in _graph_inputs(model):
        if graph_input.name == input_name:
            return np.dtype(helper.tensor_dtype_to_np_dtype(graph_input.type.tensor_type.elem_type))
    names = [i.name for i in _graph_inputs(model)]
    raise CompressionError(f"the ONNX model has no input {input_name!r}", f"its inputs are {names}")


def _batch_rows(model: Any, input_name: str) -> tuple[int, bool]:
    """Rows per calibration batch and whether the model demands exactly that many: the input's fixed batch
    size if it has one, else CALIBRATION_BATCH (the last batch may be smaller)."""
    for graph_input in _graph_inputs(model):
        dims = graph_input.type.tensor_type.shape.dim
        if graph_input.name == input_name and dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            return int(dims[0].dim_value), True
    return CALIBRATION_BATCH, False


@contextlib.contextmanager
def _onnxruntime(mode: str) -> Iterator[None]:
    """Run ONNX Runtime's quantization with its log silenced (it logs advice through the root logger) and
    its failures on this model turned into a :class:`CompressionError` (so ``honing compress`` skips it)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    except Exception as exc:  # whatever the quantizer met in this graph
        raise CompressionError(f"ONNX Runtime could not apply {mode} int8 quantization to this model "
                               f"({first_line(exc) or type(exc).__name__})",
                               f"leave {mode} out of compress.quantize") from exc
    finally:
        root.setLevel(level)
