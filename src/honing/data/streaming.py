"""Tables larger than memory: a Parquet or CSV/TSV file read in chunks, split row by row.

:func:`streams` resolves ``data.streaming`` (``auto`` streams a Parquet / CSV / TSV file whose
in-memory size is estimated above :data:`AUTO_BYTES`).  :class:`TableFile` reads a file's rows in
chunks of ``data.chunk_rows`` as pandas frames, each with the number of its first row: Parquet through
``ParquetFile.iter_batches`` (one row group at a time), CSV/TSV through ``pyarrow.csv.open_csv``, every
column read as text and then converted to numbers where the file's first chunk held numbers, so
that every chunk parses alike.  A chunk can be one of several *shards* (reader processes): whole row
groups go to shards when the file has at least as many row groups as shards, else every shard reads
the file and keeps every N-th chunk; either way each row belongs to exactly one shard.

The split is a pure function of the row number (:func:`split_codes`): a seeded hash of the row's
position in the file is a uniform number u in [0, 1); u < test → test, u < test + validation →
validation, else train.  So a row's split never depends on how the file is chunked or sharded, and
the split fractions hold in expectation (stratified, grouped, time and given splits need the whole
table and are refused by :func:`check_split`).

:class:`Plan` is everything that turns a chunk into model inputs (picklable, for reader processes):
rows without a target dropped, the features coerced and transformed by the fitted preprocessor, the
target encoded (class codes, or a standardised value for training).
"""

from __future__ import annotations

import contextlib
import csv
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from honing.data.csv_chunks import NA_VALUES, rechunk, text_head
from honing.data.dataset import _label_key
from honing.data.image_pixels import uncached
from honing.data.image_sources import is_array_file, read_image_source, resolve_image_columns
from honing.data.preprocess import coerce_features
from honing.data.schema import Schema
from honing.data.sources import (
    BUILTIN_PREFIX,
    ZERO_PADDED,
    check_file,
    check_unique_columns,
    format_of,
    not_encoded,
    sniff_delimiter,
)
from honing.errors import DataError, HoningError, RecipeError
from honing.recipe import DataConfig, ReadConfig, SplitConfig

#: ``data.streaming: auto`` streams a file whose in-memory size is estimated above this (2 GiB).
AUTO_BYTES = 2 << 30
SPLITS = ("train", "validation", "test")
_MASK64 = (1 << 64) - 1


#: The format name of an image folder: its listing (paths and labels) is read into memory, the images
#: are decoded batch by batch.
FOLDER = "folder"
#: Rows of an image folder's listing per group (what a Parquet file's row groups are to it).
FOLDER_GROUP_ROWS = 4096


def streams(cfg: DataConfig) -> bool:
    """Whether ``data.streaming`` resolves to streaming for ``data.source`` (RecipeError for ``true`` on a
    source that cannot stream)."""
    if cfg.streaming is False:
        return False
    fmt = _stream_format(cfg.source)
    if cfg.streaming is True:
        if fmt is None:
            raise RecipeError(f"data.streaming: {cfg.source} cannot be streamed (only Parquet, uncompressed "
                              "CSV/TSV files and image folders can)", "set data.streaming: false, or convert the "
                              "data to Parquet")
        return True
    return fmt is not None and Path(cfg.source).exists() and estimated_bytes(Path(cfg.source), fmt, cfg) > AUTO_BYTES


def _stream_format(source: str) -> str | None:
    """``.parquet``, ``.csv`` or ``.tsv`` for a file that can stream, ``folder`` for an image folder, else None."""
    if source.startswith(BUILTIN_PREFIX) or is_array_file(source):
        return None
    if Path(source).expanduser().is_dir():
        return FOLDER
    try:
        fmt, compression = format_of(Path(source))
    except DataError:
        return None
    return fmt if fmt in (".parquet", ".csv", ".tsv") and compression is None else None


def estimated_bytes(path: Path, fmt: str, cfg: DataConfig | None = None) -> int:
    """The in-memory size of a table, estimated: rows × columns × 8 (Parquet), images × the first
    image's decoded float32 pixels (an image folder), or twice the file size."""
    if fmt == FOLDER:
        from honing.data.image_sources import peek_image_shape

        listing = read_image_source(path).frame
        shape = peek_image_shape(listing.head(1)[["path"]], cfg.image) if cfg is not None else (3, 1, 1)
        return len(listing) * int(np.prod(shape)) * 4
    if fmt == ".parquet":
        import pyarrow.parquet as pq

        with contextlib.suppress(pa.ArrowException, OSError):
            meta = pq.ParquetFile(path).metadata
            return int(meta.num_rows) * int(meta.num_columns) * 8
    return 2 * path.stat().st_size


