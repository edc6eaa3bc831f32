"""The network architectures: shapes, padding invariance, overfitting, checkpointing, params."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from honing.errors import ModelError
from honing.models import nets
from honing.models.nets import (
    CNN,
    MLP,
    NETS,
    Autoencoder,
    RecurrentNet,
    TransformerNet,
    build_net,
    net_params,
)

RECURRENT = ["rnn", "lstm", "gru"]
SMALL = {
    "rnn": {"embed_dim": 16, "hidden": 32},
    "transformer": {"d_model": 32, "heads": 4, "ff": 64},
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tokens(n: int = 8, t: int = 10, vocab: int = 20, min_len: int = 2) -> torch.Tensor:
    """Right-padded token ids (pad 0) with random lengths in [min_len, t]."""
    ids = torch.randint(1, vocab, (n, t))
    lengths = torch.randint(min_len, t + 1, (n,))
    ids[torch.arange(t) >= lengths[:, None]] = 0
    return ids


def test_registry_has_every_contract_net():
    assert set(NETS.names()) == {"mlp", "cnn", "rnn", "lstm", "gru", "transformer", "autoencoder", "text_encoder"}
    for name in NETS.names():
        assert isinstance(net_params(name), dict) and "dropout" in net_params(name)


# --------------------------------------------------------------------------- shapes
def test_mlp_shape():
    net = build_net("mlp", (7,), 3, {})
    assert isinstance(net, MLP) and len(net.blocks) == 2
    assert net(torch.randn(5, 7)).shape == (5, 3)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 7, 9)])
def test_cnn_shape(shape):
    net = build_net("cnn", shape, 10, {"channels": [8, 16]})
    assert isinstance(net, CNN) and len(net.blocks) == 2
    assert net(torch.randn(4, *shape)).shape == (4, 10)


def test_cnn_many_blocks_on_tiny_images():
    net = build_net("cnn", (1, 8, 8), 2, {"channels": [4] * 5})
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 2)


@pytest.mark.parametrize("kind", RECURRENT)
@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_shapes(kind, pooling, bidirectional):
    p = {**SMALL["rnn"], "pooling": pooling, "bidirectional": bidirectional, "layers": 2}
    net = build_net(kind, (10,), 4, {**p, "vocab_size": 20})
    assert isinstance(net, RecurrentNet) and len(net.blocks) == 2
    assert net(tokens()).shape == (8, 4)
    net = build_net(kind, (10, 3), 4, p)
    assert net(torch.randn(8, 10, 3)).shape == (8, 4)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_transformer_shapes(pooling):
    p = {**SMALL["transformer"], "pooling": pooling}
    net = build_net("transformer", (10,), 4, {**p, "vocab_size": 20})
    assert isinstance(net, TransformerNet) and len(net.blocks) == 2
    ids = tokens()
    ids[0] = 0  # an all-padding row gives finite outputs
    out = net(ids)
    assert out.shape == (8, 4) and torch.isfinite(out).all()
    net = build_net("transformer", (10, 3), 4, p)
    assert net(torch.randn(8, 10, 3)).shape == (8, 4)


def test_autoencoder_shapes():
    net = build_net("autoencoder", (12,), 99, {"hidden": [8, 6], "latent": 3})
    assert isinstance(net, Autoencoder) and len(net.blocks) == 4
    x = torch.randn(5, 12)
    assert net(x).shape == (5, 12)
    assert net.encode(x).shape == (5, 3)


# --------------------------------------------------------------------------- padding invariance
@pytest.mark.parametrize(
    ("name", "bidirectional"), [(k, bi) for k in RECURRENT for bi in (False, True)] + [("transformer", False)]
)
def test_mean_pooling_ignores_padding(name, bidirectional):
    if name == "transformer":
        p = {**SMALL["transformer"], "max_len": 20}
    else:
        p = {**SMALL["rnn"], "bidirectional": bidirectional, "layers": 2}
    net = build_net(name, (10,), 3, {**p, "vocab_size": 20, "pooling": "mean"}).eval()
    ids = tokens()
    longer = torch.cat([ids, torch.zeros_like(ids)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(net(ids), net(longer), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", RECURRENT)
def test_last_pooling_ignores_padding(kind):
    p = {**SMALL["rnn"], "vocab_size": 20, "bidirectional": True}
    net = build_net(kind, (10,), 3, p).eval()
    ids = tokens()
    with torch.no_grad():
        torch.testing.assert_close(net(ids), net(torch.cat([ids, torch.zeros_like(ids)], 1)),
                                   atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- overfitting
def _fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, steps: int = 200) -> float:
    """Train on one batch; check every parameter gets a gradient; return the final train loss."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for step in range(steps):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        if step == 0:
            for pname, param in net.named_parameters():
                assert param.grad is not None and param.grad.abs().sum() > 0, pname
        opt.step()
    return loss.item()


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


