"""The bundle manifest: building and signing it, its canonical checksum, reading, upgrading and validating it.

Nothing here loads a model; the checks that need one live in :mod:`honing.bundle.store`.  An ONNX
model's ``"onnx"`` section is checked by :func:`honing.bundle.onnx_model.meta_problem` (a leaf module).
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from honing.bundle.onnx_model import meta_problem as onnx_meta_problem
from honing.errors import BundleError
from honing.json_data import jsonable

FORMAT_VERSION = 1
#: Upgrade steps: ``UPGRADES[n](manifest, path)`` turns a format-``n`` manifest into format ``n+1``.
#: A step returns a new manifest dict and must never write to the bundle directory.
UPGRADES: dict[int, Callable[[dict, Path], dict]] = {}

MANIFEST = "manifest.json"
PREPROCESS_FILE = "preprocess.skops"
MODEL_SKOPS = "model.skops"
CALIBRATOR_FILE = "calibrator.skops"  # optional: probabilities calibrated after the model (evaluate.calibrate)
MODEL_LIGHTGBM = "model.lgb.txt"
MODEL_TORCH = "model.safetensors"
#: The ONNX graph: the bundle's model (``model_format: onnx``), or an alternate backend beside a native one.
MODEL_ONNX = "model.onnx"
MODEL_FILES = {"skops": MODEL_SKOPS, "lightgbm": MODEL_LIGHTGBM, "torch": MODEL_TORCH, "onnx": MODEL_ONNX}
#: Tasks without a target whose bundles predict cluster ids, embeddings or anomaly scores.
SUPERVISED_TASKS = ("classification", "regression")
UNSUPERVISED_TASKS = ("clustering", "reduction", "anomaly")
TASKS = (*SUPERVISED_TASKS, *UNSUPERVISED_TASKS, "reinforcement", "generation")
_LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm", "skops")
_RESERVED = frozenset(  # manifest keys that ``extra`` may not override
    ("format_version", "honing_version", "created", "task", "features", "classes", "model_type", "files",
     "model_format", "lightgbm", "torch", "onnx", "metrics", "recipe", "data_fingerprint", "library_versions",
     "trusted_types", "manifest_sha256")
)
_REEXPORT = "re-export the bundle or restore it"
#: The manifest key holding the sha256 of the manifest's canonical JSON without that key.
MANIFEST_CHECKSUM = "manifest_sha256"
#: The first format whose manifests carry (and must carry) ``manifest_sha256``.
_CHECKSUMMED_FROM = 1
#: Required manifest keys (after upgrading) and the JSON types they must have.
_REQUIRED: dict[str, tuple[type, ...]] = {
    "task": (str,), "features": (dict,), "classes": (list, type(None)), "files": (dict,),
    "metrics": (dict,), "recipe": (dict,), "model_format": (str,),
}
_JSON_TYPE_NAMES = {str: "a string", dict: "an object", list: "a list", type(None): "null", int: "an integer"}


# ---------------------------------------------------------------------------------------------- errors


def _error(path: Path, problem: str, hint: str | None, *, what: str | None = None) -> BundleError:
    """A BundleError saying ``{path}: {problem}`` (or ``what``), remembering the bare ``problem``.

    :func:`~honing.bundle.store.verify_bundle` reports the bare problem;
    :func:`~honing.bundle.store.load_bundle` raises the full error.
    """
    error = BundleError(what if what is not None else f"{path}: {problem}", hint)
    error.problem = problem
    return error


def _manifest_error(path: Path, problem: str, hint: str | None) -> BundleError:
    """A BundleError about the manifest file: ``{path}/manifest.json {problem}``."""
    return _error(path, f"{MANIFEST} {problem}", hint, what=f"{path / MANIFEST} {problem}")


def _problem_of(error: BundleError) -> str:
    """The bare problem of an error made by :func:`_error` (its ``what`` otherwise, never the hint)."""
    return getattr(error, "problem", None) or error.what


# ---------------------------------------------------------------------------------------------- building


def manifest_checksum(manifest: dict) -> str:
    """The sha256 hex digest of ``manifest``'s canonical JSON, leaving out ``manifest_sha256``.

    Canonical: sorted keys, no whitespace, non-ASCII characters as ``\\u`` escapes (so any string,
    even a lone surrogate, hashes), floats in Python's shortest round-trip form and NaN/±Infinity as
    JSON's usual extensions, so a manifest parsed back from disk gives the same digest as the one saved.
    """
    body = {key: value for key, value in manifest.items() if key != MANIFEST_CHECKSUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def new_manifest(
    *, task: str, features: dict, classes: list | None, model_type: str, model_info: dict, metrics: dict,
    recipe: dict, data_fingerprint: str, trusted_types: list[str], extra: dict | None,
) -> dict:
    """A current-format manifest describing a bundle being saved, without ``files`` and the checksum.

    ``model_info`` holds the keys describing the model file's format; ``extra`` keys come last.
    """
    return {
        "format_version": FORMAT_VERSION, "honing_version": _honing_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "task": task,
        "features": features, "classes": classes, "model_type": model_type, **model_info,
        "metrics": metrics, "recipe": recipe, "data_fingerprint": data_fingerprint,
        "library_versions": _library_versions(), "trusted_types": trusted_types,
        **(extra or {}),
    }


def sign_manifest(manifest: dict) -> dict:
    """``manifest`` as a reader will parse it back, with its ``manifest_sha256`` added.

    Signs what a reader will parse back (tuples → lists, numpy → Python, NaN → null, …), not the dict
    given; strict JSON, so any JSON parser reads manifest.json.
    """
    manifest = json.loads(json.dumps(jsonable(manifest), allow_nan=False))
    manifest[MANIFEST_CHECKSUM] = manifest_checksum(manifest)
    return manifest


def _version(distribution: str, default: str) -> str:
    """The installed version of ``distribution``, or ``default``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return default


