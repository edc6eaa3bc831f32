"""Tests for bundles that predict through ONNX Runtime: a bundle whose model is ONNX, a native bundle
with an ONNX alternate (backends native / onnx / auto), and tampering with either."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from honing.bundle import MODEL_FILES, LightGBMModel, OnnxModel, load_bundle, save_bundle, verify_bundle
from honing.compression.onnx_export import export_onnx
from honing.errors import BundleError, HoningError
from honing.models.estimators import NeuralClassifier


def frame(loader) -> tuple[pd.DataFrame, np.ndarray]:
    data = loader(as_frame=True)
    return data.data, data.target.to_numpy()


def preprocessor(df: pd.DataFrame) -> ColumnTransformer:
    return ColumnTransformer([("num", StandardScaler(), list(df.columns))]).fit(df)


def save(path: Path, pre, model, task: str, classes, **kwargs) -> Path:
    """save_bundle with defaults for the fields these tests do not care about."""
    return save_bundle(path, preprocessor=pre, model=model, task=task, features={c: {"kind": "numeric"} for c in
                       pre.feature_names_in_}, classes=classes, model_type="test", metrics={},
                       recipe={"target": "y"}, data_fingerprint="abc", **kwargs)


@pytest.fixture(scope="module")
def wine():
    """(frame, preprocessor, X, fitted logistic regression, its ONNX export, classes) on wine (3 classes)."""
    df, y = frame(load_wine)
    pre = preprocessor(df)
    X = pre.transform(df)
    model = LogisticRegression(max_iter=500).fit(X, y)
    return df, pre, X, model, export_onnx(model, "classification", X[:5]), ["a", "b", "c"]


@pytest.fixture
def alternate(tmp_path, wine) -> Path:
    """A native (skops) bundle carrying the model's ONNX export beside it."""
    _, pre, _, model, exported, classes = wine
    return save(tmp_path / "alt", pre, model, "classification", classes, onnx=exported)


