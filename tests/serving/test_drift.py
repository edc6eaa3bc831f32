"""Drift statistics against the reference profile, checked against scipy and hand-computed answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from honing.data.builtin import load_builtin
from honing.data.schema import infer_schema
from honing.recipe import DriftThresholds
from honing.serving.drift import (
    categorical_drift,
    feature_drift,
    judge,
    ks_pvalue,
    numeric_drift,
    prediction_drift,
    psi,
)
from honing.serving.profile import build_profile, profile_problem, profile_values


def _split(name: str, reference: int, current: int, seed: int = 0):
    """A seeded split of a builtin dataset: (reference rows, current rows, schema, profile)."""
    dataset = load_builtin(name)
    frame = dataset.frame
    schema = infer_schema(frame, target=dataset.target, overrides=dataset.types)
    order = np.random.default_rng(seed).permutation(len(frame))
    ref = frame.iloc[order[:reference]].reset_index(drop=True)
    now = frame.iloc[order[reference:reference + current]].reset_index(drop=True)
    return ref, now, schema, build_profile(ref, schema, task=dataset.task)


@pytest.fixture(scope="module")
def titanic():
    return _split("titanic", 600, 291)


@pytest.fixture(scope="module")
def housing():
    return _split("california_housing", 10000, 3000)


def _psi_by_feature(profile: dict, frame: pd.DataFrame) -> dict[str, float]:
    return {row["feature"]: row["psi"] for row in feature_drift(profile, frame)}


# --------------------------------------------------------------------------- psi


def test_psi_matches_a_hand_computed_example():
    # (0.7 - 0.5) ln(0.7/0.5) + (0.3 - 0.5) ln(0.3/0.5) = 0.2 * 0.33647 + 0.2 * 0.51083
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(0.2 * math.log(1.4) - 0.2 * math.log(0.6))
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(0.169459, abs=1e-6)
    assert psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]) == 0.0


def test_psi_clips_empty_shares_to_eps():
    # the empty expected bucket counts as 1e-4: (0.1 - 1e-4) ln(0.1 / 1e-4) + (0.4 - 0.5) ln(0.4 / 0.5)
    by_hand = (0.1 - 1e-4) * math.log(0.1 / 1e-4) + (-0.1) * math.log(0.8)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(by_hand)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1], eps=1e-2) == pytest.approx(
        (0.1 - 1e-2) * math.log(10) + (-0.1) * math.log(0.8)
    )
    with pytest.raises(ValueError):
        psi([0.5, 0.5], [1.0])


# --------------------------------------------------------------------------- same data, shifted data


def test_same_distribution_gives_small_psi_on_every_feature(titanic, housing):
    for ref, now, _, profile in (titanic, housing):
        values = _psi_by_feature(profile, now)
        assert set(values) == set(profile["features"])
        assert all(v < 0.1 for v in values.values()), values


def test_a_shifted_numeric_drifts_alone(housing):
    ref, now, _, profile = housing
    shifted = now.assign(median_income=now["median_income"] + ref["median_income"].std())
    values = _psi_by_feature(profile, shifted)
    assert values["median_income"] > 0.2
    assert all(v < 0.1 for name, v in values.items() if name != "median_income"), values


def test_a_changed_category_mix_drifts_alone(housing, titanic):
    _ref, now, _, profile = housing
    mix = np.random.default_rng(1).choice(["NEAR BAY", "<1H OCEAN", "INLAND"], size=len(now), p=[0.6, 0.2, 0.2])
    values = _psi_by_feature(profile, now.assign(ocean_proximity=mix))
    assert values["ocean_proximity"] > 0.2
    assert all(v < 0.1 for name, v in values.items() if name != "ocean_proximity"), values
    _ref, now, _, profile = titanic
    sex = np.where(np.random.default_rng(2).random(len(now)) < 0.9, "female", "male")
    values = _psi_by_feature(profile, now.assign(Sex=sex))
    assert values["Sex"] > 0.2 and all(v < 0.1 for name, v in values.items() if name != "Sex"), values


def test_a_missing_rate_change_is_measured_and_judged(titanic):
    ref, now, _, profile = titanic
    blanked = now.assign(Age=now["Age"].where(np.arange(len(now)) % 2 == 0))
    row = next(r for r in feature_drift(profile, blanked) if r["feature"] == "Age")
    assert row["missing_ref"] == pytest.approx(ref["Age"].isna().mean())
    assert row["missing_now"] == pytest.approx(blanked["Age"].isna().mean())
    assert row["rows"] == blanked["Age"].notna().sum() and row["total"] == len(now)
    [verdict] = judge([row], DriftThresholds(psi=None), min_rows=100)
    assert verdict["drifted"] and verdict["reasons"] == [
        f"missing {row['missing_ref']:.2f} → {row['missing_now']:.2f}"
    ]


# --------------------------------------------------------------------------- KS


@pytest.mark.parametrize(("dataset", "column", "shift"), [
    ("housing", "median_income", 0.0), ("housing", "median_income", 0.25), ("housing", "housing_median_age", 0.5),
    ("titanic", "Age", 0.0), ("titanic", "Age", 0.5), ("titanic", "Fare", 0.0), ("titanic", "Pclass", 0.0),
])
def test_ks_from_quantiles_is_close_to_the_two_sample_statistic(request, dataset, column, shift):
    ref, now, _, profile = request.getfixturevalue(dataset)
    reference = ref[column].dropna().to_numpy()
    current = now[column].dropna().to_numpy() + shift * reference.std()
    row = numeric_drift(profile["features"][column], pd.Series(current))
    oracle = stats.ks_2samp(reference, current, method="asymp")
    assert abs(row["ks_statistic"] - oracle.statistic) < 0.02, (row["ks_statistic"], oracle.statistic)
    if shift >= 0.25:
        assert row["ks_pvalue"] < 1e-4 and oracle.pvalue < 1e-4


def test_ks_against_a_hand_computed_reference_cdf():
    # quantiles 0, 0.5, 1 of an even grid: the reference CDF is F(x) = x on [0, 1]
    ref = profile_values(pd.Series(np.linspace(0, 1, 1001)), "numeric", quantiles=3)
    assert ref["quantiles"] == [0.0, 0.5, 1.0]
    def statistic(values):
        return numeric_drift(ref, pd.Series(values))["ks_statistic"]
    assert statistic([0.8] * 100) == pytest.approx(0.8)  # just below 0.8: F_now = 0, F = 0.8
    assert statistic([0.4] * 100) == pytest.approx(0.6)  # at 0.4: F_now = 1, F = 0.4
    assert statistic([0.25] * 50 + [0.75] * 50) == pytest.approx(0.25)
    assert statistic([-1.0] * 10 + [2.0] * 10) == pytest.approx(0.5)


def test_ks_pvalue_is_the_asymptotic_two_sample_one():
    rng = np.random.default_rng(5)
    for a, b in [(rng.normal(size=800), rng.normal(0.1, size=300)), (rng.normal(size=50), rng.normal(size=2000))]:
        oracle = stats.ks_2samp(a, b, method="asymp")
        assert ks_pvalue(oracle.statistic, len(a), len(b)) == pytest.approx(oracle.pvalue, rel=1e-9)
    assert ks_pvalue(0.3, 0, 10) is None


# --------------------------------------------------------------------------- chi-square


def test_chi_square_matches_scipy_on_raw_counts_with_an_unseen_bucket(titanic):
    ref, now, _, profile = titanic
    rng = np.random.default_rng(3)
    embarked = rng.choice(["S", "C", "Q", "X"], size=len(now), p=[0.5, 0.3, 0.1, 0.1]).astype(object)
    embarked[:4] = None
    row = categorical_drift(profile["features"]["Embarked"], pd.Series(embarked))
    before = ref["Embarked"].value_counts()
    after = pd.Series(embarked).value_counts()
    table = [[before["S"], before["C"], before["Q"], 0], [after["S"], after["C"], after["Q"], after["X"]]]
    oracle = stats.chi2_contingency(np.array(table), correction=False)
    assert row["chi2"] == pytest.approx(oracle.statistic, rel=1e-9)
    assert row["chi2_pvalue"] == pytest.approx(oracle.pvalue, rel=1e-9)
    assert row["unseen"] == pytest.approx(after["X"] / after.sum())
    assert row["rows"] == after.sum() and row["missing_now"] == pytest.approx(4 / len(now))


def test_chi_square_of_two_categories_has_no_continuity_correction(titanic):
    ref, now, _, profile = titanic
    sex = np.where(np.random.default_rng(4).random(len(now)) < 0.45, "female", "male")
    row = categorical_drift(profile["features"]["Sex"], pd.Series(sex))
    before, after = ref["Sex"].value_counts(), pd.Series(sex).value_counts()
    table = np.array([[before["male"], before["female"]], [after["male"], after["female"]]])
    oracle = stats.chi2_contingency(table, correction=False)
    assert row["chi2"] == pytest.approx(oracle.statistic, rel=1e-9)
    assert row["chi2_pvalue"] == pytest.approx(oracle.pvalue, rel=1e-9)


def test_rare_categories_are_pooled_with_unseen_values(housing):
    ref, now, _, profile = housing
    part = profile["features"]["ocean_proximity"]
    assert part["proportions"]["ISLAND"] * part["count"] < 5  # too rare to be its own bucket
    values = now["ocean_proximity"].to_numpy(dtype=object).copy()
    values[:40] = "LAKE"
    row = categorical_drift(part, pd.Series(values))
    before, after = ref["ocean_proximity"].value_counts(), pd.Series(values).value_counts()
    common = ["<1H OCEAN", "INLAND", "NEAR OCEAN", "NEAR BAY"]
    table = [[before[c] for c in common] + [before.get("ISLAND", 0)],
             [after[c] for c in common] + [after.get("ISLAND", 0) + after["LAKE"]]]
    oracle = stats.chi2_contingency(np.array(table), correction=False)
    assert row["chi2"] == pytest.approx(oracle.statistic, rel=1e-9)
    e = [before[c] / before.sum() for c in common] + [before.get("ISLAND", 0) / before.sum()]
    a = [after[c] / after.sum() for c in common] + [(after.get("ISLAND", 0) + after["LAKE"]) / after.sum()]
    assert row["psi"] == pytest.approx(psi(e, a))


def test_rows_carry_the_bucket_shares_for_plots(titanic):
    _ref, now, _, profile = titanic
    rows = {r["feature"]: r for r in feature_drift(profile, now)}
    pclass = rows["Pclass"]["shares"]
    assert pclass["labels"] == ["≤ 1", "(1, 2]", "> 2"]
    assert pclass["reference"] == profile["features"]["Pclass"]["proportions"]
    assert pclass["current"] == pytest.approx(now["Pclass"].value_counts(normalize=True).sort_index().tolist())
    embarked = rows["Embarked"]["shares"]
    assert embarked["labels"] == ["S", "C", "Q", "other/unseen"] and embarked["reference"][-1] == pytest.approx(0)
    assert embarked["current"][:3] == pytest.approx(now["Embarked"].value_counts(normalize=True)[["S", "C", "Q"]])
    assert rows["Ticket"]["shares"]["labels"] == ["other/unseen"]  # every ticket is too rare to be its own bucket


# --------------------------------------------------------------------------- coercion, absent features


def test_raw_logged_values_are_coerced_like_training(titanic):
    _ref, now, _, profile = titanic
    raw = pd.DataFrame(json.loads(now.to_json(orient="records")))
    raw["Pclass"] = [str(int(v)) for v in raw["Pclass"]]
    raw["Fare"] = [f" {v} " for v in raw["Fare"]]
    assert feature_drift(profile, raw) == feature_drift(profile, now)


def test_categories_and_booleans_from_json_match_training():
    codes = profile_values(pd.Series([1, 2, 3] * 50), "categorical")
    row = categorical_drift(codes, pd.Series(["1", 2.0, 3, "2", 1.0, "3"] * 20, dtype=object))
    assert row["unseen"] == 0.0 and row["psi"] == pytest.approx(0.0)
    flags = profile_values(pd.Series(["yes", "no"] * 50), "boolean")
    row = categorical_drift(flags, pd.Series([True, False, "Y", "n"] * 25, dtype=object))
    assert row["unseen"] == 0.0 and row["psi"] == pytest.approx(0.0)


def test_absent_features_and_empty_columns(titanic):
    _ref, now, _, profile = titanic
    rows = feature_drift(profile, now.drop(columns=["Fare", "Embarked"]))
    assert [r["feature"] for r in rows] == list(profile["features"])
    fare = next(r for r in rows if r["feature"] == "Fare")
    assert fare == {"feature": "Fare", "kind": "numeric", "rows": 0, "total": 0, "absent": True}
    empty = numeric_drift(profile["features"]["Age"], pd.Series([None, None], dtype=object))
    assert empty["rows"] == 0 and empty["psi"] is None and empty["missing_now"] == 1.0
    json.dumps(rows, allow_nan=False)


# --------------------------------------------------------------------------- predictions (a real bundle)


@pytest.fixture(scope="module")
def bundle_profile(tmp_path_factory):
    import honing

    recipe = {"name": "titanic", "data": {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]},
              "model": {"type": "logistic_regression"}, "evaluate": {"explain": False, "bootstrap": 0}}
    run = honing.train(recipe, out=tmp_path_factory.mktemp("drift") / "run", track=False)
    bundle = honing.load(run.bundle_dir)
    from honing.data.schema import Schema

    frame = load_builtin("titanic").frame
    schema = Schema.from_dict(bundle.features)
    profile = build_profile(frame, schema, bundle.predict(frame), task=bundle.task)
    return bundle, frame, json.loads(json.dumps(profile, allow_nan=False))


def test_prediction_drift_of_a_trained_bundle(bundle_profile):
    bundle, frame, profile = bundle_profile
    assert profile_problem(profile) is None and set(profile["prediction"]["proportions"]) == {"0", "1"}
    same = prediction_drift(profile, pd.Series(bundle.predict(frame.sample(400, random_state=4))))
    women = frame.assign(Sex="female").sample(400, random_state=4)
    moved = prediction_drift(profile, pd.Series(bundle.predict(women)))
    assert same["psi"] < 0.1 and moved["psi"] > 0.2
    [verdict] = judge([moved], DriftThresholds(), min_rows=100)
    assert verdict["drifted"] and verdict["reasons"][0].startswith("psi ")
    assert prediction_drift({**profile, "prediction": None}, pd.Series([1, 0])) is None


# --------------------------------------------------------------------------- judge


def _row(**stats):
    base = {"feature": "x", "kind": "numeric", "rows": 500, "total": 500, "psi": 0.05, "ks_pvalue": 0.5,
            "missing_ref": 0.02, "missing_now": 0.02}
    return {**base, **stats}


def test_judge_applies_psi_at_or_above_the_threshold():
    rows = [_row(psi=0.31), _row(psi=0.2), _row(psi=0.19)]
    verdicts = judge(rows, DriftThresholds(psi=0.2), min_rows=100)
    assert [v["drifted"] for v in verdicts] == [True, True, False]
    assert verdicts[0]["reasons"] == ["psi 0.31 ≥ 0.2"] and verdicts[2]["reasons"] == []
    assert "drifted" not in rows[0]  # copies, the input is left alone
    assert not judge(rows, DriftThresholds(psi=None), min_rows=100)[0]["drifted"]


def test_judge_applies_p_value_thresholds_only_when_set():
    numeric = _row(ks_pvalue=0.001)
    categorical = {**_row(kind="categorical", chi2_pvalue=0.001), "ks_pvalue": None}
    assert not any(v["drifted"] for v in judge([numeric, categorical], DriftThresholds(), min_rows=100))
    ks, chi2 = judge([numeric, categorical], DriftThresholds(ks_pvalue=0.01, chi2_pvalue=0.01), min_rows=100)
    assert ks["reasons"] == ["KS p-value 0.001 < 0.01"] and chi2["reasons"] == ["chi-square p-value 0.001 < 0.01"]
    [fine] = judge([_row(ks_pvalue=0.02)], DriftThresholds(ks_pvalue=0.01), min_rows=100)
    assert not fine["drifted"]


def test_judge_applies_the_missing_change():
    moved, small = _row(missing_now=0.35), _row(missing_now=0.1)
    verdicts = judge([moved, small], DriftThresholds(missing_change=0.1), min_rows=100)
    assert verdicts[0]["reasons"] == ["missing 0.02 → 0.35"] and not verdicts[1]["drifted"]
    assert not judge([moved], DriftThresholds(missing_change=None), min_rows=100)[0]["drifted"]


def test_judge_never_flags_too_few_rows_or_absent_features():
    few, absent = _row(total=50, rows=50, psi=0.9), {"feature": "y", "kind": "numeric", "rows": 0, "total": 0, "absent": True}
    verdicts = judge([few, absent], DriftThresholds(), min_rows=100)
    assert not any(v["drifted"] for v in verdicts)
    assert verdicts[0]["note"] == "too few rows (50 < 100)" and verdicts[1]["note"] == "absent from the data"
    # enough rows but mostly missing: the missing rate is judged, the distribution is not
    [blank] = judge([_row(rows=20, total=500, psi=0.9, missing_now=0.96)], DriftThresholds(), min_rows=100)
    assert blank["drifted"] and blank["reasons"] == ["missing 0.02 → 0.96"] and "20 < 100" in blank["note"]
    [judged] = judge([_row()], DriftThresholds(), min_rows=100)
    assert judged["note"] is None and judged["reasons"] == [] and judged["drifted"] is False
