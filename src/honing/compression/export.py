"""``honing export BUNDLE --format onnx``: convert the bundle's model to ONNX, check it against the native
model on held-out rows, attach it to the bundle (``model.onnx``, the ``onnx`` backend that serving uses
when present) and optionally write it as a standalone file.

The ONNX graph takes the bundle's *preprocessed* matrix (float32, one column per encoded feature, or the
token ids of a text model): the preprocessing stays in Python, in the bundle, as for every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from honing.bundle import Bundle
from honing.bundle.store import attach_onnx
from honing.errors import CompressionError
from honing.progress import Progress
from honing.tracking import atomic_write

#: Rows compared between ONNX Runtime and the native model at export.
PARITY_ROWS = 1000


@dataclass
class ExportResult:
    """Where the ONNX model went and how close it is to the native model."""

    bundle: Path
    file: Path | None
    max_abs_diff: float
    rows: int
    size_bytes: int


def export_bundle(parent: Bundle, X: np.ndarray, file: Path | None, progress: Progress) -> ExportResult:
    """Export ``parent``'s model, check parity on ``X`` (preprocessed held-out rows), attach it to the
    bundle and write ``file`` when given."""
    from honing.compression.onnx_export import check_parity, export_onnx

    if file is not None and file.suffix.lower() != ".onnx":
        raise CompressionError(f"--out {file}: an ONNX model file name ends in .onnx", "e.g. --out model.onnx")
    rows = X[:PARITY_ROWS]
    if parent.manifest["model_format"] == "onnx":  # already ONNX (e.g. an int8 bundle from honing compress)
        exported, diff = parent.model, 0.0
    else:
        with progress.step(f"exporting the {parent.manifest.get('model_type')} model to ONNX"):
            exported = export_onnx(parent.model, parent.task, rows[:64])
        with progress.step(f"checking ONNX Runtime against the native model on {len(rows)} rows"):
            diff = check_parity(parent.model, exported, rows, parent.task)
        with progress.step(f"adding model.onnx to {parent.path}"):
            attach_onnx(parent.path, exported)
    if file is not None:
        atomic_write(file, lambda p: Path(p).write_bytes(exported.data))
    return ExportResult(parent.path, file, diff, len(rows), len(exported.data))
