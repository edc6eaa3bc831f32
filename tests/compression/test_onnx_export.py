"""Tests for honing.compression.onnx_export: every exported graph is checked against the native model's
own predictions (probabilities or values), on rows it was not traced with, at batch sizes 1 and 1000."""

from __future__ import annotations

import subprocess
import sys

import lightgbm
import numpy as np
import onnx
import pytest
import torch
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine, make_classification
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import Lasso, LogisticRegression
from sklearn.preprocessing import QuantileTransformer, StandardScaler
from sklearn.semi_supervised import LabelSpreading
from sklearn.svm import LinearSVC

from honing.bundle import LightGBMModel, OnnxModel
from honing.compression.onnx_export import check_parity, export_onnx
from honing.errors import CompressionError
from honing.models.estimators import NeuralClassifier, NeuralRegressor, import_state
from honing.models.nets import build_net

T = 12  # token sequence length


def standardised(X: np.ndarray) -> np.ndarray:
    return StandardScaler().fit_transform(X).astype(np.float32)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return standardised(X), y


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return standardised(X), y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return standardised(X), y * 3.0 + 100.0


@pytest.fixture(scope="module")
def tokens():
    """Right-padded token ids (pad 0) of varied lengths, including an all-padding row and full rows;
    the label is whether the first token is even."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, T + 1, 240)
    lengths[:3] = [0, T, T]
    ids = rng.integers(2, 40, (240, T))
    ids[np.arange(T)[None, :] >= lengths[:, None]] = 0
    return ids.astype(np.float32), (ids[:, 0] % 2 == 0).astype(int)


def assert_matches_native(native, exported: OnnxModel, X: np.ndarray, task: str, atol: float = 1e-4):
    """Probabilities / values of the ONNX model equal the native model's on ``X``, also one row at a time."""
    if task == "classification":
        expected = native.predict_proba(X)
        got = exported.predict_proba(X)
        assert got.shape == expected.shape and got.dtype == np.float64
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(exported.predict(X), np.argmax(got, axis=1))
        np.testing.assert_array_equal(exported.classes_, np.arange(expected.shape[1]))
    else:
        expected = np.asarray(native.predict(X), dtype=np.float64)
        got = exported.predict(X)
        assert got.shape == expected.shape and exported.classes_ is None
    np.testing.assert_allclose(got, expected, atol=atol, rtol=1e-3)
    one = exported.predict_proba(X[:1]) if task == "classification" else exported.predict(X[:1])
    np.testing.assert_allclose(one, got[:1], rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------ networks


def test_mlp_classifier_multiclass(wine):
    X, y = wine
    model = NeuralClassifier(net="mlp", net_params={"hidden": [32, 16]}, epochs=5, random_state=0).fit(X, y)
    exported = export_onnx(model, "classification", X[:3])
    assert exported.meta["input_dtype"] == "float32" and exported.meta["n_classes"] == 3
    assert exported.meta["source"] == "NeuralClassifier/mlp" and exported.n_features_in_ == X.shape[1]
    assert 0 <= exported.meta["parity"] < 1e-4
    assert_matches_native(model, exported, X, "classification")


def test_mlp_regressor_undoes_the_target_scaling(diabetes):
    X, y = diabetes
    model = NeuralRegressor(net="mlp", net_params={"hidden": [16]}, epochs=5, random_state=0).fit(X, y)
    exported = export_onnx(model, "regression", X[:1])  # a single sample row is enough
    assert exported.meta["output_kind"] == "value" and exported.meta["n_classes"] is None
    assert_matches_native(model, exported, X, "regression")
    # independent oracle: the raw network output, de-standardised by hand
    with torch.no_grad():
        raw = model.module_(torch.as_tensor(X)).numpy().reshape(-1).astype(np.float64)
    np.testing.assert_allclose(exported.predict(X), raw * model.y_scale_ + model.y_mean_, rtol=1e-5)
    assert abs(model.y_mean_) > 50  # the scaling matters: values are far from the standardised ones


def test_cnn_on_digits_reshapes_flat_rows():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    model = NeuralClassifier(net="cnn", net_params={"input_shape": [1, 8, 8], "channels": [4, 8]}, epochs=2,
                             random_state=0).fit(X[:400], y[:400])
    exported = export_onnx(model, "classification", X[:4])
    assert exported.meta["n_features"] == 64 and exported.meta["n_classes"] == 10
    assert_matches_native(model, exported, X[400:], "classification")


@pytest.mark.parametrize("net, params", [
    ("lstm", {"embed_dim": 8, "hidden": 8, "layers": 2, "bidirectional": True}),
    ("gru", {"embed_dim": 8, "hidden": 8, "pooling": "mean"}),
    ("transformer", {"d_model": 16, "heads": 2, "layers": 1, "ff": 16}),
])
def test_sequence_nets_on_token_ids(tokens, net, params):
    X, y = tokens
    model = NeuralClassifier(net=net, net_params=params, epochs=2, random_state=0).fit(X, y)
    exported = export_onnx(model, "classification", X[:4])
    assert exported.meta["input_dtype"] == "int64"
    graph_input = onnx.load_from_string(exported.data).graph.input[0]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.INT64
    rows = X.copy()
    rows[5, 0] = 5000  # past the vocabulary: the unknown id, as the estimator reads it
    assert_matches_native(model, exported, rows, "classification")


def test_bidirectional_lstm_last_pooling_depends_on_lengths(tokens):
    """The graph runs the backward direction within each row's length, as packing does: the same
    tokens with more padding give the native model's (different) answer, not the padded-run one."""
    X, y = tokens
    model = NeuralClassifier(net="lstm", net_params={"embed_dim": 8, "hidden": 8, "bidirectional": True},
                             epochs=2, random_state=0).fit(X, y)
    exported = export_onnx(model, "classification", X[:4])
    short = np.zeros((2, T), np.float32)
    short[0, :3] = [5, 6, 7]
    short[1, :] = 9
    assert_matches_native(model, exported, short, "classification", atol=1e-5)


def test_recurrent_net_on_float_sequences():
    """input_shape [T, F]: flat rows reshaped to sequences of feature vectors (float input, no lengths)."""
    X = np.random.default_rng(0).normal(size=(150, 12)).astype(np.float32)
    y = (X[:, :3].sum(axis=1) > 0).astype(int)
    model = NeuralClassifier(net="gru", net_params={"input_shape": [4, 3], "hidden": 8, "bidirectional": True},
                             epochs=2, random_state=0).fit(X, y)
    exported = export_onnx(model, "classification", X[:2])
    assert exported.meta["input_dtype"] == "float32"
    assert_matches_native(model, exported, X, "classification")


def test_text_encoder_exports(tokens):
    """A pretrained text encoder (a tiny BERT rebuilt from its config) exports with its attention mask."""
    pytest.importorskip("transformers")
    config = {"model_type": "bert", "vocab_size": 60, "hidden_size": 16, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 32}
    torch.manual_seed(0)
    net = build_net("text_encoder", (T,), 3, {"config": config})
    meta = {"estimator": "NeuralClassifier", "params": NeuralClassifier(net="text_encoder").get_params(),
            "net": "text_encoder", "net_params": {"config": config}, "input_shape": [T], "n_features_in": T,
            "classes": [0, 1, 2]}
    model = import_state(net.state_dict(), meta)
    exported = export_onnx(model, "classification", tokens[0][:4])
    assert exported.meta["input_dtype"] == "int64" and exported.meta["n_classes"] == 3
    assert_matches_native(model, exported, tokens[0][:60], "classification")


def test_export_leaves_the_native_model_unchanged(wine):
    X, y = wine
    model = NeuralClassifier(net="mlp", net_params={"hidden": [8]}, epochs=2, random_state=0).fit(X, y)
    before = model.predict_proba(X)
    weights = {k: v.clone() for k, v in model.module_.state_dict().items()}
    export_onnx(model, "classification", X[:2])
    assert not model.module_.training
    np.testing.assert_array_equal(model.predict_proba(X), before)
    assert all(torch.equal(v, model.module_.state_dict()[k]) for k, v in weights.items())


def test_exporter_chatter_stays_off_the_console():
    """A fresh interpreter (the exporters announce some things once per process) prints nothing while
    exporting a network and a LightGBM model."""
    code = """
import sys
import numpy as np, lightgbm
from sklearn.datasets import load_wine
from honing.models.estimators import NeuralClassifier
X, y = load_wine(return_X_y=True)
X = X.astype(np.float32)
net = NeuralClassifier(net="mlp", net_params={"hidden": [8]}, epochs=1, random_state=0).fit(X, y)
trees = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, y)
print("start", flush=True)
print("start", file=sys.stderr, flush=True)
from honing.compression.onnx_export import export_onnx
export_onnx(net, "classification", X[:3])
export_onnx(trees, "classification", X[:3])
print("end")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split("start\n", 1)[1] == "end\n"
    assert result.stderr.split("start\n", 1)[1] == ""


def test_graphs_carry_no_value_info_and_quantize(tokens, tmp_path):
    """ONNX Runtime's dynamic quantizer works on the exported graphs (it fails shape inference on the
    dynamo exporter's value_info, which export drops)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    X, y = tokens
    model = NeuralClassifier(net="lstm", net_params={"embed_dim": 8, "hidden": 8}, epochs=1,
                             random_state=0).fit(X, y)
    exported = export_onnx(model, "classification", X[:4])
    assert len(onnx.load_from_string(exported.data).graph.value_info) == 0
    (tmp_path / "m.onnx").write_bytes(exported.data)
    quantize_dynamic(tmp_path / "m.onnx", tmp_path / "q.onnx", weight_type=QuantType.QInt8)
    quantized = OnnxModel((tmp_path / "q.onnx").read_bytes(), {**exported.meta, "quantized": "int8-dynamic"})
    np.testing.assert_allclose(quantized.predict_proba(X), exported.predict_proba(X), atol=0.05)


# ------------------------------------------------------------------------------------------ classic models


def lgbm_classifier(X, y):
    return lightgbm.LGBMClassifier(n_estimators=40, verbose=-1, random_state=0, n_jobs=1).fit(X, y)


CLASSIC = {
    "logistic_binary": ("cancer", "classification", lambda X, y: LogisticRegression(max_iter=500).fit(X, y)),
    "logistic_3": ("wine", "classification", lambda X, y: LogisticRegression(max_iter=500).fit(X, y)),
    "random_forest_3": ("wine", "classification", lambda X, y: RandomForestClassifier(30, random_state=0).fit(X, y)),
    "random_forest_regression": ("diabetes", "regression",
                                 lambda X, y: RandomForestRegressor(30, random_state=0).fit(X, y)),
    "lightgbm_binary": ("cancer", "classification", lgbm_classifier),
    "lightgbm_3": ("wine", "classification", lgbm_classifier),
    "lightgbm_regression": ("diabetes", "regression",
                            lambda X, y: lightgbm.LGBMRegressor(n_estimators=40, verbose=-1, n_jobs=1).fit(X, y)),
    "booster_3": ("wine", "classification",
                  lambda X, y: LightGBMModel(lgbm_classifier(X, y).booster_, "classification", 3)),
    "booster_binary": ("cancer", "classification",
                       lambda X, y: LightGBMModel(lgbm_classifier(X, y).booster_, "classification", 2)),
    "booster_regression": ("diabetes", "regression", lambda X, y: LightGBMModel(
        lightgbm.LGBMRegressor(n_estimators=40, verbose=-1, n_jobs=1).fit(X, y).booster_, "regression")),
    "lasso_standardised_target": ("diabetes", "regression", lambda X, y: TransformedTargetRegressor(
        Lasso(alpha=0.01), transformer=StandardScaler()).fit(X, y)),
}


@pytest.mark.parametrize("case", sorted(CLASSIC))
def test_classic_model_parity(case, request):
    data, task, fit = CLASSIC[case]
    X, y = request.getfixturevalue(data)
    model = fit(X[::2], y[::2])
    exported = export_onnx(model, task, X[::2][:5])
    lightgbm_model = case.startswith(("lightgbm", "booster"))
    assert exported.meta["input_dtype"] == ("float64" if lightgbm_model else "float32")
    assert_matches_native(model, exported, X[1::2], task)


def test_dynamic_batch_axis_one_and_a_thousand_rows(wine):
    X, y = wine
    rows = np.random.default_rng(1).normal(size=(1000, X.shape[1])).astype(np.float32)
    for model in (NeuralClassifier(net="mlp", net_params={"hidden": [8]}, epochs=2, random_state=0).fit(X, y),
                  lgbm_classifier(X, y)):
        exported = export_onnx(model, "classification", X[:3])  # traced / converted on 3 rows
        assert exported.predict_proba(rows[:1]).shape == (1, 3)
        assert exported.predict_proba(rows).shape == (1000, 3)
        np.testing.assert_allclose(exported.predict_proba(rows), model.predict_proba(rows), atol=1e-4)
        assert exported.predict(rows[:0]).shape == (0,)


# ------------------------------------------------------------------------------------------ parity check


def test_check_parity_returns_the_largest_difference(cancer):
    X, y = cancer
    model = LogisticRegression(max_iter=500).fit(X, y)
    exported = export_onnx(model, "classification", X[:5], parity=False)
    assert "parity" not in exported.meta
    expected = np.abs(exported.predict_proba(X) - model.predict_proba(X)).max()
    assert check_parity(model, exported, X, "classification") == pytest.approx(expected, abs=0)


def test_check_parity_raises_with_the_largest_difference(wine):
    X, y = wine
    exported = export_onnx(LogisticRegression(max_iter=500).fit(X, y), "classification", X[:5])
    other = LogisticRegression(C=0.001, max_iter=500).fit(X, y)  # a different model: outputs differ
    diff = np.abs(exported.predict_proba(X) - other.predict_proba(X))
    row, column = np.unravel_index(np.argmax(diff), diff.shape)
    with pytest.raises(CompressionError, match="differ from the native model's by up to") as info:
        check_parity(other, exported, X, "classification")
    assert f"{diff.max():.3g}" in info.value.what
    assert f"row {row}, class {column}" in info.value.what
    assert info.value.hint


def test_check_parity_regression_tolerance_is_relative(diabetes):
    X, y = diabetes
    model = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1, n_jobs=1).fit(X, y)
    exported = export_onnx(model, "regression", X[:5])
    shifted = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1, n_jobs=1).fit(X, y + 1.0)  # every value +~1
    with pytest.raises(CompressionError, match="predictions differ"):
        check_parity(shifted, exported, X, "regression")
    assert check_parity(shifted, exported, X, "regression", atol=0, rtol=0.05) > 0.5


