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
    max_abs_diff: float | None
    rows: int
    size_bytes: int
    attached: bool = True


def check_out(file: Path | None) -> None:
    if file is not None and file.suffix.lower() != ".onnx":
        raise CompressionError(f"--out {file}: an ONNX model file name ends in .onnx", "e.g. --out model.onnx")


def export_bundle(parent: Bundle, X: np.ndarray, file: Path | None, progress: Progress) -> ExportResult:
    """Export ``parent``'s model, check parity on ``X`` (preprocessed held-out rows), attach it to the
    bundle and write ``file`` when given."""
    from honing.compression.onnx_export import export_onnx

    check_out(file)
    rows = X[:PARITY_ROWS]
    with progress.step(f"exporting the {parent.manifest.get('model_type')} model to ONNX, checked on {len(rows)} rows"):
        exported = export_onnx(parent.model, parent.task, rows)
    with progress.step(f"adding model.onnx to {parent.path}"):
        attach_onnx(parent.path, exported)
    if file is not None:
        atomic_write(file, lambda p: Path(p).write_bytes(exported.data))
    return ExportResult(parent.path, file, float(exported.meta["parity"]), len(rows), len(exported.data))


def write_onnx_model(parent: Bundle, file: Path | None) -> ExportResult:
    """The model of a bundle that is already ONNX (an int8 bundle from ``honing compress``) as a file."""
    if file is None:
        raise CompressionError(f"{parent.path}: the bundle's model is already ONNX (its model.onnx)",
                               "write it out with -o FILE.onnx")
    check_out(file)
    atomic_write(file, lambda p: Path(p).write_bytes(parent.model.data))
    return ExportResult(parent.path, file, None, 0, len(parent.model.data), attached=False)
