"""HealthStats: a trainer callback that cheaply collects what the health diagnostics need.

Gradient norms per layer, dead-ReLU fractions and class counts per batch, as plain Python data (it
survives a checkpoint and resume); :func:`honing.training.diagnostics.diagnose` reads them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from honing.training.callbacks import Callback

DEAD_RELU_PROBE_ROWS = 64     # probe the first batches of each epoch until this many rows are seen …
RELU_TYPES = (nn.ReLU, nn.ReLU6)


class HealthStats(Callback):
    """Collects gradient norms, dead-ReLU fractions and class counts for :func:`diagnose`.

    * gradient norms: the L2 norm of each parameter's gradient, averaged over the epoch's batches.
      The Trainer clears gradients (optimizer step) before ``on_batch_end``, so tensor hooks
      (``param.register_hook``) take them during ``backward``: before clipping, per batch (times
      ``train.accumulate``), unscaled by a fp16 ``trainer.scaler``.  The sums stay on the device
      until the epoch ends; ``grad_every=k`` looks at every k-th batch only.
    * dead ReLUs: forward hooks on ``nn.ReLU``/``nn.ReLU6`` modules during the first training batches
      of an epoch (until ``DEAD_RELU_PROBE_ROWS`` rows: one batch at usual sizes).  A unit is one
      output element (all dimensions but the first, the batch), dead if 0 for every probed row.
      Functional ``F.relu``/``torch.relu`` calls are not modules and cannot be hooked: not seen.
      A module applied k times per forward gives k layers (``act``, ``act#1``, …).
    * class counts: :meth:`observe_batch_targets`, called with each batch's class-id targets; if it
      is never called the imbalance rule is skipped.
    """

    def __init__(self, grad_every: int = 1):
        self.grad_every = max(1, int(grad_every))
        self._epochs: list[dict] = []
        self._params: dict[str, list[int]] = {}  # parameter -> shape
        self._targets: dict | None = None
        self._relu_hooks: list[Any] = []
        self._grad_hooks: list[Any] = []
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        self._grad_sums: dict[str, torch.Tensor] = {}  # parameter -> sum of its batch gradient norms
        self._grad_counts: dict[str, int] = {}
        self._grad_factor = 1.0  # train.accumulate / loss scale of the coming backward
        self._batches = 0
        self._alive: dict[str, torch.Tensor] = {}  # ReLU layer -> units nonzero on some probed row
        self._calls: dict[str, int] = {}  # ReLU module -> calls in the current batch
        self._batch_rows = self._probe_rows = 0

    # ------------------------------------------------------------------ callback hooks

    def on_fit_start(self, trainer: Any) -> None:
        if getattr(trainer, "epoch", 0) == 0:  # a fresh run; a resumed one keeps the loaded state
            self._epochs, self._params, self._targets = [], {}, None

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self._remove_hooks()
        self._reset_epoch()
        self._grad_factor = _grad_factor(trainer)
        for name, module in trainer.model.named_modules():
            if isinstance(module, RELU_TYPES):
                self._relu_hooks.append(module.register_forward_hook(self._relu_hook(name or "relu")))
        for name, param in trainer.model.named_parameters():
            if param.requires_grad:
                self._params[name] = list(param.shape)
        self._watch_gradients(trainer.model, True)  # batch 0 is sampled

    def on_batch_end(self, trainer: Any, batch: int, loss: float) -> None:
        targets = getattr(trainer, "batch_targets", None)  # the Trainer exposes each batch's targets
        if targets is not None and self._batches % self.grad_every == 0:
            self.observe_batch_targets(targets)
        self._batches += 1
        self._watch_gradients(trainer.model, self._batches % self.grad_every == 0)  # hooks cost: sampled only
        self._grad_factor = _grad_factor(trainer)  # the scaler updated after this step
        if self._relu_hooks:
            self._probe_rows += self._batch_rows
            self._batch_rows, self._calls = 0, {}
            if self._probe_rows >= DEAD_RELU_PROBE_ROWS:
                self._remove_hooks(grads=False)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        self._remove_hooks()
        record: dict[str, Any] = {"epoch": int(epoch), "grad_norm": {
            name: total.item() / self._grad_counts[name] for name, total in self._grad_sums.items()}}
        if self._alive:
            record["dead_relu"] = {key: {"dead": 1.0 - alive.float().mean().item(), "units": alive.numel()}
                                   for key, alive in self._alive.items()}
            record["dead_relu_rows"] = self._probe_rows
        self._epochs = [e for e in self._epochs if e["epoch"] < record["epoch"]] + [record]
        self._reset_epoch()

    def on_fit_end(self, trainer: Any) -> None:
        self._remove_hooks()

    # ------------------------------------------------------------------ collection

    def _relu_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not module.training or not isinstance(output, torch.Tensor) or output.dim() < 2:
                return  # validation / prediction passes run in eval mode
            call = self._calls.get(name, 0)
            self._calls[name] = call + 1
            key = name if call == 0 else f"{name}#{call}"
            with torch.no_grad():
                alive = (output.detach() != 0).reshape(output.shape[0], -1).any(0)
            self._batch_rows = max(self._batch_rows, output.shape[0])
            seen = self._alive.get(key)
            if seen is None:
                self._alive[key] = alive
            elif seen.shape == alive.shape:  # variable-length inputs change the shape: skip those
                seen |= alive

        return hook

    def _grad_hook(self, name: str) -> Callable:
        def hook(grad: torch.Tensor) -> None:
            with torch.no_grad():
                values = grad.coalesce().values() if grad.is_sparse else grad
                norm = values.detach().float().norm() * self._grad_factor
            seen = self._grad_sums.get(name)
            self._grad_sums[name] = norm if seen is None else seen + norm
            self._grad_counts[name] = self._grad_counts.get(name, 0) + 1

        return hook

    def _watch_gradients(self, model: nn.Module, on: bool) -> None:
        """Hook the parameters' gradients for the coming batch (on), or unhook them (off)."""
        if on and not self._grad_hooks:
            self._grad_hooks = [param.register_hook(self._grad_hook(name))
                                for name, param in model.named_parameters() if param.requires_grad]
        elif not on and self._grad_hooks:
            for handle in self._grad_hooks:
                handle.remove()
            self._grad_hooks = []

    def _remove_hooks(self, grads: bool = True) -> None:
        for handle in self._relu_hooks + (self._grad_hooks if grads else []):
            handle.remove()
        self._relu_hooks = []
        self._grad_hooks = [] if grads else self._grad_hooks

    def observe_batch_targets(self, y: Any) -> None:
        """Count the classes in one training batch; floating-point (regression) targets are ignored."""
        y = torch.as_tensor(y).detach()
        if y.is_floating_point() or y.is_complex() or (y.dim() > 1 and y.shape[-1] != 1):
            return
        y = y.reshape(-1).long().cpu()
        y = y[y >= 0]  # ignore_index rows (-100)
        if y.numel() == 0:
            return
        counts, total = torch.bincount(y).tolist(), int(y.numel())
        targets = self._targets = self._targets or {"batches": 0, "rows": 0, "classes": {}}
        targets["batches"] += 1
        targets["rows"] += total
        for c, n in enumerate(counts):
            if n:
                rec = targets["classes"].setdefault(str(c), {"rows": 0, "share_sum": 0.0, "batches": 0})
                rec["rows"] += n
                rec["share_sum"] += n / total
                rec["batches"] += 1  # batches the class appears in

    # ------------------------------------------------------------------ state

    @property
    def stats(self) -> dict:
        """Plain Python data: ``epochs`` (one record per epoch), ``params`` (shapes), ``targets``."""
        return copy.deepcopy({"epochs": self._epochs, "params": self._params, "targets": self._targets})

    def state_dict(self) -> dict:
        return self.stats

    def load_state_dict(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self._epochs = list(state.get("epochs", []))
        self._params = dict(state.get("params", {}))
        self._targets = state.get("targets")


def _grad_factor(trainer: Any) -> float:
    """``train.accumulate`` (the Trainer divides each batch's loss by it) over the fp16 loss scale."""
    accumulate = getattr(getattr(trainer, "cfg", None), "accumulate", 1)
    scaler = getattr(trainer, "scaler", None)
    enabled = scaler is not None and scaler.is_enabled()
    return accumulate / ((float(scaler.get_scale()) or 1.0) if enabled else 1.0)


# ---------------------------------------------------------------------- findings and rules
