"""A fitted preprocessor's ``transform`` redone with numpy and dict look-ups, for serving.

scikit-learn validates its input again in every step of a fitted ColumnTransformer (``check_array``;
OneHotEncoder rebuilds a set of every known category per call): milliseconds for one row.
:func:`compile_transform` reads the fitted attributes once; :meth:`FastTransform.transform` then gives
the same dense float64 matrix (same columns, order and values) with array arithmetic and one dict per
encoded feature.  Supported, else :func:`compile_transform` returns None (the caller keeps sklearn):

* a ColumnTransformer fitted on a DataFrame, without ``transformer_weights``, whose transformers are
  ``"drop"``, ``"passthrough"`` (float64 columns; either remainder) or a Pipeline of the steps below;
* numbers: SimpleImputer (NaN marker; any strategy, ``keep_empty_features``, ``add_indicator``), then
  StandardScaler, MinMaxScaler (``clip`` too) or RobustScaler;
* categories: SimpleImputer on objects, then OneHotEncoder (``drop=None``; unknown values ignored or
  infrequent; infrequent categories from ``max_categories`` / ``min_frequency``) or OrdinalEncoder
  (``use_encoded_value``); MissingIndicator (``features="all"`` or ``error_on_new=False``) on raw columns.

Not supported: dates (DatetimeFeatures), text (TF-IDF, token ids, tokenizers), images, ``drop=…``,
encoders that raise on unknown values, any other step.  Inputs left to scikit-learn, so that results
and errors stay its own: anything but a non-empty DataFrame, missing columns, numeric columns that are
not float64 or hold ±inf, extension dtypes but pandas' ``str``, and values a step raises on (pd.NA,
unhashable values).  :func:`compile_transform` checks itself once against scikit-learn on a probe frame
(every known category, NaN, None, an unseen value, assorted numbers) and gives None on any mismatch.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

Op = Callable[[np.ndarray], np.ndarray]
_UNSEEN = "\x00honing-unseen-category\x00"
_PROBE_NUMBERS = [np.nan, 0.0, 1.0, -1.0, 2.5, -3.75, 1e3, 0.125]
_PROBE_VALUES = 1000


class _Unsupported(Exception):
    """A fitted step that the fast path does not reproduce."""


class _Fallback(Exception):
    """An input that the fast path leaves to scikit-learn."""


@dataclass
class _Block:
    """One transformer: its input columns (read as numbers or as objects), its steps, its output slice."""

    columns: list[str]
    numeric: bool
    ops: list[Op]
    out: slice


class FastTransform:
    """``preprocessor.transform`` without scikit-learn's per-call validation (see the module doc)."""

    def __init__(self, preprocessor: Any, blocks: list[_Block], width: int):
        self.preprocessor = preprocessor
        self.blocks = blocks
        self.width = width
        self.fallbacks = 0  #: calls handed to scikit-learn (inputs outside the fast path)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The preprocessed rows of ``frame`` as a dense float64 matrix."""
        try:
            return self._fast(frame)
        except Exception:  # noqa: BLE001 - anything unusual: scikit-learn decides (result or error)
            self.fallbacks += 1
            return self.reference(frame)

    def reference(self, frame: pd.DataFrame) -> np.ndarray:
        """scikit-learn's own result (dense), which :meth:`transform` reproduces."""
        X = self.preprocessor.transform(frame)
        return X.toarray() if hasattr(X, "toarray") else np.asarray(X)

    def _fast(self, frame: pd.DataFrame) -> np.ndarray:
        if not isinstance(frame, pd.DataFrame) or len(frame) == 0:
            raise _Fallback("not a non-empty DataFrame")
        out = np.empty((len(frame), self.width), dtype=np.float64)
        for block in self.blocks:
            X = _read(frame, block.columns, block.numeric)
            for op in block.ops:
                X = op(X)
            out[:, block.out] = X
        return out


def compile_transform(preprocessor: Any) -> FastTransform | None:
    """A :class:`FastTransform` for a fitted ColumnTransformer, or None when any part is unsupported."""
    if not isinstance(preprocessor, ColumnTransformer) or not hasattr(preprocessor, "transformers_"):
        return None
    try:
        fast = _compile(preprocessor)
    except (_Unsupported, AttributeError, KeyError, TypeError, ValueError):
        return None
    return fast if _agrees(fast) else None


# --------------------------------------------------------------------------- compiling


