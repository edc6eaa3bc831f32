"""Model bundles: a directory holding a fitted preprocessor, a model and a checksummed manifest.

Layout::

    manifest.json      what the bundle is (task, features, classes, metrics, …) and the sha256 of
                       every other file
    preprocess.skops   the fitted preprocessor (skops format, never pickle)
    model.skops        scikit-learn style models (skops format), or
    model.lgb.txt      LightGBM models, in LightGBM's own text format

Saving is atomic (a temporary sibling directory renamed into place).  Loading verifies every
checksum, refuses files the manifest does not list, and only constructs types that skops trusts by
default or that the *caller* trusts; what a bundle says about itself is never trusted.
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
     "model_format", "lightgbm", "metrics", "recipe", "data_fingerprint", "library_versions", "trusted_types")
)
_REEXPORT = "re-export the bundle or restore it"


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
        text = json.dumps(manifest, indent=2, default=_json_default) + "\n"
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


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
    return Bundle(path, manifest, preprocessor, model, prepare=prepare)


def verify_bundle(path: str | os.PathLike, *, trusted: Iterable[str] | None = None) -> list[str]:
    """Problems with the bundle at ``path`` (empty when fine), found without loading any model.

    With ``trusted`` given, skops files holding other untrusted types are reported too.
    """
    path = Path(path)
    try:
        manifest = _open_manifest(path)
    except BundleError as exc:
        return [str(exc)]
    problems = _file_problems(path, manifest)
    checked = [n for n in (PREPROCESS_FILE, MODEL_SKOPS) if n in manifest["files"]] if not problems else []
    for name in checked if trusted is not None else []:
        try:
            _check_types(path, name, _type_names(trusted))
        except BundleError as exc:
            problems.append(exc)
    return [str(p) for p in problems]


def _open_manifest(path: Path) -> dict:
    """Read manifest.json, upgrade it to the current format and check its required keys."""
    if not path.is_dir() or not (path / MANIFEST).is_file():
        why = "does not exist" if not path.exists() else "is not a honing bundle"
        raise BundleError(f"{path} {why}", "give the directory written by 'honing train'")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path / MANIFEST} is not valid JSON ({exc})", _REEXPORT) from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path / MANIFEST} is not a JSON object", _REEXPORT)
    manifest = _upgrade(manifest, path)
    problem = _manifest_problem(manifest)
    if problem:
        raise BundleError(f"{path / MANIFEST} {problem}", _REEXPORT)
    return manifest


def _upgrade(manifest: dict, path: Path) -> dict:
    """Apply the registered upgrade steps until the manifest is of the current format."""
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{path / MANIFEST} has no valid format_version", _REEXPORT)
    if version > FORMAT_VERSION:
        hint = f"this honing reads bundle formats up to {FORMAT_VERSION}"
        raise BundleError(f"{path} was made by a newer honing (format {version}); upgrade honing", hint)
    while version < FORMAT_VERSION:
        step = UPGRADES.get(version)
        if step is None:
            what = f"{path} is of bundle format {version}, which this honing cannot upgrade"
            raise BundleError(what, "re-export the bundle with this honing version")
        manifest = dict(step(dict(manifest), path))
        version += 1
        manifest["format_version"] = version
    return manifest


def _manifest_problem(manifest: dict) -> str | None:
    """What is wrong with the keys that loading relies on, or None."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return "has no valid 'files' checksums"
    if manifest.get("task") not in TASKS:
        return f"has an invalid task {manifest.get('task')!r}"
    model_file = MODEL_FILES.get(manifest.get("model_format"))
    if model_file is None:
        return f"has an unknown model_format {manifest.get('model_format')!r}"
    classes = manifest.get("classes")
    if manifest["task"] == "classification" and (not isinstance(classes, list) or len(classes) < 2):
        return "lists no classes for a classification model"
    missing = [name for name in (PREPROCESS_FILE, model_file) if name not in files]
    return f"does not list {missing[0]}" if missing else None


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
        problems.append(BundleError(f"{path}: {problem}", _REEXPORT))
    hint = "remove it; a bundle must not be changed after it is saved"
    unlisted = [name for name in _list_files(path) if name not in listed]
    problems += [BundleError(f"{path}: unexpected file {n} (not listed in the manifest)", hint) for n in unlisted]
    return problems


def _check_types(path: Path, name: str, trusted: list[str]) -> None:
    """Raise unless every type in skops file ``name`` is trusted by skops or by the caller."""
    try:
        untrusted = sio.get_untrusted_types(file=path / name)
    except Exception as exc:  # noqa: BLE001 - any reader failure means an unreadable file
        raise BundleError(f"{path}: cannot read {name} ({exc})", _REEXPORT) from None
    refused = [t for t in untrusted if t not in trusted]
    if refused:
        raise BundleError(
            f"{path}: refusing to load untrusted type '{refused[0]}' from {name}",
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
    num_class = int((manifest.get("lightgbm") or {}).get("num_class", 1))
    if manifest["task"] == "classification":
        per_iteration = 1 if num_class == 2 else num_class
        if len(manifest["classes"]) != num_class or booster.num_model_per_iteration() != per_iteration:
            raise BundleError(f"{path}: the LightGBM model does not match the manifest's classes", _REEXPORT)
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
