"""Bundles on disk: saving (atomically), loading and verifying them, file checksums, trusted-type checks,
and reading the skops, LightGBM, safetensors and ONNX model files."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio

from honing.bundle.manifest import (
    _REEXPORT,
    _RESERVED,
    CALIBRATOR_FILE,
    MANIFEST,
    MANIFEST_CHECKSUM,
    MODEL_LIGHTGBM,
    MODEL_ONNX,
    MODEL_SKOPS,
    MODEL_TORCH,
    PREPROCESS_FILE,
    TASKS,
    _error,
    _open_manifest,
    _problem_of,
    new_manifest,
    sign_manifest,
)
from honing.bundle.onnx_model import OnnxModel
from honing.bundle.predictor import Bundle, LightGBMModel
from honing.errors import BundleError, first_line

#: What ``load_bundle(backend=…)`` accepts: the native model, the ONNX one, or ONNX when the bundle has one.
BACKENDS = ("native", "onnx", "auto")
_EXPORT_HINT = "run honing export BUNDLE --format onnx"


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's contents, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- saving


def save_bundle(
    path: str | os.PathLike, *, preprocessor: Any, model: Any, task: str, features: dict,
    classes: list | None, model_type: str, metrics: dict, recipe: dict, data_fingerprint: str,
    trusted: Iterable[str] = (), extra: dict | None = None, calibrator: Any = None, onnx: OnnxModel | None = None,
) -> Path:
    """Write a bundle to ``path`` atomically and return the path.

    ``calibrator`` (optional, with ``transform(proba)``) maps the model's probabilities to calibrated
    ones at prediction time; ``extra["decision"]`` holds the decision threshold(s) predict applies.
    A ``model`` that is an :class:`OnnxModel` is the bundle's model (``model_format: onnx``); ``onnx``
    is an ONNX export of a native ``model`` stored beside it (``model.onnx``, an alternate backend
    that ``load_bundle(backend="onnx" | "auto")`` predicts through).

    Everything goes into a temporary sibling directory first, renamed into place once complete; an
    existing bundle at ``path`` is replaced only then.  On failure nothing is left behind and an
    existing bundle is untouched.  ``trusted`` is recorded (``trusted_types``) for information only.
    """
    path = Path(path)
    classes = _check_save_args(task, classes, model, extra)
    _check_onnx_arg(task, classes, model, onnx)
    _check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        sio.dump(preprocessor, tmp / PREPROCESS_FILE)
        model_info = model_files(tmp, model, task)
        if onnx is not None:
            (tmp / MODEL_ONNX).write_bytes(onnx.data)
            model_info["onnx"] = onnx.meta
        if calibrator is not None:
            sio.dump(calibrator, tmp / CALIBRATOR_FILE)
        manifest = new_manifest(
            task=task, features=features, classes=classes, model_type=model_type, model_info=model_info,
            metrics=metrics, recipe=recipe, data_fingerprint=data_fingerprint,
            trusted_types=sorted(_type_names(trusted)), extra=extra,
        )
        manifest["files"] = {name: sha256_file(tmp / name) for name in _list_files(tmp)}
        manifest = sign_manifest(manifest)
        text = json.dumps(manifest, indent=2) + "\n"
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
    if task != "classification":  # values, actions, cluster ids, embeddings or scores: no classes
        return None
    if classes is None or len(classes) < 2:
        raise ValueError("a classification bundle needs the list of (at least two) classes")
    classes = [c.item() if isinstance(c, np.generic) else c for c in classes]
    model_classes = getattr(model, "classes_", None)
    if model_classes is not None and len(model_classes) != len(classes):
        raise ValueError(f"the model has {len(model_classes)} classes but {len(classes)} were given")
    return classes


def _check_onnx_arg(task: str, classes: list | None, model: Any, onnx: OnnxModel | None) -> None:
    """Validate an ONNX model given as the model or beside it (mistakes raise ValueError or TypeError)."""
    for given in (model, onnx):
        if isinstance(given, OnnxModel) and given.task != task:
            raise ValueError(f"the ONNX model is for {given.task}, the bundle for {task}")
    if onnx is None:
        return
    if isinstance(model, OnnxModel):
        raise TypeError("the model is already an ONNX model; an alternate ONNX model goes beside native ones")
    if not isinstance(onnx, OnnxModel):
        raise TypeError(f"onnx must be an OnnxModel, not {type(onnx).__name__}")
    if classes is not None and len(onnx.classes_) != len(classes):
        raise ValueError(f"the ONNX model has {len(onnx.classes_)} classes but {len(classes)} were given")


def _check_target(path: Path) -> None:
    """Refuse to replace anything at ``path`` that is not a bundle (or an empty directory)."""
    if not path.exists() and not path.is_symlink():
        return
    is_bundle_or_empty = path.is_dir() and ((path / MANIFEST).is_file() or not any(path.iterdir()))
    if path.is_symlink() or not is_bundle_or_empty:
        raise BundleError(f"{path} exists and is not a honing bundle", "choose another path or remove it")


def model_files(directory: Path, model: Any, task: str) -> dict:
    """Write ``model``'s file(s) into ``directory`` as a bundle stores them (a fitted estimator, or a model
    loaded from a bundle); return the manifest keys describing their format."""
    if isinstance(model, LightGBMModel):  # a booster loaded from a bundle
        model.booster.save_model(str(directory / MODEL_LIGHTGBM))
        return {"model_format": "lightgbm", "lightgbm": {"objective": model.objective, "num_class": model.num_class}}
    if isinstance(model, OnnxModel):
        (directory / MODEL_ONNX).write_bytes(model.data)
        return {"model_format": "onnx", "onnx": model.meta}
    if hasattr(model, "export_state"):  # a honing neural estimator: weights as safetensors
        from safetensors.torch import save_file

        tensors, meta = model.export_state()
        save_file(tensors, str(directory / MODEL_TORCH))
        return {"model_format": "torch", "torch": meta}
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


def attach_onnx(path: str | os.PathLike, onnx: OnnxModel) -> Path:
    """Add (or replace) ``model.onnx`` beside the native model of the verified bundle at ``path``: the
    bundle is copied, the file and its meta are added, the manifest is signed again and the copy is
    renamed into place (atomic, like :func:`save_bundle`; the native files are not rewritten)."""
    path = Path(path)
    manifest = _open_manifest(path)
    problems = _file_problems(path, manifest)
    if problems:
        raise problems[0]
    if manifest["model_format"] == "onnx":
        raise BundleError(f"{path}: the bundle's model is already ONNX", "its model.onnx is the model itself")
    _check_onnx_arg(manifest["task"], manifest["classes"], None, onnx)
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(6)}"
    try:
        shutil.copytree(path, tmp, symlinks=True)
        (tmp / MODEL_ONNX).write_bytes(onnx.data)
        manifest = {k: v for k, v in manifest.items() if k != MANIFEST_CHECKSUM}
        manifest["onnx"] = onnx.meta
        manifest["files"] = {name: sha256_file(tmp / name) for name in _list_files(tmp)}
        (tmp / MANIFEST).write_text(json.dumps(sign_manifest(manifest), indent=2) + "\n", encoding="utf-8")
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


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


def _list_files(root: Path) -> list[str]:
    """Every file (or symlink) below ``root`` as sorted posix relative paths, except the manifest."""
    found = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_symlink() or not p.is_dir())
    return sorted(name for name in found if name != MANIFEST)


# ---------------------------------------------------------------------------------------------- loading


def load_bundle(
    path: str | os.PathLike, *, trusted: Iterable[str] = (), prepare: Callable[[pd.DataFrame], Any] | None = None,
    backend: str = "native",
) -> Bundle:
    """Verify and load the bundle at ``path``; raise :class:`BundleError` on any problem.

    skops files may only contain skops' default trusted types and the types in ``trusted``.
    ``backend`` picks the model that predicts: ``"native"`` the bundle's own, ``"onnx"`` its ONNX
    export (``model.onnx``; an error when it has none), ``"auto"`` the ONNX export when there is one.
    A bundle whose model is ONNX (``model_format: onnx``) always predicts through ONNX Runtime.  When
    the ONNX model predicts, the native model is not loaded (a network is not even rebuilt).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    path = Path(path)
    manifest = _open_manifest(path)
    problems = _file_problems(path, manifest)
    if problems:
        raise problems[0]
    trusted = _type_names(trusted)
    preprocessor = _load_skops(path, PREPROCESS_FILE, trusted)
    use_onnx = manifest["model_format"] == "onnx" or (backend != "native" and "onnx" in manifest)
    if backend == "onnx" and not use_onnx:
        raise _error(path, "has no ONNX model", _EXPORT_HINT, what=f"{path} has no ONNX model ({MODEL_ONNX})")
    model = _load_onnx(path, manifest) if use_onnx else _load_native(path, manifest, trusted)
    calibrator = _load_skops(path, CALIBRATOR_FILE, trusted) if CALIBRATOR_FILE in manifest["files"] else None
    return Bundle(path, manifest, preprocessor, model, prepare=prepare, calibrator=calibrator,
                  backend="onnx" if use_onnx else "native")


