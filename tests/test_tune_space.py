"""The search space of ``honing tune``: parsing and validating specs, checking them against the
recipe and the model types, sampling them with Optuna, grids, applying values to a recipe, the
``tune:`` schema and the CLI's one-line errors.  Nothing here trains a model."""

from __future__ import annotations

import copy
import itertools
import json
import math
import warnings

import optuna
import pytest
import yaml

from conftest import assert_user_error
from honing.errors import HoningError, RecipeError
from honing.recipe import TuneConfig, load_recipe
from honing.tuning import defaults
from honing.tuning.defaults import DEFAULT_SPACES, option_space
from honing.tuning.space import MAX_GRID, apply_values, build_space, grid_size, parse_space, suggest
from honing.tuning.study import make_sampler

optuna.logging.set_verbosity(optuna.logging.ERROR)

IRIS = {"source": "builtin:iris"}


def recipe(model: dict | None = None, space: dict | None = None, **tune):
    raw = {"data": dict(IRIS)}
    if model is not None:
        raw["model"] = model
    if space is not None:
        tune["space"] = space
    if tune:
        raw["tune"] = tune
    return load_recipe(raw)


def by_path(dims):
    return {d.path: d for d in dims}


def study(seed: int = 0) -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))


def ask(s: optuna.Study, dims, n: int):
    """``n`` asked (and told) trials with the values ``suggest`` gave each."""
    out = []
    for i in range(n):
        trial = s.ask()
        values = suggest(trial, dims)
        s.tell(trial, float(i % 7))
        out.append((s.trials[-1], values))
    return out


# --------------------------------------------------------------------------- 1. parse_space


def test_parse_space_reads_every_kind_with_its_options():
    dims = by_path(parse_space({
        "train.optimizer.lr": {"float": [1e-5, 1e-1], "log": True},
        "model.params.dropout": {"float": [0, 1], "step": 0.25},
        "model.params.min_child_samples": {"int": [5, 50], "step": 5},
        "model.params.num_leaves": {"int": [8, 128], "log": True},
        "train.batch_size": {"choice": [64, 128, 256]},
        "model.params.hidden": {"layers": [1, 3], "width": [16, 256], "log": True},
    }))
    lr = dims["train.optimizer.lr"]
    assert (lr.kind, lr.low, lr.high, lr.log, lr.step, lr.name) == ("float", 1e-5, 1e-1, True, None, "train.optimizer.lr")
    dropout = dims["model.params.dropout"]
    assert (dropout.kind, dropout.low, dropout.high, dropout.log, dropout.step) == ("float", 0.0, 1.0, False, 0.25)
    assert isinstance(dropout.low, float) and isinstance(dropout.high, float)
    mcs = dims["model.params.min_child_samples"]
    assert (mcs.kind, mcs.low, mcs.high, mcs.step, mcs.log) == ("int", 5, 50, 5, False)
    leaves = dims["model.params.num_leaves"]
    assert (leaves.kind, leaves.log, leaves.step) == ("int", True, None)
    batch = dims["train.batch_size"]
    assert (batch.kind, batch.choices, batch.branches) == ("choice", (64, 128, 256), None)
    hidden = dims["model.params.hidden"]
    assert (hidden.kind, hidden.low, hidden.high, hidden.width, hidden.log) == ("layers", 1, 3, (16, 256), True)
    assert list(dims) == ["train.optimizer.lr", "model.params.dropout", "model.params.min_child_samples",
                          "model.params.num_leaves", "train.batch_size", "model.params.hidden"]


def test_conditional_choice_names_branch_parameters_option_slash_path():
    (dim,) = parse_space({"model.type": {"choice": {
        "lightgbm": {"model.params.num_leaves": {"int": [8, 16]}},
        "mlp": {"train.optimizer.name": {"choice": {
            "sgd": {"train.optimizer.momentum": {"float": [0.5, 0.99]}},
            "adam": None,
        }}},
        "random_forest": None,
    }}})
    assert dim.name == "model.type" and dim.choices == ("lightgbm", "mlp", "random_forest")
    (leaves,) = dim.branches["lightgbm"]
    assert (leaves.path, leaves.name) == ("model.params.num_leaves", "lightgbm/model.params.num_leaves")
    (optimizer,) = dim.branches["mlp"]
    assert optimizer.name == "mlp/train.optimizer.name"
    (momentum,) = optimizer.branches["sgd"]
    assert (momentum.path, momentum.name) == ("train.optimizer.momentum", "mlp/sgd/train.optimizer.momentum")
    assert optimizer.branches["adam"] == ()
    assert dim.branches["random_forest"] == ()  # no defaults given: null is an empty sub-space


