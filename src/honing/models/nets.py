"""Neural network architectures, by recipe name: ``mlp``, ``cnn``, ``rnn``/``lstm``/``gru``,
``transformer`` and ``autoencoder``.

Every builder in :data:`NETS` is ``(input_shape, n_outputs, params) -> nn.Module`` and carries the
schema of its ``model.params`` (defaults and value checks) as registry metadata.  :func:`build_net`
is the checked entry point: an unknown parameter or an invalid value raises a
:class:`~honing.errors.ModelError` naming ``model.params.KEY``; :func:`net_params` lists defaults.

Every net keeps its repeated blocks in ``blocks`` (an ``nn.ModuleList``: MLP hidden layers, CNN
conv blocks, recurrent layers, transformer encoder layers, autoencoder layers).  Setting
``net.checkpointing = True`` runs each block through ``torch.utils.checkpoint`` while training,
trading compute for memory; results are unchanged, except that BatchNorm running statistics are
updated a second time during the recomputation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from numbers import Integral, Real
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torch.utils.checkpoint import checkpoint

from honing.errors import ModelError, did_you_mean
from honing.registry import Registry

#: The network builders, by recipe name; ``meta["params"]`` maps each parameter to (default, check).
NETS = Registry("network", ModelError)

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU,
}
RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class _Net(nn.Module):
    """Shared behaviour: ``blocks`` run one by one, optionally under gradient checkpointing."""

    checkpointing: bool = False

    def _through(self, blocks: Sequence[nn.Module], x: Any, **kwargs: Any) -> Any:
        """``x`` through each ``block(x, **kwargs)``, checkpointed when checkpointing and training."""
        use = self.checkpointing and self.training and torch.is_grad_enabled()
        for block in blocks:
            x = checkpoint(block, x, use_reentrant=False, **kwargs) if use else block(x, **kwargs)
        return x


def _dense(n_in: int, n_out: int, activation: str, dropout: float, norm: str = "none") -> nn.Sequential:
    """Linear → norm → activation → dropout (norm and dropout only when asked for)."""
    layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
    if norm == "batch":
        layers.append(nn.BatchNorm1d(n_out))
    elif norm == "layer":
        layers.append(nn.LayerNorm(n_out))
    layers.append(ACTIVATIONS[activation]())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLP(_Net):
    """Fully connected net on (N, F) inputs; ``blocks`` are the hidden layers, then a Linear head."""

    def __init__(self, in_features: int, n_outputs: int, hidden: Sequence[int] = (256, 128),
                 activation: str = "relu", dropout: float = 0.1, norm: str = "none"):
        super().__init__()
        sizes = [in_features, *hidden]
        self.blocks = nn.ModuleList(_dense(a, b, activation, dropout, norm) for a, b in pairwise(sizes))
        self.head = nn.Linear(sizes[-1], n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._through(self.blocks, x))


class CNN(_Net):
    """Conv net on (N, C, H, W) images: conv blocks, global average pooling, dropout, Linear head.

    Each block is Conv2d (same padding) → BatchNorm → activation → 2×2 pooling; pooling rounds up,
    so any number of blocks works on small images (8×8 → 4×4 → 2×2 → 1×1 → 1×1).
    """

    def __init__(self, in_channels: int, n_outputs: int, channels: Sequence[int] = (32, 64),
                 kernel: int = 3, pool: str = "max", batch_norm: bool = True, dropout: float = 0.1,
                 activation: str = "relu"):
        super().__init__()
        sizes = [in_channels, *channels]
        self.blocks = nn.ModuleList(
            self._block(a, b, kernel, pool, batch_norm, activation) for a, b in pairwise(sizes)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(sizes[-1], n_outputs)

    @staticmethod
    def _block(n_in: int, n_out: int, kernel: int, pool: str, batch_norm: bool, activation: str):
        """One conv block (see the class docstring)."""
        layers: list[nn.Module] = [nn.Conv2d(n_in, n_out, kernel, padding="same", bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(n_out))
        layers.append(ACTIVATIONS[activation]())
        if pool == "max":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        elif pool == "avg":
            layers.append(nn.AvgPool2d(2, ceil_mode=True))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self._through(self.blocks, x).mean(dim=(2, 3))))


def _token_mask(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of real tokens, lengths ≥ 1) of token ids padded with id 0."""
    mask = ids != 0
    return mask, mask.sum(dim=1).clamp(min=1)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over time of (N, T, D) ``x``, counting only positions where ``mask`` is True."""
    if mask is None:
        return x.mean(dim=1)
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class _RecurrentLayer(nn.Module):
    """One (bi)directional recurrent layer on a packed sequence, dropout on its outputs."""

    def __init__(self, kind: str, n_in: int, hidden: int, bidirectional: bool, dropout: float):
        super().__init__()
        self.rnn = RECURRENT[kind](n_in, hidden, batch_first=True, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: PackedSequence) -> PackedSequence:
        out, _ = self.rnn(x)
        return PackedSequence(self.dropout(out.data), out.batch_sizes, out.sorted_indices,
                              out.unsorted_indices)


class RecurrentNet(_Net):
    """RNN / LSTM / GRU classifier on token ids (N, T), pad id 0, or float sequences (N, T, F).

    Token ids must be right-padded; sequences are packed by their true lengths, so padding never
    reaches the recurrence.  Pooling ``"last"`` takes the state at the last real token (for a
    bidirectional net, joined with the backward direction's state at the first token); ``"mean"``
    averages over real tokens.  ``blocks`` holds one layer each; ``in_features`` is F for floats.
    """

    def __init__(self, kind: str, vocab_size: int | None, n_outputs: int, embed_dim: int = 64,
                 hidden: int = 128, layers: int = 1, bidirectional: bool = False, dropout: float = 0.1,
                 pooling: str = "last", in_features: int | None = None):
        super().__init__()
        if vocab_size is None and in_features is None:
            raise ValueError("RecurrentNet needs vocab_size (token ids) or in_features (float sequences)")
        self.embedding = None if vocab_size is None else nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        n_in = embed_dim if vocab_size is not None else in_features
        width = hidden * (2 if bidirectional else 1)
        self.blocks = nn.ModuleList(
            _RecurrentLayer(kind, n_in if i == 0 else width, hidden, bidirectional, dropout)
            for i in range(layers)
        )
        self.hidden, self.bidirectional, self.pooling = hidden, bidirectional, pooling
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        if self.embedding is not None:
            mask, lengths = _token_mask(x)
            x = self.embedding(x)
        else:
            mask, lengths = None, torch.full((n,), t, dtype=torch.long, device=x.device)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed = self._through(self.blocks, packed)
        out, _ = pad_packed_sequence(packed, batch_first=True, total_length=t)
        if self.pooling == "mean":
            return self.head(_masked_mean(out, mask))
        last = out[torch.arange(n, device=out.device), lengths - 1]
        if self.bidirectional:
            last = torch.cat([last[:, : self.hidden], out[:, 0, self.hidden:]], dim=1)
        return self.head(last)


class TransformerNet(_Net):
    """Pre-norm transformer encoder on token ids (N, T), pad id 0, or float sequences (N, T, F).

    Token (or linearly projected) embeddings plus learned positional embeddings run through
    ``blocks`` (``nn.TransformerEncoderLayer``, batch first, norm first) with a key padding mask,
    then a final LayerNorm, pooling (masked mean, or a learned ``[CLS]`` token) and a Linear head.
    """

    def __init__(self, vocab_size: int | None, n_outputs: int, max_len: int, d_model: int = 64,
                 heads: int = 4, layers: int = 2, ff: int = 128, dropout: float = 0.1,
                 pooling: str = "mean", in_features: int | None = None):
        super().__init__()
        if vocab_size is None and in_features is None:
            raise ValueError("TransformerNet needs vocab_size (token ids) or in_features (float sequences)")
        self.tokens = vocab_size is not None
        self.embed = (nn.Embedding(vocab_size, d_model, padding_idx=0) if self.tokens
                      else nn.Linear(in_features, d_model))
        self.position = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02) if pooling == "cls" else None
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, heads, ff, dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        if t > self.position.shape[0]:
            raise ValueError(f"sequence length {t} exceeds max_len {self.position.shape[0]}")
        mask = _token_mask(x)[0] if self.tokens else torch.ones(n, t, dtype=torch.bool, device=x.device)
        h = self.embed(x) + self.position[:t]
        if self.cls is not None:
            h = torch.cat([self.cls.expand(n, -1, -1), h], dim=1)
            mask = torch.cat([mask.new_ones(n, 1), mask], dim=1)
        pad = ~mask
        pad[:, 0] &= mask.any(dim=1)  # an all-padding row still attends to one key (no NaN)
        h = self.dropout(h)
        h = self.norm(self._through(self.blocks, h, src_key_padding_mask=pad))
        return self.head(h[:, 0] if self.cls is not None else _masked_mean(h, mask))


class Autoencoder(_Net):
    """Dense autoencoder on (N, F): ``forward`` reconstructs x, ``encode`` gives the latent code.

    ``blocks`` holds the encoder's hidden layers then the decoder's (mirrored); linear maps go to
    the latent code and back to F features.
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (128,), latent: int = 16,
                 activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        enc = [in_features, *hidden]
        dec = [latent, *reversed(hidden)]
        self._n_encoder = len(hidden)
        pairs = [*pairwise(enc), *pairwise(dec)]
        self.blocks = nn.ModuleList(_dense(a, b, activation, dropout) for a, b in pairs)
        self.to_latent = nn.Linear(enc[-1], latent)
        self.to_output = nn.Linear(dec[-1], in_features)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The latent code (N, latent) of (N, F) inputs."""
        return self.to_latent(self._through(self.blocks[: self._n_encoder], x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The reconstruction (N, F) of latent codes."""
        return self.to_output(self._through(self.blocks[self._n_encoder:], z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


# --------------------------------------------------------------------------- parameter checks
# A check returns None for a valid value, else what the value must be.
def _is_int(v: Any) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _int_at_least(lo: int, optional: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if (optional and v is None) or (_is_int(v) and v >= lo):
            return None
        return f"must be an integer ≥ {lo}" + (" or null" if optional else "")

    return check


def _int_list(min_len: int) -> Callable[[Any], str | None]:
    what = "a non-empty list" if min_len else "a list"
    return lambda v: (
        None if isinstance(v, (list, tuple)) and len(v) >= min_len and all(_is_int(i) and i > 0 for i in v)
        else f"must be {what} of positive integers"
    )


def _choice(*options: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else "must be one of " + ", ".join(options)


def _fraction(v: Any) -> str | None:
    return None if isinstance(v, Real) and not isinstance(v, bool) and 0 <= v < 1 else "must be in [0, 1)"


def _odd(v: Any) -> str | None:
    return None if _is_int(v) and v > 0 and v % 2 else "must be an odd positive integer"


def _flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


_ACT = ("relu", _choice(*ACTIVATIONS))
_DROPOUT = (0.1, _fraction)
_POS, _VOCAB = _int_at_least(1), (None, _int_at_least(2, optional=True))
MLP_PARAMS = {"hidden": ((256, 128), _int_list(0)), "activation": _ACT, "dropout": _DROPOUT,
              "norm": ("none", _choice("none", "batch", "layer"))}
CNN_PARAMS = {"channels": ((32, 64), _int_list(1)), "kernel": (3, _odd),
              "pool": ("max", _choice("max", "avg", "none")), "batch_norm": (True, _flag),
              "dropout": _DROPOUT, "activation": _ACT}
RECURRENT_PARAMS = {"vocab_size": _VOCAB, "embed_dim": (64, _POS), "hidden": (128, _POS), "layers": (1, _POS),
                    "bidirectional": (False, _flag), "dropout": _DROPOUT,
                    "pooling": ("last", _choice("last", "mean"))}
TRANSFORMER_PARAMS = {"vocab_size": _VOCAB, "max_len": (None, _int_at_least(1, optional=True)),
                      "d_model": (64, _POS), "heads": (4, _POS), "layers": (2, _POS), "ff": (128, _POS),
                      "dropout": _DROPOUT, "pooling": ("mean", _choice("mean", "cls"))}
TEXT_ENCODER_PARAMS = {"config": ({}, lambda v: None if isinstance(v, dict) else "must be a mapping"),
                       "pad_id": (0, _int_at_least(0)), "pooling": ("mean", _choice("mean", "cls")),
                       "dropout": _DROPOUT}
AUTOENCODER_PARAMS = {"hidden": ((128,), _int_list(0)), "latent": (16, _POS),
                      "activation": _ACT, "dropout": (0.0, _fraction)}

def _merged(spec: dict[str, tuple[Any, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """The spec's defaults with ``params`` on top."""
    return {**{k: default for k, (default, _) in spec.items()}, **params}


def _shape(name: str, input_shape: Sequence[int], ndim: int, what: str) -> tuple[int, ...]:
    """``input_shape`` as a tuple, checked to have ``ndim`` positive sizes."""
    shape = tuple(input_shape)
    if len(shape) != ndim or not all(_is_int(s) and s > 0 for s in shape):
        raise ModelError(f"{name} needs inputs of shape {what}, got {shape}",
                         "check the data's features for this model type")
    return tuple(int(s) for s in shape)


# --------------------------------------------------------------------------- the builders
@NETS.register("mlp", params=MLP_PARAMS)
def _mlp(input_shape: tuple[int, ...], n_outputs: int, params: dict) -> nn.Module:
    """An :class:`MLP` on (features,) inputs."""
    (f,) = _shape("mlp", input_shape, 1, "(features,)")
    return MLP(f, n_outputs, **_merged(MLP_PARAMS, params))


@NETS.register("cnn", params=CNN_PARAMS)
def _cnn(input_shape: tuple[int, ...], n_outputs: int, params: dict) -> nn.Module:
    """A :class:`CNN` on (channels, height, width) images."""
    c, _, _ = _shape("cnn", input_shape, 3, "(channels, height, width)")
    return CNN(c, n_outputs, **_merged(CNN_PARAMS, params))


def _sequence_shape(name: str, input_shape: Sequence[int], vocab_size: int | None) -> tuple[int, int | None]:
    """(T, F) for float sequences, (T, None) for token ids."""
    if vocab_size is None:
        return _shape(name, input_shape, 2, "(time, features) — or set model.params.vocab_size")
    return _shape(name, input_shape, 1, "(time,) of token ids when vocab_size is set")[0], None


def _recurrent(kind: str) -> Callable[[tuple[int, ...], int, dict], nn.Module]:
    """The builder of a :class:`RecurrentNet` of ``kind``."""
    def build(input_shape: tuple[int, ...], n_outputs: int, params: dict) -> nn.Module:
        p = _merged(RECURRENT_PARAMS, params)
        _, f = _sequence_shape(kind, input_shape, p["vocab_size"])
        return RecurrentNet(kind, n_outputs=n_outputs, in_features=f, **p)

    build.__doc__ = f"Build a {kind.upper()} :class:`RecurrentNet`."
    return build


for _kind in RECURRENT:
    NETS.register(_kind, params=RECURRENT_PARAMS)(_recurrent(_kind))


@NETS.register("transformer", params=TRANSFORMER_PARAMS)
def _transformer(input_shape: tuple[int, ...], n_outputs: int, params: dict) -> nn.Module:
    """A :class:`TransformerNet`; ``max_len`` defaults to the sequence length."""
    p = _merged(TRANSFORMER_PARAMS, params)
    t, f = _sequence_shape("transformer", input_shape, p["vocab_size"])
    p["max_len"] = t if p["max_len"] is None else p["max_len"]
    if p["max_len"] < t:
        raise ModelError(f"model.params.max_len: must be ≥ the sequence length {t}, got {p['max_len']}")
    if p["d_model"] % p["heads"]:
        raise ModelError(f"model.params.heads: must divide d_model ({p['d_model']}), got {p['heads']}")
    return TransformerNet(n_outputs=n_outputs, in_features=f, **p)


@NETS.register("autoencoder", params=AUTOENCODER_PARAMS)
def _autoencoder(input_shape: tuple[int, ...], n_outputs: int, params: dict) -> nn.Module:
    """The autoencoder's output is its input: ``n_outputs`` is ignored."""
    (f,) = _shape("autoencoder", input_shape, 1, "(features,)")
    return Autoencoder(f, **_merged(AUTOENCODER_PARAMS, params))


@NETS.register("text_encoder", params=TEXT_ENCODER_PARAMS)
def _text_encoder(input_shape: tuple[int, ...], n_outputs: int, params: dict) -> nn.Module:
    """A pretrained text encoder's network rebuilt from its config (random weights; a bundle or a
    fine-tune loads them): see :mod:`honing.models.pretrained`."""
    from honing.models.pretrained import text_net_from_config

    _shape("text_encoder", input_shape, 1, "(tokens,)")
    return text_net_from_config(n_outputs, **_merged(TEXT_ENCODER_PARAMS, params))


# --------------------------------------------------------------------------- entry points
def check_net_params(name: str, params: dict[str, Any] | None) -> None:
    """Raise :class:`ModelError` naming ``model.params.KEY`` for an unknown or invalid parameter."""
    spec = NETS.entry(name, "model.type").meta["params"]
    for key, value in (params or {}).items():
        if key not in spec:
            raise ModelError(f"model.params.{key}: not a parameter of {name}", did_you_mean(str(key), spec))
        problem = spec[key][1](value)
        if problem:
            raise ModelError(f"model.params.{key}: {problem}, got {value!r}")


def build_net(name: str, input_shape: Sequence[int], n_outputs: int,
              params: dict[str, Any] | None = None) -> nn.Module:
    """The network ``name`` for inputs of ``input_shape`` (no batch axis), with checked ``params``."""
    check_net_params(name, params)
    return NETS.get(name, "model.type")(tuple(input_shape), n_outputs, dict(params or {}))


def net_params(name: str) -> dict[str, Any]:
    """The parameters of network ``name`` and their defaults (lists for sequences), for docs."""
    spec = NETS.entry(name, "model.type").meta["params"]
    return {k: list(d) if isinstance(d, tuple) else d for k, (d, _) in spec.items()}
