"""Image data as a table: what ``data.source`` can point at besides a table file.

* a **folder** with one sub-folder per class → columns ``path`` (absolute) and ``label``;
* an **array file** (``.npy``, ``.npz`` with ``x``/``y``, IDX like ``train-images-idx3-ubyte[.gz]``)
  → pixel columns ``pixel_0 … pixel_{n-1}`` (float32, channel-first: C, then rows, then columns;
  unsigned integers scaled by their maximum, e.g. uint8 / 255; alpha dropped) and ``label`` (the
  ``.npz``'s labels, the ``labels`` file given, or an IDX images file's ``-labels-idx1-`` sibling).
  :attr:`ImageSource.image_shape` records ``(C, H, W)``;
* a **table with a column of image paths**: :func:`resolve_image_columns` makes relative paths
  absolute against the table's folder (for columns that look like image paths, and those named).

This module imports neither torch nor Pillow (the readers in :mod:`honing.data.images` are loaded
only when an image source is read), so :mod:`honing.data.sources` and :mod:`honing.data.schema` can
use it on every table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from honing.errors import DataError, RecipeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Share of a column's non-missing values that must end in an image suffix for it to be image paths.
IMAGE_PATH_SHARE = 0.95
IMAGE_PATH_SAMPLE = 2000
#: The target column of an image folder or array source.
LABEL = "label"
PIXEL_PREFIX = "pixel_"
_TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
_COMPRESSIONS = (".gz", ".bz2", ".xz")


@dataclass
class ImageSource:
    """An image folder or array file read as a table."""

    frame: pd.DataFrame
    image_shape: tuple[int, int, int] | None = None  # (C, H, W) of pixel columns; None for a folder
    target: str = LABEL
    types: dict[str, str] = field(default_factory=dict)  # column kinds fixed by the source (pixels: numeric)
    has_labels: bool = True


def looks_like_image_paths(values: pd.Series) -> bool:
    """Whether (nearly, :data:`IMAGE_PATH_SHARE`) every non-missing value ends in an image suffix
    (case-insensitive; judged on an evenly spaced sample of :data:`IMAGE_PATH_SAMPLE` values)."""
    kinds = pd.api.types
    if kinds.is_numeric_dtype(values) or kinds.is_bool_dtype(values) or kinds.is_datetime64_any_dtype(values):
        return False
    nonnull = values.dropna()
    if nonnull.empty:
        return False
    if len(nonnull) > IMAGE_PATH_SAMPLE:
        nonnull = nonnull.iloc[:: -(-len(nonnull) // IMAGE_PATH_SAMPLE)]
    text = nonnull.astype(str).str.strip().str.lower()
    return bool(text.str.endswith(IMAGE_SUFFIXES).mean() >= IMAGE_PATH_SHARE)


def is_array_file(path: str | Path) -> bool:
    """``.npy`` / ``.npz``, or an IDX file (a name with ``idx`` or ``ubyte`` that is not a table file)."""
    name = Path(path).name.lower()
    if name.endswith((".npy", ".npz")):
        return True
    stem = next((name[: -len(c)] for c in _COMPRESSIONS if name.endswith(c)), name)
    return ("idx" in stem or "ubyte" in stem) and not stem.endswith(_TABLE_SUFFIXES)


def is_image_source(source: str | Path) -> bool:
    """A folder (read as one sub-folder per class) or an image array file."""
    path = Path(source).expanduser()
    return path.is_dir() or is_array_file(path)


def read_image_source(source: str | Path, labels: str | Path | None = None) -> ImageSource:
    """The table of an image folder or array file (see the module doc); ``labels``: a labels file
    (``.npy`` or IDX) for an array file whose labels are not inside it."""
    from honing.data.images import read_image_folder

    path = Path(source).expanduser()
    if path.is_dir():
        if labels is not None:
            raise DataError(f"data.labels: {path} is an image folder, whose labels are its class folders",
                            "remove data.labels")
        if not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
            raise DataError(f"data file '{path}' is a directory without class folders",
                            "point data.source at a file inside it, or at an image folder (one sub-folder of "
                            "images per class)")
        return ImageSource(read_image_folder(path))
    return _read_arrays(path, labels)


def _read_arrays(path: Path, labels_file: str | Path | None) -> ImageSource:
    from honing.data.images import read_image_arrays

    images, labels = read_image_arrays(path)
    if labels_file is not None:
        if labels is not None:
            raise DataError(f"data.labels: {path} holds its own labels", "remove data.labels")
        labels = read_labels(labels_file, len(images))
    elif labels is None and (sibling := idx_labels_sibling(path)) is not None:
        labels = read_labels(sibling, len(images))
    pixels, shape = pixel_matrix(images)
    frame = pd.DataFrame(pixels, columns=[f"{PIXEL_PREFIX}{i}" for i in range(pixels.shape[1])], copy=False)
    if labels is not None:
        frame[LABEL] = _plain_labels(labels)
    types = {name: "numeric" for name in frame.columns if name != LABEL}
    return ImageSource(frame, image_shape=shape, types=types, has_labels=labels is not None)


def read_labels(path: str | Path, count: int) -> np.ndarray:
    """One label per image from a ``.npy`` or IDX file (DataError naming the file otherwise)."""
    from honing.data.images import read_idx

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.labels: labels file {path} not found", "check the path")
    try:
        labels = np.load(path, allow_pickle=False) if path.name.lower().endswith(".npy") else read_idx(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"data.labels: cannot read labels from {path}: {exc}", "use a .npy or IDX file") from None
    if labels.ndim != 1 or len(labels) != count:
        raise DataError(f"data.labels: {path} has labels of shape {labels.shape} for {count} images",
                        "give one label per image as a 1-d array")
    return labels


def idx_labels_sibling(path: Path) -> Path | None:
    """MNIST's naming: ``train-images-idx3-ubyte[.gz]`` → an existing ``train-labels-idx1-ubyte[.gz]``."""
    name = path.name
    if "images" not in name or not is_array_file(path) or name.lower().endswith((".npy", ".npz")):
        return None
    base = name.replace("images", "labels").replace("idx3", "idx1")
    for candidate in dict.fromkeys((base, base.removesuffix(".gz"), base.removesuffix(".gz") + ".gz")):
        if (path.parent / candidate).is_file():
            return path.parent / candidate
    return None