def test_model_type_options_left_null_get_their_default_space():
    (dim,) = parse_space({"model.type": {"choice": {"lightgbm": None, "linear_regression": None,
                                                    "mlp": {"train.batch_size": {"choice": [32]}}}}},
                         option_space)
    assert [d.path for d in dim.branches["lightgbm"]] == list(DEFAULT_SPACES["lightgbm"])
    assert all(d.name == f"lightgbm/{d.path}" for d in dim.branches["lightgbm"])
    assert dim.branches["linear_regression"] == ()  # nothing to tune
    assert [d.name for d in dim.branches["mlp"]] == ["mlp/train.batch_size"]  # given: not replaced
    # a model.type choice given as a list becomes conditional too
    (listed,) = parse_space({"model.type": {"choice": ["knn", "svm"]}}, option_space)
    assert [d.path for d in listed.branches["knn"]] == list(DEFAULT_SPACES["knn"])
    assert [d.path for d in listed.branches["svm"]] == list(DEFAULT_SPACES["svm"])


def test_choices_holding_lists_are_json_labels_and_come_back_as_lists():
    (dim,) = parse_space({"model.params.hidden": {"choice": [[64], [128, 64], None, "x", 0.5]}})
    assert dim.labels() == ["[64]", "[128, 64]", None, "x", 0.5]
    values = suggest(optuna.trial.FixedTrial({"model.params.hidden": "[128, 64]"}), (dim,))
    assert values == {"model.params.hidden": [128, 64]}
    assert suggest(optuna.trial.FixedTrial({"model.params.hidden": None}), (dim,)) == {"model.params.hidden": None}
    # a real study stores the label and suggest still hands back the list
    s = study()
    seen = {json.dumps(v["model.params.hidden"]) for _, v in ask(s, (dim,), 15)}
    assert seen <= {"[64]", "[128, 64]", "null", '"x"', "0.5"} and {"[64]", "[128, 64]"} <= seen


# --------------------------------------------------------------------------- 2. spec errors


@pytest.mark.parametrize("spec, words", [
    ({"floot": [0.1, 1.0]}, ["unknown spec key 'floot'", "did you mean 'float'"]),
    ({"int": [5, 1]}, ["tune.space.P.int", "[5, 1] is empty"]),
    ({"float": [1.0, 1.0]}, ["tune.space.P.float", "is empty"]),
    ({"float": [0, 1], "log": True}, ["tune.space.P.float", "positive lower bound"]),
    ({"int": [-3, 4], "log": True}, ["tune.space.P.int", "positive lower bound"]),
    ({"int": [1, 64], "log": True, "step": 2}, ["tune.space.P.step", "either step or log"]),
    ({"int": [1, 5], "step": 10}, ["tune.space.P.step", "wider than the range"]),
    ({"float": [0.0, 0.5], "step": 0.75}, ["tune.space.P.step", "wider than the range"]),
    ({"float": [0.0, 0.5], "step": 0}, ["tune.space.P.step", "positive"]),
    ({"int": [1, 9], "step": 1.5}, ["tune.space.P.step", "positive integer"]),
    ({"choice": []}, ["tune.space.P.choice", "non-empty list"]),
    ({"choice": {}}, ["tune.space.P.choice", "empty"]),
    ({"choice": "abc"}, ["tune.space.P.choice", "non-empty list"]),
    ({"choice": [64, 64]}, ["tune.space.P.choice", "twice"]),
    ({"choice": [[1, 2], [1, 2]]}, ["tune.space.P.choice", "twice"]),
    ({"choice": [1, 2], "log": True}, ["tune.space.P", "not choice"]),
    (0.01, ["tune.space.P", "expected a spec", "0.01"]),
    ([0.1, 1.0], ["tune.space.P", "expected a spec"]),
    ({"float": [0.1, 1.0], "int": [1, 2]}, ["tune.space.P", "exactly one of"]),
    ({"log": True}, ["tune.space.P", "exactly one of"]),
    ({"float": [0.1, 1.0], "log": "yes"}, ["tune.space.P.log", "true or false"]),
    ({"float": [0.1]}, ["tune.space.P.float", "[LOW, HIGH]"]),
    ({"float": [0.1, float("nan")]}, ["tune.space.P.float", "[LOW, HIGH]"]),
    ({"float": [False, True]}, ["tune.space.P.float", "[LOW, HIGH]"]),
    ({"int": [1.5, 4]}, ["tune.space.P.int", "two integers"]),
    ({"float": [0.1, 1.0], "width": [1, 2]}, ["tune.space.P.width", "only for"]),
    ({"layers": [1, 3]}, ["tune.space.P.width", "[LOW, HIGH]", "None"]),
    ({"layers": [1, 3], "width": [0, 16]}, ["tune.space.P.width", "at least 1"]),
    ({"layers": [1, 3], "width": [16.0, 32.0]}, ["tune.space.P.width", "two integers"]),
    ({"layers": [1, 3], "width": [64, 16]}, ["tune.space.P.width", "is empty"]),
    ({"layers": [0, 2], "width": [16, 32]}, ["tune.space.P.layers", "at least 1"]),
    ({"layers": [1, 2], "width": [16, 32], "step": 64}, ["tune.space.P.step", "wider than the range"]),
])
def test_spec_errors_name_the_path_and_say_what_is_wrong(spec, words):
    with pytest.raises(RecipeError) as err:
        parse_space({"P": spec})
    text = str(err.value)
    assert text.startswith("tune.space.P")
    assert "\n" not in text
    for word in words:
        assert word in text, (word, text)