def check_split(split: SplitConfig) -> None:
    """RecipeError for a split that streaming cannot make (it needs the whole table)."""
    for key in ("group", "time", "column"):
        if getattr(split, key):
            raise RecipeError(f"data.split.{key}: streaming splits rows at random by their row number, and a "
                              f"{key} split needs the whole table", f"remove data.split.{key}, or set "
                              "data.streaming: false")
    if split.stratify:
        raise RecipeError("data.split.stratify: streaming splits rows at random by their row number, and cannot "
                          "stratify", "remove data.split.stratify (the split is random), or set data.streaming: false")


def uniform(rows: np.ndarray, salt: int) -> np.ndarray:
    """A uniform number in [0, 1) per row number, from a seeded hash (splitmix64) of it."""
    z = rows.astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) & _MASK64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def split_codes(rows: np.ndarray, seed: int, validation: float, test: float) -> np.ndarray:
    """The split of each row number: 0 train, 1 validation, 2 test (see the module doc)."""
    u = uniform(rows, seed)
    codes = np.zeros(len(rows), dtype=np.int8)
    codes[u < validation + test] = 1
    codes[u < test] = 2
    return codes


# --------------------------------------------------------------------------- reading


@dataclass
class TableFile:
    """A Parquet or CSV/TSV file read in chunks (see the module doc)."""

    path: Path
    fmt: str
    columns: list[str]
    rows: int | None = None  # Parquet: from its metadata
    group_rows: list[int] = field(default_factory=list)  # Parquet: rows per row group
    delimiter: str = ","
    encoding: str = "utf8"
    numbers: dict[str, str] = field(default_factory=dict)  # CSV: column → int / float, as in the first chunk
    listing: pd.DataFrame | None = None  # an image folder: its paths and labels (shuffled once, seeded)
    images: list[str] = field(default_factory=list)  # image columns: relative paths are read from the file's folder

    @classmethod
    def open(cls, source: str | Path, read: ReadConfig | None = None) -> TableFile:
        """The file's columns and layout (DataError for a missing, empty or unreadable file)."""
        path = Path(source)
        fmt = _stream_format(str(path))
        if fmt != FOLDER:
            check_file(path)
        if fmt is None:
            raise RecipeError(f"data.streaming: {path} cannot be streamed (only Parquet, uncompressed CSV/TSV "
                              "files and image folders can)", "set data.streaming: false, or convert the data to "
                              "Parquet")
        if fmt == FOLDER:  # class folders sort the listing: one seeded shuffle mixes every group
            listing = read_image_source(path).frame
            listing = listing.iloc[np.random.default_rng(0).permutation(len(listing))].reset_index(drop=True)
            groups = [min(FOLDER_GROUP_ROWS, len(listing) - i) for i in range(0, len(listing), FOLDER_GROUP_ROWS)]
            return cls(path, fmt, list(listing.columns), len(listing), groups, listing=listing)
        if fmt == ".parquet":
            import pyarrow.parquet as pq

            with _arrow_errors(path):
                meta = pq.ParquetFile(path).metadata
                names = [n for n in pq.ParquetFile(path).schema_arrow.names if not n.startswith("__index_level_")]
            check_unique_columns(names, path)
            groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            return cls(path, fmt, names, int(meta.num_rows), groups)
        read = read or ReadConfig()  # (its delimiter is one character: the recipe schema checks it)
        table = cls(path, fmt, [])
        head, table.encoding = text_head(path, read.encoding)
        table.delimiter = read.delimiter or ("\t" if fmt == ".tsv" else sniff_delimiter(head))
        table.columns = next(csv.reader(io.StringIO(head), delimiter=table.delimiter), [])
        check_unique_columns(table.columns, path)
        first = next(table._csv_tables(table.columns, 10_000), None)
        if first is None:
            raise DataError(f"data file '{path}' has no rows", "the file must have a header and at least one row")
        table.numbers = _number_columns(first)
        return table

    def frames(self, columns: list[str], chunk_rows: int, shard: int = 0, shards: int = 1,
               order: np.ndarray | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
        """``(number of the first row, rows)`` of shard ``shard`` of ``shards``'s chunks; ``order``
        permutes the row groups of a Parquet file (an epoch's order)."""
        for first, frame in self._frames(columns, chunk_rows, shard, shards, order):
            if self.images and self.listing is None:  # (a folder's listing holds absolute paths already)
                images = [c for c in self.images if c in frame.columns]
                frame[images] = resolve_image_columns(frame[images], self.path.parent, images)
            yield first, frame

    def _frames(self, columns: list[str], chunk_rows: int, shard: int, shards: int,
                order: np.ndarray | None) -> Iterator[tuple[int, pd.DataFrame]]:
        if self.fmt in (".parquet", FOLDER):
            yield from self._group_frames(columns, chunk_rows, shard, shards, order)
            return
        first = 0
        for i, table in enumerate(self._csv_tables(columns, chunk_rows)):
            if i % shards == shard:
                yield first, _converted(table, self.numbers)
            first += table.num_rows

    def _group_frames(self, columns: list[str], chunk_rows: int, shard: int, shards: int,
                      order: np.ndarray | None) -> Iterator[tuple[int, pd.DataFrame]]:
        """The chunks of a Parquet file's row groups, or of an image folder listing's groups."""
        starts = np.concatenate([[0], np.cumsum(self.group_rows)]).astype(int)
        groups = list(order) if order is not None else list(range(len(self.group_rows)))
        by_group = len(groups) >= shards
        with contextlib.ExitStack() as stack:
            read = self._group_reader(stack, columns, chunk_rows)
            chunk = 0
            for group in (groups[shard::shards] if by_group else groups):
                first = int(starts[group])
                for frame in read(int(group), int(starts[group]), int(starts[group + 1])):
                    if by_group or chunk % shards == shard:
                        yield first, frame
                    first, chunk = first + len(frame), chunk + 1

    def _group_reader(self, stack: contextlib.ExitStack, columns: list[str], chunk_rows: int) -> Any:
        """``read(group, start, stop)``: the frames of one group, ``chunk_rows`` rows at most each."""
        if self.listing is not None:
            def rows(group: int, start: int, stop: int) -> Iterator[pd.DataFrame]:
                for at in range(start, stop, chunk_rows):
                    yield self.listing.iloc[at:min(at + chunk_rows, stop)][columns].reset_index(drop=True)
            return rows
        import pyarrow.parquet as pq

        stack.enter_context(_arrow_errors(self.path))
        parquet = stack.enter_context(pq.ParquetFile(self.path))

        def batches(group: int, start: int, stop: int) -> Iterator[pd.DataFrame]:
            for batch in parquet.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=columns,
                                              use_pandas_metadata=False):
                yield pa.Table.from_batches([batch]).replace_schema_metadata(None).to_pandas()
        return batches

    def _csv_tables(self, columns: list[str], chunk_rows: int) -> Iterator[pa.Table]:
        import pyarrow.csv as pacsv

        block = int(min(max(chunk_rows * 8 * max(len(self.columns), 1), 1 << 20), 64 << 20))
        with _arrow_errors(self.path, self.encoding):
            reader = pacsv.open_csv(
                self.path, read_options=pacsv.ReadOptions(encoding=self.encoding, block_size=block, use_threads=False),
                parse_options=pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(columns, pa.string()), include_columns=columns,
                    null_values=NA_VALUES, strings_can_be_null=True, quoted_strings_can_be_null=True))
            yield from rechunk(reader, chunk_rows)





