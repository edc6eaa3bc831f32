"""The recipe's augmentation of training batches: :func:`check_augment` and :func:`batch_augmenter`.

``data.augment`` is a list of steps ``{name: NAME, …params}``.  Which steps apply depends on what
the model reads (the *modality*):

===========  ====================================================================================
``image``    pixel tensors ``(N, C, H, W)``: hflip, vflip, rotation, resized_crop, color_jitter,
             gaussian_noise, erasing (kornia, see :mod:`honing.data.augment`) and mixup
``tabular``  float features ``(N, F)``: gaussian_noise (``std`` × each column's standard deviation
             within the batch, added to each row with probability ``p``), mixup, and text (which
             rewrites text columns before their TF-IDF features are computed)
``tokens``   token ids: text only (mixing or noising ids makes no sense)
===========  ====================================================================================

Tabular parameters and defaults: ``gaussian_noise`` ``p`` 0.5, ``std`` 0.1; ``mixup`` ``alpha`` 0.2
(each row ``i`` becomes ``lam_i * x_i + (1 - lam_i) * x_perm[i]`` with ``lam_i ~ Beta(alpha, alpha)``
and a random permutation of the batch, and so do its targets).  ``text`` steps act on the training
*rows* (:func:`honing.data.augment_text.augment_training_text`), not on batches.

:func:`batch_augmenter` returns the callable the trainer applies to training batches only
(``(xb, yb) -> (xb, yb)``): the image steps in the recipe's order, then the tabular noise steps,
then mixup (always last).  Classification targets arrive as class codes ``(N,)``; mixup turns them
into mixed one-hot rows ``(N, n_classes)`` (float, rows summing to 1, as ``CrossEntropyLoss``
accepts); without mixup the targets are returned untouched.  Regression targets (``(N, 1)``
floats) are mixed like the inputs.  Random draws come from a ``torch.Generator`` seeded with
``seed`` (on the CPU, so the draws are the same on every device); the kornia steps are seeded by
:func:`honing.data.augment.image_augmenter` with the same seed.

torch is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from honing.data.augment import IMAGE_AUGMENTS, image_augmenter, validate_image_steps
from honing.data.augment_steps import check_steps, number, step_params
from honing.data.augment_text import check_text_step
from honing.errors import RecipeError, did_you_mean

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["MODALITIES", "STEPS_FOR", "TABULAR_DEFAULTS", "BatchAugmenter", "batch_augmenter", "check_augment"]

#: What each modality's batches are, in words (for error messages).
MODALITIES: dict[str, str] = {
    "image": "image batches (N, C, H, W)",
    "tabular": "tabular features (N, F)",
    "tokens": "token ids",
}
#: The steps that apply to each modality.
STEPS_FOR: dict[str, tuple[str, ...]] = {
    "image": (*IMAGE_AUGMENTS, "mixup"),
    "tabular": ("gaussian_noise", "mixup", "text"),
    "tokens": ("text",),
}
_ALL_STEPS = tuple(dict.fromkeys(name for names in STEPS_FOR.values() for name in names))
#: Parameters and defaults of the steps that are not kornia image steps (text: see augment_text).
TABULAR_DEFAULTS: dict[str, dict[str, float]] = {
    "gaussian_noise": {"p": 0.5, "std": 0.1},
    "mixup": {"alpha": 0.2},
}

Step = tuple[str, dict[str, Any], dict]  # (name, validated parameters, the recipe's step)


def _tabular_params(where: str, name: str, step: dict) -> dict[str, float]:
    """A gaussian_noise (tabular) or mixup step's parameters, defaults filled in and checked."""
    params = step_params(where, name, step, TABULAR_DEFAULTS[name])
    if name == "mixup":
        return {"alpha": number(f"{where}.alpha", params["alpha"], 0.0, above=True)}
    return {"p": number(f"{where}.p", params["p"], 0.0, 1.0), "std": number(f"{where}.std", params["std"], 0.0)}


