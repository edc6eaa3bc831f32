"""One streaming pass over a table: per-column statistics of the training rows, the target's classes
or moments, and a bounded random sample of the rows.

:func:`collect` reads the file once (:class:`~honing.data.streaming.TableFile`) and keeps, for the
training rows only: per numeric column the count, mean and sum of squared deviations (merged chunk by
chunk with Chan's formula), minimum, maximum and missing count; per categorical / boolean column the
count of every value and the missing count.  Over all rows: the rows per split, the target's label
counts per split (classification) or the training target's mean and variance (regression), rows
without a target (dropped), a content fingerprint, and a uniform sample of at most
:data:`SAMPLE_ROWS` rows (the rows with the smallest seeded hash of their row number: the same
sample whatever the chunking) for the data audit, the monitoring reference profile and the
statistics that cannot be streamed.

:mod:`honing.data.stream_fit` turns them into a fitted preprocessor (:func:`check_schema` checks
first what the in-memory preprocessing would refuse).  An image column's files are checked to exist and
to be images (their headers are read, and their sizes kept for :func:`check_image_sizes`), chunk by
chunk; its pixels are decoded only when batches are made.  A regression target must be a finite number
in every row that has one, as in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from honing.data.dataset import _label_key, strip_label
from honing.data.image_pixels import image_preprocessor
from honing.data.image_sources import check_image_files
from honing.data.preprocess import build_preprocessor, coerce_features
from honing.data.schema import MAX_CLASSES, Schema
from honing.data.streaming import Plan, uniform
from honing.errors import DataError, SplitError, shortened
from honing.progress import SILENT, Progress
from honing.recipe import DataConfig, ImageConfig

SAMPLE_ROWS = 20_000
#: Most distinct values of a categorical column counted while streaming.
MAX_DISTINCT = 100_000
SPLIT_COLUMN = "__split__"
_SAMPLE_SALT = 0x5A3C_9E11


@dataclass
class StreamStats:
    """What :func:`collect` found (see the module doc)."""

    numeric: list[str]
    categorical: list[str]
    n: np.ndarray  # per numeric column: values present, mean, sum of squared deviations, min, max, missing
    mean: np.ndarray
    m2: np.ndarray
    low: np.ndarray
    high: np.ndarray
    missing: np.ndarray
    counts: dict[str, Counter] = field(default_factory=dict)
    category_missing: dict[str, int] = field(default_factory=dict)
    rows: list[int] = field(default_factory=lambda: [0, 0, 0])  # train, validation, test (with a target)
    no_target: int = 0
    labels: dict[str, list] = field(default_factory=dict)  # label key → [label, rows per split ×3]
    y_n: int = 0
    y_mean: float = 0.0
    y_m2: float = 0.0
    sample: pd.DataFrame | None = None  # raw rows, with their split in SPLIT_COLUMN
    fingerprint: str = ""
    image_sizes: dict[tuple[int, int], str] = field(default_factory=dict)  # (height, width) → its first image

    @property
    def classes(self) -> list:
        """The class labels in sorted order (as the in-memory path sorts them)."""
        labels = [entry[0] for entry in self.labels.values()]
        try:
            return sorted(labels)
        except TypeError:
            return sorted(labels, key=str)

    def class_counts(self, split: int = 0) -> np.ndarray:
        """Rows per class (in :attr:`classes` order) in a split."""
        by_key = {_label_key(entry[0]): entry[1 + split] for entry in self.labels.values()}
        return np.array([by_key[_label_key(c)] for c in self.classes], dtype=np.int64)

    def sample_of(self, split: str = "train") -> pd.DataFrame:
        """The sampled rows of one split (without the split column)."""
        rows = self.sample[self.sample[SPLIT_COLUMN] == split]
        return rows.drop(columns=SPLIT_COLUMN).reset_index(drop=True)


def check_schema(schema: Schema, cfg: DataConfig) -> None:
    """The errors of feature columns an in-memory run would give after reading every row, before the
    pass: a pretrained model's text column beside other features, an image column beside them."""
    if cfg.text == "pretrained":
        build_preprocessor(schema, cfg)  # one text column alone, and the tokenizer read
    images = [c.name for c in schema.features if c.kind == "image"]
    if images:
        image_preprocessor(images[0], schema.feature_names, cfg.image)  # the only feature, before the pass


