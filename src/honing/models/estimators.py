"""Neural networks as scikit-learn estimators: :class:`NeuralClassifier` and :class:`NeuralRegressor`.

They store their parameters only (scikit-learn's contract), build the network from
:mod:`honing.models.nets` in ``fit`` and train it with honing's own loop
(:class:`honing.training.trainer.Trainer`), so they work in pipelines, ``cross_validate``,
``GridSearchCV`` and permutation importance like any scikit-learn model.

Training settings are flat constructor parameters (``lr``, ``epochs``, …) so that a grid search can
vary them; :meth:`train_config` turns them into the recipe's ``train:`` section, and
:func:`from_recipe` does the reverse for ``model.type: mlp`` & co. in a recipe.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from torch import nn

from honing.errors import ModelError
from honing.models import finetune
from honing.models.finetune import source_net
from honing.models.nets import build_net
from honing.models.pretrained import TEXT_NET, run_batched
from honing.progress import Progress
from honing.recipe import TrainConfig
from honing.training.batching import inference_rows
from honing.training.callbacks import ProgressBar
from honing.training.checkpoint import Checkpoint, load_checkpoint
from honing.training.diagnostics import Finding, diagnose
from honing.training.health_stats import HealthStats
from honing.training.trainer import Trainer, resolve_device

SEQUENCE_NETS = ("rnn", "lstm", "gru", "transformer")
#: Gradient statistics for the health diagnostics are taken on every k-th batch (cheap enough to be on).
HEALTH_GRAD_EVERY = 5
#: Storage types of ``weights_dtype_`` (set by ``honing.compression.quantize.cast_weights``).
WEIGHT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class _NeuralBase(BaseEstimator):
    """Parameters and the shared fit/predict machinery of the neural estimators."""

    def __init__(self, net: str = "mlp", net_params: dict | None = None, epochs: int = 100,
                 batch_size: int = 256, optimizer: str = "adamw", lr: float = 1e-3,
                 weight_decay: float = 1e-4, schedule: str = "none", init: str = "default",
                 l1: float = 0.0, clip_norm: float | None = None, label_smoothing: float = 0.0,
                 class_weight: str | dict | None = None,
                 accumulate: int = 1, precision: str = "fp32", gradient_checkpointing: bool = False,
                 early_stopping: bool = True,
                 patience: int = 10, validation_fraction: float = 0.1, device: str = "cpu",
                 random_state: int | None = None, checkpoint: str | None = None, train: dict | None = None,
                 augment: list | None = None, pretrained: str | None = None, finetune: dict | None = None):
        self.net = net
        self.net_params = net_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.init = init
        self.l1 = l1
        self.clip_norm = clip_norm
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight  # classifiers: "balanced" or {class: weight} weighs the cross-entropy
        self.accumulate = accumulate
        self.precision = precision
        self.gradient_checkpointing = gradient_checkpointing
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.checkpoint = checkpoint
        self.train = train
        self.augment = augment
        self.pretrained = pretrained
        self.finetune = finetune

    # ------------------------------------------------------------------ configuration

    def train_config(self) -> TrainConfig:
        """The recipe ``train:`` section these parameters stand for: the flat parameters, with every
        key of ``train`` (a whole or partial ``train:`` section, e.g. from a recipe) on top."""
        stopping = {"monitor": "val_loss", "patience": self.patience} if self.early_stopping else None
        flat = {
            "epochs": self.epochs, "batch_size": self.batch_size,
            "optimizer": {"name": self.optimizer, "lr": self.lr, "weight_decay": self.weight_decay},
            "schedule": {"name": self.schedule}, "early_stopping": stopping, "init": self.init,
            "l1": self.l1, "clip": {"norm": self.clip_norm}, "label_smoothing": self.label_smoothing,
            "accumulate": self.accumulate, "precision": self.precision, "device": self.device,
            "gradient_checkpointing": self.gradient_checkpointing,
        }
        return TrainConfig.model_validate(_deep_merge(flat, self.train or {}))

    def _input_shape(self, X: np.ndarray) -> tuple[int, ...]:
        params = self.net_params or {}
        features = X.shape[1]
        if self.pretrained:
            shape = self.source_shape_ or (features,)
            if math.prod(shape) != features:
                raise ModelError(f"model.pretrained: {self.pretrained} takes inputs of shape {list(shape)}, "
                                 f"but there are {features} features", "prepare the data as for the pretrained model")
            return shape
        if "input_shape" in params:
            shape = tuple(int(n) for n in params["input_shape"])
            if math.prod(shape) != features:
                raise ModelError(f"model.params.input_shape: {list(shape)} holds {math.prod(shape)} values, "
                                 f"but there are {features} features", "make the shape match the feature columns")
            return shape
        if self.net == "cnn":
            side = math.isqrt(features)
            if side * side != features:
                raise ModelError(f"model.type: cnn needs images, and {features} features are not a square image",
                                 "set model.params.input_shape: [C, H, W] (pixel columns only), or use mlp")
            return (1, side, side)
        return (features,)

    def _net_params(self, X: np.ndarray, shape: tuple[int, ...], vocab_size: int | None = None) -> dict[str, Any]:
        """``net_params`` completed from the data: a sequence net on token ids gets its vocab_size
        (``vocab_size``, the tokenizer's, or else one past the largest id in ``X``)."""
        params = {k: v for k, v in (self.net_params or {}).items() if k != "input_shape"}
        if self.pretrained:
            params = {}
        if self._tokens(shape):
            if X.size and (X.min() < 0 or not np.array_equal(X, np.round(X))):
                raise ModelError(f"model.type: {self.net} reads token ids, and these features are not",
                                 "set data.text: tokens for a text column (and drop the other columns), "
                                 "or model.params.input_shape: [T, F] for float sequences")
            if not params.get("vocab_size") and self.net_ in SEQUENCE_NETS:
                params["vocab_size"] = vocab_size or max(int(X.max(initial=0)) + 1, 2)
        return params

    def _tokens(self, shape: tuple[int, ...]) -> bool:
        """Sequence nets read token ids (N, T) unless given float sequences by input_shape (T, F)."""
        return self.net_ in (*SEQUENCE_NETS, TEXT_NET) and len(shape) == 1

    def _tensor(self, X: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        if not X.flags.writeable:  # torch cannot wrap read-only memory (e.g. a memory-mapped file)
            X = X.copy()
        if self._tokens(shape):
            ids = torch.as_tensor(X, dtype=torch.long)
            vocab = getattr(self, "net_params_", {}).get("vocab_size")
            return torch.where(ids < vocab, ids, 1) if vocab else ids  # ids past the vocabulary: unknown (1)
        return torch.as_tensor(X, dtype=torch.float32).reshape(len(X), *shape)

    # ------------------------------------------------------------------ training

    def _fit(self, X: np.ndarray, y: np.ndarray, n_outputs: int, loss_fn: nn.Module,
             eval_set: tuple | None, stratify: np.ndarray | None, progress: Progress | None,
             callbacks: list | None) -> _NeuralBase:
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        for stale in ("weights_dtype_", "embedded_"):  # what the last fit left: its weights dtype, its embeddings
            self.__dict__.pop(stale, None)
        self.net_, self.source_shape_ = source_net(self.pretrained) if self.pretrained else (self.net, None)
        shape = self._input_shape(X)
        params = self.net_params_ = self._net_params(X, shape)
        cfg = self.train_config()
        X_val = y_val = None
        if eval_set is not None:
            X_val, y_val = eval_set
        elif cfg.early_stopping is not None and self.validation_fraction > 0:
            X, y, X_val, y_val = _holdout(X, y, self.validation_fraction, seed, stratify)
            if X_val is None:  # too few rows for a holdout: train on all, stop on the training loss
                cfg = cfg.model_copy(update={"early_stopping": None})
        Xt, yt = self._tensor(X, shape), self._target_tensor(y)
        Xv = self._tensor(X_val, shape) if X_val is not None else None
        yv = self._target_tensor(y_val) if y_val is not None else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            trained, plan = self._start(shape, n_outputs, cfg, params)
            if plan is not None and plan.cfg.mode == "features":  # embed once; the head trains on the cache
                device = resolve_device(self.device)
                Xt = finetune.head_data(plan, Xt, device)
                self.embedded_ = (finetune.rows_digest(X), Xt)  # the base model's linear probe reuses them
                Xv = finetune.head_data(plan, Xv, device) if Xv is not None else None
            self._train(trained, loss_fn, cfg, seed, shape, n_outputs, (Xt, yt, Xv, yv), progress,
                        [*(plan.callbacks if plan else []), *(callbacks or [])],
                        params=plan.groups if plan else None, order=self._order(Xt, cfg))
            if plan is not None:
                finetune.finish(plan)
        self.baseline_loss_ = self._baseline_loss(y)
        return self

    def _start(self, shape: tuple[int, ...], n_outputs: int, cfg: TrainConfig, params: dict[str, Any]
               ) -> tuple[nn.Module, Any]:
        """Set ``module_`` to the network to train; return what of it trains and the fine-tuning plan of
        ``pretrained`` (:func:`honing.models.finetune.prepare`; None from random weights)."""
        if not self.pretrained:
            self.module_ = build_net(self.net, shape, n_outputs, params)
            return self.module_, None
        plan = finetune.prepare(self.pretrained, self.finetune, shape, n_outputs, cfg)
        self.module_ = plan.module
        self.net_, self.net_params_ = plan.start.net, plan.start.net_params
        return plan.trainer_module(), plan

    def _train(self, trained: nn.Module, loss_fn: nn.Module, cfg: TrainConfig, seed: int, shape: tuple[int, ...],
               n_outputs: int, data: tuple, progress: Progress | None, callbacks: list, params: Any = None,
               order: Any = None) -> None:
        """Train ``trained`` (``module_`` or the part of it that trains) on ``data`` (tensors or batch
        streams, as ``Trainer.fit`` takes them) with the health statistics, the progress bar, the
        given callbacks and ``checkpoint`` (saved every epoch; an earlier save is continued); then
        set the fitted attributes every fit sets."""
        self.module_.checkpointing = cfg.gradient_checkpointing
        health = HealthStats(grad_every=HEALTH_GRAD_EVERY)
        callbacks = [health, ProgressBar(progress), *callbacks]
        if self.checkpoint is not None:
            callbacks.append(Checkpoint(self.checkpoint))
        trainer = Trainer(trained, loss_fn, cfg, callbacks=callbacks, metrics=self._metrics(), device=self.device,
                          seed=seed, params=params, augment=self._augmenter(shape, n_outputs, seed), order=order)
        if self.checkpoint is not None and Path(self.checkpoint).is_file():
            load_checkpoint(trainer, self.checkpoint)
        self.history_ = trainer.fit(*data).rows
        self.module_.eval()
        self.input_shape_ = shape
        self.health_ = health.stats

    def _fit_stream(self, train: Any, validation: Any, n_features: int, n_outputs: int, loss_fn: nn.Module,
                    baseline_loss: float, progress: Progress | None, callbacks: list | None,
                    vocab_size: int | None = None) -> _NeuralBase:
        """``_fit`` for batch streams (:mod:`honing.data.stream_batches`): the same fitted attributes,
        from batches of ``n_features`` float inputs (token ids, of a tokenizer with ``vocab_size``
        ids, for sequence nets); a pretrained network fine-tunes as in ``_fit``, except in features
        mode (its embeddings of every training row are held in memory); no length buckets."""
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        if self._features_mode():
            raise ModelError("model.finetune.mode: features holds the embeddings of every training row in memory, "
                             "which a stream does not", "use finetune.mode: frozen (the same head, on embeddings "
                             "made batch by batch)")
        self.__dict__.pop("weights_dtype_", None)
        self.net_, self.source_shape_ = source_net(self.pretrained) if self.pretrained else (self.net, None)
        empty = np.zeros((0, n_features), dtype=np.float32)
        shape = self._input_shape(empty)
        if self._tokens(shape) and not vocab_size and not self.pretrained:
            raise ModelError(f"model.type: {self.net} reads token ids, and the data has no text column as tokens",
                             "set data.text: tokens (and data.types: {COLUMN: text} for a column read as "
                             "another kind), or use model.type: mlp")
        params = self.net_params_ = self._net_params(empty, shape, vocab_size)
        cfg = self.train_config()
        if validation is None:  # no validation split to stop on
            cfg = cfg.model_copy(update={"early_stopping": None})
        if len(shape) > 1 or self._tokens(shape):
            train = _Converted(train, self, shape)
            validation = None if validation is None else _Converted(validation, self, shape)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            trained, plan = self._start(shape, n_outputs, cfg, params)
            self._train(trained, loss_fn, cfg, seed, shape, n_outputs, (train, None, validation, None), progress,
                        [*(plan.callbacks if plan else []), *(callbacks or [])], params=plan.groups if plan else None)
            if plan is not None:
                finetune.finish(plan)
        self.n_features_in_ = n_features
        self.baseline_loss_ = baseline_loss
        return self

    def _pad_id(self) -> int:
        """The padding id of token inputs (a pretrained text model's own; else 0)."""
        return int(getattr(self.module_, "pad_id", 0))

    def _augmenter(self, shape: tuple[int, ...], n_outputs: int, seed: int) -> Any:
        """The training-batch augmentation of ``augment`` (data.augment), or None."""
        if not self.augment:
            return None
        from honing.data.augment_batch import batch_augmenter

        if self._features_mode():
            raise ModelError("data.augment: model.finetune.mode: features trains on cached embeddings, "
                             "which cannot be augmented", "use finetune.mode: frozen, or drop data.augment")
        modality = "tokens" if self._tokens(shape) else "image" if len(shape) == 3 else "tabular"
        classes = n_outputs if isinstance(self, ClassifierMixin) else None
        return batch_augmenter(self.augment, modality=modality, n_classes=classes, seed=seed)

    def _features_mode(self) -> bool:
        return bool(self.pretrained) and (self.finetune or {}).get("mode") == "features"

    def _order(self, X: torch.Tensor, cfg: TrainConfig) -> Any:
        """Length buckets for token inputs when train.bucket_by_length is on (else a plain shuffle)."""
        if not cfg.bucket_by_length or X.dtype != torch.long:
            return None
        from honing.training.batching import length_buckets, token_lengths

        return length_buckets(token_lengths(X, self._pad_id()), cfg.batch_size)

    def diagnose(self) -> list[Finding]:
        """Training-health findings (overfitting, divergence, vanishing gradients, …) of the last fit."""
        check_is_fitted(self, "module_")
        task = "classification" if isinstance(self, ClassifierMixin) else "regression"
        return diagnose(self.history_, self.health_, self.baseline_loss_, task)

    def _outputs(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        Xt = self._tensor(X, self.input_shape_)
        device = next(self.module_.parameters()).device  # where it was trained (CPU or CUDA)
        batch = finetune.TEXT_BATCH if self.net_ == TEXT_NET else inference_rows(X.shape[1], 4096)
        return run_batched(self.module_, Xt, batch, device)

    def export_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The fitted network as tensors plus a JSON description (for the bundle's safetensors).

        With the optional fitted attribute ``weights_dtype_`` (``float16`` or ``bfloat16``) the floating
        tensors are stored in that type (half the size) and ``meta["weights_dtype"]`` says so."""
        check_is_fitted(self, "module_")
        meta = {"estimator": type(self).__name__, "params": self.get_params(), "net": self.net_,
                "net_params": self.net_params_,
                "input_shape": list(self.input_shape_), "n_features_in": int(self.n_features_in_),
                **self._fitted_meta()}
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        dtype = getattr(self, "weights_dtype_", None)
        if dtype is not None:
            tensors = _cast_floats(tensors, WEIGHT_DTYPES[dtype])
            meta["weights_dtype"] = dtype
        return tensors, meta

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class NeuralClassifier(ClassifierMixin, _NeuralBase):
    """A neural network classifier (``net``: mlp, cnn, rnn, lstm, gru, transformer)."""

    def fit(self, X: Any, y: Any, eval_set: tuple | None = None, progress: Progress | None = None,
            callbacks: list | None = None) -> NeuralClassifier:
        """Train on ``X, y``; ``eval_set=(X_val, y_val)`` for early stopping (else a holdout of
        ``validation_fraction``); ``progress`` shows a live bar with the losses; ``callbacks`` are
        extra :class:`~honing.training.callbacks.Callback` objects for the training loop.
        ``class_weight`` (``"balanced"`` — what ``data.balance: class_weight`` sets — or a dict)
        weighs each class's cross-entropy, training and validation loss alike."""
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.label_encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.label_encoder_.classes_
        codes = self.label_encoder_.transform(y)
        if eval_set is not None:
            eval_set = (np.asarray(eval_set[0], dtype=np.float32), self.label_encoder_.transform(eval_set[1]))
        weights = None
        if self.class_weight is not None:
            weights = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        return self._fit(X, codes, max(len(self.classes_), 2), self._loss(weights), eval_set, codes, progress,
                         callbacks)

    def fit_stream(self, train: Any, validation: Any = None, *, n_features: int, class_counts: Any,
                   progress: Progress | None = None, callbacks: list | None = None,
                   vocab_size: int | None = None) -> NeuralClassifier:
        """Train on batch streams of ``(inputs, class codes 0..K-1)`` (data larger than memory);
        ``class_counts`` are the training rows per class (every class has some), from which
        ``class_weight: balanced`` weighs each class by rows / (classes × its rows); ``vocab_size``:
        the tokenizer's, when the inputs are token ids."""
        counts = np.asarray(class_counts, dtype=np.float64)
        self.classes_ = np.arange(len(counts))
        self.label_encoder_ = LabelEncoder().fit(self.classes_)
        p = counts[counts > 0] / counts.sum()
        if self.class_weight not in (None, "balanced"):
            raise ModelError("class_weight: a streamed classifier takes 'balanced' (its classes are codes 0..K-1)",
                             "use data.balance: class_weight")
        weights = counts.sum() / (len(counts) * counts) if self.class_weight == "balanced" else None
        return self._fit_stream(train, validation, n_features, max(len(counts), 2), self._loss(weights),
                                float(-(p * np.log(p)).sum()), progress, callbacks, vocab_size)

    def _loss(self, class_weights: np.ndarray | None) -> nn.Module:
        weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=self.label_smoothing)

    def _target_tensor(self, y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(y, dtype=torch.long)

    def _fitted_meta(self) -> dict[str, Any]:
        return {"classes": self.classes_.tolist()}

    def _metrics(self) -> dict[str, Any]:
        """Logged every epoch as val_accuracy (so early stopping may monitor it)."""
        return {"accuracy": lambda out, y: (out.argmax(dim=1) == y).float().mean().item()}

    def _baseline_loss(self, codes: np.ndarray) -> float:
        """Cross-entropy of always predicting the class frequencies (the dummy baseline)."""
        p = np.bincount(codes) / len(codes)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    def _restore(self, meta: dict[str, Any]) -> int:
        self.classes_ = np.asarray(meta["classes"])
        self.label_encoder_ = LabelEncoder().fit(self.classes_)
        return max(len(self.classes_), 2)

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = torch.softmax(self._outputs(X), dim=1).numpy().astype(np.float64)
        if len(self.classes_) == 1:  # a single class was seen: it is certain
            return np.ones((len(proba), 1))
        return proba

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]


class NeuralRegressor(RegressorMixin, _NeuralBase):
    """A neural network regressor; the target is standardised for training and restored after."""

    def fit(self, X: Any, y: Any, eval_set: tuple | None = None, progress: Progress | None = None,
            callbacks: list | None = None) -> NeuralRegressor:
        """Train on ``X, y`` (see :meth:`NeuralClassifier.fit`)."""
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        y = column_or_1d(y, warn=True).astype(np.float64)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std()) or 1.0
        scaled = ((y - self.y_mean_) / self.y_scale_).astype(np.float32)
        if eval_set is not None:
            eval_set = (np.asarray(eval_set[0], dtype=np.float32),
                        ((np.asarray(eval_set[1], dtype=np.float64) - self.y_mean_) / self.y_scale_).astype(np.float32))
        return self._fit(X, scaled, 1, nn.MSELoss(), eval_set, None, progress, callbacks)

    def fit_stream(self, train: Any, validation: Any = None, *, n_features: int, y_mean: float, y_std: float,
                   progress: Progress | None = None, callbacks: list | None = None,
                   vocab_size: int | None = None) -> NeuralRegressor:
        """Train on batch streams of ``(inputs, (target - y_mean) / y_scale)`` (data larger than memory),
        where ``y_scale`` is the training target's standard deviation ``y_std``, or 1 when it is 0;
        ``vocab_size``: the tokenizer's, when the inputs are token ids."""
        self.y_mean_, self.y_scale_ = float(y_mean), float(y_std) or 1.0
        return self._fit_stream(train, validation, n_features, 1, nn.MSELoss(), (y_std / self.y_scale_) ** 2,
                                progress, callbacks, vocab_size)

    def _target_tensor(self, y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)

    def _fitted_meta(self) -> dict[str, Any]:
        return {"y_mean": self.y_mean_, "y_scale": self.y_scale_}

    def _metrics(self) -> dict[str, Any]:
        return {}

    def _baseline_loss(self, scaled: np.ndarray) -> float:
        """Mean squared error of always predicting the mean (on the standardised target)."""
        return float(np.var(scaled))

    def _restore(self, meta: dict[str, Any]) -> int:
        self.y_mean_, self.y_scale_ = float(meta["y_mean"]), float(meta["y_scale"])
        return 1

    def predict(self, X: Any) -> np.ndarray:
        out = self._outputs(X).numpy().reshape(-1).astype(np.float64)
        return out * self.y_scale_ + self.y_mean_


class _Converted:
    """A batch stream whose flat float inputs become the network's: reshaped to its input shape
    (e.g. images), or token ids (int64, ids past the vocabulary unknown)."""

    def __init__(self, stream: Any, estimator: _NeuralBase, shape: tuple[int, ...]):
        self.stream, self.estimator, self.shape = stream, estimator, shape

    def __len__(self) -> int:
        return len(self.stream)

    def batches(self, epoch: int):
        return ((self.estimator._tensor(xb.numpy(), self.shape), yb) for xb, yb in self.stream.batches(epoch))


def _holdout(X: np.ndarray, y: np.ndarray, fraction: float, seed: int, stratify: np.ndarray | None):
    """Split off ``fraction`` of the rows for early stopping (stratified when possible)."""
    from sklearn.model_selection import train_test_split

    n_val = round(fraction * len(X))
    if n_val < 2 or len(X) - n_val < 2:
        return X, y, None, None
    if stratify is not None and (np.bincount(stratify).min() < 2 or n_val < len(np.unique(stratify))):
        stratify = None
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=n_val, random_state=seed, stratify=stratify)
    return X_tr, y_tr, X_val, y_val


def import_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> _NeuralBase:
    """The inverse of ``export_state``: a fitted estimator, ready to predict."""
    classes = {"NeuralClassifier": NeuralClassifier, "NeuralRegressor": NeuralRegressor}
    est = classes[meta["estimator"]](**meta["params"])
    n_outputs = est._restore(meta)
    est.input_shape_ = tuple(meta["input_shape"])
    est.n_features_in_ = int(meta["n_features_in"])
    est.net_params_ = dict(meta["net_params"])
    est.net_ = meta.get("net", est.net)
    dtype = meta.get("weights_dtype")
    if dtype is not None:  # stored in 16 bits (cast_weights), computed in float32
        if dtype not in WEIGHT_DTYPES:
            raise ModelError(f"unknown weights_dtype {dtype!r}", f"this honing version reads {sorted(WEIGHT_DTYPES)}")
        est.weights_dtype_ = dtype
        tensors = _cast_floats(tensors, torch.float32)
    est.module_ = build_net(est.net_, est.input_shape_, n_outputs, est.net_params_)
    est.module_.load_state_dict(tensors)
    est.module_.eval()
    return est


def _cast_floats(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``tensors`` with every floating one cast to ``dtype`` (integer buffers, e.g. counters, unchanged)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}


def from_recipe(net: str, task: str, params: dict, train: TrainConfig, seed: int,
                checkpoint: str | None = None, **options: Any) -> _NeuralBase:
    """The estimator for ``model.type: <net>`` with ``model.params`` and the recipe's whole ``train:``
    section; with ``checkpoint``, training saves there every epoch and resumes from it.  ``options``:
    ``augment`` (data.augment), ``pretrained`` and ``finetune`` (model.pretrained / model.finetune)."""
    cls = NeuralClassifier if task == "classification" else NeuralRegressor
    device = "cpu" if train.device == "auto" and not torch.cuda.is_available() else train.device
    return cls(net=net, net_params=dict(params), device=device, random_state=seed, checkpoint=checkpoint,
               train=train.model_dump(mode="json", exclude={"device"}), **options)


def _deep_merge(base: dict, top: dict) -> dict:
    """``base`` with ``top``'s values on top, merging nested sections key by key."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out
