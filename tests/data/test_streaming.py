"""Streaming a table larger than memory: the split by row number, chunked reading and sharding, the
shuffle buffer, the batch stream, the statistics pass and the preprocessor fitted from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from honing.data.preprocess import build_preprocessor, coerce_features
from honing.data.schema import infer_schema
from honing.data.stream_batches import RowStream, ShuffleBuffer
from honing.data.stream_fit import fitted_preprocessor
from honing.data.stream_stats import SAMPLE_ROWS, SPLIT_COLUMN, check_schema, collect
from honing.data.streaming import Plan, TableFile, check_split, split_codes, streams
from honing.data.text import token_vocab_size
from honing.errors import DataError, RecipeError
from honing.recipe import DataConfig, ReadConfig, SplitConfig, load_recipe


def _frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cats = [f"c{i:02d}" for i in range(40)]
    frame = pd.DataFrame({
        "rid": np.arange(n, dtype=float),
        "num": rng.normal(3, 2, n), "skew": rng.exponential(1, n),
        "cat": rng.choice(cats, n, p=rng.dirichlet(np.ones(40) * 0.5)), "small": rng.choice(["a", "b", "c"], n),
        "flag": rng.choice(["yes", "no"], n), "y": rng.choice(["p", "q", "r"], n)})
    frame.loc[rng.random(n) < 0.1, "num"] = np.nan
    frame.loc[rng.random(n) < 0.05, "cat"] = None
    frame.loc[rng.random(n) < 0.02, "small"] = None
    return frame


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    frame = _frame()
    path = tmp_path_factory.mktemp("stream") / "t.parquet"
    frame.to_parquet(path, row_group_size=400, index=False)
    return frame, TableFile.open(path)


def _plan(frame: pd.DataFrame, table: TableFile, chunk_rows: int = 256, seed: int = 7) -> Plan:
    schema = infer_schema(frame, target="y", overrides={"rid": "numeric"})
    return Plan(table, schema, "y", "classification", seed, 0.15, 0.15, chunk_rows)


# --------------------------------------------------------------------------- split and reading


def test_split_follows_the_fractions_and_the_row_number_only():
    rows = np.arange(200_000, dtype=np.uint64)
    codes = split_codes(rows, 42, 0.2, 0.1)
    shares = np.bincount(codes, minlength=3) / len(rows)
    np.testing.assert_allclose(shares, [0.7, 0.2, 0.1], atol=0.005)
    assert np.array_equal(codes, split_codes(rows, 42, 0.2, 0.1))  # deterministic
    pieces = np.concatenate([split_codes(rows[:777], 42, 0.2, 0.1), split_codes(rows[777:], 42, 0.2, 0.1)])
    assert np.array_equal(codes, pieces)  # however the rows are chunked
    assert (codes != split_codes(rows, 43, 0.2, 0.1)).mean() > 0.3  # another seed, another split
    merged = Plan(None, None, "y", "classification", 42, 0.2, 0.1, 100, merge_validation=True).splits(0, len(rows))
    assert np.array_equal(merged, np.where(codes == 1, 0, codes))  # a refit on train + validation


@pytest.mark.parametrize("kind", ["parquet", "parquet-one-group", "csv"])
def test_shards_read_every_row_once(kind, tmp_path):
    frame = _frame(2000)
    path = tmp_path / ("t.csv" if kind == "csv" else "t.parquet")
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, row_group_size=2000 if kind == "parquet-one-group" else 300, index=False)
    table = TableFile.open(path)
    order = np.random.default_rng(0).permutation(len(table.group_rows)) if table.group_rows else None
    for shards in (1, 2, 3):
        seen = []
        for shard in range(shards):
            for first, chunk in table.frames(table.columns, 250, shard, shards, order):
                assert np.array_equal(chunk["rid"].to_numpy(), np.arange(first, first + len(chunk)))
                seen.append(chunk)
        rows = pd.concat(seen).sort_values("rid", ignore_index=True)
        assert len(rows) == len(frame)
        pd.testing.assert_series_equal(rows["num"], frame["num"], check_dtype=False)
        assert rows["cat"].fillna("-").tolist() == frame["cat"].fillna("-").tolist()


def test_read_options_are_checked(tmp_path):
    """data.read.encoding is a one-line error naming the key (the delimiter: tests/test_recipe.py); a file not in its
    encoding names the file, in its first MiB or after it; a UTF-16 file longer than the first MiB
    reads whole."""
    frame = _frame(60_000)[["rid", "num", "y"]]
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="data.read.encoding: unknown encoding 'bogus'"):
        TableFile.open(tmp_path / "t.csv", ReadConfig(encoding="bogus"))
    with pytest.raises(DataError, match="t.csv' is not valid utf-16"):
        TableFile.open(tmp_path / "t.csv", ReadConfig(encoding="utf-16"))
    (tmp_path / "late.csv").write_bytes((tmp_path / "t.csv").read_bytes() + "9,é,p\n".encode("latin-1"))
    with pytest.raises(DataError, match="late.csv' is not valid ascii"):  # (its first MiB is ASCII)
        late = TableFile.open(tmp_path / "late.csv", ReadConfig(encoding="ascii"))
        list(late.frames(late.columns, 10_000))
    frame.to_csv(tmp_path / "u16.csv", index=False, encoding="utf-16")
    assert (tmp_path / "u16.csv").stat().st_size > (1 << 20)
    wide = TableFile.open(tmp_path / "u16.csv", ReadConfig(encoding="utf-16"))
    rows = pd.concat(chunk for _, chunk in wide.frames(wide.columns, 20_000))
    assert wide.columns == ["rid", "num", "y"] and rows["rid"].tolist() == frame["rid"].tolist()


# --------------------------------------------------------------------------- shuffling and batches


def test_shuffle_buffer_holds_at_most_its_capacity_and_loses_no_row():
    buffer = ShuffleBuffer(100, np.random.default_rng(0))
    out = []
    for start in range(0, 1000, 30):
        ids = np.arange(start, min(start + 30, 1000))
        left = buffer.add((ids, ids * 2.0))
        assert buffer.size <= 100 and len(buffer.held[0]) == 100
        if left is not None:
            assert np.array_equal(left[1], left[0] * 2.0)
            out.append(left[0])
    out += [ids for ids, _ in buffer.drain(piece=37)]
    order = np.concatenate(out)
    assert np.array_equal(np.sort(order), np.arange(1000))
    assert not np.array_equal(order, np.arange(1000))
    assert np.abs(order - np.arange(1000)).max() > 50  # rows move across chunks, within the buffer's reach


def test_shuffle_buffer_holds_at_most_its_bytes():
    """Wide rows (images) fill the byte budget before the row capacity: 1,000 rows of 64 float32 values
    and int64 ids (264 bytes a row) in 10,000 bytes hold 37 rows, and every row still leaves once."""
    buffer = ShuffleBuffer(100_000, np.random.default_rng(0), max_bytes=10_000)
    out = []
    for start in range(0, 1000, 50):
        ids = np.arange(start, start + 50)
        left = buffer.add((np.zeros((50, 64), np.float32), ids))
        assert buffer.capacity == 10_000 // (64 * 4 + 8) == 37 and buffer.size <= 37
        out += [] if left is None else [left[1]]
    out += [ids for _, ids in buffer.drain()]
    assert np.array_equal(np.sort(np.concatenate(out)), np.arange(1000))


@pytest.mark.parametrize("workers", [0, 2])
def test_every_training_row_once_per_epoch_in_a_new_order(table, workers):
    frame, file = table
    plan = _plan(frame, file)
    cfg = DataConfig(source="x", scale="none")
    train = np.flatnonzero(plan.splits(0, len(frame)) == 0)
    plan.preprocessor = build_preprocessor(plan.schema, cfg).fit(coerce_features(frame.iloc[train], plan.schema))
    plan.labels = {"p": 0, "q": 1, "r": 2}
    stream = RowStream(plan, ("train",), rows=len(train), batch_size=64, workers=workers, shuffle=True,
                       buffer_rows=500)
    rid = plan.schema.feature_names.index("rid")

    def epoch(number: int) -> np.ndarray:
        batches = list(stream.batches(number))
        assert sum(len(xb) != 64 for xb, _ in batches) <= max(workers, 1)  # each reader's last batch may be short
        ids = np.concatenate([xb[:, rid].numpy() for xb, _ in batches]).astype(int)
        codes = np.concatenate([yb.numpy() for _, yb in batches])
        assert np.array_equal(codes, frame["y"].map({"p": 0, "q": 1, "r": 2}).to_numpy()[ids])
        return ids

    first, again, second = epoch(1), epoch(1), epoch(2)
    assert np.array_equal(np.sort(first), train) and np.array_equal(np.sort(second), train)
    assert np.array_equal(first, again)  # seeded by the epoch
    assert not np.array_equal(first, second)
    assert abs(len(stream) - len(train) / 64) <= 1
    validation = np.concatenate([xb[:, rid].numpy() for xb, _ in
                                 RowStream(plan, ("validation",), rows=1, batch_size=50, workers=workers).batches(0)])
    assert np.array_equal(np.sort(validation.astype(int)), np.flatnonzero(plan.splits(0, len(frame)) == 1))


class _Refusing:
    """A preprocessor that meets a user mistake (as an image that cannot be decoded would)."""

    def transform(self, X):
        raise DataError("cannot decode image z.png: image file is truncated", "remove it")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_mistake_in_a_reader_process_is_raised_as_itself(table, workers):
    frame, file = table
    plan = _plan(frame, file)
    plan.preprocessor, plan.labels = _Refusing(), {"p": 0, "q": 1, "r": 2}
    stream = RowStream(plan, ("train",), rows=len(frame), batch_size=64, workers=workers, shuffle=True)
    with pytest.raises(DataError) as caught:
        list(stream.batches(1))
    assert type(caught.value) is DataError and (caught.value.what, caught.value.hint) == (
        "cannot decode image z.png: image file is truncated", "remove it")  # not the worker's traceback


@pytest.mark.parametrize("workers", [0, 2])
def test_text_augmentation_adds_fresh_copies_of_every_training_row_each_epoch(tmp_path, workers):
    """data.augment's text step on a stream: each training row comes with `copies` rewrites of its text
    (here swaps, which keep its words) and its own label, drawn anew each epoch; validation is untouched."""
    from honing.data.augment_text import rows_per_row, text_steps

    frame = _frame(1500, seed=5)
    words = np.array(["red", "green", "blue", "fast", "slow", "dog", "cat", "tree", "sky", "sea"])
    rng = np.random.default_rng(6)
    frame["note"] = [" ".join(rng.choice(words, 5, replace=False)) for _ in range(len(frame))]
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=200, index=False)
    schema = infer_schema(frame, target="y", overrides={"rid": "numeric", "note": "text"})
    plan = Plan(TableFile.open(tmp_path / "t.parquet"), schema, "y", "classification", 7, 0.15, 0.15, 256)
    train = np.flatnonzero(plan.splits(0, len(frame)) == 0)
    cfg = DataConfig(source="x", text="tokens", max_tokens=5, scale="none")
    plan.preprocessor = build_preprocessor(schema, cfg).fit(coerce_features(frame.iloc[train], schema))
    plan.labels = {"p": 0, "q": 1, "r": 2}
    plan.augment = text_steps([{"name": "gaussian_noise"}, {"name": "text", "swap": 0.6, "deletion": 0.0,
                                                            "synonyms": 0.0, "copies": 2}], ["note"])
    assert [i for i, _ in plan.augment] == [1] and rows_per_row(plan.augment) == 3
    stream = RowStream(plan, ("train",), rows=3 * len(train), batch_size=64, workers=workers, shuffle=True,
                       buffer_rows=500, augment=True)
    names = list(plan.preprocessor.get_feature_names_out())
    rid, tokens = names.index("rid"), [i for i, n in enumerate(names) if "note" in n]

    def epoch(number: int) -> dict[int, list[tuple]]:
        versions: dict[int, list[tuple]] = {}
        for xb, yb in stream.batches(number):
            for x, label in zip(xb.numpy(), yb.numpy(), strict=True):
                assert label == plan.labels[frame["y"].iloc[int(x[rid])]]  # each copy keeps its row's label
                versions.setdefault(int(x[rid]), []).append(tuple(x[tokens].astype(int)))
        return versions

    first, again, second = epoch(1), epoch(1), epoch(2)
    assert sorted(first) == train.tolist() and all(len(v) == 3 for v in first.values())
    assert all(len({tuple(sorted(t)) for t in v}) == 1 for v in first.values())  # swaps keep the words
    assert sum(len(set(v)) > 1 for v in first.values()) > 0.9 * len(train)  # and move them
    assert first == again and first != second  # seeded by the epoch: fresh copies every epoch
    assert abs(len(stream) - 3 * len(train) / 64) <= 1
    validation = RowStream(plan, ("validation",), rows=1, batch_size=50, workers=workers).batches(0)
    assert sum(len(xb) for xb, _ in validation) == int((plan.splits(0, len(frame)) == 1).sum())


def test_a_text_step_without_a_text_column_is_a_recipe_error():
    from honing.data.augment_text import text_steps

    with pytest.raises(RecipeError, match=r"data.augment\[0\].swap"):
        text_steps([{"name": "text", "swap": 2}], ["note"])
    with pytest.raises(RecipeError, match="a text step needs a text column"):
        text_steps([{"name": "text"}], [])


# --------------------------------------------------------------------------- statistics


def test_statistics_equal_pandas_on_the_training_rows(table):
    frame, file = table
    plan = _plan(frame, file)
    stats = collect(plan)
    codes = plan.splits(0, len(frame))
    train = coerce_features(frame[codes == 0], plan.schema)
    numbers = train[stats.numeric]
    np.testing.assert_allclose(stats.mean, numbers.mean(), rtol=1e-10)
    np.testing.assert_allclose(stats.m2 / stats.n, numbers.var(ddof=0), rtol=1e-9)
    np.testing.assert_allclose(stats.low, numbers.min())
    np.testing.assert_allclose(stats.high, numbers.max())
    assert stats.missing.tolist() == numbers.isna().sum().tolist()
    for name in stats.categorical:
        assert dict(stats.counts[name]) == train[name].value_counts().to_dict()
        assert stats.category_missing[name] == train[name].isna().sum()
    assert stats.rows == np.bincount(codes, minlength=3).tolist()
    assert stats.classes == ["p", "q", "r"]
    for split in range(3):
        expected = frame["y"][codes == split].value_counts()
        assert stats.class_counts(split).tolist() == [expected[c] for c in ["p", "q", "r"]]
    sample = stats.sample
    assert len(sample) == min(SAMPLE_ROWS, len(frame))
    by_id = frame.set_index("rid")
    assert (sample["num"].fillna(-1).to_numpy() == by_id.loc[sample["rid"], "num"].fillna(-1).to_numpy()).all()
    assert (sample[SPLIT_COLUMN].to_numpy() == np.array(["train", "validation", "test"])[
        codes[sample["rid"].astype(int)]]).all()
    assert len(stats.fingerprint) == 64 and stats.fingerprint == collect(_plan(frame, file, chunk_rows=999)).fingerprint


def test_the_sample_is_uniform_and_bounded(tmp_path, monkeypatch):
    from honing.data import stream_stats

    monkeypatch.setattr(stream_stats, "SAMPLE_ROWS", 500)
    frame = _frame(5000)
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=700, index=False)
    stats = collect(_plan(frame, TableFile.open(tmp_path / "t.parquet")))
    assert len(stats.sample) == 500 and stats.sample["rid"].is_unique
    assert 1500 < stats.sample["rid"].mean() < 3500  # from the whole file, not its head


CONFIGS = [
    {"clean": {"missing": {"numeric": "mean", "categorical": "most_frequent", "indicator": True}}, "max_categories": 5},
    {"clean": {"missing": {"numeric": "mean", "categorical": "most_frequent"}}},  # 40 categories > 30: grouped
    {"clean": {"missing": {"numeric": "constant", "categorical": "constant", "fill_value": 7}}, "scale": "minmax"},
    {"clean": {"missing": {"numeric": "mean", "indicator": True}}, "scale": "minmax", "encode": "ordinal"},
    {"clean": {"missing": {"numeric": "constant"}}, "scale": "none", "max_categories": 2},
    # data.reduce: the PCA is fitted on the sampled training rows, here every one of them
    {"clean": {"missing": {"numeric": "mean", "indicator": True}}, "reduce": {"pca": 0.9}},
    {"reduce": {"pca": 3}},
]


@pytest.mark.parametrize("options", CONFIGS)
def test_the_streamed_preprocessor_equals_the_in_memory_one(table, options):
    """Oracle: the preprocessor built from streamed statistics transforms like the in-memory one fitted
    on the same training rows (same columns, same values), also on unseen categories and missing values."""
    frame, file = table
    plan = _plan(frame, file)
    cfg = DataConfig(source="x", **options)
    expected = build_preprocessor(plan.schema, cfg).fit(
        coerce_features(frame[plan.splits(0, len(frame)) == 0], plan.schema))
    got = fitted_preprocessor(collect(plan), plan.schema, cfg)
    probe = pd.concat([frame, pd.DataFrame({"rid": [1.0, 2.0], "num": [np.nan, 1e6], "skew": [1.0, 2.0],
                                            "cat": ["unseen", None], "small": ["new", None], "flag": [None, "yes"],
                                            "y": ["p", "q"]})], ignore_index=True)
    a, b = (p.transform(coerce_features(probe, plan.schema)) for p in (expected, got))
    assert list(expected.get_feature_names_out()) == list(got.get_feature_names_out())
    assert a.shape == b.shape
    if cfg.reduce:  # a principal component's sign is arbitrary (the rows come in another order)
        b = b * np.sign((a * b).sum(axis=0))
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9)


def test_median_imputation_and_robust_scaling_come_from_the_sample(table):
    frame, file = table
    plan = _plan(frame, file)
    cfg = DataConfig(source="x", scale="robust")  # median imputation is the default
    stats = collect(plan)
    got = fitted_preprocessor(stats, plan.schema, cfg)
    sample = coerce_features(stats.sample_of("train"), plan.schema)
    imputer = got.named_transformers_["numeric"].named_steps["impute"]
    np.testing.assert_allclose(imputer.statistics_, sample[stats.numeric].median())
    expected = build_preprocessor(plan.schema, cfg).fit(sample)  # here the sample is every training row
    np.testing.assert_allclose(got.transform(coerce_features(frame, plan.schema)),
                               expected.transform(coerce_features(frame, plan.schema)))


# --------------------------------------------------------------------------- user mistakes


def test_streaming_key_is_checked_and_resolved(tmp_path, monkeypatch):
    from honing.data import streaming

    with pytest.raises(RecipeError, match="data.streaming"):
        load_recipe({"data": {"source": "x.csv", "streaming": "maybe"}})
    with pytest.raises(RecipeError, match="data.streaming: builtin:iris cannot be streamed"):
        streams(DataConfig(source="builtin:iris", streaming=True))
    with pytest.raises(RecipeError, match="data.streaming"):
        streams(DataConfig(source=str(tmp_path / "t.csv.gz"), streaming=True))
    _frame(100).to_parquet(tmp_path / "t.parquet")
    assert not streams(DataConfig(source=str(tmp_path / "t.parquet")))  # auto: small
    assert not streams(DataConfig(source="builtin:iris"))
    monkeypatch.setattr(streaming, "AUTO_BYTES", 1000)
    assert streams(DataConfig(source=str(tmp_path / "t.parquet")))  # auto: over the threshold
    assert not streams(DataConfig(source=str(tmp_path / "t.parquet"), streaming=False))


@pytest.mark.parametrize(("split", "key"), [({"group": "g"}, "data.split.group"), ({"time": "t"}, "data.split.time"),
                                            ({"column": "c"}, "data.split.column"),
                                            ({"stratify": True}, "data.split.stratify")])
def test_splits_that_need_the_whole_table_are_refused(split, key):
    with pytest.raises(RecipeError, match=key) as caught:
        check_split(SplitConfig(**split))
    assert "\n" not in str(caught.value) and "data.streaming: false" in str(caught.value)


def test_a_pretrained_models_text_is_checked_before_the_pass(table):
    """data.text: pretrained streams one text column alone, as in memory: what memory would refuse after
    reading every row is refused before the statistics pass."""
    frame, _ = table
    schema = infer_schema(frame.assign(note=["a few words here"] * len(frame)), target="y",
                          overrides={"note": "text"})
    with pytest.raises(DataError, match="data.text: pretrained takes only the text column 'note'"):
        check_schema(schema, DataConfig(source="x", text="pretrained", tokenizer="builtin:minilm"))
    alone = infer_schema(frame.assign(note="a few words here")[["note", "y"]], target="y", overrides={"note": "text"})
    check_schema(alone, DataConfig(source="x", text="pretrained", tokenizer="builtin:minilm"))
    for text in ("drop", "tfidf", "tokens"):  # their vocabulary comes from the sample
        check_schema(schema, DataConfig(source="x", text=text))


@pytest.mark.parametrize("text", ["tfidf", "tokens"])
def test_a_streamed_text_columns_vocabulary_is_fitted_on_the_sample(tmp_path, text):
    """With fewer training rows than the sample holds, the sample is every training row: the streamed
    TF-IDF (vocabulary, IDF, values) or token ids equal scikit-learn's / TokenIds' fitted in memory on them."""
    frame = _frame(2000, seed=3)
    words = np.array(["red", "green", "blue", "fast", "slow", "dog", "cat", "tree", "sky", "sea"])
    rng = np.random.default_rng(4)
    frame["note"] = [" ".join(rng.choice(words, rng.integers(1, 6))) for _ in range(len(frame))]
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=300, index=False)
    table = TableFile.open(tmp_path / "t.parquet")
    schema = infer_schema(frame, target="y", overrides={"rid": "numeric", "note": "text"})
    plan = Plan(table, schema, "y", "classification", 7, 0.15, 0.15, 256)
    cfg = DataConfig(source="x", text=text, max_tokens=4)
    got = fitted_preprocessor(collect(plan), schema, cfg)
    train = coerce_features(frame[plan.splits(0, len(frame)) == 0], schema)
    expected = build_preprocessor(schema, cfg).fit(train)
    assert [n for n in got.get_feature_names_out() if "note" in n] == [n for n in expected.get_feature_names_out()
                                                                       if "note" in n]
    probe = coerce_features(frame.head(50), schema)
    np.testing.assert_allclose(got.transform(probe), expected.transform(probe), rtol=1e-9, atol=1e-9)
    if text == "tokens":
        assert token_vocab_size(got) == token_vocab_size(expected) == len(words) + 2  # + padding and unknown


def test_a_class_without_training_rows_is_a_data_error(tmp_path):
    frame = _frame(600)
    codes = split_codes(np.arange(600, dtype=np.uint64), 7, 0.15, 0.15)
    frame.loc[codes != 0, "y"] = "rare"  # only held-out rows have the class 'rare'
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    with pytest.raises(DataError, match="class 'rare'.*none is in the training split"):
        collect(_plan(frame, TableFile.open(tmp_path / "t.parquet")))


@pytest.mark.parametrize("value", ["bad", "inf"])
def test_a_regression_target_that_is_not_a_finite_number_is_a_data_error(tmp_path, value):
    """Found in the chunk that holds it, however far from the rows the schema was inferred on."""
    frame = _frame(3000)[["rid", "num", "small"]].assign(y=np.arange(3000) / 7)
    frame.to_csv(tmp_path / "t.csv", index=False)
    text = (tmp_path / "t.csv").read_text().splitlines()
    text[2501] = text[2501].rsplit(",", 1)[0] + f",{value}"  # row 2500 (line 1 is the header)
    (tmp_path / "t.csv").write_text("\n".join(text) + "\n")
    schema = infer_schema(frame, target="y", overrides={"rid": "numeric"})
    plan = Plan(TableFile.open(tmp_path / "t.csv"), schema, "y", "regression", 7, 0.15, 0.15, 256)
    with pytest.raises(DataError, match=f"target 'y' is '{value}' in row 2500, not a finite number"):
        collect(plan)


def test_an_empty_validation_or_test_split_is_a_data_error_when_the_split_asks_for_it(tmp_path):
    """As in memory: a small file whose random split leaves a split empty is refused, naming its key."""
    codes = {s: split_codes(np.arange(8, dtype=np.uint64), s, 0.15, 0.15) for s in range(1000)}
    frame = _frame(8)
    frame["y"] = ["p", "q"] * 4
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    none = _plan(frame, TableFile.open(tmp_path / "t.parquet"), seed=next(s for s, c in codes.items() if not c.any()))
    with pytest.raises(DataError, match=r"its 8 rows .* empty validation split \(data.split.validation: 0.15"):
        collect(none)
    no_test = _plan(frame, none.table, seed=next(s for s, c in codes.items() if 1 in c and 2 not in c and c.sum() < 3))
    with pytest.raises(DataError, match=r"its 8 rows .* empty test split \(data.split.test: 0.15"):
        collect(no_test)
    none.validation = none.test = 0.0  # asked for none: every row trains
    assert collect(none).rows == [8, 0, 0]
    none.validation, none.merge_validation = 0.15, True  # a refit on train + validation
    assert collect(none).rows == [8, 0, 0]
