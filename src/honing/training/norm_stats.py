"""BatchNorm running statistics re-estimated from the training rows: :func:`recalibrate`.

A BatchNorm layer predicts (eval mode) with running averages of its batch statistics, updated with
momentum 0.1 at each training batch.  A small training set gives few batches an epoch, so after an
epoch those averages still lean on their starting values (mean 0, variance 1) and on weights that
have since changed: the network scores well in training mode and badly in eval mode (validation,
test, the bundle).  After such an epoch the trainer re-estimates them in one pass over the training
rows with the epoch's final weights (as ``torch.optim.swa_utils.update_bn`` does after weight
averaging), so eval mode uses the population statistics of the weights it runs with.

A BatchNorm layer whose scale and shift are frozen (fine-tuning) is a fixed part of the pretrained
backbone: :func:`hold_frozen` keeps it in eval mode while the rest trains, so it normalises with the
statistics it was pretrained with and never drifts to the new task's batches (as Keras does for a
frozen ``BatchNormalization``).  Otherwise a frozen backbone would feed the head batch statistics in
training and drifted running averages at test time, and ``frozen`` and ``features`` fine-tuning
would train different functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from torch import Tensor, nn

#: An epoch of fewer training batches than this re-estimates the statistics: momentum 0.1 averages
#: over about 10 batches, so a shorter epoch mixes in the starting values and earlier epochs' weights
#: (a longer one costs a forward pass for little: the plain averages are close by then).
FEW_BATCHES = 20


def trainable_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that track running statistics and train (a frozen layer is left as it is)."""
    return [m for m in _norms(model) if m.track_running_stats and not _frozen(m)]


def hold_frozen(model: nn.Module) -> None:
    """Put ``model``'s frozen BatchNorm layers (scale and shift not trained) in eval mode, after
    ``model.train()``."""
    for norm in _norms(model):
        if _frozen(norm):
            norm.eval()


def _norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _frozen(norm: nn.modules.batchnorm._BatchNorm) -> bool:
    return norm.affine and not norm.weight.requires_grad


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterable[Tensor],
                autocast: contextlib.AbstractContextManager | None = None) -> None:
    """Replace the running statistics of ``model``'s :func:`trainable_norms` by their average over
    ``batches`` (inputs only, un-augmented); the rest of the model runs in eval mode (no dropout)
    and every layer is left in the mode it was in."""
    norms = trainable_norms(model)
    if not norms:
        return
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches
        norm.train()
    with autocast or contextlib.nullcontext():
        for xb in batches:
            model(xb)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    for module, training in modes.items():
        module.train(training)
