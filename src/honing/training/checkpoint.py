"""Checkpoints: save a trainer's whole state atomically, load it back, and resume.

Resume = build the same :class:`~honing.training.trainer.Trainer` (same model, recipe and
callbacks), :func:`load_checkpoint`, and call ``fit`` again: training continues after the saved
epoch and ends with the same weights as an uninterrupted run.

A checkpoint holds only tensors and plain Python values (the RNG states are tensors), so it is
read with ``torch.load(weights_only=True)``: loading one never runs pickled code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from honing.errors import HoningError
from honing.training import distributed
from honing.training.callbacks import Callback


def save_checkpoint(trainer: Any, path: str | Path) -> None:
    """Write ``trainer.state_dict()`` to ``path`` atomically (a temporary file, then a rename).

    Under torchrun every rank calls it (a sharded model's state is gathered by all) and rank 0 writes."""
    state = trainer.state_dict()
    if not distributed.is_main():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(trainer: Any, path: str | Path) -> None:
    """Restore a checkpoint written by :func:`save_checkpoint` into ``trainer``."""
    path = Path(path)
    if not path.is_file():
        raise HoningError(f"checkpoint '{path}' not found", "check the path, or train from the start")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, KeyError, EOFError, ValueError) as exc:  # truncated, foreign, unsafe
        raise HoningError(f"checkpoint '{path}' cannot be read ({type(exc).__name__})",
                          "it may be truncated or not a honing checkpoint; train from the start") from None
    trainer.load_state_dict(state)


class Checkpoint(Callback):
    """Save a checkpoint at the end of every epoch (after every other callback has run)."""

    order = 100

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        save_checkpoint(trainer, self.path)