def _validated(steps: list[dict], modality: str) -> list[Step]:
    """Every step checked for ``modality``: ``(name, parameters, step)`` in the recipe's order."""
    if modality not in STEPS_FOR:
        raise ValueError(f"modality must be one of {sorted(STEPS_FOR)}, got {modality!r}")
    check_steps(steps)
    allowed = STEPS_FOR[modality]
    for i, step in enumerate(steps):
        where, name = f"data.augment[{i}]", step["name"]
        if name not in _ALL_STEPS:
            raise RecipeError(f"{where}.name: unknown augmentation {name!r}", did_you_mean(str(name), allowed))
        if name not in allowed:
            raise RecipeError(f"{where}.name: '{name}' does not apply to {MODALITIES[modality]}",
                              did_you_mean(str(name), allowed))
    mixups = [i for i, step in enumerate(steps) if step["name"] == "mixup"]
    if len(mixups) > 1:
        raise RecipeError(f"data.augment[{mixups[1]}].name: mixup is given twice", "keep one mixup step")
    # The kornia steps are checked in one call, with the other steps standing in as a plain hflip so
    # that the indices in its messages (data.augment[i]) stay those of the recipe.
    kornia = modality == "image"
    images = validate_image_steps([s if kornia and s["name"] in IMAGE_AUGMENTS else {"name": "hflip"}
                                   for s in steps])
    out = []
    for i, step in enumerate(steps):
        name, where = step["name"], f"data.augment[{i}]"
        if name == "text":
            params = check_text_step(step, where)
        elif kornia and name in IMAGE_AUGMENTS:
            params = images[i][1]
        else:
            params = _tabular_params(where, name, step)
        out.append((name, params, step))
    return out


def check_augment(steps: list[dict], modality: str) -> None:
    """Check the recipe's ``data.augment`` steps for data of ``modality`` ("image", "tabular" or
    "tokens"): a RecipeError naming ``data.augment[i].name`` (with a did-you-mean) for an unknown
    step or one that does not apply to the modality, or ``data.augment[i].KEY`` for a bad parameter."""
    _validated(steps, modality)


