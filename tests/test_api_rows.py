"""What the Python API takes as rows to predict: DataFrames (any column-name type, no name twice, no
rows at all), a list of row dicts, one row; ``keep`` as one name or several; a Path as data.source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import honing
from honing.errors import DataError, RecipeError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A classifier on columns named 0 and 1 in the CSV (text names, as every CSV header)."""
    tmp = tmp_path_factory.mktemp("rows")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    frame = pd.DataFrame(X, columns=["0", "1"]).assign(y=np.where(X[:, 0] > 0, "yes", "no"))
    frame.to_csv(tmp / "data.csv", index=False)
    run = honing.train({"data": {"source": Path(tmp / "data.csv"), "target": "y"},  # a Path, from Python
                        "model": {"type": "logistic_regression"}, "evaluate": {"bootstrap": 0, "explain": False}},
                       out=tmp / "run", track=False)
    return honing.load(run.bundle_dir), frame.drop(columns="y")


def test_rows_in_every_shape_predict_alike(trained):
    bundle, frame = trained
    expected = bundle.predict(frame.head(4)).tolist()
    assert bundle.predict(pd.DataFrame(frame.head(4).to_numpy())).tolist() == expected  # int column names 0, 1
    assert bundle.predict(frame.head(4).to_dict("records")).tolist() == expected
    assert bundle.predict(frame.iloc[0]).tolist() == expected[:1]  # one row as a Series
    assert bundle.predict(frame.iloc[0].to_dict()).tolist() == expected[:1]  # one row as a dict
    out = honing.predict(bundle, frame.head(4).to_dict("records"))
    assert out["prediction"].tolist() == expected
    np.testing.assert_allclose(out[["proba_no", "proba_yes"]].to_numpy(), bundle.predict_proba(frame.head(4)).to_numpy())


def test_no_rows_give_no_predictions(trained):
    bundle, frame = trained
    empty = frame.iloc[:0]
    assert bundle.predict(empty).shape == (0,)
    proba = bundle.predict_proba(empty)
    assert proba.shape == (0, 2) and list(proba.columns) == ["no", "yes"]
    out = honing.predict(bundle, empty)
    assert len(out) == 0 and list(out.columns) == ["prediction", "proba_no", "proba_yes"]


def test_what_is_not_rows_is_a_one_line_error(trained):
    bundle, frame = trained
    with pytest.raises(DataError, match="a ndarray, not a table"):
        bundle.predict(frame.to_numpy())
    with pytest.raises(DataError, match="the column '0' twice"):
        bundle.predict(pd.concat([frame, frame[["0"]]], axis=1))
    with pytest.raises(DataError, match="the column '1' twice"):  # 1 and "1" are one column name
        bundle.predict(frame.assign(extra=0.0).rename(columns={"extra": 1}))


def test_keep_takes_one_name_or_several(trained):
    bundle, frame = trained
    rows = frame.head(3).assign(id=["a", "b", "c"])
    assert list(honing.predict(bundle, rows, keep="id").columns) == ["id", "prediction", "proba_no", "proba_yes"]
    assert honing.predict(bundle, rows, keep=[0])["0"].tolist() == rows["0"].tolist()


def test_a_dataframe_as_data_source_says_to_save_it(tmp_path):
    frame = pd.DataFrame({"x": range(50), "y": [0, 1] * 25})
    with pytest.raises(RecipeError) as info:
        honing.train({"data": {"source": frame, "target": "y"}}, out=tmp_path / "run", track=False)
    assert str(info.value).count("\n") == 0 and "a DataFrame, not a path" in str(info.value)
    assert "to_parquet" in info.value.hint
