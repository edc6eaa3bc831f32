"""Training-time augmentation: images (kornia), text (EDA-style) and tabular (noise, mixup)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from honing.data.augment import (
    IMAGE_AUGMENTS,
    SYNONYMS,
    gaussian_noise,
    image_augmenter,
    mixup,
    preview_grid,
    text_augment,
)
from honing.errors import RecipeError

ALL_STEPS = [
    {"name": "hflip", "p": 0.5}, {"name": "vflip", "p": 0.5}, {"name": "rotation", "p": 0.5, "degrees": 15},
    {"name": "resized_crop", "p": 1.0, "scale": [0.8, 1.0]},
    {"name": "color_jitter", "p": 0.5, "brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.05},
    {"name": "gaussian_noise", "p": 0.5, "std": 0.05}, {"name": "erasing", "p": 0.5, "scale": [0.02, 0.2]},
]


def _batch(n: int = 4, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


# --- images -------------------------------------------------------------------------------------------


def test_import_is_light():
    code = "import sys, honing.data.augment; print('torch' in sys.modules, 'kornia' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_every_name_listed_has_a_step():
    assert {s["name"] for s in ALL_STEPS} == set(IMAGE_AUGMENTS)


@pytest.mark.parametrize("name, dims", [("hflip", [-1]), ("vflip", [-2])])
def test_flip_with_p1_equals_torch_flip(name, dims):
    x = _batch()
    assert torch.equal(image_augmenter([{"name": name, "p": 1.0}])(x), torch.flip(x, dims=dims))


@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda s: s["name"])
def test_p0_is_identity(step):
    x = _batch()
    out = image_augmenter([{**step, "p": 0.0}], seed=1)(x)
    assert out.shape == x.shape and torch.allclose(out, x)


@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda s: s["name"])
def test_eval_mode_is_identity(step):
    aug = image_augmenter([{**step, "p": 1.0}], seed=1)
    x = _batch()
    aug.eval()
    assert torch.equal(aug(x), x)
    aug.train()
    assert not torch.equal(aug(x), x)  # and it does augment in train mode


def test_eval_mode_is_identity_for_the_full_pipeline():
    aug = image_augmenter(ALL_STEPS, seed=0).eval()
    x = _batch()
    assert torch.equal(aug(x), x)


def test_gaussian_noise_has_the_given_std():
    x = torch.zeros(8, 3, 64, 64)
    out = image_augmenter([{"name": "gaussian_noise", "p": 1.0, "std": 0.2}], seed=0)(x)
    assert abs(out.mean().item()) < 0.01
    assert out.std().item() == pytest.approx(0.2, rel=0.03)


def test_erasing_fills_a_region_within_scale():
    scale = (0.05, 0.2)
    x = torch.ones(32, 1, 100, 100)
    aug = image_augmenter([{"name": "erasing", "p": 1.0, "scale": list(scale), "ratio": [0.5, 2.0],
                            "value": 0.5}], seed=0)
    out = aug(x)
    assert set(out.unique().tolist()) == {0.5, 1.0}
    fractions = (out == 0.5).float().mean(dim=(1, 2, 3))
    assert (fractions >= scale[0] - 0.01).all() and (fractions <= scale[1] + 0.01).all()
    # the erased region is a rectangle: its bounding box is fully filled
    rows, cols = torch.nonzero(out[0, 0] == 0.5, as_tuple=True)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert box.item() == len(rows)


@pytest.mark.parametrize("shape", [(4, 3, 16, 16), (2, 1, 20, 12)])
def test_resized_crop_keeps_the_shape(shape):
    x = torch.rand(*shape)
    aug = image_augmenter([{"name": "resized_crop", "p": 1.0, "scale": [0.5, 0.6]}], seed=0)
    out = aug(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    sized = image_augmenter([{"name": "resized_crop", "p": 1.0, "size": [8, 10]}], seed=0)
    assert sized(x).shape == (*shape[:2], 8, 10)


def test_rotation_by_90_degrees_equals_rot90():
    x = _batch(h=17, w=17)
    out = image_augmenter([{"name": "rotation", "p": 1.0, "degrees": [90, 90]}])(x)
    assert torch.allclose(out, torch.rot90(x, k=1, dims=[-2, -1]), atol=1e-4)


def test_seed_makes_results_reproducible():
    x = _batch()
    a, b = image_augmenter(ALL_STEPS, seed=7), image_augmenter(ALL_STEPS, seed=7)
    first, second = a(x), a(x)
    assert torch.equal(first, b(x)) and torch.equal(second, b(x))
    assert not torch.equal(first, second)  # successive batches draw fresh parameters
    assert not torch.equal(first, image_augmenter(ALL_STEPS, seed=8)(x))


def test_seeded_augmenter_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    image_augmenter(ALL_STEPS, seed=3)(_batch())
    assert torch.equal(torch.rand(3), expected)


def test_batch_on_device_stays_there():
    device = torch.device("cpu")
    aug = image_augmenter(ALL_STEPS, seed=0).to(device)
    out = aug(_batch().to(device))
    assert out.device == device and out.dtype == torch.float32 and out.shape == (4, 3, 16, 16)


def test_grayscale_batch_with_brightness_jitter():
    aug = image_augmenter([{"name": "color_jitter", "p": 1.0, "brightness": 0.3, "contrast": 0.3}], seed=0)
    assert aug(_batch(c=1)).shape == (4, 1, 16, 16)


def test_unknown_name_names_the_step_with_a_hint():
    with pytest.raises(RecipeError) as err:
        image_augmenter([{"name": "hflip"}, {"name": "rotaton", "p": 0.5}])
    assert "data.augment[1].name" in str(err.value) and "'rotation'" in str(err.value)


@pytest.mark.parametrize("step, words", [
    ({"name": "hflip", "p": 1.5}, ["data.augment[0].p", "between 0 and 1"]),
    ({"name": "hflip", "p": "often"}, ["data.augment[0].p", "number"]),
    ({"name": "rotation", "degree": 10}, ["data.augment[0].degree", "'degrees'"]),
    ({"name": "erasing", "scale": [0.5, 0.1]}, ["data.augment[0].scale", "[low, high]"]),
    ({"name": "color_jitter", "hue": 0.8}, ["data.augment[0].hue"]),
    ({"name": "gaussian_noise", "std": -1}, ["data.augment[0].std"]),
    ({"name": "erasing", "value": 2}, ["data.augment[0].value"]),
    ({"name": "resized_crop", "size": [8.5, 8]}, ["data.augment[0].size"]),
    ({"p": 0.5}, ["data.augment[0]", "name"]),
])
def test_bad_parameters_raise_recipe_errors(step, words):
    with pytest.raises(RecipeError) as err:
        image_augmenter([step])
    for word in words:
        assert word in str(err.value)
    assert err.value.hint  # what to do, not only what is wrong


def test_no_steps_is_identity():
    x = _batch()
    assert image_augmenter([])(x) is x


# --- text ---------------------------------------------------------------------------------------------

TEXTS = ["the movie was really good and the story was great",
         "a terrible film with a boring plot",
         "I love this book", "single", ""]


def test_deletion_one_keeps_exactly_one_word():
    out = text_augment(TEXTS, deletion=1.0, seed=3)
    for before, after in zip(TEXTS, out, strict=True):
        if before:
            assert len(after.split()) == 1 and after in before.split()
        else:
            assert after == ""


def test_deletion_drops_about_the_given_fraction():
    text = " ".join(f"w{i}" for i in range(2000))
    kept = text_augment([text], deletion=0.3, seed=0)[0].split()
    assert len(kept) / 2000 == pytest.approx(0.7, abs=0.04)
    assert kept == [w for w in text.split() if w in set(kept)]  # order kept


def test_swap_keeps_the_multiset_of_words():
    out = text_augment(TEXTS, swap=0.5, seed=1)
    for before, after in zip(TEXTS, out, strict=True):
        assert Counter(before.split()) == Counter(after.split())
    assert out[0] != TEXTS[0]


def test_synonyms_replace_only_table_words_with_listed_synonyms():
    table = {"good": ["fine", "nice"], "great": ["superb"]}
    text = "good food and great good service"
    out = text_augment([text] * 20, synonyms=1.0, seed=0, synonym_table=table)
    for row in out:
        for before, after in zip(text.split(), row.split(), strict=True):
            assert after in table[before] if before in table else after == before
    assert len(set(out)) > 1


def test_synonyms_keep_punctuation_and_capitals():
    out = text_augment(["Great, truly great!"], synonyms=1.0, synonym_table={"great": ["superb"]})
    assert out == ["Superb, truly superb!"]


def test_bundled_synonym_table():
    assert len(SYNONYMS) >= 100
    assert all(k == k.lower() and v and k not in v for k, v in SYNONYMS.items())
    out = text_augment(["good movie"], synonyms=1.0, seed=0)[0].split()
    assert out[0] in SYNONYMS["good"] and out[1] in SYNONYMS["movie"]


def test_text_is_deterministic_for_a_seed():
    kwargs = {"deletion": 0.2, "swap": 0.3, "synonyms": 0.5}
    assert text_augment(TEXTS, seed=5, **kwargs) == text_augment(TEXTS, seed=5, **kwargs)
    assert text_augment(TEXTS, seed=5, **kwargs) != text_augment(TEXTS, seed=6, **kwargs)
    assert text_augment(TEXTS) == [" ".join(t.split()) for t in TEXTS]  # all off: unchanged


def test_text_rates_are_checked():
    with pytest.raises(RecipeError, match="deletion"):
        text_augment(TEXTS, deletion=1.5)


# --- tabular ------------------------------------------------------------------------------------------


def test_noise_only_on_numeric_columns_with_per_column_scale():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(0, 1, 20000), rng.normal(5, 10, 20000), rng.integers(0, 3, 20000)])
    numeric = np.array([True, True, False])
    out = gaussian_noise(X, std=0.1, numeric=numeric, seed=1)
    assert np.array_equal(out[:, 2], X[:, 2])
    noise = out[:, :2] - X[:, :2]
    assert noise.mean(axis=0) == pytest.approx([0, 0], abs=0.05)
    assert noise.std(axis=0) == pytest.approx(0.1 * X[:, :2].std(axis=0), rel=0.03)
    assert np.array_equal(gaussian_noise(X, 0.1, numeric, seed=1), out)
    assert np.array_equal(gaussian_noise(X, 0.0), X)


def test_noise_keeps_missing_values_and_defaults_to_all_columns():
    X = np.array([[1.0, 2.0], [np.nan, 4.0], [3.0, 8.0]])
    out = gaussian_noise(X, std=0.5, seed=0)
    assert np.isnan(out[1, 0]) and not np.isnan(out).sum() > 1
    assert (out[[0, 2]] != X[[0, 2]]).all()


def test_mixup_outputs_are_convex_combinations_of_pairs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4))
    y = np.eye(3)[rng.integers(0, 3, 50)]
    Xm, ym = mixup(X, y, alpha=0.4, seed=2)
    assert Xm.shape == X.shape and ym.shape == y.shape
    assert np.allclose(ym.sum(axis=1), 1.0) and (ym >= 0).all()
    for i in range(len(X)):  # each row lies on the segment between x_i and some x_j, with matching labels
        ok = False
        for j in range(len(X)):
            d = X[i] - X[j]
            lam = 1.0 if not d.any() else float(np.dot(Xm[i] - X[j], d) / np.dot(d, d))
            if -1e-9 <= lam <= 1 + 1e-9 and np.allclose(lam * X[i] + (1 - lam) * X[j], Xm[i]) \
                    and np.allclose(lam * y[i] + (1 - lam) * y[j], ym[i]):
                ok = True
                break
        assert ok, i
    assert all(np.array_equal(a, b) for a, b in zip(mixup(X, y, 0.4, 2), (Xm, ym), strict=True))


def test_mixup_lambda_is_beta_distributed():
    n = 20000
    X = np.zeros((n, 1))
    y = np.tile([[1.0, 0.0]], (n, 1))
    y[n // 2:] = [0.0, 1.0]
    X[:, 0] = y[:, 0]
    _, ym = mixup(X, y, alpha=1.0, seed=0)
    # rows mixed with a partner of the other class reveal lambda = weight of their own class
    own = np.where(y[:, 0] == 1, ym[:, 0], ym[:, 1])
    mixed = own[(ym > 0).all(axis=1)]
    assert len(mixed) > n // 3
    assert mixed.mean() == pytest.approx(0.5, abs=0.02)  # Beta(1, 1) = uniform: mean 1/2, var 1/12
    assert mixed.var() == pytest.approx(1 / 12, abs=0.01)
    _, ym_small = mixup(X, y, alpha=0.1, seed=0)
    own_small = np.where(y[:, 0] == 1, ym_small[:, 0], ym_small[:, 1])
    assert np.mean((own_small < 0.1) | (own_small > 0.9)) > 0.6  # small alpha: mostly near 0 or 1


def test_mixup_checks_its_inputs():
    with pytest.raises(ValueError):
        mixup(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(RecipeError, match="alpha"):
        mixup(np.zeros((3, 2)), np.zeros((3, 2)), alpha=0.0)


# --- preview ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_preview_grid_writes_a_png(tmp_path, channels):
    import matplotlib.image as mpimg

    aug = image_augmenter(ALL_STEPS[:3] + ALL_STEPS[5:], seed=0).eval()
    path = preview_grid(_batch(n=5, c=channels), aug, tmp_path / "sub" / "preview.png", n=3, per_image=2)
    assert path.exists() and path.suffix == ".png"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert not aug.training  # the mode is restored
