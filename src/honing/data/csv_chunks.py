"""Reading text tables in chunks, shared by streamed training (:mod:`honing.data.streaming`) and batch
prediction (:mod:`honing.serving.batch_read`): pandas' missing-value markers, the decoded head of a
file (for the delimiter and the encoding), and record batches cut into tables of a fixed row count.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from honing.data.sources import TEXT_ENCODINGS, not_encoded, unknown_encoding
from honing.errors import DataError

#: Cells read as missing, as :func:`pandas.read_csv` does by default.
NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
             "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
HEAD_BYTES = 1 << 20


def text_head(path: Path, encoding: str | None = None) -> tuple[str, str]:
    """The first MiB of a text file, decoded (to its last full line), and the encoding to read it with:
    ``encoding`` (``data.read.encoding``) when given, else the one sniffed."""
    with path.open("rb") as fh:
        raw = fh.read(HEAD_BYTES)
        more = bool(fh.read(1))
    if encoding:
        return _head_as(raw, more, path, encoding), encoding
    if more and b"\n" in raw:
        raw = raw[: raw.rindex(b"\n") + 1]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace"), "utf-16"
    if b"\x00" in raw:
        raise DataError(f"data file '{path}' is not a text table (it contains binary data)",
                        "give a CSV/TSV/Parquet/JSONL file")
    for sniffed in TEXT_ENCODINGS:
        with contextlib.suppress(UnicodeDecodeError):
            return raw.decode(sniffed), "utf8" if sniffed.startswith("utf-8") else sniffed
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _head_as(raw: bytes, more: bool, path: Path, encoding: str) -> str:
    """``raw`` decoded as ``encoding`` (to its last full line when the file goes on): DataError naming
    data.read.encoding when it is no text encoding, or the file when its bytes are not in it."""
    try:
        if not getattr(codecs.lookup(encoding), "_is_text_encoding", True):  # a bytes codec, e.g. base64
            raise LookupError(encoding)
        text = codecs.getincrementaldecoder(encoding)().decode(raw, final=not more)
    except LookupError:
        raise unknown_encoding(encoding) from None
    except UnicodeError as exc:
        raise not_encoded(path, encoding, f"byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else exc) from None
    return text[: text.rindex("\n") + 1] if more and "\n" in text else text


def rechunk(batches, rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``rows`` rows (the last one fewer) from record batches of any size."""
    pending, count = [], 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            count, batch = count + take, batch.slice(take)
            if count == rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)
