"""The generative models a bundle can hold (``data.task: generation``), by the estimator name its
manifest records: the character language model and the image VAE."""

from __future__ import annotations

from typing import Any

import torch

from honing.models.language_model import CharLanguageModel
from honing.models.vae import VAEModel

ESTIMATORS = {CharLanguageModel.estimator: CharLanguageModel, VAEModel.estimator: VAEModel}


def import_model(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Any:
    """The generative estimator of a bundle's safetensors and manifest description."""
    cls = ESTIMATORS.get(meta.get("estimator"))
    if cls is None:
        raise ValueError(f"unknown generative estimator {meta.get('estimator')!r}")
    return cls.import_state(tensors, meta)
