"""Tests for honing.bundle: round trips, checksums, tampering, manifest validation, untrusted types,
upgrades, atomicity."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from datetime import datetime
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from conftest import strict_json
from honing.bundle import (
    FORMAT_VERSION,
    Bundle,
    LightGBMModel,
    load_bundle,
    save_bundle,
    sha256_file,
    verify_bundle,
)
from honing.bundle import manifest as manifest_mod
from honing.errors import BundleError, HoningError
from honing.models.classic import MODELS
from honing.models.classic import TRUSTED_TYPES as MODEL_TRUSTED_TYPES

FEATURES = {"a": {"kind": "numeric"}, "b": {"kind": "numeric"}, "c": {"kind": "categorical"}}


class Payload:
    """A custom (non-sklearn) class that must never be constructed from a bundle."""

    def __init__(self):
        self.value = 42


def make_frame(task: str, n_classes: int = 2, n: int = 160, seed: int = 0):
    """Synthetic features a, b (numeric) and c (string) with an integer or float target."""
    if task == "regression":
        X, y = make_regression(n_samples=n, n_features=2, noise=0.1, random_state=seed)
    else:
        X, y = make_classification(
            n_samples=n, n_features=2, n_informative=2, n_redundant=0, n_classes=n_classes,
            n_clusters_per_class=1, random_state=seed,
        )
    cats = np.random.default_rng(seed).choice(["red", "green", "blue"], size=n)
    return pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": cats}), y


def make_preprocessor() -> ColumnTransformer:
    """StandardScaler on a and b, one-hot encoding of c."""
    return ColumnTransformer(
        [
            ("num", StandardScaler(), ["a", "b"]),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["c"]),
        ]
    )


CASES = {
    "random_forest_binary": ("classification", 2, lambda: RandomForestClassifier(20, random_state=0)),
    "random_forest_3": ("classification", 3, lambda: RandomForestClassifier(20, random_state=0)),
    "logistic_binary": ("classification", 2, lambda: LogisticRegression()),
    "logistic_3": ("classification", 3, lambda: LogisticRegression()),
    "lightgbm_binary": ("classification", 2, lambda: lightgbm.LGBMClassifier(n_estimators=30, verbose=-1)),
    "lightgbm_3": ("classification", 3, lambda: lightgbm.LGBMClassifier(n_estimators=30, verbose=-1)),
    "lightgbm_regression": ("regression", None, lambda: lightgbm.LGBMRegressor(n_estimators=30, verbose=-1)),
    "ridge_regression": ("regression", None, lambda: Ridge()),
}


def fit_case(name: str):
    """(preprocessor, model, df, task, classes) for one of CASES, fitted."""
    task, n_classes, factory = CASES[name]
    df, y = make_frame(task, n_classes or 2)
    pre = make_preprocessor()
    model = factory().fit(pre.fit_transform(df), y)
    classes = [f"class_{k}" for k in range(n_classes)] if task == "classification" else None
    return pre, model, df, task, classes


def save(path: Path, pre, model, task: str = "classification", classes=("no", "yes"), **kwargs) -> Path:
    """save_bundle with defaults for the fields a test does not care about."""
    args = {
        "preprocessor": pre, "model": model, "task": task, "features": FEATURES,
        "classes": list(classes) if classes is not None else None, "model_type": "test",
        "metrics": {"score": 0.5}, "recipe": {"target": "y"}, "data_fingerprint": "abc123",
    }
    return save_bundle(path, **{**args, **kwargs})


@pytest.fixture(scope="module")
def logistic():
    """A fitted binary (preprocessor, logistic model, frame)."""
    pre, model, df, _, _ = fit_case("logistic_binary")
    return pre, model, df


@pytest.fixture
def saved(tmp_path, logistic) -> Path:
    """A saved binary logistic bundle."""
    pre, model, _ = logistic
    return save(tmp_path / "bundle", pre, model)


def canonical_sha256(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without manifest_sha256 (written independently of honing)."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_manifest(path: Path) -> dict:
    """A bundle's manifest.json, parsed."""
    return json.loads((path / "manifest.json").read_text())


