"""The vae network and estimator: the ELBO against torch.distributions, training improves it, samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.distributions import Bernoulli, Normal, kl_divergence

from honing.errors import HoningError
from honing.generative_flow import _fit
from honing.models.vae import VAEModel, save_grid, vae_loss, vae_parts
from honing.recipe import load_recipe


def test_the_elbo_terms_match_torch_distributions():
    torch.manual_seed(0)
    x = torch.rand(5, 6)
    logits, mu, logvar = torch.randn(5, 6), torch.randn(5, 3), torch.randn(5, 3)
    rec, kl = vae_parts(torch.cat([logits, mu, logvar], 1), x)
    expected_rec = -Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(1)  # continuous x in [0, 1]
    expected_kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(rec, expected_rec, atol=1e-5)
    assert torch.allclose(kl, expected_kl, atol=1e-5)
    assert float(vae_loss(torch.cat([logits, mu, logvar], 1), x)) == pytest.approx(float((rec + kl).mean()), rel=1e-6)


def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float32)


def test_training_raises_the_held_out_elbo_above_the_untrained_one():
    X = _digits()
    train, held = X[:1200], X[1200:1500]
    torch.manual_seed(0)
    model = VAEModel((8, 8), 16.0, {"latent": 4, "hidden": 64})
    before = model.evaluate(held)["elbo"]
    recipe = load_recipe({"data": {"source": "builtin:digits", "task": "generation"},
                          "train": {"epochs": 15, "batch_size": 64, "device": "cpu",
                                    "optimizer": {"lr": 3e-3}}})
    x, v = model.pixels(train), model.pixels(held)
    model.history_, _ = _fit(model.module_, vae_loss, recipe, (x, x), (v, v), _silent(), finetune=False)
    after = model.evaluate(held)
    assert after["elbo"] > before + 10  # nats per image
    assert after["elbo"] == pytest.approx(-(after["reconstruction"] + after["kl"]), rel=1e-6)
    losses = [row["val_loss"] for row in model.history_]
    assert losses[-1] < losses[0]
    # the per-row ELBO that predict gives averages to the reported one (same seed)
    assert model.predict(held).mean() == pytest.approx(after["elbo"], rel=1e-5)


def _silent():
    from honing.progress import SILENT

    return SILENT


def test_samples_are_images_in_the_unit_range_and_seeded(tmp_path):
    model = VAEModel((8, 8), 16.0)
    images = model.sample(16, seed=3)
    assert images.shape == (16, 8, 8)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert np.array_equal(images, model.sample(16, seed=3))
    assert not np.array_equal(images, model.sample(16, seed=4))
    path = save_grid(images, tmp_path / "grid.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > 50
    with pytest.raises(HoningError, match="PNG"):
        save_grid(images, tmp_path / "grid.jpg")
    with pytest.raises(HoningError, match="--samples must be >= 1"):
        model.sample(0)


def test_pixels_are_scaled_and_checked():
    model = VAEModel((2, 2), 255.0)
    assert model.pixels([[0, 255, 510, -3]]).tolist() == [[0.0, 1.0, 1.0, 0.0]]
    with pytest.raises(HoningError, match="expected rows of 4 pixels"):
        model.pixels([[1, 2, 3]])


def test_export_and_import_give_the_same_model():
    model = VAEModel((8, 8), 16.0, {"latent": 2, "hidden": 16})
    tensors, meta = model.export_state()
    again = VAEModel.import_state(tensors, meta)
    assert np.array_equal(again.sample(4, seed=1), model.sample(4, seed=1))
    assert again.shape == (8, 8) and again.scale == 16.0
