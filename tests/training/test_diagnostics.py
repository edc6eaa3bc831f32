"""Training-health diagnostics: every rule fires when provoked on purpose and stays quiet on a healthy run.

Runs are plain PyTorch loops (no honing Trainer) that drive :class:`HealthStats` hooks through a fake
trainer (a ``SimpleNamespace`` with ``model``), in the order the Trainer calls them.
"""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from honing.training.diagnostics import (
    RULES,
    Finding,
    RuleContext,
    diagnose,
    format_findings,
)
from honing.training.health_stats import HealthStats


def train(model, X, y, loss_fn, *, epochs, lr, batch_size=None, optimizer="sgd", val=None, stats=None,
          observe=False, seed=0):
    """A plain training loop; returns the epoch history (and drives ``stats``'s hooks)."""
    opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[optimizer]
    opt = opt_cls(model.parameters(), lr=lr)
    trainer = SimpleNamespace(model=model, optimizer=opt, stop=False, epoch=0)
    gen = torch.Generator().manual_seed(seed)
    size = batch_size or len(X)
    history = []
    callbacks = [stats] if stats is not None else []
    for cb in callbacks:
        cb.on_fit_start(trainer)
    for epoch in range(1, epochs + 1):
        for cb in callbacks:
            cb.on_epoch_start(trainer, epoch)
        model.train()
        perm = torch.randperm(len(X), generator=gen)
        total = 0.0
        for batch, start in enumerate(range(0, len(X), size), 1):
            idx = perm[start:start + size]
            if observe:
                stats.observe_batch_targets(y[idx])
            loss = loss_fn(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)  # like the real Trainer: gradients are gone at on_batch_end
            total += loss.item() * len(idx)
            for cb in callbacks:
                cb.on_batch_end(trainer, batch, loss.item())
        row = {"epoch": epoch, "loss": total / len(X), "lr": lr}
        if val is not None:
            model.eval()
            with torch.no_grad():
                row["val_loss"] = loss_fn(model(val[0]), val[1]).item()
        history.append(row)
        trainer.epoch = epoch
        for cb in callbacks:
            cb.on_epoch_end(trainer, epoch, row)
    for cb in callbacks:
        cb.on_fit_end(trainer)
    return history


def mlp(sizes, act=nn.ReLU):
    layers = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers[:-1])


def prior_loss(y: torch.Tensor) -> float:
    """Cross-entropy of always predicting the class frequencies (the dummy baseline)."""
    p = torch.bincount(y).float() / len(y)
    return float(-(p[y]).log().mean())


def run_rule(name, history, stats=None, baseline_loss=None, task=None):
    return RULES.get(name)(history, stats, RuleContext(baseline_loss, task))


@pytest.fixture(scope="module")
def healthy():
    """A small ReLU MLP learning a learnable, balanced 3-class problem with Adam."""
    torch.manual_seed(0)
    X = torch.randn(640, 8)
    y = (X @ torch.randn(8, 3)).argmax(1)
    model = mlp([8, 32, 32, 3])
    stats = HealthStats()
    history = train(model, X[:512], y[:512], nn.CrossEntropyLoss(), epochs=12, lr=3e-3, batch_size=64,
                    optimizer="adam", val=(X[512:], y[512:]), stats=stats, observe=True)
    return history, stats.stats, prior_loss(y[:512])


@pytest.mark.parametrize("rule", RULES.names())
def test_every_rule_quiet_on_healthy_run(healthy, rule):
    history, stats, baseline = healthy
    assert run_rule(rule, history, stats, baseline, "classification") is None


def test_healthy_run_has_no_findings_and_full_stats(healthy):
    history, stats, baseline = healthy
    assert diagnose(history, stats, baseline, "classification") == []
    assert history[-1]["loss"] < 0.5 * baseline  # it really learned
    last = stats["epochs"][-1]
    assert set(last["grad_norm"]) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}
    assert set(last["dead_relu"]) == {"1", "3"} and last["dead_relu_rows"] == 64
    assert stats["targets"]["batches"] == 12 * 8 and set(stats["targets"]["classes"]) == {"0", "1", "2"}
    json.dumps(stats)  # plain Python data


# ---------------------------------------------------------------------- history rules


def test_overfitting_provoked():
    """Real run: 24 rows with random labels, a wide net, full-batch Adam → memorised, val loss climbs."""
    torch.manual_seed(1)
    X, y = torch.randn(24, 16), torch.randint(0, 2, (24,))
    Xv, yv = torch.randn(200, 16), torch.randint(0, 2, (200,))
    history = train(mlp([16, 256, 256, 2]), X, y, nn.CrossEntropyLoss(), epochs=60, lr=1e-2,
                    optimizer="adam", val=(Xv, yv))
    finding = run_rule("overfitting", history)
    assert finding is not None and finding.severity == "warning"
    assert "validation loss rose" in finding.message and "training loss fell" in finding.message
    assert "train.early_stopping.patience" in finding.remedy


