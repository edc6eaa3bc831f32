"""Training-time data augmentation: images (kornia, batched on the device), text, tabular.

**Training split only.**  Augmentation is applied to training batches and never to validation or
test data.  For images this is built in: the module from :func:`image_augmenter` is the identity
in eval mode (``module.eval()``), so the usual ``model.eval()`` / ``augmenter.eval()`` before
validation leaves those batches untouched; in train mode (the default) it augments.  The text and
tabular functions are plain functions the trainer calls on the training rows only.

Images — :func:`image_augmenter` turns recipe steps (``data.augment``) into one ``torch.nn.Module``
applied to a float ``(N, C, H, W)`` batch on whatever device the batch is on; every image draws its
own parameters.  Each step has a probability ``p`` and its magnitudes:

=================  ==========================================================================
``hflip``          ``p`` (default 0.5)
``vflip``          ``p`` (default 0.5)
``rotation``       ``p`` (0.5), ``degrees`` (15: uniform in [-15, 15]; or ``[lo, hi]``)
``resized_crop``   ``p`` (1.0; kornia draws it per batch), ``scale`` ([0.8, 1.0]), ``ratio``; the crop is resized
                   back to the input's height and width (or to ``size: [h, w]`` when given)
``color_jitter``   ``p`` (0.5), ``brightness``, ``contrast``, ``saturation``, ``hue`` (0 = off; hue
                   ≤ 0.5).  Works on [0, 1] images (kornia clamps); saturation/hue need 3 channels
``gaussian_noise`` ``p`` (0.5), ``std`` (0.05), ``mean`` (0)
``erasing``        ``p`` (0.5), ``scale`` ([0.02, 0.2]: erased area fraction), ``ratio`` ([0.3, 3.3]),
                   ``value`` (0: the fill, in [0, 1])
=================  ==========================================================================

A mistake raises :class:`honing.errors.RecipeError` naming ``data.augment[i].name`` (or the
parameter) with a did-you-mean hint.  With ``seed`` the sequence of augmented batches is
reproducible (each call forks the global torch RNG, seeded ``seed + call number``).

Tabular — :func:`gaussian_noise` (per-column-scaled noise on numeric columns) and :func:`mixup`.
Text — :func:`text_augment` (in :mod:`honing.data.augment_text`).  :func:`preview_grid` draws a
PNG of originals beside augmented versions for ``honing augment-preview``.

kornia and torch are imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from honing.data.augment_steps import check_steps, number, pair, step_params
from honing.data.augment_text import SYNONYMS, text_augment
from honing.errors import RecipeError, did_you_mean

__all__ = ["IMAGE_AUGMENTS", "SYNONYMS", "gaussian_noise", "image_augmenter", "mixup", "preview_grid",
           "text_augment"]

IMAGE_AUGMENTS = ("hflip", "vflip", "rotation", "resized_crop", "color_jitter", "gaussian_noise", "erasing")

#: Each step's parameters and defaults (``p`` included).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "hflip": {"p": 0.5},
    "vflip": {"p": 0.5},
    "rotation": {"p": 0.5, "degrees": 15.0},
    "resized_crop": {"p": 1.0, "scale": [0.8, 1.0], "ratio": [3 / 4, 4 / 3], "size": None},
    "color_jitter": {"p": 0.5, "brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0},
    "gaussian_noise": {"p": 0.5, "std": 0.05, "mean": 0.0},
    "erasing": {"p": 0.5, "scale": [0.02, 0.2], "ratio": [0.3, 3.3], "value": 0.0},
}


def _check_params(where: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate one step's magnitudes (defaults filled in); values come back as floats / tuples."""
    out = dict(params)
    out["p"] = number(f"{where}.p", params["p"], 0.0, 1.0)
    if name == "rotation":
        deg = params["degrees"]
        out["degrees"] = (pair(f"{where}.degrees", deg, -360, 360) if isinstance(deg, list | tuple)
                          else number(f"{where}.degrees", deg, 0, 360))
    elif name in ("resized_crop", "erasing"):
        out["scale"] = pair(f"{where}.scale", params["scale"], 1e-6, 1.0)
        out["ratio"] = pair(f"{where}.ratio", params["ratio"], 1e-3, 1e3)
    if name == "resized_crop" and params["size"] is not None:
        size = pair(f"{where}.size", params["size"], 1, 1e5)
        if not all(float(s).is_integer() for s in size):
            raise RecipeError(f"{where}.size: expected whole pixels [height, width], got {params['size']!r}",
                              "e.g. size: [28, 28]")
        out["size"] = (int(size[0]), int(size[1]))
    if name == "color_jitter":
        for key in ("brightness", "contrast", "saturation"):
            out[key] = number(f"{where}.{key}", params[key], 0.0, 1e3)
        out["hue"] = number(f"{where}.hue", params["hue"], 0.0, 0.5)
    if name == "gaussian_noise":
        out["std"] = number(f"{where}.std", params["std"], 0.0)
        out["mean"] = number(f"{where}.mean", params["mean"])
    if name == "erasing":
        out["value"] = number(f"{where}.value", params["value"], 0.0, 1.0)
    return out


