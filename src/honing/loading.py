"""Loading a bundle as a predictor of raw rows: the types a bundle may contain (every stage's trusted
skops types), and :func:`load_predictor`, shared by the Python API and the server's worker processes."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from honing.audit.mitigation import TRUSTED_TYPES as MITIGATION_TYPES
from honing.bundle import BACKENDS, Bundle, load_bundle
from honing.data import preprocess
from honing.data.preprocess import coerce_features
from honing.data.schema import Schema
from honing.errors import HoningError
from honing.evaluation.calibration import TRUSTED_TYPES as CALIBRATOR_TYPES
from honing.models import classic, unsupervised

#: Every type a bundle's skops files may hold: preprocessing, classic models, calibrators, fair ensembles.
TRUSTED_TYPES = [*preprocess.TRUSTED_TYPES, *classic.TRUSTED_TYPES, *CALIBRATOR_TYPES, *MITIGATION_TYPES]
TRUSTED_TYPES += unsupervised.TRUSTED_TYPES  # clustering, reduction and anomaly models


def load_predictor(path: str | Path, backend: str = "auto") -> Bundle:
    """Load a bundle as a predictor: ``predict(df)`` / ``predict_proba(df)`` on raw rows.  ``backend``:
    ``auto`` predicts through ONNX Runtime when the bundle has an ONNX model (``honing export``),
    ``native`` through the bundle's own model, ``onnx`` through ONNX (an error when there is none)."""
    if backend not in BACKENDS:
        raise HoningError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}", "use auto, native or onnx")
    bundle = load_bundle(path, trusted=TRUSTED_TYPES, backend=backend)
    bundle.prepare = partial(coerce_features, schema=Schema.from_dict(bundle.features))
    return bundle
