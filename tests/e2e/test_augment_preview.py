"""`honing augment-preview`: the PNG of a recipe's augmentation, through the real CLI."""

from __future__ import annotations

import matplotlib.image as mpimg
import pytest
import yaml

from conftest import assert_user_error


def write_recipe(path, source, augment, **extra):
    recipe = {"recipe_version": 1, "name": "preview", "data": {"source": source, "augment": augment}, **extra}
    path.write_text(yaml.safe_dump(recipe))
    return path


IMAGE_STEPS = [{"name": "hflip", "p": 0.5}, {"name": "rotation", "p": 1.0, "degrees": 20}]


def _only(folder, name):
    """``name`` is the only file in ``folder`` (no temporary file left behind)."""
    return sorted(p.name for p in folder.iterdir()) == [name]


def test_digits_grid_has_one_row_per_image_and_a_column_per_version(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", "builtin:digits", IMAGE_STEPS)
    out = tmp_path / "out" / "grid.png"
    result = cli("augment-preview", recipe, "-o", out, "--rows", "3", "--per-image", "2")
    assert result.code == 0, result.err
    assert out.is_file() and _only(out.parent, "grid.png")
    assert result.out.startswith("wrote")
    image = mpimg.imread(out)
    # preview_grid: 1.6 inches per cell at 100 dpi, (1 + per_image) columns, rows + 0.4 inch of title
    assert image.shape[:2] == (3 * 160 + 40, 3 * 160)


def test_defaults_and_set_overrides(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", "builtin:digits", [])
    out = tmp_path / "grid.png"
    result = cli("augment-preview", recipe, "-o", out, "--set", "data.augment=[{name: vflip}, {name: erasing, p: 1}]")
    assert result.code == 0, result.err
    assert mpimg.imread(out).shape[:2] == (8 * 160 + 40, 5 * 160)  # 8 rows, 4 versions each


def test_input_shape_shapes_the_pixel_columns(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", "builtin:digits", [{"name": "gaussian_noise", "p": 1.0}],
                          model={"type": "cnn", "params": {"input_shape": [1, 4, 16]}})
    out = tmp_path / "grid.png"
    assert cli("augment-preview", recipe, "-o", out, "--rows", "2", "--per-image", "1").code == 0
    assert mpimg.imread(out).shape[:2] == (2 * 160 + 40, 2 * 160)


def test_an_image_folder_is_decoded_as_data_image_says(cli, tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(10):
            pixels = (rng.random((10, 14, 3)) * 255).astype("uint8")
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{i}.png")
    recipe = write_recipe(tmp_path / "r.yaml", str(tmp_path / "images"),
                          [{"name": "hflip", "p": 1.0}, {"name": "color_jitter", "p": 1.0, "brightness": 0.3}])
    out = tmp_path / "grid.png"
    result = cli("augment-preview", recipe, "-o", out, "--rows", "2", "--per-image", "3",
                 "--set", "data.image.size=[20, 28]")
    assert result.code == 0, result.err
    assert mpimg.imread(out).shape[:2] == (2 * 160 + 40, 4 * 160)


def test_an_image_array_file_keeps_its_image_shape(cli, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "arrays.npz", x=(rng.random((30, 6, 10)) * 255).astype("uint8"), y=rng.integers(0, 2, 30))
    recipe = write_recipe(tmp_path / "r.yaml", str(tmp_path / "arrays.npz"), [{"name": "gaussian_noise", "p": 1.0}])
    out = tmp_path / "grid.png"
    result = cli("augment-preview", recipe, "-o", out, "--rows", "2", "--per-image", "2")
    assert result.code == 0, result.err  # 60 pixel columns: not square, shaped (1, 6, 10) by the file
    assert mpimg.imread(out).shape[:2] == (2 * 160 + 40, 3 * 160)


def test_sst2_text_step_shows_and_prints_each_sentence_with_its_versions(cli, tmp_path):
    from honing.data.dataset import load_dataset
    from honing.recipe import load_recipe

    step = {"name": "text", "deletion": 0.2, "swap": 0.2, "synonyms": 0.5}
    recipe = write_recipe(tmp_path / "r.yaml", "builtin:sst2", [step])
    out = tmp_path / "text.png"
    result = cli("augment-preview", recipe, "-o", out, "--rows", "3", "--per-image", "2")
    assert result.code == 0, result.err
    assert out.is_file() and mpimg.imread(out).shape[1] == 1100
    parsed = load_recipe(recipe)
    first = load_dataset(parsed.data, parsed.seed).splits["train"]["sentence"].iloc[:3].tolist()
    lines = result.out.splitlines()
    for r, sentence in enumerate(first, 1):
        assert f"{r}. {sentence}" in lines
    versions = [line for line in lines if line.startswith("   → ")]
    assert len(versions) == 3 * 2
    assert any(v[5:] not in first for v in versions)  # the versions are rewritten


def test_python_api_returns_the_path_and_echoes_text_lines(tmp_path):
    from honing import api

    lines: list[str] = []
    recipe = {"name": "p", "data": {"source": "builtin:sst2", "augment": [{"name": "text", "swap": 0.5}]}}
    path = api.augment_preview(recipe, tmp_path / "t.png", rows=2, per_image=3, echo=lines.append)
    assert path == tmp_path / "t.png" and path.is_file()
    assert len(lines) == 2 * (1 + 3)


def test_a_failed_drawing_leaves_nothing_behind(tmp_path, monkeypatch):
    from honing import api
    from honing.data import augment_preview

    def broken(images, augmenter, path, **kwargs):
        path.write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(augment_preview, "preview_grid", broken)
    recipe = {"name": "p", "data": {"source": "builtin:digits", "augment": IMAGE_STEPS}}
    from honing.errors import HoningError

    with pytest.raises(HoningError, match="No space left"):
        api.augment_preview(recipe, tmp_path / "grid.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("source, augment, extra, words", [
    ("builtin:digits", [], {}, ["data.augment is empty", "hflip"]),
    ("builtin:iris", [{"name": "mixup"}], {}, ["tabular"]),
    ("builtin:breast_cancer", [{"name": "hflip"}], {}, ["30 pixel columns", "input_shape"]),
    ("builtin:digits", [{"name": "rotation"}], {"model": {"type": "cnn", "params": {"input_shape": [1, 4, 8]}}},
     ["model.params.input_shape", "64"]),
    ("builtin:digits", [{"name": "hflip"}, {"name": "rotaton"}], {}, ["data.augment[1].name", "'rotation'"]),
    ("builtin:digits", [{"name": "hflip", "p": 3}], {}, ["data.augment[0].p"]),
    ("builtin:digits", [{"name": "text"}], {}, ["data.augment[0].name", "text column"]),
    ("builtin:sst2", [{"name": "text", "swap": 2}], {}, ["data.augment[0].swap"]),
    ("builtin:sst2", [{"name": "text", "copies": 0}], {}, ["data.augment[0].copies"]),  # as train refuses it
    ("builtin:digits", [{"name": "color_jitter", "hue": 0.1}], {}, ["data.augment[0]", "3-channel"]),
])
def test_mistakes_exit_2_and_write_nothing(cli, tmp_path, source, augment, extra, words):
    recipe = write_recipe(tmp_path / "r.yaml", source, augment, **extra)
    out = tmp_path / "out" / "grid.png"
    assert_user_error(cli("augment-preview", recipe, "-o", out, "--rows", "2"), *words)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_bad_options_exit_2(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", "builtin:digits", IMAGE_STEPS)
    assert_user_error(cli("augment-preview", recipe, "-o", tmp_path / "grid.jpg"), "grid.jpg", ".png")
    assert cli("augment-preview", recipe, "-o", tmp_path / "g.png", "--rows", "0").code == 2
    assert cli("augment-preview", recipe).code == 2  # -o is required
    assert_user_error(cli("augment-preview", tmp_path / "nope.yaml", "-o", tmp_path / "g.png"), "nope.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


def test_help_teaches_with_an_example(cli):
    result = cli("augment-preview", "--help")
    assert result.code == 0
    assert "honing augment-preview recipe.yaml -o grid.png" in " ".join(result.out.split())
