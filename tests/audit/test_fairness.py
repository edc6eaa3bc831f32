"""Fairness measures against fairlearn's own functions (the oracle) and against hand computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
)
from sklearn.metrics import accuracy_score, mean_absolute_error, precision_score, recall_score

from honing.audit.fairness import FairnessLimits, data_bias, group_labels, model_fairness
from honing.errors import DataError, RecipeError

NO_MIN = FairnessLimits(min_group_size=0)


def _plain_json(obj) -> None:
    """JSON with no NaN, and only plain Python types all the way down."""
    json.dumps(obj, allow_nan=False)

    def walk(x):
        assert x is None or type(x) in (dict, list, str, int, float, bool), type(x)
        for v in x.values() if isinstance(x, dict) else x if isinstance(x, list) else []:
            walk(v)

    walk(obj)


def _checks(findings) -> dict[tuple[str, str], float]:
    return {(f.check, f.column): f.value for f in findings}


# --------------------------------------------------------------------------- groups


def test_group_labels_missing_intersection_and_index():
    frame = pd.DataFrame({"sex": ["F", "M", None, "M"], "race": ["a", "b", "b", None]}, index=[10, 11, 12, 13])
    groups = group_labels(frame, ["sex", "race"])
    assert list(groups) == ["sex", "race", "sex×race"]
    assert groups["sex"].tolist() == ["F", "M", "missing", "M"]
    assert groups["sex×race"].tolist() == ["F×a", "M×b", "missing×b", "M×missing"]
    assert groups["sex×race"].name == "sex×race"
    assert all(list(g.index) == [10, 11, 12, 13] for g in groups.values())
    assert list(group_labels(frame, ["sex"])) == ["sex"]  # no intersection for one column


def test_group_labels_numeric_columns():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 90, 400).astype(float), "flag": rng.integers(0, 2, 400) * 1.0})
    frame.loc[0, "age"] = np.nan
    groups = group_labels(frame, ["age", "flag"])
    assert sorted(groups["flag"].unique()) == ["0", "1"]  # whole floats read as integers
    ages = groups["age"]
    assert ages[0] == "missing" and ages.nunique() == 5  # quartiles + missing
    counts = ages[ages != "missing"].value_counts()
    assert counts.min() >= 80  # quartiles are roughly even


def test_group_labels_errors():
    frame = pd.DataFrame({"gender": ["F", "M"], "country": ["x", "x"]})
    with pytest.raises(DataError, match="audit.sensitive") as err:
        group_labels(frame, ["gendr"])
    assert "gendr" in str(err.value) and "did you mean 'gender'" in str(err.value)
    with pytest.raises(DataError, match="'country' has one group only"):
        group_labels(frame, ["gender", "country"])
    with pytest.raises(RecipeError, match="audit.sensitive"):
        group_labels(frame, [])


# --------------------------------------------------------------------------- before training


def test_data_bias_binary_by_hand():
    # F: 3 rows, 1 positive ('yes'); M: 7 rows, 5 positive.
    frame = pd.DataFrame({"sex": ["F"] * 3 + ["M"] * 7,
                          "y": ["yes", "no", "no"] + ["yes"] * 5 + ["no"] * 2})
    report, findings = data_bias(frame, "y", ["sex"], "classification", limits=NO_MIN)
    rows = report["sex"]["groups"]
    assert report["sex"]["positive"] == "yes"  # the second class in sorted order
    assert rows["F"]["count"] == 3 and rows["F"]["share"] == pytest.approx(0.3)
    assert rows["F"]["ci"] == pytest.approx((7 - 3) / 10)  # CI = (n_a - n_d) / (n_a + n_d)
    assert rows["M"]["ci"] == pytest.approx((3 - 7) / 10)
    assert rows["F"]["label_rate"] == pytest.approx(1 / 3)
    assert rows["F"]["dpl"] == pytest.approx(5 / 7 - 1 / 3)  # DPL = q_a - q_d
    assert rows["M"]["dpl"] == pytest.approx(1 / 3 - 5 / 7)
    found = {f.check: f for f in findings}
    assert found["group_imbalance"].value == pytest.approx(0.4)
    assert found["group_imbalance"].details["group"] == "F"  # the smaller side
    assert found["label_rate_difference"].value == pytest.approx(5 / 7 - 1 / 3)
    assert found["label_rate_difference"].count == 3 and found["label_rate_difference"].column == "sex"
    _plain_json(report)
    _plain_json([f.to_dict() for f in findings])

    flipped, _ = data_bias(frame, "y", ["sex"], "classification", positive="no", limits=NO_MIN)
    assert flipped["sex"]["groups"]["F"]["dpl"] == pytest.approx(2 / 7 - 2 / 3)
    with pytest.raises(DataError, match="positive class 'maybe'"):
        data_bias(frame, "y", ["sex"], "classification", positive="maybe")
    with pytest.raises(DataError, match="target column 'label'"):
        data_bias(frame, "label", ["sex"], "classification")


@pytest.mark.parametrize("seed", range(10))
def test_data_bias_matches_hand_computation(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 400))
    frame = pd.DataFrame({"g": rng.choice(list("pqrs"), n, p=[0.1, 0.2, 0.3, 0.4]),
                          "h": rng.choice(["u", "v"], n)})
    frame["y"] = (rng.random(n) < np.where(frame["g"] == "p", 0.2, 0.6)).astype(int)
    report, findings = data_bias(frame, "y", ["g", "h"], "classification", limits=NO_MIN)
    labels = frame["g"] + "×" + frame["h"]
    for column, groups in (("g", frame["g"]), ("g×h", labels)):
        rows = report[column]["groups"]
        assert sorted(rows) == sorted(groups.unique())
        for group, row in rows.items():
            member = (groups == group).to_numpy()
            n_d, n_a = member.sum(), (~member).sum()
            q_d, q_a = frame["y"][member].mean(), frame["y"][~member].mean()
            assert row["count"] == n_d
            assert row["ci"] == pytest.approx((n_a - n_d) / (n_a + n_d))
            assert row["dpl"] == pytest.approx(q_a - q_d)
        worst_ci = max(abs(r["ci"]) for r in rows.values())
        flagged = _checks(findings)
        assert abs(flagged[("group_imbalance", column)]) == pytest.approx(worst_ci)
        worst_dpl = max(abs(r["dpl"]) for r in rows.values())
        if worst_dpl >= 0.1:
            assert abs(flagged[("label_rate_difference", column)]) == pytest.approx(worst_dpl)
        else:
            assert ("label_rate_difference", column) not in flagged


def test_data_bias_multiclass_and_regression():
    frame = pd.DataFrame({"sex": ["F"] * 4 + ["M"] * 4, "c": list("aabc") + list("bbcc"),
                          "v": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]})
    report, findings = data_bias(frame, "c", ["sex"], "classification", limits=NO_MIN)
    f_row = report["sex"]["groups"]["F"]
    assert f_row["label_rate"] == {"a": 0.5, "b": 0.25, "c": 0.25}
    assert f_row["dpl"] == pytest.approx({"a": 0.0 - 0.5, "b": 0.5 - 0.25, "c": 0.5 - 0.25})
    found = {f.check: f for f in findings}
    # class 'a': 0% in M vs 50% in F — the tie of |DPL| goes to the group that gets the class less
    assert found["label_rate_difference"].details == {"group": "M", "class": "a", "limit": 0.1}
    assert found["label_rate_difference"].value == pytest.approx(0.5)
    assert "group_imbalance" not in found  # equal groups: CI = 0

    report, findings = data_bias(frame, "v", ["sex"], "regression", limits=NO_MIN)
    f_row = report["sex"]["groups"]["F"]
    assert f_row["label_mean"] == 2.5 and f_row["mean_difference"] == pytest.approx(4.0)
    assert f_row["standardized_mean_difference"] == pytest.approx(4.0 / frame["v"].std(ddof=0))
    assert [f.check for f in findings] == ["label_mean_difference"]
    _plain_json(report)
    with pytest.raises(DataError, match="'c' is not numeric, but the task is regression"):
        data_bias(frame, "c", ["sex"], "regression")


def test_data_bias_limits_small_groups_and_missing_target():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"g": ["big"] * 200 + ["tiny"] * 5, "y": list(rng.integers(0, 2, 200)) + [1] * 5})
    frame.loc[[0, 1], "y"] = np.nan
    report, findings = data_bias(frame, "y", ["g"], "classification")
    assert report["g"]["groups"]["big"]["count"] == 198  # rows without a target are left out
    checks = [f.check for f in findings]
    assert checks == ["group_imbalance"]  # label rates against a tiny group are not flagged (min_group_size)
    _, findings = data_bias(frame, "y", ["g"], "classification", limits=NO_MIN)
    assert "label_rate_difference" in [f.check for f in findings]
    loose = FairnessLimits(group_imbalance=1.0, label_rate=1.0, min_group_size=0)
    assert data_bias(frame, "y", ["g"], "classification", limits=loose)[1] == []


# --------------------------------------------------------------------------- after training


def _predictions(seed: int, n: int = 600):
    rng = np.random.default_rng(seed)
    groups = pd.Series(rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]), name="grp")
    bias = groups.map({"a": 0.0, "b": 0.15, "c": 0.3}).to_numpy() * rng.uniform(0, 1)
    y_true = (rng.random(n) < 0.4 + bias).astype(int)
    y_pred = np.where(rng.random(n) < 0.7, y_true, (rng.random(n) < 0.5 + bias).astype(int))
    return y_true, y_pred, groups


@pytest.mark.parametrize("seed", range(25))
def test_binary_measures_equal_fairlearn(seed):
    y_true, y_pred, groups = _predictions(seed)
    report, findings = model_fairness(y_true, y_pred, {"grp": groups}, "classification")
    measures = report["grp"]["measures"]
    kw = {"sensitive_features": groups}
    assert measures["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(y_true, y_pred, **kw))
    assert measures["demographic_parity_ratio"] == pytest.approx(demographic_parity_ratio(y_true, y_pred, **kw))
    assert measures["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y_true, y_pred, **kw))
    assert measures["equal_opportunity_difference"] == pytest.approx(equal_opportunity_difference(y_true, y_pred, **kw))
    assert measures["disparate_impact"] == measures["demographic_parity_ratio"]
    for group, row in report["grp"]["by_group"].items():
        m = (groups == group).to_numpy()
        assert row["count"] == m.sum()
        assert row["accuracy"] == pytest.approx(accuracy_score(y_true[m], y_pred[m]))
        assert row["selection_rate"] == pytest.approx(y_pred[m].mean())
        assert row["true_positive_rate"] == pytest.approx(recall_score(y_true[m], y_pred[m]))
        assert row["false_positive_rate"] == pytest.approx(y_pred[m][y_true[m] == 0].mean())
        assert row["precision"] == pytest.approx(precision_score(y_true[m], y_pred[m], zero_division=0))
    assert report["grp"]["overall"]["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    flagged = _checks(findings)
    limits = FairnessLimits()
    for check in ("demographic_parity_difference", "equalized_odds_difference", "equal_opportunity_difference"):
        assert ((check, "grp") in flagged) == (measures[check] >= getattr(limits, check))
    assert (("disparate_impact", "grp") in flagged) == (measures["disparate_impact"] < 0.8)
    _plain_json(report)
    _plain_json([f.to_dict() for f in findings])


def test_binary_small_groups_left_out_of_measures():
    y_true, y_pred, groups = _predictions(7)
    groups = groups.copy()
    groups.iloc[:5] = "rare"
    report, _ = model_fairness(y_true, y_pred, {"grp": groups}, "classification")
    assert report["grp"]["small_groups"] == {"rare": 5}
    assert report["grp"]["by_group"]["rare"]["count"] == 5  # still reported
    keep = (groups != "rare").to_numpy()
    expected = demographic_parity_difference(y_true[keep], y_pred[keep], sensitive_features=groups[keep])
    assert report["grp"]["measures"]["demographic_parity_difference"] == pytest.approx(expected)
    report, findings = model_fairness(y_true, y_pred, {"grp": groups}, "classification",
                                      limits=FairnessLimits(min_group_size=1000))
    assert report["grp"]["measures"] == {} and findings == []


def test_binary_findings_on_planted_disparity():
    groups = pd.Series(["A"] * 100 + ["B"] * 100)
    y_true = np.array([1, 0] * 100)
    fair = y_true.copy()  # perfect predictions: same rates in both groups
    report, findings = model_fairness(y_true, fair, {"g": groups}, "binary")
    assert findings == [] and report["g"]["measures"]["disparate_impact"] == 1.0
    biased = y_true.copy()
    biased[100:][y_true[100:] == 1] = np.tile([1, 0], 25)  # B: half its positives missed
    report, findings = model_fairness(y_true, biased, {"g": groups}, "binary")
    found = {f.check: f for f in findings}
    assert found["demographic_parity_difference"].value == pytest.approx(0.25)
    assert found["equal_opportunity_difference"].value == pytest.approx(0.5)
    assert found["disparate_impact"].value == pytest.approx(0.5)  # 0.25 / 0.5 < 0.8: four-fifths rule
    assert found["disparate_impact"].details["lowest"] == "B"
    assert "four-fifths" in found["disparate_impact"].message


def test_group_without_positives_is_json_ready():
    groups = pd.Series(["A"] * 40 + ["B"] * 40)
    y_true = np.array([1, 0] * 20 + [0] * 40)  # B has no positive labels: its TPR is undefined
    y_pred = np.array([1, 1] * 20 + [1, 0] * 20)
    report, _ = model_fairness(y_true, y_pred, {"g": groups}, "classification")
    kw = {"sensitive_features": groups}
    assert report["g"]["measures"]["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y_true, y_pred, **kw))
    _plain_json(report)


def test_multiclass_and_regression_measures():
    rng = np.random.default_rng(1)
    groups = pd.Series(rng.choice(["x", "y"], 300))
    y_true = rng.integers(0, 3, 300)
    y_pred = np.where((groups == "x").to_numpy() | (rng.random(300) < 0.5), y_true, (y_true + 1) % 3)
    report, findings = model_fairness(y_true, y_pred, {"g": groups}, "classification")
    acc = {g: accuracy_score(y_true[(groups == g).to_numpy()], y_pred[(groups == g).to_numpy()]) for g in "xy"}
    assert report["g"]["by_group"]["x"]["accuracy"] == 1.0
    assert report["g"]["measures"]["accuracy_difference"] == pytest.approx(acc["x"] - acc["y"])
    assert "balanced_accuracy" in report["g"]["by_group"]["y"]
    assert [f.check for f in findings] == ["accuracy_difference"]

    y = rng.normal(10, 2, 300)
    noise = np.where((groups == "x").to_numpy(), 0.5, 2.0)
    pred = y + rng.normal(0, 1, 300) * noise
    report, findings = model_fairness(y, pred, {"g": groups}, "regression")
    mae = {g: mean_absolute_error(y[(groups == g).to_numpy()], pred[(groups == g).to_numpy()]) for g in "xy"}
    measures = report["g"]["measures"]
    assert measures["mae_difference"] == pytest.approx(mae["y"] - mae["x"])
    assert measures["mae_relative_difference"] == pytest.approx((mae["y"] - mae["x"]) / mean_absolute_error(y, pred))
    assert [f.check for f in findings] == ["mae_difference"]
    assert findings[0].value == measures["mae_difference"]  # the gap itself, judged relative to the MAE
    assert findings[0].details["relative"] == measures["mae_relative_difference"] > 0.1
    loose = FairnessLimits(mae_difference=measures["mae_relative_difference"] + 0.01)
    assert model_fairness(y, pred, {"g": groups}, "regression", limits=loose)[1] == []
    assert not math.isnan(report["g"]["by_group"]["x"]["r2"])
    _plain_json(report)
    with pytest.raises(RecipeError, match="unknown task"):
        model_fairness(y, pred, {"g": groups}, "regresion")
