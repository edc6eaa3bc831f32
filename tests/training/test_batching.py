"""Length-bucketed batch order: a permutation that puts rows of similar length together."""

from __future__ import annotations

import pytest
import torch

from honing.training.batching import length_buckets, token_lengths


def _skewed_lengths(n: int = 5000, seed: int = 0) -> torch.Tensor:
    """Mostly short rows and a long tail (log-normal, capped at 256)."""
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.randn(n, generator=g) * 0.9 + 2.5).clamp(1, 256).round().to(torch.int64)


def _padded_cost(order: torch.Tensor, lengths: torch.Tensor, batch_size: int) -> float:
    """Mean padded length per batch: the longest row × the rows of each batch."""
    cost = [lengths[b].max().item() * len(b) for b in order.split(batch_size)]
    return sum(cost) / len(cost)


@pytest.mark.parametrize("n, batch_size, pool_batches", [(1000, 32, 4), (1001, 32, 50), (7, 3, 1), (5, 10, 2)])
def test_every_row_exactly_once(n, batch_size, pool_batches):
    lengths = torch.randint(1, 64, (n,), generator=torch.Generator().manual_seed(1))
    order = length_buckets(lengths, batch_size, pool_batches)(torch.Generator().manual_seed(0))
    assert order.dtype == torch.int64 and order.shape == (n,)
    assert torch.equal(order.sort().values, torch.arange(n))


def test_empty():
    order = length_buckets(torch.zeros(0, dtype=torch.int64), 8)(torch.Generator())
    assert order.numel() == 0


def test_much_less_padding_than_a_random_order():
    lengths, batch_size = _skewed_lengths(), 32
    uniform = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0))
    random_cost = _padded_cost(uniform, lengths, batch_size)
    costs = {}
    for pool_batches in (5, 50):
        order = length_buckets(lengths, batch_size, pool_batches)(torch.Generator().manual_seed(0))
        costs[pool_batches] = _padded_cost(order, lengths, batch_size)
    assert costs[50] < 0.4 * random_cost, (costs, random_cost)
    assert costs[50] < costs[5] < 0.7 * random_cost  # larger pools, less padding


def test_deterministic_for_the_generator_state():
    lengths = _skewed_lengths(2000)
    order = length_buckets(lengths, 16, pool_batches=10)
    g = torch.Generator().manual_seed(7)
    first, second = order(g), order(g)
    assert not torch.equal(first, second)  # a new epoch, a new order
    g = torch.Generator().manual_seed(7)
    assert torch.equal(order(g), first) and torch.equal(order(g), second)
    state = torch.Generator().manual_seed(3)
    saved = state.get_state()
    a = order(state)
    state.set_state(saved)
    assert torch.equal(order(state), a)


def test_batches_are_shuffled_not_sorted():
    lengths = torch.arange(640) % 64
    order = length_buckets(lengths, 8, pool_batches=80)(torch.Generator().manual_seed(0))
    maxima = torch.stack([lengths[b].max() for b in order.split(8)])
    assert not torch.equal(maxima, maxima.sort().values)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        length_buckets(torch.ones(4), 0)
    with pytest.raises(ValueError, match="pool_batches"):
        length_buckets(torch.ones(4), 2, pool_batches=0)


def test_token_lengths():
    ids = torch.tensor([[101, 7, 102, 0, 0], [101, 102, 0, 0, 0], [5, 5, 5, 5, 5]])
    lengths = token_lengths(ids, pad_id=0)
    assert lengths.tolist() == [3, 2, 5] and lengths.dtype == torch.int64
    assert token_lengths(torch.tensor([[1, 2, 2]]), pad_id=2).tolist() == [1]
