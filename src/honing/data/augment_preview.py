"""``honing augment-preview``: what a recipe's ``data.augment`` does to its first training rows, as a PNG.

* **Images** — an image column (kind ``image``: paths decoded as ``data.image`` says) or pixel
  columns (the numeric features, shaped by ``model.params.input_shape`` ``[C, H, W]``, else by the
  image array file they came from (``Dataset.image_shape``), else one square grayscale image;
  pixels outside [0, 1] are scaled into it over the rows shown): a grid
  with each original beside ``per_image`` augmented versions, drawn by
  :func:`honing.data.augment.preview_grid` through the same :func:`batch_augmenter` training uses
  (mixup included: it blends the rows shown).  Pixel columns are taken for images when a step is an
  image-only one (hflip, rotation, …), when ``model.type`` is ``cnn``, when
  ``model.params.input_shape`` is set, or when they came from an image array file.
* **Text** — a ``text`` step on the first text column: each original sentence followed by its
  augmented versions (from :func:`honing.data.augment_text.augment_training_text`), drawn as text.

Tabular steps (gaussian_noise, mixup on features) have nothing to draw: a RecipeError says so.
The PNG is written to a temporary name and renamed, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from honing.data.augment import IMAGE_AUGMENTS, preview_grid
from honing.data.augment_batch import batch_augmenter
from honing.data.augment_text import augment_training_text, check_text_step
from honing.data.dataset import Dataset
from honing.data.preprocess import coerce_features
from honing.errors import HoningError, RecipeError
from honing.recipe import Recipe
from honing.tracking import atomic_write

__all__ = ["MAX_PER_IMAGE", "MAX_ROWS", "check_preview", "write_preview"]

MAX_ROWS = 100
MAX_PER_IMAGE = 20
_WRAP = 125  # characters per line of the text preview
_LINE_INCHES = 0.2


def check_preview(recipe: Recipe, out: str | Path, rows: int, per_image: int) -> None:
    """The mistakes that need no data: no augmentation steps, sizes out of range, not a .png."""
    if not recipe.data.augment:
        raise RecipeError("data.augment is empty: there is nothing to preview",
                          "add steps to the recipe, e.g. --set 'data.augment=[{name: hflip}, "
                          "{name: rotation, degrees: 15}]' (see docs/augmentation.md)")
    if Path(out).suffix.lower() != ".png":
        raise HoningError(f"--out {out}: the preview is a PNG image", "give a file name ending in .png")
    for name, value, most in (("--rows", rows, MAX_ROWS), ("--per-image", per_image, MAX_PER_IMAGE)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise HoningError(f"{name} {value!r}: expected a whole number from 1 to {most}", "e.g. --rows 8 --per-image 4")


def write_preview(recipe: Recipe, dataset: Dataset, out: str | Path, rows: int = 8, per_image: int = 4,
                  echo: Callable[[str], Any] | None = None) -> Path:
    """Write the preview PNG of ``recipe``'s augmentation on the first ``rows`` training rows of
    ``dataset`` (``echo`` gets the text preview's lines); returns ``out``."""
    check_preview(recipe, out, rows, per_image)
    steps = recipe.data.augment
    features = dataset.schema.features
    train = dataset.splits["train"].iloc[:rows]
    if len(train) == 0:
        raise HoningError("the training split is empty: there is nothing to preview", "check data.split")
    image_columns = [c.name for c in features if c.kind == "image"]
    text_steps = [(i, step) for i, step in enumerate(steps) if isinstance(step, dict) and step.get("name") == "text"]
    title = f"{recipe.name}: " + ", ".join(str(s.get("name")) if isinstance(s, dict) else "?" for s in steps)
    if image_columns:
        images = _decoded(recipe, train[image_columns[0]])
    elif text_steps:
        return _text_preview(recipe, dataset, train, text_steps[0], out, per_image, echo)
    elif _pixels_wanted(recipe, dataset):
        images = _pixels(recipe, dataset, train)
    else:
        raise RecipeError("data.augment: augment-preview draws images and text, and this data is tabular",
                          "gaussian_noise and mixup change feature batches while a neural model trains; "
                          "for pixel columns set model.params.input_shape: [C, H, W] (or model.type: cnn)")
    augmenter = batch_augmenter(steps, modality="image", n_classes=None, seed=recipe.seed)
    return atomic_write(out, lambda tmp: preview_grid(images, _ImagesOnly(augmenter), tmp, n=rows,
                                                     per_image=per_image, title=title))


def _pixels_wanted(recipe: Recipe, dataset: Dataset) -> bool:
    """Pixel columns are images when a step only makes sense for images, or the model or the data
    (an image array file) says so."""
    image_only = set(IMAGE_AUGMENTS) - {"gaussian_noise"}
    return (any(isinstance(s, dict) and s.get("name") in image_only for s in recipe.data.augment)
            or recipe.model.type == "cnn" or "input_shape" in recipe.model.params
            or getattr(dataset, "image_shape", None) is not None)


def _decoded(recipe: Recipe, paths: Any) -> Any:
    """The images of an image column as an (N, C, H, W) tensor, decoded as ``data.image`` says."""
    from honing.data.images import ImageSpec, ImageTensors

    cfg = recipe.data.image
    spec = ImageSpec(size=tuple(cfg.size) if cfg.size else None, channels=cfg.channels,
                     mean=tuple(cfg.mean) if cfg.mean else None, std=tuple(cfg.std) if cfg.std else None)
    return ImageTensors([str(p) for p in paths], spec).all()


def _pixels(recipe: Recipe, dataset: Dataset, train: Any) -> Any:
    """The numeric features of ``train`` as (N, C, H, W) images scaled into [0, 1]."""
    import numpy as np
    import torch

    columns = [c.name for c in dataset.schema.features if c.kind == "numeric"]
    if not columns:
        raise RecipeError("data.augment: the data has neither an image column nor pixel (numeric) columns",
                          "image steps need images; see docs/augmentation.md")
    shape = _image_shape(recipe, len(columns), getattr(dataset, "image_shape", None))
    values = coerce_features(train, dataset.schema)[columns].to_numpy(dtype=np.float32, na_value=np.nan)
    values = np.nan_to_num(values)
    lo, hi = float(values.min()), float(values.max())
    if lo < 0.0 or hi > 1.0:
        values = (values - lo) / (hi - lo if hi > lo else 1.0)
    return torch.from_numpy(np.ascontiguousarray(values)).reshape(len(values), *shape)


def _image_shape(recipe: Recipe, n: int, known: tuple[int, int, int] | None = None) -> tuple[int, int, int]:
    """(C, H, W) of ``n`` pixel columns: ``model.params.input_shape``, else the data's own image
    shape (``known``, from an image array file), else a square gray image."""
    shape = recipe.model.params.get("input_shape")
    if shape is None and known is not None and math.prod(known) == n:
        return tuple(known)  # type: ignore[return-value]
    if shape is None:
        side = math.isqrt(n)
        if side * side != n:
            raise RecipeError(f"data.augment: {n} pixel columns are not a square image",
                              "set model.params.input_shape: [C, H, W] (channels, height, width)")
        return 1, side, side
    if (not isinstance(shape, list | tuple) or len(shape) not in (2, 3)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise RecipeError(f"model.params.input_shape: {shape!r} is not an image shape",
                          "give [C, H, W] (channels, height, width) or [H, W] in whole pixels")
    if math.prod(shape) != n:
        raise RecipeError(f"model.params.input_shape: {list(shape)} holds {math.prod(shape)} values, but there "
                          f"are {n} pixel columns", "make the shape match the numeric feature columns")
    return (1, *shape) if len(shape) == 2 else tuple(shape)  # type: ignore[return-value]


class _ImagesOnly:
    """A batch augmenter seen as an image module for :func:`preview_grid` (targets are dummies)."""

    def __init__(self, augmenter: Any):
        self.augmenter = augmenter

    @property
    def training(self) -> bool:
        return self.augmenter.training

    def train(self, mode: bool = True) -> _ImagesOnly:
        self.augmenter.train(mode)
        return self

    def __call__(self, x: Any) -> Any:
        import torch

        return self.augmenter(x, torch.zeros(len(x), 1))[0]


def _text_preview(recipe: Recipe, dataset: Dataset, train: Any, text_step: tuple[int, dict], out: str | Path,
                  per_image: int, echo: Callable[[str], Any] | None) -> Path:
    """Each original sentence of the first text column and ``per_image`` augmented versions."""
    index, step = text_step
    check_text_step(step, f"data.augment[{index}]")  # as training checks it (the preview sets its own copies)
    columns = [c.name for c in dataset.schema.features if c.kind == "text"]
    if not columns:
        raise RecipeError(f"data.augment[{index}].name: a text step needs a text column, and "
                          f"{recipe.data.source} has none",
                          "mark a column as text with data.types: {COLUMN: text}, or remove the step")
    column = columns[0]
    frame = train[[column]]
    n = len(frame)
    augmented = augment_training_text(frame, [column], {**step, "copies": per_image}, recipe.seed, index=index)
    pairs = [(frame[column].iloc[r], [augmented[column].iloc[k * n + r] for k in range(1, per_image + 1)])
             for r in range(n)]
    if echo is not None:
        for r, (original, versions) in enumerate(pairs, 1):
            echo(f"{r}. {_shown(original)}")
            for version in versions:
                echo(f"   → {_shown(version)}")
    title = f"{recipe.name}: data.augment[{index}] on '{column}'"
    return atomic_write(out, lambda tmp: _draw_text(pairs, title, tmp))


def _shown(text: Any) -> str:
    return text if isinstance(text, str) else "(missing)"


def _draw_text(pairs: list[tuple[Any, list[Any]]], title: str, path: Path) -> Path:
    """A PNG of the originals (bold, blue) each followed by its augmented versions (orange)."""
    from honing.report.plots import PALETTE, pyplot, save

    lines: list[tuple[str, str]] = []
    for r, (original, versions) in enumerate(pairs, 1):
        lines += [(part, "original") for part in textwrap.wrap(f"{r}. {_shown(original)}", _WRAP) or [f"{r}."]]
        for version in versions:
            lines += [(part, "augmented") for part in
                      textwrap.wrap(_shown(version), _WRAP, initial_indent="    → ", subsequent_indent="      ")
                      or ["    →"]]
        lines.append(("", "gap"))
    top, bottom = 0.5, 0.2  # inches: the title, the margin
    height = top + bottom + _LINE_INCHES * len(lines)
    plt = pyplot()
    fig = plt.figure(figsize=(11, height), dpi=100)
    fig.text(0.5, 1 - 0.25 / height, title, ha="center", va="center", fontsize=11, parse_math=False)
    for j, (text, kind) in enumerate(lines):
        if kind == "gap":
            continue
        y = 1 - (top + _LINE_INCHES * (j + 0.5)) / height
        fig.text(0.02, y, text, va="center", fontsize=9, parse_math=False,
                 color=PALETTE[0] if kind == "original" else PALETTE[3],
                 fontweight="bold" if kind == "original" else "normal")
    return save(fig, path)