def validate_image_steps(steps: list[dict]) -> list[tuple[str, dict[str, Any]]]:
    """``(name, params)`` per recipe step with defaults filled in; RecipeError on any mistake."""
    check_steps(steps)
    out = []
    for i, step in enumerate(steps):
        where, name = f"data.augment[{i}]", step["name"]
        if name not in IMAGE_AUGMENTS:
            raise RecipeError(f"{where}.name: unknown image augmentation {name!r}",
                              did_you_mean(str(name), IMAGE_AUGMENTS))
        params = step_params(where, name, step, _DEFAULTS[name])
        out.append((name, _check_params(where, name, params)))
    return out


def _kornia_step(name: str, prm: dict[str, Any], size: tuple[int, int] | None = None) -> Any:
    """The kornia augmentation module for one validated step (``size``: resized_crop's output)."""
    import kornia.augmentation as K

    p = prm["p"]
    if name == "hflip":
        return K.RandomHorizontalFlip(p=p, keepdim=True)
    if name == "vflip":
        return K.RandomVerticalFlip(p=p, keepdim=True)
    if name == "rotation":
        return K.RandomRotation(degrees=prm["degrees"], p=p, keepdim=True)
    if name == "resized_crop":
        return K.RandomResizedCrop(size=size, scale=prm["scale"], ratio=prm["ratio"], p=p, keepdim=True)
    if name == "color_jitter":
        return K.ColorJitter(brightness=prm["brightness"], contrast=prm["contrast"],
                             saturation=prm["saturation"], hue=prm["hue"], p=p, keepdim=True)
    if name == "gaussian_noise":
        return K.RandomGaussianNoise(mean=prm["mean"], std=prm["std"], p=p, keepdim=True)
    return K.RandomErasing(scale=prm["scale"], ratio=prm["ratio"], value=prm["value"], p=p, keepdim=True)


@functools.cache
def _classes() -> tuple[type, type]:
    """The nn.Module classes, defined on first use so that torch is imported lazily."""
    import torch

    class SameSizeResizedCrop(torch.nn.Module):
        """kornia's RandomResizedCrop resized back to each batch's own (H, W) (or a fixed ``size``)."""

        def __init__(self, params: dict[str, Any]):
            super().__init__()
            self.params = params
            self.crops = torch.nn.ModuleDict()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            size = self.params["size"] or tuple(x.shape[-2:])
            key = f"{size[0]}x{size[1]}"
            if key not in self.crops:
                self.crops[key] = _kornia_step("resized_crop", self.params, size)
            return self.crops[key](x)

    class ImageAugmenter(torch.nn.Module):
        """Recipe image augmentation: the steps in order in train mode, the identity in eval mode."""

        def __init__(self, steps: list[tuple[str, dict[str, Any]]], seed: int | None):
            super().__init__()
            self.names = [name for name, _ in steps]
            self.steps = torch.nn.ModuleList(
                SameSizeResizedCrop(prm) if name == "resized_crop" else _kornia_step(name, prm)
                for name, prm in steps)
            self.seed = seed
            self.calls = 0

        def extra_repr(self) -> str:
            return f"seed={self.seed}"

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training or not len(self.steps):
                return x
            if x.dim() not in (3, 4) or not x.is_floating_point():
                raise ValueError(f"image augmentation needs a float (N, C, H, W) batch, got {tuple(x.shape)} "
                                 f"{x.dtype}")
            if self.seed is None:
                return self._run(x)
            cuda = x.device.type == "cuda"
            devices = [x.device.index if x.device.index is not None else torch.cuda.current_device()] if cuda else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed + self.calls)
                self.calls += 1
                return self._run(x)

        def _run(self, x: torch.Tensor) -> torch.Tensor:
            for step in self.steps:
                x = step(x)
            return x

    return SameSizeResizedCrop, ImageAugmenter