@pytest.mark.parametrize("path", ["name", "tune.trials", "tune.space", "recipe_version"])
def test_run_name_and_tune_section_cannot_be_searched(path):
    with pytest.raises(RecipeError, match=rf"^tune\.space\.{path}: .* cannot be searched"):
        parse_space({"train.epochs": {"int": [1, 5]}, path: {"choice": ["a", "b"]}})


@pytest.mark.parametrize("raw", [{}, None, [{"float": [0, 1]}], "train.optimizer.lr"])
def test_space_must_be_a_non_empty_mapping(raw):
    with pytest.raises(RecipeError, match=r"^tune\.space: must be a non-empty mapping"):
        parse_space(raw)


def test_errors_inside_an_option_name_the_whole_path():
    with pytest.raises(RecipeError) as err:
        parse_space({"model.type": {"choice": {"lightgbm": {"model.params.num_leaves": {"int": [16, 8]}}}}})
    assert str(err.value).startswith("tune.space.model.type.choice.lightgbm.model.params.num_leaves.int: ")
    with pytest.raises(RecipeError, match="sets 'model.type' again"):
        parse_space({"model.type": {"choice": {"mlp": {"model.type": {"choice": ["cnn"]}}}}})
    with pytest.raises(RecipeError, match=r"^tune\.space\.model\.type\.choice\.mlp: must be a non-empty mapping"):
        parse_space({"model.type": {"choice": {"mlp": 3}}})


# --------------------------------------------------------------------------- 3. build_space


@pytest.mark.parametrize("model, space, error, words", [
    ({"type": "mlp"}, {"train.optimizer.lrr": {"float": [1e-4, 1e-2]}}, RecipeError,
     ["tune.space", "train.optimizer.lrr", "did you mean 'lr'"]),
    ({"type": "lightgbm"}, {"model.params.num_leafs": {"int": [8, 16]}}, HoningError,
     ["tune.space", "model.params.num_leafs", "lightgbm", "num_leaves"]),
    ({"type": "mlp"}, {"train.optimizer.lr": {"float": [-1, 1]}}, RecipeError,
     ["tune.space", "train.optimizer.lr", "> 0"]),
    ({"type": "mlp"}, {"train.batch_size": {"choice": [0, 64]}}, RecipeError,
     ["tune.space", "train.batch_size", ">= 1"]),
    ({"type": "lightgbm"}, {"model.params.num_leaves": {"int": [1, 16]}}, HoningError,
     ["tune.space", "model.params.num_leaves", ">= 2"]),
    ({"type": "lightgbm"}, {"model.params.num_leaves": {"float": [8, 16]}}, HoningError,
     ["tune.space", "model.params.num_leaves", "int"]),
    ({"type": "mlp"}, {"train.optimizer.lr.x": {"float": [0.1, 0.2]}}, RecipeError,
     ["tune.space", "train.optimizer.lr", "not a section"]),
    ({"type": "lightgbm"}, {"model.type": {"choice": ["lightgbm", "lightgbmm"]}}, HoningError,
     ["tune.space", "lightgbmm"]),
    ({"type": "lightgbm"}, {"model.type": {"choice": ["lightgbm", "ridge"]}}, HoningError,
     ["tune.space", "ridge", "classification"]),
    ({}, {"model.params.C": {"float": [0.1, 10.0]}}, RecipeError,
     ["tune.space", "model.type is auto", "model.type"]),
    ({}, {"model.type": {"choice": {"lightgbm": {"model.params.num_leafs": {"int": [8, 16]}}}}}, HoningError,
     ["tune.space", "num_leafs", "num_leaves"]),
])
def test_build_space_checks_paths_and_bounds_against_the_recipe(model, space, error, words):
    with pytest.raises(error) as err:
        build_space(recipe(model, space), "classification")
    text = str(err.value)
    assert text.startswith("tune.space"), text
    for word in words:
        assert word in text, (word, text)