def write_manifest(path: Path, manifest: dict, *, sign: bool = True) -> None:
    """Write a bundle's manifest.json; ``sign`` recomputes manifest_sha256 as save_bundle would."""
    manifest = dict(manifest)
    if sign:
        manifest["manifest_sha256"] = canonical_sha256(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def rewrite_manifest(path: Path, *, sign: bool = True, **changes) -> None:
    """Change keys of a bundle's manifest.json in place (re-signing it unless ``sign`` is False)."""
    write_manifest(path, {**read_manifest(path), **changes}, sign=sign)


def leftovers(directory: Path) -> list[str]:
    """Hidden temporary entries save_bundle might have left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_predictions_identical(tmp_path, case):
    pre, model, df, task, classes = fit_case(case)
    path = save(tmp_path / "b", pre, model, task=task, classes=classes)
    loaded = load_bundle(path, trusted=MODEL_TRUSTED_TYPES)
    X = pre.transform(df)
    Xl = loaded.transform(df)
    np.testing.assert_allclose(Xl, X, rtol=0, atol=0)
    np.testing.assert_allclose(loaded.predict_encoded(Xl), model.predict(X), rtol=1e-12, atol=1e-12)
    if task == "classification":
        expected = model.predict_proba(X)
        np.testing.assert_allclose(loaded.predict_proba_encoded(Xl), expected, rtol=1e-12, atol=1e-12)
        proba = loaded.predict_proba(df)
        assert list(proba.columns) == [str(c) for c in classes]
        np.testing.assert_allclose(proba.to_numpy(), expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(loaded.predict(df), np.asarray(classes)[model.predict(X)])
    else:
        np.testing.assert_allclose(loaded.predict(df), model.predict(X), rtol=1e-12, atol=1e-12)
        with pytest.raises(HoningError, match="only for classifiers"):
            loaded.predict_proba(df)
    expected_format = "lightgbm" if case.startswith("lightgbm") else "skops"
    assert loaded.manifest["model_format"] == expected_format
    assert (path / ("model.lgb.txt" if expected_format == "lightgbm" else "model.skops")).is_file()


def test_lightgbm_manifest_records_objective(tmp_path):
    pre, model, _, task, classes = fit_case("lightgbm_3")
    loaded = load_bundle(save(tmp_path / "b", pre, model, task=task, classes=classes))
    assert loaded.manifest["lightgbm"] == {"objective": "multiclass", "num_class": 3}
    assert isinstance(loaded.model, LightGBMModel)
    assert loaded.model.predict_proba(loaded.transform(make_frame(task, 3)[0])).shape == (160, 3)


def test_manifest_contents_and_checksums(tmp_path, logistic):
    pre, model, _ = logistic
    path = save(
        tmp_path / "b", pre, model, classes=[np.int64(0), np.int64(1)], extra={"owner": "me"},
        trusted=["x.Y"],
    )
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 1
    assert manifest["classes"] == [0, 1] and manifest["task"] == "classification"
    assert manifest["features"] == FEATURES and manifest["metrics"] == {"score": 0.5}
    assert manifest["owner"] == "me" and manifest["trusted_types"] == ["x.Y"]
    assert manifest["data_fingerprint"] == "abc123" and manifest["model_type"] == "test"
    assert set(manifest["library_versions"]) == {"numpy", "pandas", "scikit-learn", "lightgbm", "skops", "python"}
    assert isinstance(manifest["honing_version"], str) and manifest["honing_version"]
    assert datetime.fromisoformat(manifest["created"]).utcoffset().total_seconds() == 0
    on_disk = {p.name for p in path.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk == {"preprocess.skops", "model.skops"}
    for name, digest in manifest["files"].items():
        assert digest == hashlib.sha256((path / name).read_bytes()).hexdigest() == sha256_file(path / name)


def test_bundle_attributes(saved):
    loaded = load_bundle(saved)
    assert isinstance(loaded, Bundle) and loaded.path == saved
    assert loaded.task == "classification" and loaded.classes == ["no", "yes"]
    assert loaded.features == FEATURES and loaded.recipe == {"target": "y"}


def test_prepare_hook_runs_before_transform(saved, logistic):
    _, _, df = logistic
    calls = []

    def prepare(frame):
        calls.append(len(frame))
        return frame

    loaded = load_bundle(saved, prepare=prepare)
    loaded.predict(df.head(5))
    assert calls == [5]


def test_classifier_without_probabilities_maps_labels(tmp_path):
    df, y = make_frame("classification", 3)
    pre = make_preprocessor()
    model = LinearSVC().fit(pre.fit_transform(df), y)
    loaded = load_bundle(save(tmp_path / "b", pre, model, classes=["x", "y", "z"]))
    np.testing.assert_array_equal(loaded.predict(df), np.array(["x", "y", "z"])[model.predict(pre.transform(df))])
    with pytest.raises(HoningError, match="no probabilities"):
        loaded.predict_proba(df)


def test_save_rejects_bad_arguments(tmp_path, logistic):
    pre, model, _ = logistic
    with pytest.raises(ValueError, match="task"):
        save(tmp_path / "b", pre, model, task="ranking")
    with pytest.raises(ValueError, match="classes"):
        save(tmp_path / "b", pre, model, classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="override"):
        save(tmp_path / "b", pre, model, extra={"files": {}})
    assert not (tmp_path / "b").exists() and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------- tampering


def test_flipped_byte_is_a_checksum_mismatch(saved):
    data = bytearray((saved / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (saved / "model.skops").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum mismatch") as info:
        load_bundle(saved)
    assert "model.skops" in str(info.value) and str(saved) in str(info.value)
    assert any("checksum" in p for p in verify_bundle(saved))


def test_stray_file_is_refused(saved):
    (saved / "extra.py").write_text("print('hi')")
    with pytest.raises(BundleError, match="unexpected file extra.py"):
        load_bundle(saved)


def test_stray_file_in_subdirectory_is_refused(saved):
    (saved / "sub").mkdir()
    (saved / "sub" / "x.bin").write_bytes(b"x")
    assert any("sub/x.bin" in p for p in verify_bundle(saved))


def test_missing_listed_file(saved):
    (saved / "preprocess.skops").unlink()
    with pytest.raises(BundleError, match="preprocess.skops is missing"):
        load_bundle(saved)


def test_manifest_path_escape_is_refused(saved):
    manifest = read_manifest(saved)
    manifest["files"]["../outside"] = "0" * 64
    write_manifest(saved, manifest)
    with pytest.raises(BundleError, match="invalid file name"):
        load_bundle(saved)


@pytest.mark.parametrize("how", ["missing", "file", "no_manifest"])
def test_not_a_bundle(tmp_path, saved, how):
    target = {"missing": tmp_path / "nope", "file": tmp_path / "f.txt", "no_manifest": saved}[how]
    if how == "file":
        target.write_text("x")
    if how == "no_manifest":
        (saved / "manifest.json").unlink()
    with pytest.raises(BundleError, match="does not exist|not a honing bundle") as info:
        load_bundle(target)
    assert str(target) in str(info.value)
    assert verify_bundle(target) == ["does not exist" if how == "missing" else "is not a honing bundle"]


def test_invalid_json_manifest(saved):
    (saved / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(saved)


def test_newer_format_is_refused(saved):
    rewrite_manifest(saved, format_version=99)
    with pytest.raises(BundleError, match="newer honing \\(format 99\\); upgrade honing"):
        load_bundle(saved)


def test_verify_good_bundle(saved):
    assert verify_bundle(saved) == []
    assert verify_bundle(saved, trusted=[]) == []


# ------------------------------------------------------------------------------------ manifest checksum

MANIFEST_MODIFIED = "manifest.json was modified after the bundle was saved (checksum mismatch)"


def test_manifest_records_its_own_checksum(saved):
    manifest = read_manifest(saved)
    assert manifest["manifest_sha256"] == canonical_sha256(manifest)
    assert "manifest_sha256" not in load_bundle(saved).features


def test_manifest_checksum_round_trips_awkward_values(tmp_path, logistic):
    pre, model, _ = logistic
    metrics = {
        "nan": float("nan"), "np_nan": np.float64("nan"), "inf": float("inf"), "neg_inf": -np.inf,
        "third": 1 / 3, "f32": np.float32(0.1), "neg_zero": -0.0, "big": 1e300, "tiny": 5e-324,
        "int": np.int64(7), "array": np.array([0.1, np.nan]), "whole": 2.0,
        "nested": {"x": [0.30000000000000004]},
    }
    features = {"größe": {"kind": "numeric"}, "城市": {"kind": "categorical"}, "\ud800": {"kind": "text"}}
    path = save(tmp_path / "b", pre, model, metrics=metrics, features=features,
                recipe={"tuple": (1, 2.5), "none": None, "flag": True}, extra={"note": "café ✓"})
    assert verify_bundle(path) == []
    loaded = load_bundle(path)
    assert strict_json((path / "manifest.json").read_text())["metrics"]["nan"] is None  # strict JSON: no NaN
    assert [loaded.metrics[k] for k in ("nan", "np_nan", "inf", "neg_inf")] == [None] * 4
    assert loaded.metrics["array"] == [0.1, None]
    assert loaded.metrics["third"] == 1 / 3 and loaded.metrics["f32"] == float(np.float32(0.1))
    assert math.copysign(1, loaded.metrics["neg_zero"]) == -1 and loaded.metrics["tiny"] == 5e-324
    assert loaded.features == features and loaded.recipe["tuple"] == [1, 2.5]
    manifest = read_manifest(path)
    assert manifest["manifest_sha256"] == canonical_sha256(manifest)


def test_older_manifest_with_nan_still_verifies_and_loads(saved):
    """Bundles saved before manifests were strict JSON hold bare NaN / Infinity; their checksum holds."""
    rewrite_manifest(saved, metrics={"roc_auc": float("nan"), "ratio": float("inf")})
    assert "NaN" in (saved / "manifest.json").read_text()
    assert verify_bundle(saved) == []
    assert math.isnan(load_bundle(saved).metrics["roc_auc"])


@pytest.mark.parametrize(
    "changes",
    [
        {"classes": ["yes", "no"]},  # swapped: predictions would silently flip
        {"task": "regression", "classes": None},
        {"metrics": {"score": 0.99}},
        {"features": {"a": {"kind": "numeric"}}},
    ],
    ids=["swapped_classes", "task", "metrics", "features"],
)
def test_edited_manifest_is_a_checksum_mismatch(saved, changes):
    rewrite_manifest(saved, sign=False, **changes)
    with pytest.raises(BundleError) as info:
        load_bundle(saved)
    message = str(info.value)
    assert MANIFEST_MODIFIED in message and str(saved / "manifest.json") in message and "re-export" in message
    assert verify_bundle(saved) == [MANIFEST_MODIFIED]


def test_whitespace_only_manifest_edit_is_accepted(saved):
    (saved / "manifest.json").write_text(json.dumps(read_manifest(saved), indent=4, sort_keys=True))
    assert verify_bundle(saved) == [] and load_bundle(saved).classes == ["no", "yes"]


@pytest.mark.parametrize("value", ["missing", None, 12])
def test_manifest_without_checksum_is_refused(saved, value):
    manifest = read_manifest(saved)
    if value == "missing":
        del manifest["manifest_sha256"]
    else:
        manifest["manifest_sha256"] = value
    write_manifest(saved, manifest, sign=False)
    with pytest.raises(BundleError, match="has no manifest_sha256 checksum"):
        load_bundle(saved)
    assert verify_bundle(saved)[0].startswith("manifest.json has no manifest_sha256 checksum")


def test_resigned_manifest_with_wrong_class_count_is_refused(saved):
    rewrite_manifest(saved, classes=["low", "mid", "high"])  # consistent checksum, but the model has 2
    with pytest.raises(BundleError, match="the model has 2 classes but the manifest lists 3") as info:
        load_bundle(saved)
    assert str(saved) in str(info.value)


def test_resigned_regression_manifest_on_a_classifier_is_refused(saved):
    rewrite_manifest(saved, task="regression", classes=None)
    with pytest.raises(BundleError, match="classifier but the manifest says regression"):
        load_bundle(saved)


@pytest.mark.parametrize("both", [False, True], ids=["classes_only", "classes_and_num_class"])
def test_resigned_lightgbm_manifest_with_wrong_class_count_is_refused(tmp_path, both):
    pre, model, _, task, classes = fit_case("lightgbm_binary")
    path = save(tmp_path / "b", pre, model, task=task, classes=classes)
    changes = {"classes": ["a", "b", "c"]}
    if both:
        changes["lightgbm"] = {**read_manifest(path)["lightgbm"], "num_class": 3}
    rewrite_manifest(path, **changes)
    if both:  # the manifest agrees with itself, but not with the booster
        with pytest.raises(BundleError, match="LightGBM model does not match the manifest's 3 classes"):
            load_bundle(path)
    else:
        problem = "manifest.json is malformed: the LightGBM model has 2 classes but the manifest lists 3"
        with pytest.raises(BundleError, match=problem):
            load_bundle(path)
        assert verify_bundle(path) == [problem]


# ------------------------------------------------------------------------------------ malformed manifests


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda m: m.pop("features"), "the required key 'features' is missing"),
        (lambda m: m.pop("files"), "the required key 'files' is missing"),
        (lambda m: m.update(classes="high"), "'classes' must be a list or null, not a string"),
        (lambda m: m.update(classes=None), "a classification bundle must list at least two classes"),
        (lambda m: m.update(classes=["only"]), "a classification bundle must list at least two classes"),
        (lambda m: m.update(features=["a", "b"]), "'features' must be an object, not a list"),
        (lambda m: m.update(metrics=None), "'metrics' must be an object, not null"),
        (lambda m: m.update(recipe=3), "'recipe' must be an object, not a number"),
        (lambda m: m.update(task=True), "'task' must be a string, not a boolean"),
        (lambda m: m.update(task="ranking"), f"the task 'ranking' is not one of {', '.join(manifest_mod.TASKS)}"),
        (lambda m: m.update(files=["model.skops"]), "'files' must be an object, not a list"),
        (lambda m: m["files"].update({"model.skops": 1}), "'files' must map file names to sha256 strings"),
        (lambda m: m["files"].pop("preprocess.skops"), "'files' does not list preprocess.skops"),
        (lambda m: m.update(model_format="pickle"), "the model_format 'pickle' is not one of skops, lightgbm, torch, onnx"),
        (lambda m: m.update(format_version="1"), "'format_version' must be an integer, not a string"),
    ],
)
def test_malformed_manifest_is_refused(saved, edit, expected):
    manifest = read_manifest(saved)
    edit(manifest)
    write_manifest(saved, manifest)  # correctly signed: the bundle was written wrongly
    with pytest.raises(BundleError) as info:
        load_bundle(saved)
    message = str(info.value)
    assert f"{saved / 'manifest.json'} is malformed: {expected}" in message
    assert message.endswith(" — re-export the bundle")
    assert verify_bundle(saved) == [f"manifest.json is malformed: {expected}"]


def test_malformed_lightgbm_section_is_refused(tmp_path):
    pre, model, _, task, classes = fit_case("lightgbm_regression")
    path = save(tmp_path / "b", pre, model, task=task, classes=classes)
    rewrite_manifest(path, lightgbm={"objective": "regression"})
    with pytest.raises(BundleError, match="'lightgbm' must be an object with an integer num_class"):
        load_bundle(path)


# ------------------------------------------------------------------------------ verify_bundle's problems


def untrusted_model(path: Path) -> None:
    """Replace the model by a custom type, with consistent checksums."""
    sio.dump(Payload(), path / "model.skops")
    files = {**read_manifest(path)["files"], "model.skops": sha256_file(path / "model.skops")}
    rewrite_manifest(path, files=files)


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (lambda p: shutil.rmtree(p), "does not exist"),
        (lambda p: (p / "model.skops").write_bytes(b"x"),
         "file model.skops was modified after the bundle was saved (checksum mismatch)"),
        (lambda p: (p / "preprocess.skops").unlink(), "file preprocess.skops is missing"),
        (lambda p: (p / "stray.txt").write_text("x"),
         "unexpected file stray.txt (not listed in the manifest)"),
        (lambda p: rewrite_manifest(p, sign=False, classes=["yes", "no"]), MANIFEST_MODIFIED),
        (lambda p: (p / "manifest.json").write_text("[]"), "manifest.json is not a JSON object"),
        (lambda p: rewrite_manifest(p, format_version=99),
         "was made by a newer honing (format 99); upgrade honing"),
        (untrusted_model, f"refusing to load untrusted type '{Payload.__module__}.Payload' from model.skops"),
    ],
    ids=["missing", "modified", "deleted", "stray", "manifest", "not_object", "newer", "untrusted"],
)
def test_verify_problems_name_neither_path_nor_hint(saved, spoil, expected):
    spoil(saved)
    problems = verify_bundle(saved, trusted=[])
    assert problems == [expected]
    assert not any(p.startswith(str(saved)) or str(saved) in p or " — " in p for p in problems)
    with pytest.raises(BundleError) as info:  # load_bundle still names the path and gives a hint
        load_bundle(saved)
    assert str(saved) in str(info.value) and info.value.hint


# ---------------------------------------------------------------------------------------------- upgrades


def test_upgrade_step_runs_for_old_format(saved, monkeypatch):
    manifest = read_manifest(saved)
    manifest["format_version"] = 0
    manifest["kind"] = manifest.pop("task")  # pretend format 0 called it "kind"
    del manifest["manifest_sha256"]  # format 0 had no manifest checksum
    write_manifest(saved, manifest, sign=False)
    calls = []

    def step(old: dict, path: Path) -> dict:
        calls.append(path)
        new = dict(old)
        new["task"] = new.pop("kind")
        return new

    monkeypatch.setattr(manifest_mod, "UPGRADES", {0: step})
    loaded = load_bundle(saved)
    assert calls == [saved]
    assert loaded.manifest["format_version"] == 1 and loaded.task == "classification"
    assert json.loads((saved / "manifest.json").read_text())["format_version"] == 0  # not rewritten


def test_upgrade_chain_to_newer_current_format(saved, monkeypatch):
    monkeypatch.setattr(manifest_mod, "FORMAT_VERSION", 2)
    monkeypatch.setattr(manifest_mod, "UPGRADES", {1: lambda m, p: {**m, "upgraded": True}})
    loaded = load_bundle(saved)
    assert loaded.manifest["upgraded"] is True and loaded.manifest["format_version"] == 2


def test_old_format_without_upgrade_step(saved):
    rewrite_manifest(saved, format_version=0)
    with pytest.raises(BundleError, match="cannot upgrade"):
        load_bundle(saved)


# ---------------------------------------------------------------------------------------------- security


def test_untrusted_custom_type_is_refused(saved):
    sio.dump(Payload(), saved / "model.skops")
    manifest = read_manifest(saved)
    manifest["files"]["model.skops"] = sha256_file(saved / "model.skops")  # consistent checksums
    write_manifest(saved, manifest)
    name = f"{Payload.__module__}.Payload"
    with pytest.raises(BundleError, match="untrusted type") as info:
        load_bundle(saved)
    assert name in str(info.value) and "model.skops" in str(info.value)
    assert any("untrusted type" in p for p in verify_bundle(saved, trusted=[]))
    assert isinstance(load_bundle(saved, trusted=[name]).model, Payload)  # the caller may trust it


def test_bundle_cannot_trust_itself(saved):
    sio.dump(Payload(), saved / "model.skops")
    name = f"{Payload.__module__}.Payload"
    rewrite_manifest(
        saved, trusted_types=[name],
        files={**read_manifest(saved)["files"], "model.skops": sha256_file(saved / "model.skops")},
    )
    with pytest.raises(BundleError, match="untrusted type"):
        load_bundle(saved)


def test_tree_models_need_the_callers_trust(tmp_path):
    pre, model, _, task, classes = fit_case("random_forest_binary")
    path = save(tmp_path / "b", pre, model, task=task, classes=classes, trusted=list(MODEL_TRUSTED_TYPES))
    with pytest.raises(BundleError, match="untrusted type 'sklearn.tree._tree.Tree'"):
        load_bundle(path)
    assert load_bundle(path, trusted=["sklearn.tree._tree.Tree"]).model.n_estimators == 20


# -------------------------------------------------------------------------------------------- atomicity


def fail_dump_for(monkeypatch, victim):
    """Make skops.io.dump raise when asked to write ``victim``."""
    real = sio.dump

    def dump(obj, file, **kwargs):
        if obj is victim:
            raise RuntimeError("disk full")
        return real(obj, file, **kwargs)

    monkeypatch.setattr(sio, "dump", dump)


def test_failed_save_leaves_nothing(tmp_path, logistic, monkeypatch):
    pre, model, _ = logistic
    fail_dump_for(monkeypatch, model)
    with pytest.raises(RuntimeError, match="disk full"):
        save(tmp_path / "b", pre, model)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_old_bundle(saved, logistic, monkeypatch):
    pre, model, _ = logistic
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    fail_dump_for(monkeypatch, model)
    with pytest.raises(RuntimeError):
        save(saved, pre, model, metrics={"score": 0.9})
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert load_bundle(saved).metrics == {"score": 0.5}
    assert leftovers(saved.parent) == []


def test_failed_swap_restores_the_old_bundle(saved, logistic, monkeypatch):
    pre, model, _ = logistic
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old bundle moved away; moving the new one in fails
            raise OSError("rename failed")
        return real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        save(saved, pre, model, metrics={"score": 0.9})
    monkeypatch.undo()
    assert load_bundle(saved).metrics == {"score": 0.5}
    assert leftovers(saved.parent) == []


def test_save_replaces_an_existing_bundle(saved, logistic):
    pre, model, _ = logistic
    save(saved, pre, model, metrics={"score": 0.9})
    assert load_bundle(saved).metrics == {"score": 0.9}
    assert leftovers(saved.parent) == []


def test_save_refuses_to_replace_a_non_bundle(tmp_path, logistic):
    pre, model, _ = logistic
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("precious")
    with pytest.raises(BundleError, match="not a honing bundle"):
        save(tmp_path / "docs", pre, model)
    assert (tmp_path / "docs" / "notes.txt").read_text() == "precious"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", [n for n in MODELS.names() if not MODELS.entry(n).meta.get("neural")])
def test_every_model_type_round_trips_with_the_trusted_list(name, tmp_path):
    """Each registered type, for each task it does, loads with exactly api.TRUSTED_TYPES."""
    from honing.api import TRUSTED_TYPES
    from honing.models.classic import make_model

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    pre = ColumnTransformer([("num", StandardScaler(), ["a", "b"])]).fit(frame)
    X = pre.transform(frame)
    for task in MODELS.entry(name).meta["tasks"]:
        y = (frame["a"] > 0).astype(int).to_numpy() if task == "classification" else frame["a"].to_numpy() * 3
        model = make_model(name, task, seed=0).fit(X, y)
        classes = [0, 1] if task == "classification" else None
        path = save_bundle(tmp_path / f"{name}-{task}", preprocessor=pre, model=model, task=task, features={},
                           classes=classes, model_type=name, metrics={}, recipe={}, data_fingerprint="x")
        loaded = load_bundle(path, trusted=TRUSTED_TYPES)
        expected = model.predict_proba(X) if classes else model.predict(X)
        got = loaded.predict_proba_encoded(X) if classes else loaded.predict_encoded(X)
        np.testing.assert_allclose(got, expected, rtol=1e-9)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_neural_models_round_trip_as_safetensors(task, tmp_path):
    """A neural estimator is stored as safetensors plus a JSON description, and predicts identically."""
    from honing.models.estimators import NeuralClassifier, NeuralRegressor

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    pre = ColumnTransformer([("num", StandardScaler(), ["a", "b"])]).fit(frame)
    X = pre.transform(frame)
    if task == "classification":
        model = NeuralClassifier(epochs=3, net_params={"norm": "batch"}, random_state=0)
        model.fit(X, (frame["a"] > 0).astype(int).to_numpy())
    else:
        model = NeuralRegressor(epochs=3, random_state=0).fit(X, frame["a"].to_numpy() * 100)
    classes = [0, 1] if task == "classification" else None
    path = save_bundle(tmp_path / "b", preprocessor=pre, model=model, task=task, features={},
                       classes=classes, model_type="mlp", metrics={}, recipe={}, data_fingerprint="x")
    assert (path / "model.safetensors").exists() and not (path / "model.skops").exists()
    loaded = load_bundle(path)
    expected = model.predict_proba(X) if classes else model.predict(X)
    got = loaded.predict_proba_encoded(X) if classes else loaded.predict_encoded(X)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["model_format"] == "torch" and manifest["torch"]["params"]["net"] == "mlp"


def test_lightgbm_stopped_early_round_trips(tmp_path):
    """A booster stopped early predicts with its best iteration, in memory and after loading."""
    X, y = make_classification(n_samples=400, n_features=6, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    pre = ColumnTransformer([("num", StandardScaler(), list(frame.columns))]).fit(frame)
    Xt = pre.transform(frame)
    model = lightgbm.LGBMClassifier(n_estimators=500, learning_rate=0.3, verbose=-1, random_state=0)
    model.fit(Xt[:300], y[:300], eval_X=(Xt[300:],), eval_y=(y[300:],),
              callbacks=[lightgbm.early_stopping(5, verbose=False)])
    assert 0 < model.best_iteration_ < 500
    path = save_bundle(tmp_path / "b", preprocessor=pre, model=model, task="classification", features={},
                       classes=[0, 1], model_type="lightgbm", metrics={}, recipe={}, data_fingerprint="x")
    np.testing.assert_allclose(load_bundle(path).predict_proba_encoded(Xt), model.predict_proba(Xt), rtol=1e-9)