def read_manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def write_manifest(path: Path, manifest: dict) -> None:
    """Write manifest.json re-signed as save_bundle would (sha256 of its canonical JSON)."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    (path / "manifest.json").write_text(json.dumps({**body, "manifest_sha256": digest}))


# ------------------------------------------------------------------------------------------ ONNX as the model


def test_onnx_model_bundle_round_trip(tmp_path, wine):
    df, pre, X, model, exported, classes = wine
    path = save(tmp_path / "b", pre, exported, "classification", classes)
    manifest = read_manifest(path)
    assert manifest["model_format"] == "onnx" and MODEL_FILES["onnx"] == "model.onnx"
    assert manifest["onnx"] == exported.meta
    assert set(manifest["files"]) == {"preprocess.skops", "model.onnx"}
    assert (path / "model.onnx").read_bytes() == exported.data
    for backend in ("native", "onnx", "auto"):  # an ONNX bundle always predicts through ONNX Runtime
        loaded = load_bundle(path, backend=backend)
        assert loaded.backend == "onnx" and isinstance(loaded.model, OnnxModel)
        np.testing.assert_array_equal(loaded.predict_proba(df).to_numpy(), exported.predict_proba(X))
    np.testing.assert_allclose(loaded.predict_proba(df).to_numpy(), model.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(loaded.predict(df), np.asarray(classes)[model.predict(X)])
    assert verify_bundle(path) == []


def test_onnx_regression_bundle_round_trip(tmp_path):
    df, y = frame(load_diabetes)
    pre = preprocessor(df)
    X = pre.transform(df)
    model = lightgbm.LGBMRegressor(n_estimators=30, verbose=-1, n_jobs=1).fit(X, y)
    exported = export_onnx(model, "regression", X[:5])
    loaded = load_bundle(save(tmp_path / "b", pre, exported, "regression", None))
    assert loaded.backend == "onnx" and loaded.model.classes_ is None
    np.testing.assert_array_equal(loaded.predict(df), exported.predict(X))
    np.testing.assert_allclose(loaded.predict(df), model.predict(X), rtol=1e-4)
    with pytest.raises(HoningError, match="only for classifiers"):
        loaded.predict_proba(df)


def test_neural_bundle_with_onnx_alternate(tmp_path, wine):
    df, pre, X, _, _, classes = wine
    net = NeuralClassifier(net="mlp", net_params={"hidden": [16]}, epochs=3, random_state=0).fit(X, load_wine().target)
    exported = export_onnx(net, "classification", X[:4])
    path = save(tmp_path / "nn", pre, net, "classification", classes, onnx=exported)
    native, fast = load_bundle(path), load_bundle(path, backend="auto")
    assert native.backend == "native" and native.manifest["model_format"] == "torch"
    assert fast.backend == "onnx" and isinstance(fast.model, OnnxModel)
    np.testing.assert_allclose(fast.predict_proba(df).to_numpy(), native.predict_proba(df).to_numpy(), atol=1e-5)
    np.testing.assert_allclose(native.predict_proba(df).to_numpy(), net.predict_proba(X), atol=1e-6)


# ------------------------------------------------------------------------------------------ ONNX beside a native model


def test_native_bundle_with_onnx_alternate_backends(alternate, wine):
    df, _, X, model, exported, _ = wine
    manifest = read_manifest(alternate)
    assert manifest["model_format"] == "skops" and manifest["onnx"] == exported.meta
    assert set(manifest["files"]) == {"preprocess.skops", "model.skops", "model.onnx"}
    native = load_bundle(alternate)
    assert native.backend == "native" and isinstance(native.model, LogisticRegression)
    for backend in ("onnx", "auto"):
        loaded = load_bundle(alternate, backend=backend)
        assert loaded.backend == "onnx" and isinstance(loaded.model, OnnxModel)
        np.testing.assert_allclose(loaded.predict_proba(df).to_numpy(), native.predict_proba(df).to_numpy(),
                                   atol=1e-5)
        np.testing.assert_array_equal(loaded.predict(df), native.predict(df))
    np.testing.assert_allclose(native.predict_proba(df).to_numpy(), model.predict_proba(X), rtol=0, atol=0)
    assert "backend='onnx'" in repr(loaded)
    assert verify_bundle(alternate) == []


def test_lightgbm_bundle_with_onnx_alternate(tmp_path, wine):
    df, pre, X, _, _, classes = wine
    model = lightgbm.LGBMClassifier(n_estimators=30, verbose=-1, n_jobs=1).fit(X, load_wine().target)
    native_model = LightGBMModel(model.booster_, "classification", 3)  # as a loaded bundle holds it
    path = save(tmp_path / "lgb", pre, model, "classification", classes,
                onnx=export_onnx(native_model, "classification", X[:5]))
    native, fast = load_bundle(path), load_bundle(path, backend="onnx")
    assert native.manifest["model_format"] == "lightgbm" and fast.backend == "onnx"
    np.testing.assert_allclose(fast.predict_proba(df).to_numpy(), native.predict_proba(df).to_numpy(), atol=1e-5)


def test_bundle_without_onnx(tmp_path, wine):
    _, pre, _, model, _, classes = wine
    path = save(tmp_path / "plain", pre, model, "classification", classes)
    assert "onnx" not in read_manifest(path)
    assert load_bundle(path, backend="auto").backend == "native"
    with pytest.raises(BundleError, match="has no ONNX model") as info:
        load_bundle(path, backend="onnx")
    assert "honing export" in info.value.hint and "--format onnx" in info.value.hint
    with pytest.raises(ValueError, match="backend"):
        load_bundle(path, backend="fast")


def test_onnx_backend_does_not_load_the_native_model(tmp_path, wine):
    """Predicting through ONNX never builds the native network (checked in a fresh interpreter: honing's
    estimators module is not even imported)."""
    _, pre, X, _, _, classes = wine
    net = NeuralClassifier(net="mlp", net_params={"hidden": [8]}, epochs=1, random_state=0).fit(X, load_wine().target)
    path = save(tmp_path / "nn", pre, net, "classification", classes, onnx=export_onnx(net, "classification", X[:2]))
    code = ("import sys; from sklearn.datasets import load_wine; from honing.bundle import load_bundle; "
            f"b = load_bundle({str(path)!r}, backend='onnx'); rows = load_wine(as_frame=True).data; "
            "print(b.backend, len(b.predict(rows)), 'honing.models.estimators' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["onnx", "178", "False"]


def test_save_checks_the_onnx_model(tmp_path, wine):
    _, pre, _, model, exported, classes = wine
    with pytest.raises(ValueError, match="3 classes but 2"):
        save(tmp_path / "b", pre, model, "classification", classes[:2], onnx=exported)
    with pytest.raises(ValueError, match="for classification"):
        save(tmp_path / "b", pre, model, "regression", None, onnx=exported)
    with pytest.raises(ValueError, match="for classification"):
        save(tmp_path / "b", pre, exported, "regression", None)
    with pytest.raises(TypeError, match="already an ONNX model"):
        save(tmp_path / "b", pre, exported, "classification", classes, onnx=exported)
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------------------------------ tampering


def test_modified_onnx_file_is_detected(alternate):
    data = bytearray((alternate / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (alternate / "model.onnx").write_bytes(bytes(data))
    for backend in ("native", "onnx"):
        with pytest.raises(BundleError, match="model.onnx was modified"):
            load_bundle(alternate, backend=backend)
    assert verify_bundle(alternate) == ["file model.onnx was modified after the bundle was saved (checksum mismatch)"]


def test_edited_onnx_meta_without_resigning_is_detected(alternate):
    manifest = read_manifest(alternate)
    manifest["onnx"]["n_classes"] = 2
    (alternate / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="checksum mismatch"):
        load_bundle(alternate, backend="onnx")


@pytest.mark.parametrize("edit, expected", [
    (lambda m: m["onnx"].update(n_classes=2), "the ONNX model has 2 classes but the manifest lists 3"),
    (lambda m: m["onnx"].update(input_dtype="float16"), "'onnx' 'input_dtype' must be one of float32, float64, int64"),
    (lambda m: m["onnx"].update(task="regression", n_classes=None, output_kind="value"),
     "the ONNX model is for regression but the manifest says classification"),
    (lambda m: m["onnx"].update(parity=-1), "'onnx' 'parity' must be a non-negative number"),
    (lambda m: m.update(onnx=["not", "an", "object"]), "'onnx' must be an object"),
    (lambda m: m.pop("onnx"), "'files' lists model.onnx but there is no 'onnx' section"),
    (lambda m: m["files"].pop("model.onnx"), "'files' does not list model.onnx"),
    (lambda m: m.update(model_format="onnx", onnx=None) or m.pop("onnx"), "an ONNX bundle needs an 'onnx' object"),
])
def test_resigned_invalid_onnx_meta_is_refused(alternate, edit, expected):
    manifest = read_manifest(alternate)
    edit(manifest)
    write_manifest(alternate, manifest)
    with pytest.raises(BundleError, match="malformed") as info:
        load_bundle(alternate)
    assert expected in info.value.what
    assert expected in verify_bundle(alternate)[0]


@pytest.mark.parametrize("field, value, expected", [
    ("output", "nonexistent", "has no output 'nonexistent'"),
    ("input", "Y", "takes inputs ['X']"),
    ("n_features", 7, "not (n, 7)"),
    ("input_dtype", "int64", "not a tensor(int64)"),
])
def test_resigned_meta_that_does_not_match_the_graph(alternate, field, value, expected):
    manifest = read_manifest(alternate)
    manifest["onnx"][field] = value
    write_manifest(alternate, manifest)
    with pytest.raises(BundleError, match="cannot load model.onnx") as info:
        load_bundle(alternate, backend="onnx")
    assert expected in info.value.what
    assert load_bundle(alternate).backend == "native"  # the native model is untouched


def test_garbage_onnx_file_with_matching_checksum(alternate):
    (alternate / "model.onnx").write_bytes(b"not an onnx graph")
    manifest = read_manifest(alternate)
    manifest["files"]["model.onnx"] = hashlib.sha256(b"not an onnx graph").hexdigest()
    write_manifest(alternate, manifest)
    with pytest.raises(BundleError, match="cannot load model.onnx"):
        load_bundle(alternate, backend="auto")


# ------------------------------------------------------------------------------------------ OnnxModel itself


def test_onnx_model_checks_its_input(wine):
    _, _, X, _, exported, _ = wine
    with pytest.raises(HoningError, match="rows of 13 features"):
        exported.predict(X[:, :5])
    with pytest.raises(ValueError, match="invalid ONNX model meta: 'task'"):
        OnnxModel(exported.data, {**exported.meta, "task": "clustering"})


def test_onnx_model_pickles_without_its_session(wine):
    _, _, X, _, exported, _ = wine
    exported.predict(X[:2])  # the session exists now
    copy = pickle.loads(pickle.dumps(exported))
    assert copy._session is None
    np.testing.assert_array_equal(copy.predict_proba(X), exported.predict_proba(X))
