"""Reading the input of batch prediction in chunks (:func:`open_source`), so memory stays flat whatever
the file's length; the header is checked against the bundle before any row is read.

* CSV / TSV / TXT stream through ``pyarrow.csv.open_csv`` (delimiter by suffix or sniffed, encoding
  (UTF-8, else cp1252 / latin-1) sniffed, from the first MiB).  Only the columns the model needs (and
  ``--keep`` ones) are read, all as text so every chunk parses alike; numbers are then converted as the
  whole-file reader would, and pandas' missing-value markers (``""``, ``NA``, ``null`` …) are missing.
* Parquet streams through ``ParquetFile.iter_batches`` (a row group is read at once).
* Anything else (JSON Lines, JSON, compressed text, ``builtin:NAME``, and any table of a model with an
  image column, whose relative paths are resolved against the table's folder) is read whole with
  :func:`~honing.data.sources.read_table`, then cut in chunks.

:func:`checked_keep` checks ``--keep`` columns against the data and the output's own columns
(:func:`output_names`); :mod:`honing.serving.batch` predicts the chunks and writes the output.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from honing.bundle import Bundle
from honing.bundle.manifest import UNSUPERVISED_TASKS
from honing.data.csv_chunks import NA_VALUES, rechunk, text_head
from honing.data.image_sources import is_image_source
from honing.data.schema import Schema
from honing.data.sources import (
    BUILTIN_PREFIX,
    check_file,
    check_unique_columns,
    format_of,
    read_table,
    sniff_delimiter,
)
from honing.errors import DataError

_BLOCK_BYTES = (1 << 20, 64 << 20)  # CSV read block: room for about chunk_rows rows, within these bounds

Chunk = tuple[pd.DataFrame, list]  # rows to predict, and the arrow arrays of the --keep columns


def proba_names(bundle: Bundle) -> list[str]:
    """The output's probability columns, ``proba_<class>`` per class (none for a regressor)."""
    return [f"proba_{c}" for c in bundle.class_texts] if bundle.is_classifier else []


def prediction_names(bundle: Bundle) -> list[str]:
    """The output's prediction columns: ``prediction``, or a continuous agent's ``action_0 …``."""
    columns = getattr(bundle.model, "action_columns", None) if bundle.task == "reinforcement" else None
    return columns or ["prediction"]


def output_names(bundle: Bundle) -> list[str]:
    """Every column the output gives besides the kept ones."""
    if bundle.task in UNSUPERVISED_TASKS:
        from honing.bundle.unsupervised_outputs import columns

        return columns(bundle)
    return [*prediction_names(bundle), *proba_names(bundle)]


def keep_names(keep: str | list | None) -> list[str]:
    """The columns to keep (one name or several) as text, without repeats."""
    return list(dict.fromkeys(map(str, [keep] if isinstance(keep, str) else keep or [])))


def checked_keep(bundle: Bundle, keep: str | list | None, columns, where: str) -> list[str]:
    """``keep`` (one column name or several) as text, without repeats; DataError for a column not in
    ``columns`` (``where`` names them) or named like an output one (:func:`output_names`)."""
    keep = keep_names(keep)
    missing = [c for c in keep if c not in set(map(str, columns))]
    if missing:
        raise DataError(f"--keep: no column {', '.join(missing)} in {where}", "check the column names")
    clash = [c for c in keep if c in output_names(bundle)]
    if clash:
        raise DataError(f"--keep {clash[0]}: the output has its own '{clash[0]}' column",
                        "rename that column in the data, or keep another")
    return keep


@dataclass
class Source:
    """An input opened for streaming: its columns, the arrow fields of the kept ones, its chunks and
    its (estimated) total rows given the rows done so far."""

    columns: list[str]
    keep_fields: list[pa.Field]
    chunks: Iterator[Chunk]
    total: Callable[[int], int | None]
    approximate: bool = False


