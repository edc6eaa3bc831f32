"""BatchNorm statistics re-estimated after the epochs of a small training set (norm_stats)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from honing.models.estimators import NeuralClassifier
from honing.training import norm_stats


def _net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2),
                         nn.BatchNorm1d(2))


def test_recalibrated_statistics_are_those_of_the_training_rows():
    """Oracle: numpy's mean and (unbiased) variance of each BatchNorm's inputs over the rows."""
    net = _net()
    X = torch.randn(96, 3) * 5 + 2
    net[5].weight.requires_grad_(False)  # a frozen layer keeps its statistics
    net[5].running_mean.fill_(7.0)
    net.train()
    norm_stats.recalibrate(net, [X[:48], X[48:]])  # two equal batches: their average is the rows' mean
    with torch.no_grad():
        inputs = net[0](X).numpy()
    np.testing.assert_allclose(net[1].running_mean.numpy(), inputs.mean(axis=0), rtol=1e-5, atol=1e-6)
    halves = [inputs[:48].var(axis=0, ddof=1), inputs[48:].var(axis=0, ddof=1)]
    np.testing.assert_allclose(net[1].running_var.numpy(), np.mean(halves, axis=0), rtol=1e-5)
    assert (net[5].running_mean == 7.0).all()
    assert net[1].momentum == 0.1 and all(m.training for m in net.modules())  # as they were
    one = _net()
    norm_stats.recalibrate(one, [X])
    with torch.no_grad():  # by hand: the first BatchNorm normalises with the batch's statistics, no dropout
        h = one[0](X)
        h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + one[1].eps) * one[1].weight + one[1].bias
        second = one[4](torch.relu(h)).numpy()
    np.testing.assert_allclose(one[5].running_mean.numpy(), second.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one[5].running_var.numpy(), second.var(axis=0, ddof=1), rtol=1e-5)


def test_a_cnn_with_batch_norm_learns_from_a_few_dozen_images():
    """42 images in one batch an epoch: BatchNorm's momentum averages would still hold most of their
    starting values, and eval-mode predictions would be chance; re-estimated, they are right."""
    rng = np.random.default_rng(0)
    X = rng.random((60, 1, 16, 16)).astype(np.float32)
    y = np.arange(60) % 2
    X[y == 1, :, :8] = 1.0  # class 1: a white top half
    est = NeuralClassifier(net="cnn", net_params={"input_shape": [1, 16, 16], "batch_norm": True}, epochs=15,
                           batch_size=256, random_state=0)
    est.fit(X[:42].reshape(42, -1), y[:42], eval_set=(X[42:].reshape(18, -1), y[42:]))
    assert (est.predict(X[42:].reshape(18, -1)) == y[42:]).mean() == 1.0
    assert est.history_[-1]["val_loss"] < 0.5


def test_an_epoch_of_many_batches_keeps_the_momentum_averages(monkeypatch):
    from honing.recipe import TrainConfig
    from honing.training.trainer import Trainer

    calls = []
    monkeypatch.setattr(norm_stats, "recalibrate", lambda *args: calls.append(args))
    X, y = torch.randn(100, 3), torch.randn(100, 2)
    for batch_size, expected in ((100, 1), (5, 0)):  # 1 batch an epoch: re-estimated; 20: not
        calls.clear()
        Trainer(_net(), nn.MSELoss(), TrainConfig(epochs=1, batch_size=batch_size, early_stopping=None)).fit(X, y)
        assert len(calls) == expected


def test_a_frozen_batch_norm_keeps_its_pretrained_statistics_while_the_rest_trains():
    """Fine-tuning with a frozen backbone: its BatchNorm normalises training batches with the running
    statistics (by hand: (x - mean) / sqrt(var + eps) * weight + bias) and never updates them, with or
    without the re-estimation of small epochs; a BatchNorm that trains still tracks its batches."""
    from honing.recipe import TrainConfig
    from honing.training.trainer import Trainer

    X, y = torch.randn(100, 3) * 3 + 1, torch.randn(100, 2)
    for batch_size in (100, 5):  # one batch an epoch (re-estimated) and twenty (momentum averages)
        net = _net()
        for p in [*net[0].parameters(), *net[1].parameters()]:
            p.requires_grad_(False)
        net[1].running_mean.fill_(0.5)
        net[1].running_var.fill_(2.0)
        seen = []
        net[1].register_forward_hook(lambda m, args, out, seen=seen: seen.append((args[0].detach(), out.detach(), m.training)))
        Trainer(net, nn.MSELoss(), TrainConfig(epochs=2, batch_size=batch_size, early_stopping=None)).fit(X, y)
        assert (net[1].running_mean == 0.5).all() and (net[1].running_var == 2.0).all()
        assert not (net[5].running_mean == 0).all()  # the trained layer tracked its inputs
        inputs, outputs, training = seen[0]
        assert not training
        expected = (inputs - 0.5) / torch.sqrt(torch.tensor(2.0) + net[1].eps) * net[1].weight + net[1].bias
        torch.testing.assert_close(outputs, expected)
        assert net[1].training is False and net[0].weight.grad is None