def collect(plan: Plan, progress: Progress = SILENT) -> StreamStats:
    """One pass over ``plan.table`` (every column), as the module doc says."""
    schema = plan.schema
    numeric = [c.name for c in schema.features if c.kind == "numeric"]
    categorical = [c.name for c in schema.features if c.kind in ("categorical", "boolean")]
    zeros = np.zeros(len(numeric))
    stats = StreamStats(numeric, categorical, zeros.copy(), zeros.copy(), zeros.copy(), zeros + np.inf,
                        zeros - np.inf, zeros.copy(), {c: Counter() for c in categorical}, dict.fromkeys(categorical, 0))
    images = [c.name for c in schema.features if c.kind == "image"]
    digest, total = hashlib.sha256(), 0
    bar = progress.rows("reading the data (statistics pass)", plan.table.rows)
    for first, frame in plan.table.frames(plan.table.columns, plan.chunk_rows):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        total += len(frame)
        bar.advance(len(frame))
        codes = plan.splits(first, len(frame))
        present = frame[plan.target].notna().to_numpy()
        stats.no_target += int((~present).sum())
        frame, codes, rows = frame[present], codes[present], np.arange(first, first + len(frame))[present]
        _sample(stats, frame, rows, codes, plan.seed)
        check_image_files(frame, images, stats.image_sizes)  # a bad file stops the run here, before training
        _targets(stats, frame[plan.target], codes, plan.task, rows)
        train = frame[codes == 0]
        if len(train):
            features = coerce_features(train, schema)
            _numbers(stats, features[numeric].to_numpy(dtype=np.float64))
            _categories(stats, features)
    bar.close()
    header = {"shape": [total, len(plan.table.columns)], "columns": plan.table.columns}
    stats.fingerprint = hashlib.sha256(json.dumps(header).encode() + digest.digest()).hexdigest()
    _check(stats, plan)
    return stats


def _sample(stats: StreamStats, frame: pd.DataFrame, rows: np.ndarray, codes: np.ndarray, seed: int) -> None:
    """Keep the rows with the smallest hash keys (a uniform sample of at most SAMPLE_ROWS rows)."""
    from honing.data.streaming import SPLITS

    keys = uniform(rows, seed ^ _SAMPLE_SALT)
    rows = frame.assign(**{SPLIT_COLUMN: np.asarray(SPLITS)[codes], "__key__": keys})
    held = rows if stats.sample is None else pd.concat([stats.sample, rows], ignore_index=True)
    if len(held) > SAMPLE_ROWS:
        held = held.iloc[np.argpartition(held["__key__"].to_numpy(), SAMPLE_ROWS - 1)[:SAMPLE_ROWS]]
    stats.sample = held.sort_values("__key__", kind="stable").reset_index(drop=True)


def _targets(stats: StreamStats, y: pd.Series, codes: np.ndarray, task: str, rows: np.ndarray) -> None:
    """Count the chunk's labels, or merge its training targets' moments (``rows``: their row numbers)."""
    if task == "classification":
        for split in range(3):
            values = y[codes == split]
            counts = values.value_counts(sort=False) if values.dtype != object else \
                values.map(lambda v: (_label_key(v), v)).value_counts(sort=False)
            for value, count in counts.items():
                key, label = (value if values.dtype == object else (_label_key(value), value))
                label = strip_label(label.item() if hasattr(label, "item") else label)
                stats.labels.setdefault(key, [label, 0, 0, 0])[1 + split] += int(count)
        if len(stats.labels) > MAX_CLASSES:
            raise DataError(f"target '{y.name}' has more than {MAX_CLASSES} distinct values — too many classes to learn",
                            "set data.task: regression for a number, or choose another data.target")
    else:
        values = _finite_targets(y, rows)[codes == 0]
        if len(values):
            n, mean = len(values), float(values.mean())
            m2 = float(((values - mean) ** 2).sum())
            delta, total = mean - stats.y_mean, stats.y_n + n
            stats.y_mean += delta * n / total
            stats.y_m2 += m2 + delta * delta * stats.y_n * n / total
            stats.y_n = total
    for split in range(3):
        stats.rows[split] += int((codes == split).sum())


