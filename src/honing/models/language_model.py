"""A character-level language model (``model.type: char_lm``): a small causal Transformer decoder.

:class:`CharVocabulary` maps characters to ids (id 0 is ``<unk>``: characters not seen in the
training split); :class:`CharTransformer` is the network (token and position embeddings, pre-norm
self-attention blocks under a causal mask, a linear head over the vocabulary);
:class:`CharLanguageModel` is the estimator the generative flow trains with honing's
:class:`~honing.training.trainer.Trainer`, scores (perplexity = exp of the mean cross-entropy per
character), samples from (temperature, top-k) and saves as safetensors plus a JSON description
(the vocabulary included) in the bundle's manifest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from honing.errors import HoningError, RecipeError

UNK = "<unk>"
#: Ignored targets (the padding of a stream's last, short window).
IGNORE = -100
#: Defaults of ``model.params`` for char_lm.
DEFAULTS: dict[str, Any] = {"block_size": 64, "d_model": 64, "heads": 4, "layers": 2, "dropout": 0.1}


class CharVocabulary:
    """Characters ↔ ids: id 0 is ``<unk>``, then the training text's characters in sorted order."""

    def __init__(self, chars: Iterable[str]):
        self.chars = [UNK, *sorted(set(chars) - {UNK})]
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, text: str) -> CharVocabulary:
        return cls(set(text))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, 0) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i] if i else "\ufffd" for i in ids)

    def unknown(self, text: str) -> int:
        """How many characters of ``text`` are not in the vocabulary."""
        return sum(c not in self.index for c in text)


class CharTransformer(nn.Module):
    """Ids (B, T) → next-character logits (B, T, V); position t attends to positions ≤ t only."""

    def __init__(self, vocab_size: int, block_size: int = 64, d_model: int = 64, heads: int = 4, layers: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        self.block_size = block_size
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(block_size, d_model)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids: Tensor) -> Tensor:
        length = ids.shape[1]
        if length > self.block_size:
            raise ValueError(f"sequence of {length} tokens is longer than block_size {self.block_size}")
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
        h = self.drop(self.tokens(ids) + self.positions(torch.arange(length, device=ids.device)))
        h = self.blocks(h, mask=mask, is_causal=True)
        return self.head(self.norm(h))