CLASSIFY_CASES = {
    "mlp": ((6,), {"hidden": [32, 32], "norm": "batch"}, lambda: torch.randn(32, 6)),
    "mlp_layer": ((6,), {"hidden": [32], "norm": "layer"}, lambda: torch.randn(32, 6)),
    "cnn": ((1, 8, 8), {"channels": [8, 16]}, lambda: torch.randn(32, 1, 8, 8)),
    "rnn": ((10,), {**SMALL["rnn"], "vocab_size": 20}, lambda: tokens(32, min_len=5)),
    "lstm": ((10,), {**SMALL["rnn"], "vocab_size": 20, "pooling": "mean"}, lambda: tokens(32, min_len=5)),
    "gru": ((10, 3), {**SMALL["rnn"], "bidirectional": True}, lambda: torch.randn(32, 10, 3)),
    "transformer": ((10,), {**SMALL["transformer"], "vocab_size": 20}, lambda: tokens(32, min_len=5)),
    "transformer_cls": ((10,), {**SMALL["transformer"], "vocab_size": 20, "pooling": "cls"},
                        lambda: tokens(32, min_len=5)),
}


@pytest.mark.parametrize("case", list(CLASSIFY_CASES))
def test_overfits_a_tiny_batch(case):
    shape, params, make_x = CLASSIFY_CASES[case]
    net = build_net(case.split("_")[0], shape, 4, params)
    x, y = make_x(), torch.randint(0, 4, (32,))
    _fit(net, x, y, nn.functional.cross_entropy, steps=400)  # 200 left cls pooling 31/32 on some CPUs
    assert _accuracy(net, x, y) == 1.0


def test_autoencoder_overfits_a_tiny_batch():
    x = torch.randn(32, 3) @ torch.randn(3, 10)  # rank 3 data in 10 dimensions
    net = build_net("autoencoder", (10,), 0, {"hidden": [32], "latent": 3})
    assert _fit(net, x, x, nn.functional.mse_loss, steps=300) < 0.02 * x.var().item()


# --------------------------------------------------------------------------- checkpointing
CHECKPOINT_CASES = {
    "mlp": ((6,), {"hidden": [16, 16], "norm": "layer"}, lambda: torch.randn(8, 6)),
    "cnn": ((1, 8, 8), {"channels": [4, 8]}, lambda: torch.randn(8, 1, 8, 8)),
    "transformer": ((10,), {**SMALL["transformer"], "vocab_size": 20}, lambda: tokens()),
    "gru": ((10,), {**SMALL["rnn"], "vocab_size": 20, "layers": 2}, lambda: tokens()),
    "autoencoder": ((6,), {"hidden": [8], "latent": 2, "dropout": 0.2}, lambda: torch.randn(8, 6)),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_checkpointing_gives_the_same_loss_and_gradients(case, monkeypatch):
    shape, params, make_x = CHECKPOINT_CASES[case]
    plain = build_net(case, shape, 3, params).train()
    ckpt = copy.deepcopy(plain)
    ckpt.checkpointing = True
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return torch.utils.checkpoint.checkpoint(*args, **kwargs)

    monkeypatch.setattr(nets, "checkpoint", counting)
    x = make_x()
    losses = []
    for net in (plain, ckpt):
        torch.manual_seed(1)  # the same dropout masks for both
        loss = net(x).pow(2).mean()
        loss.backward()
        losses.append(loss)
    assert len(calls) == len(ckpt.blocks) > 0
    torch.testing.assert_close(losses[0], losses[1])
    for (pname, a), b in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=pname)


def test_checkpointing_is_off_in_eval(monkeypatch):
    net = build_net("mlp", (4,), 2, {})
    net.checkpointing = True
    calls = []
    monkeypatch.setattr(nets, "checkpoint", lambda *a, **k: calls.append(1))
    net.eval()(torch.randn(3, 4))
    assert not calls


