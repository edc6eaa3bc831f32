"""Quantization: int8 ONNX models (dynamic, static) against the fp32 ONNX model and scikit-learn's
accuracy, and fp16/bf16 weights against weights rounded by hand."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from honing.compression.quantize import cast_weights, quantize_dynamic_bytes, quantize_static_bytes
from honing.errors import CompressionError
from honing.models.estimators import NeuralClassifier, import_state
from honing.models.nets import build_net


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr).astype(np.float32), scaler.transform(X_te).astype(np.float32), y_tr, y_te


@pytest.fixture(scope="module")
def mlp(digits):
    """An MLP big enough that its weights dominate the ONNX file (64 → 256 → 256 → 10)."""
    X_tr, _, y_tr, _ = digits
    return NeuralClassifier(net="mlp", net_params={"hidden": [256, 256]}, epochs=8, early_stopping=False,
                            random_state=0).fit(X_tr, y_tr)


def to_onnx_bytes(module: torch.nn.Module, sample: torch.Tensor) -> bytes:
    """``module`` through torch's TorchScript ONNX exporter (fast; its deprecation warnings silenced), with
    input ``X`` and a dynamic batch axis."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (sample,), buffer, input_names=["X"], output_names=["out"],
                          dynamic_axes={"X": {0: "batch"}, "out": {0: "batch"}}, dynamo=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fp32_onnx(mlp):
    return to_onnx_bytes(mlp.module_, torch.zeros(2, mlp.n_features_in_))


def onnx_predict(data: bytes, X: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})[0].argmax(axis=1)


def op_types(data: bytes) -> set[str]:
    return {node.op_type for node in onnx.load_from_string(data).graph.node}


def test_fp32_onnx_predicts_like_the_estimator(mlp, fp32_onnx, digits):
    _, X_te, _, _ = digits
    np.testing.assert_array_equal(onnx_predict(fp32_onnx, X_te), mlp.predict(X_te))


def test_dynamic_int8_is_small_and_as_accurate(fp32_onnx, digits):
    _, X_te, _, y_te = digits
    int8 = quantize_dynamic_bytes(fp32_onnx)
    assert len(int8) <= 0.35 * len(fp32_onnx)
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= op_types(int8)
    assert "Gemm" not in op_types(int8)  # every linear layer became an integer matmul
    fp32 = accuracy_score(y_te, onnx_predict(fp32_onnx, X_te))
    assert fp32 > 0.9
    assert accuracy_score(y_te, onnx_predict(int8, X_te)) >= fp32 - 0.02


def test_static_int8_is_small_and_as_accurate(fp32_onnx, digits):
    X_tr, X_te, _, y_te = digits
    int8 = quantize_static_bytes(fp32_onnx, X_tr[:256], "X")
    assert len(int8) <= 0.35 * len(fp32_onnx)
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(int8)
    weights = onnx.load_from_string(int8).graph.initializer
    assert sum(t.data_type == onnx.TensorProto.INT8 for t in weights) >= 3  # the three weight matrices
    fp32 = accuracy_score(y_te, onnx_predict(fp32_onnx, X_te))
    assert accuracy_score(y_te, onnx_predict(int8, X_te)) >= fp32 - 0.02


def test_static_int8_needs_calibration_rows(fp32_onnx):
    with pytest.raises(CompressionError, match="calibration rows"):
        quantize_static_bytes(fp32_onnx, np.zeros((0, 64), np.float32), "X")
    with pytest.raises(CompressionError, match="no input 'x'"):
        quantize_static_bytes(fp32_onnx, np.zeros((4, 64), np.float32), "x")
    with pytest.raises(CompressionError, match="could not apply static int8 quantization"):
        quantize_static_bytes(fp32_onnx, np.zeros((4, 63), np.float32), "X")  # rows of the wrong width


def test_a_tree_ensemble_has_nothing_to_quantize(digits):
    from skl2onnx import to_onnx

    X_tr, _, y_tr, _ = digits
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X_tr, y_tr)
    data = to_onnx(forest, X_tr[:1], options={"zipmap": False}).SerializeToString()
    with pytest.raises(CompressionError, match="applies to linear layers; this model has none"):
        quantize_dynamic_bytes(data)
    with pytest.raises(CompressionError, match="applies to linear layers; this model has none"):
        quantize_static_bytes(data, X_tr[:64], "X")


def test_lstm_weights_are_quantized_dynamically():
    """ONNX Runtime quantizes LSTM dynamically (GRU and RNN it does not)."""
    torch.manual_seed(0)
    fp32 = to_onnx_bytes(torch.nn.LSTM(16, 64, batch_first=True), torch.zeros(2, 5, 16))
    int8 = quantize_dynamic_bytes(fp32)
    assert "DynamicQuantizeLSTM" in op_types(int8)
    x = np.random.default_rng(0).normal(size=(8, 5, 16)).astype(np.float32)
    run = [ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
           for data in (fp32, int8)]
    np.testing.assert_allclose(run[1], run[0], atol=0.05)
    assert len(int8) <= 0.35 * len(fp32)


def test_unreadable_bytes_are_a_compression_error():
    with pytest.raises(CompressionError, match="cannot read the ONNX model"):
        quantize_dynamic_bytes(b"not an onnx model")


# ---------------------------------------------------------------------- fp16 / bf16 weights

