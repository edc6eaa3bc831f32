"""``honing predict`` of clustering, reduction and anomaly bundles: the ``--keep`` columns, then the
output columns of :mod:`honing.bundle.unsupervised_outputs`, in chunks like any batch prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from honing.bundle.unsupervised_outputs import columns as _columns
from honing.bundle.unsupervised_outputs import outputs
from honing.errors import DataError, ServingError
from honing.progress import SILENT, Progress


def predict_frame(bundle: Any, frame: pd.DataFrame, keep: list[str] | None = None) -> pd.DataFrame:
    """The ``keep`` columns of ``frame``, then the output columns."""
    from honing.serving.batch_read import checked_keep

    keep = checked_keep(bundle, keep, frame.columns, "the data")
    return pd.concat([frame[keep].copy(), outputs(bundle, frame)], axis=1)


def predict_file(bundle: Any, data: str | Path, out: str | Path, *, keep: list[str] | None = None,
                 chunk_rows: int = 50_000, progress: Progress = SILENT) -> int:
    """``honing predict`` for these bundles: like :func:`honing.serving.batch.predict_file` (chunks,
    atomic output), with the output columns of the module doc."""
    from honing.serving import batch
    from honing.serving.batch_read import open_source

    out = batch._checked_out(out, data)
    if chunk_rows < 1:
        raise ServingError(f"chunk_rows {chunk_rows}: must be at least 1", "e.g. 50000")
    source = open_source(bundle, data, keep, chunk_rows)  # (which checks the --keep columns)
    batch._note_extra_columns(source.columns, bundle, progress)
    types = {"cluster": pa.int64(), "is_anomaly": pa.int64()}
    schema = pa.schema([*source.keep_fields, *(pa.field(c, types.get(c, pa.float64())) for c in _columns(bundle))])
    rows, seen = 0, batch._ChunkWarnings()
    with batch._Output(out, schema) as output:
        for frame, kept in source.chunks:
            with seen.watch(), batch._naming(data, rows, len(frame)):
                values = outputs(bundle, frame)
            arrays = [*kept, *(pa.array(values[f.name].to_numpy(), type=f.type) for f in list(schema)[len(kept):])]
            output.write(pa.Table.from_arrays(arrays, schema=schema))
            rows += len(frame)
        if rows == 0:
            raise DataError(f"data file '{data}' has no rows", "the file must have a header and at least one row")
        seen.emit()
    return rows
