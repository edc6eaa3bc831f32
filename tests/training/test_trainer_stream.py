"""Trainer.fit on a batch stream (data that need not fit in memory) trains as it does on tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from honing.errors import HoningError
from honing.recipe import TrainConfig
from honing.training.trainer import BatchStream, Trainer


def _problem():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(500, 8, generator=g)
    y = (X[:, 0] - X[:, 1] > 0).long()
    return X[:400], y[:400], X[400:], y[400:]


class _Stream:
    """The batches the tensor path would cut: the same seeded permutation, one generator."""

    def __init__(self, X, y, batch, seed=None):
        self.X, self.y, self.batch = X, y, batch
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def batches(self, epoch):
        order = torch.arange(len(self.X)) if self.generator is None else torch.randperm(len(self.X), generator=self.generator)
        for i in range(0, len(order), self.batch):
            idx = order[i: i + self.batch]
            yield self.X[idx], self.y[idx]

    def __len__(self):
        return math.ceil(len(self.X) / self.batch)


def _trainer(**cfg) -> Trainer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    config = TrainConfig.model_validate({"epochs": 3, "batch_size": 32, "early_stopping": None,
                                         "optimizer": {"name": "sgd", "lr": 0.1}, **cfg})
    return Trainer(model, nn.CrossEntropyLoss(), config, device="cpu", seed=7,
                   metrics={"accuracy": lambda out, y: (out.argmax(1) == y).float().mean().item()})


@pytest.mark.parametrize("accumulate", [1, 2])
def test_a_stream_trains_exactly_like_the_tensors_it_holds(accumulate):
    X, y, X_val, y_val = _problem()
    tensors = _trainer(accumulate=accumulate)
    tensors.fit(X, y, X_val, y_val)
    streamed = _trainer(accumulate=accumulate)
    stream = _Stream(X, y, 32, seed=7)  # the trainer's own generator draws the same permutations
    assert isinstance(stream, BatchStream)
    streamed.fit(stream, None, _Stream(X_val, y_val, 32))
    for a, b in zip(tensors.model.state_dict().values(), streamed.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    keep = ("loss", "val_loss", "val_accuracy")
    assert [{k: round(r[k], 6) for k in keep} for r in tensors.history.rows] == \
           [{k: round(r[k], 6) for k in keep} for r in streamed.history.rows]
    assert streamed.steps_per_epoch == tensors.steps_per_epoch


def test_an_empty_stream_is_an_error_not_a_silent_epoch():
    X, y, _, _ = _problem()
    with pytest.raises(HoningError, match="epoch 1 had no training rows"):
        _trainer().fit(_Stream(X[:0], y[:0], 32))