def _compile(ct: ColumnTransformer) -> FastTransform:
    if getattr(ct, "transformer_weights", None) or not hasattr(ct, "feature_names_in_"):
        raise _Unsupported("weights, or fitted without column names")
    names = [str(n) for n in ct.feature_names_in_]
    blocks, width = [], 0
    for name, transformer, columns in ct.transformers_:
        out = ct.output_indices_[name]
        if (isinstance(transformer, str) and transformer == "drop") or out.stop == out.start:
            continue
        cols = _column_names(columns, names)
        numeric, ops = _compile_steps(_steps(transformer))
        blocks.append(_Block(cols, numeric, ops, out))
        width = max(width, out.stop)
    if sum(b.out.stop - b.out.start for b in blocks) != width:
        raise _Unsupported("output slices do not tile the output")
    return FastTransform(ct, blocks, width)


def _column_names(columns: Any, names: list[str]) -> list[str]:
    """A transformer's columns as names (the fitted remainder may list positions)."""
    if isinstance(columns, (str, int, slice)) or callable(columns):
        raise _Unsupported("only lists of columns")  # a scalar column gives a 1-D input (text)
    cols = list(columns)
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cols):
        return [names[int(c)] for c in cols]
    if all(isinstance(c, str) for c in cols):
        return cols
    raise _Unsupported("columns must be names or positions")


def _steps(transformer: Any) -> list[Any]:
    """The steps a transformer applies in order (pipelines flattened, passthrough steps dropped)."""
    if isinstance(transformer, Pipeline):
        return [s for _, step in transformer.steps if step not in (None, "passthrough") for s in _steps(step)]
    if isinstance(transformer, str) and transformer == "passthrough":
        return []
    if isinstance(transformer, FunctionTransformer):
        if transformer.func is None and transformer.inverse_func is None and not transformer.validate:
            return []  # how a fitted ColumnTransformer stores "passthrough"
        raise _Unsupported("FunctionTransformer with a function")
    return [transformer]


def _compile_steps(steps: list[Any]) -> tuple[bool, list[Op]]:
    """Whether the input is read as numbers, and one op per step."""
    first = steps[0] if steps else None
    if isinstance(first, MissingIndicator):
        if len(steps) > 1:
            raise _Unsupported("steps after a MissingIndicator")
        return False, [_missing_indicator(first)]
    if isinstance(first, SimpleImputer) and _imputer_dtype(first) == object:
        if len(steps) < 2 or not isinstance(steps[1], (OneHotEncoder, OrdinalEncoder)):
            raise _Unsupported("an object imputer must feed an encoder")
        ops = [_object_imputer(first), _encoder(steps[1])]
        return False, ops + [_numeric_step(s) for s in steps[2:]]
    return True, [_numeric_step(s) for s in steps]


def _numeric_step(step: Any) -> Op:
    """One step on a float64 matrix."""
    if isinstance(step, SimpleImputer) and _imputer_dtype(step) == np.float64:
        return _numeric_imputer(step)
    if isinstance(step, StandardScaler):
        return _shift_scale(step.mean_ if step.with_mean else None, step.scale_ if step.with_std else None)
    if isinstance(step, RobustScaler):
        return _shift_scale(step.center_ if step.with_centering else None,
                            step.scale_ if step.with_scaling else None)
    if isinstance(step, MinMaxScaler):
        return _min_max(step)
    raise _Unsupported(f"step {type(step).__name__}")


def _imputer_dtype(imputer: SimpleImputer) -> np.dtype:
    """The dtype the imputer was fitted on; only float64 and object, with NaN as the missing marker."""
    fit_dtype = np.dtype(getattr(imputer, "_fit_dtype", imputer.statistics_.dtype))
    if not _is_nan(imputer.missing_values) or fit_dtype not in (np.dtype(np.float64), np.dtype(object)):
        raise _Unsupported("imputer dtype or missing marker")
    if fit_dtype == object and imputer.add_indicator:
        raise _Unsupported("indicator columns of an object imputer")
    return fit_dtype


def _numeric_imputer(imputer: SimpleImputer) -> Op:
    """NaN → the fitted statistic; all-NaN training columns kept or dropped; indicator columns."""
    stats = np.asarray(imputer.statistics_, dtype=np.float64)
    keep = None if imputer.keep_empty_features else np.flatnonzero(~np.isnan(stats))
    indicator = _indicator_columns(imputer.indicator_) if imputer.add_indicator else None

    def impute(X: np.ndarray) -> np.ndarray:
        mask = np.isnan(X)
        filled = np.where(mask, stats, X)
        if keep is not None:
            filled = filled[:, keep]
        return filled if indicator is None else np.hstack([filled, mask[:, indicator]])

    return impute


