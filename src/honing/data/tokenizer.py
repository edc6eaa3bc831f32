"""A pretrained model's own tokenizer as a preprocessing step (``data.text: pretrained``).

:class:`PretrainedTokenizer` turns one text column into the token ids a pretrained text model
expects: each value is encoded with the model's special tokens (``[CLS] … [SEP]`` for BERT),
truncated to ``max_len`` (the final special token is kept) and right-padded with the tokenizer's
padding id.  Missing values (None, NaN) are empty text.  The ids equal those of
``transformers.AutoTokenizer(texts, truncation=True, max_length=max_len, padding="max_length")``.

The whole ``tokenizer.json`` text is a constructor parameter, so a fitted preprocessor carries
its tokenizer inside the bundle.  The fast :mod:`tokenizers` object is built from it on first use
and is not part of the saved state: :mod:`skops.io` saves and loads the step with only
``honing.data.tokenizer.PretrainedTokenizer`` as a trusted type.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from honing.data.text import column_values
from honing.errors import RecipeError

__all__ = ["PretrainedTokenizer"]

_PAD_TOKENS = ("[PAD]", "<pad>")
_BATCH = 4096  # rows per encode_batch call


class PretrainedTokenizer(TransformerMixin, BaseEstimator):
    """One text column → ``max_len`` token ids per row (int64), from a pretrained tokenizer.

    Parameters: ``tokenizer_json`` the whole text of a ``tokenizer.json`` file, ``max_len`` the
    ids kept per value, special tokens included.

    Fitted attributes: ``pad_id_`` (the tokenizer's padding id, else the id of ``[PAD]`` or
    ``<pad>``, else 0), ``vocab_size_`` (with added tokens: the embedding size the model needs),
    ``n_features_in_`` (1) and, when fitted on a one-column frame with a string column name,
    ``feature_names_in_``.
    """

    def __init__(self, tokenizer_json: str | None = None, max_len: int = 64) -> None:
        self.tokenizer_json = tokenizer_json
        self.max_len = max_len

    @classmethod
    def from_source(cls, spec: str, max_len: int, key: str = "data.tokenizer") -> PretrainedTokenizer:
        """The tokenizer of ``spec`` (builtin:minilm, a model folder or a tokenizer.json); RecipeError
        naming ``key`` when it cannot be read or ``max_len`` leaves no room for text."""
        from honing.pretrained_sources import tokenizer_file

        path = tokenizer_file(spec, key)
        try:
            step = cls(tokenizer_json=Path(path).read_text(encoding="utf-8"), max_len=max_len)
            tokenizer = step._tokenizer()
        except Exception as error:  # noqa: BLE001 - OSError, UnicodeDecodeError, or tokenizers' plain Exception
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise RecipeError(f"{key}: cannot read the tokenizer {path} ({reason})",
                              "point data.tokenizer at a valid tokenizer.json") from None
        special = _special_count(tokenizer)
        if int(max_len) <= special:
            raise RecipeError(
                f"data.max_tokens: {max_len} leaves no room for text after the tokenizer's {special} special tokens",
                f"set data.max_tokens above {special} (e.g. 64)",
            )
        return step

    def fit(self, X: Any, y: Any = None) -> PretrainedTokenizer:
        """Check the tokenizer and record the padding id and vocabulary size (nothing is learned)."""
        if self.tokenizer_json is None:
            raise ValueError("PretrainedTokenizer needs tokenizer_json (the text of a tokenizer.json)")
        if int(self.max_len) < 1:
            raise ValueError("PretrainedTokenizer needs max_len >= 1")
        self._values(X, fitting=True)
        tokenizer = self._tokenizer()
        self.pad_id_ = self._built[2]
        self.vocab_size_ = int(tokenizer.get_vocab_size(with_added_tokens=True))
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Token ids (n, max_len), special tokens included, right-padded with ``pad_id_``."""
        check_is_fitted(self, "pad_id_")
        texts = ["" if _is_missing(v) else str(v) for v in self._values(X, fitting=False)]
        width = int(self.max_len)
        out = np.full((len(texts), width), self.pad_id_, dtype=np.int64)
        tokenizer = self._tokenizer()
        for start in range(0, len(texts), _BATCH):
            for row, encoding in enumerate(tokenizer.encode_batch(texts[start:start + _BATCH]), start):
                ids = encoding.ids
                if len(ids) > width:  # too few places for the special tokens: keep the last one
                    ids = ids[: width - 1] + ids[-1:]
                out[row, : len(ids)] = ids
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``tok_0 … tok_{max_len-1}``, prefixed ``COLUMN_`` when the column name is known."""
        check_is_fitted(self, "pad_id_")
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", None)
        prefix = f"{input_features[0]}_" if input_features is not None and len(input_features) else ""
        return np.asarray([f"{prefix}tok_{i}" for i in range(int(self.max_len))], dtype=object)

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        """The parameters, with the tokenizer's length instead of its text."""
        size = "None" if self.tokenizer_json is None else f"<{len(self.tokenizer_json)} chars>"
        return f"PretrainedTokenizer(max_len={self.max_len}, tokenizer_json={size})"

    def __getstate__(self) -> dict[str, Any]:
        """The state without the built tokenizer (rebuilt from ``tokenizer_json`` on first use)."""
        state = dict(super().__getstate__())  # a copy: the instance keeps its built tokenizer
        state.pop("_built", None)
        return state

    def _tokenizer(self) -> Any:
        """The fast tokenizer, built once: truncation to ``max_len``, no padding (done here)."""
        built = self.__dict__.get("_built")
        if built is not None and built[0] == (self.tokenizer_json, int(self.max_len)):
            return built[1]
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(self.tokenizer_json)
        pad_id = _pad_id(tokenizer)  # before its own padding is turned off
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max(int(self.max_len), _special_count(tokenizer)))
        self._built = ((self.tokenizer_json, int(self.max_len)), tokenizer, pad_id)
        return tokenizer

    def _values(self, X: Any, fitting: bool) -> list[Any]:
        return column_values(self, X, fitting)


def _special_count(tokenizer: Any) -> int:
    """How many special tokens the tokenizer adds to one text."""
    processor = tokenizer.post_processor
    return int(processor.num_special_tokens_to_add(False)) if processor is not None else 0


def _pad_id(tokenizer: Any) -> int:
    """The tokenizer's padding id, else the id of [PAD] or <pad>, else 0."""
    padding = tokenizer.padding
    if padding and padding.get("pad_id") is not None:
        return int(padding["pad_id"])
    for token in _PAD_TOKENS:
        if (token_id := tokenizer.token_to_id(token)) is not None:
            return int(token_id)
    return 0


def _is_missing(value: Any) -> bool:
    """None, NaN, NaT or NA."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)