def _load_native(path: Path, manifest: dict, trusted: list[str]) -> Any:
    """The bundle's native model (LightGBM, a network, or a skops file), its classes checked."""
    if manifest["model_format"] == "lightgbm":
        return _load_lightgbm(path, manifest)
    model = _load_torch(path, manifest) if manifest["model_format"] == "torch" \
        else _load_skops(path, MODEL_SKOPS, trusted)
    _check_model_classes(path, manifest, model)
    return model


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
    skops_files = (PREPROCESS_FILE, MODEL_SKOPS, CALIBRATOR_FILE)
    checked = [n for n in skops_files if n in manifest["files"]] if not problems else []
    for name in checked if trusted is not None else []:
        try:
            _check_types(path, name, _type_names(trusted))
        except BundleError as exc:
            problems.append(exc)
    return [_problem_of(p) for p in problems]


def _check_model_classes(path: Path, manifest: dict, model: Any) -> None:
    """Raise unless a loaded model has as many classes as the manifest lists (none for regression)."""
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


# ---------------------------------------------------------------------------------------------- trusted types
# Only types that skops trusts by default or that the *caller* trusts are ever constructed.  skops
# deliberately does not trust scikit-learn's tree storage types by default (a crafted file can crash the
# process); callers pass them in ``trusted`` for bundles from a source they trust.


