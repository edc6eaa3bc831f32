"""Reading tables: CSV/TSV/TXT (encoding and delimiter sniffed), Parquet, JSON Lines, builtins,
and image folders / array files (:mod:`honing.data.image_sources`).

:func:`read_table` turns a path or ``builtin:NAME`` into a :class:`pandas.DataFrame`.  Text
formats may be compressed (``.csv.gz``, ``.tsv.bz2``, ``.jsonl.xz`` …).  Every user mistake (a
missing file, an unknown extension, an empty or unparsable file) raises
:class:`honing.errors.DataError` with a one-line message that names the file.

:func:`fingerprint` gives a stable sha256 of a frame's content, column names and dtypes.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import io
import json
import lzma
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from honing.data.image_sources import is_image_source, read_image_source, resolve_image_columns
from honing.errors import DataError

BUILTIN_PREFIX = "builtin:"
SUPPORTED_FORMATS = (
    ".csv",
    ".tsv",
    ".tab",
    ".txt",
    ".parquet",
    ".pq",
    ".jsonl",
    ".ndjson",
    ".json",
)
COMPRESSIONS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}
TEXT_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
DELIMITERS = ",;\t|"
_SAMPLE_CHARS = 64_000
#: An integer written with leading zeros (``007``, ``02134``, ``-05``): a code, not a quantity. A text
#: table's column holding one is read as text, so the codes keep their zeros (zip codes, ids, class labels).
ZERO_PADDED = r"\s*[+-]?0\d+\s*"
_FORMATS_HINT = (
    "supported formats: "
    + ", ".join(SUPPORTED_FORMATS)
    + " (text formats may end in .gz/.bz2/.xz), or builtin:NAME"
)


def read_table(
    source: str | Path, *, delimiter: str | None = None, encoding: str | None = None,
    image_columns: Iterable[str] = (), text_columns: Iterable[str] = (),
) -> pd.DataFrame:
    """Read ``source`` (a path or ``builtin:NAME``) into a DataFrame.

    ``delimiter`` and ``encoding`` apply to text formats; when omitted they are sniffed; a text format's
    ``text_columns`` are read as text, not parsed as numbers (a model's categories trained on text).  An image
    folder or array file is read by :func:`honing.data.image_sources.read_image_source`.  In a
    table, relative paths in columns of image paths (those that look like them, and
    ``image_columns``) are made absolute against the table's folder.
    """
    if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
        from honing.data.builtin import load_builtin

        return load_builtin(source[len(BUILTIN_PREFIX) :]).frame
    path = Path(source)
    if is_image_source(path):
        return read_image_source(path).frame
    check_file(path)
    fmt, compression = format_of(path)
    if fmt == ".parquet":
        df = _read_parquet(path)
    else:
        text = _decode(_read_bytes(path, compression), path, encoding)
        if fmt == ".jsonl":
            df = _read_jsonl(text, path)
        elif fmt == ".json":
            df = _read_json_array(text, path)
        else:
            sep = delimiter or ("\t" if fmt == ".tsv" else sniff_delimiter(text))
            df = _read_csv(text, path, sep, text_columns)
    check_unique_columns(df.columns, path)
    if len(df) == 0:
        raise DataError(f"data file '{path}' has no rows", "the file must have a header and at least one row")
    return resolve_image_columns(df, path.parent, image_columns)


def check_unique_columns(names, path: Path) -> None:
    """DataError naming the first column name that occurs twice (blank names are not compared)."""
    seen: set[str] = set()
    for name in map(str, names):
        if name in seen:
            raise DataError(f"data file '{path}': duplicate column name '{name}'", "rename one of the columns")
        if name.strip():
            seen.add(name)


def _raw_header(text: str, sep: str) -> list[str]:
    """The first non-blank record of delimited text, as written (before pandas renames duplicates)."""
    if len(sep) != 1:
        return []
    try:
        return next((row for row in csv.reader(io.StringIO(text), delimiter=sep) if row), [])
    except csv.Error:
        return []


def format_of(path: Path) -> tuple[str, str | None]:
    """The normalised format (``.csv``, ``.tsv``, ``.parquet``, ``.jsonl``, ``.json``) and compression."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in COMPRESSIONS else None
    ext = suffixes[-1] if suffixes else ""
    aliases = {".tab": ".tsv", ".txt": ".csv", ".pq": ".parquet", ".ndjson": ".jsonl"}
    fmt = aliases.get(ext, ext)
    if fmt not in {".csv", ".tsv", ".parquet", ".jsonl", ".json"} or (compression and fmt == ".parquet"):
        shown = "".join(path.suffixes) or "no extension"
        raise DataError(f"data file '{path}': unknown format ({shown})", _FORMATS_HINT)
    return fmt, compression


def check_file(path: Path) -> None:
    """Raise for a missing path, a directory, an unreadable or a 0-byte file."""
    if path.is_dir():
        raise DataError(f"data file '{path}' is a directory", "point data.source at a file inside it")
    if not path.exists():
        raise DataError(
            f"data file '{path}' not found",
            "check the path (relative paths start from the current directory)",
        )
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except PermissionError:
        raise DataError(f"data file '{path}' cannot be read (permission denied)", "check the file's permissions") from None
    except OSError as exc:
        raise DataError(f"data file '{path}' cannot be read ({exc.strerror or exc})", "check the file") from None
    if path.stat().st_size == 0:
        raise DataError(f"data file '{path}' has no rows (it is empty)", "the file must have a header and at least one row")


def _read_bytes(path: Path, compression: str | None) -> bytes:
    """The file's bytes, decompressed when the name ends in .gz/.bz2/.xz."""
    raw = path.read_bytes()
    if compression is None:
        return raw
    try:
        return COMPRESSIONS[compression](raw)
    except (OSError, EOFError, ValueError, lzma.LZMAError):
        raise DataError(f"data file '{path}' is not valid {compression} data", "check the file, or rename it") from None


def unknown_encoding(encoding: str) -> DataError:
    """The error for a ``data.read.encoding`` that names no text encoding."""
    return DataError(f"data.read.encoding: unknown encoding '{encoding}'", "e.g. utf-8, cp1252, latin-1")


def not_encoded(path: Path, encoding: str, detail: object) -> DataError:
    """The error for a text file whose bytes are not in the encoding it is read with."""
    return DataError(f"data file '{path}' is not valid {encoding} ({detail})",
                     "set data.read.encoding to the file's encoding, or leave it out to sniff it")


def _decode(raw: bytes, path: Path, encoding: str | None) -> str:
    """Decode with the given encoding, or the first of :data:`TEXT_ENCODINGS` that works."""
    if encoding:
        try:
            return raw.decode(encoding)
        except LookupError:
            raise unknown_encoding(encoding) from None
        except UnicodeDecodeError as exc:
            raise not_encoded(path, encoding, f"byte {exc.start}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    if b"\x00" in raw[:_SAMPLE_CHARS]:
        raise DataError(f"data file '{path}' is not a text table (it contains binary data)", _FORMATS_HINT)
    for candidate in TEXT_ENCODINGS:
        try:
            return raw.decode(candidate)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def sniff_delimiter(text: str) -> str:
    """The delimiter among ``, ; TAB |`` used in ``text`` (``,`` when nothing fits)."""
    sample = text[:_SAMPLE_CHARS]
    if len(text) > _SAMPLE_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return _consistent_delimiter(sample)


def _consistent_delimiter(sample: str) -> str:
    """The candidate that splits every sampled line into the same number (> 1) of fields."""
    best, best_fields = ",", 1
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    for delim in DELIMITERS:
        try:
            counts = {len(row) for row in csv.reader(lines, delimiter=delim)}
        except csv.Error:
            continue
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = delim, fields
    return best


def _read_csv(text: str, path: Path, sep: str, text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Parse delimited text (``text_columns`` as text); parser failures become DataError."""
    if not text.strip():
        raise DataError(f"data file '{path}' has no rows (it is blank)", "the file must have a header and at least one row")
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=dict.fromkeys(text_columns, str) or None)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' has no rows", "the file must have a header and at least one row") from None
    except (pd.errors.ParserError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"data file '{path}' cannot be parsed as a table ({first})",
            f"check the file; the delimiter used was {sep!r} (set data.read.delimiter to change it)",
        ) from None
    check_unique_columns(_raw_header(text, sep), path)
    return _zero_padded_as_text(df, text, sep)


def _zero_padded_as_text(df: pd.DataFrame, text: str, sep: str) -> pd.DataFrame:
    """``df`` with its number columns that hold a :data:`ZERO_PADDED` integer read again as text."""
    numbers = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    if not numbers or not re.search(rf'(?:^|[\n{re.escape(sep)}])"?[ \t]*[+-]?0\d', text):  # (a quick look first)
        return df
    raw = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, usecols=numbers)
    padded = [c for c in numbers if raw[c].str.fullmatch(ZERO_PADDED).any()]
    return df.assign(**{c: raw[c] for c in padded}) if padded else df


def _read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet file (the named index columns a pandas writer kept, as columns: data like any
    other, as the streamed reader sees them); an invalid file becomes DataError."""
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a corrupt file
        check_unique_columns(_parquet_names(path), path)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(f" '{path}'", "").replace(str(path), "the file")
        raise DataError(f"data file '{path}' is not a valid Parquet file ({first})", "check the file") from None
    named = [name for name in frame.index.names if name is not None]
    return frame.reset_index(level=named) if named else frame


def _parquet_names(path: Path) -> list[str]:
    """The column names in a Parquet file's schema (none when the schema cannot be read)."""
    try:
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except Exception:  # noqa: BLE001 - not readable as Parquet: reported by the caller
        return []


def _read_jsonl(text: str, path: Path) -> pd.DataFrame:
    """One JSON object per non-blank line; nested values are kept as JSON strings."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"data file '{path}': line {number} is not valid JSON ({exc.msg})",
                "JSON Lines files hold one JSON object per line",
            ) from None
        if not isinstance(record, dict):
            raise DataError(f"data file '{path}': line {number} is not a JSON object", "JSON Lines files hold one JSON object per line")
        _check_record_keys(record, path)
        records.append(record)
    return _frame_from_records(records)


def _read_json_array(text: str, path: Path) -> pd.DataFrame:
    """A JSON array of objects (one per row)."""
    try:
        data = json.loads(text, object_pairs_hook=_json_object)
    except json.JSONDecodeError as exc:
        raise DataError(f"data file '{path}' is not valid JSON ({exc.msg} at line {exc.lineno})", "check the file") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"data file '{path}' is not a JSON array of objects", "use [{\"col\": value, …}, …] or JSON Lines")
    for record in data:
        _check_record_keys(record, path)
    return _frame_from_records(data)


class _JsonObject(dict):
    """A decoded JSON object that remembers the first key it held twice."""

    duplicate: str | None = None


def _json_object(pairs: list[tuple[str, object]]) -> _JsonObject:
    """``json.loads`` object hook: a :class:`_JsonObject`, noting a repeated key."""
    obj = _JsonObject(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                obj.duplicate = key
                break
            seen.add(key)
    return obj


def _check_record_keys(record: object, path: Path) -> None:
    """DataError when a row object repeats a key (nested objects are not rows and are not checked)."""
    duplicate = getattr(record, "duplicate", None)
    if duplicate is not None:
        raise DataError(f"data file '{path}': duplicate column name '{duplicate}'", "rename one of the columns")


def _frame_from_records(records: list[dict]) -> pd.DataFrame:
    """A frame from row dicts, with nested lists/objects serialised to JSON text."""
    flat = [
        {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for k, v in rec.items()}
        for rec in records
    ]
    return pd.DataFrame.from_records(flat) if flat else pd.DataFrame()


def fingerprint(df: pd.DataFrame) -> str:
    """A sha256 hex digest of the frame's values, column names, dtypes and shape (not its index)."""
    digest = hashlib.sha256()
    header = {"shape": list(df.shape), "columns": [str(c) for c in df.columns], "dtypes": [str(t) for t in df.dtypes]}
    digest.update(json.dumps(header).encode())
    if df.shape[1] and len(df):
        digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()