def test_build_space_checks_against_the_task():
    r = recipe({"type": "lightgbm"}, {"model.type": {"choice": ["lightgbm", "logistic_regression"]}})
    assert [d.path for d in build_space(r, "classification")] == ["model.type"]
    with pytest.raises(HoningError, match="logistic_regression.*regression"):
        build_space(r, "regression")


def test_build_space_accepts_a_valid_custom_space():
    space = {"train.optimizer.lr": {"float": [1e-4, 1e-1], "log": True},
             "model.params.hidden": {"layers": [1, 2], "width": [8, 32]},
             "train.batch_size": {"choice": [32, 64]}}
    dims = build_space(recipe({"type": "mlp"}, space), "regression")
    assert [d.path for d in dims] == list(space)
    assert dims[0].log and dims[1].width == (8, 32)


@pytest.mark.parametrize("model_type", ["lightgbm", "mlp", "random_forest"])
def test_default_space_is_the_model_types_own(model_type):
    dims = build_space(recipe({"type": model_type}), "classification")
    assert [d.path for d in dims] == list(DEFAULT_SPACES[model_type])
    assert all(d.name == d.path for d in dims)  # not conditional: no option prefix


@pytest.mark.parametrize("task, linear", [("classification", "logistic_regression"), ("regression", "ridge")])
def test_default_space_of_auto_searches_the_resolved_candidates(task, linear):
    (dim,) = build_space(recipe(), task)
    assert dim.path == "model.type" and dim.choices == (linear, "random_forest", "lightgbm")
    for option in dim.choices:
        assert [d.path for d in dim.branches[option]] == list(DEFAULT_SPACES.get(option, {}))
        assert dim.branches[option] and all(d.name == f"{option}/{d.path}" for d in dim.branches[option])


def test_default_space_of_auto_follows_the_candidates():
    (dim,) = build_space(recipe({"candidates": ["knn", "linear", "knn", "ridge"]}), "classification")
    assert dim.choices == ("knn", "logistic_regression")  # resolved, deduplicated, ridge does not classify


def test_linear_regression_has_nothing_to_search_by_default():
    with pytest.raises(RecipeError, match="no hyperparameters"):
        build_space(recipe({"type": "linear_regression"}), "regression")


# --------------------------------------------------------------------------- 4. suggest


SPACE = {
    "train.optimizer.lr": {"float": [1e-5, 1e-1], "log": True},
    "model.params.dropout": {"float": [0.0, 0.5], "step": 0.1},
    "model.params.num_leaves": {"int": [8, 128], "log": True},
    "model.params.min_child_samples": {"int": [5, 50], "step": 5},
    "train.batch_size": {"choice": [64, 128, 256]},
    "model.params.hidden": {"layers": [1, 3], "width": [16, 256], "log": True},
}


def test_suggest_with_a_fixed_trial_returns_values_by_recipe_path():
    params = {"train.optimizer.lr": 0.003, "model.params.dropout": 0.2, "model.params.num_leaves": 31,
              "model.params.min_child_samples": 20, "train.batch_size": 128, "model.params.hidden.layers": 2,
              "model.params.hidden.width1": 64, "model.params.hidden.width2": 32,
              "model.params.hidden.width3": 200}  # unused: depth is 2
    values = suggest(optuna.trial.FixedTrial(params), parse_space(SPACE))
    assert values == {"train.optimizer.lr": 0.003, "model.params.dropout": 0.2, "model.params.num_leaves": 31,
                      "model.params.min_child_samples": 20, "train.batch_size": 128,
                      "model.params.hidden": [64, 32]}


