"""Pruning of honing's neural estimators (``compress.prune``): unstructured magnitude pruning, structured
pruning that shrinks the network, and iterative pruning with fine-tuning between steps.

* **Unstructured** (``structured=False``): the smallest-magnitude entries of the *prunable weights* are
  zeroed, through :mod:`torch.nn.utils.prune` — in every layer alike (``scope="layer"``: each weight loses
  ``amount`` of its entries) or over all of them together (``scope="global"``: the smallest ``amount`` of
  all prunable entries, so layers end up with different sparsities).  Prunable weights are the weight
  matrices of Linear layers (the output head included: it is a Linear like the others, and sparing it
  would leave a sizeable share of a small net's weights untouched), Conv layers, recurrent layers
  (``weight_ih_*``, ``weight_hh_*``) and attention input projections.  Biases, normalisation layers,
  embeddings and learned positions are never pruned: they are few, and zeroing them shifts every output.
  The net keeps its shape (sparse, same speed); the masks are made permanent at the end, so the state
  dict holds plain tensors with zeros.
* **Structured** (``structured=True``, mlp and cnn only): whole hidden neurons / conv channels go, and a
  smaller net of the same architecture replaces the original (see :mod:`honing.compression.prune_structured`);
  ``scope`` does not apply (every layer loses ``amount`` of its units).
* **Iterative** (``steps > 1``): ``amount`` is reached in steps, each keeping ``(1 - amount) ** (1 / steps)``
  of what remains, with ``finetune_epochs`` of training on the training data after every step (the last
  included).  Fine-tuning uses the estimator's own loss and ``train_config()`` (no augmentation), with
  early stopping on the validation data when given; unstructured masks stay in place while fine-tuning,
  so pruned weights stay zero.

The input estimator is never modified: :func:`prune` works on a copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import is_classifier
from torch import nn
from torch.nn.utils import prune as torch_prune

from honing.compression import prune_structured
from honing.errors import CompressionError, did_you_mean

SCOPES = ("layer", "global")


@dataclass
class Pruned:
    """A pruned copy of an estimator and what pruning did.

    ``sparsity``: fraction of zero entries of each prunable weight of the pruned net (by parameter name).
    ``parameters_before`` / ``parameters_after``: ``{"total": n, "nonzero": m}`` over every parameter of the
    net (weights, biases, norm scales and shifts, embeddings; not buffers such as BatchNorm's running
    statistics): ``total`` counts entries, ``nonzero`` those that are not exactly zero.  Unstructured
    pruning lowers ``nonzero``; structured pruning lowers both.
    """

    estimator: Any
    sparsity: dict[str, float]
    parameters_before: dict[str, int]
    parameters_after: dict[str, int]
    description: str


def prune(estimator: Any, amount: float, *, structured: bool = True, scope: str = "layer", steps: int = 1,
          finetune_epochs: int = 0, train: tuple[np.ndarray, np.ndarray] | None = None,
          validation: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0) -> Pruned:
    """Prune a copy of the fitted neural ``estimator`` (``NeuralClassifier`` / ``NeuralRegressor``).

    ``amount`` in (0, 1) is the fraction of prunable weights (unstructured) or of each layer's neurons /
    channels (structured) removed in all; ``scope`` is ``"layer"`` or ``"global"`` (unstructured only).
    ``train`` / ``validation`` are ``(X, y)`` as the estimator's ``fit`` takes them (preprocessed matrix,
    original labels); ``train`` is needed when ``finetune_epochs > 0``.  See the module docstring.
    """
    _check_arguments(estimator, amount, scope, steps, finetune_epochs, train)
    original = prune_structured.widths(estimator) if structured else None  # raises for nets it cannot shrink
    est = copy.deepcopy(estimator)
    before = _counts(est.module_)
    if structured:
        for step in range(1, steps + 1):
            sizes = prune_structured.target_widths(original, amount, step, steps)
            est.module_, est.net_params_ = prune_structured.shrink(est, sizes)
            _finetune(est, finetune_epochs, train, validation, seed + step, masked=())
    else:
        weights = prunable_weights(est.module_)
        for step in range(1, steps + 1):
            keep = (1.0 - amount) ** (step / steps)
            (_prune_global if scope == "global" else _prune_layers)(weights, keep)
            _finetune(est, finetune_epochs, train, validation, seed + step, masked=weights)
        for _, module, name in weights:
            torch_prune.remove(module, name)
    est.module_.eval()
    return Pruned(est, sparsity(est.module_), before, _counts(est.module_),
                  _describe(estimator, est, amount, structured, scope, steps, finetune_epochs))


def _check_arguments(estimator: Any, amount: Any, scope: str, steps: Any, finetune_epochs: Any,
                     train: Any) -> None:
    """Raise :class:`CompressionError` naming the recipe key of a bad argument."""
    if not hasattr(estimator, "module_"):
        raise CompressionError(f"pruning applies to fitted neural models, and this is a {type(estimator).__name__}",
                               "remove compress.prune, or try compress.distill")
    if not isinstance(amount, Real) or isinstance(amount, bool) or not 0 < amount < 1:
        raise CompressionError(f"compress.prune.amount: must be in (0, 1), got {amount!r}",
                               "e.g. 0.5 removes half of the weights")
    if scope not in SCOPES:
        raise CompressionError(f"compress.prune.scope: unknown scope {scope!r}", did_you_mean(str(scope), SCOPES))
    if not isinstance(steps, Integral) or isinstance(steps, bool) or steps < 1:
        raise CompressionError(f"compress.prune.steps: must be an integer ≥ 1, got {steps!r}",
                               "use 1 for one-shot pruning")
    if not isinstance(finetune_epochs, Integral) or isinstance(finetune_epochs, bool) or finetune_epochs < 0:
        raise CompressionError(f"compress.prune.finetune_epochs: must be an integer ≥ 0, got {finetune_epochs!r}",
                               "use 0 for no fine-tuning")
    if finetune_epochs > 0 and train is None:
        raise CompressionError("compress.prune.finetune_epochs: fine-tuning needs the training data",
                               "pass train=(X, y), or set compress.prune.finetune_epochs: 0")


# --------------------------------------------------------------------------- unstructured pruning

def prunable_weights(module: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(qualified name, owning module, parameter name)`` of every prunable weight of ``module`` (see the
    module docstring), in module order; a weight already under a pruning mask is listed by its own name."""
    found = []
    for path, sub in module.named_modules():
        if isinstance(sub, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            names = ["weight"]
        elif isinstance(sub, nn.RNNBase):
            names = [n for n in sub._flat_weights_names if n.startswith("weight_")]
        elif isinstance(sub, nn.MultiheadAttention):  # its out_proj is a Linear, found on its own
            names = ["in_proj_weight"] if sub._qkv_same_embed_dim else ["q_proj_weight", "k_proj_weight",
                                                                       "v_proj_weight"]
        else:
            continue
        found += [(f"{path}.{n}" if path else n, sub, n) for n in names if _weight(sub, n) is not None]
    return found


def _weight(module: nn.Module, name: str) -> torch.Tensor | None:
    """The effective value of weight ``name``: ``orig * mask`` under a pruning mask (always current)."""
    mask = getattr(module, name + "_mask", None)
    if mask is not None:
        return getattr(module, name + "_orig") * mask
    return getattr(module, name, None)


def _pruned_count(module: nn.Module, name: str) -> int:
    """How many entries of weight ``name`` its mask already zeroes (0 without a mask)."""
    mask = getattr(module, name + "_mask", None)
    return 0 if mask is None else int((mask == 0).sum())


def _target(n: int, keep: float) -> int:
    """Entries of ``n`` to be pruned in all once only ``keep`` of them remain."""
    return round(n * (1.0 - keep))


def _prune_layers(weights: list[tuple[str, nn.Module, str]], keep: float) -> None:
    """Per layer: mask the smallest entries until each weight keeps ``keep`` of its entries."""
    for _, module, name in weights:
        more = _target(_weight(module, name).numel(), keep) - _pruned_count(module, name)
        torch_prune.l1_unstructured(module, name, amount=max(0, more))


def _prune_global(weights: list[tuple[str, nn.Module, str]], keep: float) -> None:
    """Globally: mask the smallest entries of all weights together until ``keep`` of them remain."""
    total = sum(_weight(m, n).numel() for _, m, n in weights)
    more = _target(total, keep) - sum(_pruned_count(m, n) for _, m, n in weights)
    pairs = [(m, n) for _, m, n in weights]
    scores = {(m, n): _weight(m, n).detach() for m, n in pairs}  # current values, not the last forward's
    torch_prune.global_unstructured(pairs, torch_prune.L1Unstructured, importance_scores=scores,
                                    amount=max(0, more))


# --------------------------------------------------------------------------- fine-tuning

def _masked_weights_hook(weights: list[tuple[str, nn.Module, str]]) -> Any:
    """A forward pre-hook for the whole net that recomputes every masked weight (``orig * mask``).

    The pruning hook of a layer recomputes its weight only when that layer is *called*; a layer whose weight
    its parent reads directly (``nn.MultiheadAttention`` reads ``out_proj.weight``) would otherwise train
    and predict with the weight of the moment it was pruned, and never pass gradients to it."""

    def hook(module: nn.Module, args: Any) -> None:
        for _, owner, name in weights:
            setattr(owner, name, _weight(owner, name))

    return hook


def _finetune(est: Any, epochs: int, train: tuple | None, validation: tuple | None, seed: int,
              masked: list[tuple[str, nn.Module, str]] | tuple) -> None:
    """Train ``est.module_`` in place for ``epochs`` on ``train`` with the estimator's own loss and training
    settings (early stopping on ``validation`` when given); masked weights stay zero."""
    if epochs == 0:
        return
    from honing.training.trainer import Trainer

    cfg = est.train_config()
    update: dict[str, Any] = {"epochs": epochs, "init": "default"}  # never re-initialise the kept weights
    if validation is None:
        update["early_stopping"] = None
    cfg = cfg.model_copy(update=update)
    Xt, yt = _tensors(est, *train)
    val = _tensors(est, *validation) if validation is not None else (None, None)
    device = next(est.module_.parameters()).device
    handle = est.module_.register_forward_pre_hook(_masked_weights_hook(list(masked)))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            trainer = Trainer(est.module_, _loss(est), cfg, metrics=est._metrics(), device=str(device),
                              seed=seed, order=est._order(Xt, cfg))
            trainer.fit(Xt, yt, *val)
    finally:
        handle.remove()
    est.module_.eval()


def _loss(est: Any) -> nn.Module:
    """The estimator's training loss: cross-entropy on class codes, or MSE on the standardised target."""
    if is_classifier(est):
        return nn.CrossEntropyLoss(label_smoothing=est.label_smoothing)
    return nn.MSELoss()


def _tensors(est: Any, X: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, y)`` as ``fit`` takes them → the net's input and target tensors (codes / standardised)."""
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if is_classifier(est):
        target = est.label_encoder_.transform(y)
    else:
        target = ((y.astype(np.float64) - est.y_mean_) / est.y_scale_).astype(np.float32)
    return est._tensor(X, est.input_shape_), est._target_tensor(target)


# --------------------------------------------------------------------------- measuring

def sparsity(module: nn.Module) -> dict[str, float]:
    """Fraction of exactly-zero entries of each prunable weight of ``module``, by parameter name."""
    return {path: float((_weight(m, n) == 0).float().mean()) for path, m, n in prunable_weights(module)}


def parameter_count(module: nn.Module, nonzero: bool = False) -> int:
    """Entries of every parameter of ``module`` (each shared tensor once; buffers not counted), or only the
    non-zero ones; a weight under a pruning mask counts as its masked value."""
    seen: set[int] = set()
    count = 0
    for sub in module.modules():
        for name, param in sub._parameters.items():
            if param is None or id(param) in seen:
                continue
            seen.add(id(param))
            value = param
            if name.endswith("_orig") and hasattr(sub, name[: -len("_orig")] + "_mask"):
                value = _weight(sub, name[: -len("_orig")])
            count += int(torch.count_nonzero(value)) if nonzero else value.numel()
    return count


def _counts(module: nn.Module) -> dict[str, int]:
    return {"total": parameter_count(module), "nonzero": parameter_count(module, nonzero=True)}


def _percent(amount: float) -> str:
    return f"{amount:.0%}" if abs(amount * 100 - round(amount * 100)) < 1e-9 else f"{amount:.1%}"


def _describe(original: Any, pruned: Any, amount: float, structured: bool, scope: str, steps: int,
              epochs: int) -> str:
    """E.g. ``structured 50% (2 steps, 2 fine-tuning epochs each; hidden [256, 128] → [128, 64])``."""
    kind = f"structured {_percent(amount)}" if structured else \
        f"unstructured {_percent(amount)} {'per layer' if scope == 'layer' else 'global'}"
    parts = []
    if steps > 1 or epochs:
        parts.append(f"{steps} step{'s' if steps > 1 else ''}")
    if epochs:
        parts[-1] += f", {epochs} fine-tuning epoch{'s' if epochs > 1 else ''}{' each' if steps > 1 else ''}"
    if structured:
        key = prune_structured.STRUCTURED[original.net_]
        parts.append(f"{key} {prune_structured.widths(original)} → {pruned.net_params_[key]}")
    return f"{kind} ({'; '.join(parts)})" if parts else kind
