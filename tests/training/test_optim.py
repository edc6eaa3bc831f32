"""Optimizers, schedules, initializations and the L1 penalty, each against its formula."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from honing.errors import RecipeError
from honing.recipe import OptimizerConfig, ScheduleConfig
from honing.training.optim import init_weights, l1_penalty, make_optimizer, make_schedule


def _regression(n: int = 128, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g)
    return X, X @ torch.arange(1.0, d + 1).unsqueeze(1) + 0.1 * torch.randn(n, 1, generator=g)


@pytest.mark.parametrize("name,lr", [("sgd", 0.02), ("adam", 0.05), ("adamw", 0.05),
                                     ("rmsprop", 0.01), ("adagrad", 0.5)])
def test_every_optimizer_reduces_the_loss(name, lr):
    torch.manual_seed(0)
    X, y = _regression()
    model = nn.Linear(5, 1)
    opt = make_optimizer(model.parameters(), OptimizerConfig(name=name, lr=lr, weight_decay=1e-4))
    start = nn.functional.mse_loss(model(X), y).item()
    for _ in range(100):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(X), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * start


def test_optimizer_settings_reach_torch():
    model = nn.Linear(2, 1)
    sgd = make_optimizer(model.parameters(), OptimizerConfig(name="sgd", lr=0.1, momentum=0.8, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.8 and sgd.defaults["nesterov"]
    assert isinstance(make_optimizer(model.parameters(), OptimizerConfig(name="adamw")), torch.optim.AdamW)
    assert type(make_optimizer(model.parameters(), OptimizerConfig(name="adam"))) is torch.optim.Adam
    with pytest.raises(RecipeError, match="train.optimizer.nesterov"):
        make_optimizer(model.parameters(), OptimizerConfig(name="sgd", momentum=0.0, nesterov=True))


def _lrs(cfg: ScheduleConfig, steps_per_epoch: int, epochs: int, per: str,
         metrics: list[float] | None = None, name: str = "sgd") -> list[float]:
    """The lr in effect at each step (per='batch') or each epoch (per='epoch')."""
    param = nn.Parameter(torch.zeros(1))
    opt = make_optimizer([param], OptimizerConfig(name=name, lr=1.0, weight_decay=0.0))
    schedule = make_schedule(opt, cfg, steps_per_epoch, epochs)
    lrs = []
    for epoch in range(epochs):
        if per == "epoch":
            lrs.append(schedule.lr)
        for _ in range(steps_per_epoch):
            if per == "batch":
                lrs.append(schedule.lr)
            opt.step()
            schedule.step_batch()
        schedule.step_epoch(metrics[epoch] if metrics else None)
    return lrs


def test_none_keeps_the_lr():
    assert set(_lrs(ScheduleConfig(name="none"), 3, 4, "batch")) == {1.0}


def test_step_multiplies_by_gamma_every_step_size_epochs():
    lrs = _lrs(ScheduleConfig(name="step", step_size=2, gamma=0.5), 3, 6, "epoch")
    assert lrs == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_exponential_multiplies_by_gamma_every_epoch():
    lrs = _lrs(ScheduleConfig(name="exponential", gamma=0.9), 2, 5, "epoch")
    assert lrs == pytest.approx([0.9**e for e in range(5)])


def test_cosine_follows_half_a_cosine_over_all_steps():
    total = 40
    lrs = _lrs(ScheduleConfig(name="cosine"), 10, 4, "batch")
    assert lrs == pytest.approx([0.5 * (1 + math.cos(math.pi * s / total)) for s in range(total)])


def test_warmup_cosine_rises_linearly_to_lr_then_decays_to_zero():
    lrs = _lrs(ScheduleConfig(name="warmup_cosine", warmup=0.1), 25, 4, "batch")  # 100 steps, 10 warmup
    warm = lrs[:11]
    assert warm == pytest.approx([(s + 1) / 11 for s in range(10)] + [1.0])
    assert max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 10
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lrs[-1] < 1e-3


def test_warmup_linear_decays_linearly_to_zero():
    lrs = _lrs(ScheduleConfig(name="warmup_linear", warmup=0.2), 10, 5, "batch")  # 50 steps, 10 warmup
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[30] == pytest.approx(0.5)
    assert lrs[-1] == pytest.approx(1 / 40)


def test_onecycle_peaks_at_lr():
    lrs = _lrs(ScheduleConfig(name="onecycle"), 10, 10, "batch", name="adamw")
    assert lrs[0] == pytest.approx(1.0 / 25)
    assert max(lrs) == pytest.approx(1.0, rel=1e-3)
    assert 20 <= lrs.index(max(lrs)) <= 40  # OneCycleLR peaks after 30% of the steps
    assert lrs[-1] < 1e-3


def test_plateau_drops_after_patience_epochs_without_improvement():
    metrics = [1.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    lrs = _lrs(ScheduleConfig(name="plateau", patience=2, gamma=0.1), 2, 6, "epoch", metrics)
    # best at epoch 2; epochs 3, 4, 5 do not improve; the third exceeds patience=2 -> drop for epoch 6
    assert lrs == pytest.approx([1, 1, 1, 1, 1, 0.1])


def test_schedule_state_round_trips():
    param = nn.Parameter(torch.zeros(1))
    opt = make_optimizer([param], OptimizerConfig(name="sgd", lr=1.0))
    schedule = make_schedule(opt, ScheduleConfig(name="warmup_cosine"), 10, 2)
    for _ in range(7):
        opt.step()
        schedule.step_batch()
    opt2 = make_optimizer([param], OptimizerConfig(name="sgd", lr=1.0))
    other = make_schedule(opt2, ScheduleConfig(name="warmup_cosine"), 10, 2)
    opt2.load_state_dict(opt.state_dict())
    other.load_state_dict(schedule.state_dict())
    opt.step(), opt2.step()
    schedule.step_batch(), other.step_batch()
    assert other.lr == schedule.lr


# --------------------------------------------------------------------------- initialization


def test_xavier_uniform_and_kaiming_uniform_respect_their_bounds():
    layer = nn.Linear(200, 100)
    init_weights(layer, "xavier_uniform")
    bound = math.sqrt(6 / 300)
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.95 * bound
    assert torch.all(layer.bias == 0)
    init_weights(layer, "kaiming_uniform")
    bound = math.sqrt(2) * math.sqrt(3 / 200)
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.95 * bound


def test_normal_inits_have_the_expected_std():
    torch.manual_seed(0)
    layer = nn.Linear(400, 300)
    init_weights(layer, "xavier_normal")
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 700), rel=0.02)
    init_weights(layer, "kaiming_normal")
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.02)


def test_orthogonal_gives_orthonormal_rows():
    layer = nn.Linear(128, 64)
    init_weights(layer, "orthogonal")
    w = layer.weight.detach()
    assert torch.allclose(w @ w.T, torch.eye(64), atol=1e-5)


def test_init_reaches_conv_recurrent_and_attention_layers():
    model = nn.ModuleDict({"conv": nn.Conv1d(4, 8, 3), "conv2": nn.Conv2d(3, 4, 3), "lstm": nn.LSTM(6, 5),
                           "attn": nn.MultiheadAttention(8, 2), "norm": nn.LayerNorm(8)})
    with torch.no_grad():
        model["norm"].bias.fill_(0.3)
    init_weights(model, "orthogonal")
    hh = model["lstm"].weight_hh_l0.detach()  # (4*5, 5): orthonormal columns
    assert torch.allclose(hh.T @ hh, torch.eye(5), atol=1e-5)
    assert torch.all(model["lstm"].bias_ih_l0 == 0) and torch.all(model["conv"].bias == 0)
    assert torch.all(model["attn"].in_proj_bias == 0) and torch.all(model["attn"].out_proj.bias == 0)
    w = model["attn"].in_proj_weight.detach()  # (24, 8)
    assert torch.allclose(w.T @ w, torch.eye(8), atol=1e-5)
    assert torch.all(model["norm"].bias == 0.3)  # norm layers untouched


def test_default_init_leaves_weights_alone():
    layer = nn.Linear(3, 2)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    init_weights(layer, "default")
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())


def test_l1_penalty_sums_weights_but_not_biases_or_norms():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    expected = model[0].weight.abs().sum() + model[3].weight.abs().sum()
    assert l1_penalty(model).item() == pytest.approx(expected.item())
    assert l1_penalty(nn.ReLU()).item() == 0.0
