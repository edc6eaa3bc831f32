"""The bundled Pima diabetes and SST-2 datasets: shapes, targets, kinds and the SST-2 split column
(their provenance and checksums are in src/honing/data/builtin/*.SOURCE.md)."""


import pandas as pd

from honing.data.builtin import builtin_names, load_builtin
from honing.data.dataset import load_dataset
from honing.recipe import DataConfig


def test_new_builtins_are_registered():
    assert {"pima_diabetes", "sst2"} <= set(builtin_names())


def test_pima_diabetes_shape_target_and_task():
    data = load_builtin("pima_diabetes")
    assert data.frame.shape == (768, 9)
    assert (data.target, data.task) == ("outcome", "classification")
    assert list(data.frame.columns) == ["pregnancies", "glucose", "blood_pressure", "skin_thickness", "insulin",
                                        "bmi", "diabetes_pedigree", "age", "outcome"]
    assert all(pd.api.types.is_numeric_dtype(data.frame[c]) for c in data.frame.columns)
    assert data.frame["outcome"].value_counts().to_dict() == {0: 500, 1: 268}  # from the .names file
    assert (data.frame["insulin"] == 0).sum() > 0  # zeros-as-missing are kept
    assert "missing" in data.description


def test_sst2_shape_splits_and_kinds():
    data = load_builtin("sst2")
    frame = data.frame
    assert list(frame.columns) == ["sentence", "label", "split"]
    assert (data.target, data.task) == ("label", "classification")
    assert frame["split"].value_counts().to_dict() == {"train": 20000, "test": 872}
    assert set(frame["label"]) == {"negative", "positive"}
    assert frame["sentence"].notna().all() and not frame.loc[frame["split"] == "train", "sentence"].duplicated().any()
    assert data.types == {"sentence": "text", "split": "identifier"}


def test_sst2_through_load_dataset_split_is_not_a_feature():
    ds = load_dataset(DataConfig(source="builtin:sst2"), seed=0)
    kinds = {c.name: c.kind for c in ds.schema.columns}
    assert kinds == {"sentence": "text", "label": "categorical", "split": "identifier"}
    assert ds.schema.feature_names == ["sentence"]
    assert ds.classes == ["negative", "positive"] and ds.n_rows == 20872  # nothing lost to de-duplication


def test_pima_through_load_dataset():
    ds = load_dataset(DataConfig(source="builtin:pima_diabetes"), seed=0)
    assert ds.task == "classification" and ds.classes == [0, 1] and len(ds.schema.feature_names) == 8


def test_each_load_is_a_fresh_copy():
    a = load_builtin("sst2").frame
    a.loc[0, "sentence"] = "changed"
    assert load_builtin("sst2").frame.loc[0, "sentence"] != "changed"


def test_sst2_official_test_set_via_split_column():
    ds = load_dataset(DataConfig(source="builtin:sst2", split={"column": "split"}), seed=0)
    sizes = {name: len(rows) for name, rows in ds.splits.items()}
    assert sizes == {"train": 17000, "validation": 3000, "test": 872}
    assert (ds.splits["test"]["split"] == "test").all() and ds.schema.feature_names == ["sentence"]
