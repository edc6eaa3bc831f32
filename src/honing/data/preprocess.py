"""Row cleaning, feature coercion and the scikit-learn preprocessor.

The same three steps run at training and at prediction time:

1. :func:`clean_rows` (training only) drops duplicate rows and rows without a target;
2. :func:`coerce_features` selects the schema's feature columns and gives each the type the
   preprocessor expects (numbers → float, categories → strings, dates → datetime64, text → str);
3. :func:`build_preprocessor` returns an unfitted :class:`~sklearn.compose.ColumnTransformer`
   that imputes, scales and encodes those columns into one dense float matrix.

Text columns become TF-IDF features (``data.text: tfidf``), are dropped (``drop``), or become
``data.max_tokens`` token ids each (``tokens``, :class:`honing.data.text.TokenIds`: a vocabulary
fitted on the training split; 0 = padding, 1 = unknown; neither imputed nor scaled, missing text
is all padding).  Token-id columns hold integer values in the float output (the output is int64
when they are its only columns).  Sequence models (rnn / lstm / gru / transformer) read every
column of the matrix as a token id, so with ``tokens`` the text columns should be the only
features: any other feature column (numbers, categories, dates) would be mixed into the ids —
drop those columns (``data.drop``) for such models.

``data.text: pretrained`` turns the one text column (no other feature column may remain) into the
ids of a pretrained model's own tokenizer (``data.tokenizer``,
:class:`honing.data.tokenizer.PretrainedTokenizer`); the output is int64 and
:func:`pretrained_tokenizer` finds that step in the fitted preprocessor.

An image column (paths to image files) becomes its pixels, ``C*H*W`` float32 values per row
(:class:`honing.data.image_pixels.ImagePixels`, as ``data.image`` says; neither imputed nor scaled);
it must be the only feature column.

Everything in a fitted preprocessor can be saved with :func:`skops.io.dump` and loaded with
``skops.io.load(path, trusted=TRUSTED_TYPES)``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pdt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, RobustScaler, StandardScaler

from honing.data.image_pixels import image_preprocessor
from honing.data.schema import Schema
from honing.data.text import TokenIds
from honing.data.tokenizer import PretrainedTokenizer
from honing.errors import DataError, RecipeError
from honing.recipe import DataConfig

#: Types outside skops' default trust list found in a fitted preprocessor (checked by a test).
TRUSTED_TYPES: list[str] = [
    "honing.data.preprocess.DatetimeFeatures",
    "honing.data.text.TokenIds",
    "honing.data.tokenizer.PretrainedTokenizer",
    "honing.data.image_pixels.ImagePixels",
    "numpy.dtype",
]

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}
_TEXT_MAX_FEATURES = 500


# --------------------------------------------------------------------------- rows


def clean_rows(df: pd.DataFrame, target: str | None, duplicates: str) -> tuple[pd.DataFrame, list[str]]:
    """Drop exact duplicate rows (``duplicates == "drop"``) and rows whose target is missing."""
    if duplicates not in ("drop", "keep"):
        raise DataError(f"data.clean.duplicates: unknown value '{duplicates}'", "use drop or keep")
    notes = []
    if duplicates == "drop":
        dup = df.duplicated()
        if (count := int(dup.sum())) > 0:
            df = df.loc[~dup]
            notes.append(f"dropped {_rows(count)} that duplicated earlier rows")
    if target is not None and target in df.columns:
        missing = df[target].isna()
        if (count := int(missing.sum())) > 0:
            df = df.loc[~missing]
            notes.append(f"dropped {_rows(count)} whose target '{target}' is missing")
    return df.reset_index(drop=True), notes


def _rows(count: int) -> str:
    """"N row(s)" with the right plural."""
    return f"{count} row{'s' if count != 1 else ''}"


# --------------------------------------------------------------------------- columns


def feature_names(schema: Schema) -> list[str]:
    """The schema's feature names; DataError when none are left."""
    names = schema.feature_names
    if not names:
        raise DataError(
            "no feature columns left (every column is the target, an identifier or dropped)",
            "check data.drop and data.types (identifier columns are dropped)",
        )
    return names


