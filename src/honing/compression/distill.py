"""Knowledge distillation (``compress.distill``): a honing neural student trained on a teacher's outputs.

The teacher is any fitted model on the bundle's preprocessed matrix: a honing neural estimator, a
scikit-learn model (random forest, …) or a LightGBM booster (:class:`~honing.bundle.predictor.LightGBMModel`).

- Classification (Hinton et al., 2015): the student's logits ``z`` learn from the teacher's probabilities
  softened by the temperature ``T`` and from the true labels::

      loss = alpha * T² * KL(teacher_T ‖ softmax(z / T)) + (1 - alpha) * CE(z, y)

  with ``teacher_T ∝ p_teacher ** (1 / T)`` (``p`` clipped away from 0, renormalised), which is
  ``softmax(logits_teacher / T)`` for a neural teacher and works for teachers that only give
  probabilities.  ``T²`` keeps the soft term's gradients on the scale of the hard term's.
- Regression: the student fits ``alpha * teacher + (1 - alpha) * y`` by mean squared error (standardised,
  as :class:`~honing.models.estimators.NeuralRegressor` always does).

The student is an ordinary fitted :class:`~honing.models.estimators.NeuralClassifier` /
:class:`~honing.models.estimators.NeuralRegressor` (``export_state``, bundles and ``predict_proba`` work
unchanged).  With ``validation`` it stops early on the validation split (the distillation loss there,
unless ``train`` says otherwise); without it, it trains for ``epochs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data
from torch import Tensor, nn

from honing.bundle.manifest import SUPERVISED_TASKS
from honing.errors import CompressionError
from honing.models.estimators import HEALTH_GRAD_EVERY, NeuralClassifier, NeuralRegressor
from honing.models.nets import build_net
from honing.recipe import TrainConfig
from honing.training.health_stats import HealthStats
from honing.training.trainer import Trainer

#: Teacher probabilities are clipped to at least this before ``p ** (1 / T)`` (no log of 0).
PROBA_FLOOR = 1e-6


def soft_targets(proba: np.ndarray, temperature: float) -> np.ndarray:
    """The teacher's probabilities softened by ``temperature``: ``p ** (1 / T)`` renormalised per row
    (``p`` clipped to at least :data:`PROBA_FLOOR`), as float32."""
    p = np.clip(np.asarray(proba, dtype=np.float64), PROBA_FLOOR, 1.0)
    logits = np.log(p / p.sum(axis=1, keepdims=True)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    soft = np.exp(logits)
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


def distillation_loss(logits: Tensor, soft: Tensor, hard: Tensor, temperature: float, alpha: float) -> Tensor:
    """``alpha * T² * KL(soft ‖ softmax(logits / T)) + (1 - alpha) * CE(logits, hard)``, averaged over
    the rows; ``soft`` are the teacher's softened probabilities, ``hard`` the true class codes."""
    student = F.log_softmax(logits / temperature, dim=1)
    kl = F.kl_div(student, soft, reduction="batchmean")
    return alpha * temperature**2 * kl + (1 - alpha) * F.cross_entropy(logits, hard)


class DistillationLoss(nn.Module):
    """:func:`distillation_loss` on the trainer's packed targets: the K soft columns, then the class code."""

    def __init__(self, temperature: float, alpha: float):
        super().__init__()
        self.temperature, self.alpha = temperature, alpha

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        soft, hard = targets[:, :-1], targets[:, -1].long()
        return distillation_loss(logits, soft, hard, self.temperature, self.alpha)


def _accuracy(logits: Tensor, targets: Tensor) -> float:
    """Validation accuracy against the packed targets' class codes (logged as val_accuracy)."""
    return (logits.argmax(dim=1) == targets[:, -1].long()).float().mean().item()


def distill(teacher: Any, X_train: np.ndarray, y_train: np.ndarray, *, task: str, student: Mapping[str, Any],
            temperature: float = 2.0, alpha: float = 0.5, epochs: int = 30, validation: tuple | None = None,
            train: dict | TrainConfig | None = None, seed: int = 0) -> NeuralClassifier | NeuralRegressor:
    """A neural student (``student``: ``{type: mlp, params: {...}}``) trained to imitate ``teacher`` on
    the preprocessed matrix ``X_train`` (classification: ``y_train`` holds the class codes, in the order
    of ``teacher.predict_proba``'s columns).

    ``validation=(X_val, y_val)`` enables early stopping; ``train`` is a recipe ``train:`` section, whole
    (a :class:`~honing.recipe.TrainConfig`) or partial (a dict), for the student (optimizer, batch size, …;
    ``epochs`` is this function's); ``seed`` seeds the student's initialisation and batch order.
    """
    spec = _check(student, temperature, alpha, epochs, task)
    if hasattr(train, "model_dump"):  # a TrainConfig (the recipe's train: section)
        train = train.model_dump(mode="json", exclude={"device"})
    settings = {**(train or {}), "epochs": int(epochs)}
    if validation is None:
        settings["early_stopping"] = None
    cls = NeuralClassifier if task == "classification" else NeuralRegressor
    est = cls(net=spec["type"], net_params=dict(spec.get("params") or {}), epochs=int(epochs),
              early_stopping=validation is not None, random_state=seed, train=settings)
    if task == "regression":
        return _distill_regressor(est, teacher, X_train, y_train, alpha, validation)
    return _distill_classifier(est, teacher, X_train, y_train, temperature, alpha, validation)


