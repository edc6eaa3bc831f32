"""The recipe's batch augmentation: check_augment and batch_augmenter (mixup, tabular noise, images)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from honing.data.augment_batch import batch_augmenter, check_augment
from honing.errors import RecipeError


def _tabular(steps, n_classes=3, seed=0):
    return batch_augmenter(steps, modality="tabular", n_classes=n_classes, seed=seed)


def _data(n=64, f=5, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, f, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_import_is_light():
    code = "import sys, honing.data.augment_batch; print('torch' in sys.modules, 'kornia' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --- mixup --------------------------------------------------------------------------------------------


def _partner(x: np.ndarray, out_row: np.ndarray, i: int) -> tuple[int, float] | None:
    """A row j and lam in [0, 1] with out_row = lam * x[i] + (1 - lam) * x[j] (least squares), if any."""
    for j in range(len(x)):
        d = x[i] - x[j]
        lam = 1.0 if not d.any() else float(np.dot(out_row - x[j], d) / np.dot(d, d))
        if -1e-6 <= lam <= 1 + 1e-6 and np.allclose(lam * x[i] + (1 - lam) * x[j], out_row, atol=1e-5):
            return j, lam
    return None


def test_mixup_soft_targets_and_inputs_are_the_same_convex_combinations():
    x, y = _data()
    xa, ya = _tabular([{"name": "mixup", "alpha": 0.4}])(x, y)
    assert xa.shape == x.shape and ya.shape == (64, 3) and ya.dtype == torch.float32
    assert torch.allclose(ya.sum(dim=1), torch.ones(64)) and (ya >= 0).all()
    onehot = np.eye(3)[y.numpy()]
    mixed = 0
    for i in range(len(x)):
        found = _partner(x.numpy(), xa[i].numpy(), i)
        assert found is not None, i
        j, lam = found
        assert np.allclose(ya[i].numpy(), lam * onehot[i] + (1 - lam) * onehot[j], atol=1e-5), i
        mixed += j != i and 0.01 < lam < 0.99
    assert mixed > 32  # most rows are really mixed with another


def test_mixup_mixes_regression_targets_like_the_inputs():
    x, _ = _data(n=40)
    y = torch.randn(40, 1, generator=torch.Generator().manual_seed(3))
    xa, ya = batch_augmenter([{"name": "mixup", "alpha": 1.0}], modality="tabular", n_classes=None, seed=1)(x, y)
    assert ya.shape == (40, 1) and ya.dtype == torch.float32
    for i in range(len(x)):
        j, lam = _partner(x.numpy(), xa[i].numpy(), i)
        assert ya[i].item() == pytest.approx(lam * y[i].item() + (1 - lam) * y[j].item(), abs=1e-5)


def test_mixup_lambda_is_beta_distributed():
    n = 1000
    x = torch.eye(n)  # row i mixed with row j != i shows lam at column i
    xa, _ = _tabular([{"name": "mixup", "alpha": 1.0}], n_classes=2)(x, torch.zeros(n, dtype=torch.long))
    lam = xa.diagonal()[xa.diagonal() < 1].numpy()  # rows paired with themselves keep 1 there
    assert len(lam) > 0.99 * n - 5
    assert lam.mean() == pytest.approx(0.5, abs=0.03)  # Beta(1, 1): uniform, mean 1/2, variance 1/12
    assert lam.var() == pytest.approx(1 / 12, abs=0.01)
    small, _ = _tabular([{"name": "mixup", "alpha": 0.1}], n_classes=2)(x, torch.zeros(n, dtype=torch.long))
    d = small.diagonal().numpy()
    assert np.mean((d < 0.1) | (d > 0.9)) > 0.6  # small alpha: mostly near 0 or 1


def test_mixup_on_images_gives_soft_targets():
    x = torch.rand(8, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 4
    xa, ya = batch_augmenter([{"name": "mixup"}], modality="image", n_classes=4, seed=0)(x, y)
    assert xa.shape == x.shape and ya.shape == (8, 4)
    assert torch.allclose(ya.sum(dim=1), torch.ones(8))
    for i in range(8):
        j, lam = _partner(x.reshape(8, -1).numpy(), xa[i].reshape(-1).numpy(), i)
        assert np.allclose(ya[i].numpy(), lam * np.eye(4)[y[i]] + (1 - lam) * np.eye(4)[y[j]], atol=1e-5)


def test_soft_targets_are_accepted_by_cross_entropy():
    x, y = _data()
    _, ya = _tabular([{"name": "mixup"}])(x, y)
    loss = torch.nn.CrossEntropyLoss()(torch.randn(64, 3), ya)
    assert torch.isfinite(loss)


# --- tabular noise ------------------------------------------------------------------------------------


def test_noise_scale_is_std_times_each_columns_std():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 3, generator=g) * torch.tensor([1.0, 10.0, 0.1]) + torch.tensor([0.0, 5.0, -3.0])
    y = torch.zeros(20000, dtype=torch.long)
    xa, ya = _tabular([{"name": "gaussian_noise", "p": 1.0, "std": 0.2}], n_classes=2)(x, y)
    noise = (xa - x).numpy().astype(np.float64)
    expected = 0.2 * x.numpy().astype(np.float64).std(axis=0)
    assert noise.std(axis=0) == pytest.approx(expected, rel=0.03)
    assert (np.abs(noise.mean(axis=0)) < 0.05 * expected).all()
    assert ya is y  # no mixup: the targets are untouched


def test_noise_hits_about_p_of_the_rows_and_leaves_the_others_alone():
    x, y = _data(n=10000, f=4)
    xa, _ = _tabular([{"name": "gaussian_noise", "p": 0.3, "std": 0.5}])(x, y)
    changed = (xa != x).any(dim=1)
    assert changed.float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert (xa != x)[changed].all()  # a chosen row gets noise in every column
    assert torch.equal(xa[~changed], x[~changed])


@pytest.mark.parametrize("step", [{"name": "gaussian_noise", "p": 0.0, "std": 0.5},
                                  {"name": "gaussian_noise", "p": 1.0, "std": 0.0}])
def test_noise_with_p_or_std_zero_is_the_identity(step):
    x, y = _data()
    xa, ya = _tabular([step])(x, y)
    assert torch.equal(xa, x) and ya is y


def test_noise_keeps_missing_values_and_uses_the_others_for_the_scale():
    x = torch.tensor([[1.0, 2.0], [float("nan"), 4.0], [3.0, 8.0]])
    xa, _ = _tabular([{"name": "gaussian_noise", "p": 1.0, "std": 0.5}])(x, torch.zeros(3, dtype=torch.long))
    assert torch.isnan(xa[1, 0]) and torch.isnan(xa).sum() == 1
    assert (xa[[0, 2]] != x[[0, 2]]).all()


def test_steps_run_in_order_noise_then_mixup():
    x, y = _data(n=200)
    aug = _tabular([{"name": "mixup"}, {"name": "gaussian_noise", "p": 1.0, "std": 0.1}])
    assert aug.names == ["mixup", "gaussian_noise"]
    xa, ya = aug(x, y)
    assert xa.shape == x.shape
    assert ya.shape == (200, 3)  # mixup always runs, last


# --- images -------------------------------------------------------------------------------------------


def test_image_steps_go_through_kornia():
    x = torch.rand(4, 3, 8, 8)
    y = torch.arange(4)
    aug = batch_augmenter([{"name": "hflip", "p": 1.0}], modality="image", n_classes=4, seed=0)
    xa, ya = aug(x, y)
    assert torch.equal(xa, torch.flip(x, dims=[-1])) and ya is y


def test_image_noise_is_pixel_noise():
    x = torch.zeros(8, 1, 64, 64)
    aug = batch_augmenter([{"name": "gaussian_noise", "p": 1.0, "std": 0.2}], modality="image", n_classes=None,
                          seed=0)
    xa, _ = aug(x, torch.zeros(8, 1))
    assert xa.std().item() == pytest.approx(0.2, rel=0.03)  # constant images: kornia's own std, not × column std


def test_eval_mode_is_the_identity():
    x = torch.rand(4, 3, 8, 8)
    y = torch.arange(4)
    aug = batch_augmenter([{"name": "hflip", "p": 1.0}, {"name": "mixup"}], modality="image", n_classes=4, seed=0)
    xa, ya = aug.eval()(x, y)
    assert xa is x and ya is y
    assert not torch.equal(aug.train()(x, y)[0], x)


# --- determinism --------------------------------------------------------------------------------------

STEPS = [{"name": "gaussian_noise", "p": 0.5, "std": 0.3}, {"name": "mixup", "alpha": 0.4}]
IMAGE_STEPS = [{"name": "rotation", "p": 1.0}, {"name": "erasing", "p": 0.5}, {"name": "mixup"}]


@pytest.mark.parametrize("modality, steps, shape", [("tabular", STEPS, (32, 5)), ("image", IMAGE_STEPS, (6, 3, 8, 8))])
def test_the_same_seed_gives_the_same_batches(modality, steps, shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    y = torch.arange(shape[0]) % 3
    a, b = (batch_augmenter(steps, modality=modality, n_classes=3, seed=7) for _ in range(2))
    first, second = a(x, y), a(x, y)
    for mine, theirs in zip((first, second), (b(x, y), b(x, y)), strict=True):
        assert torch.equal(mine[0], theirs[0]) and torch.equal(mine[1], theirs[1])
    assert not torch.equal(first[0], second[0])  # successive batches draw afresh
    other = batch_augmenter(steps, modality=modality, n_classes=3, seed=8)(x, y)
    assert not torch.equal(first[0], other[0])


def test_the_global_rng_is_left_alone():
    x, y = _data()
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _tabular(STEPS)(x, y)
    batch_augmenter(IMAGE_STEPS, modality="image", n_classes=3, seed=1)(images, torch.arange(4) % 3)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("modality, steps, shape", [("tabular", STEPS, (32, 5)), ("image", IMAGE_STEPS, (6, 3, 8, 8))])
def test_state_dict_resumes_the_sequence(modality, steps, shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    y = torch.arange(shape[0]) % 3
    a = batch_augmenter(steps, modality=modality, n_classes=3, seed=3)
    a(x, y)
    state = a.state_dict()
    expected = a(x, y)
    b = batch_augmenter(steps, modality=modality, n_classes=3, seed=3)
    b.load_state_dict(state)
    got = b(x, y)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


# --- which steps, when --------------------------------------------------------------------------------


@pytest.mark.parametrize("steps, modality", [
    ([], "image"), ([], "tabular"), ([], "tokens"),
    ([{"name": "text", "swap": 0.2}], "tabular"), ([{"name": "text"}], "tokens"),
])
def test_none_when_no_step_acts_on_batches(steps, modality):
    assert batch_augmenter(steps, modality=modality, n_classes=2, seed=0) is None


def test_text_steps_are_skipped_by_the_batch_augmenter():
    aug = _tabular([{"name": "text"}, {"name": "mixup"}])
    assert aug.names == ["mixup"]


@pytest.mark.parametrize("steps, modality", [
    ([{"name": n} for n in ("hflip", "vflip", "rotation", "resized_crop", "color_jitter", "gaussian_noise",
                            "erasing", "mixup")], "image"),
    ([{"name": "gaussian_noise", "p": 1, "std": 2}, {"name": "mixup", "alpha": 1}, {"name": "text", "copies": 3}],
     "tabular"),
    ([{"name": "text", "deletion": 0, "swap": 0.5, "synonyms": 1}], "tokens"),
])
def test_valid_steps_pass(steps, modality):
    check_augment(steps, modality)


@pytest.mark.parametrize("steps, modality, words", [
    ([{"name": "hflip"}], "tabular", ["data.augment[0].name", "'hflip'", "tabular", "choose one of"]),
    ([{"name": "mixup"}], "tokens", ["data.augment[0].name", "'mixup'", "token ids", "text"]),
    ([{"name": "gaussian_noise"}], "tokens", ["data.augment[0].name", "token ids"]),
    ([{"name": "text"}], "image", ["data.augment[0].name", "'text'", "image"]),
    ([{"name": "mixup"}, {"name": "rotaton"}], "image", ["data.augment[1].name", "'rotation'"]),
    ([{"name": "mixpu"}], "tabular", ["data.augment[0].name", "'mixup'"]),
    ([{"name": "mixup"}, {"name": "rotation", "degree": 10}], "image", ["data.augment[1].degree", "'degrees'"]),
    ([{"name": "mixup"}, {"name": "hflip", "p": 2}], "image", ["data.augment[1].p", "between 0 and 1"]),
    ([{"name": "gaussian_noise", "p": 1.5}], "tabular", ["data.augment[0].p", "between 0 and 1"]),
    ([{"name": "gaussian_noise", "std": -0.1}], "tabular", ["data.augment[0].std"]),
    ([{"name": "gaussian_noise", "mean": 1}], "tabular", ["data.augment[0].mean", "unknown parameter"]),
    ([{"name": "mixup", "alpha": 0}], "tabular", ["data.augment[0].alpha", "above 0"]),
    ([{"name": "mixup", "alpha": "big"}], "image", ["data.augment[0].alpha", "number"]),
    ([{"name": "mixup", "alhpa": 1}], "tabular", ["data.augment[0].alhpa", "'alpha'"]),
    ([{"name": "mixup"}, {"name": "mixup"}], "tabular", ["data.augment[1].name", "twice"]),
    ([{"name": "text", "copies": 0}], "tokens", ["data.augment[0].copies"]),
    ([{"name": "text", "deletoin": 0.1}], "tabular", ["data.augment[0].deletoin", "'deletion'"]),
    ([{"name": "text", "swap": 2}], "tokens", ["data.augment[0].swap", "between 0 and 1"]),
    ([{"p": 0.5}], "image", ["data.augment[0]", "name"]),
    ({"name": "hflip"}, "image", ["data.augment", "list"]),
])
def test_check_augment_errors(steps, modality, words):
    with pytest.raises(RecipeError) as err:
        check_augment(steps, modality)
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    with pytest.raises(RecipeError):
        batch_augmenter(steps, modality=modality, n_classes=2, seed=0)


def test_unknown_modality_is_a_programming_error():
    with pytest.raises(ValueError, match="modality"):
        check_augment([], "audio")


def test_mixup_checks_the_targets():
    aug = _tabular([{"name": "mixup"}], n_classes=3)
    with pytest.raises(ValueError, match="soft targets"):
        aug(torch.randn(4, 2), torch.randn(4))
    with pytest.raises(ValueError, match="float"):
        aug(torch.arange(8).reshape(4, 2), torch.zeros(4, dtype=torch.long))


def test_saturation_and_hue_on_gray_images_name_the_step():
    """kornia's hue fails on one channel with its own message and its saturation does nothing: both
    are refused on gray batches, naming the recipe step; brightness works on gray, and RGB takes all."""
    steps = [{"name": "hflip"}, {"name": "color_jitter", "hue": 0.1, "p": 1.0}]
    augment = batch_augmenter(steps, modality="image", n_classes=2, seed=0)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(RecipeError, match=r"data\.augment\[1\].*1 channel"):
        augment(torch.rand(4, 1, 8, 8), y)
    assert augment(torch.rand(4, 3, 8, 8), y)[0].shape == (4, 3, 8, 8)
    gray = batch_augmenter([{"name": "color_jitter", "brightness": 0.5, "p": 1.0}], modality="image", n_classes=2,
                           seed=0)
    assert gray(torch.rand(4, 1, 8, 8), y)[0].shape == (4, 1, 8, 8)