def _honing_version() -> str:
    """``honing.__version__`` if defined, else the installed distribution's version."""
    import honing

    return str(getattr(honing, "__version__", None) or _version("honing", "0+unknown"))


def _library_versions() -> dict[str, str]:
    """Versions of the libraries a bundle depends on, and of Python."""
    versions = {name: _version(name, "not installed") for name in _LIBRARIES}
    return {**versions, "python": platform.python_version()}


# ---------------------------------------------------------------------------------------------- reading


def _open_manifest(path: Path) -> dict:
    """Read manifest.json, check its checksum, upgrade it to the current format and validate it."""
    if not path.is_dir() or not (path / MANIFEST).is_file():
        why = "does not exist" if not path.exists() else "is not a honing bundle"
        raise _error(path, why, "give the directory written by 'honing train'", what=f"{path} {why}")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _manifest_error(path, f"is not valid JSON ({exc})", _REEXPORT) from None
    if not isinstance(manifest, dict):
        raise _manifest_error(path, "is not a JSON object", _REEXPORT)
    version = _format_version(manifest, path)
    if version >= _CHECKSUMMED_FROM:
        _check_manifest_checksum(manifest, path)
    manifest = _upgrade(manifest, path, version)
    problem = _manifest_problem(manifest)
    if problem:
        raise _manifest_error(path, f"is malformed: {problem}", "re-export the bundle")
    return manifest


def _format_version(manifest: dict, path: Path) -> int:
    """The manifest's format_version; raise unless it is an integer this honing can read."""
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        problem = f"is malformed: 'format_version' must be an integer, not {_json_type(version)}"
        raise _manifest_error(path, problem, "re-export the bundle")
    if version > FORMAT_VERSION:
        hint = f"this honing reads bundle formats up to {FORMAT_VERSION}"
        what = f"{path} was made by a newer honing (format {version}); upgrade honing"
        raise _error(path, f"was made by a newer honing (format {version}); upgrade honing", hint, what=what)
    return version


def _check_manifest_checksum(manifest: dict, path: Path) -> None:
    """Raise unless ``manifest_sha256`` is present and matches the rest of the manifest."""
    recorded = manifest.get(MANIFEST_CHECKSUM)
    if not isinstance(recorded, str):
        problem = f"has no {MANIFEST_CHECKSUM} checksum (or it is not a string)"
        raise _manifest_error(path, problem, "re-export the bundle with this honing version")
    if manifest_checksum(manifest) != recorded.lower():
        problem = "was modified after the bundle was saved (checksum mismatch)"
        raise _manifest_error(path, problem, _REEXPORT)