def test_check_parity_regression_atol_scales_with_the_values(diabetes):
    X, y = diabetes
    model = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1, n_jobs=1).fit(X, y * 1e4)  # values up to ~1e7
    exported = export_onnx(model, "regression", X[:5])
    values = model.predict(X)
    shifted = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1, n_jobs=1).fit(X, y * 1e4 + 50.0)  # +50 everywhere
    scale = np.abs(values).max()
    assert 50 < 1e-4 * scale  # within atol·scale: float32 values of ~1e7 are only good to ~1
    assert 49 < check_parity(shifted, exported, X, "regression") < 51


def test_lightgbm_graph_compares_in_float64(wine):
    """LightGBM places thresholds within float32 rounding of training values; the graph keeps its float64
    thresholds and takes float64 rows, so even rows on such a threshold agree with the booster."""
    X, y = wine
    X64 = X.astype(np.float64) + np.random.default_rng(0).normal(0, 1e-9, X.shape)  # not float32 values
    model = lgbm_classifier(X64[::2], y[::2])
    exported = export_onnx(model, "classification", X64[:3])
    assert exported.meta["input_dtype"] == "float64"
    graph = onnx.load_from_string(exported.data).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert any(a.name == "nodes_values_as_tensor" for a in graph.node[0].attribute)
    on_thresholds = X64[::2]  # training rows: where LightGBM's thresholds sit closest
    np.testing.assert_allclose(exported.predict_proba(on_thresholds), model.predict_proba(on_thresholds),
                               atol=1e-6)