def test_underfitting_provoked_by_constant_predictions():
    """Real run: a bias-only model can only predict constants → no better than the dummy baseline."""
    torch.manual_seed(2)
    X = torch.randn(300, 4)
    y = (X[:, 0] > 0.3).long()

    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = nn.Parameter(torch.zeros(2))

        def forward(self, x):
            return self.logits.expand(len(x), 2)

    history = train(Constant(), X, y, nn.CrossEntropyLoss(), epochs=30, lr=0.5)
    finding = run_rule("underfitting", history, baseline_loss=prior_loss(y))
    assert finding is not None and "dummy baseline" in finding.message


def test_underfitting_plateau_without_baseline():
    """Synthetic history: a loss that dropped a little and then sat flat far above its start."""
    history = [{"epoch": e, "loss": v} for e, v in enumerate([1.0, 0.93, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], 1)]
    finding = run_rule("underfitting", history)
    assert finding is not None and finding.severity == "info" and "plateaued" in finding.message


def test_not_decreasing_provoked():
    """Real run with a learning rate of 0: the loss cannot move."""
    torch.manual_seed(3)
    X, y = torch.randn(64, 4), torch.randn(64, 1)
    history = train(mlp([4, 8, 1]), X, y, nn.MSELoss(), epochs=5, lr=0.0)
    finding = run_rule("not_decreasing", history)
    assert finding is not None and "train.optimizer.lr" in finding.remedy


def test_divergence_provoked_by_huge_learning_rate():
    torch.manual_seed(4)
    X = torch.randn(128, 4)
    y = X.sum(1, keepdim=True)
    history = train(mlp([4, 16, 1]), X, y, nn.MSELoss(), epochs=8, lr=5.0, batch_size=32)
    assert not all(math.isfinite(r["loss"]) for r in history) or history[-1]["loss"] > 1e3
    finding = run_rule("divergence", history)
    assert finding is not None and "lr 5" in finding.message and "lower train.optimizer.lr" in finding.remedy


def test_divergence_from_finite_blow_up():
    history = [{"epoch": e, "loss": v} for e, v in enumerate([1.0, 0.5, 0.4, 0.9, 2.5], 1)]
    finding = run_rule("divergence", history)
    assert finding is not None and "6.2×" in finding.message


# ---------------------------------------------------------------------- gradient / activation rules


def test_vanishing_gradients_provoked():
    """Real run: a deep sigmoid MLP with tiny initial weights."""
    torch.manual_seed(5)
    model = mlp([8] + [32] * 10 + [1], act=nn.Sigmoid)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
    stats = HealthStats()
    X, y = torch.randn(128, 8), torch.randn(128, 1)
    history = train(model, X, y, nn.MSELoss(), epochs=3, lr=1e-3, batch_size=32, stats=stats)
    finding = run_rule("vanishing_gradients", history, stats.stats)
    assert finding is not None and "'0.weight'" in finding.message


def test_exploding_gradients_provoked():
    """Real run: a deep linear net with large initial weights and no normalisation."""
    torch.manual_seed(6)
    model = mlp([16] * 9, act=nn.Identity)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=1.0)
    stats = HealthStats()
    X, y = torch.randn(64, 16), torch.randn(64, 16)
    history = train(model, X, y, nn.MSELoss(), epochs=1, lr=0.0, batch_size=32, stats=stats)
    finding = run_rule("exploding_gradients", history, stats.stats)
    assert finding is not None and "train.clip.norm" in finding.remedy


def test_exploding_gradients_by_growth():
    stats = {"epochs": [{"epoch": e, "grad_norm": {"w": v}} for e, v in enumerate([0.5, 5.0, 80.0], 1)]}
    finding = run_rule("exploding_gradients", [], stats)
    assert finding is not None and "grew 160×" in finding.message


def test_dead_relus_provoked_by_negative_bias():
    torch.manual_seed(7)
    model = mlp([8, 64, 64, 2])
    nn.init.constant_(model[0].bias, -10.0)
    stats = HealthStats()
    X, y = torch.randn(128, 8), torch.randint(0, 2, (128,))
    history = train(model, X, y, nn.CrossEntropyLoss(), epochs=2, lr=1e-2, batch_size=64, stats=stats)
    finding = run_rule("dead_relus", history, stats.stats)
    assert finding is not None and "'1': 100% of 64 units" in finding.message