def test_suggested_values_lie_in_their_ranges_with_their_types():
    dims = parse_space(SPACE)
    for trial, v in ask(study(), dims, 30):
        assert 1e-5 <= v["train.optimizer.lr"] <= 1e-1 and isinstance(v["train.optimizer.lr"], float)
        assert 0.0 <= v["model.params.dropout"] <= 0.5
        assert math.isclose(v["model.params.dropout"] * 10, round(v["model.params.dropout"] * 10), abs_tol=1e-9)
        assert type(v["model.params.num_leaves"]) is int and 8 <= v["model.params.num_leaves"] <= 128
        mcs = v["model.params.min_child_samples"]
        assert type(mcs) is int and 5 <= mcs <= 50 and mcs % 5 == 0
        assert v["train.batch_size"] in (64, 128, 256)
        hidden = v["model.params.hidden"]
        assert 1 <= len(hidden) <= 3 and trial.params["model.params.hidden.layers"] == len(hidden)
        assert all(type(w) is int and 16 <= w <= 256 for w in hidden)
        widths = sorted(p for p in trial.params if p.startswith("model.params.hidden.width"))
        assert widths == [f"model.params.hidden.width{i + 1}" for i in range(len(hidden))]
        # the distributions Optuna stores carry log and step
        dist = trial.distributions
        assert dist["train.optimizer.lr"].log and not dist["model.params.dropout"].log
        assert dist["model.params.dropout"].step == pytest.approx(0.1)
        assert dist["model.params.num_leaves"].log and dist["model.params.min_child_samples"].step == 5
        assert all(dist[w].log for w in widths) and not dist["model.params.hidden.layers"].log


def test_log_ranges_are_sampled_on_a_log_scale():
    (dim,) = parse_space({"train.optimizer.lr": {"float": [1e-6, 1.0], "log": True}})
    s = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    values = [v["train.optimizer.lr"] for _, v in ask(s, (dim,), 40)]
    # uniform on [1e-6, 1] would put ~0% below 1e-2; log-uniform puts a third there
    assert sum(v < 1e-2 for v in values) >= 8


def test_conditional_branches_sample_only_the_chosen_familys_parameters():
    dims = parse_space({"model.type": {"choice": {
        "lightgbm": {"model.params.num_leaves": {"int": [8, 16]}},
        "random_forest": {"model.params.n_estimators": {"int": [10, 20]}},
    }}}, option_space)
    families = set()
    for trial, values in ask(study(), dims, 30):
        family = values["model.type"]
        families.add(family)
        assert trial.params["model.type"] == family
        if family == "lightgbm":
            assert set(trial.params) == {"model.type", "lightgbm/model.params.num_leaves"}
            assert set(values) == {"model.type", "model.params.num_leaves"}
            assert 8 <= values["model.params.num_leaves"] <= 16
        else:
            assert set(trial.params) == {"model.type", "random_forest/model.params.n_estimators"}
            assert set(values) == {"model.type", "model.params.n_estimators"}
            assert 10 <= values["model.params.n_estimators"] <= 20
    assert families == {"lightgbm", "random_forest"}


def test_two_families_may_give_the_same_path_different_ranges():
    dims = parse_space({"model.type": {"choice": {
        "ridge": {"model.params.alpha": {"float": [1e-4, 1e-3]}},
        "lasso": {"model.params.alpha": {"float": [10.0, 20.0]}},
    }}})
    seen = set()
    for trial, values in ask(study(), dims, 20):
        family, alpha = values["model.type"], values["model.params.alpha"]
        seen.add(family)
        assert (1e-4 <= alpha <= 1e-3) if family == "ridge" else (10.0 <= alpha <= 20.0)
        assert trial.params[f"{family}/model.params.alpha"] == alpha
    assert seen == {"ridge", "lasso"}


