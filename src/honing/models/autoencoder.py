"""A neural autoencoder as a scikit-learn transformer: dimensionality reduction and anomaly scores.

``NeuralAutoencoder`` learns to reconstruct its (standardised) input through a narrow latent layer,
trained by honing's loop. ``transform`` gives the latent codes (like PCA, but non-linear);
``score_samples`` gives the reconstruction error per row: the higher, the more unusual the row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from honing.models.nets import build_net
from honing.recipe import TrainConfig
from honing.training.trainer import Trainer


class NeuralAutoencoder(TransformerMixin, BaseEstimator):
    """Encoder ``hidden → latent`` and a mirrored decoder; mean squared reconstruction loss."""

    def __init__(self, latent: int = 8, hidden: tuple[int, ...] = (64,), activation: str = "relu",
                 epochs: int = 100, batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 0.0,
                 patience: int = 10, validation_fraction: float = 0.1, device: str = "cpu",
                 random_state: int | None = None):
        self.latent = latent
        self.hidden = hidden
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> NeuralAutoencoder:
        X = validate_data(self, X, dtype=np.float32)
        self.mean_, self.scale_ = X.mean(axis=0), X.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        Z = torch.as_tensor((X - self.mean_) / self.scale_, dtype=torch.float32)
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        n_val = int(self.validation_fraction * len(Z)) if len(Z) >= 20 else 0
        order = torch.randperm(len(Z), generator=torch.Generator().manual_seed(seed))
        train, val = Z[order[n_val:]], Z[order[:n_val]]
        stopping = {"monitor": "val_loss", "patience": self.patience} if n_val else None
        cfg = TrainConfig.model_validate({
            "epochs": self.epochs, "batch_size": self.batch_size, "early_stopping": stopping,
            "optimizer": {"name": "adamw", "lr": self.lr, "weight_decay": self.weight_decay}})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.module_ = build_net("autoencoder", (X.shape[1],), X.shape[1], {
                "latent": self.latent, "hidden": list(self.hidden), "activation": self.activation})
            trainer = Trainer(self.module_, nn.MSELoss(), cfg, device=self.device, seed=seed)
            self.history_ = trainer.fit(train, train, *((val, val) if n_val else ())).rows
        self.module_.double().eval()  # inference in float64: a row's result does not depend on its batch
        return self

    def _standardised(self, X: Any) -> torch.Tensor:
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return torch.as_tensor((X - self.mean_) / self.scale_, dtype=torch.float64)

    def transform(self, X: Any) -> np.ndarray:
        """The latent codes, shape (n, latent)."""
        with torch.no_grad():
            return self.module_.encode(self._standardised(X)).numpy()

    def score_samples(self, X: Any) -> np.ndarray:
        """Mean squared reconstruction error per row (on standardised features): an anomaly score."""
        Z = self._standardised(X)
        with torch.no_grad():
            return ((self.module_(Z) - Z) ** 2).mean(dim=1).numpy()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.array([f"latent{i}" for i in range(self.latent)], dtype=object)
