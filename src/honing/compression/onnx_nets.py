"""The ``nn.Module`` wrappers that ONNX graphs of honing's networks are traced from
(:func:`honing.compression.onnx_export.export_onnx`): a fitted estimator's network between the flat
rows it takes and what it predicts, recurrent nets without packed sequences (ONNX has none) and the
pretrained text encoder on whole rows.  Imported only when a network is exported, so exporting a
classic model never imports torch."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class NetworkGraph(nn.Module):
    """A fitted estimator's network between the flat (n, F) rows it takes and what it predicts."""

    def __init__(self, model: Any, task: str):
        super().__init__()
        shape = tuple(model.input_shape_)
        self.tokens = bool(model._tokens(shape))
        self.shape = shape
        self.vocab = (model.net_params_ or {}).get("vocab_size") if self.tokens else None
        self.classify = task == "classification"
        self.y_mean = float(getattr(model, "y_mean_", 0.0))
        self.y_scale = float(getattr(model, "y_scale_", 1.0))
        net = copy.deepcopy(model.module_).cpu().eval()
        if type(net).__name__ == "RecurrentNet":
            net = Recurrent(net)
        elif type(net).__name__ == "TextEncoderNet":
            net = TextEncoder(net)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tokens and self.vocab:
            x = torch.where(x < self.vocab, x, torch.ones_like(x))  # past the vocabulary: unknown (1)
        elif not self.tokens and len(self.shape) > 1:
            x = x.reshape(x.shape[0], *self.shape)
        out = self.net(x)
        if self.classify:
            return torch.softmax(out, dim=1)
        return out.reshape(-1, 1) * self.y_scale + self.y_mean


class Direction(nn.Module):
    """One direction of a recurrent layer as a single-direction module with the same weights."""

    def __init__(self, rnn: nn.RNNBase, suffix: str):
        super().__init__()
        extra = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
        self.rnn = type(rnn)(rnn.input_size, rnn.hidden_size, bias=rnn.bias, batch_first=True, **extra)
        weights = {name: getattr(rnn, f"{name}{suffix}") for name, _ in self.rnn.named_parameters()}
        self.rnn.load_state_dict(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class Layer(nn.Module):
    """A (bi)directional recurrent layer on right-padded rows, without packing: the forward
    direction reads the padding only after the real steps; the backward one reads every row
    reversed within its length (``flip``), then its outputs are put back in order."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.forward_dir = Direction(rnn, "")
        self.backward_dir = Direction(rnn, "_reverse") if rnn.bidirectional else None

    def forward(self, x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        out = self.forward_dir(x)
        if self.backward_dir is None:
            return out
        back = self.backward_dir(x.gather(1, flip.unsqueeze(-1).expand(-1, -1, x.shape[2])))
        back = back.gather(1, flip.unsqueeze(-1).expand(-1, -1, back.shape[2]))
        return torch.cat([out, back], dim=2)


class Recurrent(nn.Module):
    """:class:`~honing.models.nets.RecurrentNet` computed without packed sequences (same results)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.embedding, self.head = net.embedding, net.head
        self.layers = nn.ModuleList(Layer(block.rnn) for block in net.blocks)
        self.hidden, self.bidirectional, self.pooling = net.hidden, net.bidirectional, net.pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[0], x.shape[1]
        steps = torch.arange(t, device=x.device).unsqueeze(0)
        if self.embedding is not None:
            mask = x != 0
            lengths = mask.sum(dim=1).clamp(min=1)
            x = self.embedding(x)
        else:
            mask, lengths = None, torch.full((n,), t, dtype=torch.long, device=x.device)
        real = steps < lengths.unsqueeze(1)  # the steps packing would run
        flip = torch.where(real, lengths.unsqueeze(1) - 1 - steps, steps.expand(n, t))
        for layer in self.layers:
            x = layer(x, flip)
        out = x * real.unsqueeze(-1).to(x.dtype)  # zeros past each row's length, as after unpacking
        if self.pooling == "mean":
            if mask is None:
                return self.head(out.mean(dim=1))
            m = mask.unsqueeze(-1).to(out.dtype)
            return self.head((out * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0))
        last = out.gather(1, (lengths - 1).view(n, 1, 1).expand(n, 1, out.shape[2])).squeeze(1)
        if self.bidirectional:
            last = torch.cat([last[:, : self.hidden], out[:, 0, self.hidden:]], dim=1)
        return self.head(last)


class TextEncoder(nn.Module):
    """:class:`~honing.models.pretrained.TextEncoderNet` on whole rows (no cut to the longest row,
    which depends on the data): the attention mask hides the padding either way."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != self.net.pad_id
        states = self.net.backbone(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        if self.net.pooling == "cls":
            return self.net.head(states[:, 0])
        weights = mask.unsqueeze(-1).to(states.dtype)
        return self.net.head((states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0))
