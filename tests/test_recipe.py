"""The recipe schema: defaults, validation messages naming the key path, overrides, docs."""

from pathlib import Path

import pytest
from pydantic import BaseModel

from honing.errors import RecipeError
from honing.recipe import Recipe, apply_override, load_recipe, reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_minimal_recipe_gets_documented_defaults():
    r = load_recipe({"data": {"source": "builtin:iris"}})
    assert r.recipe_version == 1 and r.seed == 42 and r.model.type == "auto"
    assert r.data.split.validation == 0.15 and r.data.clean.missing.numeric == "median"


def test_unknown_key_has_did_you_mean_and_path():
    with pytest.raises(RecipeError) as err:
        load_recipe({"data": {"source": "x", "splt": {"test": 0.2}}})
    assert "data.splt" in str(err.value) and "did you mean 'split'" in str(err.value)


def test_unknown_top_level_key():
    with pytest.raises(RecipeError, match="did you mean 'model'"):
        load_recipe({"data": {"source": "x"}, "modle": {}})


@pytest.mark.parametrize("override, key, words", [
    ("data.split.validation=-0.1", "data.split.validation", ">= 0"),
    ("data.split.test=1.5", "data.split.test", "< 1"),
    ("data.scale=zscore", "data.scale", "one of"),
    ("seed=abc", "seed", "integer"),
    ("name=has space", "name", "letters"),
    ("data.max_categories=1", "data.max_categories", ">= 2"),
])
def test_wrong_values_name_the_key(override, key, words):
    with pytest.raises(RecipeError) as err:
        load_recipe({"data": {"source": "x"}}, [override])
    assert str(err.value).startswith(f"{key}:") and words in str(err.value)


def test_cross_field_checks():
    with pytest.raises(RecipeError, match="validation \\+ test must be < 1"):
        load_recipe({"data": {"source": "x", "split": {"validation": 0.5, "test": 0.5}}})
    with pytest.raises(RecipeError, match="only one of group, time and column"):
        load_recipe({"data": {"source": "x", "split": {"group": "a", "time": "b"}}})
    with pytest.raises(RecipeError, match="only one of group, time and column"):
        load_recipe({"data": {"source": "x", "split": {"column": "a", "time": "b"}}})



@pytest.mark.parametrize(("method", "balance", "words", "hint"), [
    ("reweigh", "smote", "reweigh weighs the training rows as they are, which data.balance: smote resamples",
     "class_weight"),
    ("reweigh", "oversample", "data.balance: oversample resamples", "class_weight"),
    ("exponentiated_gradient", "class_weight", "data.balance: class_weight cannot apply", "data.balance: none"),
])
def test_mitigations_that_weigh_rows_refuse_balancing_that_cannot_join_them(method, balance, words, hint):
    """Refused when the recipe is read (before any trial of a tune), in one line with what to do."""
    with pytest.raises(RecipeError) as err:
        load_recipe({"data": {"source": "x", "balance": balance}, "audit": {"sensitive": ["g"], "mitigate": method}})
    assert err.value.what.startswith(f"audit.mitigate: {method}") and words in err.value.what
    assert hint in err.value.hint
    load_recipe({"data": {"source": "x", "balance": "class_weight"}, "audit": {"sensitive": ["g"], "mitigate": "reweigh"}})


@pytest.mark.parametrize("bounds, words", [
    ("{max_rmse: .nan}", "performance.max_rmse: must be a finite number"),
    ("{max_rmse: -1}", "rmse is at least 0"),
    ("{min_accuracy: 2}", "accuracy is between 0 and 1"),
    ("{max_r2: 1.5}", "r2 is at most 1"),
    ("{accuracy: 0.8}", "min_METRIC or max_METRIC"),
])
def test_monitor_bounds_that_always_or_never_breach_are_refused(bounds, words):
    with pytest.raises(RecipeError, match=words):
        load_recipe({"data": {"source": "x"}}, [f"monitor.performance={bounds}"])
    fine = load_recipe({"data": {"source": "x"}}, ["monitor.performance={min_accuracy: 0.8, max_r2: -0.5}"])
    assert fine.monitor.performance == {"min_accuracy": 0.8, "max_r2": -0.5}


def test_monitor_metric_ranges_cover_every_metric():
    from honing.evaluation.metrics import METRIC_NAMES
    from honing.recipe.schema import METRIC_RANGES

    assert set(METRIC_RANGES) == set(METRIC_NAMES["classification"]) | set(METRIC_NAMES["regression"])


def test_a_reinforcement_recipe_refuses_a_data_source():
    with pytest.raises(RecipeError, match="source is not read by task: reinforcement"):
        load_recipe({"data": {"task": "reinforcement", "env": "CartPole-v1", "source": "x.csv"}})


def test_missing_data_section_and_version():
    with pytest.raises(RecipeError, match="data: required"):
        load_recipe({"name": "x"})
    with pytest.raises(RecipeError, match="recipe_version"):
        load_recipe({"recipe_version": 2, "data": {"source": "x"}})


def test_overrides_are_typed():
    r = load_recipe({"data": {"source": "x"}}, [
        "seed=7", "data.split.test=0.25", "data.drop=[a, b]", "data.clean.missing.indicator=true",
        "model.params.n_estimators=50", "model.type=lightgbm"])
    assert r.seed == 7 and r.data.split.test == 0.25 and r.data.drop == ["a", "b"]
    assert r.data.clean.missing.indicator is True and r.model.params == {"n_estimators": 50}


def test_override_errors():
    with pytest.raises(RecipeError, match="KEY=VALUE"):
        load_recipe({"data": {"source": "x"}}, ["seed"])
    with pytest.raises(RecipeError, match="not a section"):
        apply_override({"seed": 1}, "seed.x=2")


def test_yaml_file_errors_name_the_file(tmp_path):
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  source: x\n   target: [\n")
    with pytest.raises(RecipeError, match="bad.yaml: not valid YAML at line"):
        load_recipe(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("data:\n  source: x\n  targt: y\n")
    with pytest.raises(RecipeError, match="typo.yaml: unknown key 'data.targt' — did you mean 'target'"):
        load_recipe(typo)


def test_resolved_recipe_round_trips(tmp_path):
    r = load_recipe({"data": {"source": "x", "drop": ["a"]}, "seed": 3})
    path = tmp_path / "r.yaml"
    path.write_text(r.to_yaml())
    assert load_recipe(path) == r


def test_docs_recipe_md_is_current():
    """docs/recipe.md is generated from the schema (make docs); it must not drift."""
    assert (ROOT / "docs" / "recipe.md").read_text() == reference_markdown()


def test_every_key_is_documented():
    text = reference_markdown()

    def keys(model, prefix=""):
        for name, field in model.model_fields.items():
            yield prefix + name
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                yield from keys(sub, prefix + name + ".")

    for key in keys(Recipe):
        assert f"`{key}`" in text


def test_a_delimiter_is_one_character():
    with pytest.raises(RecipeError, match=r"data\.read\.delimiter: .*at most 1 character"):
        load_recipe({"data": {"source": "x", "read": {"delimiter": "ab"}}})
    assert load_recipe({"data": {"source": "x", "read": {"delimiter": "\t"}}}).data.read.delimiter == "\t"
