"""Model bundles: a directory holding a fitted preprocessor, a model and a checksummed manifest.

Layout::

    manifest.json      what the bundle is (task, features, classes, metrics, …) and the sha256 of
                       every other file
    preprocess.skops   the fitted preprocessor (skops format, never pickle)
    model.skops        scikit-learn style models (skops format), or
    model.lgb.txt      LightGBM models, in LightGBM's own text format, or
    model.safetensors  honing's neural networks (weights; the manifest's ``torch`` describes the net), or
    model.onnx         an ONNX graph run by ONNX Runtime (``model_format: onnx``, e.g. a quantized model)
    model.onnx         optionally, beside a native model: its ONNX export, an alternate backend
                       (``load_bundle(path, backend="onnx" | "auto")``); the manifest's ``onnx`` says
                       what the graph takes and gives
    calibrator.skops   optionally, a calibration of the model's probabilities

Saving is atomic (a temporary sibling directory renamed into place).  The manifest carries its own
checksum (``manifest_sha256``, over its canonical JSON without that key), so editing it — swapping the
classes, changing the task — is detected.  Loading verifies every checksum, validates the manifest's
fields, refuses files the manifest does not list, checks that the model's number of classes matches
the manifest, and only constructs types that skops trusts by default or that the *caller* trusts;
what a bundle says about itself is never trusted.

Modules (``store`` imports ``manifest`` and ``predictor``, which import neither each other nor ``store``)::

    manifest.py    building and signing the manifest, its canonical checksum, format version and
                   upgrade steps (``UPGRADES``), reading and validating it (no model needed)
    store.py       save_bundle (atomic), load_bundle (native or ONNX backend), verify_bundle, file
                   checksums, trusted-type checks, reading the skops, LightGBM, safetensors and ONNX files
    predictor.py   the loaded :class:`Bundle` and the :class:`LightGBMModel` adapter
    onnx_model.py  :class:`OnnxModel` (an ONNX graph and its meta, predicting through ONNX Runtime) and
                   the check of its meta; a leaf module, imported by ``manifest`` and ``store``
"""

from honing.bundle.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_CHECKSUM,
    MODEL_FILES,
    MODEL_LIGHTGBM,
    MODEL_ONNX,
    MODEL_SKOPS,
    PREPROCESS_FILE,
    TASKS,
    UPGRADES,
    manifest_checksum,
)
from honing.bundle.onnx_model import OnnxModel
from honing.bundle.predictor import Bundle, LightGBMModel
from honing.bundle.store import BACKENDS, load_bundle, save_bundle, sha256_file, verify_bundle

__all__ = [
    "BACKENDS",
    "FORMAT_VERSION",
    "MANIFEST",
    "MANIFEST_CHECKSUM",
    "MODEL_FILES",
    "MODEL_LIGHTGBM",
    "MODEL_ONNX",
    "MODEL_SKOPS",
    "PREPROCESS_FILE",
    "TASKS",
    "UPGRADES",
    "Bundle",
    "LightGBMModel",
    "OnnxModel",
    "load_bundle",
    "manifest_checksum",
    "save_bundle",
    "sha256_file",
    "verify_bundle",
]
