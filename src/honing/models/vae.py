"""A variational autoencoder on images (``model.type: vae``): pixels → q(z|x) = N(mu, diag(sigma²)) →
p(x|z) Bernoulli per pixel (pixels scaled to [0, 1]).

The network's forward returns ``[logits | mu | logvar]`` side by side (one tensor, as honing's
:class:`~honing.training.trainer.Trainer` expects) and :func:`vae_loss` turns that into the negative
ELBO per image: reconstruction cross-entropy (nats, summed over pixels) + KL(q(z|x) ‖ N(0, I)).
:class:`VAEModel` is the estimator: ELBO on held-out images, samples from the decoder on z ~ N(0, I),
a grid PNG of them, and its safetensors state (with a JSON description) for the bundle.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from honing.errors import HoningError, RecipeError

#: Defaults of ``model.params`` for vae.
DEFAULTS: dict[str, Any] = {"latent": 8, "hidden": 256}


class VAENet(nn.Module):
    """Pixels (B, D) in [0, 1] → ``[logits (D) | mu (latent) | logvar (latent)]`` (B, D + 2·latent)."""

    def __init__(self, pixels: int, latent: int = 8, hidden: int = 256):
        super().__init__()
        self.pixels, self.latent = pixels, latent
        self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.to_stats = nn.Linear(hidden, 2 * latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, pixels))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # the reparameterisation trick
        return torch.cat([self.decoder(z), mu, logvar], dim=1)


def vae_parts(outputs: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image reconstruction cross-entropy and KL divergence (nats), each of shape (B,)."""
    pixels = x.shape[1]
    logits, mu, logvar = outputs[:, :pixels], *outputs[:, pixels:].chunk(2, dim=1)
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
    return reconstruction, kl


def vae_loss(outputs: Tensor, x: Tensor) -> Tensor:
    """The negative ELBO, averaged over the batch's images."""
    reconstruction, kl = vae_parts(outputs, x)
    return (reconstruction + kl).mean()


class VAEModel:
    """The vae estimator: the network, the images' shape and the pixel scale (divided by to reach [0, 1])."""

    estimator = "VAEModel"

    def __init__(self, shape: tuple[int, int], scale: float, params: dict[str, Any] | None = None):
        unknown = sorted(set(params or {}) - set(DEFAULTS))
        if unknown:
            raise RecipeError(f"model.params: vae has no parameter '{unknown[0]}'", f"use {', '.join(DEFAULTS)}")
        self.params = {**DEFAULTS, **(params or {})}
        self.shape, self.scale = (int(shape[0]), int(shape[1])), float(scale)
        self.module_ = VAENet(self.shape[0] * self.shape[1], **self.params)
        self.history_: list[dict] | None = None

    def pixels(self, X: Any) -> Tensor:
        """Raw pixel rows → float tensor in [0, 1] (values outside are clipped)."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.shape[0] * self.shape[1]:
            raise HoningError(f"expected rows of {self.shape[0] * self.shape[1]} pixels, got shape {X.shape}",
                              "give the pixel columns the model was trained on")
        return torch.from_numpy(np.clip(np.nan_to_num(X / self.scale), 0.0, 1.0))

    @torch.no_grad()
    def elbo_rows(self, X: Any, seed: int = 0, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Per-image reconstruction and KL terms (one seeded sample of z per image)."""
        x = self.pixels(X)
        self.module_.eval()
        generator = torch.Generator().manual_seed(seed)
        recs, kls = [], []
        for i in range(0, len(x), batch_size):
            xb = x[i: i + batch_size]
            rec, kl = vae_parts(self.module_(xb, generator), xb)
            recs.append(rec)
            kls.append(kl)
        if not recs:
            return np.zeros(0), np.zeros(0)
        return torch.cat(recs).numpy(), torch.cat(kls).numpy()

    def evaluate(self, X: Any, seed: int = 0) -> dict[str, float]:
        """Mean ELBO (nats per image; higher is better), its two terms and bits per pixel."""
        rec, kl = self.elbo_rows(X, seed)
        elbo = float(-(rec + kl).mean())
        return {"elbo": elbo, "reconstruction": float(rec.mean()), "kl": float(kl.mean()),
                "bits_per_pixel": -elbo / (self.shape[0] * self.shape[1] * math.log(2)), "images": len(rec)}

    def predict(self, X: Any) -> np.ndarray:
        """Per-image ELBO (what a bundle's predict gives): low values are unlikely images."""
        rec, kl = self.elbo_rows(X)
        return -(rec + kl).astype(float)

    @torch.no_grad()
    def sample(self, n: int = 16, seed: int = 0) -> np.ndarray:
        """``n`` images (n, height, width) in [0, 1]: the decoder's pixel means for z ~ N(0, I)."""
        if n < 1:
            raise HoningError(f"--samples must be >= 1 (got {n})", "e.g. --samples 16")
        self.module_.eval()
        z = torch.randn(n, self.module_.latent, generator=torch.Generator().manual_seed(seed))
        return torch.sigmoid(self.module_.decoder(z)).reshape(n, *self.shape).numpy()

    def generate(self, samples: int = 16, seed: int = 0, out: str | Path | None = None, **_: Any) -> np.ndarray:
        """Sampled images; with ``out``, also a grid PNG written there."""
        images = self.sample(samples, seed)
        if out is not None:
            save_grid(images, out)
        return images

    def export_state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        return tensors, {"estimator": self.estimator, "params": dict(self.params), "shape": list(self.shape),
                         "scale": self.scale}

    @classmethod
    def import_state(cls, tensors: dict[str, Tensor], meta: dict[str, Any]) -> VAEModel:
        model = cls(tuple(meta["shape"]), float(meta["scale"]), meta["params"])
        model.module_.load_state_dict(tensors)
        model.module_.eval()
        return model


def save_grid(images: np.ndarray, out: str | Path, title: str | None = None) -> Path:
    """A square-ish grid PNG of (n, h, w) images in [0, 1] (black background, white ink)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise HoningError(f"-o {out}: the grid is written as PNG", "give a file name ending in .png")
    n = len(images)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.1 + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