# --------------------------------------------------------------------------- parameters
def test_unknown_param_suggests_the_right_one():
    with pytest.raises(ModelError, match=r"model\.params\.hiden: not a parameter of mlp") as exc:
        build_net("mlp", (4,), 2, {"hiden": [8]})
    assert "hidden" in exc.value.hint


def test_unknown_net_names_the_key():
    with pytest.raises(ModelError, match="model.type: unknown network 'lstn'") as exc:
        build_net("lstn", (4,), 2, {})
    assert "lstm" in exc.value.hint


@pytest.mark.parametrize(
    ("name", "shape", "key", "value"),
    [
        ("mlp", (4,), "hidden", [0]),
        ("mlp", (4,), "hidden", 64),
        ("mlp", (4,), "dropout", 1.5),
        ("mlp", (4,), "activation", "swish"),
        ("mlp", (4,), "norm", "group"),
        ("cnn", (1, 8, 8), "channels", []),
        ("cnn", (1, 8, 8), "pool", "median"),
        ("cnn", (1, 8, 8), "batch_norm", "yes"),
        ("cnn", (1, 8, 8), "kernel", 0),
        ("cnn", (1, 8, 8), "kernel", 4),
        ("lstm", (10,), "vocab_size", 1),
        ("gru", (10, 2), "layers", True),
        ("rnn", (10, 2), "pooling", "max"),
        ("transformer", (10,), "heads", 3),
        ("transformer", (10,), "max_len", 5),
        ("autoencoder", (4,), "latent", -1),
    ],
)
def test_invalid_values_name_the_key(name, shape, key, value):
    params = {key: value}
    if name == "transformer" or (name == "lstm" and key != "vocab_size"):
        params.setdefault("vocab_size", 20)
    with pytest.raises(ModelError, match=rf"model\.params\.{key}: "):
        build_net(name, shape, 2, params)


def test_input_shape_must_fit_the_net():
    with pytest.raises(ModelError, match="cnn needs inputs of shape"):
        build_net("cnn", (8, 8), 2, {})
    with pytest.raises(ModelError, match="vocab_size"):
        build_net("lstm", (10,), 2, {})  # token ids need a vocabulary


@pytest.mark.parametrize(("norm", "layer"), [("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)])
def test_norm_inserts_its_layers(norm, layer):
    net = build_net("mlp", (4,), 2, {"hidden": [8, 8, 8], "norm": norm})
    assert sum(isinstance(m, layer) for m in net.modules()) == 3
    plain = build_net("mlp", (4,), 2, {"hidden": [8, 8, 8]})
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.LayerNorm)) for m in plain.modules())


@pytest.mark.parametrize(
    ("name", "shape", "params"),
    [
        ("mlp", (4,), {}),
        ("cnn", (1, 8, 8), {}),
        ("gru", (10,), {"vocab_size": 20, "layers": 2}),
        ("transformer", (10,), {"vocab_size": 20}),
        ("autoencoder", (4,), {}),
    ],
)
def test_dropout_reaches_the_dropout_modules(name, shape, params):
    net = build_net(name, shape, 2, {**params, "dropout": 0.37})
    ps = [m.p for m in net.modules() if isinstance(m, nn.Dropout)]
    assert ps and all(p == 0.37 for p in ps)


def test_cnn_batch_norm_and_pool_switches():
    net = build_net("cnn", (1, 8, 8), 2, {"batch_norm": False, "pool": "avg"})
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert sum(isinstance(m, nn.AvgPool2d) for m in net.modules()) == 2


def test_batch_norm_standardises_hidden_units_in_training():
    """The effect of norm='batch': each hidden unit's pre-activation has mean 0 and std 1 over the
    batch in training mode, whatever the scale of the inputs."""
    from honing.models.nets import build_net

    torch.manual_seed(0)
    net = build_net("mlp", (5,), 2, {"hidden": [16], "norm": "batch", "dropout": 0.0})
    norm = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d))
    seen = {}
    norm.register_forward_hook(lambda module, inputs, output: seen.update(out=output.detach()))
    net.train()
    net(torch.randn(256, 5) * 100 + 50)
    out = seen["out"]
    assert torch.allclose(out.mean(dim=0), torch.zeros(16), atol=1e-4)
    assert torch.allclose(out.std(dim=0, unbiased=False), torch.ones(16), atol=1e-2)
