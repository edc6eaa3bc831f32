"""Pruning of neural estimators: unstructured (per layer, global), structured (mlp neurons, cnn channels),
iterative with fine-tuning; checked against numpy thresholds, hand counts and the unpruned net's outputs."""

from __future__ import annotations

import copy
from itertools import pairwise

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.nn.utils import prune as torch_prune

from honing.compression.prune import parameter_count, prune, sparsity
from honing.errors import CompressionError
from honing.models.estimators import NeuralClassifier, NeuralRegressor, import_state

MLP_WEIGHTS = {"blocks.0.0.weight", "blocks.1.0.weight", "head.weight"}


@pytest.fixture(scope="module")
def digits():
    """Digits (8×8 images as 64 features in [0, 1]): train, validation and test rows."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    return (X[:1000], y[:1000]), (X[1000:1300], y[1000:1300]), (X[1300:], y[1300:])


@pytest.fixture(scope="module")
def mlp(digits):
    """An mlp [32, 16] trained well on digits (about 90% test accuracy)."""
    train, validation, _ = digits
    return NeuralClassifier(net="mlp", net_params={"hidden": [32, 16]}, epochs=30, lr=1e-2, batch_size=64,
                            random_state=0).fit(*train, eval_set=validation)


def _weights(est) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in est.module_.state_dict().items()}


def _accuracy(est, split) -> float:
    X, y = split
    return float((est.predict(X) == y).mean())


# --------------------------------------------------------------------------- unstructured


def test_per_layer_pruning_zeroes_the_smallest_amount_of_every_weight(mlp):
    before = _weights(mlp)
    result = prune(mlp, 0.4, structured=False)
    after = _weights(result.estimator)
    assert set(result.sparsity) == MLP_WEIGHTS
    for name in MLP_WEIGHTS:
        w0, w1 = before[name].ravel(), after[name].ravel()
        k = round(w0.size * 0.4)
        zeros = np.flatnonzero(w1 == 0)
        assert len(zeros) == k and result.sparsity[name] == pytest.approx(k / w0.size)
        smallest = np.argsort(np.abs(w0), kind="stable")[:k]  # numpy's own ranking of the magnitudes
        assert set(zeros) == set(smallest)
        assert np.abs(w0[zeros]).max() <= np.abs(np.delete(w0, zeros)).min()
        assert np.array_equal(np.delete(w1, zeros), np.delete(w0, zeros))  # kept weights untouched
    for name in set(before) - MLP_WEIGHTS:  # biases are never pruned
        assert np.array_equal(before[name], after[name])
    nonzero = sum(int(np.count_nonzero(v)) for v in after.values())
    assert result.parameters_after == {"total": result.parameters_before["total"], "nonzero": nonzero}
    assert result.description == "unstructured 40% per layer"


def test_global_pruning_zeroes_the_smallest_weights_of_the_whole_net(mlp):
    before = _weights(mlp)
    result = prune(mlp, 0.6, structured=False, scope="global")
    after = _weights(result.estimator)
    names = sorted(MLP_WEIGHTS)
    w0 = np.concatenate([before[n].ravel() for n in names])
    w1 = np.concatenate([after[n].ravel() for n in names])
    k = round(w0.size * 0.6)
    zeros = np.flatnonzero(w1 == 0)
    assert len(zeros) == k
    threshold = np.partition(np.abs(w0), k - 1)[k - 1]  # the k-th smallest magnitude of all weights
    assert np.all(np.abs(w0[zeros]) <= threshold) and np.all(np.abs(np.delete(w0, zeros)) >= threshold)
    fractions = [result.sparsity[n] for n in names]
    assert np.average(fractions, weights=[before[n].size for n in names]) == pytest.approx(k / w0.size)
    assert max(fractions) - min(fractions) > 0.05  # layers differ: the scope is the whole net
    assert result.description == "unstructured 60% global"


def test_iterative_unstructured_pruning_keeps_pruned_weights_zero_while_fine_tuning(mlp, digits):
    train, validation, test = digits
    before = _weights(mlp)
    first_step = prune(mlp, 1 - 0.3 ** 0.5, structured=False)  # what step 1 of 2 prunes, before any training
    result = prune(mlp, 0.7, structured=False, steps=2, finetune_epochs=3, train=train, validation=validation)
    step_one, after = _weights(first_step.estimator), _weights(result.estimator)
    for name in MLP_WEIGHTS:
        assert np.count_nonzero(after[name] == 0) == round(before[name].size * 0.7)
        assert np.all(after[name][step_one[name] == 0] == 0)  # zeros of step 1 survived fine-tuning
        kept = after[name] != 0
        assert not np.array_equal(after[name][kept], before[name][kept])  # fine-tuning did train them
    assert result.description == "unstructured 70% per layer (2 steps, 3 fine-tuning epochs each)"
    assert _accuracy(result.estimator, test) > _accuracy(prune(mlp, 0.7, structured=False).estimator, test)


# --------------------------------------------------------------------------- structured


def test_structured_mlp_pruning_shrinks_the_net_and_round_trips_through_export(mlp, digits):
    X = digits[2][0]
    result = prune(mlp, 0.5)
    est = result.estimator
    assert est.net_params_["hidden"] == [16, 8] and mlp.net_params_["hidden"] == [32, 16]
    assert [tuple(b[0].weight.shape) for b in est.module_.blocks] == [(16, 64), (8, 16)]
    assert tuple(est.module_.head.weight.shape) == (10, 8)
    total = lambda sizes: sum(a * b + b for a, b in pairwise(sizes))  # weights + biases
    assert result.parameters_before == {"total": total([64, 32, 16, 10]), "nonzero": total([64, 32, 16, 10])}
    assert result.parameters_after["total"] == total([64, 16, 8, 10]) == parameter_count(est.module_)
    assert result.description == "structured 50% (hidden [32, 16] → [16, 8])"
    loaded = import_state(*est.export_state())
    assert np.array_equal(loaded.predict_proba(X), est.predict_proba(X))
    assert np.array_equal(loaded.predict(X), est.predict(X))


def _dead_mlp(norm: str, digits) -> tuple[NeuralClassifier, list[np.ndarray]]:
    """An mlp [16, 8] in which half of each hidden layer's units are dead: their outgoing weights are zero."""
    train = digits[0]
    est = NeuralClassifier(net="mlp", net_params={"hidden": [16, 8], "norm": norm}, epochs=3, lr=1e-2,
                           random_state=1).fit(*train)
    rng = np.random.default_rng(0)
    dead = [rng.choice(16, 8, replace=False), rng.choice(8, 4, replace=False)]
    with torch.no_grad():
        est.module_.blocks[1][0].weight[:, dead[0]] = 0
        est.module_.head.weight[:, dead[1]] = 0
    return est, dead


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_removing_dead_neurons_leaves_the_mlp_outputs_unchanged(norm, digits):
    est, dead = _dead_mlp(norm, digits)
    X = digits[2][0]
    result = prune(est, 0.5)
    kept = [np.setdiff1d(np.arange(n), d) for n, d in zip([16, 8], dead)]
    new, old = result.estimator.module_, est.module_
    assert result.estimator.net_params_["hidden"] == [8, 4]
    assert torch.equal(new.blocks[0][0].weight, old.blocks[0][0].weight[kept[0]])
    assert torch.equal(new.blocks[1][0].weight, old.blocks[1][0].weight[kept[1]][:, kept[0]])
    assert torch.equal(new.head.weight, old.head.weight[:, kept[1]])
    if norm == "batch":
        assert torch.equal(new.blocks[0][1].running_var, old.blocks[0][1].running_var[kept[0]])
    # the oracle: the unpruned net (dead units only add exact zeros, summed in a different order)
    np.testing.assert_allclose(result.estimator.predict_proba(X), est.predict_proba(X), rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_removing_dead_channels_leaves_the_cnn_outputs_unchanged(batch_norm, digits):
    train, _, (X, _) = digits
    est = NeuralClassifier(net="cnn", net_params={"channels": [8, 6], "batch_norm": batch_norm}, epochs=2,
                           lr=1e-2, random_state=0).fit(*train)
    rng = np.random.default_rng(1)
    dead = [rng.choice(8, 4, replace=False), rng.choice(6, 3, replace=False)]
    with torch.no_grad():
        est.module_.blocks[1][0].weight[:, dead[0]] = 0  # conv 2 ignores these channels of conv 1
        est.module_.head.weight[:, dead[1]] = 0  # the head ignores these channels of conv 2
    reference = est.predict_proba(X)
    result = prune(est, 0.5)
    assert result.estimator.net_params_["channels"] == [4, 3]
    kept = np.setdiff1d(np.arange(8), dead[0])
    assert torch.equal(result.estimator.module_.blocks[0][0].weight, est.module_.blocks[0][0].weight[kept])
    assert result.parameters_after["total"] < result.parameters_before["total"]
    np.testing.assert_allclose(result.estimator.predict_proba(X), reference, rtol=0, atol=1e-6)
    loaded = import_state(*result.estimator.export_state())
    assert np.array_equal(loaded.predict_proba(X), result.estimator.predict_proba(X))


def test_fine_tuning_recovers_accuracy_lost_to_structured_pruning(mlp, digits):
    train, validation, test = digits
    original = _accuracy(mlp, test)
    pruned = _accuracy(prune(mlp, 0.7).estimator, test)
    assert original - pruned > 0.1  # pruning 70% of the neurons hurts
    result = prune(mlp, 0.7, steps=2, finetune_epochs=3, train=train, validation=validation)
    assert result.estimator.net_params_["hidden"] == [10, 5]  # round(32 · 0.3), round(16 · 0.3)
    assert _accuracy(result.estimator, test) >= pruned
    assert result.description == "structured 70% (2 steps, 3 fine-tuning epochs each; hidden [32, 16] → [10, 5])"


def test_fine_tuning_a_regressor_trains_on_its_standardised_target():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = 1000 + 20 * (X @ rng.normal(size=6)) + rng.normal(size=400)  # far from standardised
    est = NeuralRegressor(net="mlp", net_params={"hidden": [16]}, epochs=40, lr=1e-2, random_state=0).fit(X, y)
    mse = lambda e: float(np.mean((e.predict(X[300:]) - y[300:]) ** 2))
    pruned = prune(est, 0.75).estimator
    tuned = prune(est, 0.75, finetune_epochs=10, train=(X[:300], y[:300])).estimator
    assert mse(tuned) < mse(pruned) and mse(tuned) < np.var(y[300:])


def test_the_input_estimator_is_never_modified(mlp, digits):
    before, module, params = _weights(mlp), mlp.module_, copy.deepcopy(mlp.net_params_)
    prune(mlp, 0.5, finetune_epochs=1, train=digits[0])
    prune(mlp, 0.5, structured=False, scope="global", steps=2, finetune_epochs=1, train=digits[0])
    assert mlp.module_ is module and mlp.net_params_ == params
    assert not any(hasattr(m, "weight_mask") for m in mlp.module_.modules())
    after = _weights(mlp)
    assert all(np.array_equal(before[k], after[k]) for k in before)


# --------------------------------------------------------------------------- sequence nets


@pytest.fixture(scope="module")
def tokens():
    """Right-padded token ids (vocabulary of 20) and a label that depends on the first token."""
    rng = np.random.default_rng(0)
    X = rng.integers(1, 20, size=(200, 6)).astype(np.float32)
    X[::3, 4:] = 0
    return X, (X[:, 0] > 10).astype(int)


def test_structured_pruning_of_an_lstm_says_to_prune_unstructured(tokens):
    est = NeuralClassifier(net="lstm", net_params={"embed_dim": 4, "hidden": 4}, epochs=1, random_state=0)
    est.fit(*tokens)
    with pytest.raises(CompressionError) as error:
        prune(est, 0.5)
    assert "mlp and cnn" in error.value.what and "compress.prune.structured: false" in error.value.hint


@pytest.mark.parametrize("net, params, weights", [
    ("lstm", {"embed_dim": 4, "hidden": 4}, {"blocks.0.rnn.weight_ih_l0", "blocks.0.rnn.weight_hh_l0"}),
    ("transformer", {"d_model": 8, "heads": 2, "layers": 1, "ff": 16},
     {"blocks.0.self_attn.in_proj_weight", "blocks.0.self_attn.out_proj.weight", "blocks.0.linear1.weight"}),
])
def test_unstructured_pruning_of_sequence_nets_reaches_what_they_compute_with(net, params, weights, tokens):
    X, y = tokens
    lr = 1e-3
    est = NeuralClassifier(net=net, net_params=params, epochs=1, batch_size=32, lr=lr, random_state=0).fit(X, y)
    result = prune(est, 0.5, structured=False, finetune_epochs=2, train=(X, y))
    assert weights <= set(result.sparsity) and "head.weight" in result.sparsity
    assert not any("embed" in name or "norm" in name for name in result.sparsity)
    for name in weights:
        before, after = est.module_.get_parameter(name), result.estimator.module_.get_parameter(name)
        assert result.sparsity[name] == pytest.approx(round(before.numel() * 0.5) / before.numel())
        # every kept weight trained through all ~14 steps (one Adam step moves a weight by about lr at most),
        # including those read by their parent rather than called (attention's out_proj)
        assert float((after - before)[after != 0].abs().max().detach()) > 3 * lr
    embedding = result.estimator.module_.get_parameter("embedding.weight" if net == "lstm" else "embed.weight")
    assert torch.count_nonzero(embedding) == embedding.numel() - embedding.shape[1]  # only the padding row is 0
    # a net rebuilt from the pruned state dict computes what the pruned estimator predicts (no stale weights)
    loaded = import_state(*result.estimator.export_state())
    np.testing.assert_allclose(loaded.predict_proba(X), result.estimator.predict_proba(X), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- arguments and counting


@pytest.mark.parametrize("kwargs, key", [
    ({"amount": 0.0}, "compress.prune.amount"), ({"amount": 1.0}, "compress.prune.amount"),
    ({"amount": -0.2}, "compress.prune.amount"), ({"amount": "half"}, "compress.prune.amount"),
    ({"amount": 0.5, "scope": "globl"}, "compress.prune.scope"),
    ({"amount": 0.5, "steps": 0}, "compress.prune.steps"),
    ({"amount": 0.5, "finetune_epochs": 2}, "compress.prune.finetune_epochs"),  # no training data
])
def test_bad_arguments_name_the_recipe_key(kwargs, key, mlp):
    with pytest.raises(CompressionError) as error:
        prune(mlp, **kwargs)
    assert error.value.what.startswith(key) and error.value.hint


def test_models_that_cannot_be_pruned_are_user_errors(digits):
    train = digits[0]
    with pytest.raises(CompressionError, match="neural"):
        prune(LogisticRegression(max_iter=1000).fit(*train), 0.5)
    linear = NeuralClassifier(net="mlp", net_params={"hidden": []}, epochs=1, random_state=0).fit(*train)
    with pytest.raises(CompressionError, match="no hidden layer"):
        prune(linear, 0.5)
    assert prune(linear, 0.5, structured=False).sparsity == {"head.weight": pytest.approx(0.5)}


def test_sparsity_and_parameter_count_by_hand():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.Embedding(4, 2), nn.Conv2d(1, 1, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 1.0]))
        net[2].weight.fill_(1.0)
        net[3].weight.copy_(torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]]))
        net[3].bias.fill_(1.0)
    assert sparsity(net) == {"0.weight": 0.5, "3.weight": 0.25}  # no norm, embedding or bias
    # Linear 6 + 2, BatchNorm 2 + 2 (running statistics are buffers), Embedding 8, Conv 4 + 1
    assert parameter_count(net) == 25
    assert parameter_count(net, nonzero=True) == 3 + 1 + 2 + 0 + 8 + 3 + 1
    torch_prune.l1_unstructured(net[2], "weight", amount=3)  # under a mask: counted once, as masked
    assert parameter_count(net) == 25 and parameter_count(net, nonzero=True) == 18 - 3
