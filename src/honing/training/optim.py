"""Optimizers, learning-rate schedules, weight initialization and the L1 penalty of neural models.

Everything here is built from the recipe's ``train`` section (:class:`~honing.recipe.TrainConfig`):
:func:`make_optimizer` from ``train.optimizer``, :func:`make_schedule` from ``train.schedule``,
:func:`init_weights` from ``train.init`` and :func:`l1_penalty` for ``train.l1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from honing.errors import RecipeError
from honing.recipe import OptimizerConfig, ScheduleConfig

# --------------------------------------------------------------------------- optimizers


def make_optimizer(params: Iterable[Any], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``train.optimizer.name`` over ``params``.

    ``weight_decay`` is an L2 penalty folded into the gradient for sgd, adam, rmsprop and adagrad,
    and decoupled weight decay for adamw.  It applies to every parameter given.
    """
    lr, wd = cfg.lr, cfg.weight_decay
    if cfg.name == "sgd":
        if cfg.nesterov and cfg.momentum == 0:
            raise RecipeError("train.optimizer.nesterov: needs momentum > 0", "set train.optimizer.momentum")
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=wd)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=cfg.momentum, weight_decay=wd)
    if cfg.name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise RecipeError(f"train.optimizer.name: unknown optimizer '{cfg.name}'",
                      "choose one of: sgd, adam, adamw, rmsprop, adagrad")


# --------------------------------------------------------------------------- schedules

PER_BATCH = ("cosine", "warmup_cosine", "warmup_linear", "onecycle")
PER_EPOCH = ("step", "exponential", "plateau")


class Schedule:
    """A torch learning-rate scheduler and when it steps: after each optimizer step or each epoch.

    The trainer calls :meth:`step_batch` after every optimizer step and :meth:`step_epoch` after
    every epoch; each call is a no-op unless the schedule steps at that granularity.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, scheduler: Any | None, per: str):
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.per = per  # "batch", "epoch" or "none"

    def step_batch(self) -> None:
        if self.per == "batch":
            self.scheduler.step()

    def step_epoch(self, metric: float | None = None) -> None:
        """Advance an epoch-wise schedule; plateau needs the monitored metric (skipped when None)."""
        if self.per != "epoch":
            return
        if isinstance(self.scheduler, lr_scheduler.ReduceLROnPlateau):
            if metric is not None:
                self.scheduler.step(metric)
        else:
            self.scheduler.step()

    @property
    def lr(self) -> float:
        """The current learning rate (of the first parameter group)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)


def make_schedule(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int,
                  epochs: int, mode: str = "min") -> Schedule:
    """The schedule named by ``train.schedule.name``.

    ``steps_per_epoch`` counts optimizer steps (batches / accumulate).  ``mode`` is the direction
    of the metric given to a plateau schedule (``min`` for losses, ``max`` for accuracy…).
    """
    total = max(1, steps_per_epoch * epochs)
    name = cfg.name
    if name == "none":
        return Schedule(optimizer, None, "none")
    if name == "step":
        return Schedule(optimizer, lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma), "epoch")
    if name == "exponential":
        return Schedule(optimizer, lr_scheduler.ExponentialLR(optimizer, cfg.gamma), "epoch")
    if name == "plateau":
        if cfg.gamma >= 1:
            raise RecipeError("train.schedule.gamma: must be < 1 for plateau", "e.g. gamma: 0.1")
        plateau = lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=cfg.gamma, patience=cfg.patience)
        return Schedule(optimizer, plateau, "epoch")
    if name == "onecycle":
        return Schedule(optimizer, _one_cycle(optimizer, total), "batch")
    warmup = 0 if name == "cosine" else round(cfg.warmup * total)
    decay = "linear" if name == "warmup_linear" else "cosine"
    factor = warmup_decay(total, warmup, decay)
    return Schedule(optimizer, lr_scheduler.LambdaLR(optimizer, factor), "batch")


def warmup_decay(total: int, warmup: int, decay: str) -> Callable[[int], float]:
    """The lr factor at step ``s``: linear rise over ``warmup`` steps to 1, then decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if decay == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _one_cycle(optimizer: torch.optim.Optimizer, total: int) -> lr_scheduler.OneCycleLR:
    defaults = optimizer.defaults
    # momentum is cycled only where the optimizer has it (adagrad has none; sgd may have 0)
    cycle = "betas" in defaults or defaults.get("momentum", 0) > 0
    max_lr = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
    return lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total, cycle_momentum=cycle)


# --------------------------------------------------------------------------- initialization

INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal")

_INIT_FUNCTIONS: dict[str, Callable[[torch.Tensor], Any]] = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "orthogonal": nn.init.orthogonal_,
}


@torch.no_grad()
def init_weights(module: nn.Module, name: str) -> None:
    """Initialize the weights of linear, conv, recurrent and attention layers; zero their biases.

    ``default`` leaves PyTorch's own initialization in place.  Other layers (norms, embeddings)
    are never touched.
    """
    if name == "default":
        return
    if name not in _INIT_FUNCTIONS:
        raise RecipeError(f"train.init: unknown initialization '{name}'", "choose one of: " + ", ".join(INITS))
    init = _INIT_FUNCTIONS[name]
    for layer in module.modules():
        for pname, param in _initialized_params(layer):
            if "bias" in pname:
                param.zero_()
            else:
                init(param)


def _initialized_params(layer: nn.Module) -> list[tuple[str, nn.Parameter]]:
    own = [(n, p) for n, p in layer.named_parameters(recurse=False) if p is not None]
    if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        return [(n, p) for n, p in own if n in ("weight", "bias")]
    if isinstance(layer, nn.RNNBase):
        return [(n, p) for n, p in own if n.startswith(("weight_ih", "weight_hh", "bias_ih", "bias_hh"))]
    if isinstance(layer, nn.MultiheadAttention):  # out_proj is an nn.Linear, handled on its own
        names = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias")
        return [(n, p) for n, p in own if n in names]
    return []


# --------------------------------------------------------------------------- L1 penalty

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)


def l1_penalty(module: nn.Module) -> torch.Tensor:
    """The sum of |w| over weight parameters: biases and normalization layers are left out."""
    total = None
    for layer in module.modules():
        if isinstance(layer, _NORMS):
            continue
        for pname, param in layer.named_parameters(recurse=False):
            if "weight" in pname and param.requires_grad:
                term = param.abs().sum()
                total = term if total is None else total + term
    if total is None:
        param = next(module.parameters(), None)
        return torch.zeros((), device=param.device if param is not None else None)
    return total
