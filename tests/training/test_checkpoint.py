"""Checkpoints: an interrupted and resumed run ends with exactly the weights of an uninterrupted one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from honing.errors import HoningError
from honing.recipe import TrainConfig
from honing.training.callbacks import Callback, EarlyStopping, History
from honing.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from honing.training.trainer import Trainer

CONFIGS = {
    "adamw-warmup_cosine-dropout": {
        "optimizer": {"name": "adamw", "lr": 0.01}, "schedule": {"name": "warmup_cosine", "warmup": 0.2},
        "early_stopping": {"patience": 10}},
    "sgd-plateau-accumulate-l1": {
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "accumulate": 2, "l1": 0.001,
        "schedule": {"name": "plateau", "patience": 0, "gamma": 0.5}, "early_stopping": None},
}


class _Crash(Callback):
    """Interrupts training in the middle of an epoch, like Ctrl-C or a lost machine."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch, self.current = epoch, batch, 0

    def on_epoch_start(self, trainer, epoch):
        self.current = epoch

    def on_batch_end(self, trainer, batch, loss):
        if (self.current, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt


def _data():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(80, 5, generator=g)
    y = X[:, :1] - 2 * X[:, 1:2] + 0.1 * torch.randn(80, 1, generator=g)
    return X[:60], y[:60], X[60:], y[60:]


def _trainer(config: dict, callbacks=(), model_seed: int = 0) -> Trainer:
    torch.manual_seed(model_seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    torch.manual_seed(123)  # the dropout masks
    cfg = TrainConfig.model_validate({"epochs": 6, "batch_size": 8, **config})
    return Trainer(model, nn.MSELoss(), cfg, callbacks=callbacks, seed=5)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_resume_after_a_crash_gives_the_same_weights(tmp_path, name):
    config, path = CONFIGS[name], tmp_path / "run" / "last.pt"
    straight = _trainer(config)
    straight.fit(*_data())

    crashed = _trainer(config, callbacks=[Checkpoint(path), _Crash(epoch=4, batch=3)])
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(*_data())

    resumed = _trainer(config, callbacks=[Checkpoint(path)], model_seed=99)  # other initial weights
    torch.manual_seed(999)  # and another global RNG state: both come from the checkpoint
    load_checkpoint(resumed, path)
    assert resumed.epoch == 3
    history = resumed.fit(*_data())

    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [row["epoch"] for row in history.rows] == [1, 2, 3, 4, 5, 6]
    assert [r["val_loss"] for r in history.rows] == [r["val_loss"] for r in straight.history.rows]
    assert resumed.schedule.lr == straight.schedule.lr


def test_checkpoint_holds_only_safe_types_and_is_written_atomically(tmp_path):
    path = tmp_path / "ckpt.pt"
    trainer = _trainer(CONFIGS["adamw-warmup_cosine-dropout"], callbacks=[Checkpoint(path)])
    trainer.fit(*_data())
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 6 and set(state["callbacks"]) == {"History", "EarlyStopping", "Checkpoint"}
    assert len(state["callbacks"]["History"]["rows"]) == 6
    assert state["callbacks"]["EarlyStopping"]["best_state"] is not None
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind


def test_checkpoint_saves_after_the_other_callbacks(tmp_path):
    late = Checkpoint(tmp_path / "c.pt")
    trainer = _trainer({"epochs": 1}, callbacks=[late, EarlyStopping("loss")])
    assert trainer.callbacks[-1] is late
    assert isinstance(trainer.callbacks[0], History)


def test_a_finished_run_does_not_train_again(tmp_path):
    path = tmp_path / "c.pt"
    first = _trainer({"epochs": 2}, callbacks=[Checkpoint(path)])
    first.fit(*_data())
    again = _trainer({"epochs": 2})
    load_checkpoint(again, path)
    history = again.fit(*_data())
    assert len(history.rows) == 2
    for a, b in zip(first.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_missing_or_broken_checkpoints_are_clear_errors(tmp_path):
    trainer = _trainer({"epochs": 1})
    with pytest.raises(HoningError, match="not found"):
        load_checkpoint(trainer, tmp_path / "nope.pt")
    broken = tmp_path / "broken.pt"
    save_checkpoint(trainer, broken)
    for content in (broken.read_bytes()[:100], b"not a checkpoint"):
        broken.write_bytes(content)
        with pytest.raises(HoningError, match="cannot be read"):
            load_checkpoint(trainer, broken)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"code": print}, unsafe)  # would run pickled code without weights_only
    with pytest.raises(HoningError, match="cannot be read"):
        load_checkpoint(trainer, unsafe)
