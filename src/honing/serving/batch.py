"""Batch prediction on files of any size (``honing predict BUNDLE DATA -o OUT``): :func:`predict_file`
predicts the input in chunks of ``chunk_rows`` rows as :mod:`honing.serving.batch_read` streams them, so
memory stays flat whatever the file's length.

The output (``.csv`` or ``.parquet``, one column schema for every chunk) is written to a temporary file
beside ``out`` and renamed at the end: after any error nothing is at ``out`` (an existing one is kept).
:func:`predict_frame` predicts an in-memory frame with the same columns.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd
import pyarrow as pa

from honing.bundle import Bundle
from honing.bundle.manifest import SUPERVISED_TASKS, UNSUPERVISED_TASKS
from honing.data.preprocess import extra_columns
from honing.data.schema import Schema
from honing.data.sources import BUILTIN_PREFIX
from honing.errors import DataError, ServingError
from honing.progress import SILENT, Progress
from honing.serving.batch_read import checked_keep, open_source, prediction_names, proba_names

#: Output formats, by the suffix of ``out``.
OUTPUT_FORMATS = (".csv", ".parquet")


def predict_frame(bundle: Bundle, frame: pd.DataFrame, keep: list[str] | None = None) -> pd.DataFrame:
    """The ``keep`` columns of ``frame``, then ``prediction`` (a class label or a value; a continuous
    agent's ``action_0 …``) and, for classifiers, ``proba_<class>`` per class: what ``bundle.predict``
    / ``predict_proba`` give, from one preprocessing pass."""
    if bundle.task in UNSUPERVISED_TASKS:  # columns of their own (serving/unsupervised_batch.py)
        from honing.serving.unsupervised_batch import predict_frame as unsupervised_frame
        return unsupervised_frame(bundle, frame, keep)
    keep = checked_keep(bundle, keep, frame.columns, "the data")
    out = frame[keep].copy()
    labels, proba = _predictions(bundle, frame)
    for i, name in enumerate(prediction_names(bundle)):
        out[name] = labels[:, i] if labels.ndim == 2 else labels
    for i, name in enumerate(proba_names(bundle)):
        out[name] = proba[:, i]
    return out


def predict_file(bundle: Bundle, data: str | Path, out: str | Path, *, keep: list[str] | None = None,
                 chunk_rows: int = 50_000, progress: Progress = SILENT) -> int:
    """Predict every row of ``data`` into ``out`` (``.csv`` or ``.parquet``), ``chunk_rows`` rows at a
    time (see the module doc); returns the number of rows written.  The columns are those of
    :func:`predict_frame`; ``--keep`` columns are copied as read (text from a CSV file)."""
    if bundle.task in UNSUPERVISED_TASKS:  # columns of their own (serving/unsupervised_batch.py)
        from honing.serving.unsupervised_batch import predict_file as unsupervised_file
        return unsupervised_file(bundle, data, out, keep=keep, chunk_rows=chunk_rows, progress=progress)
    out = _checked_out(out, data)
    if chunk_rows < 1:
        raise ServingError(f"chunk_rows {chunk_rows}: must be at least 1", "e.g. 50000")
    source = open_source(bundle, data, keep, chunk_rows)
    _note_extra_columns(source.columns, bundle, progress)
    schema = _output_schema(bundle, source.keep_fields)
    bar = progress.rows(f"predicting {Path(str(data)).name}", source.total(0), approximate=source.approximate)
    rows, seen = 0, _ChunkWarnings()
    try:
        with _Output(out, schema) as output:
            for frame, kept in source.chunks:
                with seen.watch(), _naming(data, rows, len(frame)):
                    labels, proba = _predictions(bundle, frame)
                output.write(_output_table(schema, kept, labels, proba))
                rows += len(frame)
                bar.advance(len(frame), source.total(rows))
            if rows == 0:
                raise DataError(f"data file '{data}' has no rows", "the file must have a header and at least one row")
            seen.emit()
    except BaseException:
        bar.close(summary=False)
        raise
    bar.close()
    return rows


# --------------------------------------------------------------------------- predicting


def _predictions(bundle: Bundle, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (or values) and class probabilities (None for regression) of raw rows."""
    if len(frame) == 0 and bundle.task in SUPERVISED_TASKS:  # nothing to preprocess (an imputer refuses 0 rows)
        return bundle.predict(frame), np.empty((0, len(bundle.classes))) if bundle.is_classifier else None
    features = bundle.prepare(frame) if bundle.prepare else frame
    values, proba = bundle.scores(bundle.transform(features), frame)
    if proba is None:
        return values, None
    return np.asarray(bundle.classes)[values], proba


def _output_schema(bundle: Bundle, keep_fields: list[pa.Field]) -> pa.Schema:
    """One schema for every chunk: the kept columns, the label's type (from the bundle's classes, so a
    chunk of one class keeps it) and float64 probabilities."""
    label = pa.array(np.asarray(bundle.classes)).type if bundle.is_classifier else pa.float64()
    names = prediction_names(bundle)
    if bundle.task == "reinforcement" and names == ["prediction"]:
        label = pa.int64()  # an agent's action ids (a continuous agent's action_i are floats)
    probas = [pa.field(name, pa.float64()) for name in proba_names(bundle)]
    return pa.schema([*keep_fields, *(pa.field(name, label) for name in names), *probas])


def _output_table(schema: pa.Schema, kept: list, labels: np.ndarray, proba: np.ndarray | None) -> pa.Table:
    columns = [labels[:, i] for i in range(labels.shape[1])] if labels.ndim == 2 else [labels]
    arrays = [*kept, *(pa.array(c, type=schema.field(len(kept) + i).type) for i, c in enumerate(columns))]
    if proba is not None:
        arrays += [pa.array(proba[:, i], type=pa.float64()) for i in range(proba.shape[1])]
    return pa.Table.from_arrays(arrays, schema=schema)


@contextlib.contextmanager
def _naming(data: str | Path, start: int, count: int) -> Iterator[None]:
    """Prefix data errors raised while predicting a chunk with the file and the chunk's rows."""
    try:
        yield
    except DataError as exc:
        if str(data) in exc.what:
            raise
        raise DataError(f"{data} (rows {start + 1:,}–{start + count:,}): {exc.what}", exc.hint) from None


class _ChunkWarnings:
    """Warnings raised while predicting chunks, each shown once at the end (with how many more chunks
    raised it again: a column's unparsed numbers warn in every chunk that has some)."""

    def __init__(self) -> None:
        self.first: dict[str, warnings.WarningMessage] = {}
        self.more: Counter = Counter()

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for warning in caught:
            message = str(warning.message)
            key = message.split(":")[0] if message.startswith("column '") else message
            if key in self.first:
                self.more[key] += 1
            else:
                self.first[key] = warning

    def emit(self) -> None:
        for key, warning in self.first.items():
            n = self.more[key]
            again = f" (in the first chunk with any; {n} more chunk{'s' if n > 1 else ''} too)" if n else ""
            warnings.warn(f"{warning.message}{again}", warning.category, stacklevel=3)


def _note_extra_columns(columns: list[str], bundle: Bundle, progress: Progress) -> None:
    target = bundle.manifest.get("target")
    extra = [c for c in extra_columns(pd.DataFrame(columns=columns), Schema.from_dict(bundle.features)) if c != target]
    if extra:
        progress.note(f"ignoring columns the model does not use: {', '.join(extra[:10])}")


# --------------------------------------------------------------------------- writing


def _checked_out(out: str | Path, data: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise ServingError(f"--out {out}: unknown output format", "use a .csv or .parquet file name")
    if out.is_dir():
        raise ServingError(f"--out {out} is a directory", "give a file name to write to")
    if not str(data).startswith(BUILTIN_PREFIX) and out.resolve() == Path(data).resolve():
        raise ServingError(f"--out {out} is the input file", "write the predictions to another file")
    return out


class _Output:
    """A CSV or Parquet writer on a temporary file beside ``out``, renamed to ``out`` when the block
    ends without an error, deleted otherwise."""

    def __init__(self, out: Path, schema: pa.Schema):
        self.out, self.schema = out, schema
        self.tmp = out.parent / f".{out.stem}.tmp-{secrets.token_hex(4)}{out.suffix}"
        self._writer = None

    def __enter__(self) -> Self:
        with self._os_errors():
            self.out.parent.mkdir(parents=True, exist_ok=True)
            if self.out.suffix.lower() == ".csv":
                import pyarrow.csv as pacsv

                plain = all(n and not set(n) & set(',"\r\n') for n in self.schema.names)
                options = pacsv.WriteOptions(quoting_header="none" if plain else "needed")
                self._writer = pacsv.CSVWriter(str(self.tmp), self.schema, write_options=options)
            else:
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(str(self.tmp), self.schema)
        return self

    def write(self, table: pa.Table) -> None:
        with self._os_errors():
            self._writer.write_table(table)

    def __exit__(self, kind, exc, tb) -> None:
        try:  # on an error, the writer is closed quietly: the error that stopped it is the one to report
            with self._os_errors() if kind is None else contextlib.suppress(Exception):
                self._writer.close()
                if kind is None:
                    os.replace(self.tmp, self.out)
        finally:
            with contextlib.suppress(OSError):
                self.tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _os_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise ServingError(f"cannot write {self.out}: {exc.strerror or exc}",
                               "check the path, its permissions and the free disk space") from exc
