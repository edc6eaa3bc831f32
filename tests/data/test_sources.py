"""Readers, builtins and fingerprints."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from honing.data.builtin import BUILTINS, builtin_names, load_builtin
from honing.data.sources import SUPPORTED_FORMATS, fingerprint, read_table
from honing.errors import DataError

FRAME = pd.DataFrame({"name": ["café", "thé", "bière"], "price": [2.5, 1.75, 4.0], "qty": [1, 2, 3]})


def test_semicolon_cp1252_is_sniffed(tmp_path):
    path = tmp_path / "menu.csv"
    path.write_bytes("name;price;qty\ncafé;2,5;1\nthé;1,75;2\nbière;4;3\n".encode("cp1252"))
    df = read_table(path)
    assert list(df.columns) == ["name", "price", "qty"]
    assert df["name"].tolist() == ["café", "thé", "bière"]
    assert df["qty"].tolist() == [1, 2, 3]


def test_utf8_with_bom_and_pipe_delimiter(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes("a|b\n1|x\n2|y\n".encode("utf-8-sig"))
    df = read_table(path)
    assert list(df.columns) == ["a", "b"]
    assert df["a"].tolist() == [1, 2]


def test_explicit_delimiter_and_encoding(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("a:b\n1:é\n".encode("latin-1"))
    df = read_table(path, delimiter=":", encoding="latin-1")
    assert df.to_dict("list") == {"a": [1], "b": ["é"]}


def test_quoted_fields_with_commas(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('"id","name"\n1,"Smith, John"\n2,"Doe, Jane"\n', encoding="utf-8")
    assert read_table(path)["name"].tolist() == ["Smith, John", "Doe, Jane"]


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_integers_written_with_leading_zeros_stay_text(tmp_path, sep):
    """Zip codes and labels like 01 / 002 keep their zeros, in memory and streamed; other numbers do
    not change (0, 10, 0.5, 05.5 are numbers)."""
    from honing.data.streaming import TableFile

    lines = ["zip,code,label,count,ratio,odd", '02134,"007",01,0,0.5,05.5', "10001,12,002,10,1.5,6",
             ",-05,01,3,,7", "94110,4,10,4,2,8"]
    (tmp_path / "t.csv").write_text("\n".join(line.replace(",", sep) for line in lines) + "\n")
    frame = read_table(tmp_path / "t.csv")
    assert frame["zip"].tolist()[:2] == ["02134", "10001"] and pd.isna(frame["zip"][2])
    assert frame["code"].tolist() == ["007", "12", "-05", "4"]  # one padded value: the whole column is codes
    assert frame["label"].tolist() == ["01", "002", "01", "10"]
    for name in ("count", "ratio", "odd"):
        assert pd.api.types.is_numeric_dtype(frame[name]), name
    table = TableFile.open(tmp_path / "t.csv")
    assert table.numbers == {"count": "int", "ratio": "float", "odd": "float"}
    (_, streamed), = table.frames(table.columns, 10)
    pd.testing.assert_frame_equal(streamed, frame, check_dtype=False)


def test_parquet_index_columns_are_data(tmp_path):
    """df.set_index([...]).to_parquet(): the named index levels are columns (they were silently lost);
    an unnamed index is only row labels."""
    frame = pd.DataFrame({"cust": ["a", "b", "c"], "color": ["red", "blue", "red"], "x": [1.0, 2.0, 3.0]})
    frame.set_index(["cust", "color"]).to_parquet(tmp_path / "named.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "named.parquet"), frame)
    frame.set_index(pd.Index([7, 8, 9])).to_parquet(tmp_path / "unnamed.parquet")
    assert list(read_table(tmp_path / "unnamed.parquet").columns) == ["cust", "color", "x"]


def test_single_column_csv(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("x\n1\n2\n3\n", encoding="utf-8")
    assert read_table(path)["x"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("suffix", [".tsv", ".tab"])
def test_tsv(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    FRAME.to_csv(path, sep="\t", index=False)
    pd.testing.assert_frame_equal(read_table(path), FRAME)


def test_gzipped_csv(tmp_path):
    path = tmp_path / "data.csv.gz"
    path.write_bytes(gzip.compress(FRAME.to_csv(index=False).encode()))
    pd.testing.assert_frame_equal(read_table(path), FRAME)


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    FRAME.to_parquet(path)
    pd.testing.assert_frame_equal(read_table(path), FRAME)


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_jsonl(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_text('{"a": 1, "b": "x"}\n\n{"a": 2, "b": null, "c": [1, 2]}\n', encoding="utf-8")
    df = read_table(path)
    assert df["a"].tolist() == [1, 2]
    assert df["b"].iloc[0] == "x" and pd.isna(df["b"].iloc[1])
    assert df["c"].iloc[1] == "[1, 2]"


def test_builtin_titanic():
    df = read_table("builtin:titanic")
    assert len(df) == 891
    assert "Survived" in df.columns


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_loads(name):
    dataset = load_builtin(name)
    assert dataset.name == name
    assert dataset.target in dataset.frame.columns
    assert dataset.task in ("classification", "regression")
    assert len(dataset.frame) > 100 and dataset.description and dataset.source
    assert dataset.frame[dataset.target].notna().all()


def test_builtin_list_and_metadata():
    assert set(builtin_names()) == {
        "titanic", "wine_quality", "california_housing", "breast_cancer", "iris", "digits", "diabetes", "mnist_test",
        "pima_diabetes", "sst2",
    }
    assert load_builtin("wine_quality").task == "regression"
    assert load_builtin("california_housing").frame["total_bedrooms"].isna().sum() == 207
    assert set(load_builtin("iris").frame["species"]) == {"setosa", "versicolor", "virginica"}
    assert set(load_builtin("breast_cancer").frame["target"]) == {"malignant", "benign"}
    assert "titanic" in BUILTINS


def test_builtin_returns_a_fresh_copy():
    frame = load_builtin("titanic").frame
    frame.loc[0, "Age"] = -1
    assert load_builtin("titanic").frame.loc[0, "Age"] == 22


def test_unknown_builtin_suggests_a_name():
    with pytest.raises(DataError, match="data.source: unknown builtin dataset 'titanik'") as err:
        read_table("builtin:titanik")
    assert "titanic" in err.value.hint


# --------------------------------------------------------------------------- errors


def _error(path, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        read_table(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_missing_file(tmp_path):
    assert "not found" in _error(tmp_path / "nope.csv")


def test_directory(tmp_path):
    assert "is a directory" in _error(tmp_path)


def test_unknown_extension(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK\x03\x04")
    message = _error(path)
    assert "unknown format" in message and all(fmt in message for fmt in SUPPORTED_FORMATS)


def test_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "secret.csv"
    path.write_text("a\n1\n")
    real_open = Path.open

    def deny(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    assert "permission denied" in _error(path)


@pytest.mark.parametrize(
    "name, content",
    [("empty.csv", b""), ("header.csv", b"a,b,c\n"), ("blank.csv", b"\n\n  \n"), ("empty.jsonl", b"\n\n")],
)
def test_no_rows(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert "has no rows" in _error(path)


def test_parquet_without_rows(tmp_path):
    path = tmp_path / "empty.parquet"
    FRAME.iloc[:0].to_parquet(path)
    assert "has no rows" in _error(path)


@pytest.mark.parametrize(
    "name, content",
    [
        ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"),
        ("bad.parquet", b"this is not parquet at all"),
        ("bad.jsonl", b'{"a": 1}\n{"a": \n'),
        ("list.jsonl", b"[1, 2]\n"),
        ("bad.csv.gz", b"not gzip"),
        ("ragged.csv", b'a,b\n1,2\n3,"4\n'),
    ],
)
def test_unparsable(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    _error(path)


def test_wrong_explicit_encoding(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("a\ncafé\n".encode("cp1252"))
    assert "utf-8" in _error(path, encoding="utf-8")


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_sensitive():
    df = load_builtin("titanic").frame
    first = fingerprint(df)
    assert first == fingerprint(df) == fingerprint(df.copy())
    assert len(first) == 64 and int(first, 16) >= 0
    changed = df.copy()
    changed.loc[100, "Fare"] += 0.01
    assert fingerprint(changed) != first
    assert fingerprint(df.rename(columns={"Fare": "fare"})) != first
    assert fingerprint(df.astype({"Pclass": "float64"})) != first
    assert fingerprint(df.iloc[:-1]) != first
    assert fingerprint(df.set_index("PassengerId", drop=False)) == first


@pytest.mark.parametrize("name", ["titanic", "wine_quality", "california_housing"])
def test_package_csvs_read_by_path_match_the_builtins(name):
    from importlib.resources import as_file, files

    with as_file(files("honing.data") / "builtin" / f"{name}.csv") as path:
        pd.testing.assert_frame_equal(read_table(path), load_builtin(name).frame)


@pytest.mark.parametrize("sep, suffix", [(";", ".csv"), ("|", ".txt"), ("\t", ".csv")])
def test_titanic_with_other_delimiters(tmp_path, sep, suffix):
    frame = load_builtin("titanic").frame
    path = tmp_path / f"titanic{suffix}"
    frame.to_csv(path, sep=sep, index=False, encoding="cp1252")
    pd.testing.assert_frame_equal(read_table(path), frame)


# --------------------------------------------------------------------------- duplicate column names


@pytest.mark.parametrize(
    "name, content",
    [
        ("dup.csv", "a,a,y\n1,2,3\n"),
        ("dup.tsv", "a\ta\ty\n1\t2\t3\n"),
        ("dup.txt", "a;y;a\n1;2;3\n4;5;6\n"),
        ("quoted.csv", '"a",b,"a"\n1,2,3\n'),
        ("dup.jsonl", '{"a": 1, "a": 2, "y": 3}\n'),
        ("dup.json", '[{"y": 0, "a": 1}, {"a": 1, "y": 2, "a": 3}]'),
    ],
)
def test_duplicate_column_names(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_table(path)
    assert err.value.what == f"data file '{path}': duplicate column name 'a'"
    assert err.value.hint == "rename one of the columns"


def test_duplicate_column_names_in_gzipped_csv(tmp_path):
    path = tmp_path / "dup.csv.gz"
    path.write_bytes(gzip.compress(b"\n\nx,y,x\n1,2,3\n"))
    assert "duplicate column name 'x'" in _error(path)


def test_duplicate_column_names_in_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([[1], [2], [3]], names=["a", "a", "y"]), path)
    assert "duplicate column name 'a'" in _error(path)


def test_names_that_only_look_renamed_are_kept(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("a,a.1,,y\n1,2,3,4\n", encoding="utf-8")
    assert list(read_table(path).columns) == ["a", "a.1", "Unnamed: 2", "y"]


def test_repeated_keys_in_nested_json_are_not_columns(tmp_path):
    path = tmp_path / "nested.jsonl"
    path.write_text('{"a": {"k": 1, "k": 2}, "y": 1}\n', encoding="utf-8")
    assert read_table(path).to_dict("list") == {"a": ['{"k": 2}'], "y": [1]}
