"""The training loop, each technique checked for its effect (hand-written loops as oracles)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from honing.errors import RecipeError
from honing.recipe import TrainConfig
from honing.training.callbacks import Callback
from honing.training.trainer import Trainer, TrainingDiverged


def _cfg(**overrides) -> TrainConfig:
    base = {"epochs": 5, "batch_size": 16, "early_stopping": None,
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.0, "weight_decay": 0.0}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = {**base[key], **value}
        base[key] = value
    return TrainConfig.model_validate(base)


def _data(n: int = 64, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = (X * torch.linspace(-1, 1, d)).sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    return X, y


def _mlp(d: int = 4, seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 1))


def _params_close(a: nn.Module, b: nn.Module, atol: float = 1e-6) -> bool:
    return all(torch.allclose(p, q, atol=atol) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_matches_a_hand_written_loop():
    X, y = _data(n=70)  # 70 rows: the last batch of each epoch is partial
    model, oracle = _mlp(), _mlp()
    trainer = Trainer(model, nn.MSELoss(), _cfg(optimizer={"momentum": 0.9}), seed=7)
    trainer.fit(X, y)

    opt = torch.optim.SGD(oracle.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        perm = torch.randperm(len(X), generator=g)
        for start in range(0, len(X), 16):
            idx = perm[start: start + 16]
            opt.zero_grad()
            nn.functional.mse_loss(oracle(X[idx]), y[idx]).backward()
            opt.step()
    assert _params_close(model, oracle)


def test_logs_loss_validation_metrics_lr_and_speed():
    X, y = _data()
    metrics = {"mae": lambda out, target: (out - target).abs().mean().item()}
    trainer = Trainer(_mlp(), nn.MSELoss(), _cfg(epochs=3), metrics=metrics)
    history = trainer.fit(X[:48], y[:48], X[48:], y[48:])
    assert [row["epoch"] for row in history.rows] == [1, 2, 3]
    row = history.rows[-1]
    assert set(row) == {"epoch", "loss", "val_loss", "val_mae", "lr", "seconds", "samples_per_s"}
    assert row["lr"] == 0.05 and row["samples_per_s"] > 0
    out = trainer.predict(X[48:])
    assert row["val_loss"] == pytest.approx(nn.functional.mse_loss(out, y[48:]).item(), rel=1e-5)
    assert row["val_mae"] == pytest.approx((out - y[48:]).abs().mean().item(), rel=1e-5)
    assert history.rows[-1]["loss"] < history.rows[0]["loss"]


def test_threads_apply_while_training_and_are_restored_after():
    class Seen(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            self.threads = torch.get_num_threads()

    before, seen = torch.get_num_threads(), Seen()
    wanted = 1 if before > 1 else 2
    X, y = _data()
    Trainer(_mlp(), nn.MSELoss(), _cfg(epochs=1, threads=wanted), callbacks=[seen]).fit(X, y)
    assert seen.threads == wanted and torch.get_num_threads() == before


def test_accumulating_two_batches_of_8_equals_batches_of_16():
    X, y = _data()
    small, large = _mlp(), _mlp()
    Trainer(small, nn.MSELoss(), _cfg(batch_size=8, accumulate=2)).fit(X, y)
    Trainer(large, nn.MSELoss(), _cfg(batch_size=16)).fit(X, y)
    assert _params_close(small, large)


class _GradNorms(Callback):
    """Records the gradient norm and largest element seen by each optimizer step (after clipping)."""

    def __init__(self):
        self.norms, self.maxima = [], []

    def on_fit_start(self, trainer):
        trainer.optimizer.register_step_pre_hook(self._record)

    def _record(self, optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())
        self.maxima.append(max(g.abs().max().item() for g in grads))


def test_clip_norm_bounds_the_gradient_norm():
    X, y = _data()
    free, clipped = _GradNorms(), _GradNorms()
    Trainer(_mlp(), nn.MSELoss(), _cfg(epochs=2), callbacks=[free]).fit(X, 5 * y)
    Trainer(_mlp(), nn.MSELoss(), _cfg(epochs=2, clip={"norm": 0.1}), callbacks=[clipped]).fit(X, 5 * y)
    assert max(free.norms) > 0.5
    assert max(clipped.norms) <= 0.1 + 1e-5


def test_clip_value_bounds_every_gradient_element():
    X, y = _data()
    record = _GradNorms()
    Trainer(_mlp(), nn.MSELoss(), _cfg(epochs=2, clip={"value": 0.01}), callbacks=[record]).fit(X, 5 * y)
    assert max(record.maxima) <= 0.01


def test_l1_gives_sparser_weights():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(48, 20, generator=g)
    y = X[:, :2].sum(1, keepdim=True) + 0.5 * torch.randn(48, 1, generator=g)  # 2 of 20 features matter

    def noise_weights(l1: float) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Linear(20, 1)
        Trainer(model, nn.MSELoss(), _cfg(epochs=60, l1=l1)).fit(X, y)
        return model.weight.detach()[0, 2:].abs()

    dense, sparse = noise_weights(0.0), noise_weights(0.1)
    assert sparse.mean() < 0.5 * dense.mean()
    assert (sparse < 0.01).float().mean() > (dense < 0.01).float().mean()


def test_bf16_autocast_runs_on_cpu_and_learns():
    X, y = _data()
    model = _mlp()
    dtypes = []
    model[0].register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
    history = Trainer(model, nn.MSELoss(), _cfg(epochs=8, precision="bf16")).fit(X, y)
    assert torch.bfloat16 in dtypes
    assert history.rows[-1]["loss"] < 0.7 * history.rows[0]["loss"]
    assert model[0].weight.dtype == torch.float32


def test_fp16_on_cpu_is_a_recipe_error():
    with pytest.raises(RecipeError, match="train.precision: fp16 needs CUDA"):
        Trainer(_mlp(), nn.MSELoss(), _cfg(precision="fp16"), device="cpu")


def test_device_and_init_come_from_the_recipe():
    trainer = Trainer(nn.Linear(64, 32), nn.MSELoss(), _cfg(init="orthogonal"), device="cpu")
    w = trainer.model.weight.detach()
    assert trainer.device.type == "cpu"
    assert torch.allclose(w @ w.T, torch.eye(32), atol=1e-5)
    if not torch.cuda.is_available():
        with pytest.raises(RecipeError, match="train.device"):
            Trainer(_mlp(), nn.MSELoss(), _cfg(device="cuda"))


def test_a_huge_lr_diverges_with_a_clear_error_and_finite_weights():
    X, y = _data()
    model = _mlp()
    initial = copy.deepcopy(model)
    with pytest.raises(TrainingDiverged, match=r"became (nan|inf) at epoch 1, batch \d+") as err:
        Trainer(model, nn.MSELoss(), _cfg(optimizer={"lr": 1e10})).fit(X, 100 * y)
    assert "train.optimizer.lr" in str(err.value) and "train.clip.norm" in str(err.value)
    assert _params_close(model, initial, atol=0)  # diverged in epoch 1: back to the start


class _PoisonFrom(Callback):
    """Makes the model return NaN from the given epoch on; remembers the weights before it."""

    def __init__(self, model: nn.Module, epoch: int):
        self.model, self.epoch, self.saved = model, epoch, None

    def on_epoch_start(self, trainer, epoch):
        if epoch == self.epoch:
            self.saved = copy.deepcopy(self.model.state_dict())
            self.model.register_forward_hook(lambda mod, inp, out: out * math.nan)


def test_nan_loss_names_the_epoch_and_batch_and_keeps_the_last_good_weights():
    X, y = _data()
    model = _mlp()
    poison = _PoisonFrom(model, 3)
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 3, batch 1"):
        Trainer(model, nn.MSELoss(), _cfg(), callbacks=[poison]).fit(X, y)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in poison.saved.items())
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_early_stopping_stops_and_restores_the_best_weights():
    X, y = _data(n=96)
    # the validation targets are the negated training targets: learning makes val_loss worse
    cfg = _cfg(epochs=50, optimizer={"lr": 0.02}, early_stopping={"patience": 3})
    trainer = Trainer(_mlp(), nn.MSELoss(), cfg)
    history = trainer.fit(X[:64], y[:64], X[64:], -y[64:])
    val = [row["val_loss"] for row in history.rows]
    assert len(val) < 50
    best = min(val)
    assert len(val) == val.index(best) + 1 + 3
    restored = nn.functional.mse_loss(trainer.predict(X[64:]), -y[64:]).item()
    assert restored == pytest.approx(best, rel=1e-6)


def test_plateau_follows_the_validation_loss():
    X, y = _data()
    cfg = _cfg(epochs=6, schedule={"name": "plateau", "patience": 1, "gamma": 0.5})
    history = Trainer(_mlp(), nn.MSELoss(), cfg).fit(X[:48], y[:48], X[48:], -y[48:])
    lrs = [row["lr"] for row in history.rows]
    assert lrs[0] == 0.05 and lrs[-1] < 0.05


def test_warmup_schedule_steps_once_per_optimizer_step():
    X, y = _data()  # 64 rows, batches of 8, accumulate 2: 4 optimizer steps per epoch, 20 in all
    cfg = _cfg(batch_size=8, accumulate=2, schedule={"name": "warmup_linear", "warmup": 0.25})
    trainer = Trainer(_mlp(), nn.MSELoss(), cfg)
    trainer.fit(X, y)
    assert trainer.steps_per_epoch == 4
    assert trainer.schedule.scheduler.last_epoch == 20
    assert trainer.schedule.lr == 0.0
