"""Callbacks on a stand-in trainer: early stopping, history, progress."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from honing.errors import RecipeError
from honing.progress import Progress
from honing.training.callbacks import Callback, EarlyStopping, History, ProgressBar, monitor_mode


def _stub_trainer() -> SimpleNamespace:
    return SimpleNamespace(model=nn.Linear(1, 1, bias=False), stop=False, epoch=0,
                           cfg=SimpleNamespace(epochs=10))


def _run(callback: Callback, trainer: SimpleNamespace, values: list[float], key: str = "val_loss") -> int:
    """Epochs 1.. with the weight set to the epoch number; returns the epoch fit would stop after."""
    callback.on_fit_start(trainer)
    for epoch, value in enumerate(values, start=1):
        with torch.no_grad():
            trainer.model.weight.fill_(epoch)
        trainer.epoch = epoch
        callback.on_epoch_end(trainer, epoch, {"epoch": epoch, "loss": 1.0, key: value})
        if trainer.stop:
            break
    callback.on_fit_end(trainer)
    return epoch


def test_base_callback_hooks_do_nothing():
    cb, trainer = Callback(), _stub_trainer()
    cb.on_fit_start(trainer), cb.on_epoch_start(trainer, 1), cb.on_batch_end(trainer, 1, 0.5)
    cb.on_epoch_end(trainer, 1, {}), cb.on_fit_end(trainer)
    assert cb.state_dict() == {}


def test_mode_auto_maximizes_scores_and_minimizes_losses():
    assert monitor_mode("val_loss") == "min"
    assert monitor_mode("val_accuracy") == monitor_mode("val_f1_macro") == "max"
    assert monitor_mode("val_roc_auc") == monitor_mode("val_r2") == "max"
    assert monitor_mode("val_accuracy", "min") == "min"


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    trainer = _stub_trainer()
    stopper = EarlyStopping(patience=2)
    stopped = _run(stopper, trainer, [3.0, 2.0, 1.0, 1.5, 1.2, 0.5])
    assert stopped == 5 and trainer.stop
    assert stopper.best_epoch == 3 and stopper.best == 1.0
    assert trainer.model.weight.item() == 3.0  # weights of epoch 3 restored


def test_early_stopping_maximizes_accuracy_and_honours_min_delta():
    trainer = _stub_trainer()
    stopper = EarlyStopping("val_accuracy", patience=2, min_delta=0.05)
    stopped = _run(stopper, trainer, [0.5, 0.8, 0.82, 0.84, 0.9], key="val_accuracy")
    assert stopped == 4 and stopper.best_epoch == 2  # +0.02 and +0.04 are below min_delta


def test_early_stopping_without_restore_keeps_the_last_weights():
    trainer = _stub_trainer()
    _run(EarlyStopping(patience=1, restore_best=False), trainer, [1.0, 2.0])
    assert trainer.model.weight.item() == 2.0


def test_early_stopping_on_an_unlogged_key_names_the_recipe_key():
    with pytest.raises(RecipeError, match=r"train.early_stopping.monitor: 'val_auc' is not logged") as err:
        _run(EarlyStopping("val_auc"), _stub_trainer(), [1.0])
    assert "logged: epoch, loss, val_loss" in str(err.value)


def test_early_stopping_state_survives_a_round_trip():
    trainer = _stub_trainer()
    first = EarlyStopping(patience=3)
    _run(first, trainer, [2.0, 1.0, 1.5])
    second = EarlyStopping(patience=3)
    second.load_state_dict(first.state_dict())
    trainer.stop = False
    second.on_fit_start(trainer)  # epoch 3 > 0: a resume, the state stays
    for epoch in (4, 5):
        second.on_epoch_end(trainer, epoch, {"val_loss": 1.2})
    assert trainer.stop and second.best_epoch == 2
    second.on_fit_end(trainer)
    assert trainer.model.weight.item() == 2.0


def test_history_collects_rows_and_writes_csv(tmp_path):
    trainer, history = _stub_trainer(), History()
    history.on_fit_start(trainer)
    history.on_epoch_end(trainer, 1, {"epoch": 1, "loss": 0.5})
    history.on_epoch_end(trainer, 2, {"epoch": 2, "loss": 0.4, "val_loss": 0.6})
    assert [row["loss"] for row in history.rows] == [0.5, 0.4]
    path = tmp_path / "history.csv"
    history.to_csv(path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["epoch", "loss", "val_loss"]
    assert rows[1]["val_loss"] == "0.6" and rows[0]["val_loss"] == ""
    copy = History()
    copy.load_state_dict(history.state_dict())
    assert copy.rows == history.rows


def test_progress_bar_shows_epochs_and_losses_unless_quiet(capsys):
    trainer = _stub_trainer()
    trainer.epoch = 0
    logs = {"epoch": 1, "loss": 0.25, "val_loss": 0.5, "lr": 0.001}
    quiet = ProgressBar(Progress(quiet=True))
    quiet.on_fit_start(trainer)
    quiet.on_epoch_end(trainer, 1, logs)
    quiet.on_fit_end(trainer)
    assert capsys.readouterr().err == ""
    seen = []

    class Bar:
        def advance(self, steps=1, status=""):
            seen.append((steps, status))

        def close(self):
            seen.append("closed")

    visible = Progress(quiet=False)
    visible.bar = lambda total, description: seen.append((total, description)) or Bar()
    shown = ProgressBar(visible)
    shown.on_fit_start(trainer)
    shown.on_epoch_end(trainer, 1, logs)
    shown.on_fit_end(trainer)
    assert seen[0] == (10, "training") and seen[1] == (0, "")
    assert seen[2][0] == 1 and "loss 0.25" in seen[2][1] and "val_loss 0.5" in seen[2][1]
    assert seen[-1] == "closed"