def _finite_targets(y: pd.Series, rows: np.ndarray) -> np.ndarray:
    """A regression target's values as numbers; DataError naming the first row (``rows``: their numbers,
    from 0 as in memory) whose value is not a finite number."""
    values = pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        at = int(np.argmax(bad))
        value = shortened(str(y.iloc[at]), 40)
        raise DataError(f"target '{y.name}' is '{value}' in row {rows[at]}, not a finite number; "
                        "regression needs one in every row", "fix or remove those rows (an empty target drops a "
                        "row), or set data.task: classification if the target is really a label")
    return values


def _numbers(stats: StreamStats, X: np.ndarray) -> None:
    """Merge a chunk's column moments into the running ones (Chan et al.)."""
    if not X.shape[1]:
        return
    present = ~np.isnan(X)
    n = present.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(X, axis=0) / n, 0.0)
    m2 = np.nansum((X - mean) ** 2, axis=0)
    total = stats.n + n
    delta = mean - stats.mean
    share = np.divide(n, total, out=np.zeros_like(n), where=total > 0)
    stats.m2 += m2 + delta * delta * stats.n * share
    stats.mean += delta * share
    stats.n = total
    stats.missing += len(X) - n
    stats.low = np.minimum(stats.low, np.where(present, X, np.inf).min(axis=0))
    stats.high = np.maximum(stats.high, np.where(present, X, -np.inf).max(axis=0))


def _categories(stats: StreamStats, features: pd.DataFrame) -> None:
    for name in stats.categorical:
        values = features[name]
        stats.category_missing[name] += int(values.isna().sum())
        stats.counts[name].update(values.value_counts(dropna=True).to_dict())
        if len(stats.counts[name]) > MAX_DISTINCT:
            raise DataError(f"column '{name}' has more than {MAX_DISTINCT} distinct values, too many to stream as "
                            "a category", f"set data.types.{name}: identifier (dropped), or data.drop: [{name}]")


def check_image_sizes(stats: StreamStats, image: ImageConfig) -> None:
    """DataError when the images have more than one size and ``data.image.size`` does not resize them
    (``image`` is ``data.image``), as in memory."""
    if image.size is None and len(stats.image_sizes) > 1:
        ((height, width), first), ((h, w), other) = list(stats.image_sizes.items())[:2]
        raise DataError(f"image {other} is {h}x{w} (height x width) but {first} is {height}x{width}",
                        f"set data.image.size (e.g. [{height}, {width}]) to resize every image to one size")


def _check(stats: StreamStats, plan: Plan) -> None:
    """DataError when the training split is empty, the validation or test split is empty though the
    recipe asks for it, or a class has no training row."""
    path, rows = plan.table.path, sum(stats.rows)
    if stats.rows[0] < 2:
        raise DataError(f"data file '{path}': {stats.rows[0]} training rows with a target after the split",
                        "add rows, or lower data.split.validation and data.split.test")
    asked = {"validation": 0.0 if plan.merge_validation else plan.validation, "test": plan.test}
    for (name, fraction), count in zip(asked.items(), stats.rows[1:]):
        if fraction > 0 and not count:  # as in memory (split_sizes)
            raise SplitError(f"data file '{path}': too few rows to split: its {rows} rows with a target give an empty "
                            f"{name} split (data.split.{name}: {fraction:g}; streaming splits rows at random by their "
                            "row number)", f"add rows, raise data.split.{name} or set it to 0, or set "
                            "data.streaming: false")
    if plan.task == "classification":
        if len(stats.labels) < 2:
            raise DataError(f"target '{plan.target}' has a single class; a classifier needs at least two",
                            "check data.target, or the rows in the data")
        missing = [(sum(e[1:]), e[0]) for e in stats.labels.values() if e[1] == 0]
        if missing:
            count, label = min(missing, key=lambda m: (m[0], str(m[1])))
            raise DataError(f"class '{label}' of target '{plan.target}' has {count} rows and none is in the "
                            "training split", "drop or merge rare classes, or add rows")
