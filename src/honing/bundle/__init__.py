"""Model bundles: a directory holding a fitted preprocessor, a model and a checksummed manifest.

Layout::

    manifest.json      what the bundle is (task, features, classes, metrics, …) and the sha256 of
                       every other file
    preprocess.skops   the fitted preprocessor (skops format, never pickle)
    model.skops        scikit-learn style models (skops format), or
    model.lgb.txt      LightGBM models, in LightGBM's own text format

Saving is atomic (a temporary sibling directory renamed into place).  The manifest carries its own
checksum (``manifest_sha256``, over its canonical JSON without that key), so editing it — swapping the
classes, changing the task — is detected.  Loading verifies every checksum, validates the manifest's
fields, refuses files the manifest does not list, checks that the model's number of classes matches
the manifest, and only constructs types that skops trusts by default or that the *caller* trusts;
what a bundle says about itself is never trusted.

Modules (``store`` imports ``manifest`` and ``predictor``, which import neither each other nor ``store``)::

    manifest.py    building and signing the manifest, its canonical checksum, format version and
                   upgrade steps (``UPGRADES``), reading and validating it (no model needed)
    store.py       save_bundle (atomic), load_bundle, verify_bundle, file checksums, trusted-type
                   checks, reading the skops and LightGBM files
    predictor.py   the loaded :class:`Bundle` and the :class:`LightGBMModel` adapter
"""

from honing.bundle.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_CHECKSUM,
    MODEL_FILES,
    MODEL_LIGHTGBM,
    MODEL_SKOPS,
    PREPROCESS_FILE,
    TASKS,
    UPGRADES,
    manifest_checksum,
)
from honing.bundle.predictor import Bundle, LightGBMModel
from honing.bundle.store import load_bundle, save_bundle, sha256_file, verify_bundle

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "MANIFEST_CHECKSUM",
    "MODEL_FILES",
    "MODEL_LIGHTGBM",
    "MODEL_SKOPS",
    "PREPROCESS_FILE",
    "TASKS",
    "UPGRADES",
    "Bundle",
    "LightGBMModel",
    "load_bundle",
    "manifest_checksum",
    "save_bundle",
    "sha256_file",
    "verify_bundle",
]
