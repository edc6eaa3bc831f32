"""The neural training loop: :class:`Trainer`, readable from :meth:`Trainer.fit` down.

In-memory tensors are batched by slicing with a seeded permutation (no per-sample DataLoader).
Everything beyond the bare loop is a callback (:mod:`honing.training.callbacks`); the trainer adds
a :class:`History` and, when ``train.early_stopping`` is set, an :class:`EarlyStopping` itself.

Label smoothing (``train.label_smoothing``) is not applied here: the estimator builds its
``nn.CrossEntropyLoss(label_smoothing=...)`` and hands it over as ``loss_fn``.

Data larger than memory arrives as a *batch stream* (:class:`BatchStream`, e.g. from
:mod:`honing.data.streaming`) instead of tensors: the same loop runs over whatever batches it yields.

Under torchrun (``train.processes``, :mod:`honing.training.distributed`) each process runs the same
loop on its own shard of every epoch's permutation, through ``DistributedDataParallel`` or, with
``train.strategy: fsdp``, on a fully sharded twin of the model (:mod:`honing.training.fsdp`); see
:class:`Trainer` for what changes.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from honing.errors import HoningError, RecipeError
from honing.recipe import TrainConfig
from honing.training import distributed, fsdp, norm_stats
from honing.training.callbacks import Callback, EarlyStopping, History, ProgressBar, monitor_mode
from honing.training.optim import Schedule, init_weights, l1_penalty, make_optimizer, make_schedule

Metric = Callable[[Tensor, Tensor], float]
#: A training-batch transform ``(xb, yb) -> (xb, yb)`` (augmentation; mixup may return soft targets).
BatchTransform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
#: The epoch's row order from the trainer's generator (default: a uniform permutation).
BatchOrder = Callable[[torch.Generator], Tensor]

# Callbacks that print: only rank 0 runs them (and any callback with ``main_only = True``).  Checkpoint
# runs on every rank (a sharded model's full state is gathered by all of them) and rank 0 writes it.
MAIN_ONLY_CALLBACKS = (ProgressBar,)


@runtime_checkable
class BatchStream(Protocol):
    """Training or validation data that need not fit in memory: what :meth:`Trainer.fit` takes
    instead of tensors.  ``batches(epoch)`` yields the epoch's ``(inputs, targets)`` batches (already
    shuffled, on any device); ``len()`` is the number of batches per epoch (an estimate is enough:
    it sizes the per-step learning-rate schedule)."""

    def batches(self, epoch: int) -> Iterable[tuple[Tensor, Tensor]]: ...

    def __len__(self) -> int: ...


class TrainingDiverged(HoningError):
    """The loss became NaN or infinite; the model was given back its last good weights."""


class Trainer:
    """Trains ``model`` on in-memory tensors as ``cfg`` (the recipe's ``train`` section) says.

    ``loss_fn(outputs, targets)`` returns a scalar tensor; ``metrics`` maps a name to
    ``fn(outputs, targets) -> float``, computed on the validation split and logged as ``val_<name>``.
    ``seed`` seeds the generator of the batch order; dropout and the like draw from torch's global
    generator (seed it with :func:`honing.training.seed.seed_everything`).  ``params`` are the
    optimizer's parameter groups (default: every parameter at ``train.optimizer.lr``; a group's own
    ``lr`` makes discriminative rates).  ``augment`` transforms each *training* batch (never the
    validation split); ``order`` gives each epoch's row order (e.g. length buckets).  Epochs and batches are
    numbered from 1.  ``fit`` continues from :attr:`epoch`, so loading a checkpoint resumes.

    Distributed (N torchrun processes; the trainer joins their group itself): ``cfg.batch_size`` is
    the *global* batch, each rank takes ``batch_size // N`` rows of it from its shard of the epoch's
    permutation (the same on every rank: same ``seed``), and the gradients are averaged across ranks,
    so a step sees the rows a single process would.  Every rank validates on the whole validation
    split, and the logged numbers are averaged across ranks, so all ranks log identical values and
    make identical early-stopping and schedule decisions.  Checkpoints and the progress line
    (:data:`MAIN_ONLY_CALLBACKS`) run on rank 0 only.  :attr:`model` stays the plain module (DDP
    wraps it for the training forward only), so states and bundles match single-process ones.
    With ``train.strategy: fsdp`` the ranks train a sharded twin instead (:mod:`honing.training.fsdp`):
    :attr:`model` is that twin during ``fit`` and the original module, holding the full trained
    weights, after it; checkpoints hold full states, as a single process writes them.

    A :class:`BatchStream` in place of ``X`` (and of ``X_val``) trains on its batches; under
    torchrun each rank's stream must yield its own share of the rows, and an epoch ends for all
    ranks when the first of them runs out (they must step together).
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], cfg: TrainConfig, *,
                 callbacks: Iterable[Callback] = (), metrics: dict[str, Metric] | None = None,
                 device: str | None = None, seed: int = 0, params: Iterable[Any] | None = None,
                 augment: BatchTransform | None = None, order: BatchOrder | None = None):
        self.cfg = cfg
        self.device = resolve_device(device or cfg.device)
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise RecipeError(f"train.precision: fp16 needs CUDA (training runs on {self.device.type})",
                              "use train.precision: bf16 or fp32 on a CPU")
        distributed.init_from_env()  # a no-op outside torchrun
        world = distributed.world_size()
        if cfg.batch_size % world:
            raise RecipeError(f"train.batch_size: {cfg.batch_size} rows cannot be split among {world} "
                              "processes",
                              f"use a multiple of {world} (it is the global batch)")
        self.batch_size = cfg.batch_size // world  # rows per batch on this process
        self.model = model.to(self.device)
        self._ddp: DistributedDataParallel | None = None  # wraps model for training when distributed
        init_weights(self.model, cfg.init)
        self._unsharded: nn.Module | None = None  # with FSDP: the original module, until fit ends
        if cfg.strategy == "fsdp" and distributed.is_distributed():
            self._unsharded, self.model = self.model, fsdp.shard(self.model)
            params = fsdp.regroup(model.parameters() if params is None else params, model, self.model)
        self.loss_fn = loss_fn.to(self.device) if isinstance(loss_fn, nn.Module) else loss_fn  # (class weights)
        self.metrics = dict(metrics or {})
        self.optimizer = make_optimizer(self.model.parameters() if params is None else params, cfg.optimizer)
        self.augment, self.order = augment, order
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        self.schedule: Schedule | None = None  # built by fit, once the steps per epoch are known
        self.steps_per_epoch: int | None = None
        self.generator = torch.Generator().manual_seed(seed)
        self.callbacks = _with_default_callbacks(callbacks, cfg)
        self.history = next(cb for cb in self.callbacks if isinstance(cb, History))
        es = cfg.early_stopping
        self.monitor = es.monitor if es else "val_loss"
        self.epoch = 0  # epochs completed
        self.stop = False  # set by a callback to end fit after the current epoch
        self.batch_targets: Tensor | None = None  # the current training batch's targets, for callbacks
        self._good_state: dict[str, Tensor] | None = None

    # ------------------------------------------------------------------ the loop

    def fit(self, X: Tensor | BatchStream, y: Tensor | None = None, X_val: Tensor | BatchStream | None = None,
            y_val: Tensor | None = None) -> History:
        """Train until ``cfg.epochs`` or until a callback sets :attr:`stop`; return the history.

        ``X, y`` are tensors, or ``X`` is a :class:`BatchStream` (``y`` None); the same for the
        validation data."""
        if not isinstance(X, BatchStream):
            X, y = X.to(self.device), y.to(self.device)
        val = X_val if X_val is None or isinstance(X_val, BatchStream) else (X_val.to(self.device),
                                                                              y_val.to(self.device))
        if self.schedule is None:
            self._build_schedule(math.ceil(self._batches_per_epoch(X) / self.cfg.accumulate))
        if distributed.is_distributed() and self._unsharded is None and self._ddp is None:
            self._ddp = DistributedDataParallel(self.model, device_ids=self._ddp_device_ids())  # averages gradients
        self.stop = False
        with torch_threads(self.cfg.threads):
            self._call("on_fit_start")
            while self.epoch < self.cfg.epochs and not self.stop:
                epoch = self.epoch + 1
                self._call("on_epoch_start", epoch)
                self._good_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                start = time.perf_counter()
                loss, rows = self._train_epoch(X, y, epoch)
                train_seconds = time.perf_counter() - start
                if self._recalibrates(X):  # few batches: BatchNorm's running averages lag (norm_stats)
                    size = self.batch_size
                    norm_stats.recalibrate(self.model, (X[i: i + size] for i in range(0, len(X), size)),
                                           self._autocast())
                logs = {"epoch": epoch, "loss": loss, **self._validate(val)}
                logs.update(lr=self.schedule.lr, seconds=time.perf_counter() - start,
                            samples_per_s=rows / max(train_seconds, 1e-9))
                self.schedule.step_epoch(self._monitored_value(logs))
                self.epoch = epoch
                self._call("on_epoch_end", epoch, logs)
            self._call("on_fit_end")
        if self._unsharded is not None:  # the original module takes the trained weights back
            self.model, self._unsharded = fsdp.unshard(self.model, self._unsharded, self.device), None
        return self.history

    def _train_epoch(self, X: Tensor | BatchStream, y: Tensor | None, epoch: int) -> tuple[float, int]:
        """One pass over the shuffled rows (this rank's share of them); returns the mean training loss
        (without the L1 term), averaged across ranks, and the rows trained on (all ranks together)."""
        self.model.train()
        norm_stats.hold_frozen(self.model)  # a frozen backbone keeps its pretrained statistics
        accumulate = self.cfg.accumulate
        batches = self._batches_per_epoch(X)  # exact for tensors; for a stream, an estimate
        total, n, batch = 0.0, 0, 0
        self.optimizer.zero_grad(set_to_none=True)
        stream = isinstance(X, BatchStream)
        for batch, (xb, yb), last in _marked_last(self._epoch_batches(X, y)):
            # batches in this step: the last step of an epoch may be short (a stream learns it at its end)
            group = accumulate if stream else min(accumulate, batches - (batch - 1) // accumulate * accumulate)
            step = batch % accumulate == 0 or last
            xa, ya = (xb, yb) if self.augment is None else self.augment(xb, yb)  # training batches only
            with self._sync_gradients(step):
                loss = self._backward(xa, ya, group, epoch, batch)
            if step:
                if stream and batch % accumulate:  # a short last step: its batches carry 1/accumulate each
                    _scale_gradients(self.model, accumulate / (batch % accumulate))
                self._optimizer_step()
            total += loss * len(xb)
            n += len(xb)
            self.batch_targets = yb  # for callbacks that look at the batch (class balance)
            self._call("on_batch_end", batch, loss)
        if n == 0:
            raise HoningError(f"epoch {epoch} had no training rows", "check the training data (and its split)")
        self._check_weights(epoch, batch)
        return distributed.all_reduce_mean(total / n), n * distributed.world_size()

    def _epoch_batches(self, X: Tensor | BatchStream, y: Tensor | None) -> Iterator[tuple[Tensor, Tensor]]:
        """This rank's training batches of the epoch, on the training device."""
        if isinstance(X, BatchStream):
            batches = ((xb.to(self.device), yb.to(self.device)) for xb, yb in X.batches(self.epoch + 1))
            return _while_all_ranks_have(batches) if distributed.is_distributed() else batches
        perm = (torch.randperm(len(X), generator=self.generator) if self.order is None
                else self.order(self.generator))  # the same on every rank (same seed)
        perm = distributed.shard_indices(len(X), perm).to(self.device)  # this rank's rows (all of them alone)
        size = self.batch_size
        return ((X[idx], y[idx]) for idx in (perm[i: i + size] for i in range(0, len(perm), size)))

    def _recalibrates(self, X: Tensor | BatchStream) -> bool:
        """Whether BatchNorm statistics are re-estimated after each epoch: in-memory rows on one
        process, in fewer than :data:`~honing.training.norm_stats.FEW_BATCHES` batches."""
        return not isinstance(X, BatchStream) and not distributed.is_distributed() and \
            self._batches_per_epoch(X) < norm_stats.FEW_BATCHES

    def _batches_per_epoch(self, X: Tensor | BatchStream) -> int:
        if isinstance(X, BatchStream):
            return max(len(X), 1)
        rows = len(distributed.shard_indices(len(X), torch.arange(len(X))))  # on this rank
        return math.ceil(rows / self.batch_size)

    def _backward(self, xb: Tensor, yb: Tensor, group: int, epoch: int, batch: int) -> float:
        """Forward, loss (+ L1), and gradients scaled by 1/group; returns the batch loss."""
        with self._autocast():
            loss = self.loss_fn((self._ddp or self.model)(xb), yb)
            objective = loss + self.cfg.l1 * l1_penalty(self.model) if self.cfg.l1 else loss
        value = loss.item()
        if not math.isfinite(value):
            self._diverged(f"loss became {value}", epoch, batch)
        if group > 1:  # accumulating: each micro-batch carries its share of the step
            objective = objective / group
        (self.scaler.scale(objective) if self.scaler else objective).backward()
        return value

    def _optimizer_step(self) -> None:
        """Clip the gradients, step the optimizer and the per-step schedule, clear the gradients."""
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.clip.norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip.norm)
        if self.cfg.clip.value:
            nn.utils.clip_grad_value_(self.model.parameters(), self.cfg.clip.value)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step_batch()

    def _validate(self, val: tuple[Tensor, Tensor] | BatchStream | None) -> dict[str, float]:
        if val is None:
            return {}
        if isinstance(val, BatchStream):
            outputs, y_val = self._stream_outputs(val)
        else:
            X_val, y_val = val
            outputs = self._outputs(X_val)
        logs = {"val_loss": float(self.loss_fn(outputs, y_val))}
        for name, metric in self.metrics.items():
            logs[f"val_{name}"] = float(metric(outputs, y_val))
        return {key: distributed.all_reduce_mean(value) for key, value in logs.items()}  # same on all ranks

    # ------------------------------------------------------------------ prediction

    def predict(self, X: Tensor) -> Tensor:
        """The model's outputs for ``X`` (eval mode, batched, no gradients), on the CPU."""
        return self._outputs(X).cpu()

    @torch.no_grad()
    def _outputs(self, X: Tensor) -> Tensor:
        self.model.eval()
        size = self.cfg.batch_size
        with self._autocast():
            parts = [self.model(X[i: i + size].to(self.device)) for i in range(0, len(X), size)]
        out = torch.cat(parts)
        return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out

    @torch.no_grad()
    def _stream_outputs(self, stream: BatchStream) -> tuple[Tensor, Tensor]:
        """The model's outputs for every batch of a (validation) stream, and the batches' targets."""
        self.model.eval()
        outputs, targets = [], []
        with self._autocast():
            for xb, yb in stream.batches(0):
                outputs.append(self.model(xb.to(self.device)).float())
                targets.append(yb.to(self.device))
        if not outputs:
            raise HoningError("the validation data has no rows", "check the data and its split")
        return torch.cat(outputs), torch.cat(targets)

    # ------------------------------------------------------------------ helpers

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _sync_gradients(self, sync: bool) -> contextlib.AbstractContextManager:
        """DDP and FSDP average the gradients in every backward; skip that for batches that only accumulate."""
        if self._unsharded is not None:
            self.model.set_requires_gradient_sync(sync)
            return contextlib.nullcontext()
        return contextlib.nullcontext() if sync or self._ddp is None else self._ddp.no_sync()

    def _ddp_device_ids(self) -> list[int] | None:
        if self.device.type != "cuda":
            return None
        return [torch.cuda.current_device() if self.device.index is None else self.device.index]

    def _build_schedule(self, steps_per_epoch: int) -> None:
        es = self.cfg.early_stopping
        mode = monitor_mode(self.monitor, es.mode if es else "auto")
        self.steps_per_epoch = steps_per_epoch
        self.schedule = make_schedule(self.optimizer, self.cfg.schedule, steps_per_epoch, self.cfg.epochs, mode)

    def _monitored_value(self, logs: dict) -> float | None:
        """The metric a plateau schedule follows: the monitored one (loss when there is no validation)."""
        if self.monitor == "val_loss" and "val_loss" not in logs:
            return logs["loss"]
        return logs.get(self.monitor)

    def _check_weights(self, epoch: int, batch: int) -> None:
        finite = torch.stack([fsdp.local(p.detach()).isfinite().all() for p in self.model.parameters()]).all()
        if self._unsharded is not None:  # each rank sees its own shard: all must agree
            finite = distributed.all_reduce_mean(float(finite)) == 1.0
        if not bool(finite):
            self._diverged("weights became nan or inf", epoch, batch)

    def _diverged(self, what: str, epoch: int, batch: int) -> None:
        if self._good_state is not None:
            self.model.load_state_dict(self._good_state)
        raise TrainingDiverged(f"{what} at epoch {epoch}, batch {batch}",
                               "lower train.optimizer.lr, or set train.clip.norm")

    def _call(self, hook: str, *args: object) -> None:
        main = distributed.is_main()
        for callback in self.callbacks:
            if main or not _main_only(callback):
                getattr(callback, hook)(self, *args)

    # ------------------------------------------------------------------ state (checkpoints)

    def state_dict(self) -> dict:
        """Everything a resume needs: tensors and plain Python values only (loadable with weights_only).

        The model's state is the plain module's (no DDP ``module.`` prefix); the RNG states are this rank's.
        With FSDP every rank must call it (the full state is gathered); rank 0 gets it, the others get
        empty model and optimizer states.
        """
        model, optimizer = ((self.model.state_dict(), self.optimizer.state_dict()) if self._unsharded is None
                            else fsdp.full_state(self.model, self.optimizer))
        return {
            "epoch": self.epoch,
            "model": model,
            "optimizer": optimizer,
            "steps_per_epoch": self.steps_per_epoch,
            "schedule": self.schedule.state_dict() if self.schedule else {},
            "scaler": self.scaler.state_dict() if self.scaler else {},
            "generator": self.generator.get_state(),
            "cpu_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "callbacks": {key: cb.state_dict() for key, cb in _keyed(self.callbacks)},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`; callbacks are matched by class (extra ones keep their state)."""
        if self.schedule is None and state["steps_per_epoch"]:
            self._build_schedule(int(state["steps_per_epoch"]))  # before the optimizer: it resets the lr
        if self._unsharded is None:
            self.model.load_state_dict(state["model"])
            if fsdp.keyed_by_name(state["optimizer"]):  # written by a sharded run
                fsdp.load_full_state(self.model, self.optimizer, state["model"], state["optimizer"])
            else:
                self.optimizer.load_state_dict(state["optimizer"])
        else:  # every rank read the whole file: each keeps its shard
            fsdp.load_full_state(self.model, self.optimizer, state["model"], state["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["cpu_rng"])
        if self.device.type == "cuda" and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.epoch = int(state["epoch"])
        saved = state["callbacks"]
        for key, callback in _keyed(self.callbacks):
            if key in saved:
                callback.load_state_dict(saved[key])


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Use ``threads`` CPU threads for torch inside the block (``train.threads``), then restore."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; asking for cuda without it is a recipe error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RecipeError("train.device: cuda is not available on this machine", "set train.device: auto or cpu")
    return torch.device(name)


def _with_default_callbacks(callbacks: Iterable[Callback], cfg: TrainConfig) -> list[Callback]:
    """The given callbacks plus a History and the recipe's EarlyStopping, sorted by ``order``."""
    callbacks = list(callbacks)
    if not any(isinstance(cb, History) for cb in callbacks):
        callbacks.insert(0, History())
    es = cfg.early_stopping
    if es is not None and not any(isinstance(cb, EarlyStopping) for cb in callbacks):
        callbacks.append(EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta))
    return sorted(callbacks, key=lambda cb: cb.order)


@torch.no_grad()
def _scale_gradients(model: nn.Module, factor: float) -> None:
    for param in model.parameters():
        if param.grad is not None:
            param.grad.mul_(factor)


def _marked_last(items: Iterable[Any]) -> Iterator[tuple[int, Any, bool]]:
    """``(number from 1, item, is_last)`` for each item (one item of look-ahead)."""
    iterator = iter(items)
    try:
        item = next(iterator)
    except StopIteration:
        return
    number = 1
    for following in iterator:
        yield number, item, False
        item, number = following, number + 1
    yield number, item, True


def _while_all_ranks_have(batches: Iterator[Any]) -> Iterator[Any]:
    """A rank's stream batches while every rank still has one (ranks must step together)."""
    for batch in batches:
        if distributed.all_reduce_mean(1.0) < 1.0:  # another rank ran out
            return
        yield batch
    distributed.all_reduce_mean(0.0)  # tell the others this rank ran out


def _main_only(callback: Callback) -> bool:
    return isinstance(callback, MAIN_ONLY_CALLBACKS) or getattr(callback, "main_only", False)


def _keyed(callbacks: list[Callback]) -> list[tuple[str, Callback]]:
    """Stable keys for callback states: the class name, with ``#2``, ``#3``… for repeats."""
    seen: dict[str, int] = {}
    keyed = []
    for callback in callbacks:
        name = type(callback).__name__
        seen[name] = seen.get(name, 0) + 1
        keyed.append((name if seen[name] == 1 else f"{name}#{seen[name]}", callback))
    return keyed