def pixel_matrix(images: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Images ``(N, H, W[, C])`` → float32 ``(N, C*H*W)`` (channel-first) and ``(C, H, W)``.

    Unsigned integers are divided by their dtype's maximum, other numbers kept; 4 channels (RGBA)
    lose alpha, 2 channels (gray + alpha) keep the gray one.
    """
    pixels = np.asarray(images)
    scale = float(np.iinfo(pixels.dtype).max) if pixels.dtype.kind == "u" else None
    if pixels.ndim == 3:
        pixels = pixels[:, None, :, :]
    else:
        pixels = pixels[..., : 3 if pixels.shape[3] >= 3 else 1].transpose(0, 3, 1, 2)
    out = pixels.astype(np.float32)
    if scale is not None:
        out /= scale
    shape = tuple(int(s) for s in out.shape[1:])
    return np.ascontiguousarray(out.reshape(len(out), -1)), shape  # type: ignore[return-value]


def _plain_labels(labels: np.ndarray) -> np.ndarray:
    """Labels as int64 (integer or whole-number arrays), else as they are (strings, floats)."""
    if labels.dtype.kind in "iub":
        return labels.astype(np.int64)
    return labels


def resolve_image_columns(frame: pd.DataFrame, base: str | Path, columns: Iterable[str] = ()) -> pd.DataFrame:
    """``frame`` with relative paths made absolute against ``base`` in the columns that look like
    image paths (:func:`looks_like_image_paths`) and in ``columns``; missing values stay missing."""
    base = Path(base).expanduser().absolute()
    named = {str(c) for c in columns}
    out = frame
    for name in frame.columns:
        values = frame[name]
        if str(name) not in named and not looks_like_image_paths(values):
            continue
        resolved = values.map(lambda v: _resolved(v, base))
        if not resolved.equals(values):
            out = out.copy() if out is frame else out
            out[name] = resolved.astype(object)
    return out


def _resolved(value: object, base: Path) -> object:
    if not isinstance(value, (str, Path)):
        return value
    text = str(value).strip()
    if not text:
        return value
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else base / path)


# --------------------------------------------------------------------------- the data stage


def read_image_dataset(cfg: Any) -> ImageSource:
    """``data.source`` (an image folder or array file) read for training: ``cfg`` is the recipe's
    :class:`honing.recipe.DataConfig`.  ``data.image`` applies to image files only, and an array
    source needs labels."""
    image = read_image_source(cfg.source, cfg.labels)
    settings = {k: v for k, v in cfg.image.model_dump().items() if v is not None}
    if image.image_shape is not None and settings:
        raise RecipeError(f"data.image.{next(iter(settings))}: data.image applies to image files, and "
                          f"{cfg.source} is an array file (images of shape {list(image.image_shape)}, used as stored)",
                          "resize or normalise the arrays before saving them (data.scale also scales pixel "
                          "columns), or remove data.image")
    if not image.has_labels and (cfg.target is None or cfg.target == LABEL):
        raise DataError(f"{cfg.source} holds images without labels",
                        "give a labels file (.npy or IDX) as data.labels, or save x and y in one .npz")
    return image


def check_image_files(frame: pd.DataFrame, columns: Iterable[str], sizes: dict | None = None) -> None:
    """DataError when an image column has a missing value or names a file that does not exist.  With
    ``sizes``, every image's header is read too (DataError naming a file that is not an image), and
    each ``(height, width)`` not in ``sizes`` is added with its file."""
    from honing.data.images import ImageTensors, check_image_paths

    for column in columns:
        values = frame[column]
        blank = values.isna() | (values.astype(str).str.strip() == "")
        if blank.any():
            count = int(blank.sum())
            raise DataError(f"image column '{column}': {count} row{'s' if count != 1 else ''} without an image "
                            f"path (e.g. row {values.index[blank.to_numpy()][0]!r})", "fill in the paths, or drop those rows")
        paths = values.astype(str).str.strip()
        check_image_paths(paths)
        for path in paths if sizes is not None else ():
            sizes.setdefault(ImageTensors([path]).shape[1:], path)  # (the header alone: nothing decoded)


def peek_image_shape(first: pd.DataFrame, image: Any) -> tuple[int, int, int]:
    """``(C, H, W)`` of the image in ``first`` (one row of the image column) as ``data.image``
    (``image``) decodes it: what :class:`honing.data.image_pixels.ImagePixels` fits to."""
    from honing.data.image_pixels import ImagePixels

    return ImagePixels.from_config(image).fit(first).image_shape_