def image_augmenter(steps: list[dict], seed: int | None = None) -> Any:
    """A ``torch.nn.Module`` applying recipe image ``steps`` (see the module docstring) to a float
    ``(N, C, H, W)`` batch on its own device, e.g. ``[{"name": "hflip", "p": 0.5},
    {"name": "rotation", "p": 0.5, "degrees": 15}]``.

    Train mode (the default) augments; **eval mode (``module.eval()``) is the identity**, which is
    how validation and test batches stay untouched.  ``seed`` makes the sequence of outputs
    reproducible.  Unknown names or parameters and out-of-range values raise RecipeError naming
    ``data.augment[i].…``.
    """
    validated = validate_image_steps(steps)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RecipeError(f"augmentation seed: expected an integer, got {seed!r}")
    return _classes()[1](validated, seed)


def gaussian_noise(X: np.ndarray, std: float, numeric: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """A noisy copy of the 2-D array ``X``: Gaussian noise of ``std`` × each column's own standard
    deviation, added only on the ``numeric`` columns (a boolean mask, default all).  Missing values
    (NaN) stay missing; constant columns are unchanged.  Integer input comes back as float64."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"gaussian_noise needs a 2-D array, got shape {X.shape}")
    std = number("tabular gaussian_noise std", std, 0.0)
    mask = np.ones(X.shape[1], dtype=bool) if numeric is None else np.asarray(numeric, dtype=bool)
    if mask.shape != (X.shape[1],):
        raise ValueError(f"numeric mask has shape {mask.shape}, expected ({X.shape[1]},)")
    out = X.astype(np.float64) if X.dtype.kind in "biu" else X.copy()
    if not mask.any() or std == 0.0 or len(X) == 0:
        return out
    cols = out[:, mask].astype(np.float64)
    scale = np.nan_to_num(np.nanstd(cols, axis=0)) if np.isfinite(cols).any() else np.zeros(cols.shape[1])
    rng = np.random.default_rng(seed)
    out[:, mask] = cols + rng.standard_normal(cols.shape) * (std * scale)
    return out


def mixup(X: np.ndarray, y_onehot: np.ndarray, alpha: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mixup: each row ``i`` is blended with row ``perm[i]`` (a random permutation) as
    ``lam_i * x_i + (1 - lam_i) * x_perm[i]``, and so are the one-hot (or soft) labels, with one
    ``lam_i ~ Beta(alpha, alpha)`` per row.  Outputs are float64 and the same shapes as the inputs."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y_onehot, dtype=np.float64)
    if len(X) != len(y):
        raise ValueError(f"mixup: X has {len(X)} rows but y_onehot has {len(y)}")
    alpha = number("tabular mixup alpha", alpha, 1e-9)
    rng = np.random.default_rng(seed)
    lam = rng.beta(alpha, alpha, size=len(X))
    perm = rng.permutation(len(X))
    lx = lam.reshape((-1,) + (1,) * (X.ndim - 1))
    ly = lam.reshape((-1,) + (1,) * (y.ndim - 1))
    return lx * X + (1 - lx) * X[perm], ly * y + (1 - ly) * y[perm]


def _displayable(img: Any, lo: float, hi: float) -> np.ndarray:
    """A (C, H, W) tensor as an (H, W) or (H, W, 3) array in [0, 1] (scaled by the original's range)."""
    arr = img.detach().float().cpu().numpy()
    if not (lo >= 0.0 and hi <= 1.0):
        arr = (arr - lo) / (hi - lo if hi > lo else 1.0)
    arr = np.clip(arr, 0.0, 1.0)
    return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr[:3], 0, -1)


def preview_grid(images: Any, augmenter: Any, path: str | Path, *, n: int = 8, per_image: int = 4,
                 title: str = "augmentation preview") -> Path:
    """Write a PNG grid: each row is one of the first ``n`` images, then ``per_image`` augmented
    versions of it (the augmenter runs in train mode here and its mode is restored afterwards)."""
    import torch

    from honing.report.plots import PALETTE, pyplot, save

    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"preview_grid needs a non-empty (N, C, H, W) batch, got {tuple(images.shape)}")
    batch = images[:n].float()
    was_training = augmenter.training
    augmenter.train()
    try:
        with torch.no_grad():
            versions = [augmenter(batch.clone()) for _ in range(per_image)]
    finally:
        augmenter.train(was_training)
    plt = pyplot()
    rows, cols = len(batch), per_image + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.4), dpi=100, squeeze=False)
    for r in range(rows):
        lo, hi = float(batch[r].min()), float(batch[r].max())
        for c, img in enumerate([batch[r]] + [v[r] for v in versions]):
            ax = axes[r][c]
            ax.imshow(_displayable(img, lo, hi), cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            colour = PALETTE[0] if c == 0 else PALETTE[1]
            for spine in ax.spines.values():
                spine.set_color(colour)
                spine.set_linewidth(1.5)
            if r == 0:
                ax.set_title("original" if c == 0 else f"augmented {c}", fontsize=8, color=colour)
    fig.suptitle(title)
    return save(fig, path)