def _upgrade(manifest: dict, path: Path, version: int) -> dict:
    """Apply the registered upgrade steps until the format-``version`` manifest is of the current format."""
    while version < FORMAT_VERSION:
        step = UPGRADES.get(version)
        if step is None:
            what = f"{path} is of bundle format {version}, which this honing cannot upgrade"
            problem = f"is of bundle format {version}, which this honing cannot upgrade"
            raise _error(path, problem, "re-export the bundle with this honing version", what=what)
        manifest = dict(step(dict(manifest), path))
        version += 1
        manifest["format_version"] = version
    return manifest


# ---------------------------------------------------------------------------------------------- validation


def _manifest_problem(manifest: dict) -> str | None:
    """What is wrong with the keys and types that loading relies on, or None."""
    for key, types in _REQUIRED.items():
        if key not in manifest:
            return f"the required key '{key}' is missing"
        if not isinstance(manifest[key], types):
            expected = " or ".join(_JSON_TYPE_NAMES[t] for t in types)
            return f"'{key}' must be {expected}, not {_json_type(manifest[key])}"
    files = manifest["files"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        return "'files' must map file names to sha256 strings"
    task = manifest["task"]
    if task not in TASKS:
        return f"the task {task!r} is not one of {', '.join(TASKS)}"
    model_file = MODEL_FILES.get(manifest["model_format"])
    if model_file is None:
        return f"the model_format {manifest['model_format']!r} is not one of {', '.join(MODEL_FILES)}"
    missing = [name for name in (PREPROCESS_FILE, model_file) if name not in files]
    if missing:
        return f"'files' does not list {missing[0]}"
    classes = manifest["classes"]
    if task == "classification" and (classes is None or len(classes) < 2):
        return "a classification bundle must list at least two classes"
    if task == "regression" and classes is not None:
        return "a regression bundle must not list classes"
    if manifest["model_format"] == "lightgbm":
        return _lightgbm_problem(manifest) or _onnx_problem(manifest)
    if manifest["model_format"] == "torch" and not isinstance(manifest.get("torch"), dict):
        return "a torch bundle needs a 'torch' object describing the network"
    return _onnx_problem(manifest)


def _lightgbm_problem(manifest: dict) -> str | None:
    """What is wrong with the 'lightgbm' section of a LightGBM manifest, or None."""
    info = manifest.get("lightgbm")
    num_class = info.get("num_class") if isinstance(info, dict) else None
    if not isinstance(num_class, int) or isinstance(num_class, bool) or num_class < 1:
        return "'lightgbm' must be an object with an integer num_class"
    classes = manifest["classes"]
    if manifest["task"] == "classification" and num_class != len(classes):
        return f"the LightGBM model has {num_class} classes but the manifest lists {len(classes)}"
    if manifest["task"] == "regression" and num_class != 1:
        return f"a LightGBM regression model must have num_class 1, not {num_class}"
    return None


def _onnx_problem(manifest: dict) -> str | None:
    """What is wrong with the 'onnx' section (the ONNX model, or the alternate beside a native one), or None."""
    if "onnx" not in manifest:
        if manifest["model_format"] == "onnx":
            return "an ONNX bundle needs an 'onnx' object describing the graph"
        listed = MODEL_ONNX in manifest["files"]
        return f"'files' lists {MODEL_ONNX} but there is no 'onnx' section" if listed else None
    if MODEL_ONNX not in manifest["files"]:
        return f"there is an 'onnx' section but 'files' does not list {MODEL_ONNX}"
    problem = onnx_meta_problem(manifest["onnx"])
    if problem:
        return f"'onnx' {problem}"
    meta, task = manifest["onnx"], manifest["task"]
    if meta["task"] != task:
        return f"the ONNX model is for {meta['task']} but the manifest says {task}"
    if task == "classification" and meta["n_classes"] != len(manifest["classes"]):
        return f"the ONNX model has {meta['n_classes']} classes but the manifest lists {len(manifest['classes'])}"
    return None


def _json_type(value: Any) -> str:
    """The JSON type name of a parsed value (for messages)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