def sequence_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy per (non-padding) token of (B, T, V) logits against (B, T) ids."""
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)


def windows(ids: list[int], block_size: int, stride: int | None = None) -> tuple[Tensor, Tensor]:
    """Inputs and next-token targets (N, block_size) cut from a stream of ids; the last window is padded
    (targets IGNORE) so that every token after the first is predicted exactly once (with stride = block_size)."""
    stride = stride or block_size
    if len(ids) < 2:
        return torch.zeros(0, block_size, dtype=torch.long), torch.zeros(0, block_size, dtype=torch.long)
    xs, ys = [], []
    for start in range(0, len(ids) - 1, stride):
        x = ids[start: start + block_size]
        y = ids[start + 1: start + block_size + 1]
        x = x[:len(y)]
        xs.append(x + [0] * (block_size - len(x)))
        ys.append(y + [IGNORE] * (block_size - len(y)))
    return torch.tensor(xs, dtype=torch.long), torch.tensor(ys, dtype=torch.long)


class CharLanguageModel:
    """The char_lm estimator: a vocabulary, a :class:`CharTransformer` and what they were trained with."""

    estimator = "CharLanguageModel"

    def __init__(self, vocabulary: CharVocabulary, params: dict[str, Any] | None = None):
        unknown = sorted(set(params or {}) - set(DEFAULTS))
        if unknown:
            raise RecipeError(f"model.params: char_lm has no parameter '{unknown[0]}'",
                              f"use {', '.join(DEFAULTS)}")
        self.params = {**DEFAULTS, **(params or {})}
        if self.params["d_model"] % self.params["heads"]:
            raise RecipeError(f"model.params.d_model: {self.params['d_model']} is not divisible by heads "
                              f"{self.params['heads']}", "use a d_model that is a multiple of heads")
        self.vocabulary = vocabulary
        self.module_ = CharTransformer(len(vocabulary), **self.params)
        self.history_: list[dict] | None = None

    @property
    def block_size(self) -> int:
        return int(self.params["block_size"])

    def tensors(self, text: str, stride: int | None = None) -> tuple[Tensor, Tensor]:
        return windows(self.vocabulary.encode(text), self.block_size, stride)

    # ------------------------------------------------------------------ scoring

    @torch.no_grad()
    def nll(self, text: str, batch_size: int = 256) -> tuple[float, int]:
        """Summed cross-entropy (nats) of every character of ``text`` after the first, and their count."""
        X, y = self.tensors(text)
        self.module_.eval()
        device = next(self.module_.parameters()).device
        total, count = 0.0, 0
        for i in range(0, len(X), batch_size):
            out = self.module_(X[i: i + batch_size].to(device))
            yb = y[i: i + batch_size].to(device)
            total += float(F.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1), ignore_index=IGNORE,
                                           reduction="sum"))
            count += int((yb != IGNORE).sum())
        return total, count

    def perplexity(self, text: str) -> float:
        """exp(mean cross-entropy per predicted character) of ``text``."""
        total, count = self.nll(text)
        if count == 0:
            raise HoningError("perplexity needs a text of at least two characters", "give a longer text")
        return math.exp(total / count)

    def evaluate(self, text: str) -> dict[str, float]:
        total, count = self.nll(text)
        loss = total / max(count, 1)
        return {"perplexity": math.exp(loss), "cross_entropy": loss, "bits_per_char": loss / math.log(2),
                "characters": count, "unknown_characters": self.vocabulary.unknown(text)}

    def predict(self, rows: Any) -> np.ndarray:
        """Per-row perplexity of texts (what a bundle's predict gives; NaN for rows under two characters)."""
        out = []
        for text in rows:
            total, count = self.nll("" if text is None else str(text))
            out.append(math.exp(total / count) if count else float("nan"))
        return np.asarray(out, dtype=float)

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def generate(self, prompt: str = "", max_tokens: int = 200, temperature: float = 1.0, top_k: int | None = None,
                 seed: int = 0) -> str:
        """``prompt`` followed by ``max_tokens`` sampled characters.  ``temperature`` divides the logits;
        ``top_k`` keeps the k most likely characters (top_k=1: greedy, deterministic)."""
        if not (math.isfinite(temperature) and temperature > 0):  # nan, inf: no distribution to sample
            raise HoningError(f"--temperature must be a finite number > 0 (got {temperature})",
                              "use e.g. 0.8; --top-k 1 is greedy")
        if top_k is not None and top_k < 1:
            raise HoningError(f"--top-k must be >= 1 (got {top_k})", "use --top-k 1 for greedy decoding")
        if max_tokens < 0:
            raise HoningError(f"--max-tokens must be >= 0 (got {max_tokens})", "e.g. --max-tokens 200")
        self.module_.eval()
        device = next(self.module_.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        ids = self.vocabulary.encode(prompt or "\n")  # no prompt: start as after a line break
        new: list[int] = []
        for _ in range(max_tokens):
            context = torch.tensor([(ids + new)[-self.block_size:]], device=device)
            logits = self.module_(context)[0, -1].float() / temperature
            if top_k is not None and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            if top_k == 1:
                new.append(int(torch.argmax(logits)))
            else:
                new.append(int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)))
        return prompt + self.vocabulary.decode(new)

    # ------------------------------------------------------------------ bundle

    def export_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        return tensors, {"estimator": self.estimator, "params": dict(self.params),
                         "vocabulary": list(self.vocabulary.chars)}

    @classmethod
    def import_state(cls, tensors: dict[str, Tensor], meta: dict[str, Any]) -> CharLanguageModel:
        chars = meta["vocabulary"]
        if not chars or chars[0] != UNK:
            raise ValueError("the vocabulary must start with <unk>")
        model = cls(CharVocabulary(chars[1:]), meta["params"])
        model.module_.load_state_dict(tensors)
        model.module_.eval()
        return model
