"""A fitted preprocessor from the statistics of a streamed table (:mod:`honing.data.stream_stats`).

:func:`fitted_preprocessor` builds the same scikit-learn ColumnTransformer as the in-memory path
(:func:`honing.data.preprocess.build_preprocessor`) and fits it on a small synthetic frame made from
the statistics, whose categories (and their frequency order) are those of the training rows, then
writes the exact streamed values into it.  Exact, as if fitted on every training row: mean and
constant imputation, standard and min-max scaling (with missing-value indicator columns), one-hot and
ordinal encoding with the ``max_categories`` grouping, most-frequent imputation of categories.
From the row sample: median and most-frequent imputation of numbers, robust scaling, the date
columns' whole pipeline, and a text column's TF-IDF vocabulary and IDF weights (``data.text:
tfidf``) or token vocabulary (``tokens``).  An image column's transformer is fitted on one sampled
training row, as in memory (it records the decoding settings and the first image's size), and so
is a pretrained model's tokenizer (``data.text: pretrained``).
``data.reduce``'s PCA is fitted on the sampled training rows, once the columns are; with text
augmentation the sampled training rows come with their copies.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing._data import _handle_zeros_in_scale, _is_constant_feature

from honing.data.preprocess import build_preprocessor, coerce_features
from honing.data.schema import Schema
from honing.data.stream_stats import StreamStats
from honing.errors import DataError
from honing.recipe import DataConfig


def fitted_preprocessor(stats: StreamStats, schema: Schema, cfg: DataConfig,
                        augment: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> Any:
    """The in-memory path's ColumnTransformer, fitted from the statistics (see the module doc); with
    ``data.reduce``, followed by its PCA fitted on the sampled training rows.  ``augment`` (the text
    copies of ``data.augment``) adds to the sampled rows what it adds to the training rows, so that a
    text vocabulary knows the copies' words, as in memory."""
    sample = None
    if stats.sample is not None:
        rows = stats.sample_of("train")
        sample = coerce_features(augment(rows) if augment is not None and len(rows) else rows, schema)
    if not cfg.reduce:
        return _fitted_columns(stats, schema, cfg, sample)
    from honing.data.reduce import check_reduce, fit_reduction

    check_reduce(schema, cfg)
    if sample is None or not len(sample):
        raise DataError("data.reduce: no sampled training rows to fit the PCA on", "add rows")
    columns = _fitted_columns(stats, schema, cfg.model_copy(update={"reduce": None}), sample)
    return fit_reduction(columns, cfg, columns.transform(sample))


