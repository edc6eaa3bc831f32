"""Structured pruning that shrinks a network: whole hidden neurons of an ``mlp`` or whole conv channels of a
``cnn`` are removed, and a smaller net of the same architecture is built with the kept weights copied in.

The result is an ordinary net of :mod:`honing.models.nets` with smaller ``hidden`` (mlp) or ``channels``
(cnn) parameters, so an estimator holding it exports and imports (bundles) unchanged.  :func:`shrink`
is the entry point; :mod:`honing.compression.prune` drives it (steps, fine-tuning).

Ranking.  A unit is kept for the size of what it passes on: its *input scale* (how large its activation
can get) times the norm of its *outgoing* weights (how much the next layer, or the head, listens to it).
Either factor alone misleads: a unit with large incoming weights whose outgoing column is zero changes
nothing downstream, and the other way round.  Because ReLU-like activations are positively homogeneous,
the product estimates the size of the unit's contribution to the next layer's pre-activations.  The input
scale is the L2 norm of the incoming row and bias (mlp) or the L1 norm of the filter and bias (cnn, as in
Li et al., "Pruning Filters for Efficient ConvNets"); after a BatchNorm / LayerNorm, which normalises the
incoming scale away, it is the norm of the unit's affine scale and shift (γ, β) instead.  A unit whose
outgoing weights are all zero scores 0 and goes first, so removing dead units never changes the outputs
(with ``norm: layer`` the remaining units are normalised over fewer features, so outputs may change).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from honing.errors import CompressionError
from honing.models.nets import build_net

#: The nets whose neurons (mlp) or channels (cnn) structured pruning removes, and the parameter it changes.
STRUCTURED = {"mlp": "hidden", "cnn": "channels"}


def widths(estimator: Any) -> list[int]:
    """The current sizes of the prunable layers: the mlp's hidden sizes or the cnn's channels."""
    _check_net(estimator)
    if estimator.net_ == "mlp":
        return [block[0].out_features for block in estimator.module_.blocks]
    return [block[0].out_channels for block in estimator.module_.blocks]


def target_widths(original: Sequence[int], amount: float, step: int, steps: int) -> list[int]:
    """The layer sizes after ``step`` of ``steps``: ``(1 - amount) ** (step / steps)`` of the original
    size, rounded, at least 1 — so each step keeps ``(1 - amount) ** (1 / steps)`` of what remains and
    the last keeps ``1 - amount`` of the original."""
    keep = (1.0 - amount) ** (step / steps)
    return [max(1, round(n * keep)) for n in original]


def shrink(estimator: Any, sizes: Sequence[int]) -> tuple[nn.Module, dict[str, Any]]:
    """A smaller copy of ``estimator.module_`` with the ``sizes[i]`` best units of each prunable layer,
    and the ``net_params_`` that build it.  ``estimator`` is not modified."""
    _check_net(estimator)
    old = estimator.module_
    current = widths(estimator)
    if any(s > c for s, c in zip(sizes, current, strict=True)):
        raise ValueError(f"cannot grow layers {current} to {list(sizes)}")
    key = STRUCTURED[estimator.net_]
    params = {**estimator.net_params_, key: [int(s) for s in sizes]}
    new = build_net(estimator.net_, estimator.input_shape_, old.head.out_features, params)
    new.checkpointing = getattr(old, "checkpointing", False)
    scores = _mlp_scores(old) if estimator.net_ == "mlp" else _cnn_scores(old)
    keep = [_top(score, n) for score, n in zip(scores, sizes, strict=True)]
    with torch.no_grad():
        _copy_blocks(old, new, keep)
    device = next(old.parameters()).device
    return new.to(device).eval(), params


def _check_net(estimator: Any) -> None:
    if estimator.net_ not in STRUCTURED:
        raise CompressionError(f"structured pruning supports mlp and cnn, and this is a {estimator.net_}",
                               "set compress.prune.structured: false for unstructured pruning")
    if estimator.net_ == "mlp" and not len(estimator.module_.blocks):
        raise CompressionError("structured pruning removes hidden neurons, and this mlp has no hidden layer",
                               "set compress.prune.structured: false for unstructured pruning")


def _top(score: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the ``n`` highest scores, in their original order (ties: the lower index wins)."""
    order = torch.argsort(-score, stable=True)[:n]
    return torch.sort(order).values