def _number_columns(table: pa.Table) -> dict[str, str]:
    """The columns of a CSV chunk (all text) that hold numbers only: int, else float (a column with
    an integer written with leading zeros stays text, as in memory: :data:`~honing.data.sources.ZERO_PADDED`)."""
    import pyarrow.compute as pc

    out = {}
    for name, column in zip(table.column_names, table.columns):
        if column.null_count == len(column) or pc.any(pc.match_substring_regex(column, f"^{ZERO_PADDED}$")).as_py():
            continue
        for kind, type_ in (("int", pa.int64()), ("float", pa.float64())):
            try:
                column.cast(type_)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            out[name] = kind
            break
    return out


def _converted(table: pa.Table, numbers: dict[str, str]) -> pd.DataFrame:
    """A CSV chunk with the number columns of the first chunk as numbers (int, else float, else text)."""
    for i, name in enumerate(table.column_names):
        kind = numbers.get(name)
        for type_ in ((pa.int64(), pa.float64()) if kind == "int" else (pa.float64(),) if kind else ()):
            try:
                table = table.set_column(i, name, table.column(i).cast(type_))
                break
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
    return table.to_pandas()


@contextlib.contextmanager
def _arrow_errors(path: Path, encoding: str | None = None) -> Iterator[None]:
    """pyarrow's reading errors (and decoding errors, a text file's ``encoding`` given) as a DataError
    naming the file."""
    try:
        yield
    except UnicodeError as exc:
        raise not_encoded(path, encoding, getattr(exc, "reason", exc)) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, pa.ArrowIOError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160].replace(str(path), "the file")
        raise DataError(f"data file '{path}' cannot be read as a table ({detail})", "check the file") from None


# --------------------------------------------------------------------------- model inputs