def extra_columns(df: pd.DataFrame, schema: Schema) -> list[str]:
    """Columns of ``df`` the schema has never seen (neither a schema column nor in data.drop)."""
    known = {c.name for c in schema.columns} | set(schema.dropped)
    return [str(c) for c in df.columns if str(c) not in known]


def coerce_features(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The schema's feature columns of ``df``, in schema order, each cast for the preprocessor."""
    names = feature_names(schema)
    lacking = [n for n in names if n not in df.columns]
    if lacking:
        raise DataError(
            f"input lacks columns: {', '.join(lacking)}",
            "the data must have every feature column the model was trained on",
        )
    out = {}
    for name in names:
        kind = schema.column(name).kind
        out[name] = _COERCERS[kind](df[name])
        if kind in _UNPARSED_WORDS and (message := _unparsed_message(name, df[name], out[name], kind)):
            warnings.warn(message, UserWarning, stacklevel=2)
        if kind == "numeric" and (message := _infinite_message(name, out[name])):
            out[name] = out[name].where(np.isfinite(out[name]))
            warnings.warn(message, UserWarning, stacklevel=2)
    return pd.DataFrame(out, index=df.index)


_UNPARSED_WORDS = {"numeric": ("number", "numbers"), "datetime": ("date", "dates")}


def _unparsed_message(name: str, raw: pd.Series, coerced: pd.Series, kind: str) -> str | None:
    """A one-line warning when values that were present (not blank) became missing, else None."""
    if kind == "numeric" and pdt.is_numeric_dtype(raw):
        return None  # numbers (and booleans) become floats without losing a value
    candidates = raw[coerced.isna().to_numpy() & raw.notna().to_numpy()]
    lost = candidates[~candidates.map(_is_blank).to_numpy(dtype=bool)]
    count = len(lost)
    if count == 0:
        return None
    example = " ".join(str(lost.iloc[0]).split())
    example = example if len(example) <= 40 else example[:39] + "…"
    one, many = _UNPARSED_WORDS[kind]
    values = f"1 value is not a {one}" if count == 1 else f"{count} values are not {many}"
    why = (" (a number's unit, seconds or milliseconds since 1970, cannot be told: write dates, e.g. 2021-06-20)"
           if kind == "datetime" and _is_number(lost.iloc[0]) else "")
    return f"column '{name}': {values} (e.g. '{example}'); treated as missing{why}"


def _is_number(value: Any) -> bool:
    """A number, or text that reads as one."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _infinite_message(name: str, values: pd.Series) -> str | None:
    """A one-line warning when a numeric column holds infinities (e.g. ``inf``, or ``1e400`` read as
    one), which become missing values: no imputer or scaler takes them."""
    count = int(np.isinf(values.to_numpy()).sum())
    if count == 0:
        return None
    what = "1 value is infinite" if count == 1 else f"{count} values are infinite"
    return f"column '{name}': {what} (e.g. inf, or a number too large for float64); treated as missing"


def _is_blank(value: Any) -> bool:
    """Missing, or a string of only whitespace."""
    return _is_missing(value) or (isinstance(value, str) and not value.strip())


def _to_float(s: pd.Series) -> pd.Series:
    """Numbers as float64 (durations as seconds, whatever their unit); anything unparsable becomes NaN."""
    if s.dtype == np.float64:
        return s
    if pdt.is_timedelta64_dtype(s):
        return s.dt.total_seconds().astype("float64")
    if pdt.is_bool_dtype(s) or (isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu"):
        return s.astype("float64")
    if not pdt.is_numeric_dtype(s):
        s = s.map(lambda v: v.strip().replace("\u2212", "-") if isinstance(v, str) else v)
    return pd.to_numeric(s, errors="coerce").astype("float64")


def _to_category(s: pd.Series) -> pd.Series:
    """Values as strings (1, 1.0 and "1" → "1"; True → "true"); missing stays NaN."""
    return pd.Series([_category_string(v) for v in s.tolist()], index=s.index, dtype=object)


def _to_boolean(s: pd.Series) -> pd.Series:
    """Yes/no values as "true"/"false" (other values kept as strings); missing stays NaN."""
    values = [_category_string(v) for v in s.tolist()]
    out = []
    for v in values:
        low = v.lower() if isinstance(v, str) else v
        out.append("true" if low in _TRUE else "false" if low in _FALSE else v)
    return pd.Series(out, index=s.index, dtype=object)


def _category_string(value: Any) -> Any:
    """A canonical string for one category value (NaN for missing)."""
    if _is_missing(value):
        return np.nan
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value).strip()


def _is_missing(value: Any) -> bool:
    """None, NaN, NaT or NA."""
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _to_datetime(s: pd.Series) -> pd.Series:
    """Datetimes (naive, UTC for time-zone-aware input); unparsable values become NaT.  Numbers are read
    as their text, as in a file read as text: 2017 is a year and 20210620 a date, while a timestamp such
    as 1624147200 is unparsable (its unit, seconds or milliseconds since 1970, cannot be told)."""
    if pdt.is_datetime64_any_dtype(s):
        parsed = s
    elif pdt.is_numeric_dtype(s) and not pdt.is_bool_dtype(s):
        return _to_datetime(pd.Series([_whole_text(v) for v in s.tolist()], index=s.index, dtype=object))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(s, errors="coerce", format="mixed", utc=True)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def _whole_text(value: Any) -> Any:
    """A whole number as its digits (2017.0 → "2017"), anything else missing."""
    return str(int(value)) if not _is_missing(value) and float(value).is_integer() else None


def _to_image_path(s: pd.Series) -> pd.Series:
    """Image paths as stripped strings, encoded images (bytes) as they are; missing stays None
    (ImagePixels names the row)."""
    return pd.Series([v if isinstance(v, bytes) else None if _is_blank(v) else str(v).strip() for v in s.tolist()],
                     index=s.index, dtype=object)


def _to_text(s: pd.Series) -> pd.Series:
    """Strings, with missing values as the empty string."""
    return pd.Series(["" if _is_missing(v) else str(v) for v in s.tolist()], index=s.index, dtype=object)


_COERCERS = {
    "numeric": _to_float,
    "categorical": _to_category,
    "boolean": _to_boolean,
    "datetime": _to_datetime,
    "text": _to_text,
    "image": _to_image_path,
}


# --------------------------------------------------------------------------- transformers


class DatetimeFeatures(TransformerMixin, BaseEstimator):
    """Datetime columns → year, month, day, dayofweek, [hour,] and a timestamp in seconds.

    ``hour`` is produced for a column only when its training values have a non-zero time of day.
    Missing or unparsable dates give NaN in every output.
    """

    def fit(self, X: Any, y: Any = None) -> DatetimeFeatures:
        """Remember the column names and whether each has a time of day."""
        frame = self._frame(X)
        self.columns_ = [str(c) for c in getattr(X, "columns", range(frame.shape[1]))]
        self.with_hour_ = [bool((frame[c].dt.hour.fillna(0) != 0).any()) for c in frame.columns]
        self.n_features_in_ = len(self.columns_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The date parts and timestamp of every column, as floats (NaN for missing)."""
        frame = self._frame(X)
        if frame.shape[1] != len(self.columns_):
            raise ValueError(f"DatetimeFeatures was fitted on {len(self.columns_)} columns, got {frame.shape[1]}")
        blocks = []
        for position, with_hour in enumerate(self.with_hour_):
            t = frame.iloc[:, position]
            parts = [t.dt.year, t.dt.month, t.dt.day, t.dt.day_of_week] + ([t.dt.hour] if with_hour else [])
            parts.append((t - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1))
            blocks.extend(p.to_numpy(dtype="float64", na_value=np.nan) for p in parts)
        return np.column_stack(blocks) if blocks else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``COLUMN_PART`` for every output column."""
        names = []
        for column, with_hour in zip(self.columns_, self.with_hour_):
            parts = ["year", "month", "day", "dayofweek"] + (["hour"] if with_hour else []) + ["timestamp"]
            names.extend(f"{column}_{p}" for p in parts)
        return np.asarray(names, dtype=object)

    @staticmethod
    def _frame(X: Any) -> pd.DataFrame:
        """``X`` as a frame of naive datetime64 columns."""
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
        return pd.DataFrame({i: _to_datetime(frame.iloc[:, i]).reset_index(drop=True) for i in range(frame.shape[1])})


def build_preprocessor(schema: Schema, cfg: DataConfig) -> ColumnTransformer:
    """An unfitted ColumnTransformer for :func:`coerce_features` output → dense float matrix."""
    feature_names(schema)
    if cfg.reduce:  # data.reduce works on numeric features only (honing.data.reduce)
        from honing.data.reduce import check_reduce
        check_reduce(schema, cfg)
    if cfg.text == "pretrained":
        return _pretrained_preprocessor(schema, cfg)
    by_kind: dict[str, list[str]] = {}
    for column in schema.features:
        by_kind.setdefault(column.kind, []).append(column.name)
    if by_kind.get("image"):
        return image_preprocessor(by_kind["image"][0], schema.feature_names, cfg.image)
    steps: list[tuple[str, Any, Any]] = []
    if by_kind.get("numeric"):
        steps.append(("numeric", _numeric_pipeline(cfg), by_kind["numeric"]))
    categorical = by_kind.get("categorical", []) + by_kind.get("boolean", [])
    if categorical:
        steps.append(("categorical", _categorical_pipeline(cfg), categorical))
        if cfg.clean.missing.indicator:
            indicator = MissingIndicator(features="missing-only", error_on_new=False)
            steps.append(("categorical_missing", indicator, categorical))
    if by_kind.get("datetime"):
        datetime_steps = [("parts", DatetimeFeatures()), ("impute", _imputer("median", None, False))]
        steps.append(("datetime", Pipeline(datetime_steps + _scaler(cfg)), by_kind["datetime"]))
    if cfg.text == "tfidf":
        for name in by_kind.get("text", []):
            steps.append((_step_name(f"text_{name}", steps), _tfidf(), name))
    elif cfg.text == "tokens":
        for name in by_kind.get("text", []):
            steps.append((_step_name(f"text_{name}", steps), TokenIds(max_len=cfg.max_tokens), [name]))
    if not steps:
        raise DataError(
            "no feature columns left (only text columns remain and data.text is 'drop')",
            "set data.text: tfidf or tokens, or check data.drop and data.types",
        )
    columns = ColumnTransformer(
        steps,
        remainder="drop",
        sparse_threshold=0.0,
        verbose_feature_names_out=_names_may_clash(schema, cfg, by_kind),
    )
    if cfg.reduce:  # data.reduce: a PCA step after the columns (honing.data.reduce)
        from honing.data.reduce import with_reduction
        return with_reduction(columns, cfg)
    return columns


def _pretrained_preprocessor(schema: Schema, cfg: DataConfig) -> ColumnTransformer:
    """``data.text: pretrained``: the one text column → the pretrained tokenizer's ids (int64)."""
    if cfg.tokenizer is None:
        raise RecipeError(
            "data.tokenizer: data.text is 'pretrained' but no tokenizer is set",
            "set model.pretrained to a text model, or data.tokenizer (builtin:minilm, a model folder, a tokenizer.json)",
        )
    text = [c.name for c in schema.features if c.kind == "text"]
    others = [c.name for c in schema.features if c.kind != "text"]
    if not text:
        raise DataError(
            "data.text: pretrained needs a text column, and no feature column is text",
            "mark the text column with data.types: {COLUMN: text}",
        )
    if len(text) > 1:
        raise DataError(
            f"data.text: pretrained takes one text column, found {len(text)}: {', '.join(text)}",
            "keep one and list the others in data.drop",
        )
    if others:
        raise DataError(
            f"data.text: pretrained takes only the text column '{text[0]}'; other feature columns: {', '.join(others)}",
            "list them in data.drop",
        )
    step = PretrainedTokenizer.from_source(cfg.tokenizer, cfg.max_tokens)
    name = _step_name(f"text_{text[0]}", [])
    return ColumnTransformer([(name, step, text)], remainder="drop", sparse_threshold=0.0,
                             verbose_feature_names_out=False)


def pretrained_tokenizer(preprocessor: Any) -> PretrainedTokenizer | None:
    """The fitted :class:`PretrainedTokenizer` inside a fitted ColumnTransformer (None if it has none)."""
    if isinstance(preprocessor, PretrainedTokenizer):
        return preprocessor
    for _, step, _ in getattr(preprocessor, "transformers_", []):
        if isinstance(step, Pipeline):
            step = step.steps[-1][1]
        if isinstance(step, PretrainedTokenizer):
            return step
    return None


def _names_may_clash(schema: Schema, cfg: DataConfig, by_kind: dict[str, list[str]]) -> bool:
    """Whether unprefixed output names could repeat (always assumed with TF-IDF vocabularies)."""
    if cfg.text == "tfidf" and by_kind.get("text"):
        return True
    categorical = by_kind.get("categorical", []) + by_kind.get("boolean", [])
    names = list(by_kind.get("numeric", []))
    for name in categorical:
        if cfg.encode == "ordinal":
            names.append(name)
            continue
        column = schema.column(name)
        coerce = _COERCERS[column.kind]
        values = list(coerce(pd.Series(column.categories or [], dtype=object)).dropna())
        names += [f"{name}_{v}" for v in dict.fromkeys(values + ["missing", "infrequent_sklearn"])]
    if cfg.clean.missing.indicator:
        names += [f"missingindicator_{n}" for n in by_kind.get("numeric", []) + categorical]
    for name in by_kind.get("datetime", []):
        names += [f"{name}_{p}" for p in ("year", "month", "day", "dayofweek", "hour", "timestamp")]
    if cfg.text in ("tokens", "pretrained"):
        names += [f"{name}_tok_{i}" for name in by_kind.get("text", []) for i in range(cfg.max_tokens)]
    return len(names) != len(set(names))


def _step_name(wanted: str, steps: list[tuple[str, Any, Any]]) -> str:
    """``wanted`` made valid for a ColumnTransformer: no ``__``, not already taken."""
    base = name = wanted.replace("__", "_")
    taken = {step[0] for step in steps}
    number = 2
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    return name


def _numeric_pipeline(cfg: DataConfig) -> Pipeline:
    """Impute (optionally with indicator columns), then scale."""
    missing = cfg.clean.missing
    fill = _numeric_fill(missing.fill_value) if missing.numeric == "constant" else None
    return Pipeline([("impute", _imputer(missing.numeric, fill, missing.indicator))] + _scaler(cfg))


def _categorical_pipeline(cfg: DataConfig) -> Pipeline:
    """Impute, then one-hot or ordinal encode (unseen values never raise)."""
    missing = cfg.clean.missing
    fill = None
    if missing.categorical == "constant":
        fill = "missing" if missing.fill_value is None else _category_string(missing.fill_value)
    if cfg.encode == "ordinal":
        encoder: Any = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    else:
        encoder = OneHotEncoder(
            handle_unknown="infrequent_if_exist", max_categories=cfg.max_categories, sparse_output=False
        )
    return Pipeline([("impute", _imputer(missing.categorical, fill, False)), ("encode", encoder)])


def _imputer(strategy: str, fill: Any, indicator: bool) -> SimpleImputer:
    """A SimpleImputer that keeps all-missing columns (stable output width)."""
    return SimpleImputer(strategy=strategy, fill_value=fill, add_indicator=indicator, keep_empty_features=True)


def _numeric_fill(value: Any) -> float:
    """The numeric constant for imputation: ``fill_value`` when it is a number, else 0."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _scaler(cfg: DataConfig) -> list[tuple[str, Any]]:
    """The scaling step for ``cfg.scale`` (none for "none")."""
    return [("scale", _SCALERS[cfg.scale]())] if cfg.scale in _SCALERS else []


def _tfidf() -> TfidfVectorizer:
    """TF-IDF features for one text column (at most 500 terms)."""
    return TfidfVectorizer(max_features=_TEXT_MAX_FEATURES, sublinear_tf=True, strip_accents="unicode", dtype=np.float64)