def open_source(bundle: Bundle, data: str | Path, keep: str | list | None, chunk_rows: int) -> Source:
    """The right reader for ``data`` (CSV/TSV and Parquet files stream; the rest is read whole), its
    header checked against the bundle before any row is read."""
    keep = keep_names(keep)
    images = any(c.get("kind") == "image" for c in bundle.features.get("columns", []))
    if str(data).startswith(BUILTIN_PREFIX) or is_image_source(Path(data)) or images:
        # image paths in a table are resolved against its folder by read_table; pixels dominate memory anyway
        return _whole_source(bundle, data, keep, chunk_rows)
    check_file(Path(data))
    fmt, compression = format_of(Path(data))
    if fmt == ".parquet":
        return _parquet_source(bundle, Path(data), keep, chunk_rows)
    if fmt in (".csv", ".tsv") and compression is None:
        return _csv_source(bundle, Path(data), fmt, keep, chunk_rows)
    return _whole_source(bundle, data, keep, chunk_rows)


def _needed_columns(bundle: Bundle, columns: list[str], keep: list[str], data: str | Path) -> list[str]:
    """The columns to read: the features, the decision's group column, then the kept ones; DataError
    naming the file for any that is missing."""
    names = [c.name for c in Schema.from_dict(bundle.features).features]
    lacking = [c for c in names if c not in columns]
    if lacking:
        raise DataError(f"data file '{data}' lacks columns: {', '.join(lacking)}",
                        "the data must have every feature column the model was trained on")
    group = (bundle.decision.get("groups") or {}).get("column")
    if group is not None and group not in columns:
        raise DataError(f"data file '{data}' has no column '{group}', and this model decides with one threshold "
                        f"per '{group}' group (audit.mitigate: threshold)", f"add the '{group}' column")
    keep = checked_keep(bundle, keep, columns, f"data file '{data}'")
    return list(dict.fromkeys([*names, *([group] if group else []), *keep]))


def read_whole(bundle: Bundle, data: str | Path) -> pd.DataFrame:
    """A file read whole for ``bundle`` as the streamed readers read it: the columns of categories
    trained on text stay text (a CSV's 1.0 is the category "1.0", not the number 1)."""
    return read_table(data, text_columns=text_trained(bundle))


def text_trained(bundle: Bundle) -> list[str]:
    """The categorical and boolean features trained on text (not on numbers)."""
    return [c.name for c in Schema.from_dict(bundle.features).features
            if c.kind in ("categorical", "boolean") and not _numeric(c.dtype)]


def _whole_source(bundle: Bundle, data: str | Path, keep: list[str], chunk_rows: int) -> Source:
    """A file read whole (JSON, compressed text, builtin:NAME …), predicted in chunks."""
    frame = read_whole(bundle, data)
    columns = [str(c) for c in frame.columns]
    _needed_columns(bundle, columns, keep, data)
    kept = pa.table({k: _arrow_column(frame[k]) for k in keep})

    def chunks() -> Iterator[Chunk]:
        for start in range(0, len(frame), chunk_rows):
            yield frame.iloc[start:start + chunk_rows], kept.slice(start, chunk_rows).columns

    return Source(columns, list(kept.schema), chunks(), lambda done: len(frame))


def _arrow_column(values: pd.Series) -> pa.Array:
    """A kept column as arrow; a column of mixed Python objects as text."""
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if pd.isna(v) else str(v) for v in values.tolist()], type=pa.string())


def _parquet_source(bundle: Bundle, path: Path, keep: list[str], chunk_rows: int) -> Source:
    import pyarrow.parquet as pq

    with _arrow_errors(path, "is not a valid Parquet file", "check the file"):
        parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    check_unique_columns(schema.names, path)
    needed = _needed_columns(bundle, schema.names, keep, path)
    rows = parquet.metadata.num_rows

    def chunks() -> Iterator[Chunk]:
        with parquet, _arrow_errors(path, "is not a valid Parquet file", "check the file"):
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=needed, use_pandas_metadata=False):
                table = pa.Table.from_batches([batch]).replace_schema_metadata(None)
                yield table.to_pandas(), [table.column(k) for k in keep]

    return Source(list(schema.names), [schema.field(k) for k in keep], chunks(), lambda done: rows)