def _type_names(types: Iterable[Any]) -> list[str]:
    """Fully qualified names of types given as names or as type objects."""
    return [t if isinstance(t, str) else f"{t.__module__}.{t.__qualname__}" for t in types]


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


def _load_torch(path: Path, manifest: dict) -> Any:
    """Rebuild a neural estimator from its description and safetensors weights (no pickle involved)."""
    from safetensors.torch import load_file

    from honing.models.estimators import import_state

    try:
        if manifest["task"] == "generation":  # a char_lm or vae (docs/generative.md)
            from honing.models.generative import import_model
            return import_model(load_file(str(path / MODEL_TORCH)), manifest["torch"])
        if manifest["task"] == "reinforcement":  # an agent's policy (docs/reinforcement.md)
            from honing.models.tabular_rl import import_agent
            return import_agent(load_file(str(path / MODEL_TORCH)), manifest["torch"])
        return import_state(load_file(str(path / MODEL_TORCH)), manifest["torch"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise BundleError(f"{path}: cannot load {MODEL_TORCH} ({exc})", _REEXPORT) from None


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
    return LightGBMModel(booster, manifest["task"], num_class, manifest["lightgbm"]["objective"])


def _load_onnx(path: Path, manifest: dict) -> OnnxModel:
    """The ONNX model, its ONNX Runtime session created (so a graph that does not match its meta fails here)."""
    try:
        model = OnnxModel((path / MODEL_ONNX).read_bytes(), manifest["onnx"])  # meta validated by _open_manifest
        model.session()
    except Exception as exc:  # noqa: BLE001 - any reader failure means an unreadable or mismatched graph
        raise BundleError(f"{path}: cannot load {MODEL_ONNX} ({type(exc).__name__}: {first_line(exc)})",
                          _REEXPORT) from None
    _check_model_classes(path, manifest, model)
    return model