def label_codes(y: pd.Series, lookup: dict[str, int]) -> np.ndarray:
    """Class codes of labels (-1 for a label not in ``lookup``), compared by value as the in-memory path does."""
    if y.dtype == object:  # mixed Python values: each one on its own
        return np.array([lookup.get(_label_key(v), -1) for v in y], dtype=np.int64)
    inverse, uniques = pd.factorize(y, use_na_sentinel=True)
    codes = np.array([lookup.get(_label_key(v), -1) for v in uniques] + [-1], dtype=np.int64)
    return codes[inverse]


@dataclass
class Plan:
    """What turns a chunk of rows into model inputs (see the module doc); picklable."""

    table: TableFile
    schema: Schema
    target: str
    task: str
    seed: int
    validation: float
    test: float
    chunk_rows: int
    merge_validation: bool = False  # validation rows train too (a refit on train + validation)
    preprocessor: Any = None
    labels: dict[str, int] | None = None  # label key → class code
    y_mean: float = 0.0
    y_scale: float = 1.0
    augment: tuple = ()  # data.augment's text steps, (index, step): copies of the training rows' text

    @property
    def columns(self) -> list[str]:
        """The columns read for model inputs: the features and the target."""
        return [*self.schema.feature_names, self.target]

    def splits(self, first: int, rows: int) -> np.ndarray:
        """The split code of ``rows`` rows from row number ``first`` (validation → train when merged)."""
        codes = split_codes(np.arange(first, first + rows, dtype=np.uint64), self.seed, self.validation, self.test)
        if self.merge_validation:
            codes[codes == 1] = 0
        return codes

    def target_values(self, frame: pd.DataFrame) -> np.ndarray:
        """Class codes (-1 where missing or unknown), or float values (NaN where missing)."""
        y = frame[self.target]
        if self.task == "classification":
            codes = label_codes(y, self.labels or {})
            codes[y.isna().to_numpy()] = -1
            return codes
        return pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64)

    def arrays(self, first: int, frame: pd.DataFrame, wanted: tuple[int, ...], standardise: bool,
               groups: tuple[str, ...] = (), augment_seed: int | None = None) -> tuple[np.ndarray, ...]:
        """Inputs (float32), targets and split codes of the rows of ``frame`` in the ``wanted`` splits
        that have a target; a training target is standardised (regression) when ``standardise``.
        Then the raw values of the ``groups`` columns in those rows, one array each (e.g. the
        sensitive columns of the fairness audit).  With ``augment_seed`` (training rows only) the
        rows are followed by the :attr:`augment` steps' copies, their text rewritten from that seed."""
        codes = self.splits(first, len(frame))
        y = self.target_values(frame)
        keep = np.isin(codes, wanted) & ((y >= 0) if self.task == "classification" else ~np.isnan(y))
        if not keep.any():
            return np.zeros((0, 0), np.float32), y[:0], codes[:0], *(_group_values(frame[g])[:0] for g in groups)
        rows, y, codes = (frame[keep] if not keep.all() else frame), y[keep], codes[keep]
        if augment_seed is not None and self.augment:
            rows = self.augmented(rows, augment_seed)
            y, codes = (np.tile(a, len(rows) // len(y)) for a in (y, codes))  # originals, then each copy
        with warnings.catch_warnings(), uncached():  # unparsed values were reported once, by the statistics pass
            warnings.simplefilter("ignore", UserWarning)
            X = np.asarray(self.preprocessor.transform(coerce_features(rows, self.schema)), dtype=np.float32)
        if self.task == "regression" and standardise:
            y = ((y - self.y_mean) / self.y_scale).astype(np.float32)
        return X, y, codes, *(_group_values(rows[g]) for g in groups)

    def augmented(self, rows: pd.DataFrame, seed: int) -> pd.DataFrame:
        """``rows`` and the copies the text steps add, as in memory (:mod:`honing.data.augment_text`)."""
        from honing.data.augment_text import augment_training_text

        columns = [c.name for c in self.schema.features if c.kind == "text"]
        for i, step in self.augment:
            rows = augment_training_text(rows, columns, step, seed, index=i)
        return rows


def _group_values(column: pd.Series) -> np.ndarray:
    """A column's raw values as numbers (or booleans), else as Python objects: what passes a
    DataLoader untouched, or as a tensor (dates and times would not)."""
    values = column.to_numpy()
    return values if values.dtype.kind in "biuf" else values.astype(object)


def split_index(name: str) -> int:
    """The code of a split name (0 train, 1 validation, 2 test)."""
    try:
        return SPLITS.index(name)
    except ValueError:
        raise HoningError(f"unknown split '{name}'", f"use one of {', '.join(SPLITS)}") from None
