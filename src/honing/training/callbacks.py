"""Trainer callbacks: every training feature beyond the bare loop (history, early stopping, progress).

A :class:`Callback` has no-op hooks that the :class:`~honing.training.trainer.Trainer` calls in
order, and ``state_dict``/``load_state_dict`` so its state survives a checkpoint and resume.
Epochs and batches are numbered from 1.  Callbacks run sorted by their ``order`` (stable), so a
checkpoint (``order = 100``) always saves after every other callback has updated its state.
"""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path
from typing import Any

from honing.errors import RecipeError
from honing.progress import SILENT, Progress

_MAX_METRICS = ("accuracy", "f1", "auc", "r2")


class Callback:
    """No-op hooks; subclass and override what you need."""

    order = 0

    def on_fit_start(self, trainer: Any) -> None:
        pass

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        pass

    def on_batch_end(self, trainer: Any, batch: int, loss: float) -> None:
        pass

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        pass

    def on_fit_end(self, trainer: Any) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def monitor_mode(monitor: str, mode: str = "auto") -> str:
    """``min`` or ``max``; ``auto`` is max for accuracy/f1/auc/r2 and min for everything else."""
    if mode != "auto":
        return mode
    return "max" if any(name in monitor.lower() for name in _MAX_METRICS) else "min"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best weights.

    The best model state is kept on the CPU and loaded back into the model at the end of fit
    (``restore_best``).
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", patience: int = 10,
                 min_delta: float = 0.0, restore_best: bool = True):
        self.monitor = monitor
        self.mode = monitor_mode(monitor, mode)
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0
        self.best_state: dict | None = None

    def on_fit_start(self, trainer: Any) -> None:
        if trainer.epoch == 0:  # a fresh run; a resumed one keeps the loaded state
            self._reset()

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        if self.monitor not in logs:
            raise RecipeError(f"train.early_stopping.monitor: '{self.monitor}' is not logged",
                              "logged: " + ", ".join(logs))
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop = True

    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_fit_end(self, trainer: Any) -> None:
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best_state = state["best_state"]


class History(Callback):
    """The logs of every epoch (epoch, loss, val_loss, val metrics, lr, seconds, samples_per_s)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_fit_start(self, trainer: Any) -> None:
        if trainer.epoch == 0:
            self.rows = []

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        self.rows.append(dict(logs))

    def to_csv(self, path: str | Path) -> None:
        """Write one row per epoch; columns are the union of every epoch's keys."""
        columns: list[str] = []
        for row in self.rows:
            columns += [key for key in row if key not in columns]
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def state_dict(self) -> dict:
        return {"rows": copy.deepcopy(self.rows)}

    def load_state_dict(self, state: dict) -> None:
        self.rows = copy.deepcopy(list(state["rows"]))


class ProgressBar(Callback):
    """A live bar over the epochs showing the latest losses (silent with a quiet Progress)."""

    def __init__(self, progress: Progress | None = None):
        self.progress = progress or SILENT
        self._bar = None

    def on_fit_start(self, trainer: Any) -> None:
        self._bar = self.progress.bar(trainer.cfg.epochs, "training")
        self._bar.advance(trainer.epoch)  # a resumed run starts part-way

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        shown = [f"{key} {value:.4g}" for key, value in logs.items() if key == "loss" or key.startswith("val_")]
        if self._bar is not None:
            self._bar.advance(1, " · ".join(shown))

    def on_fit_end(self, trainer: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