def _next_weights(net: nn.Module, i: int) -> torch.Tensor:
    """The weights that read layer ``i``'s units: the next block's Linear / Conv2d, or the head."""
    return net.blocks[i + 1][0].weight if i + 1 < len(net.blocks) else net.head.weight


def _norm(block: nn.Sequential) -> nn.Module | None:
    """The block's BatchNorm / LayerNorm, if it has one (right after the Linear / Conv2d)."""
    if len(block) > 1 and isinstance(block[1], (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
        return block[1]
    return None


def _affine_scale(norm: nn.Module, p: float) -> torch.Tensor | None:
    """Per-unit norm of a normalisation layer's (γ, β), or None when it has no affine parameters."""
    if norm.weight is None:
        return None
    if norm.bias is None:
        return norm.weight.abs()
    return torch.stack([norm.weight, norm.bias]).norm(p=p, dim=0)


def _mlp_scores(net: nn.Module) -> list[torch.Tensor]:
    """Per hidden layer: L2 input scale × L2 norm of the outgoing weights (see the module docstring)."""
    scores = []
    for i, block in enumerate(net.blocks):
        linear, norm = block[0], _norm(block)
        scale = _affine_scale(norm, 2) if norm is not None else None
        if scale is None:
            incoming = linear.weight if linear.bias is None else torch.cat([linear.weight, linear.bias[:, None]], 1)
            scale = incoming.norm(p=2, dim=1)
        scores.append((scale * _next_weights(net, i).norm(p=2, dim=0)).detach())
    return scores


def _cnn_scores(net: nn.Module) -> list[torch.Tensor]:
    """Per conv block: L1 input scale × L1 norm of the outgoing weights (see the module docstring)."""
    scores = []
    for i, block in enumerate(net.blocks):
        conv, norm = block[0], _norm(block)
        scale = _affine_scale(norm, 1) if norm is not None else None
        if scale is None:
            scale = conv.weight.abs().sum(dim=(1, 2, 3))
            scale = scale if conv.bias is None else scale + conv.bias.abs()
        out = _next_weights(net, i).abs()
        scores.append((scale * out.sum(dim=tuple(d for d in range(out.dim()) if d != 1))).detach())
    return scores


def _copy_blocks(old: nn.Module, new: nn.Module, keep: list[torch.Tensor]) -> None:
    """Copy the kept units' weights block by block: rows (out units) of each layer, the columns (input
    units) that the previous layer kept, the norm's parameters and running statistics, the head's inputs."""
    previous = None  # the first layer keeps all its inputs
    for old_block, new_block, rows in zip(old.blocks, new.blocks, keep, strict=True):
        _copy_layer(old_block[0], new_block[0], rows, previous)
        norm = _norm(old_block)
        if norm is not None:
            _copy_norm(norm, _norm(new_block), rows)
        previous = rows
    _copy_layer(old.head, new.head, None, previous)


def _copy_layer(old: nn.Module, new: nn.Module, rows: torch.Tensor | None, cols: torch.Tensor | None) -> None:
    """A Linear / Conv2d's weight[rows][:, cols] and bias[rows] (None: all of them)."""
    weight = old.weight if rows is None else old.weight[rows]
    new.weight.copy_(weight if cols is None else weight[:, cols])
    if old.bias is not None:
        new.bias.copy_(old.bias if rows is None else old.bias[rows])


def _copy_norm(old: nn.Module, new: nn.Module, rows: torch.Tensor) -> None:
    """A BatchNorm's / LayerNorm's affine parameters and running statistics of the kept units."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        tensor = getattr(old, name, None)
        if tensor is not None:
            getattr(new, name).copy_(tensor[rows])
    if getattr(old, "num_batches_tracked", None) is not None:
        new.num_batches_tracked.copy_(old.num_batches_tracked)
