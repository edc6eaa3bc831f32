"""Column kinds, the schema of a table, and task inference.

:func:`infer_schema` gives every column one kind (:data:`ColumnKind`), by these rules, in order:

1. entirely missing → ``identifier`` (dropped, with a note);
2. ``bool`` dtype, or exactly two distinct values that read as a yes/no pair ({0, 1}, {yes, no},
   {true, false}, {y, n}, {t, f}; case-insensitive) → ``boolean``;
3. datetime dtype → ``datetime``;
4. numeric dtype → ``numeric``, except integer columns that look like a row id → ``identifier``:
   every value unique and either named like an id (``id``, ``PassengerId``, ``customer_id``,
   ``uuid``, ``key``) or a counter (consecutive integers in row order, at least 20 rows);
5. text (any other dtype, read as strings):

   * (nearly: 95% of) every value ends in an image suffix (``.png``, ``.jpg`` …) → ``image`` (paths
     to image files, decoded by :class:`honing.data.image_pixels.ImagePixels`);
   * ≥ 90% of a sample parses with ``pd.to_datetime(format="mixed")`` (values must contain digits,
     be at least 6 characters long (median) and not be plain numbers) → ``datetime``;
   * more than 95% unique values, no whitespace, at least 20 values → ``identifier`` (codes,
     UUIDs, ticket numbers);
   * on average ≥ 3 whitespace-separated words and at least half the values unique → ``text``;
   * otherwise → ``categorical``.

Identifier columns are kept in :attr:`Schema.columns` with a note saying how to keep them, but are
not features.  The target is inferred like any column but is never an identifier.
``data.types`` overrides force a kind; ``data.drop`` columns are left out of the schema entirely
(their names are kept in :attr:`Schema.dropped`).

:func:`infer_task`: classification when the target is not numeric, is boolean, or is integer-valued
with at most 2 distinct values, or at most 20 distinct values that are at most half the rows;
regression otherwise.  Text values that all read as numbers count as numbers; text values of which
at least 90% (but not all) read as numbers raise :class:`DataError` (they are probably dirty numbers).

:func:`check_target` also refuses a classification target with more than 200 classes, or more
distinct values than half its rows (when it has at least 50 rows).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any, get_args

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from honing.data.image_sources import looks_like_image_paths
from honing.data.sources import ZERO_PADDED
from honing.errors import DataError, did_you_mean, shortened
from honing.recipe import ColumnKind

KINDS: tuple[str, ...] = get_args(ColumnKind)
MAX_CATEGORIES_LISTED = 100
_BOOLEAN_PAIRS = [{"0", "1"}, {"yes", "no"}, {"true", "false"}, {"y", "n"}, {"t", "f"}]
_ID_WORDS = {"id", "uuid", "guid", "key"}
_MIN_ID_ROWS = 20
_DATE_SAMPLE = 200
MAX_CLASSES = 200
_MIN_ROWS_FOR_UNIQUE = 50
_MAX_UNIQUE_SHARE = 0.5
_MOSTLY_NUMBERS = 0.9

__all__ = ["KINDS", "Column", "ColumnKind", "Schema", "check_target", "infer_schema", "infer_task"]


@dataclass
class Column:
    """One column: its kind, pandas dtype, fraction missing, distinct count and a note."""

    name: str
    kind: str
    dtype: str
    missing: float
    unique: int
    note: str = ""
    categories: list | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Column:
        """The inverse of :meth:`to_dict`."""
        return cls(**d)


@dataclass
class Schema:
    """The columns of a table (target included) and the target's name."""

    columns: list[Column]
    target: str | None = None
    dropped: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[Column]:
        """Columns used as model inputs: all but the target and identifiers, in table order."""
        return [c for c in self.columns if c.name != self.target and c.kind != "identifier"]

    @property
    def feature_names(self) -> list[str]:
        """Names of :attr:`features`."""
        return [c.name for c in self.features]

    def excluding(self, columns: list[str]) -> Schema:
        """A copy without ``columns`` (listed as dropped): e.g. sensitive columns kept out of the
        model's features by ``audit.exclude_sensitive``."""
        kept = [c for c in self.columns if c.name not in columns]
        return replace(self, columns=kept, dropped=[*self.dropped, *columns])

    def column(self, name: str) -> Column:
        """The column called ``name`` (DataError with a did-you-mean otherwise)."""
        for c in self.columns:
            if c.name == name:
                return c
        raise DataError(f"no column '{name}' in the schema", did_you_mean(name, [c.name for c in self.columns]))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {"target": self.target, "columns": [c.to_dict() for c in self.columns], "dropped": list(self.dropped)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        """The inverse of :meth:`to_dict`."""
        return cls(
            columns=[Column.from_dict(c) for c in d["columns"]],
            target=d.get("target"),
            dropped=list(d.get("dropped", [])),
        )


# --------------------------------------------------------------------------- schema


def infer_schema(
    df: pd.DataFrame,
    target: str | None = None,
    overrides: dict[str, str] | None = None,
    drop: list[str] | tuple[str, ...] = (),
) -> Schema:
    """The schema of ``df``: one :class:`Column` per column not in ``drop`` (rules in the module doc)."""
    overrides = dict(overrides or {})
    names = [str(c) for c in df.columns]
    for name in drop:
        if name not in names:
            raise DataError(f"data.drop: no column '{name}' in the data", did_you_mean(name, names))
    if target is not None and target in drop:
        raise DataError(f"data.drop: '{target}' is the target", "remove it from data.drop, or choose another data.target")
    if target is not None and target not in names:
        raise _missing_target(target, names)
    for name, kind in overrides.items():
        if name not in names:
            raise DataError(f"data.types.{name}: no column '{name}' in the data", did_you_mean(name, names))
        if kind not in KINDS:
            raise DataError(f"data.types.{name}: unknown kind '{kind}'", did_you_mean(kind, KINDS))
    columns = [
        _describe(df[name], name, is_target=name == target, override=overrides.get(name))
        for name in names
        if name not in drop
    ]
    return Schema(columns=columns, target=target, dropped=[str(d) for d in drop])


def _describe(s: pd.Series, name: str, *, is_target: bool, override: str | None) -> Column:
    """The :class:`Column` for one series."""
    nonnull = s.dropna()
    unique = int(nonnull.nunique())
    if override:
        kind, note = override, f"kind set by data.types.{name}"
    else:
        kind, note = infer_kind(s, name)
        if is_target and kind == "identifier" and len(nonnull):
            kind, note = ("numeric" if pdt.is_numeric_dtype(s) else "categorical"), ""
    if kind == "identifier" and not override:
        keep = "" if nonnull.empty else f" — set data.types.{name}: categorical to keep it"
        note += f"; dropped{keep}"
    if unique == 1 and kind != "identifier" and not note:
        note = "has a single value (carries no information)"
    categories = _top_values(nonnull) if kind in ("categorical", "boolean") else None
    missing = float(s.isna().mean()) if len(s) else 0.0
    return Column(name, kind, str(s.dtype), missing, unique, note, categories)


def infer_kind(s: pd.Series, name: str = "") -> tuple[str, str]:
    """The inferred kind of a series and a note explaining it (empty when unremarkable)."""
    nonnull = s.dropna()
    if nonnull.empty:
        return "identifier", "is entirely missing"
    if pdt.is_bool_dtype(s) or _is_boolean_pair(nonnull):
        return "boolean", ""
    if pdt.is_datetime64_any_dtype(s):
        return "datetime", ""
    if pdt.is_timedelta64_dtype(s):
        return "numeric", "durations, as seconds"
    if pdt.is_numeric_dtype(s):
        if _looks_like_numeric_id(nonnull, name, len(s)):
            return "identifier", f"looks like an identifier ({nonnull.nunique()} unique values in {len(s)} rows)"
        return "numeric", ""
    return _infer_text_kind(nonnull.astype(str), len(s), name)


def _is_boolean_pair(nonnull: pd.Series) -> bool:
    """Exactly two distinct values forming a yes/no pair (0/1, yes/no, true/false, y/n, t/f)."""
    values = nonnull.unique()
    if len(values) != 2:
        return False
    normalised = {_bool_token(v) for v in values}
    return any(normalised == pair for pair in _BOOLEAN_PAIRS)


def _bool_token(value: Any) -> str:
    """A lower-case token for a value (1.0 → "1", True → "true")."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip().lower()


def _id_like_name(name: str) -> bool:
    """``id``, ``PassengerId``, ``customer_id``, ``order-uuid``, ``row key`` …"""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    return bool(words) and words[-1].lower() in _ID_WORDS


def _looks_like_numeric_id(nonnull: pd.Series, name: str, rows: int) -> bool:
    """Integer, all distinct, and named like an id or counting up/down by one."""
    if not pdt.is_integer_dtype(nonnull) or pdt.is_bool_dtype(nonnull) or nonnull.nunique() != rows:
        return False
    if _id_like_name(name):
        return True
    steps = np.diff(nonnull.to_numpy(dtype="int64"))
    return rows >= _MIN_ID_ROWS and (bool((steps == 1).all()) or bool((steps == -1).all()))


def _infer_text_kind(values: pd.Series, rows: int, name: str = "") -> tuple[str, str]:
    """Kind of a string column: image, datetime, identifier, text or categorical."""
    if looks_like_image_paths(values):
        return "image", ""
    unique = values.nunique()
    ratio = unique / len(values)
    if looks_like_dates(values):
        return "datetime", ""
    sample = values.head(_DATE_SAMPLE)
    if comma := decimal_comma(sample):
        kind = "identifier" if ratio > 0.95 and len(values) >= _MIN_ID_ROWS else "categorical"
        return kind, (f"looks like numbers written with a comma (e.g. '{comma}'), read as "
                      f"{'an identifier' if kind == 'identifier' else 'categories'} — write them with a decimal "
                      "point (36.59) to use them as numbers")
    padded = sample[sample.str.fullmatch(ZERO_PADDED)]
    if len(padded) and sample.str.fullmatch(r"\s*[+-]?\d+\s*").all():  # read as text by the reader
        kind = "identifier" if ratio > 0.95 and len(values) >= _MIN_ID_ROWS else "categorical"
        return kind, (f"integers written with leading zeros (e.g. '{padded.iloc[0].strip()}'), read as "
                      f"{'an identifier' if kind == 'identifier' else 'categories'} that keep their zeros — set "
                      f"data.types: {{{name or 'COLUMN'}: numeric}} to use them as numbers")
    has_space = values.str.contains(r"\s", regex=True)
    if ratio > 0.95 and len(values) >= _MIN_ID_ROWS and not has_space.any():
        return "identifier", f"looks like an identifier ({unique} unique values in {rows} rows)"
    words = values.str.split().str.len().mean()
    if words >= 3 and ratio >= 0.5:
        return "text", f"free text (about {words:.0f} words per value)"
    return "categorical", ""


def decimal_comma(values: pd.Series) -> str | None:
    """An example when nine in ten of the first values are numbers written with a decimal comma (36,59
    or 1.234,5: a European CSV's), else None."""
    sample = values.dropna().head(_DATE_SAMPLE).astype(str)
    if sample.empty or sample.str.fullmatch(r"\s*[+-]?\d[\d.]*,\d+\s*").mean() < 0.9:
        return None
    return sample.iloc[0].strip()


def looks_like_dates(values: pd.Series) -> bool:
    """At least 90% of a sample parses as dates (values of 6+ characters with digits, not numbers);
    only the first present values are read (as text)."""
    sample = values.dropna().head(_DATE_SAMPLE).astype(str)
    if sample.empty:
        return False
    if sample.str.len().median() < 6 or not sample.str.contains(r"\d", regex=True).mean() >= 0.9:
        return False
    if pd.to_numeric(sample, errors="coerce").notna().mean() > 0.5:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(sample, format="mixed", errors="coerce", utc=True)
        except (ValueError, TypeError, OverflowError):
            return False
    return bool(parsed.notna().mean() >= 0.9)


def _top_values(nonnull: pd.Series) -> list:
    """Up to 100 observed values, most frequent first, as JSON-friendly Python scalars."""
    counts = nonnull.value_counts(sort=True)
    return [_python_scalar(v) for v in counts.index[:MAX_CATEGORIES_LISTED]]


def _python_scalar(value: Any) -> Any:
    """A JSON-serialisable Python scalar (numpy scalars unwrapped; anything else as str)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# --------------------------------------------------------------------------- target


def infer_task(y: pd.Series) -> str:
    """``classification`` or ``regression`` for target values ``y`` (rule in the module doc)."""
    values = y.dropna()
    if values.empty:
        raise DataError(f"target '{y.name}' has no values (every row is missing)", "check data.target")
    if pdt.is_bool_dtype(values):
        return "classification"
    if not pdt.is_numeric_dtype(values):
        numbers, bad = _parse_numbers(values)
        if bad.empty:
            return _task_of_numbers(numbers.to_numpy(dtype="float64"))
        if len(bad) <= (1 - _MOSTLY_NUMBERS) * len(values):
            raise _mostly_numbers(y.name, bad)
        return "classification"
    return _task_of_numbers(values.to_numpy(dtype="float64"))


def _task_of_numbers(numbers: np.ndarray) -> str:
    """The task for numeric target values: integers with few distinct values are classes."""
    if not np.all(np.isfinite(numbers)) or not np.all(numbers == np.round(numbers)):
        return "regression"
    unique = len(np.unique(numbers))
    if unique <= 2 or (unique <= 20 and unique <= 0.5 * len(numbers)):
        return "classification"
    return "regression"


def check_target(df: pd.DataFrame, target: str, task: str) -> None:
    """Raise DataError when ``target`` cannot be learned as ``task`` (missing rows are allowed)."""
    names = [str(c) for c in df.columns]
    if target not in names:
        raise _missing_target(target, names)
    values = df[target].dropna()
    if values.empty:
        raise DataError(f"target '{target}' has no values (every row is missing)", "check data.target, or the data")
    if task == "classification":
        _check_classes(values, target)
    elif task == "regression":
        bad = _not_numbers(values)
        if not bad.empty and len(bad) <= (1 - _MOSTLY_NUMBERS) * len(values):
            raise _mostly_numbers(target, bad)
        if not bad.empty and (comma := decimal_comma(bad)):
            raise _comma_target(target, comma)
        if not bad.empty:
            raise DataError(
                f"target '{target}' is not numeric (dtype {df[target].dtype}); regression needs numbers",
                "set data.task: classification, or choose a numeric data.target",
            )
        infinite = np.isinf(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float))
        if infinite.any():  # no loss or metric survives one
            raise DataError(f"target '{target}' has {int(infinite.sum())} infinite value(s) (the first in row "
                            f"{_python_scalar(values.index[infinite][0])})",
                            "fix or remove those rows (an empty target drops a row)")
    else:
        raise DataError(f"data.task: unknown task '{task}'", "use classification or regression")


def _check_classes(values: pd.Series, target: str) -> None:
    """DataError for a single class, or for so many classes that they cannot be learned."""
    classes = values.unique()
    if len(classes) < 2:
        raise DataError(
            f"target '{target}' has a single class '{shortened(str(classes[0]), 60)}'; a classifier needs at least two",
            "check data.target, or the rows in the data",
        )
    rows = len(values)
    if len(classes) > MAX_CLASSES or (rows >= _MIN_ROWS_FOR_UNIQUE and len(classes) > _MAX_UNIQUE_SHARE * rows):
        if comma := decimal_comma(values):
            raise _comma_target(target, comma)
        raise DataError(
            f"target '{target}' has {len(classes)} distinct values in {rows} rows — too many classes to learn",
            "set data.task: regression for a number, or choose another data.target",
        )


def _not_numbers(values: pd.Series) -> pd.Series:
    """The non-missing values that do not read as numbers (booleans are not numbers)."""
    if pdt.is_bool_dtype(values):
        return values
    if pdt.is_numeric_dtype(values):
        return values.iloc[:0]
    return _parse_numbers(values)[1]


def _parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Non-missing text values as numbers, and the values that are not numbers."""
    cleaned = values.map(lambda v: np.nan if isinstance(v, (bool, np.bool_)) else v)
    numbers = pd.to_numeric(cleaned, errors="coerce")
    return numbers.dropna(), values[numbers.isna()]


def _mostly_numbers(target: Any, bad: pd.Series) -> DataError:
    """The error for a target whose values are numbers except for a few."""
    count = len(bad)
    example = str(bad.iloc[0]).replace("\n", " ")[:40]
    verb = "value that is" if count == 1 else "values that are"
    return DataError(
        f"target '{target}' is mostly numbers but has {count} {verb} not (e.g. '{example}')",
        "clean those values, or set data.task: classification if the target is really a label",
    )


def _comma_target(target: Any, example: str) -> DataError:
    """The error for a target of numbers written with a decimal comma (text to every reader)."""
    return DataError(f"target '{target}' holds numbers written with a decimal comma (e.g. '{example}'), which are "
                     "read as text", "write them with a decimal point (36.59): e.g. pandas.read_csv(path, sep=';', "
                     "decimal=',').to_csv(new_path, index=False)")


def _missing_target(target: str, names: list[str]) -> DataError:
    """The error for a target column that is not in the data."""
    return DataError(f"data.target: no column '{target}' in the data", did_you_mean(target, names))