def test_batch_imbalance_provoked():
    torch.manual_seed(8)
    y = (torch.rand(1024) < 0.02).long()  # 2 % positives
    stats = HealthStats()
    for batch in y.split(32):
        stats.observe_batch_targets(batch)
    finding = run_rule("batch_imbalance", [], stats.stats, task="classification")
    assert finding is not None and finding.message.startswith("class 1 is")
    assert run_rule("batch_imbalance", [], stats.stats, task="regression") is None


def test_batch_imbalance_quiet_for_many_balanced_classes():
    stats = HealthStats()
    for _ in range(20):
        stats.observe_batch_targets(torch.randperm(256) % 64)  # 64 classes, 4 rows each per batch
    assert run_rule("batch_imbalance", [], stats.stats) is None


# ---------------------------------------------------------------------- HealthStats mechanics


def test_state_dict_round_trip_and_resume():
    torch.manual_seed(9)
    X, y = torch.randn(96, 4), torch.randint(0, 3, (96,))
    model = mlp([4, 16, 3])
    first = HealthStats()
    train(model, X, y, nn.CrossEntropyLoss(), epochs=2, lr=1e-2, batch_size=32, stats=first, observe=True)
    saved = first.state_dict()
    resumed = HealthStats()
    resumed.load_state_dict(json.loads(json.dumps(saved)))  # survives plain serialisation
    assert resumed.stats == first.stats
    trainer = SimpleNamespace(model=model, epoch=2)
    resumed.on_fit_start(trainer)  # a resumed fit keeps the loaded state
    resumed.on_epoch_start(trainer, 3)
    model(X[:32]).sum().backward()
    resumed.on_batch_end(trainer, 1, 0.0)
    resumed.on_epoch_end(trainer, 3, {})
    assert [e["epoch"] for e in resumed.stats["epochs"]] == [1, 2, 3]
    resumed.on_fit_start(SimpleNamespace(model=model, epoch=0))  # a fresh fit starts over
    assert resumed.stats == {"epochs": [], "params": {}, "targets": None}


def test_hooks_removed_and_eval_passes_ignored():
    model = mlp([4, 8, 2])
    stats = HealthStats()
    trainer = SimpleNamespace(model=model)
    stats.on_epoch_start(trainer, 1)
    model.eval()
    model(torch.randn(100, 4))  # a validation pass: not probed
    model.train()
    model(torch.randn(8, 4)).sum().backward()
    stats.on_batch_end(trainer, 1, 0.0)
    stats.on_epoch_end(trainer, 1, {})
    stats.on_fit_end(trainer)
    rec = stats.stats["epochs"][0]
    assert rec["dead_relu_rows"] == 8 and rec["grad_norm"]["0.weight"] > 0
    assert not model[1]._forward_hooks and all(not p._backward_hooks for p in model.parameters())


def test_shared_relu_counts_once_per_call():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.act = nn.Linear(4, 8), nn.Linear(8, 8), nn.ReLU()

        def forward(self, x):
            return self.act(self.b(self.act(self.a(x))))

    model, stats = Shared(), HealthStats()
    trainer = SimpleNamespace(model=model)
    stats.on_epoch_start(trainer, 1)
    model(torch.randn(32, 4)).sum().backward()
    stats.on_batch_end(trainer, 1, 0.0)
    stats.on_epoch_end(trainer, 1, {})
    assert set(stats.stats["epochs"][0]["dead_relu"]) == {"act", "act#1"}


def test_observe_batch_targets_ignores_regression_targets():
    stats = HealthStats()
    stats.observe_batch_targets(torch.randn(32))
    stats.observe_batch_targets(torch.zeros(32, 3, dtype=torch.long))  # one-hot / multi-output
    assert stats.stats["targets"] is None


# ---------------------------------------------------------------------- engine and output


def test_diagnose_without_evidence_is_quiet():
    assert diagnose([]) == []
    assert diagnose([{"epoch": 1, "loss": 0.5}], stats=None) == []


def test_findings_format_and_dict():
    history = [{"epoch": e, "loss": v} for e, v in enumerate([1.0, 0.5, 0.4, 0.9, float("nan")], 1)]
    findings = diagnose(history, baseline_loss=0.7)
    assert [f.rule for f in findings] == ["divergence"]
    assert findings[0].to_dict() == {"rule": "divergence", "severity": "warning",
                                     "message": "loss became nan at epoch 5", "cause": findings[0].cause,
                                     "remedy": findings[0].remedy}
    lines = format_findings(findings + [Finding("x", "info", "seen", "why", "fix")])
    assert lines[1] == "info [x] seen — why; try: fix"
    assert all("\n" not in line for line in lines)
