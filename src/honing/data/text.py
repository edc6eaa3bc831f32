"""Token ids for free-text columns (``data.text: tokens``), the input of sequence models.

:class:`TokenIds` splits text with one simple regular expression, :data:`TOKEN_PATTERN`
(``\\w+|[^\\w\\s]``: runs of word characters, and every other non-space character on its own, so
``"Don't stop!"`` → ``don``, ``'``, ``t``, ``stop``, ``!``), after lowercasing by default.

The vocabulary is fitted on the training rows only.  Id 0 is padding, id 1 the unknown token;
then come the tokens seen at least ``min_freq`` times, most frequent first (ties in alphabetical
order, so the ids are deterministic), at most ``max_vocab`` of them.  :meth:`TokenIds.transform`
gives the ids of each value's first ``max_len`` tokens, right-padded with 0.  Missing values
(None, NaN) are empty text: all padding.

The fitted state is a plain ``dict[str, int]`` and ints, which :mod:`skops.io` saves and loads
without any trusted type other than ``honing.data.text.TokenIds`` itself.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

#: Words (runs of ``\w``) and single punctuation marks / symbols; whitespace separates.
TOKEN_PATTERN = r"\w+|[^\w\s]"
PAD_ID = 0
UNKNOWN_ID = 1
_TOKEN_RE = re.compile(TOKEN_PATTERN)

__all__ = ["PAD_ID", "TOKEN_PATTERN", "UNKNOWN_ID", "TokenIds", "column_values", "tokenize"]


def tokenize(text: Any, lowercase: bool = True) -> list[str]:
    """The tokens of one value (:data:`TOKEN_PATTERN`); missing values have none."""
    if text is None or text is pd.NA or text is pd.NaT or (isinstance(text, float) and math.isnan(text)):
        return []
    text = str(text)
    return _TOKEN_RE.findall(text.lower() if lowercase else text)


class TokenIds(TransformerMixin, BaseEstimator):
    """One text column → ``max_len`` token ids per row (int64; 0 = padding, 1 = unknown).

    Parameters: ``max_len`` tokens kept per value (longer text is truncated), ``min_freq`` the
    fewest training occurrences for a token to get its own id, ``max_vocab`` the most tokens in
    the vocabulary (not counting padding and unknown), ``lowercase`` before tokenizing.

    Fitted attributes: ``vocabulary_`` (token → id, ids from 2), ``vocab_size_``
    (``len(vocabulary_) + 2``: the embedding size a model needs), ``n_features_in_`` (1) and, when
    fitted on a one-column frame with a string column name, ``feature_names_in_``.
    """

    def __init__(self, max_len: int = 64, min_freq: int = 2, max_vocab: int = 20000, lowercase: bool = True) -> None:
        self.max_len = max_len
        self.min_freq = min_freq
        self.max_vocab = max_vocab
        self.lowercase = lowercase

    def fit(self, X: Any, y: Any = None) -> TokenIds:
        """Build the vocabulary from the rows of ``X`` (the training split)."""
        if int(self.max_len) < 1 or int(self.min_freq) < 1 or int(self.max_vocab) < 0:
            raise ValueError("TokenIds needs max_len >= 1, min_freq >= 1 and max_vocab >= 0")
        counts: Counter[str] = Counter()
        for value in self._values(X, fitting=True):
            counts.update(tokenize(value, self.lowercase))
        kept = sorted((item for item in counts.items() if item[1] >= self.min_freq), key=lambda kv: (-kv[1], kv[0]))
        self.vocabulary_ = {token: index + 2 for index, (token, _) in enumerate(kept[: int(self.max_vocab)])}
        self.vocab_size_ = len(self.vocabulary_) + 2
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Token ids (n, max_len): the first ``max_len`` tokens of each value, right-padded with 0."""
        check_is_fitted(self, "vocabulary_")
        values = self._values(X, fitting=False)
        width = int(self.max_len)
        out = np.zeros((len(values), width), dtype=np.int64)
        vocabulary = self.vocabulary_
        for row, value in enumerate(values):
            ids = [vocabulary.get(token, UNKNOWN_ID) for token in tokenize(value, self.lowercase)[:width]]
            out[row, : len(ids)] = ids
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``tok_0 … tok_{max_len-1}``, prefixed ``COLUMN_`` when the column name is known."""
        check_is_fitted(self, "vocabulary_")
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", None)
        prefix = f"{input_features[0]}_" if input_features is not None and len(input_features) else ""
        return np.asarray([f"{prefix}tok_{i}" for i in range(int(self.max_len))], dtype=object)

    def _values(self, X: Any, fitting: bool) -> list[Any]:
        return column_values(self, X, fitting)


def column_values(estimator: BaseEstimator, X: Any, fitting: bool) -> list[Any]:
    """The values of a 1-D array / Series / list, or of a one-column frame / 2-D array, for a
    transformer of one text column (``estimator``).

    When fitting, also records ``n_features_in_`` and (for a frame) ``feature_names_in_`` on it.
    """
    what = type(estimator).__name__
    name = None
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise ValueError(f"{what} takes one text column, got {X.shape[1]}")
        name = X.columns[0]
        values = X.iloc[:, 0].tolist()
    elif isinstance(X, pd.Series):
        values = X.tolist()
    else:
        array = np.asarray(X if hasattr(X, "__len__") else list(X), dtype=object)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ValueError(f"{what} takes one text column, got an array of shape {array.shape}")
        values = array.tolist()
    if fitting:
        estimator.n_features_in_ = 1
        if isinstance(name, str):
            estimator.feature_names_in_ = np.asarray([name], dtype=object)
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    return values


def token_vocab_size(preprocessor: Any) -> int | None:
    """The embedding size the token ids of a fitted ColumnTransformer need: the largest ``vocab_size_``
    of its :class:`TokenIds` steps (None without one)."""
    sizes = [step.vocab_size_ for _, step, _ in getattr(preprocessor, "transformers_", []) if isinstance(step, TokenIds)]
    return max(sizes, default=None)
