"""Batch sizes and orders: rows per inference batch bounded by bytes (:func:`inference_rows`), and a
length-bucketed batch order for token sequences (less padding, same randomness per epoch).

Inference (validation, evaluation, prediction) takes many rows at a time, which is right for narrow
tables and wrong for images: 8,192 RGB 64×64 images are 400 MiB of inputs before a convolution
multiplies them.  :func:`inference_rows` caps a batch at :data:`INFERENCE_BYTES` of float32 inputs.

A batch of token ids costs as much as its longest row.  :func:`length_buckets` gives the trainer
(its ``order`` argument) an epoch order in which each batch holds rows of similar length, while
staying random: shuffle all rows, cut them into pools of ``batch_size * pool_batches`` rows, sort
each pool by length, cut each pool into batches, and shuffle the order of the batches.  Every row
appears exactly once per epoch, and the order depends only on the generator's state (so a resumed
run, or every rank of a data-parallel run, sees the same order).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["INFERENCE_BYTES", "inference_rows", "length_buckets", "token_lengths"]

#: Most bytes of float32 inputs in one inference batch.
INFERENCE_BYTES = 32 << 20


def inference_rows(width: int, cap: int) -> int:
    """Rows per inference batch for rows of ``width`` values: at most ``cap``, and at most
    :data:`INFERENCE_BYTES` of float32 inputs (at least one row)."""
    return max(1, min(cap, INFERENCE_BYTES // max(4 * int(width), 1)))


def token_lengths(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The number of non-padding ids of every row of ``ids`` (n, max_len), as int64."""
    return (ids != pad_id).sum(dim=1).to(torch.int64)


def length_buckets(
    lengths: torch.Tensor, batch_size: int, pool_batches: int = 50
) -> Callable[[torch.Generator], torch.Tensor]:
    """A function ``generator → permutation of range(len(lengths))`` that groups similar lengths.

    ``lengths`` holds one length per row (e.g. :func:`token_lengths`); ``pool_batches`` is how many
    batches are sorted together (larger: less padding, less randomness in which rows meet).
    """
    if int(batch_size) < 1 or int(pool_batches) < 1:
        raise ValueError("length_buckets needs batch_size >= 1 and pool_batches >= 1")
    lengths = torch.as_tensor(lengths).detach().to("cpu").reshape(-1)
    batch_size, pool = int(batch_size), int(batch_size) * int(pool_batches)

    def order(generator: torch.Generator) -> torch.Tensor:
        n = len(lengths)
        shuffled = torch.randperm(n, generator=generator)
        batches: list[torch.Tensor] = []
        for start in range(0, n, pool):
            rows = shuffled[start:start + pool]
            rows = rows[torch.argsort(lengths[rows], stable=True)]
            batches.extend(rows.split(batch_size))
        if not batches:
            return shuffled
        picks = torch.randperm(len(batches), generator=generator).tolist()
        return torch.cat([batches[i] for i in picks])

    return order
