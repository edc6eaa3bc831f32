"""The training reference profile: bins, quantiles, category shares, JSON shape and validation."""

from __future__ import annotations

import copy
import json
import math
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from honing.data.builtin import load_builtin
from honing.data.preprocess import coerce_features
from honing.data.schema import Column, Schema, infer_schema
from honing.serving.profile import build_profile, profile_problem, profile_values


def _builtin(name: str) -> tuple[pd.DataFrame, Schema]:
    dataset = load_builtin(name)
    frame = dataset.frame
    return frame, infer_schema(frame, target=dataset.target, overrides=dataset.types)


@pytest.fixture(scope="module")
def titanic():
    frame, schema = _builtin("titanic")
    return frame, schema, build_profile(coerce_features(frame, schema), schema, task="classification")


def _schema(**kinds: str) -> Schema:
    return Schema(columns=[Column(name=n, kind=k, dtype="", missing=0.0, unique=0) for n, k in kinds.items()])


def test_profile_is_strict_json_compact_and_valid(titanic):
    _, _, profile = titanic
    text = json.dumps(profile, allow_nan=False)
    assert profile_problem(json.loads(text)) is None
    assert profile["rows"] == 891 and profile["bins"] == 10 and profile["prediction"] is None
    assert set(profile["features"]) == {"Pclass", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked"}
    for name, part in profile["features"].items():
        assert len(json.dumps(part)) < 3000, name


def test_profile_is_deterministic_and_ignores_row_order(titanic):
    frame, schema, profile = titanic
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    again = build_profile(coerce_features(shuffled, schema), schema, task="classification")
    assert json.dumps(again, sort_keys=False) == json.dumps(profile, sort_keys=False)


def test_raw_and_coerced_frames_give_the_same_profile(titanic):
    frame, schema, profile = titanic
    assert build_profile(frame, schema, task="classification") == profile


def test_discrete_numerics_get_one_bin_per_frequent_value(titanic):
    frame, _, profile = titanic
    pclass = profile["features"]["Pclass"]
    assert pclass["edges"] == [1.0, 2.0]
    shares = frame["Pclass"].value_counts(normalize=True).sort_index()
    assert pclass["proportions"] == pytest.approx(shares.tolist())
    sibsp = profile["features"]["SibSp"]
    assert sibsp["edges"] == [0.0, 1.0]
    counts = frame["SibSp"].value_counts()
    assert sibsp["proportions"] == pytest.approx(
        [counts[0] / 891, counts[1] / 891, counts[counts.index > 1].sum() / 891]
    )
    # Parch: 0, 1 and 2 are frequent, 3..6 together hold < 5%: they join the "2" bin.
    parch = profile["features"]["Parch"]
    assert parch["edges"] == [0.0, 1.0]
    assert parch["proportions"][2] == pytest.approx((frame["Parch"] >= 2).mean())


def test_continuous_numerics_get_decile_bins_closed_on_the_right(titanic):
    frame, _, profile = titanic
    for name in ("Age", "Fare"):
        part = profile["features"][name]
        values = frame[name].dropna().to_numpy()
        edges = part["edges"]
        assert len(edges) == 9 and set(edges) <= set(values)  # edges are values that occur
        bounds = [-math.inf, *edges, math.inf]
        by_hand = [np.mean((values > lo) & (values <= hi)) for lo, hi in pairwise(bounds)]
        assert part["proportions"] == pytest.approx(by_hand)
        assert all(0.05 <= share <= 0.15 for share in part["proportions"]), part["proportions"]
        assert part["missing"] == pytest.approx(frame[name].isna().mean())
        assert part["count"] == len(values)
        assert part["mean"] == pytest.approx(values.mean()) and part["std"] == pytest.approx(values.std())


def test_values_on_an_edge_go_to_the_lower_bin():
    part = profile_values(pd.Series([1.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0, 6.0]), "numeric", bins=2)
    assert part["edges"] == [3.0]  # the empirical median (4th of 8 values), a value that occurs
    assert part["proportions"] == [5 / 8, 3 / 8]  # 1, 2, 3, 3, 3 | 4, 5, 6 (not 2/8 | 6/8)


def test_quantiles_are_empirical_from_minimum_to_maximum(titanic):
    frame, _, profile = titanic
    ordered = np.sort(frame["Fare"].to_numpy())
    quantiles = profile["features"]["Fare"]["quantiles"]
    assert len(quantiles) == 101 and quantiles[0] == ordered[0] and quantiles[-1] == ordered[-1]
    for k in (1, 25, 50, 99):
        assert quantiles[k] == ordered[math.ceil(k / 100 * len(ordered)) - 1]


def test_a_constant_numeric_has_one_bin():
    part = profile_values(pd.Series([4.0] * 30), "numeric")
    assert part["edges"] == [] and part["proportions"] == [1.0] and part["std"] == 0.0


def test_categorical_shares_top_values_and_other(titanic):
    frame, _, profile = titanic
    embarked = profile["features"]["Embarked"]
    shares = frame["Embarked"].value_counts(normalize=True)
    assert embarked["proportions"] == pytest.approx(shares.to_dict())
    assert list(embarked["proportions"]) == ["S", "C", "Q"]  # most frequent first
    assert embarked["missing"] == pytest.approx(2 / 891) and embarked["other"] == 0.0
    ticket = profile["features"]["Ticket"]
    counts = frame["Ticket"].value_counts()
    assert len(ticket["proportions"]) == 50
    assert ticket["proportions"]["347082"] == pytest.approx(counts["347082"] / 891)
    assert ticket["other"] == pytest.approx(1 - sum(ticket["proportions"].values()))
    assert ticket["other"] == pytest.approx(counts.sort_values(ascending=False).iloc[50:].sum() / 891, abs=0.01)


def test_categories_are_coerced_like_training():
    part = profile_values(pd.Series([1, 1.0, "1", " 1 ", 2, None, "b"], dtype=object), "categorical")
    assert part["proportions"] == pytest.approx({"1": 4 / 6, "2": 1 / 6, "b": 1 / 6})
    assert part["missing"] == pytest.approx(1 / 7) and part["schema_kind"] == "categorical"
    flags = profile_values(pd.Series(["yes", "no", "Yes", "YES"]), "boolean")
    assert flags["kind"] == "categorical" and flags["schema_kind"] == "boolean"
    assert flags["proportions"] == {"true": 0.75, "false": 0.25}


def test_top_bounds_the_categories_kept():
    values = pd.Series(list("aaaabbbccd"))
    part = profile_values(values, "categorical", top=2)
    assert part["proportions"] == {"a": 0.4, "b": 0.3} and part["other"] == pytest.approx(0.3)


def test_text_datetime_and_empty_columns_are_skipped_with_a_reason():
    frame = pd.DataFrame({
        "x": [1.0, 2.0, 3.0],
        "note": ["a b c", "d e f", "g h i"],
        "when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
        "empty": [None, None, None],
    })
    profile = build_profile(frame, _schema(x="numeric", note="text", when="datetime", empty="numeric"), task="regression")
    assert list(profile["features"]) == ["x"]
    assert "text" in profile["skipped"]["note"]
    assert "out of scope" in profile["skipped"]["when"]
    assert "missing" in profile["skipped"]["empty"]
    assert profile_problem(profile) is None


def test_infinite_numbers_count_as_missing():
    part = profile_values(pd.Series([1.0, np.inf, -np.inf, 2.0]), "numeric")
    assert part["missing"] == 0.5 and part["quantiles"][-1] == 2.0
    json.dumps(part, allow_nan=False)


def test_predictions_are_profiled_by_task():
    frame = pd.DataFrame({"x": np.arange(40, dtype=float)})
    schema = _schema(x="numeric")
    labels = build_profile(frame, schema, np.array([0] * 30 + [1] * 10), task="classification")["prediction"]
    assert labels["kind"] == "categorical" and labels["proportions"] == {"0": 0.75, "1": 0.25}
    values = build_profile(frame, schema, np.linspace(0, 1, 40), task="regression")["prediction"]
    assert values["kind"] == "numeric" and values["mean"] == pytest.approx(0.5)
    assert profile_problem(build_profile(frame, schema, np.linspace(0, 1, 40), task="regression")) is None


def _break(path: tuple, value):
    def apply(profile: dict) -> dict:
        broken = copy.deepcopy(profile)
        target = broken
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return broken
    return apply


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda p: [p], "not a mapping"),
        (_break(("features",), KeyError), "lacks 'features'"),
        (_break(("rows",), -1), "'rows'"),
        (_break(("rows",), True), "'rows'"),
        (_break(("skipped",), {"Name": 3}), "'skipped'"),
        (_break(("features", "Age", "kind"), "ordinal"), "unknown kind"),
        (_break(("features", "Age", "edges"), [3.0, 2.0]), "'edges'"),
        (_break(("features", "Age", "proportions"), [0.5, 0.5]), "one share per bin"),
        (_break(("features", "Age", "quantiles", 3), float("nan")), "'quantiles'"),
        (_break(("features", "Age", "mean"), "thirty"), "'mean'"),
        (_break(("features", "Age", "count"), 3.5), "'count'"),
        (_break(("features", "Age", "missing"), 1.5), "'missing'"),
        (_break(("features", "Sex", "proportions", "male"), 0.1), "sum to"),
        (_break(("features", "Sex", "other"), None), "'other'"),
        (_break(("features", "Sex", "schema_kind"), "numeric"), "schema_kind"),
        (_break(("prediction",), {"kind": "numeric"}), "prediction"),
    ],
)
def test_profile_problem_names_what_is_broken(titanic, mutate, words):
    _, _, profile = titanic
    problem = profile_problem(mutate(profile))
    assert problem is not None and "\n" not in problem
    assert words in problem, problem


def test_profile_problem_names_the_feature(titanic):
    problem = profile_problem(_break(("features", "Age", "edges"), [3.0, 2.0])(titanic[2]))
    assert "'Age'" in problem
