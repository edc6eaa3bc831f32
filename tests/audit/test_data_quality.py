"""The data-quality audit: each check against hand-computed or independently recomputed answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.datasets import make_classification, make_regression

from honing.audit.findings import SEVERITIES, Finding
from honing.audit.quality import CHECKS, QualityLimits, check_quality


def by_check(findings: list[Finding], check: str) -> dict[str | None, Finding]:
    return {f.column: f for f in findings if f.check == check}


def assert_well_formed(findings: list[Finding]) -> None:
    """Known checks and severities, in CHECKS order, JSON-serialisable without NaN."""
    assert [CHECKS.index(f.check) for f in findings] == sorted(CHECKS.index(f.check) for f in findings)
    for f in findings:
        assert f.severity in SEVERITIES and f.message
        json.dumps(f.to_dict(), allow_nan=False)
        assert f.value is None or type(f.value) is float
        assert f.count is None or type(f.count) is int


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    """10 noisy informative features, a categorical one and a binary target; no planted problem."""
    X, y = make_classification(3000, 10, n_informative=5, flip_y=0.1, random_state=0)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(10)])
    df["colour"] = np.random.default_rng(0).choice(["red", "green", "blue"], len(df))
    df["y"] = y
    return df


def random_splits(df: pd.DataFrame, seed: int = 0) -> dict[str, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(df))
    n = len(df)
    return {"train": df.iloc[order[: int(0.6 * n)]], "validation": df.iloc[order[int(0.6 * n): int(0.8 * n)]],
            "test": df.iloc[order[int(0.8 * n):]]}


def test_checks_are_named_in_report_order():
    assert CHECKS == ("missing_values", "duplicate_rows", "conflicting_labels", "constant_column",
                      "near_constant_column", "identifier_column", "high_cardinality", "outliers",
                      "class_imbalance", "target_leakage", "split_leakage", "distribution_shift",
                      "mixed_types")
    assert QualityLimits().near_constant == 0.99 and QualityLimits().max_categories == 50
    with pytest.raises(ValueError, match="task"):
        check_quality(pd.DataFrame({"a": [1]}), "a", "clustering")


def test_missing_values_count_blank_strings_and_grade_severity():
    n = 40
    df = pd.DataFrame({
        "a": [np.nan] * 10 + list(range(30)),
        "s": ["", "  ", None, "\t"] + ["x"] * 36,
        "rare": [None] + ["y"] * 39,
        "empty": [np.nan] * n,
        "full": range(n),
    })
    missing = by_check(check_quality(df, None), "missing_values")
    assert set(missing) == {"a", "s", "rare", "empty"}
    assert (missing["a"].count, missing["a"].value, missing["a"].severity) == (10, 0.25, "warning")
    assert (missing["s"].count, missing["s"].value) == (4, 0.1)
    assert (missing["rare"].count, missing["rare"].severity) == (1, "info")
    assert (missing["empty"].count, missing["empty"].value, missing["empty"].severity) == (40, 1.0, "error")
    assert missing["a"].message == "column 'a': 10 of 40 rows missing (25.0%)"


def test_duplicate_rows_count_surplus_copies():
    df = pd.DataFrame({"a": [1, 2, 1, 3, 1, 2], "b": ["x", "y", "x", "z", "x", "w"]})
    # (1, x) three times: 2 surplus; (2, y) and (2, w) differ
    [dup] = [f for f in check_quality(df, None) if f.check == "duplicate_rows"]
    assert (dup.count, dup.value, dup.column) == (2, pytest.approx(2 / 6), None)
    assert dup.details["examples"] == [2, 4]
    assert not [f for f in check_quality(df.drop_duplicates(), None) if f.check == "duplicate_rows"]


def test_conflicting_labels_counts_rows_and_groups():
    df = pd.DataFrame({"a": [1, 1, 2, 2, 2, 3, 4, 5, 6, 7],
                       "b": ["u", "u", "v", "v", "v", "w", "w", "w", "w", "w"],
                       "y": [0, 1, 0, 0, 1, 0, 1, 0, 1, 0]})
    # groups (1, u) and (2, v) disagree: 2 + 3 rows
    found = by_check(check_quality(df, "y", "classification"), "conflicting_labels")
    f = found["y"]
    assert (f.count, f.value, f.details["groups"], f.severity) == (5, 0.5, 2, "error")
    assert f.details["example"] == {"rows": [0, 1], "labels": [0, 1]}
    few = pd.concat([df.iloc[:2]] + [df.iloc[5:]] * 9, ignore_index=True)
    few["a"] = [1, 1] + list(range(100, 100 + len(few) - 2))  # 2 of 47 rows conflict: under 5%
    assert by_check(check_quality(few, "y", "classification"), "conflicting_labels")["y"].severity == "warning"
    assert not by_check(check_quality(df, "y", None), "conflicting_labels")


def test_constant_and_near_constant_columns_are_reported_once():
    n = 1000
    df = pd.DataFrame({"const": ["k"] * (n - 10) + [None] * 10,
                       "near": [0] * 995 + [1] * 5,
                       "fine": [0] * 900 + [1] * 100,
                       "y": np.arange(n) % 2})
    findings = check_quality(df, "y", "classification")
    const, near = by_check(findings, "constant_column"), by_check(findings, "near_constant_column")
    assert set(const) == {"const"} and set(near) == {"near"}
    assert (const["const"].value, const["const"].count) == (1.0, 990)
    assert (near["near"].value, near["near"].count) == (0.995, 5)


def test_identifier_columns():
    rng = np.random.default_rng(1)
    n = 200
    ids = rng.permutation(n).astype(float)
    ids[:5] = np.nan  # read as float because of the blanks
    df = pd.DataFrame({
        "PassengerId": np.arange(1, n + 1),
        "customer_id": ids,
        "code": [f"C{i:05d}" for i in rng.permutation(n)],
        "row": np.arange(n),  # a counter, no id name
        "store_id": np.arange(n) % 10,  # an id-like name, but a category
        "height": rng.normal(170, 10, n),  # unique floats: a measurement
        "income": rng.permutation(n) * 37 + 1000,  # unique integers in no order: a measurement
        "review": [f"this is review number {i} of a product" for i in range(n)],  # free text
        "day": pd.date_range("2020-01-01", periods=n).astype(str),  # dates as a CSV gives them
        "y": np.arange(n),
    })
    found = by_check(check_quality(df, "y", "regression"), "identifier_column")
    assert set(found) == {"PassengerId", "customer_id", "code", "row"}
    assert found["customer_id"].value == 1.0 and found["customer_id"].count == 195
    # identifiers are not also reported as high-cardinality categories
    assert set(by_check(check_quality(df, "y", "regression"), "high_cardinality")) == {"review"}


def test_high_cardinality_counts_distinct_values():
    n = 600
    df = pd.DataFrame({"city": [f"city{i % 60}" for i in range(n)], "small": [f"c{i % 50}" for i in range(n)],
                       "num": np.arange(n) % 70})
    found = by_check(check_quality(df, None), "high_cardinality")
    assert set(found) == {"city"} and found["city"].value == 60


def test_outliers_match_iqr_and_robust_z_recomputed():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, 500)
    x[:12] = [15, -20, 9, 30, 12, -14, 50, 8, 11, -9, 40, 25]
    mostly_zero = np.where(np.arange(500) % 5 < 3, 0.0, rng.uniform(1, 2, 500))
    mostly_zero[:10] = 100.0  # median 0 and MAD 0: the IQR rule alone (Q3 about 1.2)
    df = pd.DataFrame({"x": x, "clean": rng.normal(0, 1, 500),
                       "sparse": np.where(np.arange(500) % 10 == 0, rng.exponential(5, 500), 0.0),
                       "flag": np.arange(500) % 2, "mostly_zero": mostly_zero})
    found = by_check(check_quality(df, None), "outliers")
    assert set(found) == {"x", "mostly_zero"}
    assert found["mostly_zero"].details["robust_z"] == 0 and found["mostly_zero"].count == 10
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    iqr_flag = (x < q1 - 3 * (q3 - q1)) | (x > q3 + 3 * (q3 - q1))
    z_flag = np.abs(x - med) / (1.4826 * np.median(np.abs(x - med))) > 3.5
    f = found["x"]
    assert f.details["iqr"] == iqr_flag.sum() and f.details["robust_z"] == z_flag.sum()
    assert f.count == (iqr_flag | z_flag).sum() and f.value == pytest.approx((iqr_flag | z_flag).mean())
    assert f.details["examples"][0] == 50.0
    assert f.severity == "warning"  # far outside the quartiles
    tail = pd.DataFrame({"fare": np.random.default_rng(5).lognormal(0, 0.8, 500)})  # a tail the z-score alone calls outliers
    long_tail = by_check(check_quality(tail, None), "outliers")["fare"]
    assert long_tail.details["robust_z"] > long_tail.details["iqr"] and long_tail.severity == "info"


def test_class_imbalance_ratio_and_counts():
    df = pd.DataFrame({"x": np.arange(100), "y": ["a"] * 80 + ["b"] * 20})
    f = by_check(check_quality(df, "y", "classification"), "class_imbalance")["y"]
    assert (f.value, f.count, f.details["counts"]) == (4.0, 20, {"a": 80, "b": 20})
    balanced = df.assign(y=["a"] * 70 + ["b"] * 30)
    assert not by_check(check_quality(balanced, "y", "classification"), "class_imbalance")
    assert not by_check(check_quality(df.assign(y=np.arange(100.0)), "y", "regression"), "class_imbalance")


def test_target_leakage_catches_noisy_and_renamed_copies(clean):
    rng = np.random.default_rng(3)
    df = clean.copy()
    df["leak"] = df["y"] + rng.normal(0, 0.01, len(df))
    df["renamed"] = df["y"].map({0: "no", 1: "yes"})
    findings = check_quality(df, "y", "classification")
    leaks = by_check(findings, "target_leakage")
    assert set(leaks) == {"leak", "renamed"}
    assert all(f.severity == "error" and f.value >= 0.98 and f.details["metric"] == "ROC AUC"
               for f in leaks.values())


def test_target_leakage_regression_and_multiclass():
    X, y = make_regression(2000, 5, noise=20, random_state=4)
    df = pd.DataFrame(X, columns=list("abcde")).assign(price=y)
    df["price_copy"] = y + np.random.default_rng(4).normal(0, 0.01 * y.std(), len(y))
    leaks = by_check(check_quality(df, "price", "regression"), "target_leakage")
    assert set(leaks) == {"price_copy"} and leaks["price_copy"].details["metric"] == "R²"
    X, y = make_classification(1500, 6, n_informative=4, n_classes=5, random_state=5)
    df = pd.DataFrame(X, columns=list("abcdef")).assign(label=np.array(list("vwxyz"))[y])
    df["code"] = df["label"].map(dict(zip("vwxyz", [40, 10, 30, 50, 20])))
    leaks = by_check(check_quality(df, "label", "classification"), "target_leakage")
    assert set(leaks) == {"code"} and leaks["code"].details["metric"] == "balanced accuracy"
    assert leaks["code"].value == pytest.approx(1.0)


def test_split_leakage_exact_and_normalised(clean):
    df = clean.copy()
    df["name"] = [f"Person {i}" for i in range(len(df))]
    splits = random_splits(df, seed=1)
    train = splits["train"]
    changed = train.iloc[10:15].copy()
    changed["name"] = ["  " + s.upper().replace(" ", "   ") for s in changed["name"]]
    changed["x0"] = changed["x0"] * (1 + 1e-9)
    changed["y"] = 1 - changed["y"]  # the target is not compared
    test = pd.concat([train.iloc[:10], changed, splits["test"].iloc[15:]])
    validation = pd.concat([train.iloc[20:23], splits["validation"].iloc[3:]])
    findings = check_quality(df, "y", "classification", splits={**splits, "test": test, "validation": validation})
    leaks = {f.details["split"]: f for f in findings if f.check == "split_leakage"}
    assert leaks["test"].details == {"exact": 10, "normalized": 5, "split": "test", "train_repeats": 0.0}
    assert (leaks["test"].count, leaks["test"].value, leaks["test"].severity) == (15, 15 / len(test), "error")
    assert (leaks["validation"].count, leaks["validation"].details["exact"]) == (3, 3)
    assert not [f for f in check_quality(df, "y", "classification", splits=splits) if f.check == "split_leakage"]


def test_split_leakage_expected_repeats_are_a_warning():
    rng = np.random.default_rng(6)
    df = pd.DataFrame({"a": rng.integers(0, 3, 600), "b": rng.choice(["u", "v"], 600), "y": rng.integers(0, 2, 600)})
    splits = random_splits(df)
    [f] = [f for f in check_quality(df, "y", "classification", splits=splits)
           if f.check == "split_leakage" and f.details["split"] == "test"]
    assert f.value == 1.0 and f.details["train_repeats"] == 1.0 and f.severity == "warning"


def test_split_leakage_rounds_numbers_to_six_significant_digits():
    train = pd.DataFrame({"v": [1.0, 2.5, 1234567.0, 3.0], "s": [" Alice", "bob", "c", "d"], "t": [0, 1, 0, 1]})
    test = pd.DataFrame({"v": [1.0000001, 2.5, 1234568.0, 1.0001, 3.00001], "s": ["alice", "Bob", "C", "alice", "d"],
                         "t": [1, 1, 1, 1, 1]})
    f = by_check(check_quality(train, "t", "classification", splits={"train": train, "test": test}),
                 "split_leakage")[None]
    assert f.details["exact"] == 0 and f.details["normalized"] == 3  # 1.0001 and 3.00001: 5th, 6th digit


def test_distribution_shift_matches_scipy(clean):
    splits = random_splits(clean, seed=2)
    test = splits["test"].copy()
    test["x1"] = test["x1"] + 1.0
    test["colour"] = np.where(np.arange(len(test)) % 2 == 0, "red", test["colour"])
    findings = check_quality(clean, "y", "classification", splits={**splits, "test": test})
    shifts = [f for f in findings if f.check == "distribution_shift"]
    assert {(f.column, f.details["split"]) for f in shifts} == {("x1", "test"), ("colour", "test")}
    ks = stats.ks_2samp(splits["train"]["x1"], test["x1"])
    x1 = next(f for f in shifts if f.column == "x1")
    assert (x1.value, x1.details["test"]) == (pytest.approx(ks.statistic), "ks")
    assert x1.details["p_value"] == pytest.approx(ks.pvalue, rel=1e-6)
    assert x1.details["tests"] == 11 and x1.details["p_value"] < 0.01 / 11  # Bonferroni over 11 features
    table = pd.DataFrame({"train": splits["train"]["colour"].value_counts(),
                          "test": test["colour"].value_counts()}).fillna(0).to_numpy().T
    chi = stats.chi2_contingency(table, correction=False)
    colour = next(f for f in shifts if f.column == "colour")
    assert colour.details["p_value"] == pytest.approx(chi.pvalue, rel=1e-6)
    assert colour.value == pytest.approx(np.sqrt(chi.statistic / table.sum()))
    assert all(f.severity == "warning" for f in shifts)


def test_distribution_shift_needs_a_material_effect():
    rng = np.random.default_rng(7)
    train = pd.DataFrame({"x": rng.normal(0, 1, 40000), "y": rng.integers(0, 2, 40000)})
    test = pd.DataFrame({"x": rng.normal(0.1, 1, 40000), "y": rng.integers(0, 2, 40000)})
    ks = stats.ks_2samp(train["x"], test["x"])
    assert ks.pvalue < 1e-6 and ks.statistic < 0.1  # significant, but small
    df = pd.concat([train, test])
    assert not by_check(check_quality(df, "y", None, splits={"train": train, "test": test}), "distribution_shift")
    strict = QualityLimits(shift_effect=0.02)
    assert set(by_check(check_quality(df, "y", None, splits={"train": train, "test": test}, limits=strict),
                        "distribution_shift")) == {"x"}


def test_distribution_shift_is_bonferroni_corrected_and_skips_identifiers():
    q = stats.norm.ppf((np.arange(300) + 0.5) / 300)
    rng = np.random.default_rng(8)
    train = pd.DataFrame({f"n{i}": rng.permutation(q) for i in range(4)} | {"x": q, "order_id": np.arange(300)})
    test = pd.DataFrame({f"n{i}": rng.permutation(q) for i in range(4)} | {"x": q + 0.34,
                                                                          "order_id": np.arange(300, 600)})
    ks = stats.ks_2samp(train["x"], test["x"])
    assert 0.01 / 5 < ks.pvalue < 0.01 and ks.statistic > 0.1
    df, splits = pd.concat([train, test]), {"train": train, "test": test}
    assert not by_check(check_quality(df, None, splits=splits), "distribution_shift")
    found = by_check(check_quality(df, None, splits=splits, limits=QualityLimits(shift_p=0.05)),
                     "distribution_shift")
    assert set(found) == {"x"} and found["x"].details["tests"] == 5  # order_id: an identifier, not tested


def test_mixed_types():
    df = pd.DataFrame({"age": ["12", "7", "n/a", "twelve"] + [str(i) for i in range(36)],
                       "size": ["S", "M", "L", "10"] * 10,
                       "word": ["a", "b"] * 20})
    found = by_check(check_quality(df, None), "mixed_types")
    assert set(found) == {"age", "size"}
    assert (found["age"].count, found["age"].value, found["age"].severity) == (2, 0.05, "warning")
    assert found["age"].details["examples"] == ["n/a", "twelve"]
    assert (found["size"].count, found["size"].value, found["size"].severity) == (10, 0.25, "info")


def test_clean_data_raises_no_false_alarms(clean):
    splits = random_splits(clean, seed=3)
    findings = check_quality(clean, "y", "classification", splits=splits)
    assert_well_formed(findings)
    assert not [f for f in findings if f.severity == "error"]
    assert not [f for f in findings if f.check in ("target_leakage", "split_leakage", "distribution_shift")]


def test_titanic():
    from honing.data.builtin import load_builtin

    df = load_builtin("titanic").frame
    splits = random_splits(df, seed=4)
    findings = check_quality(df, "Survived", "classification", splits=splits)
    assert_well_formed(findings)
    missing = by_check(findings, "missing_values")
    assert {"Age", "Cabin"} <= set(missing)
    assert missing["Age"].count == 177 and missing["Cabin"].value == pytest.approx(687 / 891)
    assert {"PassengerId", "Name"} <= set(by_check(findings, "identifier_column"))
    assert not by_check(findings, "target_leakage") and not by_check(findings, "split_leakage")
    assert not [f for f in findings if f.severity == "error"]


def test_ignore_skips_columns():
    df = pd.DataFrame({"empty": [np.nan] * 30, "id": range(30), "x": np.linspace(0, 1, 30) ** 2,
                       "y": [0, 1] * 15})
    assert {f.column for f in check_quality(df, "y", "classification")} == {"empty", "id"}
    assert not check_quality(df, "y", "classification", ignore=["empty", "id"])


def test_unhashable_values_are_compared_as_text():
    df = pd.DataFrame({"lists": [[i % 20] for i in range(40)], "y": [0, 1] * 20})
    findings = check_quality(df, "y", "classification")
    assert [(f.check, f.count) for f in findings] == [("duplicate_rows", 20)]  # rows i and i + 20


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"a": [1.0], "y": [1]}),
    pd.DataFrame({"a": [np.nan] * 40, "b": [None] * 40, "y": [0, 1] * 20}),
    pd.DataFrame({"when": pd.date_range("2024-01-01", periods=40, freq="h"), "flag": [True, False] * 20,
                  "y": [0, 1] * 20}),
    pd.DataFrame({"y": [0, 1] * 20}),
    pd.DataFrame({"lists": [[i] for i in range(40)], "d": [{"k": i} for i in range(40)], "y": [0, 1] * 20}),
    pd.DataFrame(columns=["a", "y"]),
    pd.DataFrame({0: np.arange(40.0), 1: ["a", None] * 20, "y": [0, 1] * 20}),
    pd.DataFrame([[1, 2, 0], [1, 2, 1]] * 20, columns=["a", "a", "y"]),
    pd.DataFrame({"z": [0.0, np.inf, -np.inf, np.nan] * 10, "o": [1, "1", 2.5, None] * 10,
                  "y": [0, 1, 2, 3] * 10}),
])
@pytest.mark.parametrize("task", ["classification", "regression", None])
def test_odd_frames_never_crash(frame, task):
    splits = {"train": frame, "test": frame.iloc[::-1]}
    findings = check_quality(frame, "y", task, splits=splits)
    assert_well_formed(findings)
    check_quality(frame, None, None)
