"""data.split.column: the splits a column names (an official test set), validation cut from train."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from honing.data.dataset import load_dataset
from honing.data.split import split_frame
from honing.errors import DataError
from honing.recipe import DataConfig


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    split = np.where(np.arange(n) < 150, "Train", np.where(np.arange(n) < 170, " dev", "TEST"))
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.integers(0, 2, n), "part": split})


def test_rows_go_where_the_column_says():
    parts = split_frame(_frame(), target="y", task="classification", validation=0.2, test=0.2, stratify=None,
                        group=None, time=None, seed=0, column="part")
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [150, 20, 30]
    assert set(parts["test"]["part"]) == {"TEST"}


def test_validation_is_cut_from_train_when_the_column_has_none():
    frame = _frame().assign(part=lambda f: f["part"].replace(" dev", "train"))
    parts = split_frame(frame, target="y", task="classification", validation=0.1, test=0.5, stratify=None,
                        group=None, time=None, seed=0, column="part")
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [153, 17, 30]
    assert set(parts["validation"]["part"]) == {"train", "Train"}


def test_unknown_split_names_and_no_train_rows_are_errors():
    with pytest.raises(DataError, match="data.split.column: 1 rows of 'part' name no split"):
        split_frame(_frame().assign(part=lambda f: f["part"].mask(f.index == 3, "holdout")), target="y",
                    task="classification", validation=0.1, test=0.1, stratify=None, group=None, time=None,
                    seed=0, column="part")
    with pytest.raises(DataError, match="says train"):
        split_frame(_frame().assign(part="test"), target="y", task="classification", validation=0.1, test=0.1,
                    stratify=None, group=None, time=None, seed=0, column="part")


def test_the_split_column_is_not_a_feature(tmp_path):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    cfg = DataConfig(source=str(tmp_path / "d.csv"), target="y", split={"column": "part"})
    dataset = load_dataset(cfg, seed=0)
    assert "part" not in dataset.schema.feature_names and len(dataset.splits["test"]) == 30
    with pytest.raises(DataError, match="data.split.column: no column 'prat'"):
        load_dataset(DataConfig(source=str(tmp_path / "d.csv"), target="y", split={"column": "prat"}), seed=0)
