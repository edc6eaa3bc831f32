"""Image datasets: read where the images are, then decode them lazily into cached tensors.

Three ways to point at images:

* a folder per class (``data/train/cat/*.png``): :func:`read_image_folder` lists ``path`` and
  ``label`` (the folder name);
* a CSV column of image paths: :func:`resolve_paths` resolves relative paths against the CSV's
  folder and :func:`check_image_paths` names the first missing file;
* arrays: :func:`read_image_arrays` reads ``.npy`` / ``.npz`` / IDX (MNIST-style) files;
* the encoded files themselves (``bytes``: what a REST client sends), read like a file.

:class:`ImageTensors` turns paths or encoded bytes (decoded with Pillow) or arrays into float32 tensors of shape
``(N, C, H, W)``: convert to grayscale (``L``) or RGB, resize with :data:`RESAMPLE` (bilinear,
antialiased when shrinking), scale to [0, 1] and normalise per channel as :class:`ImageSpec`
says.  Each image is decoded on first use and kept in an LRU cache (by count and bytes), so an
epoch does not decode it again.  EXIF orientation is not applied (images are used as stored).
"""

from __future__ import annotations

import gzip
import io
import re
import struct
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from honing.data.image_sources import IMAGE_SUFFIXES
from honing.errors import DataError, RecipeError

#: The resample filter every resize uses (Pillow's bilinear; it antialiases when downscaling).
RESAMPLE = Image.Resampling.BILINEAR
#: Array names accepted in an ``.npz`` file, in order of preference.
NPZ_IMAGE_KEYS = ("x", "X", "images")
NPZ_LABEL_KEYS = ("y", "Y", "labels")
#: IDX type codes (third magic byte) -> big-endian numpy dtype.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
DEFAULT_CACHE_BYTES = 1 << 30
_GRAY_MODES = ("1", "L", "LA", "I", "F")


