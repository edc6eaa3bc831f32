"""Batches of a streamed table for the trainer: a bounded shuffle buffer, a torch IterableDataset and
the *batch stream* that :meth:`honing.training.trainer.Trainer.fit` takes instead of tensors.

:class:`RowStream` yields one epoch's ``(inputs, targets)`` batches of the rows of some splits.  Its
:class:`RowBatches` dataset runs in ``data.workers`` DataLoader processes (0: in the training process),
each reading its own shard of the file (:meth:`honing.data.streaming.TableFile.frames`; under torchrun
the shards are split among the ranks too), so every row is read by exactly one process per epoch.
Training rows pass through a :class:`ShuffleBuffer` of ``data.shuffle_buffer`` rows and at most
:data:`SHUFFLE_BYTES` (shared out among the processes), and Parquet row groups are read in a new order every epoch; both are seeded by the
recipe's seed and the epoch, so a run is reproducible.  Batches hold ``train.batch_size`` rows
(``batch_size / N`` per rank of N), except the last one of each process.  A user mistake met in a
reader process (a :class:`~honing.errors.HoningError`: an image that cannot be decoded, a chunk that
cannot be read) is raised in the training process as itself, one line.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from honing.data.streaming import Plan, split_index
from honing.errors import HoningError
from honing.training import distributed

Arrays = tuple[np.ndarray, ...]


#: Most bytes of rows the shuffle buffers of one stream hold (shared out among its reader processes):
#: ``data.shuffle_buffer`` rows of a wide table, or of images, would not fit in memory.
SHUFFLE_BYTES = 256 << 20


class ShuffleBuffer:
    """At most ``capacity`` rows (and at most ``max_bytes`` of them), held in arrays allocated once.
    Each :meth:`add` lets the rows over capacity leave, drawn at random (in random order) from all the
    rows held, old and new, and the new rows that stay take the places left; :meth:`drain` lets the
    rest leave in random order."""

    def __init__(self, capacity: int, rng: np.random.Generator, max_bytes: int | None = None):
        self.capacity, self.rng, self.max_bytes = max(int(capacity), 1), rng, max_bytes
        self.held: list[np.ndarray] | None = None
        self.size = 0

    def add(self, arrays: Arrays) -> Arrays | None:
        """Hold ``arrays`` (same number of rows each); the rows that leave, or None."""
        rows = len(arrays[0])
        if self.held is None:
            if self.max_bytes is not None:  # the first rows tell how wide a row is
                row_bytes = sum(a.itemsize * math.prod(a.shape[1:]) for a in arrays)
                self.capacity = max(1, min(self.capacity, self.max_bytes // max(row_bytes, 1)))
            self.held = [np.empty((self.capacity, *a.shape[1:]), dtype=a.dtype) for a in arrays]
        free = self.capacity - self.size
        if rows <= free:
            for store, a in zip(self.held, arrays):
                store[self.size: self.size + rows] = a
            self.size += rows
            return None
        leaving = self.rng.choice(self.size + rows, self.size + rows - self.capacity, replace=False)
        old = leaving < self.size
        new_leaving = leaving[~old] - self.size
        staying = np.ones(rows, dtype=bool)
        staying[new_leaving] = False
        places = np.concatenate([leaving[old], np.arange(self.size, self.capacity)])
        out = []
        for store, a in zip(self.held, arrays):
            gone = np.empty((len(leaving), *a.shape[1:]), dtype=a.dtype)
            gone[old], gone[~old] = store[leaving[old]], a[new_leaving]
            store[places] = a[staying]
            out.append(gone)
        self.size = self.capacity
        return tuple(out)

    def drain(self, piece: int = 16_384) -> Iterator[Arrays]:
        """Every row still held, in random order, in pieces (the buffer is then empty)."""
        order = self.rng.permutation(self.size)
        for start in range(0, self.size, piece):
            yield tuple(store[order[start: start + piece]] for store in self.held)
        self.held, self.size = None, 0


def _concat(parts: list[Arrays]) -> Arrays:
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate(column) for column in zip(*parts))


class _Batcher:
    """Rows in, batches of exactly ``size`` rows out (the last one shorter)."""

    def __init__(self, size: int):
        self.size, self.parts, self.count = size, [], 0

    def push(self, arrays: Arrays | None) -> Iterator[Arrays]:
        rows = 0 if arrays is None else len(arrays[0])
        start = 0
        if self.count and rows:  # complete the batch begun by earlier rows
            start = min(self.size - self.count, rows)
            self.parts.append(tuple(a[:start] for a in arrays))
            self.count += start
            if self.count == self.size:
                yield _concat(self.parts)
                self.parts, self.count = [], 0
        while rows - start >= self.size:
            yield tuple(a[start: start + self.size] for a in arrays)
            start += self.size
        if start < rows:  # a copy: the rest must not keep the whole chunk alive
            self.parts.append(tuple(a[start:].copy() for a in arrays))
            self.count += rows - start

    def flush(self) -> Iterator[Arrays]:
        if self.count:
            yield _concat(self.parts)
        self.parts, self.count = [], 0


class RowBatches(IterableDataset):
    """One epoch's batches of the rows of ``splits``, read by this process's shard (see the module doc).

    Yields ``(inputs, targets)`` tensors, or ``(inputs, targets, split codes)`` with ``with_split``,
    followed by the raw values of the ``groups`` columns (arrays, not tensors); targets are
    standardised for training (regression) when ``standardise``; ``augment`` adds the plan's text
    copies of every row, drawn anew each epoch."""

    def __init__(self, plan: Plan, splits: tuple[str, ...], epoch: int, batch_size: int, *, shuffle: bool,
                 buffer_rows: int, standardise: bool = True, with_split: bool = False, by_rank: bool = False,
                 groups: tuple[str, ...] = (), augment: bool = False):
        super().__init__()
        self.plan, self.epoch, self.batch_size = plan, epoch, batch_size
        self.wanted = tuple(split_index(s) for s in splits)
        self.shuffle, self.buffer_rows, self.standardise = shuffle, buffer_rows, standardise
        self.with_split, self.by_rank, self.groups, self.augment = with_split, by_rank, groups, augment
        self.world, self.rank = (distributed.world_size(), distributed.rank()) if by_rank else (1, 0)

    def shard(self) -> tuple[int, int]:
        """This process's shard and the number of shards (ranks × reader processes)."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank * workers + worker, self.world * workers

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...] | _Mistake]:
        """The batches; in a reader process, a user mistake ends them as a :class:`_Mistake` (a DataLoader
        would raise it again as its type with the worker's traceback for a message)."""
        try:
            yield from self._batches()
        except HoningError as exc:
            if get_worker_info() is None:
                raise
            yield _Mistake(type(exc), exc.what, exc.hint)

    def _batches(self) -> Iterator[tuple[torch.Tensor, ...]]:
        shard, shards = self.shard()
        seed = self.plan.seed % (1 << 32)
        groups = len(self.plan.table.group_rows)
        order = np.random.default_rng([seed, self.epoch]).permutation(groups) if self.shuffle and groups else None
        rng = np.random.default_rng([seed, self.epoch, shard])
        buffer = ShuffleBuffer(math.ceil(self.buffer_rows / shards), rng, SHUFFLE_BYTES // shards) \
            if self.shuffle else None
        batcher = _Batcher(self.batch_size)
        columns = list(dict.fromkeys([*self.plan.columns, *self.groups]))
        for first, frame in self.plan.table.frames(columns, self.plan.chunk_rows, shard, shards, order):
            draw = int(np.random.SeedSequence([seed, self.epoch, first]).generate_state(1)[0]) if self.augment else None
            X, y, codes, *groups = self.plan.arrays(first, frame, self.wanted, self.standardise, self.groups, draw)
            if not len(y):
                continue
            arrays = (X, y, codes, *groups) if self.with_split else (X, y)
            if buffer is not None:
                arrays = buffer.add(arrays)
            yield from map(_tensors, batcher.push(arrays))
        for arrays in buffer.drain() if buffer is not None else ():
            yield from map(_tensors, batcher.push(arrays))
        yield from map(_tensors, batcher.flush())


@dataclass
class _Mistake:
    """A reader process's :class:`~honing.errors.HoningError`, passed to the training process as a batch."""

    error: type[HoningError]
    what: str
    hint: str | None


def _raising(batches: Iterator[Any]) -> Iterator[tuple[torch.Tensor, ...]]:
    """The batches of reader processes, a :class:`_Mistake` raised as the error it was."""
    for batch in batches:
        if isinstance(batch, _Mistake):
            raise batch.error(batch.what, batch.hint)
        yield batch


def _tensors(arrays: Arrays) -> tuple[Any, ...]:
    """Inputs, targets and split codes as tensors; group values stay arrays."""
    X, y, *rest = arrays
    target = torch.from_numpy(np.ascontiguousarray(y))
    if target.dtype == torch.float32:
        target = target.reshape(-1, 1)  # a standardised regression target, as the in-memory path gives it
    codes = (torch.from_numpy(rest[0]),) if rest else ()
    return (torch.from_numpy(np.ascontiguousarray(X)), target, *codes, *rest[1:])


class RowStream:
    """A batch stream (:class:`honing.training.trainer.BatchStream`) of the rows of ``splits``: training
    batches shuffled anew every epoch (``shuffle``), or every row once in file order (validation).
    ``rows`` (of these splits) sizes ``len()``, the batches per epoch; ``by_rank`` shares the rows
    among torchrun ranks (training; every rank validates on all the validation rows); ``groups``
    (with ``with_split``) adds the raw values of those columns to each batch; ``augment`` (training)
    adds the text copies of ``data.augment``, which ``rows`` counts."""

    def __init__(self, plan: Plan, splits: tuple[str, ...], *, rows: int, batch_size: int, workers: int,
                 shuffle: bool = False, buffer_rows: int = 100_000, standardise: bool = True,
                 with_split: bool = False, by_rank: bool = False, groups: tuple[str, ...] = (),
                 augment: bool = False):
        self.plan, self.splits, self.rows, self.augment = plan, splits, rows, augment
        self.batch_size, self.workers = batch_size, workers
        self.shuffle, self.buffer_rows, self.standardise = shuffle, buffer_rows, standardise
        self.with_split, self.by_rank, self.groups = with_split, by_rank, groups

    def _rank_batch(self) -> int:
        world = distributed.world_size() if self.by_rank else 1
        return max(self.batch_size // world, 1)

    def __len__(self) -> int:
        world = distributed.world_size() if self.by_rank else 1
        return max(math.ceil(self.rows / world / self._rank_batch()), 1)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """The epoch's batches (epoch 0: unshuffled, e.g. for validation)."""
        dataset = RowBatches(self.plan, self.splits, epoch, self._rank_batch(), shuffle=self.shuffle and epoch > 0,
                             buffer_rows=self.buffer_rows, standardise=self.standardise,
                             with_split=self.with_split, by_rank=self.by_rank, groups=self.groups,
                             augment=self.augment)
        if self.workers == 0:
            return iter(dataset)
        release_free_memory()  # the reader processes start from this process's memory
        return _raising(iter(DataLoader(dataset, batch_size=None, num_workers=self.workers,
                                        multiprocessing_context="fork")))


def release_free_memory() -> None:
    """Give the memory freed by earlier chunks back to the operating system (glibc's ``malloc_trim``;
    elsewhere nothing), so that this process and the reader processes it forks stay small."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