# ------------------------------------------------------------------------------------------ what cannot be exported


def test_unsupported_scikit_learn_model(wine):
    X, y = wine
    model = LabelSpreading().fit(X, y)
    with pytest.raises(CompressionError, match="cannot export a LabelSpreading model to ONNX") as info:
        export_onnx(model, "classification", X[:3])
    assert "native model" in info.value.hint


def test_not_a_model_and_classifier_without_probabilities(wine):
    X = wine[0]
    with pytest.raises(CompressionError, match="not a model honing can export"):
        export_onnx(object(), "classification", X[:3])
    X2, y2 = make_classification(100, 4, random_state=0)
    with pytest.raises(CompressionError, match="gives no probabilities"):
        export_onnx(LinearSVC().fit(X2, y2), "classification", X2[:3])


def test_target_transformer_other_than_standard_scaling(diabetes):
    X, y = diabetes
    model = TransformedTargetRegressor(Lasso(), transformer=QuantileTransformer(n_quantiles=50)).fit(X, y)
    with pytest.raises(CompressionError, match="QuantileTransformer"):
        export_onnx(model, "regression", X[:3])


def test_sample_rows_must_match_the_model(wine):
    X, y = wine
    model = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.raises(CompressionError, match="takes 13 features but the sample rows have 5"):
        export_onnx(model, "classification", X[:3, :5])
    with pytest.raises(CompressionError, match="sample rows"):
        export_onnx(model, "classification", X[:0])