def _object_imputer(imputer: SimpleImputer) -> Op:
    """Values that differ from themselves (NaN) → the fitted statistic (scikit-learn's own test)."""
    stats = np.asarray(imputer.statistics_, dtype=object)
    keep = None if imputer.keep_empty_features else np.flatnonzero(~np.not_equal(stats, stats))

    def impute(X: np.ndarray) -> np.ndarray:
        filled = np.where(np.not_equal(X, X), stats, X)
        return filled if keep is None else filled[:, keep]

    return impute


def _indicator_columns(indicator: MissingIndicator) -> np.ndarray | slice:
    """The input columns a fitted MissingIndicator reports."""
    if not _is_nan(indicator.missing_values):
        raise _Unsupported("MissingIndicator marker")
    if indicator.features == "all":
        return slice(None)
    if indicator.error_on_new:  # raises on missing values in other columns
        raise _Unsupported("MissingIndicator(error_on_new=True)")
    return np.asarray(indicator.features_)


def _missing_indicator(indicator: MissingIndicator) -> Op:
    """One 0/1 column per reported input column: the value is missing (NaN)."""
    columns = _indicator_columns(indicator)
    return lambda X: np.not_equal(X, X)[:, columns]


def _shift_scale(shift: np.ndarray | None, scale: np.ndarray | None) -> Op:
    """``(X - shift) / scale`` as StandardScaler and RobustScaler compute it (either part optional)."""
    shift = None if shift is None else np.asarray(shift, dtype=np.float64)
    scale = None if scale is None else np.asarray(scale, dtype=np.float64)

    def apply(X: np.ndarray) -> np.ndarray:
        if shift is not None:
            X = X - shift
        return X if scale is None else X / scale

    return apply


def _min_max(scaler: MinMaxScaler) -> Op:
    """``X * scale_ + min_``, clipped to the feature range when ``clip``."""
    scale, low = np.asarray(scaler.scale_, dtype=np.float64), np.asarray(scaler.min_, dtype=np.float64)
    bounds = scaler.feature_range if scaler.clip else None

    def apply(X: np.ndarray) -> np.ndarray:
        X = X * scale + low
        return X if bounds is None else np.clip(X, bounds[0], bounds[1])

    return apply


def _encoder(encoder: Any) -> Op:
    """One-hot or ordinal codes through one dict per feature."""
    if np.dtype(encoder.dtype) != np.float64 or any(c.dtype != object for c in encoder.categories_):
        raise _Unsupported("encoder dtype or non-object categories")
    try:
        infrequent = encoder.infrequent_categories_
    except AttributeError:  # fitted without max_categories / min_frequency
        infrequent = [None] * len(encoder.categories_)
    if isinstance(encoder, OneHotEncoder):
        return _one_hot(encoder, infrequent)
    if encoder.handle_unknown != "use_encoded_value":
        raise _Unsupported("OrdinalEncoder raising on unknown values")
    return _ordinal(encoder, infrequent)


def _codes(categories: np.ndarray, infrequent: np.ndarray | None) -> tuple[dict, int | None, int, int | None]:
    """Per feature: {category: code}, the code of the missing category (None if not a category),
    the number of codes, and the infrequent code (None without infrequent categories).  Frequent
    categories keep their order; the infrequent ones share the last code."""
    rare = set() if infrequent is None else set(infrequent.tolist())
    table: dict = {}
    missing = None
    code = 0
    for category in categories.tolist():
        if category in rare:
            continue
        if _is_nan(category):
            missing = code
        else:
            table[category] = code
        code += 1
    if not rare:
        return table, missing, code, None
    table.update(dict.fromkeys(rare, code))
    return table, missing, code + 1, code