def test_choices_equal_in_python_but_different_are_kept_apart_or_refused():
    spec = {"model.params.max_features": {"choice": [1, 1.0, "sqrt"]}}
    try:
        dims = parse_space(spec)
    except RecipeError:
        return  # refusing the ambiguous list is a fine answer too
    value = suggest(optuna.trial.FixedTrial({"model.params.max_features": 1.0}), dims)["model.params.max_features"]
    assert type(value) is float


def test_a_path_searched_twice_is_refused_or_the_explicit_range_wins():
    lr, family = {"float": [0.5, 0.6]}, {"choice": ["mlp"]}  # mlp's default space searches lr too
    for space in ({"model.type": family, "train.optimizer.lr": lr}, {"train.optimizer.lr": lr, "model.type": family}):
        try:
            dims = build_space(recipe({"type": "mlp"}, space), "classification")
        except RecipeError as err:
            assert "train.optimizer.lr" in str(err)
            continue
        for _, values in ask(study(), dims, 5):
            assert 0.5 <= values["train.optimizer.lr"] <= 0.6, list(space)


# --------------------------------------------------------------------------- 5. grid


def grid_visits(dims) -> list[dict]:
    """The recipe values honing's grid sampler visits, one study of ``grid_size`` trials."""
    sampler = make_sampler(TuneConfig(sampler="grid", trials=None), dims, 0)
    s = optuna.create_study(sampler=sampler)
    seen = []

    def objective(trial):
        seen.append(suggest(trial, dims))
        return 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Optuna's note on a range not divisible by its step
        s.optimize(objective, n_trials=grid_size(dims))
    return seen


def test_grid_enumerates_stepped_floats_without_drift():
    seen = grid_visits(parse_space({"a": {"float": [0.1, 0.3], "step": 0.1},
                                    "b": {"float": [0.0, 1.0], "step": 0.1},
                                    "c": {"float": [0.1, 0.35], "step": 0.1}}))
    assert sorted({v["a"] for v in seen}) == [0.1, 0.2, 0.3]
    assert sorted({v["b"] for v in seen}) == [i / 10 for i in range(11)]  # 0.3, 0.7, not 0.30000000000000004
    assert sorted({v["c"] for v in seen}) == [0.1, 0.2, 0.3]  # the step that would pass HIGH is left out
    assert len({tuple(v.values()) for v in seen}) == len(seen) == 3 * 11 * 3


def test_grid_enumerates_ints_choices_layers_and_branches():
    dims = parse_space({
        "model.params.min_child_samples": {"int": [5, 20], "step": 5},
        "model.params.max_depth": {"int": [2, 4]},
        "model.params.hidden": {"layers": [1, 2], "width": [16, 48], "step": 16},
        "model.type": {"choice": {"lightgbm": {"model.params.num_leaves": {"int": [8, 10]}}, "ridge": None}},
        "train.batch_size": {"choice": [[1, 2], None, 64]},
    })
    seen = grid_visits(dims)
    recipes = {json.dumps(v, sort_keys=True) for v in seen}
    assert len(recipes) == len(seen) == 4 * 3 * (3 + 3 * 3) * (3 + 1) * 3  # every recipe once
    assert sorted({v["model.params.min_child_samples"] for v in seen}) == [5, 10, 15, 20]
    assert sorted({v["model.params.max_depth"] for v in seen}) == [2, 3, 4]
    assert {tuple(v["model.params.hidden"]) for v in seen} == {
        (a,) for a in (16, 32, 48)} | {(a, b) for a in (16, 32, 48) for b in (16, 32, 48)}
    assert {v.get("model.params.num_leaves") for v in seen if v["model.type"] == "lightgbm"} == {8, 9, 10}
    assert all("model.params.num_leaves" not in v for v in seen if v["model.type"] == "ridge")
    assert {json.dumps(v["train.batch_size"]) for v in seen} == {"[1, 2]", "null", "64"}


def test_grid_visits_every_combination():
    dims = parse_space({"x": {"float": [0.1, 0.3], "step": 0.1}, "n": {"int": [1, 3]},
                        "h": {"choice": [[8], [8, 8]]}})
    assert grid_size(dims) == 3 * 3 * 2
    seen = [(v["x"], v["n"], tuple(v["h"])) for v in grid_visits(dims)]
    assert sorted(seen) == sorted(itertools.product([0.1, 0.2, 0.3], [1, 2, 3], [(8,), (8, 8)]))