def _fitted_columns(stats: StreamStats, schema: Schema, cfg: DataConfig, sample: pd.DataFrame | None) -> Any:
    """The ColumnTransformer of :func:`fitted_preprocessor`, from the statistics and the coerced sample."""
    if any(c.kind == "image" for c in schema.features) or cfg.text == "pretrained":
        # pixels: the decoding settings and the first image's size; a pretrained tokenizer learns nothing
        return build_preprocessor(schema, cfg).fit(sample.head(1))
    fills = {name: _category_fill(stats, name, cfg) for name in stats.categorical}
    preprocessor = build_preprocessor(schema, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        preprocessor.fit(_fit_frame(stats, schema, cfg, fills, sample))
    steps = preprocessor.named_transformers_
    if "numeric" in steps:
        _set_numeric(steps["numeric"], stats, cfg, sample)
    if "categorical" in steps:
        imputer = steps["categorical"].named_steps["impute"]
        values = np.array(imputer.statistics_, dtype=object)
        for j, name in enumerate(stats.categorical):
            if stats.counts[name]:  # (a column without a value keeps what it was fitted with)
                values[j] = fills[name]
        imputer.statistics_ = values
    if "datetime" in steps and sample is not None and len(sample):
        steps["datetime"].fit(sample[[c.name for c in schema.features if c.kind == "datetime"]])
    return preprocessor


def _category_fill(stats: StreamStats, name: str, cfg: DataConfig) -> Any:
    """The value missing categories are imputed with: the constant, or the most frequent (ties: the smallest)."""
    from honing.data.preprocess import _category_string

    missing = cfg.clean.missing
    if missing.categorical == "constant":
        return "missing" if missing.fill_value is None else _category_string(missing.fill_value)
    counts = stats.counts[name]
    if not counts:
        return np.nan
    top = max(counts.values())
    return min(value for value, count in counts.items() if count == top)


def _fit_frame(stats: StreamStats, schema: Schema, cfg: DataConfig, fills: dict, sample: pd.DataFrame | None
               ) -> pd.DataFrame:
    """A small frame on which the preprocessor learns the training rows' structure: every category, the
    same frequent ones, missing values where training had some."""
    categories = {name: _category_values(stats, name, cfg, fills[name]) for name in stats.categorical}
    length = max([len(v) for v in categories.values()] + [2])
    sampled = [c.name for c in schema.features
               if c.kind == "datetime" or (c.kind == "text" and cfg.text in ("tfidf", "tokens"))]
    if sampled and sample is not None:  # dates and text vocabularies learn from every sampled row
        length = max(length, len(sample))
    columns = {}
    for column in schema.features:
        name = column.name
        if name in categories:
            values = categories[name]
            columns[name] = pd.Series(values + [values[-1]] * (length - len(values)), dtype=object)
        elif column.kind == "numeric":
            j = stats.numeric.index(name)
            values = np.full(length, stats.mean[j] if stats.n[j] else np.nan)
            values[0] = np.nan if stats.missing[j] else values[0]
            columns[name] = values
        elif name in sampled:
            if sample is None or not len(sample):
                raise DataError(f"column '{name}': no sampled training rows to learn its {column.kind} from", "add rows")
            columns[name] = np.resize(sample[name].to_numpy(), length)
        else:  # text with data.text: drop (not transformed)
            columns[name] = pd.Series([""] * length, dtype=object)
    return pd.DataFrame(columns)


def _category_values(stats: StreamStats, name: str, cfg: DataConfig, fill: Any) -> list:
    """The column's synthetic values: every category after imputation, repeated so that the encoder
    sees the same frequent ones (in the same order) as on the training rows; one missing value when
    training had some.  The most frequent comes last (padding repeats it)."""
    missing = stats.category_missing[name]
    if not stats.counts[name] and missing:
        return [np.nan] * 2
    post = Counter(stats.counts[name])
    if missing:
        post[fill] += missing
    values = sorted(post)
    counts = np.array([post[v] for v in values])
    order = np.argsort(counts, kind="mergesort")  # what OneHotEncoder ranks by (stable)
    repeats = np.ones(len(values), dtype=int)
    frequent = cfg.max_categories - 1
    if cfg.encode == "onehot" and len(values) >= cfg.max_categories and frequent > 0:
        for rank, i in enumerate(order[-frequent:]):
            repeats[i] = 2 * (rank + 2)  # even, strictly increasing: one more (a missing value) keeps the order
    out = [v for i in order for v in [values[i]] * repeats[i]]
    return ([np.nan] if missing else []) + out


def _set_numeric(pipeline: Any, stats: StreamStats, cfg: DataConfig, sample: pd.DataFrame | None) -> None:
    """Exact imputation values and scaling statistics of the numeric columns (see the module doc)."""
    imputer = pipeline.named_steps["impute"]
    strategy = cfg.clean.missing.numeric
    values = np.asarray(imputer.statistics_, dtype=np.float64).copy()
    for j, name in enumerate(stats.numeric):
        if not stats.n[j]:
            continue  # no value at all: as fitted (0, or the constant)
        if strategy == "mean":
            values[j] = stats.mean[j]
        elif strategy in ("median", "most_frequent") and sample is not None:
            observed = sample[name].dropna()
            if len(observed):
                values[j] = float(observed.median()) if strategy == "median" else _mode(observed)
    imputer.statistics_ = values
    scaler = pipeline.named_steps.get("scale")
    if scaler is None:
        return
    if cfg.scale == "robust":
        if sample is not None and len(sample):
            scaler.fit(imputer.transform(sample[stats.numeric]))
        return
    n, mean, m2, low, high = _imputed_moments(stats, values, getattr(imputer, "indicator_", None))
    if cfg.scale == "standard":
        var = m2 / n
        scaler.mean_, scaler.var_, scaler.n_samples_seen_ = mean, var, np.int64(n[0])
        scaler.scale_ = _handle_zeros_in_scale(np.sqrt(var), copy=False,
                                               constant_mask=_is_constant_feature(var, mean, n))
    elif cfg.scale == "minmax":
        lo, hi = scaler.feature_range
        scaler.data_min_, scaler.data_max_, scaler.data_range_ = low, high, high - low
        scaler.scale_ = (hi - lo) / _handle_zeros_in_scale(high - low, copy=True)
        scaler.min_ = lo - low * scaler.scale_
        scaler.n_samples_seen_ = np.int64(n[0])


def _mode(values: pd.Series) -> float:
    counts = values.value_counts()
    return float(min(counts.index[counts == counts.max()]))


def _imputed_moments(stats: StreamStats, fills: np.ndarray, indicator: Any) -> tuple[np.ndarray, ...]:
    """Count, mean, sum of squared deviations, min and max of every column the imputer outputs: the
    imputed numbers (present values plus the missing ones at their fill value), then the 0/1
    missing indicators."""
    rows = stats.n + stats.missing
    miss = stats.missing
    share = np.divide(miss, rows, out=np.zeros_like(rows), where=rows > 0)
    mean = stats.mean + (fills - stats.mean) * share
    m2 = stats.m2 + (fills - stats.mean) ** 2 * stats.n * share
    low = np.where(miss > 0, np.minimum(stats.low, fills), stats.low)
    high = np.where(miss > 0, np.maximum(stats.high, fills), stats.high)
    if indicator is not None:
        flagged = np.asarray(indicator.features_, dtype=int)
        p = share[flagged]
        mean = np.concatenate([mean, p])
        m2 = np.concatenate([m2, p * (1 - p) * rows[flagged]])
        low = np.concatenate([low, (miss[flagged] == rows[flagged]).astype(float)])
        high = np.concatenate([high, (miss[flagged] > 0).astype(float)])
        rows = np.concatenate([rows, rows[flagged]])
    return rows, mean, m2, low, high
