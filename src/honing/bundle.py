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
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from honing.errors import BundleError, HoningError

FORMAT_VERSION = 1
#: Upgrade steps: ``UPGRADES[n](manifest, path)`` turns a format-``n`` manifest into format ``n+1``.
#: A step returns a new manifest dict and must never write to the bundle directory.
UPGRADES: dict[int, Callable[[dict, Path], dict]] = {}

MANIFEST = "manifest.json"
PREPROCESS_FILE = "preprocess.skops"
MODEL_SKOPS = "model.skops"
MODEL_LIGHTGBM = "model.lgb.txt"
MODEL_FILES = {"skops": MODEL_SKOPS, "lightgbm": MODEL_LIGHTGBM}
TASKS = ("classification", "regression")
#: scikit-learn tree storage types that skops deliberately does not trust by default (a crafted file
#: can crash the process); callers pass them in ``trusted`` for bundles from a source they trust.
_LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm", "skops")
_RESERVED = frozenset(  # manifest keys that ``extra`` may not override
    ("format_version", "honing_version", "created", "task", "features", "classes", "model_type", "files",
     "model_format", "lightgbm", "metrics", "recipe", "data_fingerprint", "library_versions", "trusted_types",
     "manifest_sha256")
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


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's contents, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(
    path: str | os.PathLike, *, preprocessor: Any, model: Any, task: str, features: dict,
    classes: list | None, model_type: str, metrics: dict, recipe: dict, data_fingerprint: str,
    trusted: Iterable[str] = (), extra: dict | None = None,
) -> Path:
    """Write a bundle to ``path`` atomically and return the path.

    Everything goes into a temporary sibling directory first, renamed into place once complete; an
    existing bundle at ``path`` is replaced only then.  On failure nothing is left behind and an
    existing bundle is untouched.  ``trusted`` is recorded (``trusted_types``) for information only.
    """
    path = Path(path)
    classes = _check_save_args(task, classes, model, extra)
    _check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        sio.dump(preprocessor, tmp / PREPROCESS_FILE)
        model_info = _write_model(tmp, model, task)
        manifest = {
            "format_version": FORMAT_VERSION, "honing_version": _honing_version(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"), "task": task,
            "features": features, "classes": classes, "model_type": model_type, **model_info,
            "metrics": metrics, "recipe": recipe, "data_fingerprint": data_fingerprint,
            "library_versions": _library_versions(), "trusted_types": sorted(_type_names(trusted)),
            **(extra or {}),
        }
        manifest["files"] = {name: sha256_file(tmp / name) for name in _list_files(tmp)}
        # Sign what a reader will parse back (tuples → lists, numpy → Python, …), not the dict above.
        manifest = json.loads(json.dumps(manifest, default=_json_default))
        manifest[MANIFEST_CHECKSUM] = manifest_checksum(manifest)
        text = json.dumps(manifest, indent=2) + "\n"
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def manifest_checksum(manifest: dict) -> str:
    """The sha256 hex digest of ``manifest``'s canonical JSON, leaving out ``manifest_sha256``.

    Canonical: sorted keys, no whitespace, non-ASCII characters as ``\\u`` escapes (so any string,
    even a lone surrogate, hashes), floats in Python's shortest round-trip form and NaN/±Infinity as
    JSON's usual extensions, so a manifest parsed back from disk gives the same digest as the one saved.
    """
    body = {key: value for key, value in manifest.items() if key != MANIFEST_CHECKSUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _check_save_args(task: str, classes: list | None, model: Any, extra: dict | None) -> list | None:
    """Validate the caller's arguments (mistakes raise ValueError); return classes as JSON scalars."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    clash = sorted(_RESERVED & set(extra or {}))
    if clash:
        raise ValueError(f"extra must not override manifest keys: {clash}")
    if task == "regression":
        return None
    if classes is None or len(classes) < 2:
        raise ValueError("a classification bundle needs the list of (at least two) classes")
    classes = [c.item() if isinstance(c, np.generic) else c for c in classes]
    model_classes = getattr(model, "classes_", None)
    if model_classes is not None and len(model_classes) != len(classes):
        raise ValueError(f"the model has {len(model_classes)} classes but {len(classes)} were given")
    return classes


def _check_target(path: Path) -> None:
    """Refuse to replace anything at ``path`` that is not a bundle (or an empty directory)."""
    if not path.exists() and not path.is_symlink():
        return
    is_bundle_or_empty = path.is_dir() and ((path / MANIFEST).is_file() or not any(path.iterdir()))
    if path.is_symlink() or not is_bundle_or_empty:
        raise BundleError(f"{path} exists and is not a honing bundle", "choose another path or remove it")


def _write_model(directory: Path, model: Any, task: str) -> dict:
    """Write the model file into ``directory``; return the manifest keys describing its format."""
    lightgbm = sys.modules.get("lightgbm")  # an LGBM model implies lightgbm is imported
    if lightgbm is None or not isinstance(model, (lightgbm.LGBMClassifier, lightgbm.LGBMRegressor)):
        sio.dump(model, directory / MODEL_SKOPS)
        return {"model_format": "skops"}
    objective = getattr(model, "objective_", None)
    if not isinstance(objective, str):
        raise TypeError("LightGBM models with a custom (callable) objective cannot be bundled")
    num_class = int(model.n_classes_) if task == "classification" else 1
    model.booster_.save_model(str(directory / MODEL_LIGHTGBM))
    return {"model_format": "lightgbm", "lightgbm": {"objective": objective, "num_class": num_class}}


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished ``tmp`` to ``path``, replacing an existing bundle only at the very end."""
    if not path.exists():
        os.rename(tmp, path)
        return
    _check_target(path)
    old = path.parent / f".{path.name}.old-{secrets.token_hex(6)}"
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _json_default(obj: Any) -> Any:
    """Turn numpy scalars and arrays into JSON values."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} cannot be written to manifest.json")


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


def _list_files(root: Path) -> list[str]:
    """Every file (or symlink) below ``root`` as sorted posix relative paths, except the manifest."""
    found = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_symlink() or not p.is_dir())
    return sorted(name for name in found if name != MANIFEST)


def _type_names(types: Iterable[Any]) -> list[str]:
    """Fully qualified names of types given as names or as type objects."""
    return [t if isinstance(t, str) else f"{t.__module__}.{t.__qualname__}" for t in types]


def load_bundle(
    path: str | os.PathLike, *, trusted: Iterable[str] = (), prepare: Callable[[pd.DataFrame], Any] | None = None
) -> Bundle:
    """Verify and load the bundle at ``path``; raise :class:`BundleError` on any problem.

    skops files may only contain skops' default trusted types and the types in ``trusted``.
    """
    path = Path(path)
    manifest = _open_manifest(path)
    problems = _file_problems(path, manifest)
    if problems:
        raise problems[0]
    trusted = _type_names(trusted)
    preprocessor = _load_skops(path, PREPROCESS_FILE, trusted)
    if manifest["model_format"] == "lightgbm":
        model = _load_lightgbm(path, manifest)
    else:
        model = _load_skops(path, MODEL_SKOPS, trusted)
        _check_model_classes(path, manifest, model)
    return Bundle(path, manifest, preprocessor, model, prepare=prepare)


def verify_bundle(path: str | os.PathLike, *, trusted: Iterable[str] | None = None) -> list[str]:
    """Problems with the bundle at ``path`` (empty when fine), found without loading any model.

    Each problem says only *what* is wrong: it does not start with the path and carries no hint (the
    caller names the bundle and says what to do).  With ``trusted`` given, skops files holding other
    untrusted types are reported too.
    """
    path = Path(path)
    try:
        manifest = _open_manifest(path)
    except BundleError as exc:
        return [_problem_of(exc)]
    problems = _file_problems(path, manifest)
    checked = [n for n in (PREPROCESS_FILE, MODEL_SKOPS) if n in manifest["files"]] if not problems else []
    for name in checked if trusted is not None else []:
        try:
            _check_types(path, name, _type_names(trusted))
        except BundleError as exc:
            problems.append(exc)
    return [_problem_of(p) for p in problems]


def _error(path: Path, problem: str, hint: str | None, *, what: str | None = None) -> BundleError:
    """A BundleError saying ``{path}: {problem}`` (or ``what``), remembering the bare ``problem``.

    :func:`verify_bundle` reports the bare problem; :func:`load_bundle` raises the full error.
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
        return _lightgbm_problem(manifest)
    return None


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


def _json_type(value: Any) -> str:
    """The JSON type name of a parsed value (for messages)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _check_model_classes(path: Path, manifest: dict, model: Any) -> None:
    """Raise unless a loaded (skops) model has as many classes as the manifest lists (none for regression)."""
    model_classes = getattr(model, "classes_", None)
    if model_classes is None:
        return
    if manifest["task"] == "regression":
        raise _error(path, "the model is a classifier but the manifest says regression", _REEXPORT)
    if len(model_classes) != len(manifest["classes"]):
        counts = f"{len(model_classes)} classes but the manifest lists {len(manifest['classes'])}"
        raise _error(path, f"the model has {counts}", _REEXPORT)


def _file_problems(path: Path, manifest: dict) -> list[BundleError]:
    """Missing, modified, unsafe and unlisted files of the bundle."""
    problems = []
    listed = manifest["files"]
    for name, digest in listed.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or name in ("", MANIFEST):
            problem = f"the manifest lists an invalid file name {name!r}"
        elif (path / rel).is_symlink():
            problem = f"file {name} is a symbolic link"
        elif not (path / rel).is_file():
            problem = f"file {name} is missing"
        elif sha256_file(path / rel) != digest.lower():
            problem = f"file {name} was modified after the bundle was saved (checksum mismatch)"
        else:
            continue
        problems.append(_error(path, problem, _REEXPORT))
    hint = "remove it; a bundle must not be changed after it is saved"
    unlisted = [name for name in _list_files(path) if name not in listed]
    problems += [_error(path, f"unexpected file {n} (not listed in the manifest)", hint) for n in unlisted]
    return problems


def _check_types(path: Path, name: str, trusted: list[str]) -> None:
    """Raise unless every type in skops file ``name`` is trusted by skops or by the caller."""
    try:
        untrusted = sio.get_untrusted_types(file=path / name)
    except Exception as exc:  # noqa: BLE001 - any reader failure means an unreadable file
        raise _error(path, f"cannot read {name} ({exc})", _REEXPORT) from None
    refused = [t for t in untrusted if t not in trusted]
    if refused:
        raise _error(
            path, f"refusing to load untrusted type '{refused[0]}' from {name}",
            f"load it only if you trust the bundle's source, passing trusted=['{refused[0]}']",
        )


def _load_skops(path: Path, name: str, trusted: list[str]) -> Any:
    """Load a skops file after checking that it only holds trusted types."""
    _check_types(path, name, trusted)
    try:
        return sio.load(path / name, trusted=list(trusted))
    except Exception as exc:  # noqa: BLE001 - reported as a bundle problem
        hint = "it may need the library versions in the manifest; re-export the bundle"
        raise BundleError(f"{path}: cannot load {name} ({type(exc).__name__}: {exc})", hint) from None


def _load_lightgbm(path: Path, manifest: dict) -> LightGBMModel:
    """Load the native LightGBM model and wrap it in a :class:`LightGBMModel`."""
    import lightgbm

    try:
        booster = lightgbm.Booster(model_file=str(path / MODEL_LIGHTGBM))
    except Exception as exc:  # noqa: BLE001 - reported as a bundle problem
        raise BundleError(f"{path}: cannot load {MODEL_LIGHTGBM} ({exc})", _REEXPORT) from None
    num_class = manifest["lightgbm"]["num_class"]  # validated against the classes by _open_manifest
    per_iteration = 1 if manifest["task"] == "regression" or num_class == 2 else num_class
    if booster.num_model_per_iteration() != per_iteration:
        problem = f"the LightGBM model does not match the manifest's {len(manifest['classes'] or [])} classes"
        raise _error(path, problem, _REEXPORT)
    return LightGBMModel(booster, manifest["task"], num_class)


class LightGBMModel:
    """A loaded LightGBM booster with the scikit-learn ``predict``/``predict_proba`` interface.

    Classification ``predict`` returns class indices (the argmax of ``predict_proba``).
    """

    def __init__(self, booster: Any, task: str, num_class: int = 1):
        self.booster = booster
        self.task = task
        self.num_class = num_class
        self.classes_ = np.arange(num_class) if task == "classification" else None

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of shape (n, K); binary boosters give P(class 1) only."""
        if self.task != "classification":
            raise HoningError("predict_proba is only for classifiers", "this is a regression model")
        p = np.asarray(self.booster.predict(X))
        return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p

    def predict(self, X: Any) -> np.ndarray:
        """Class indices for classification, predicted values for regression."""
        if self.task == "classification":
            return np.argmax(self.predict_proba(X), axis=1)
        return np.asarray(self.booster.predict(X))


class Bundle:
    """A loaded bundle: manifest, fitted preprocessor and model.

    ``prepare`` (identity when None) turns a raw feature frame into what the preprocessor expects.
    """

    def __init__(
        self, path: str | os.PathLike, manifest: dict, preprocessor: Any, model: Any, *,
        prepare: Callable[[pd.DataFrame], Any] | None = None,
    ):
        self.path = Path(path)
        self.manifest = manifest
        self.task: str = manifest["task"]
        self.classes: list | None = manifest.get("classes")
        self.features: dict = manifest.get("features") or {}
        self.metrics: dict = manifest.get("metrics") or {}
        self.recipe: dict = manifest.get("recipe") or {}
        self.preprocessor = preprocessor
        self.model = model
        self.prepare = prepare

    @property
    def is_classifier(self) -> bool:
        """True for classification bundles."""
        return self.task == "classification"

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Preprocess a feature frame into the model's numeric array (dense)."""
        X = self.preprocessor.transform(df)
        return X.toarray() if hasattr(X, "toarray") else np.asarray(X)

    def predict_encoded(self, X: Any) -> np.ndarray:
        """The model's own predictions on a preprocessed array."""
        return np.asarray(self.model.predict(X))

    def predict_proba_encoded(self, X: Any) -> np.ndarray:
        """Class probabilities (n, K) on a preprocessed array, columns in ``classes`` order."""
        if not self.is_classifier:
            raise HoningError("predict_proba is only for classifiers", "this bundle is a regression model")
        if not hasattr(self.model, "predict_proba"):
            raise HoningError(f"the {self.manifest.get('model_type')} model gives no probabilities")
        return np.asarray(self.model.predict_proba(X))

    def _encode(self, df: pd.DataFrame) -> np.ndarray:
        """Raw feature frame → preprocessed array."""
        return self.transform(self.prepare(df) if self.prepare else df)

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predictions for a raw feature frame: class labels, or values for regression."""
        X = self._encode(df)
        if not self.is_classifier:
            return self.predict_encoded(X)
        if hasattr(self.model, "predict_proba"):
            return np.asarray(self.classes)[np.argmax(self.predict_proba_encoded(X), axis=1)]
        order = list(np.asarray(self.model.classes_).tolist())  # no probabilities: map the labels
        return np.asarray(self.classes)[[order.index(p) for p in self.predict_encoded(X).tolist()]]

    def predict_proba(self, df: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities for a raw feature frame, one column per class (named ``str(class)``)."""
        proba = self.predict_proba_encoded(self._encode(df))
        return pd.DataFrame(proba, columns=[str(c) for c in self.classes], index=df.index)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, task={self.task!r}, model_type={self.manifest.get('model_type')!r})"