class BatchAugmenter:
    """The recipe's batch steps as a callable ``(xb, yb) -> (xb, yb)`` (see the module docstring).

    Like an ``nn.Module`` it has a ``training`` flag (``train()`` / ``eval()``): in eval mode it is
    the identity.  ``state_dict`` / ``load_state_dict`` carry its random state (for a resumed run).
    """

    def __init__(self, steps: list[Step], modality: str, n_classes: int | None, seed: int):
        import torch

        self.names = [name for name, _, _ in steps]
        self.modality, self.n_classes, self.seed = modality, n_classes, seed
        kornia = [step for name, _, step in steps if modality == "image" and name != "mixup"]
        self.image = image_augmenter(kornia, seed=seed) if kornia else None
        #: recipe indices of the colour steps that need RGB (image steps keep the recipe's indices:
        #: no text step applies to images)
        self.colour = [i for i, (name, params, _) in enumerate(steps)
                       if name == "color_jitter" and (params["saturation"] or params["hue"])]
        self.noise = [params for name, params, _ in steps if modality == "tabular" and name == "gaussian_noise"]
        self.alpha = next((params["alpha"] for name, params, _ in steps if name == "mixup"), None)
        self.generator = torch.Generator().manual_seed(seed)
        self.training = True

    def __repr__(self) -> str:
        return f"BatchAugmenter({self.modality}: {', '.join(self.names)}; seed={self.seed})"

    def train(self, mode: bool = True) -> BatchAugmenter:
        self.training = mode
        if self.image is not None:
            self.image.train(mode)
        return self

    def eval(self) -> BatchAugmenter:
        return self.train(False)

    def __call__(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return xb, yb
        if self.image is not None:
            if self.colour and xb.shape[-3] != 3:
                raise RecipeError(f"data.augment[{self.colour[0]}]: saturation and hue need colour (3-channel) "
                                  f"images, and these have {xb.shape[-3]} channel(s)",
                                  "set saturation and hue to 0 (brightness and contrast work on any image)")
            xb = self.image(xb)
        for params in self.noise:
            xb = self._noise(xb, params["p"], params["std"])
        if self.alpha is not None:
            xb, yb = self._mixup(xb, yb)
        return xb, yb

    def _noise(self, x: Tensor, p: float, std: float) -> Tensor:
        """Each row, with probability ``p``, plus Gaussian noise of ``std`` × each column's standard
        deviation within the batch (missing values stay missing)."""
        import torch

        _check_float(x, "gaussian_noise")
        n = len(x)
        flat = x.reshape(n, -1)
        chosen = torch.rand(n, generator=self.generator) < p
        noise = torch.randn(flat.shape, generator=self.generator)
        if n == 0 or p == 0.0 or std == 0.0:
            return x
        mean = torch.nanmean(flat, dim=0)
        scale = torch.nan_to_num(torch.nanmean((flat - mean) ** 2, dim=0).sqrt())
        noise = noise.to(x.device, x.dtype) * (std * scale) * chosen.to(x.device, x.dtype)[:, None]
        return (flat + noise).reshape(x.shape)

    def _mixup(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Row ``i`` blended with row ``perm[i]`` by ``lam_i ~ Beta(alpha, alpha)``, targets too."""
        import torch

        _check_float(x, "mixup")
        n = len(x)
        perm = torch.randperm(n, generator=self.generator)
        draw = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        lam = torch.from_numpy(np.random.default_rng(draw).beta(self.alpha, self.alpha, size=n))
        soft = self._soft_targets(y, x.dtype)
        perm = perm.to(x.device)
        lx = lam.to(x.device, x.dtype).reshape((n,) + (1,) * (x.dim() - 1))
        ly = lam.to(soft.device, soft.dtype).reshape((n,) + (1,) * (soft.dim() - 1))
        return lx * x + (1 - lx) * x[perm], ly * soft + (1 - ly) * soft[perm]

    def _soft_targets(self, y: Tensor, dtype: Any) -> Tensor:
        """Class codes (N,) as one-hot float rows; soft (N, C) and regression targets as floats."""
        import torch

        if self.n_classes is not None and not (y.is_floating_point() or y.is_complex()):
            if y.dim() != 1:
                raise ValueError(f"mixup: class codes must have shape (N,), got {tuple(y.shape)}")
            return torch.nn.functional.one_hot(y.long(), self.n_classes).to(dtype)
        if self.n_classes is not None and (y.dim() != 2 or y.shape[1] != self.n_classes):
            raise ValueError(f"mixup: soft targets must have shape (N, {self.n_classes}), got {tuple(y.shape)}")
        return y.to(dtype)

    def state_dict(self) -> dict[str, Any]:
        """The random state: the generator's, and how many batches the kornia steps have seen."""
        return {"generator": self.generator.get_state(), "image_calls": getattr(self.image, "calls", 0)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if self.image is not None:
            self.image.calls = int(state["image_calls"])


def _check_float(x: Tensor, step: str) -> None:
    if not x.is_floating_point():
        raise ValueError(f"{step} needs float inputs, got {x.dtype}")


def batch_augmenter(steps: list[dict], *, modality: str, n_classes: int | None,
                    seed: int) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None:
    """The callable that augments training batches as the recipe's ``steps`` say, for data of
    ``modality`` ("image", "tabular" or "tokens"; see :func:`check_augment`), or None when no step
    acts on batches (no steps, or only ``text`` steps).  ``n_classes``: the number of classes of a
    classification task (mixup's one-hot targets), None for regression.  Deterministic for a
    ``seed``.  Apply it to training batches only, never to validation or test data."""
    validated = _validated(steps, modality)
    acting = [step for step in validated if step[0] != "text"]
    if not acting:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise RecipeError(f"augmentation seed: expected an integer, got {seed!r}")
    return BatchAugmenter(acting, modality, n_classes, int(seed))
