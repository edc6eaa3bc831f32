"""load_dataset: from a recipe's data section to checked, split data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from honing.data.dataset import load_dataset
from honing.errors import DataError
from honing.recipe import DataConfig


def _labelled(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(size=rows).round(3),
        "colour": rng.choice(["red", "green", "blue"], rows),
        "label": rng.choice(["common", "usual"], rows),
    })


def _config(path, **kwargs) -> DataConfig:
    return DataConfig(source=str(path), target=kwargs.pop("target", "label"), **kwargs)


def _write(tmp_path, frame: pd.DataFrame, name: str = "data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_loads_and_splits(tmp_path):
    dataset = load_dataset(_config(_write(tmp_path, _labelled())), seed=1)
    assert dataset.task == "classification" and dataset.classes == ["common", "usual"]
    assert sum(len(part) for part in dataset.splits.values()) == dataset.n_rows == 60
    assert list(dataset.features("test").columns) == ["x", "colour"]


def test_labels_with_spaces_around_them_are_one_class(tmp_path):
    frame = _labelled()
    frame["label"] = [f" {v} " if i % 3 == 0 else v for i, v in enumerate(frame["label"])]
    dataset = load_dataset(_config(_write(tmp_path, frame)), seed=1)
    assert dataset.classes == ["common", "usual"]
    assert any("labels had spaces around them" in note and "20 labels" in note for note in dataset.notes)
    assert set(pd.concat(dataset.splits.values())["label"]) == {"common", "usual"}


def test_rare_class_is_kept_in_training_when_stratifying(tmp_path):
    frame = _labelled()
    frame.loc[7, "label"] = "rare"
    path = _write(tmp_path, frame)
    for seed in range(10):
        with pytest.warns(UserWarning, match="cannot stratify by 'label'"):
            dataset = load_dataset(_config(path), seed=seed)
        assert "rare" in set(dataset.splits["train"]["label"])
        assert dataset.labels("train").max() == 2 and dataset.n_classes == 3


def test_class_missing_from_training_is_an_error(tmp_path):
    frame = _labelled(40)
    frame.loc[0, "label"] = "rare"
    path = _write(tmp_path, frame)
    errors = []
    for seed in range(30):
        try:
            dataset = load_dataset(_config(path, split={"stratify": False}), seed=seed)
        except DataError as exc:
            errors.append(exc)
        else:
            assert "rare" in set(dataset.splits["train"]["label"])
    assert errors, "some seed should leave the single 'rare' row out of training"
    assert errors[0].what == "class 'rare' of target 'label' has 1 row and none is in the training split"
    assert errors[0].hint == "drop or merge rare classes, or add rows"


def test_class_missing_from_a_grouped_training_split(tmp_path):
    frame = _labelled(60)
    frame["site"] = np.arange(60) // 6
    frame.loc[frame["site"] == 0, "label"] = "local"
    path = _write(tmp_path, frame)
    outcomes = set()
    for seed in range(20):
        try:
            load_dataset(_config(path, split={"group": "site"}), seed=seed)
            outcomes.add("ok")
        except DataError as exc:
            assert exc.what == "class 'local' of target 'label' has 6 rows and none is in the training split"
            outcomes.add("error")
    assert outcomes == {"ok", "error"}


@pytest.mark.parametrize("task", ["auto", "regression"])
def test_a_target_with_decimal_commas_says_so(tmp_path, task):
    """Not "set data.task: regression" then "set data.task: classification": the commas are the problem."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "y": [f"{v:.2f}".replace(".", ",") for v in rng.normal(size=200)]})
    path = tmp_path / "comma.csv"
    frame.to_csv(path, sep=";", index=False)
    with pytest.raises(DataError, match=r"target 'y' holds numbers written with a decimal comma \(e\.g\. '-?\d,\d\d'\)") as info:
        load_dataset(_config(path, target="y", task=task), seed=0)
    assert "decimal point" in info.value.hint