def test_grid_size_counts_distinct_recipes_of_a_conditional_space():
    dims = parse_space({"model.type": {"choice": {"knn": {"model.params.n_neighbors": {"choice": [3, 5, 7]}},
                                                  "naive_bayes": {}}},
                        "model.params.hidden": {"layers": [1, 2], "width": [8, 16], "step": 8}})
    assert grid_size(dims) == (3 + 1) * (2 + 2 * 2)  # 4 models × ([8], [16], and 4 two-layer nets)


def test_grid_needs_a_step_on_float_ranges():
    with pytest.raises(RecipeError, match=r"tune\.space\.train\.optimizer\.lr: the grid sampler needs a step"):
        grid_size(parse_space({"train.batch_size": {"choice": [32, 64]},
                               "train.optimizer.lr": {"float": [1e-4, 1e-2], "log": True}}))


def test_grid_size_is_capped():
    dims = parse_space({"a": {"int": [1, 1000]}, "b": {"int": [1, 1000]}})
    with pytest.raises(RecipeError, match=r"1,000,000 combinations \(most 100,000\)"):
        grid_size(dims)
    assert grid_size(parse_space({"a": {"int": [1, MAX_GRID]}})) == MAX_GRID  # at the cap: allowed


# --------------------------------------------------------------------------- 6. apply_values


def base_recipe() -> dict:
    return recipe({"type": "lightgbm", "params": {"num_leaves": 31, "learning_rate": 0.05}}).model_dump(mode="json")


def test_a_new_model_type_starts_from_empty_params():
    base = base_recipe()
    before = copy.deepcopy(base)
    raw = apply_values(base, {"model.params.n_estimators": 10, "model.type": "random_forest"})
    assert raw["model"]["type"] == "random_forest" and raw["model"]["params"] == {"n_estimators": 10}
    assert load_recipe(raw).model.params == {"n_estimators": 10}
    assert base == before


def test_the_same_model_type_keeps_the_base_params():
    base = base_recipe()
    raw = apply_values(base, {"model.type": "lightgbm", "model.params.num_leaves": 64})
    assert raw["model"]["params"] == {"num_leaves": 64, "learning_rate": 0.05}
    raw = apply_values(base, {"train.optimizer.lr": 0.01})
    assert raw["model"]["params"] == {"num_leaves": 31, "learning_rate": 0.05}
    assert base["model"]["params"] == {"num_leaves": 31, "learning_rate": 0.05}


def test_paths_set_nested_values_without_touching_the_base():
    base = base_recipe()
    before = copy.deepcopy(base)
    hidden = [64, 32]
    raw = apply_values(base, {"train.optimizer.lr": 0.01, "data.split.test": 0.2,
                              "model.params.hidden": hidden, "model.params.extra.depth": 3})
    hidden.append(16)  # values are copied in, not shared
    assert raw["train"]["optimizer"]["lr"] == 0.01 and raw["train"]["optimizer"]["name"] == "adamw"
    assert raw["data"]["split"]["test"] == 0.2 and raw["data"]["split"]["validation"] == 0.15
    assert raw["model"]["params"]["hidden"] == [64, 32] and raw["model"]["params"]["extra"] == {"depth": 3}
    assert base == before


# --------------------------------------------------------------------------- 7. schema and CLI


def test_tune_section_defaults():
    tune = recipe().tune
    assert (tune.trials, tune.sampler, tune.pruner, tune.refit) == (20, "tpe", "hyperband", True)
    assert (tune.space, tune.timeout, tune.cv, tune.storage, tune.study) == (None, None, None, None, None)
    assert tune.objectives == ["metric"] and tune.workers == 1
    assert TuneConfig().model_dump() == tune.model_dump()


@pytest.mark.parametrize("tune, key, words", [
    ({"sampler": "bayes"}, "tune.sampler", "one of"),
    ({"pruner": "asha"}, "tune.pruner", "one of"),
    ({"trials": 0}, "tune.trials", ">= 1"),
    ({"objectives": []}, "tune.objectives", ""),
    ({"objectives": ["speed"]}, "tune.objectives", "one of"),
    ({"cv": 1}, "tune.cv", ">= 2"),
    ({"study": "has space"}, "tune.study", "letters"),
    ({"trails": 5}, "tune.trails", "did you mean 'trials'"),
])
def test_invalid_tune_values_name_the_key(tune, key, words):
    with pytest.raises(RecipeError) as err:
        recipe(**tune)
    assert key in str(err.value) and words in str(err.value)