def _one_hot(encoder: OneHotEncoder, infrequent: list) -> Op:
    if getattr(encoder, "drop_idx_", None) is not None:
        raise _Unsupported("OneHotEncoder drop")
    if encoder.handle_unknown not in ("ignore", "infrequent_if_exist", "warn"):
        raise _Unsupported("OneHotEncoder raising on unknown values")
    features, offset = [], 0
    for categories, rare in zip(encoder.categories_, infrequent, strict=True):
        table, missing, width, rare_code = _codes(categories, rare)
        unknown = None if rare_code is None or encoder.handle_unknown == "ignore" else offset + rare_code
        as_column = {k: offset + v for k, v in table.items()}
        features.append((as_column, unknown if missing is None else offset + missing, unknown))
        offset += width

    def encode(X: np.ndarray) -> np.ndarray:
        out = np.zeros((X.shape[0], offset), dtype=np.float64)
        for j, (table, missing, unknown) in enumerate(features):
            for i, value in enumerate(X[:, j].tolist()):
                column = missing if _differs(value) else table.get(value, unknown)
                if column is not None:
                    out[i, column] = 1.0
        return out

    return encode


def _ordinal(encoder: OrdinalEncoder, infrequent: list) -> Op:
    unknown = float(encoder.unknown_value)
    features = []
    for categories, rare in zip(encoder.categories_, infrequent, strict=True):
        table, missing, _, _ = _codes(categories, rare)
        features.append(({k: float(v) for k, v in table.items()},
                         unknown if missing is None else float(encoder.encoded_missing_value)))

    def encode(X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape, dtype=np.float64)
        for j, (table, missing) in enumerate(features):
            out[:, j] = [missing if _differs(v) else table.get(v, unknown) for v in X[:, j].tolist()]
        return out

    return encode


def _is_nan(value: Any) -> bool:
    """NaN (float or numpy float), not None or pd.NA."""
    return isinstance(value, (float, np.floating)) and _differs(value)


def _differs(value: Any) -> bool:
    """``value != value``: scikit-learn's missing test for objects (True for NaN; raises for pd.NA)."""
    return bool(operator.ne(value, value))


# --------------------------------------------------------------------------- reading a frame


def _read(frame: pd.DataFrame, columns: list[str], numeric: bool) -> np.ndarray:
    """The columns as a float64 matrix (float64 columns only: scikit-learn casts or rejects the others
    step by step), or as an object matrix (object, float64 or pandas ``str`` columns; NaN = missing)."""
    arrays = []
    for name in columns:
        column = frame[name]
        dtype = column.dtype
        if isinstance(dtype, pd.StringDtype) and _is_nan(dtype.na_value) and not numeric:
            arrays.append(column.to_numpy(dtype=object))
            continue
        if dtype != np.float64 and (numeric or dtype != object):
            raise _Fallback(f"column '{name}' has dtype {dtype}")
        values = column.to_numpy()
        if dtype == np.float64 and np.isinf(values).any():
            raise _Fallback("infinite values (scikit-learn rejects them)")
        arrays.append(values if numeric else values.astype(object))
    return np.column_stack(arrays) if len(arrays) > 1 else arrays[0].reshape(-1, 1)


# --------------------------------------------------------------------------- self-check


def _agrees(fast: FastTransform) -> bool:
    """Whether the fast path matches scikit-learn on a probe frame (every known category, NaN,
    None, an unseen value; assorted numbers)."""
    frame = _probe_frame(fast)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = fast.reference(frame)
        got = fast._fast(frame)
    except Exception:  # noqa: BLE001 - the probe itself fails: keep scikit-learn
        return False
    return got.shape == expected.shape and bool(np.allclose(got, expected, rtol=1e-12, atol=0.0, equal_nan=True))


def _probe_frame(fast: FastTransform) -> pd.DataFrame:
    """Rows cycling through every value each column's steps know about."""
    known: list = [np.nan, None, _UNSEEN]
    for _, transformer, _ in fast.preprocessor.transformers_:
        for step in _steps(transformer):
            known += [c for categories in getattr(step, "categories_", []) for c in categories.tolist()]
            if isinstance(step, SimpleImputer) and step.statistics_.dtype == object:
                known += step.statistics_.tolist()
    known = list(dict.fromkeys(known))
    known = known[:3] + known[3::(len(known) - 3) // _PROBE_VALUES + 1]  # at most ~1000 rows
    rows = max(len(known), len(_PROBE_NUMBERS))
    numeric = {name for block in fast.blocks if block.numeric for name in block.columns}
    columns = {}
    for name in dict.fromkeys(name for block in fast.blocks for name in block.columns):
        values, dtype = (_PROBE_NUMBERS, np.float64) if name in numeric else (known, object)
        columns[name] = pd.Series((values * (rows // len(values) + 1))[:rows], dtype=dtype)
    return pd.DataFrame(columns)