def test_mostly_numeric_target(tmp_path):
    frame = pd.DataFrame({"area": np.arange(100) + 40.0, "price": (np.arange(100) * 1234.5).astype(str)})
    frame.loc[[3, 50, 77], "price"] = ["about 300", "ask", "300k"]
    path = _write(tmp_path, frame)
    with pytest.raises(DataError, match=r"target 'price' is mostly numbers but has 3 values that are not \(e\.g\. 'about 300'\)"):
        load_dataset(_config(path, target="price"), seed=0)
    with pytest.raises(DataError, match="mostly numbers"):
        load_dataset(_config(path, target="price", task="regression"), seed=0)


def test_too_many_classes(tmp_path):
    frame = pd.DataFrame({"x": np.arange(300.0), "name": [f"customer {i % 258}" for i in range(300)]})
    path = _write(tmp_path, frame)
    with pytest.raises(DataError, match="target 'name' has 258 distinct values in 300 rows"):
        load_dataset(_config(path, target="name"), seed=0)


def test_duplicate_column_names(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("a,a,label\n1,2,x\n3,4,y\n", encoding="utf-8")
    with pytest.raises(DataError, match="duplicate column name 'a'"):
        load_dataset(_config(path), seed=0)


@pytest.mark.parametrize("name, task", [("titanic", "classification"), ("iris", "classification"),
                                        ("digits", "classification"), ("breast_cancer", "classification"),
                                        ("wine_quality", "regression")])
def test_builtins_load(name, task):
    dataset = load_dataset(DataConfig(source=f"builtin:{name}"), seed=0)
    assert dataset.task == task
    if task == "classification":
        assert set(dataset.labels("train")) == set(range(dataset.n_classes))


def test_zero_fractions_give_usable_empty_splits(tmp_path):
    path = _write(tmp_path, _labelled())
    dataset = load_dataset(_config(path, split={"validation": 0.0, "test": 0.0}), seed=0)
    assert len(dataset.splits["train"]) == 60
    for name in ("validation", "test"):
        assert list(dataset.splits[name].columns) == ["x", "colour", "label"]
        assert dataset.features(name).shape == (0, 2) and dataset.labels(name).shape == (0,)


def test_a_target_kind_at_odds_with_the_task_is_refused(tmp_path):
    """data.types on the target was ignored (the task decides): a numeric kind on yes/no labels."""
    from honing.errors import RecipeError
    from honing.recipe import DataConfig

    frame = pd.DataFrame({"x": range(40), "y": ["yes", "no"] * 20})
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(RecipeError, match=r"data\.types\.y: .*classification.* 'numeric' — set data.task: regression"):
        load_dataset(DataConfig(source=str(tmp_path / "d.csv"), target="y", types={"y": "numeric"}), 0)
    agreed = load_dataset(DataConfig(source=str(tmp_path / "d.csv"), target="y", types={"y": "categorical"}), 0)
    assert agreed.task == "classification"


def test_time_ordered_folds_sort_parsed_dates_not_their_text(tmp_path):
    """tune.cv with data.split.time: no fold validates on rows earlier than its training rows, with
    dates written month first (their text sorts 03/01/2020 before 12/31/2019)."""
    from honing.recipe import SplitConfig

    rng = np.random.default_rng(0)
    days = pd.date_range("2019-01-01", periods=400, freq="3D")  # three years: month-first text mixes them
    frame = pd.DataFrame({"date": days.strftime("%m/%d/%Y"), "x": rng.normal(size=400),
                          "label": rng.choice(["a", "b"], 400)}).sample(frac=1, random_state=1)
    split = SplitConfig(time="date")
    dataset = load_dataset(_config(_write(tmp_path, frame), split=split), seed=0)
    for fold in dataset.folds(3, split, seed=0):
        trained = pd.to_datetime(fold.splits["train"]["date"], format="%m/%d/%Y")
        held = pd.to_datetime(fold.splits["validation"]["date"], format="%m/%d/%Y")
        assert trained.max() < held.min()