def _csv_source(bundle: Bundle, path: Path, fmt: str, keep: list[str], chunk_rows: int) -> Source:
    import pyarrow.csv as pacsv

    head, encoding = text_head(path)
    sep = "\t" if fmt == ".tsv" else sniff_delimiter(head)
    columns = next(csv.reader(io.StringIO(head), delimiter=sep), [])
    check_unique_columns(columns, path)
    needed = _needed_columns(bundle, columns, keep, path)
    lines = max(head.count("\n") - 1, 1)
    row_bytes = len(head.encode(encoding, errors="replace")) / lines
    block = int(min(max(chunk_rows * row_bytes * 1.25, _BLOCK_BYTES[0]), _BLOCK_BYTES[1]))
    hint = f"check that row; the delimiter used was {sep!r}"
    with _arrow_errors(path, "cannot be parsed as a table", hint):
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(encoding=encoding, block_size=block, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(needed, pa.string()), include_columns=needed, null_values=NA_VALUES,
                strings_can_be_null=True, quoted_strings_can_be_null=True))
    schema = Schema.from_dict(bundle.features)
    numeric = {c.name for c in schema.features if c.kind == "numeric"}
    numberlike = {c.name for c in schema.features if c.kind in ("categorical", "boolean") and _numeric(c.dtype)}

    def chunks() -> Iterator[Chunk]:
        with _arrow_errors(path, "cannot be parsed as a table", hint):
            for table in rechunk(reader, chunk_rows):
                yield _csv_frame(table, numeric, numberlike), [table.column(k) for k in keep]

    estimate = int(path.stat().st_size / row_bytes) if lines > 1 else None
    fields = [pa.field(k, pa.string()) for k in keep]
    return Source(columns, fields, chunks(), lambda done: None if estimate is None else max(estimate, done), True)


def _numeric(dtype: str) -> bool:
    """Whether a training dtype (as the schema stores it) held numbers (not booleans)."""
    try:
        kind = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return False
    return pd.api.types.is_numeric_dtype(kind) and not pd.api.types.is_bool_dtype(kind)


def _csv_frame(table: pa.Table, numeric: set[str], numberlike: set[str]) -> pd.DataFrame:
    """A chunk of text columns as the whole-file reader would give it: numeric features as float64
    when every cell is a plain number (else left as text for the feature coercion to parse and warn
    about), and number-valued cells of categories trained on numbers as numbers ("1.0" → 1)."""
    for i, name in enumerate(table.column_names):
        if name in numeric:
            with contextlib.suppress(pa.ArrowInvalid):
                table = table.set_column(i, name, table.column(i).cast(pa.float64()))
    frame = table.to_pandas()
    for name in numberlike & set(frame.columns):
        numbers = pd.to_numeric(frame[name], errors="coerce")
        frame[name] = frame[name].astype(object).where(numbers.isna(), numbers)
    return frame


@contextlib.contextmanager
def _arrow_errors(path: Path, what: str, hint: str) -> Iterator[None]:
    """pyarrow's reading errors as a DataError naming the file (and the row, when pyarrow gives it)."""
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, pa.ArrowIOError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        detail = detail.removeprefix("CSV parse error: ").replace(str(path), "the file").replace("Row #", "row ")
        detail = detail if len(detail) <= 160 else detail[:159] + "…"
        if "invalid UTF8" in detail:
            hint = "the file's first MiB read as UTF-8 and this row does not: save the whole file as UTF-8"
        raise DataError(f"data file '{path}' {what} ({detail})", hint) from None