@dataclass(frozen=True)
class ImageSpec:
    """How images become tensors: the recipe's resize, colour mode and normalisation."""

    size: tuple[int, int] | None = None  # (height, width); None = keep (all images must share one size)
    channels: int | None = None  # 1 (grayscale) or 3 (RGB); None = from the first image
    mean: tuple[float, ...] | None = None  # per channel, applied after scaling to [0, 1]
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.size is not None and (len(self.size) != 2 or min(int(s) for s in self.size) < 1):
            raise RecipeError(f"image size {self.size!r} is not two positive integers",
                              "give the size as [height, width], e.g. [224, 224]")
        if self.channels not in (None, 1, 3):
            raise RecipeError(f"image channels must be 1 or 3, not {self.channels!r}",
                              "use 1 for grayscale or 3 for RGB (or leave it out)")
        if (self.mean is None) != (self.std is None):
            raise RecipeError("image normalisation needs both mean and std", "give both, or neither")
        if self.std is not None and any(float(s) <= 0 for s in self.std):
            raise RecipeError(f"image std {self.std!r} must be positive", "e.g. std: [0.229, 0.224, 0.225]")

    def normaliser(self, channels: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(mean, std)`` as float32 arrays of length ``channels`` (a single value is repeated)."""
        if self.mean is None or self.std is None:
            return None
        out = []
        for name, values in (("mean", self.mean), ("std", self.std)):
            arr = np.asarray(values, dtype=np.float32).reshape(-1)
            if arr.size == 1:
                arr = np.repeat(arr, channels)
            if arr.size != channels:
                raise RecipeError(f"image {name} has {arr.size} values but the images have {channels} "
                                  "channel(s)", f"give one {name} per channel (or a single value)")
            out.append(arr)
        return out[0], out[1]


def _is_hidden(parts: Iterable[str]) -> bool:
    return any(p.startswith(".") for p in parts)


def read_image_folder(root: str | Path) -> pd.DataFrame:
    """Folder per class, ``root/<class>/<file>`` (files in sub-folders of a class count too).

    Returns columns ``path`` (absolute, str) and ``label`` (the class folder's name), sorted by
    label then path.  Hidden files and folders (``.name``) and files whose suffix is not in
    :data:`IMAGE_SUFFIXES` are skipped.  A missing root, a root without class folders or without
    any image raises :class:`DataError` naming the folder.
    """
    root = Path(root).expanduser().absolute()
    layout = f"put each class's images in its own folder, e.g. {root}/cat/1.png"
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder", layout)
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"image folder {root} has no class folders", layout)
    rows = []
    for folder in classes:
        for file in folder.rglob("*"):
            rel = file.relative_to(folder).parts
            if file.is_file() and not _is_hidden(rel) and file.suffix.lower() in IMAGE_SUFFIXES:
                rows.append((str(file), folder.name))
    if not rows:
        raise DataError(f"image folder {root} holds no images in its class folders",
                        f"image files end in {', '.join(IMAGE_SUFFIXES)}; {layout}")
    frame = pd.DataFrame(rows, columns=["path", "label"])
    return frame.sort_values(["label", "path"], ignore_index=True)


def resolve_paths(paths: pd.Series, base: Path) -> pd.Series:
    """Image paths as absolute strings: relative ones are taken against ``base`` (the CSV's folder).

    A blank or missing path raises :class:`DataError` naming the row.
    """
    base = Path(base).expanduser()
    out = []
    for index, value in paths.items():
        if (not isinstance(value, (str, Path)) and pd.isna(value)) or not str(value).strip():
            raise DataError(f"row {index!r} of column '{paths.name}' has no image path",
                            "fill in the path or drop the row")
        path = Path(str(value).strip()).expanduser()
        out.append(str(path if path.is_absolute() else (base / path).absolute()))
    return pd.Series(out, index=paths.index, name=paths.name, dtype=object)


def check_image_paths(paths: Iterable[str | Path]) -> None:
    """Raise :class:`DataError` naming the first path that is not a file (and how many are missing)."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"image file not found: {missing[0]}{more}",
                        "relative paths are read from the CSV's folder; check the path column")


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (the MNIST format), gzipped or not: magic ``0 0 type ndim``, big-endian sizes, data."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}", "check the path and that it is not truncated") from exc
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file", "IDX files (like MNIST's) start with 00 00 <type> <ndim>")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"IDX file {path} has a truncated header", "download or write the file again")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"IDX file {path} holds {data.size} values, its header says {shape}",
                        "the file is truncated or damaged")
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def _npz_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(path, allow_pickle=False) as npz:
        names = list(npz.files)
        image_key = next((k for k in NPZ_IMAGE_KEYS if k in names), None)
        if image_key is None and len(names) == 1:
            image_key = names[0]
        if image_key is None:
            raise DataError(f"{path} has no image array (it has: {', '.join(names) or 'none'})",
                            f"name the images one of {', '.join(NPZ_IMAGE_KEYS)} and the labels one of "
                            f"{', '.join(NPZ_LABEL_KEYS)}")
        label_key = next((k for k in NPZ_LABEL_KEYS if k in names), None)
        return npz[image_key], (npz[label_key] if label_key else None)


def read_image_arrays(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (and labels, when the file has them) from an array file.

    * ``.npy``: images only, shape ``(N, H, W)`` or ``(N, H, W, C)`` with C in 1, 3, 4;
    * ``.npz``: images named one of :data:`NPZ_IMAGE_KEYS` (or the file's only array), labels
      named one of :data:`NPZ_LABEL_KEYS` (optional, one per image);
    * IDX (a name with ``idx`` or ``ubyte`` in it, or ending ``.idx``; gzipped or not): images only.
    """
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise DataError(f"image array file {path} not found", "check the path")
    try:
        if name.endswith(".npy"):
            images, labels = np.load(path, mmap_mode="r", allow_pickle=False), None
        elif name.endswith(".npz"):
            images, labels = _npz_arrays(path)
        elif "idx" in name or "ubyte" in name:
            images, labels = read_idx(path), None
        else:
            raise DataError(f"{path} is not an image array file", "use .npy, .npz or an IDX file")
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read image arrays from {path}: {exc}", "the file is damaged") from exc
    check_image_array(images, str(path))
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
        raise DataError(f"{path}: labels have shape {labels.shape} for {len(images)} images",
                        "give one label per image as a 1-d array")
    return images, labels


def check_image_array(images: np.ndarray, where: str = "image array") -> None:
    """Raise :class:`DataError` unless ``images`` is ``(N, H, W)`` or ``(N, H, W, C)``, C in 1/3/4, N > 0."""
    ok = images.ndim == 3 or (images.ndim == 4 and images.shape[3] in (1, 3, 4))
    if not ok or images.shape[0] == 0 or images.dtype.kind not in "biuf":
        raise DataError(f"{where}: images have shape {images.shape} and dtype {images.dtype}",
                        "expected a non-empty numeric array (N, H, W) or (N, H, W, C) with C = 1, 3 or 4")


def _mode_channels(mode: str) -> int:
    return 1 if mode in _GRAY_MODES or mode.startswith("I;") else 3


class ImageTensors:
    """Images as float32 tensors ``(N, C, H, W)``, decoded on first use and cached.

    ``source`` is a sequence of image paths (decoded with Pillow) or an array ``(N, H, W[, C])``
    (unsigned integers are scaled by their maximum, e.g. uint8 / 255; floats are taken to be in
    [0, 1] already; RGBA drops alpha, RGB -> gray uses Pillow's ITU-R 601-2 luma).  The cache keeps
    at most ``cache_items`` images (None = no count limit) and ``cache_bytes`` bytes, evicting the
    least recently used.  :attr:`decoded` counts decodes (cache misses).
    """

    def __init__(self, source: Sequence[str | Path] | pd.Series | np.ndarray, spec: ImageSpec | None = None,
                 *, cache_bytes: int = DEFAULT_CACHE_BYTES, cache_items: int | None = None):
        self.spec = spec or ImageSpec()
        self.cache_bytes = int(cache_bytes)
        self.cache_items = cache_items
        self.decoded = 0
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cached_bytes = 0
        self._arrays: np.ndarray | None = None
        self._paths: list[str | bytes] = []
        if isinstance(source, np.ndarray):
            check_image_array(source)
            self._arrays = source
            in_channels = 1 if source.ndim == 3 else source.shape[3]
            self._first_hw = (int(source.shape[1]), int(source.shape[2]))
            self._first_channels = 1 if in_channels == 1 else 3
        else:
            self._paths = [p if isinstance(p, bytes) else str(p) for p in source]
            if not self._paths:
                raise DataError("no images to read", "the image list is empty")
            self._first_hw, self._first_channels = self._peek(self._paths[0])
        self.channels = self.spec.channels or self._first_channels
        self._norm = self.spec.normaliser(self.channels)

    def __len__(self) -> int:
        return len(self._arrays) if self._arrays is not None else len(self._paths)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image tensor."""
        height, width = self.spec.size or self._first_hw
        return self.channels, int(height), int(width)

    @property
    def cached(self) -> int:
        """How many images the cache holds now."""
        return len(self._cache)

    def __getitem__(self, index: int) -> torch.Tensor:
        """One image, ``(C, H, W)``."""
        return self.batch([index])[0]

    def batch(self, indices: Iterable[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """The images at ``indices`` stacked as ``(len(indices), C, H, W)``."""
        if isinstance(indices, (np.ndarray, torch.Tensor)):
            indices = indices.tolist()
        items = [self._get(self._index(i)) for i in indices]
        return torch.stack(items) if items else torch.empty((0, *self.shape), dtype=torch.float32)

    def all(self) -> torch.Tensor:
        """Every image as one tensor (for small sets)."""
        return self.batch(range(len(self)))

    def _index(self, i: int) -> int:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"image index {i} out of range for {n} images")
        return i % n

    def _get(self, i: int) -> torch.Tensor:
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return hit
        pixels = self._from_array(i) if self._arrays is not None else self._decode(self._paths[i])
        if self._norm is not None:
            pixels = (pixels - self._norm[0]) / self._norm[1]
        tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32))
        self.decoded += 1
        self._remember(i, tensor)
        return tensor

    def _remember(self, i: int, tensor: torch.Tensor) -> None:
        nbytes = tensor.element_size() * tensor.nelement()
        if nbytes > self.cache_bytes or self.cache_items == 0:
            return
        self._cache[i] = tensor
        self._cached_bytes += nbytes
        while self._cached_bytes > self.cache_bytes or (
                self.cache_items is not None and len(self._cache) > self.cache_items):
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.element_size() * old.nelement()

    @staticmethod
    def _peek(path: str | bytes) -> tuple[tuple[int, int], int]:
        """The first image's ``(height, width)`` and channel count, from its header."""
        try:
            with Image.open(_file(path)) as img:
                return (img.height, img.width), _mode_channels(img.mode)
        except Exception as exc:  # Pillow raises many kinds on a damaged header
            raise _decode_error(path, exc) from exc

    def _decode(self, path: str | bytes) -> np.ndarray:
        """Pillow decode -> mode -> resize -> float32 ``(H, W, C)`` in [0, 1]."""
        try:
            with Image.open(_file(path)) as img:
                img = img.convert("L" if self.channels == 1 else "RGB")
                if self.spec.size is not None:
                    height, width = self.spec.size
                    img = img.resize((int(width), int(height)), RESAMPLE)
                pixels = np.asarray(img, dtype=np.float32) / 255.0
        except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, struct.error, …
            raise _decode_error(path, exc) from exc
        if self.spec.size is None and pixels.shape[:2] != self._first_hw:
            (h0, w0), (h, w) = self._first_hw, pixels.shape[:2]
            raise DataError(f"image {image_name(path)} is {h}x{w} (height x width) but {image_name(self._paths[0])} "
                            f"is {h0}x{w0}",
                            f"set the image size (e.g. size: [{h0}, {w0}]) to resize every image to one size")
        return pixels.reshape(*pixels.shape[:2], -1)

    def _from_array(self, i: int) -> np.ndarray:
        """Array item ``i`` -> float32 ``(H, W, C)`` in [0, 1], channel-converted and resized."""
        assert self._arrays is not None
        item = np.asarray(self._arrays[i])
        pixels = item.astype(np.float32)
        if item.dtype.kind == "u":
            pixels /= np.iinfo(item.dtype).max
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        pixels = pixels[:, :, :3]  # drop alpha
        if self.channels == 1 and pixels.shape[2] == 3:
            pixels = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            pixels = pixels[:, :, None]
        elif self.channels == 3 and pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        if self.spec.size is not None and tuple(self.spec.size) != pixels.shape[:2]:
            height, width = (int(s) for s in self.spec.size)
            planes = [np.asarray(Image.fromarray(np.ascontiguousarray(pixels[:, :, c]))
                                 .resize((width, height), RESAMPLE)) for c in range(pixels.shape[2])]
            pixels = np.stack(planes, axis=2)
        return pixels


def _file(path: str | bytes) -> Any:
    """What Pillow opens: the path, or the encoded bytes as a file."""
    return io.BytesIO(path) if isinstance(path, bytes) else path


def image_name(path: str | bytes) -> str:
    """A path as it is, or encoded bytes as ``the image of N bytes``."""
    return f"the image of {len(path):,} bytes" if isinstance(path, bytes) else str(path)


def _decode_error(path: str | bytes, exc: BaseException) -> DataError:
    if isinstance(path, bytes):  # (Pillow's message names the in-memory file object: left out)
        detail = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(exc))
        return DataError(f"cannot decode {image_name(path)}: {detail}", "send a PNG, JPEG or other image file's bytes")
    if isinstance(exc, FileNotFoundError):
        return DataError(f"image file not found: {path}", "check the path (relative paths are read from "
                         "the CSV's folder)")
    return DataError(f"cannot decode image {path}: {exc}",
                     "the file is damaged or not an image; remove it or save it again as PNG or JPEG")
