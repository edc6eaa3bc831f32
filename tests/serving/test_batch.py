"""Streaming batch prediction (honing.serving.batch): chunked output equals whole-file prediction."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import honing
from honing.data.sources import read_table
from honing.errors import DataError, ServingError
from honing.progress import Progress
from honing.serving import batch
from honing.serving.batch import predict_file, predict_frame

CHUNK = 7


@pytest.fixture(scope="module")
def titanic(tmp_path_factory):
    """A logistic-regression bundle; Pclass is a category trained on numbers (1, 2, 3)."""
    run = honing.train({"name": "titanic", "data": {"source": "builtin:titanic", "drop": ["PassengerId", "Name"],
                                                    "types": {"Pclass": "categorical"}},
                        "model": {"type": "logistic_regression"}, "evaluate": {"explain": False, "bootstrap": 0}},
                       out=tmp_path_factory.mktemp("titanic") / "run", track=False)
    return honing.load(run.bundle_dir)


@pytest.fixture(scope="module")
def housing(tmp_path_factory):
    run = honing.train({"name": "housing", "data": {"source": "builtin:california_housing"},
                        "model": {"type": "linear_regression"}, "evaluate": {"explain": False, "bootstrap": 0}},
                       out=tmp_path_factory.mktemp("housing") / "run", track=False)
    return honing.load(run.bundle_dir)


@pytest.fixture(scope="module")
def rows(titanic):
    """120 titanic rows: the first chunk has every Age, Cabin, Embarked and Pclass missing (so Pclass is
    written as 1.0, 3.0 … in a CSV), the second chunk holds rows the model puts in one class."""
    frame = read_table("builtin:titanic").iloc[:120].copy()
    frame["Pclass"] = frame["Pclass"].astype(float)
    frame.loc[frame.index[:CHUNK], ["Age", "Cabin", "Embarked", "Pclass"]] = np.nan
    predicted = titanic.predict(frame)
    rest = [i for i in range(CHUNK, len(frame)) if predicted[i] == 0]
    order = [*range(CHUNK), *rest[:CHUNK], *(i for i in range(CHUNK, len(frame)) if i not in rest[:CHUNK])]
    frame = frame.iloc[order].reset_index(drop=True)
    assert len(set(titanic.predict(frame.iloc[CHUNK:2 * CHUNK]))) == 1  # a chunk of a single class
    assert frame["Age"].iloc[:CHUNK].isna().all()
    return frame


def _write(frame: pd.DataFrame, path, sep: str = ",", encoding: str = "utf-8"):
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep=sep, encoding=encoding)
    return path


def _read(path, **kwargs) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, **kwargs)


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame, keep: list[str] = ()) -> None:
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_array_equal(got["prediction"].to_numpy(), expected["prediction"].to_numpy())
    for column in [c for c in expected.columns if c.startswith("proba_")]:
        np.testing.assert_allclose(got[column].to_numpy(), expected[column].to_numpy(), rtol=0, atol=1e-12)
    for column in keep:
        assert got[column].astype(str).tolist() == expected[column].astype(str).tolist()


def _leftovers(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def test_predict_frame_is_what_the_bundle_predicts(titanic, housing, rows):
    out = predict_frame(titanic, rows, keep=["PassengerId"])
    assert list(out.columns) == ["PassengerId", "prediction", "proba_0", "proba_1"]
    np.testing.assert_array_equal(out["prediction"].to_numpy(), titanic.predict(rows))
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), titanic.predict_proba(rows).to_numpy(),
                               rtol=0, atol=1e-12)
    assert out["PassengerId"].tolist() == rows["PassengerId"].tolist()
    houses = read_table("builtin:california_housing").iloc[:50]
    values = predict_frame(housing, houses)
    assert list(values.columns) == ["prediction"]
    np.testing.assert_allclose(values["prediction"].to_numpy(), housing.predict(houses), rtol=1e-12)


@pytest.mark.parametrize("source", ["rows.csv", "rows.tsv", "semicolons.csv", "rows.parquet"])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_streamed_output_equals_the_whole_file_prediction(titanic, rows, tmp_path, source, suffix):
    sep = {"rows.tsv": "\t", "semicolons.csv": ";"}.get(source, ",")
    path = _write(rows, tmp_path / source, sep)
    whole = pd.read_parquet(path) if source.endswith(".parquet") else pd.read_csv(path, sep=sep)
    expected = predict_frame(titanic, whole, keep=["PassengerId"])
    np.testing.assert_array_equal(expected["prediction"].to_numpy(), titanic.predict(whole))  # the oracle's oracle

    out = tmp_path / f"out{suffix}"
    assert predict_file(titanic, path, out, keep=["PassengerId"], chunk_rows=CHUNK) == len(rows)
    got = _read(out)
    _assert_same(got, expected, keep=["PassengerId"])
    assert str(got["prediction"].dtype) == "int64" and str(got["proba_1"].dtype) == "float64"
    if suffix == ".parquet":  # one row group per chunk, one schema for all of them
        metadata = pq.ParquetFile(out).metadata
        assert metadata.num_row_groups == math.ceil(len(rows) / CHUNK)
        types = {str(metadata.row_group(i).column(j).physical_type)
                 for i in range(metadata.num_row_groups) for j in (1, 2)}
        assert types == {"INT64", "DOUBLE"}
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("source", ["houses.csv", "houses.parquet"])
def test_regression_streams(housing, tmp_path, source):
    houses = read_table("builtin:california_housing").iloc[:100].copy()
    houses.loc[houses.index[CHUNK:2 * CHUNK], "total_bedrooms"] = np.nan  # a chunk with the column all missing
    path = _write(houses, tmp_path / source)
    out = tmp_path / ("out.parquet" if source.endswith(".csv") else "out.csv")
    assert predict_file(housing, path, out, chunk_rows=CHUNK) == 100
    got = _read(out)
    np.testing.assert_allclose(got["prediction"].to_numpy(), housing.predict(houses), rtol=1e-9)
    assert pd.api.types.is_float_dtype(got["prediction"])


def test_kept_columns_are_copied_as_read(titanic, rows, tmp_path):
    frame = rows.copy()
    frame["Ticket"] = frame["Ticket"].astype(object)
    frame.loc[3, "Ticket"] = "007"
    path = _write(frame, tmp_path / "rows.csv")
    predict_file(titanic, path, tmp_path / "out.csv", keep=["Ticket", "Fare", "Ticket"], chunk_rows=CHUNK)
    got = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    source = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(got.columns) == ["Ticket", "Fare", "prediction", "proba_0", "proba_1"]
    assert got["Ticket"].tolist() == source["Ticket"].tolist() and got.loc[3, "Ticket"] == "007"
    assert got["Fare"].tolist() == source["Fare"].tolist()


def test_other_formats_are_read_whole(titanic, rows, tmp_path):
    path = tmp_path / "rows.jsonl"
    rows.to_json(path, orient="records", lines=True)
    assert predict_file(titanic, path, tmp_path / "out.parquet", keep=["PassengerId"], chunk_rows=CHUNK) == len(rows)
    _assert_same(pd.read_parquet(tmp_path / "out.parquet"), predict_frame(titanic, read_table(path), ["PassengerId"]),
                 keep=["PassengerId"])
    assert predict_file(titanic, "builtin:titanic", tmp_path / "all.csv", chunk_rows=100) == 891


def test_a_cp1252_file_streams(titanic, rows, tmp_path):
    frame = rows.copy()
    frame.loc[5, "Cabin"] = "Ç12"
    path = _write(frame, tmp_path / "rows.csv", encoding="cp1252")
    predict_file(titanic, path, tmp_path / "out.csv", keep=["Cabin"], chunk_rows=CHUNK)
    got = pd.read_csv(tmp_path / "out.csv")
    assert got.loc[5, "Cabin"] == "Ç12"
    _assert_same(got, predict_frame(titanic, pd.read_csv(path, encoding="cp1252"), ["Cabin"]), keep=["Cabin"])


def test_unparsed_numbers_warn_once_as_the_whole_file_would(titanic, rows, tmp_path):
    frame = rows.copy()
    frame["Age"] = frame["Age"].astype(object)
    frame.loc[[3 * CHUNK, 5 * CHUNK, 5 * CHUNK + 1], "Age"] = "abc"
    path = _write(frame, tmp_path / "rows.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict_file(titanic, path, tmp_path / "out.csv", chunk_rows=CHUNK)
    messages = [str(w.message) for w in caught if "column 'Age'" in str(w.message)]
    assert len(messages) == 1 and "1 more chunk too" in messages[0], messages
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = predict_frame(titanic, pd.read_csv(path))
    _assert_same(pd.read_csv(tmp_path / "out.csv"), expected)


def test_progress_shows_rows_per_second_and_the_ignored_columns(titanic, rows, tmp_path, capsys):
    path = _write(rows.assign(Extra=1), tmp_path / "rows.csv")
    predict_file(titanic, path, tmp_path / "out.csv", chunk_rows=CHUNK, progress=Progress(quiet=False))
    err = capsys.readouterr().err
    assert "ignoring columns the model does not use: Extra" in err
    assert f"predicting rows.csv: {len(rows)} rows" in err and "rows/s" in err


def test_rows_bar_counts_rows_and_their_rate(capsys):
    bar = Progress(quiet=False).rows("scoring", total=1000, approximate=True)
    time.sleep(0.05)
    bar.advance(10)
    bar.advance(5, total=900)
    bar.close()
    assert bar.done == 15 and 0 < bar.rate <= 15 / 0.05
    assert "✓ scoring: 15 rows" in capsys.readouterr().err
    silent = Progress(quiet=True).rows("quiet")
    silent.advance(3)
    silent.close()
    assert silent.done == 3 and capsys.readouterr().err == ""


# --------------------------------------------------------------------------- errors


@pytest.fixture
def existing(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("earlier predictions\n")
    return out


def _unchanged(out) -> None:
    assert out.read_text() == "earlier predictions\n"
    assert _leftovers(out.parent) == []


def test_missing_feature_columns_are_named_before_predicting(titanic, rows, existing, monkeypatch):
    path = _write(rows.drop(columns=["Age", "Fare"]), existing.parent / "rows.csv")
    monkeypatch.setattr(batch, "_predictions", lambda *a: pytest.fail("predicted before checking the header"))
    with pytest.raises(DataError) as err:
        predict_file(titanic, path, existing, chunk_rows=CHUNK)
    assert "rows.csv" in err.value.what and "Age, Fare" in err.value.what
    _unchanged(existing)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_missing_keep_column_is_named(titanic, rows, existing, suffix):
    path = _write(rows, existing.parent / f"rows{suffix}")
    with pytest.raises(DataError, match="--keep: no column Nope in data file .*rows"):
        predict_file(titanic, path, existing, keep=["Nope"])
    _unchanged(existing)
    with pytest.raises(DataError, match="--keep: no column Nope in the data"):
        predict_frame(titanic, rows, keep=["Nope"])
    with pytest.raises(DataError, match="--keep proba_1: the output has its own 'proba_1' column"):
        predict_frame(titanic, rows.assign(proba_1=0.5), keep=["proba_1"])


@pytest.mark.parametrize("out, message", [("out.json", "unknown output format"), ("folder.csv", "is a directory"),
                                           ("rows.csv", "is the input file")])
def test_bad_outputs(titanic, rows, tmp_path, out, message):
    path = _write(rows, tmp_path / "rows.csv")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(ServingError, match=message):
        predict_file(titanic, path, tmp_path / out)
    assert not (tmp_path / "out.json").exists() and _leftovers(tmp_path) == []
    with pytest.raises(ServingError, match="chunk_rows 0"):
        predict_file(titanic, path, tmp_path / "out.csv", chunk_rows=0)


def test_a_header_without_rows_writes_nothing(titanic, rows, existing):
    path = _write(rows.iloc[:0], existing.parent / "rows.csv")
    with pytest.raises(DataError, match="has no rows"):
        predict_file(titanic, path, existing)
    _unchanged(existing)


@pytest.fixture
def long_rows(rows):
    """About 2.5 MB of CSV text, so that pyarrow reads it in several blocks."""
    return pd.concat([rows] * 200, ignore_index=True).to_csv(index=False).encode().splitlines()


@pytest.mark.parametrize("damage, message", [
    (lambda line: line + b",extra", r"row 20001: Expected 12 columns, got 13"),
    (lambda line: line.replace(b"male", b"m\xe4le"), r"row 20001: .*invalid UTF8"),
])
def test_a_bad_row_late_in_the_file_leaves_nothing(titanic, long_rows, existing, monkeypatch, damage, message):
    assert b"male" in long_rows[20000]
    long_rows[20000] = damage(long_rows[20000])  # line 20001 of the file (the header is line 1)
    path = existing.parent / "rows.csv"
    path.write_bytes(b"\n".join(long_rows) + b"\n")
    calls = []
    predictions = batch._predictions
    monkeypatch.setattr(batch, "_predictions", lambda *a: calls.append(1) or predictions(*a))
    with pytest.raises(DataError, match=message) as err:
        predict_file(titanic, path, existing, chunk_rows=2000)
    assert "rows.csv" in err.value.what and err.value.hint
    assert len(calls) >= 3  # chunks were predicted and written before the bad row was reached
    _unchanged(existing)


def test_a_boolean_target_names_its_probability_columns_as_its_predictions_are_written(tmp_path):
    """CSV writes the predictions true/false, so the columns are proba_false/proba_true (not proba_False)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    frame = pd.DataFrame({"x": x, "y": x + 0.5 * rng.normal(size=120) > 0})
    frame.to_csv(tmp_path / "bool.csv", index=False)
    run = honing.train({"name": "bool", "data": {"source": str(tmp_path / "bool.csv"), "target": "y"},
                        "model": {"type": "logistic_regression"}, "evaluate": {"explain": False, "bootstrap": 0}},
                       out=tmp_path / "run", track=False)
    bundle = honing.load(run.bundle_dir)
    assert bundle.classes == [False, True] and bundle.class_texts == ["false", "true"]
    predict_file(bundle, tmp_path / "bool.csv", tmp_path / "out.csv")
    header, first = (tmp_path / "out.csv").read_text().splitlines()[:2]
    assert header == "prediction,proba_false,proba_true"
    assert first.split(",")[0] == str(bool(bundle.predict(frame.head(1))[0])).lower()