def _check(student: Mapping[str, Any], temperature: float, alpha: float, epochs: int, task: str) -> dict:
    if task not in SUPERVISED_TASKS:
        raise CompressionError(f"distillation applies to classification and regression, not {task}",
                               "remove compress.distill")
    if not isinstance(student, Mapping) or not student.get("type"):
        raise CompressionError("compress.distill.student needs a type", "e.g. student: {type: mlp, params: {}}")
    if not temperature > 0:
        raise CompressionError(f"compress.distill.temperature must be positive, not {temperature}",
                               "use e.g. 2 (higher: softer teacher probabilities)")
    if not 0 <= alpha <= 1:
        raise CompressionError(f"compress.distill.alpha must lie in [0, 1], not {alpha}",
                               "0 = true labels only, 1 = teacher only")
    if int(epochs) < 1:
        raise CompressionError(f"compress.distill.epochs must be at least 1, not {epochs}", "use e.g. 30")
    return dict(student)


def _distill_regressor(est: NeuralRegressor, teacher: Any, X: np.ndarray, y: np.ndarray, alpha: float,
                       validation: tuple | None) -> NeuralRegressor:
    """Fit the student to the blend of the teacher's predictions and the true target."""
    if not hasattr(teacher, "predict"):
        raise CompressionError(f"a {type(teacher).__name__} cannot be a teacher: it has no predict",
                               "distil a fitted model")
    blend = alpha * np.asarray(teacher.predict(X), dtype=np.float64).reshape(-1)
    blend += (1 - alpha) * np.asarray(y, dtype=np.float64).reshape(-1)
    return est.fit(X, blend, eval_set=validation)


def _distill_classifier(est: NeuralClassifier, teacher: Any, X: np.ndarray, y: np.ndarray, temperature: float,
                        alpha: float, validation: tuple | None) -> NeuralClassifier:
    """Train the student on the packed targets (teacher's soft labels + class code) with honing's trainer."""
    if not hasattr(teacher, "predict_proba"):
        raise CompressionError(f"a {type(teacher).__name__} cannot teach a classifier: it has no predict_proba",
                               "distil a fitted classifier")
    X = validate_data(est, X, dtype=np.float32)  # sets n_features_in_ (and feature names, if any)
    proba = np.asarray(teacher.predict_proba(X))
    est.label_encoder_ = LabelEncoder().fit(_classes(teacher, proba.shape[1]))
    est.classes_ = est.label_encoder_.classes_
    codes = _codes(est, y)
    targets = _packed(soft_targets(proba, temperature), codes)
    val = None
    if validation is not None:
        X_val = np.asarray(validation[0], dtype=np.float32)
        val = (X_val, _packed(soft_targets(teacher.predict_proba(X_val), temperature), _codes(est, validation[1])))
    _train(est, X, targets, val, DistillationLoss(temperature, alpha), len(est.classes_))
    est.baseline_loss_ = est._baseline_loss(codes)
    return est


def _classes(teacher: Any, n_columns: int) -> np.ndarray:
    """The teacher's classes in its probability columns' order (codes 0..K-1 unless it says otherwise)."""
    if n_columns < 2:
        raise CompressionError("the teacher predicts a single class", "distillation needs at least two classes")
    classes = getattr(teacher, "classes_", None)
    if classes is not None and len(classes) == n_columns and np.all(np.asarray(classes)[:-1] < classes[1:]):
        return np.asarray(classes)
    return np.arange(n_columns)


def _codes(est: NeuralClassifier, y: Any) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    unknown = np.setdiff1d(y, est.classes_)
    if len(unknown):
        raise CompressionError(f"labels {unknown[:5].tolist()} are not among the teacher's classes "
                               f"{est.classes_.tolist()}", "pass the class codes the teacher was trained on")
    return est.label_encoder_.transform(y)


def _packed(soft: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """One float32 target matrix: the soft labels, then the class code as the last column."""
    return np.column_stack([soft, codes]).astype(np.float32)


def _train(est: NeuralClassifier, X: np.ndarray, targets: np.ndarray, validation: tuple | None,
           loss_fn: nn.Module, n_outputs: int) -> None:
    """What ``NeuralClassifier.fit`` does after encoding the labels, with the distillation loss: build the
    net from ``net``/``net_params`` and train it with the same seeds, then set the fitted attributes."""
    seed = int(check_random_state(est.random_state).randint(0, 2**31 - 1))
    est.net_ = est.net
    shape = est.input_shape_ = est._input_shape(X)
    est.net_params_ = est._net_params(X, shape)
    Xt, yt = est._tensor(X, shape), torch.as_tensor(targets)
    Xv = yv = None
    if validation is not None:
        Xv, yv = est._tensor(validation[0], shape), torch.as_tensor(validation[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        est.module_ = build_net(est.net_, shape, n_outputs, est.net_params_)
        health = HealthStats(grad_every=HEALTH_GRAD_EVERY)
        trainer = Trainer(est.module_, loss_fn, est.train_config(), callbacks=[health],
                          metrics={"accuracy": _accuracy}, device=est.device, seed=seed)
        est.history_ = trainer.fit(Xt, yt, Xv, yv).rows
    est.module_.eval()
    est.health_ = health.stats
