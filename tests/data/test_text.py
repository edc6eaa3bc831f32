"""Token ids for text columns (data.text: tokens)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from honing.data.preprocess import TRUSTED_TYPES, build_preprocessor, coerce_features
from honing.data.schema import infer_schema
from honing.data.text import TokenIds, tokenize
from honing.recipe import DataConfig

WORDS = ["storm", "rain", "sunny", "cloud", "wind", "snow", "fog", "heat"]


def _frame(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "num": rng.normal(size=rows),
        "when": (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 5000, rows), unit="h")).astype(str),
        "note": [" ".join(rng.choice(WORDS, 4)) + f" w{i}" for i in range(rows)],
        "y": rng.choice([0, 1], rows),
    })


def _fit(df: pd.DataFrame, **kwargs):
    schema = infer_schema(df, target="y")
    cfg = DataConfig(source="x.csv", target="y", **kwargs)
    return schema, build_preprocessor(schema, cfg).fit(coerce_features(df, schema))


# --------------------------------------------------------------------------- TokenIds


def test_tokenizer_splits_words_and_punctuation():
    assert tokenize("Don't STOP, now!") == ["don", "'", "t", "stop", ",", "now", "!"]
    assert tokenize("Don't", lowercase=False) == ["Don", "'", "t"]
    assert tokenize(None) == tokenize(float("nan")) == tokenize(pd.NA) == []


def test_vocabulary_from_training_rows_only():
    train = pd.Series(["the cat sat", "the cat ran", "the dog"])
    tok = TokenIds(min_freq=1).fit(train)
    assert "zebra" not in tok.vocabulary_
    out = tok.transform(pd.Series(["the zebra"]))
    assert out[0, :3].tolist() == [tok.vocabulary_["the"], 1, 0]


def test_ids_by_frequency_with_alphabetical_ties():
    train = ["b a c", "b a d", "b e", "b"]
    tok = TokenIds(min_freq=1).fit(train)
    # b ×4, a ×2, then c, d, e once each in alphabetical order
    assert tok.vocabulary_ == {"b": 2, "a": 3, "c": 4, "d": 5, "e": 6}
    assert tok.vocab_size_ == 7
    assert TokenIds(min_freq=1).fit(train[::-1]).vocabulary_ == tok.vocabulary_


def test_min_freq_and_max_vocab():
    train = ["x x x y y z", "w"]  # x ×3, y ×2, w and z once
    assert TokenIds(min_freq=2).fit(train).vocabulary_ == {"x": 2, "y": 3}
    assert TokenIds(min_freq=3).fit(train).vocabulary_ == {"x": 2}
    assert TokenIds(min_freq=4).fit(train).vocabulary_ == {}
    small = TokenIds(min_freq=1, max_vocab=3).fit(train)
    assert small.vocabulary_ == {"x": 2, "y": 3, "w": 4} and small.vocab_size_ == 5
    assert small.transform(["z w y"])[0, :4].tolist() == [1, 4, 3, 0]


def test_padding_and_truncation():
    tok = TokenIds(max_len=3, min_freq=1).fit(["a b c d e", "a"])
    out = tok.transform(["a b c d e", "a", "", "b a"])
    assert out.dtype == np.int64 and out.shape == (4, 3)
    a, b, c = (tok.vocabulary_[t] for t in "abc")
    assert out.tolist() == [[a, b, c], [a, 0, 0], [0, 0, 0], [b, a, 0]]


def test_missing_values_are_empty():
    tok = TokenIds(max_len=4, min_freq=1).fit(pd.Series(["a b", None, np.nan]))
    assert tok.vocabulary_ == {"a": 2, "b": 3}
    out = tok.transform(pd.Series([None, np.nan, pd.NA, "b"], dtype=object))
    assert out.tolist() == [[0] * 4, [0] * 4, [0] * 4, [3, 0, 0, 0]]


def test_lowercase_option():
    assert TokenIds(min_freq=1).fit(["A a"]).vocabulary_ == {"a": 2}
    assert TokenIds(min_freq=1, lowercase=False).fit(["A a"]).vocabulary_ == {"A": 2, "a": 3}


def test_input_shapes_and_feature_names():
    frame = pd.DataFrame({"note": ["a b", "b"]})
    tok = TokenIds(max_len=2, min_freq=1).fit(frame)
    assert list(tok.get_feature_names_out()) == ["note_tok_0", "note_tok_1"]
    assert list(tok.get_feature_names_out(["other"])) == ["other_tok_0", "other_tok_1"]
    expected = tok.transform(frame)
    np.testing.assert_array_equal(tok.transform(frame["note"]), expected)
    np.testing.assert_array_equal(tok.transform(frame.to_numpy()), expected)
    np.testing.assert_array_equal(tok.transform(["a b", "b"]), expected)
    plain = TokenIds(max_len=2, min_freq=1).fit(np.array(["a b", "b"]))
    assert not hasattr(plain, "feature_names_in_") and plain.n_features_in_ == 1
    assert list(plain.get_feature_names_out()) == ["tok_0", "tok_1"]
    with pytest.raises(ValueError, match="one text column"):
        tok.transform(pd.DataFrame({"a": ["x"], "b": ["y"]}))


# --------------------------------------------------------------------------- preprocessor


def test_preprocessor_with_tokens():
    df = _frame()[["note", "y"]]
    train, test = df.iloc[:40], df.iloc[40:].copy()
    test.loc[test.index[0], "note"] = "tornado storm"
    schema, pre = _fit(train, text="tokens", max_tokens=6)
    out = pre.transform(coerce_features(test, schema))
    assert out.shape == (20, 6)
    assert list(pre.get_feature_names_out()) == [f"note_tok_{i}" for i in range(6)]
    tok = pre.named_transformers_["text_note"]
    assert isinstance(tok, TokenIds) and tok.max_len == 6
    assert out[0].tolist() == [1, tok.vocabulary_["storm"], 0, 0, 0, 0]  # 'tornado' only in the test rows
    assert np.array_equal(out, out.astype(np.int64))


def test_tokens_alongside_other_features_are_not_scaled():
    df = _frame()
    schema, pre = _fit(df, text="tokens", max_tokens=5)
    out = pre.transform(coerce_features(df, schema))
    names = list(pre.get_feature_names_out())
    assert out.dtype == np.float64 and len(names) == out.shape[1]
    token_cols = [i for i, n in enumerate(names) if "note_tok_" in n]
    assert len(token_cols) == 5
    ids = out[:, token_cols]
    assert np.array_equal(ids, np.round(ids)) and ids.min() >= 0 and ids[:, :5].max() >= 2


def test_tokens_skops_round_trip(tmp_path):
    df = _frame()
    schema, pre = _fit(df, text="tokens", max_tokens=8)
    path = tmp_path / "pre.skops"
    sio.dump(pre, path)
    assert "honing.data.text.TokenIds" in sio.get_untrusted_types(file=path)
    assert set(sio.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)
    loaded = sio.load(path, trusted=TRUSTED_TYPES)
    x = coerce_features(_frame(seed=1), schema)
    np.testing.assert_array_equal(loaded.transform(x), pre.transform(x))
    assert list(loaded.get_feature_names_out()) == list(pre.get_feature_names_out())
    assert loaded.named_transformers_["text_note"].vocabulary_ == pre.named_transformers_["text_note"].vocabulary_


def test_trust_list_is_exactly_what_skops_reports(tmp_path):
    """TRUSTED_TYPES lists exactly the untrusted types of fitted preprocessors (tfidf, tokens, pretrained)."""
    reported: set[str] = set()
    pretrained = (_frame()[["note", "y"]], {"text": "pretrained", "tokenizer": "builtin:minilm"})
    cases = [(_frame(), {"clean": {"missing": {"indicator": True}}}), (_frame(), {"text": "tokens"}), pretrained]
    for number, (df, kwargs) in enumerate(cases):
        _, pre = _fit(df, **kwargs)
        path = tmp_path / f"pre{number}.skops"
        sio.dump(pre, path)
        reported |= set(sio.get_untrusted_types(file=path))
    # the image step's type is checked by tests/data/test_image_pipeline.py
    assert reported == set(TRUSTED_TYPES) - {"honing.data.image_pixels.ImagePixels"}