def test_categories_trained_on_text_read_alike_from_a_file_in_every_entry_point(tmp_path):
    """A category column of "1.0", "2.5", "XL": a file holding only "1.0" and "2.5" is read as text by
    honing.predict / evaluate (read whole) as by the streamed CLI reader, not as the numbers 1 and 2.5."""
    rng = np.random.default_rng(0)
    size, x = rng.choice(["1.0", "2.5", "XL"], 300), rng.normal(size=300)
    frame = pd.DataFrame({"x": x, "size": size, "y": np.where((size == "1.0") | (x > 1), "yes", "no")})
    frame.to_csv(tmp_path / "train.csv", index=False)
    run = honing.train({"data": {"source": str(tmp_path / "train.csv"), "target": "y"},
                        "model": {"type": "logistic_regression"}, "evaluate": {"bootstrap": 0, "explain": False}},
                       out=tmp_path / "run", track=False)
    bundle = honing.load(run.bundle_dir)
    rows = frame[frame["size"] != "XL"].head(60).reset_index(drop=True)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    expected = bundle.predict(rows).tolist()
    assert honing.predict(bundle, tmp_path / "rows.csv")["prediction"].tolist() == expected
    predict_file(bundle, tmp_path / "rows.csv", tmp_path / "out.csv")
    assert pd.read_csv(tmp_path / "out.csv")["prediction"].tolist() == expected
    import gzip  # a compressed CSV is read whole
    (tmp_path / "rows.csv.gz").write_bytes(gzip.compress((tmp_path / "rows.csv").read_bytes()))
    predict_file(bundle, tmp_path / "rows.csv.gz", tmp_path / "out2.csv")
    assert pd.read_csv(tmp_path / "out2.csv")["prediction"].tolist() == expected
    assert honing.evaluate(bundle, tmp_path / "rows.csv")["accuracy"] == honing.evaluate(bundle, rows)["accuracy"]
