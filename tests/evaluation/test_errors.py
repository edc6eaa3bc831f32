"""Error analysis against scikit-learn on hand-built masks, per-row log loss and a planted bad slice."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from honing.evaluation.errors import confusion_analysis, residual_analysis, slice_metrics, worst_rows


def _assert_json_ready(obj):
    """Serialisable without NaN, and built only of plain Python types (no numpy scalars)."""
    json.dumps(obj, allow_nan=False)

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                assert type(key) is str
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        else:
            assert value is None or type(value) in (bool, int, float, str), (value, type(value))

    walk(obj)


# -- confusion ---------------------------------------------------------------------------------


def test_confusion_analysis_matches_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.choice([0, 1, 2], size=300, p=[0.5, 0.3, 0.2])
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 4, 300))  # class 3 never true
    classes = ["cat", "dog", "owl", "yak"]
    out = confusion_analysis(y_true, y_pred, classes, top=3)
    labels = [0, 1, 2, 3]
    counts = skm.confusion_matrix(y_true, y_pred, labels=labels)
    assert out["labels"] == classes
    assert out["counts"] == counts.tolist()
    np.testing.assert_allclose(out["normalized"], skm.confusion_matrix(y_true, y_pred, labels=labels,
                                                                        normalize="true"))
    assert out["normalized"][3] == [0.0, 0.0, 0.0, 0.0]  # a class with no true row
    off = [(counts[i, j], i, j) for i in range(4) for j in range(4) if i != j and counts[i, j]]
    top = sorted(off, key=lambda c: (-c[0], -c[0] / counts[c[1]].sum(), c[1], c[2]))[:3]
    assert [(m["true"], m["predicted"], m["count"]) for m in out["most_confused"]] == [
        (classes[i], classes[j], int(n)) for n, i, j in top]
    for m in out["most_confused"]:
        i = classes.index(m["true"])
        assert m["rate"] == pytest.approx(m["count"] / counts[i].sum())
    _assert_json_ready(out)


# -- worst rows --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classified():
    rng = np.random.default_rng(1)
    n = 60
    features = pd.DataFrame(
        {"size": rng.normal(size=n), "colour": rng.choice(["red", "blue"], n), "age": rng.integers(1, 9, n)},
        index=pd.Index([f"r{i}" for i in range(n)], name="id"),
    )
    features.loc["r3", "size"] = np.nan
    logits = rng.normal(size=(n, 3)) * 2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_true = rng.integers(0, 3, n)
    return features, y_true, proba.argmax(axis=1), proba


def test_worst_rows_are_the_highest_per_row_log_loss(classified):
    features, y_true, y_pred, proba = classified
    classes = ["low", "mid", "high"]
    rows = worst_rows(features, y_true, y_pred, "classification", classes, proba, n=5)
    per_row = np.array([skm.log_loss([y_true[i]], [proba[i]], labels=[0, 1, 2]) for i in range(len(y_true))])
    expected = np.argsort(-per_row, kind="stable")[:5]
    assert [r["row"] for r in rows] == [f"r{i}" for i in expected]
    for r, i in zip(rows, expected, strict=True):
        assert r["loss"] == pytest.approx(per_row[i])
        assert r["true"] == classes[y_true[i]] and r["predicted"] == classes[y_pred[i]]
        assert r["features"]["colour"] == features["colour"].iloc[i]
        assert r["features"]["age"] == int(features["age"].iloc[i])
    _assert_json_ready(rows)
    # every row, with a missing value reported as None
    everything = worst_rows(features, y_true, y_pred, "classification", classes, proba, n=len(features))
    assert next(r for r in everything if r["row"] == "r3")["features"]["size"] is None


def test_worst_rows_without_proba_and_for_regression(classified):
    features, y_true, y_pred, _ = classified
    rows = worst_rows(features, y_true, y_pred, "classification", [10, 20, 30], n=100)
    wrong = np.flatnonzero(y_true != y_pred)
    assert [r["row"] for r in rows[: wrong.size]] == [f"r{i}" for i in wrong]  # 0/1 loss, stable order
    assert all(r["loss"] == 1.0 for r in rows[: wrong.size])
    assert rows[0]["true"] == [10, 20, 30][y_true[wrong[0]]]
    rng = np.random.default_rng(2)
    target = rng.normal(size=len(features))
    guess = target + rng.normal(size=len(features))
    rows = worst_rows(features.reset_index(drop=True), target, guess, "regression", n=3)
    expected = np.argsort(-((target - guess) ** 2))[:3]
    assert [r["row"] for r in rows] == expected.tolist()
    assert [r["loss"] for r in rows] == pytest.approx(((target - guess) ** 2)[expected].tolist())
    assert rows[0]["true"] == pytest.approx(target[expected[0]])
    _assert_json_ready(rows)


# -- slices ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted():
    """Colour "green" has noise labels (the model is right half the time); elsewhere it is 95% right."""
    rng = np.random.default_rng(3)
    n = 2000
    colour = rng.choice(["red", "blue", "green", "black"], n)
    age = rng.normal(40, 12, n).round(1)
    age[rng.random(n) < 0.05] = np.nan
    words = [" ".join(rng.choice(["big", "small", "red", "cat", "dog", "tree", "sky"], 4)) + f" {i}"
             for i in range(n)]
    features = pd.DataFrame({"colour": colour, "age": age, "member": rng.random(n) < 0.4, "note": words})
    y_true = rng.integers(0, 2, n)
    wrong = np.where(colour == "green", rng.random(n) < 0.5, rng.random(n) < 0.05)
    y_pred = np.where(wrong, 1 - y_true, y_true)
    return features, y_true, y_pred


def test_slice_accuracy_matches_sklearn_on_hand_built_masks(planted):
    features, y_true, y_pred = planted
    slices = slice_metrics(features, y_true, y_pred, "classification", n_classes=2)
    by_key = {(s["column"], s["slice"]): s for s in slices}
    overall = skm.accuracy_score(y_true, y_pred)
    masks = {("colour", c): features["colour"].to_numpy() == c for c in ["red", "blue", "green", "black"]}
    masks[("member", "True")] = features["member"].to_numpy()
    masks[("member", "False")] = ~features["member"].to_numpy()
    age = features["age"].to_numpy()
    q = np.nanquantile(age, [0, 0.25, 0.5, 0.75, 1])
    for k in range(4):
        last = k == 3
        label = f"[{round(q[k], 1)}, {round(q[k + 1], 1)}{']' if last else ')'}"
        masks[("age", label)] = (age >= q[k]) & ((age <= q[k + 1]) if last else (age < q[k + 1]))
    masks[("age", "missing")] = np.isnan(age)
    assert set(by_key) == set(masks)  # the free-text column gives no slice
    for key, mask in masks.items():
        s = by_key[key]
        assert s["rows"] == int(mask.sum()), key
        expected = skm.accuracy_score(y_true[mask], y_pred[mask])
        assert s["accuracy"] == pytest.approx(expected), key
        assert s["gap"] == pytest.approx(overall - expected), key
    gaps = [s["gap"] for s in slices]
    assert gaps == sorted(gaps, reverse=True)  # worst first
    _assert_json_ready(slices)


def test_planted_bad_slice_is_the_only_one_flagged(planted):
    features, y_true, y_pred = planted
    slices = slice_metrics(features, y_true, y_pred, "classification", n_classes=2)
    flagged = [(s["column"], s["slice"]) for s in slices if s["flagged"]]
    assert flagged == [("colour", "green")]
    assert slices[0]["column"] == "colour" and slices[0]["slice"] == "green"
    # a bad slice smaller than min_rows is reported but not flagged
    small = slice_metrics(features, y_true, y_pred, "classification", n_classes=2, min_rows=10_000)
    assert not any(s["flagged"] for s in small) and small[0]["slice"] == "green"


def test_slice_options_and_probability_metric(planted):
    features, y_true, y_pred = planted
    few = slice_metrics(features[["colour"]], y_true, y_pred, "classification", max_categories=2)
    counts = features["colour"].value_counts()
    assert {s["slice"] for s in few} == set(counts.index[:2])
    proba = np.column_stack([1 - y_pred * 0.8 - 0.1, y_pred * 0.8 + 0.1])
    auc = slice_metrics(features[["colour"]], y_true, y_pred, "classification", proba, 2, metric="roc_auc")
    green = features["colour"].to_numpy() == "green"
    row = next(s for s in auc if s["slice"] == "green")
    assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true[green], proba[green, 1]))
    assert row["flagged"]


def test_regression_slices_r2_and_mae_sign():
    rng = np.random.default_rng(4)
    n = 800
    region = rng.choice(["north", "south"], n)
    x = rng.normal(size=n)
    y = 3 * x + rng.normal(size=n)
    noise = np.where(region == "south", 3.0, 0.3)
    pred = y + rng.normal(size=n) * noise
    features = pd.DataFrame({"region": region, "x": x})
    r2 = {s["slice"]: s for s in slice_metrics(features[["region"]], y, pred, "regression")}
    for name in ("north", "south"):
        mask = region == name
        assert r2[name]["r2"] == pytest.approx(skm.r2_score(y[mask], pred[mask]))
    assert r2["south"]["flagged"] and not r2["north"]["flagged"]
    out = residual_analysis(features, y, pred)
    mae = {s["slice"]: s for s in out["by_slice"] if s["column"] == "region"}
    overall = skm.mean_absolute_error(y, pred)
    south = region == "south"
    assert mae["south"]["mae"] == pytest.approx(skm.mean_absolute_error(y[south], pred[south]))
    assert mae["south"]["gap"] == pytest.approx(mae["south"]["mae"] - overall) and mae["south"]["gap"] > 0
    assert mae["north"]["gap"] < 0  # lower is better: a smaller error is a negative gap


def test_residual_analysis_summary_and_points():
    rng = np.random.default_rng(5)
    n = 5000
    y = rng.normal(size=n)
    pred = y + rng.normal(0.2, 1.0, n)
    features = pd.DataFrame({"x": rng.normal(size=n)})
    out = residual_analysis(features, y, pred, bins=3)
    residual = y - pred
    assert out["summary"] == pytest.approx({"mean": residual.mean(), "std": residual.std(),
                                            "mae": np.abs(residual).mean(), "max_abs": np.abs(residual).max()})
    assert len(out["points"]) == 2000
    lookup = dict(zip(pred.tolist(), residual.tolist(), strict=True))
    assert all(lookup[p] == pytest.approx(r) for p, r in out["points"])
    assert out["points"] == residual_analysis(features, y, pred, bins=3)["points"]  # fixed seed
    assert len(out["by_slice"]) == 3 and all("mae" in s for s in out["by_slice"])
    small = residual_analysis(features.iloc[:50], y[:50], pred[:50])
    assert len(small["points"]) == 50
    _assert_json_ready(out)


def test_columns_without_useful_slices_are_skipped(planted):
    features, y_true, y_pred = planted
    frame = pd.DataFrame({"constant": np.ones(len(features)), "row_id": np.arange(len(features)),
                          "note": features["note"], "when": pd.date_range("2024-01-01", periods=len(features))})
    assert slice_metrics(frame, y_true, y_pred, "classification") == []
