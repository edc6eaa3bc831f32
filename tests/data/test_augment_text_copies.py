"""augment_training_text: a recipe `text` step appends augmented copies of the training rows."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from honing.data.augment_text import TEXT_STEP_DEFAULTS, augment_training_text, check_text_step
from honing.errors import RecipeError

SENTENCES = ["the movie was really good and the story was great", "a terrible film with a boring plot",
             "I love this book so much", "one", "quick brown fox jumps over the lazy dog today"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"review": SENTENCES, "title": [f"title {i} of the list here" for i in range(5)],
                         "stars": [5, 1, 4, 3, 2], "label": ["pos", "neg", "pos", "neg", "pos"]},
                        index=[10, 11, 12, 13, 14])


def test_copies_are_appended_after_the_unchanged_originals():
    frame = _frame()
    before = frame.copy()
    step = {"name": "text", "swap": 0.5, "deletion": 0, "synonyms": 0, "copies": 3}
    out = augment_training_text(frame, ["review"], step, seed=0)
    assert len(out) == 4 * len(frame)
    assert list(out.index) == list(range(20))
    pd.testing.assert_frame_equal(frame, before)  # the input is not changed
    pd.testing.assert_frame_equal(out.iloc[:5].set_axis(frame.index), frame)
    for k in range(1, 4):
        copy = out.iloc[5 * k: 5 * (k + 1)]
        for column in ("title", "stars", "label"):  # the other columns are copied as they are
            assert copy[column].tolist() == frame[column].tolist()
        for original, new in zip(frame["review"], copy["review"], strict=True):
            assert Counter(original.split()) == Counter(new.split())  # swap keeps the words
    assert out.dtypes.equals(frame.dtypes)


def test_deletion_keeps_words_in_order_and_never_empties_a_row():
    frame = _frame()
    out = augment_training_text(frame, ["review"], {"name": "text", "deletion": 0.5, "swap": 0, "synonyms": 0,
                                                     "copies": 2}, seed=1)
    for r, original in enumerate(SENTENCES):
        for k in (1, 2):
            words = out["review"].iloc[5 * k + r].split()
            assert 1 <= len(words) <= len(original.split())
            it = iter(original.split())
            assert all(w in it for w in words)  # a subsequence of the original


def test_synonyms_come_from_the_table():
    from honing.data.augment_text import SYNONYMS

    frame = pd.DataFrame({"t": ["good movie", "great film"], "y": [1, 0]})
    out = augment_training_text(frame, ["t"], {"name": "text", "synonyms": 1.0, "deletion": 0, "swap": 0}, seed=0)
    for original, new in zip(frame["t"], out["t"].iloc[2:], strict=True):
        for a, b in zip(original.split(), new.split(), strict=True):
            assert b in SYNONYMS[a]


def test_every_text_column_and_copy_draws_its_own_changes():
    frame = pd.DataFrame({"a": [SENTENCES[0]] * 4, "b": [SENTENCES[0]] * 4})
    out = augment_training_text(frame, ["a", "b"], {"name": "text", "swap": 0.5, "copies": 2}, seed=0)
    assert out["a"].iloc[4:].tolist() != out["b"].iloc[4:].tolist()
    assert out["a"].iloc[4:8].tolist() != out["a"].iloc[8:12].tolist()
    assert len(set(out["a"].iloc[4:])) > 1  # rows differ from one another too


def test_deterministic_for_a_seed():
    step = {"name": "text", "deletion": 0.2, "swap": 0.2, "synonyms": 0.5, "copies": 2}
    a = augment_training_text(_frame(), ["review", "title"], step, seed=5)
    pd.testing.assert_frame_equal(a, augment_training_text(_frame(), ["review", "title"], step, seed=5))
    assert not a.equals(augment_training_text(_frame(), ["review", "title"], step, seed=6))


def test_defaults_and_missing_values():
    frame = pd.DataFrame({"t": pd.Series(["good day for a walk", None, ""], dtype="str"), "y": [1, 2, 3]})
    out = augment_training_text(frame, ["t"], {"name": "text"}, seed=0)
    assert len(out) == 2 * len(frame)  # copies: 1
    assert out["t"].dtype == frame["t"].dtype
    assert pd.isna(out["t"].iloc[4]) and out["t"].iloc[5] == ""
    assert check_text_step({"name": "text"}) == TEXT_STEP_DEFAULTS
    assert TEXT_STEP_DEFAULTS["copies"] == 1


def test_empty_frame_gives_an_empty_frame():
    frame = _frame().iloc[:0]
    out = augment_training_text(frame, ["review"], {"name": "text", "copies": 2}, seed=0)
    assert len(out) == 0 and list(out.columns) == list(frame.columns)


@pytest.mark.parametrize("step, words", [
    ({"name": "text", "deletoin": 0.1}, ["data.augment[3].deletoin", "'deletion'"]),
    ({"name": "text", "swap": 1.5}, ["data.augment[3].swap", "between 0 and 1"]),
    ({"name": "text", "synonyms": "lots"}, ["data.augment[3].synonyms"]),
    ({"name": "text", "copies": 0}, ["data.augment[3].copies", "whole number"]),
    ({"name": "text", "copies": 1.5}, ["data.augment[3].copies"]),
    ({"name": "text", "copies": True}, ["data.augment[3].copies"]),
    ({"name": "hflip"}, ["data.augment[3]", "text step"]),
])
def test_bad_steps_raise_recipe_errors(step, words):
    with pytest.raises(RecipeError) as err:
        augment_training_text(_frame(), ["review"], step, seed=0, index=3)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_a_text_step_needs_a_text_column():
    with pytest.raises(RecipeError, match=r"data\.augment\[0\]\.name: a text step needs a text column"):
        augment_training_text(_frame(), [], {"name": "text"}, seed=0, index=0)
    with pytest.raises(ValueError, match="nope"):
        augment_training_text(_frame(), ["nope"], {"name": "text"}, seed=0)


def test_seed_may_be_a_numpy_integer():
    out = augment_training_text(_frame(), ["review"], {"name": "text"}, seed=np.int64(3))
    assert len(out) == 10