def write_recipe(path, **sections):
    path.write_text(yaml.safe_dump({"recipe_version": 1, "name": "t", "data": dict(IRIS), **sections},
                                   sort_keys=False))
    return path


def assert_no_run_left(out):
    assert not out.exists()
    assert not (out.parent / f".{out.name}.partial").exists()


def test_cli_invalid_sampler_is_a_one_line_error(cli, tmp_path):
    out = tmp_path / "run"
    path = write_recipe(tmp_path / "recipe.yaml", tune={"sampler": "bayes"})
    assert_user_error(cli("tune", path, "--out", out), "tune.sampler", "bayes")
    assert_no_run_left(out)


def test_cli_invalid_space_is_a_one_line_error_and_leaves_no_run(cli, tmp_path):
    out = tmp_path / "run"
    path = write_recipe(tmp_path / "recipe.yaml", tune={"space": {"train.optimizer.lr": {"float": [0.1, 0.01]}}})
    assert_user_error(cli("tune", path, "--out", out), "tune.space.train.optimizer.lr", "empty")
    assert_no_run_left(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_cli_space_checked_against_the_model_leaves_no_run(cli, tmp_path):
    out = tmp_path / "run"
    path = write_recipe(tmp_path / "recipe.yaml", model={"type": "lightgbm"},
                        tune={"space": {"model.params.num_leafs": {"int": [8, 16]}}})
    assert_user_error(cli("tune", path, "--out", out), "tune.space", "num_leafs", "num_leaves")
    assert_no_run_left(out)


# --------------------------------------------------------------------------- 8. CLI usage errors


def test_cli_tune_needs_a_recipe_or_resume(cli, tmp_path):
    assert_user_error(cli("tune"), "--resume")
    path = write_recipe(tmp_path / "recipe.yaml")
    assert_user_error(cli("tune", path, "--resume", tmp_path / "run"), "not both")


@pytest.mark.parametrize("extra", [["--set", "tune.trials=3"], ["--trials", "3"], ["--study", "s"]])
def test_cli_resume_takes_no_other_settings(cli, tmp_path, extra):
    assert_user_error(cli("tune", "--resume", tmp_path / "run", *extra), "--resume")


def test_cli_join_needs_tune_storage(cli, tmp_path):
    path = write_recipe(tmp_path / "recipe.yaml")
    assert_user_error(cli("tune", path, "--join"), "--join", "tune.storage")
    assert_user_error(cli("tune", path, "--join", "--out", tmp_path / "run"), "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]


def test_cli_resume_without_an_interrupted_run(cli, tmp_path):
    assert_user_error(cli("tune", "--resume", tmp_path / "nothing"), "no interrupted run")
    (tmp_path / "done").mkdir()  # a directory, but nothing interrupted in it
    assert_user_error(cli("tune", "--resume", tmp_path / "done"), "no interrupted run")


# --------------------------------------------------------------------------- 9. defaults


def test_markdown_lists_every_default_space():
    text = defaults.markdown()
    rows = [line for line in text.splitlines()[2:]]
    types = {row.split("|")[1].strip() for row in rows}
    assert types == set(DEFAULT_SPACES)
    for model_type, space in DEFAULT_SPACES.items():
        paths = [row.split("|")[2].strip().strip("`") for row in rows if row.split("|")[1].strip() == model_type]
        assert paths == list(space), model_type
    assert "| lightgbm | `model.params.num_leaves` | `{int: [8, 128], log: true}` |" in rows
    assert "| random_forest | `model.params.max_depth` | `{choice: [null, 8, 16, 32]}` |" in rows


@pytest.mark.parametrize("model_type", sorted(DEFAULT_SPACES))
def test_every_default_space_parses(model_type):
    dims = parse_space(defaults.default_space(model_type, []), option_space)
    assert [d.path for d in dims] == list(DEFAULT_SPACES[model_type])


def test_default_space_of_auto_and_unknown_types():
    assert defaults.default_space("auto", ["lightgbm", "knn"]) == {
        "model.type": {"choice": {"lightgbm": None, "knn": None}}}
    with pytest.raises(RecipeError, match="no hyperparameters"):
        defaults.default_space("linear_regression", [])
    assert option_space("linear_regression") == {} and option_space("knn") == DEFAULT_SPACES["knn"]
