"""A column of image paths → pixel features: the :class:`ImagePixels` transformer.

``fit`` records the colour channels and the size (``data.image``, else the first training image's);
``transform`` decodes each path with :class:`honing.data.images.ImageTensors` (Pillow: L or RGB,
bilinear resize, [0, 1], then ``(x - mean) / std`` when given) into float32 rows of ``C*H*W``
values (channel-first, as a CNN's ``input_shape`` ``[C, H, W]`` reads them).  Pixels are neither
imputed nor scaled.

Decoded images are kept in a module-level LRU cache (:data:`CACHE_BYTES` at most), keyed by the
file's path, modification time and size and by the decoding settings, so the repeated transforms of
training (train, validation, test, scoring, permutation importance) decode each file once.
:func:`clear_cache` empties it; inside :func:`uncached` nothing is kept (streamed data).

The fitted transformer holds only plain values (ints, strings, lists), so skops saves and loads it
with ``honing.data.image_pixels.ImagePixels`` as its one trusted type.  This module imports torch
and Pillow only when images are decoded.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer

from honing.errors import DataError, RecipeError

#: Most bytes of decoded pixels the module-level cache keeps (least recently used dropped first).
CACHE_BYTES = 512 * 1024 * 1024
_MISSING_HINT = "check the path (relative paths in a table are read from the table's folder)"
_SENT = "bytes:"  # the cache key of an image given as its encoded bytes

_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_cached_bytes = 0
_caching = True


@contextmanager
def uncached() -> Iterator[None]:
    """Decode without keeping what is decoded (a streamed epoch reads every image once, in an order
    that would only cycle an LRU cache)."""
    global _caching
    before, _caching = _caching, False
    try:
        yield
    finally:
        _caching = before


def clear_cache() -> None:
    """Forget every decoded image."""
    global _cached_bytes
    _cache.clear()
    _cached_bytes = 0


def cache_info() -> dict[str, int]:
    """How many images, and bytes, the cache holds."""
    return {"images": len(_cache), "bytes": _cached_bytes}


class ImagePixels(TransformerMixin, BaseEstimator):
    """One column of image file paths → float32 pixels ``(N, C*H*W)``.

    ``size`` ``[height, width]`` and ``channels`` (1 or 3) fix the decoded shape (None: the first
    training image's); ``mean`` and ``std`` (one value, or one per channel) normalise the pixels
    after scaling them to [0, 1].  Without ``size`` every image must have the training size.
    """

    def __init__(self, size: list[int] | None = None, channels: int | None = None,
                 mean: list[float] | None = None, std: list[float] | None = None):
        self.size = size
        self.channels = channels
        self.mean = mean
        self.std = std

    @classmethod
    def from_config(cls, image: Any) -> ImagePixels:
        """The transformer ``data.image`` (an :class:`honing.recipe.ImageConfig`) describes."""
        return cls(size=_plain(image.size), channels=image.channels, mean=_plain(image.mean), std=_plain(image.std))

    def fit(self, X: Any, y: Any = None) -> ImagePixels:
        """Record the column's name, and the channels and size of the decoded images."""
        from honing.data.images import ImageTensors

        column, paths = _column(X)
        self._spec()  # checks the parameters before any file is read
        first = _paths(column, paths[:1])
        if not first:
            raise DataError(f"image column '{column}' has no rows to fit on", "the training split is empty")
        channels, height, width = _decoding(lambda: ImageTensors(first, self._spec()).shape)
        self.column_, self.channels_, self.size_ = column, int(channels), [int(height), int(width)]
        self.n_features_in_ = 1
        return self

    @property
    def image_shape_(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image, as fitted."""
        return self.channels_, self.size_[0], self.size_[1]

    def transform(self, X: Any) -> np.ndarray:
        """The pixels of every row's image, float32 ``(N, C*H*W)``; DataError naming a missing or
        undecodable file, or an image of another size (when ``size`` is not set)."""
        column, values = _column(X)
        paths = _paths(column, values)
        spec = self._spec(self.channels_)
        key = (tuple(self.size_), self.size is not None, self.channels_, _hashable(self.mean), _hashable(self.std))
        keys = [(*_identity(path), key) for path in paths]
        out = np.empty((len(paths), int(np.prod(self.image_shape_))), dtype=np.float32)
        decode, source = [], {}  # rows not cached, and each missing key's image (read hits before any eviction)
        for row, k in enumerate(keys):
            hit = _cache.get(k)
            if hit is None:
                decode.append(row)
                source.setdefault(k, paths[row])
            else:
                _cache.move_to_end(k)
                out[row] = hit
        fresh = dict(zip(source, self._decode(list(source.values()), spec))) if source else {}
        for row in decode:
            out[row] = fresh[keys[row]]
        for k, pixels in fresh.items():
            if not k[0].startswith(_SENT):  # images sent as bytes (a server's requests) are not kept
                _remember(k, pixels)
        return out

    def _decode(self, paths: list[str | bytes], spec: Any) -> list[np.ndarray]:
        """Decode ``paths`` → one flat float32 array each, checking the fitted size."""
        from honing.data.images import ImageTensors, image_name

        tensors = _decoding(lambda: ImageTensors(paths, spec, cache_items=0))
        if tensors.shape != self.image_shape_:
            _, height, width = tensors.shape
            raise DataError(f"image {image_name(paths[0])} is {height}x{width} (height x width) but the model was trained "
                            f"on {self.size_[0]}x{self.size_[1]} images",
                            f"set data.image.size: [{self.size_[0]}, {self.size_[1]}] to resize every image")
        return [_decoding(lambda i=i: tensors[i]).numpy().reshape(-1) for i in range(len(paths))]

    def _spec(self, channels: int | None = None) -> Any:
        """The :class:`honing.data.images.ImageSpec` of the parameters (``channels`` when fitted)."""
        from honing.data.images import ImageSpec

        try:
            return ImageSpec(size=None if self.size is None else tuple(int(s) for s in self.size),
                             channels=channels or self.channels,
                             mean=None if self.mean is None else tuple(self.mean),
                             std=None if self.std is None else tuple(self.std))
        except RecipeError as exc:
            raise RecipeError(f"data.image: {exc.what}", exc.hint) from None

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``COLUMN_px_0`` … ``COLUMN_px_{C*H*W-1}``."""
        count = int(np.prod(self.image_shape_))
        return np.asarray([f"{self.column_}_px_{i}" for i in range(count)], dtype=object)


def image_preprocessor(column: str, features: list[str], image: Any) -> ColumnTransformer:
    """The preprocessor of an image column: its pixels (``image`` = ``data.image``).  The image
    column must be the only feature column (DataError naming the others)."""
    others = [name for name in features if name != column]
    if others:
        raise DataError(f"image column '{column}' must be the only feature column; the others are: "
                        f"{', '.join(others)}", "list them in data.drop")
    step = ImagePixels.from_config(image)
    return ColumnTransformer([(f"image_{column}".replace("__", "_"), step, [column])], remainder="drop",
                             sparse_threshold=0.0, verbose_feature_names_out=False)


def _plain(values: Any) -> list | None:
    """A list of plain Python numbers (None stays None)."""
    return None if values is None else [v.item() if hasattr(v, "item") else v for v in values]


def _hashable(values: Any) -> tuple | None:
    """Mean or std as a tuple of floats, for the cache key."""
    return None if values is None else tuple(float(v) for v in values)


def _column(X: Any) -> tuple[str, list]:
    """The one column of ``X`` (a frame, a series or an array): its name and values."""
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise ValueError(f"ImagePixels takes one column of image paths, got {X.shape[1]}")
        return str(X.columns[0]), X.iloc[:, 0].tolist()
    if isinstance(X, pd.Series):
        return str(X.name), X.tolist()
    array = np.asarray(X, dtype=object)
    return "image", (array[:, 0] if array.ndim == 2 else array).tolist()


def _paths(column: str, values: list) -> list[str | bytes]:
    """The values as path strings (or encoded images, as bytes); a missing or blank one is a DataError
    naming its row."""
    paths: list[str | bytes] = []
    for row, value in enumerate(values):
        if isinstance(value, bytes) and value:
            paths.append(value)
            continue
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
        if not text or text.lower() in ("nan", "<na>", "none"):
            raise DataError(f"row {row} of image column '{column}' has no image path",
                            "fill in the path, or drop the row")
        paths.append(text)
    return paths


def _identity(path: str | bytes) -> tuple[str, int, int]:
    """What an image's cache key starts with: the path, its modification time and size (so a rewritten
    file is decoded again); for encoded bytes, a digest of them and their length."""
    if isinstance(path, bytes):
        return _SENT + hashlib.blake2b(path, digest_size=16).hexdigest(), 0, len(path)
    return (path, *_stamp(path))


def _stamp(path: str) -> tuple[int, int]:
    """The file's modification time and size (so a rewritten file is decoded again)."""
    try:
        stat = os.stat(path)
    except OSError:
        raise DataError(f"image file not found: {path}", _MISSING_HINT) from None
    return stat.st_mtime_ns, stat.st_size


def _decoding(call: Any) -> Any:
    """``call()``, with a decoding error made one line (and a normalisation error naming data.image)."""
    try:
        return call()
    except RecipeError as exc:
        what = exc.what if exc.what.startswith("data.image") else f"data.image: {exc.what}"
        raise RecipeError(what, exc.hint) from None
    except DataError as exc:
        what = " ".join(str(exc.what).split())
        if what.startswith("image file not found"):
            raise DataError(what, _MISSING_HINT) from None
        raise DataError(what, exc.hint) from None


def _remember(key: tuple, pixels: np.ndarray) -> None:
    """Keep ``pixels`` under ``key``, dropping the least recently used beyond :data:`CACHE_BYTES`."""
    global _cached_bytes
    if pixels.nbytes > CACHE_BYTES or not _caching:
        return
    _cache[key] = pixels
    _cached_bytes += pixels.nbytes
    while _cached_bytes > CACHE_BYTES:
        _, old = _cache.popitem(last=False)
        _cached_bytes -= old.nbytes