def rounded_probabilities(estimator: NeuralClassifier, dtype: torch.dtype, X: np.ndarray) -> np.ndarray:
    """The oracle: the original weights rounded to ``dtype`` and back by hand, run in float32."""
    state = {k: v.to(dtype).to(torch.float32) if v.is_floating_point() else v
             for k, v in estimator.module_.state_dict().items()}
    net = build_net("mlp", estimator.input_shape_, 10, estimator.net_params_)
    net.load_state_dict(state)
    with torch.no_grad():
        return torch.softmax(net.eval()(torch.as_tensor(X)), dim=1).numpy()


@pytest.mark.parametrize(("name", "dtype"), [("fp16", torch.float16), ("bfloat16", torch.bfloat16)])
def test_half_precision_weights(mlp, digits, name, dtype):
    _, X_te, _, _ = digits
    before = {k: v.clone() for k, v in mlp.module_.state_dict().items()}
    copy = cast_weights(mlp, name)

    tensors, meta = copy.export_state()
    assert all(t.dtype == dtype for t in tensors.values())
    assert meta["weights_dtype"] == ("float16" if dtype == torch.float16 else "bfloat16")
    full = len(save(mlp.export_state()[0]))
    assert 0.45 < len(save(tensors)) / full < 0.55  # half the size on disk

    expected = rounded_probabilities(mlp, dtype, X_te)
    np.testing.assert_allclose(copy.predict_proba(X_te), expected, rtol=0, atol=1e-6)
    assert np.abs(mlp.predict_proba(X_te) - expected).max() > 1e-6  # the rounding did change something
    assert all(p.dtype == torch.float32 for p in copy.module_.parameters())  # computed in float32
    loaded = import_state(tensors, meta)  # what a bundle round trip gives
    np.testing.assert_array_equal(loaded.predict_proba(X_te), copy.predict_proba(X_te))
    assert loaded.weights_dtype_ == meta["weights_dtype"]

    assert not hasattr(mlp, "weights_dtype_")  # the input estimator is unchanged
    for key, value in mlp.module_.state_dict().items():
        assert torch.equal(value, before[key])


def test_half_precision_weights_through_a_bundle(mlp, digits, tmp_path):
    from honing.bundle.store import load_bundle, save_bundle

    X_tr, X_te, _, _ = digits
    sizes = {}
    for name, model in (("fp32", mlp), ("bf16", cast_weights(mlp, "bf16"))):
        path = save_bundle(tmp_path / name, preprocessor=StandardScaler().fit(X_tr), model=model,
                           task="classification", features={}, classes=list(range(10)), model_type="mlp", metrics={},
                           recipe={}, data_fingerprint="x")
        sizes[name] = (path / "model.safetensors").stat().st_size
        np.testing.assert_array_equal(load_bundle(path).predict_proba_encoded(X_te), model.predict_proba(X_te))
    assert 0.45 < sizes["bf16"] / sizes["fp32"] < 0.55


def test_half_precision_needs_a_neural_model(digits):
    X_tr, _, y_tr, _ = digits
    with pytest.raises(CompressionError, match="neural models"):
        cast_weights(RandomForestClassifier(n_estimators=2).fit(X_tr, y_tr), "fp16")
    with pytest.raises(CompressionError, match="unknown weight type"):
        cast_weights(None, "int4")


def test_onnx_model_wrappers(mlp, digits):
    """Through honing's own exporter and OnnxModel: the meta is kept, with how it was quantized."""
    from honing.compression.onnx_export import export_onnx
    from honing.compression.quantize import quantize_dynamic, quantize_static

    X_tr, X_te, _, y_te = digits
    exported = export_onnx(mlp, "classification", X_tr[:64])
    for quantized, kind in ((quantize_dynamic(exported), "int8-dynamic"),
                            (quantize_static(exported, X_tr[:256]), "int8-static")):
        assert quantized.meta["quantized"] == kind
        assert {k: v for k, v in quantized.meta.items() if k != "quantized"} == exported.meta
        assert accuracy_score(y_te, quantized.predict(X_te)) >= accuracy_score(y_te, mlp.predict(X_te)) - 0.02


def test_convolutions_are_quantized(digits):
    """A CNN's Conv layers become ConvInteger (dynamic) or Conv between QDQ pairs (static), as accurate."""
    X_tr, X_te, y_tr, y_te = digits
    cnn = NeuralClassifier(net="cnn", net_params={"channels": [32, 64]}, epochs=10, early_stopping=False,
                           random_state=0).fit(X_tr, y_tr)
    fp32 = to_onnx_bytes(torch.nn.Sequential(torch.nn.Unflatten(1, (1, 8, 8)), cnn.module_), torch.zeros(2, 64))
    dynamic, static = quantize_dynamic_bytes(fp32), quantize_static_bytes(fp32, X_tr[:128], "X")
    assert "ConvInteger" in op_types(dynamic)
    graph = onnx.load_from_string(static).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert convs and all(set(node.input[:2]) <= dequantized for node in convs)  # int8 input and weights
    reference = onnx_predict(fp32, X_te)
    np.testing.assert_array_equal(reference, cnn.predict(X_te))
    for quantized in (dynamic, static):
        predicted = onnx_predict(quantized, X_te)
        assert accuracy_score(y_te, predicted) >= accuracy_score(y_te, reference) - 0.03
        assert (predicted == reference).mean() >= 0.95
