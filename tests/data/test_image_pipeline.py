"""Image data in the recipe pipeline: sources, the image kind, ImagePixels, the dataset's image shape."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from PIL import Image

from honing.data import image_pixels
from honing.data.dataset import load_dataset
from honing.data.image_pixels import ImagePixels
from honing.data.image_sources import looks_like_image_paths, pixel_matrix, read_image_source
from honing.data.preprocess import TRUSTED_TYPES, build_preprocessor, coerce_features
from honing.data.schema import infer_schema
from honing.data.sources import read_table
from honing.errors import DataError, RecipeError
from honing.recipe import DataConfig, ImageConfig, load_recipe
from honing.train_flow import resolved_recipe as _resolved_recipe


def _image(path: Path, seed: int, size: tuple[int, int] = (6, 5), mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    shape = (*size, 3) if mode == "RGB" else size
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def _folder(root: Path, per_class: int = 6, mode: str = "L") -> Path:
    for label in ("cat", "dog"):
        for i in range(per_class):
            _image(root / label / f"{i}.png", seed=hash((label, i)) % 1000, mode=mode)
    return root


def _oracle(path: Path, mode: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Pillow by hand: mode, bilinear resize, [0, 1], channel-first, flattened."""
    with Image.open(path) as img:
        img = img.convert(mode)
        if size is not None:
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels = np.asarray(img, dtype=np.float32) / 255.0
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return pixels.transpose(2, 0, 1).reshape(-1)


@pytest.fixture(autouse=True)
def _fresh_cache():
    image_pixels.clear_cache()
    yield
    image_pixels.clear_cache()


# --------------------------------------------------------------------------- ImagePixels


def test_pixels_equal_pillow_by_hand(tmp_path):
    paths = [str(_image(tmp_path / f"{i}.png", seed=i)) for i in range(4)]
    frame = pd.DataFrame({"photo": paths})
    gray = ImagePixels().fit(frame)
    assert gray.image_shape_ == (3, 6, 5)  # the first image is RGB
    out = gray.transform(frame)
    assert out.dtype == np.float32 and out.shape == (4, 3 * 6 * 5)
    np.testing.assert_allclose(out, np.stack([_oracle(Path(p), "RGB") for p in paths]), atol=1e-6)
    assert list(gray.get_feature_names_out()[:2]) == ["photo_px_0", "photo_px_1"]

    spec = ImagePixels(size=[4, 3], channels=1, mean=[0.5], std=[0.25]).fit(frame)
    assert spec.image_shape_ == (1, 4, 3)
    expected = np.stack([(_oracle(Path(p), "L", (4, 3)) - 0.5) / 0.25 for p in paths])
    np.testing.assert_allclose(spec.transform(frame), expected, atol=1e-5)


def test_rgb_normalisation_per_channel(tmp_path):
    paths = [str(_image(tmp_path / f"{i}.jpg", seed=i)) for i in range(2)]
    frame = pd.DataFrame({"p": paths})
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    out = ImagePixels(size=[3, 3], mean=mean, std=std).fit(frame).transform(frame)
    by_hand = np.stack([_oracle(Path(p), "RGB", (3, 3)).reshape(3, 3, 3) for p in paths])
    by_hand = (by_hand - np.array(mean)[None, :, None, None]) / np.array(std)[None, :, None, None]
    np.testing.assert_allclose(out, by_hand.reshape(2, -1), atol=1e-5)
    with pytest.raises(RecipeError, match="data.image"):
        ImagePixels(mean=[0.5, 0.5], std=[0.2, 0.2]).fit(frame)  # two values for three channels


def test_repeated_transforms_do_not_decode_again(tmp_path, monkeypatch):
    from honing.data.images import ImageTensors

    calls = []
    decode = ImageTensors._decode
    monkeypatch.setattr(ImageTensors, "_decode", lambda self, path: calls.append(path) or decode(self, path))
    paths = [str(_image(tmp_path / f"{i}.png", seed=i)) for i in range(5)]
    frame = pd.DataFrame({"p": paths + paths[:2]})  # two repeats inside one transform
    step = ImagePixels(channels=1).fit(frame)
    first = step.transform(frame)
    assert len(calls) == 5 and image_pixels.cache_info()["images"] == 5
    np.testing.assert_array_equal(step.transform(frame.iloc[::-1]), first[::-1])
    assert len(calls) == 5
    _image(Path(paths[0]), seed=99, size=(6, 5))  # rewritten: decoded again
    step.transform(frame.head(1))
    assert len(calls) == 6


def test_a_split_larger_than_the_cache_keeps_every_image_right(tmp_path, monkeypatch):
    """Images cached before a transform must be read before that transform's new images evict them,
    and inside ``uncached()`` nothing is kept; the pixels are Pillow's every time."""
    paths = [str(_image(tmp_path / f"{i}.png", seed=i)) for i in range(8)]
    expected = np.stack([_oracle(Path(p), "L") for p in paths])
    monkeypatch.setattr(image_pixels, "CACHE_BYTES", 3 * expected[0].nbytes)  # room for 3 of the 8
    step = ImagePixels(channels=1).fit(pd.DataFrame({"p": paths}))
    step.transform(pd.DataFrame({"p": paths[:3]}))  # cached: 0, 1, 2 — then read while 3..7 evict them
    np.testing.assert_array_equal(step.transform(pd.DataFrame({"p": paths})), expected)
    image_pixels.clear_cache()
    with image_pixels.uncached():
        np.testing.assert_array_equal(step.transform(pd.DataFrame({"p": paths})), expected)
    assert image_pixels.cache_info() == {"images": 0, "bytes": 0}
    step.transform(pd.DataFrame({"p": paths[:2]}))
    assert image_pixels.cache_info()["images"] == 2  # caching is back after the block


def test_saved_and_loaded_with_skops(tmp_path):
    paths = [str(_image(tmp_path / f"{i}.png", seed=i, mode="L")) for i in range(3)]
    frame = pd.DataFrame({"path": paths, "label": ["a", "b", "a"]})
    schema = infer_schema(frame, target="label")
    cfg = DataConfig(source="x", image=ImageConfig(size=[4, 4], mean=[0.5], std=[0.5]))
    pre = build_preprocessor(schema, cfg).fit(coerce_features(frame, schema))
    sio.dump(pre, tmp_path / "pre.skops")
    assert set(sio.get_untrusted_types(file=tmp_path / "pre.skops")) == {"honing.data.image_pixels.ImagePixels"}
    assert "honing.data.image_pixels.ImagePixels" in TRUSTED_TYPES
    loaded = sio.load(tmp_path / "pre.skops", trusted=TRUSTED_TYPES)
    image_pixels.clear_cache()
    np.testing.assert_array_equal(loaded.transform(coerce_features(frame, schema)),
                                  pre.transform(coerce_features(frame, schema)))
    assert list(loaded.get_feature_names_out()[:1]) == ["path_px_0"]


def test_missing_and_broken_files_are_one_line_errors(tmp_path):
    good = str(_image(tmp_path / "good.png", seed=0))
    step = ImagePixels().fit(pd.DataFrame({"p": [good]}))
    missing = str(tmp_path / "gone.png")
    with pytest.raises(DataError, match="image file not found") as err:
        step.transform(pd.DataFrame({"p": [good, missing]}))
    assert missing in str(err.value) and "\n" not in str(err.value)
    broken = tmp_path / "broken.png"
    broken.write_text("not an image\nat all\n")
    with pytest.raises(DataError, match="cannot decode image") as err:
        step.transform(pd.DataFrame({"p": [str(broken)]}))
    assert str(broken) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError, match="row 1 of image column 'p' has no image path"):
        step.transform(pd.DataFrame({"p": [good, None]}))


def test_other_size_without_a_size_setting_is_an_error(tmp_path):
    step = ImagePixels().fit(pd.DataFrame({"p": [str(_image(tmp_path / "a.png", seed=0, size=(6, 5)))]}))
    other = str(_image(tmp_path / "b.png", seed=1, size=(7, 5)))
    with pytest.raises(DataError, match="trained on 6x5 images") as err:
        step.transform(pd.DataFrame({"p": [other]}))
    assert other in str(err.value) and "data.image.size" in str(err.value)
    resized = ImagePixels(size=[6, 5]).fit(pd.DataFrame({"p": [str(tmp_path / "a.png")]}))
    assert resized.transform(pd.DataFrame({"p": [other]})).shape == (1, 90)


def test_an_image_column_must_be_the_only_feature(tmp_path):
    frame = pd.DataFrame({"path": [str(tmp_path / f"{i}.png") for i in range(4)], "note": list("abcd"),
                          "size": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    schema = infer_schema(frame, target="y")
    with pytest.raises(DataError, match="image column 'path' must be the only feature") as err:
        build_preprocessor(schema, DataConfig(source="x"))
    assert "note, size" in str(err.value) and "data.drop" in str(err.value)


# --------------------------------------------------------------------------- schema


def test_image_kind_is_inferred_or_forced():
    paths = pd.Series([f"imgs/{i}.PNG" for i in range(19)] + ["imgs/readme.txt"])
    assert looks_like_image_paths(paths)  # 95%: nearly all
    assert not looks_like_image_paths(pd.Series(["a.png", "b.txt"]))
    assert not looks_like_image_paths(pd.Series([1.0, 2.0]))
    frame = pd.DataFrame({"file": paths, "blob": [f"x/{i}" for i in range(20)], "y": [0, 1] * 10})
    schema = infer_schema(frame, target="y", overrides={"blob": "image"})
    assert schema.column("file").kind == "image" and schema.column("blob").kind == "image"
    assert schema.column("file").categories is None


# --------------------------------------------------------------------------- sources


def test_csv_paths_are_resolved_against_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    for i in range(4):
        _image(folder / "imgs" / f"{i}.png", seed=i, mode="L")
    absolute = str(_image(tmp_path / "elsewhere.png", seed=9, mode="L"))
    frame = pd.DataFrame({"img": [f"imgs/{i}.png" for i in range(4)] + [absolute],
                          "raw": [f"imgs/{i}" for i in range(5)], "y": [0, 1, 0, 1, 0]})
    frame.to_csv(folder / "table.csv", index=False)
    monkeypatch.chdir(tmp_path)
    read = read_table(Path("data/table.csv"))
    assert read["img"].tolist() == [str(folder.absolute() / "imgs" / f"{i}.png") for i in range(4)] + [absolute]
    assert read["raw"].tolist() == frame["raw"].tolist()  # not image paths: untouched
    forced = read_table(Path("data/table.csv"), image_columns=["raw"])
    assert forced["raw"].iloc[0] == str(folder.absolute() / "imgs" / "0")


def test_folder_source_dataset(tmp_path):
    root = _folder(tmp_path / "pets", per_class=8)
    dataset = load_dataset(DataConfig(source=str(root), image={"size": [4, 4]}), seed=0)
    assert dataset.target == "label" and dataset.classes == ["cat", "dog"]
    assert dataset.schema.column("path").kind == "image"
    assert dataset.image_shape == (1, 4, 4)
    _, data = dataset.prepared(DataConfig(source=str(root), image={"size": [4, 4]}))
    assert data["train"][0].shape == (len(dataset.splits["train"]), 16)
    assert not any("path" in note for note in dataset.notes)


def test_missing_file_in_a_csv_fails_at_load(tmp_path):
    _image(tmp_path / "a.png", seed=0)
    pd.DataFrame({"img": ["a.png", "b.png"] * 5, "y": [0, 1] * 5}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="image file not found") as err:
        load_dataset(DataConfig(source=str(tmp_path / "t.csv"), target="y"), seed=0)
    assert str(tmp_path / "b.png") in str(err.value)


def test_npz_source_gives_channel_first_pixel_columns(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 4, 5, 3), dtype=np.uint8)
    y = np.array(["a", "b", "c"] * 10)
    np.savez(tmp_path / "set.npz", x=x, y=y)
    source = read_image_source(tmp_path / "set.npz")
    assert source.image_shape == (3, 4, 5)
    frame = source.frame
    assert list(frame.columns[:2]) == ["pixel_0", "pixel_1"] and frame.columns[-1] == "label"
    assert frame.shape == (30, 61) and frame["pixel_0"].dtype == np.float32
    np.testing.assert_allclose(frame.iloc[0, :60].to_numpy(), x[0].transpose(2, 0, 1).reshape(-1) / 255, atol=1e-7)
    dataset = load_dataset(DataConfig(source=str(tmp_path / "set.npz")), seed=0)
    assert dataset.image_shape == (3, 4, 5) and dataset.classes == ["a", "b", "c"]
    assert dataset.schema.column("pixel_7").kind == "numeric" and not dataset.notes[1:]


def test_pixel_matrix_drops_alpha_and_keeps_floats():
    rgba = np.zeros((2, 3, 3, 4), dtype=np.uint16)
    rgba[..., 3] = 65535
    pixels, shape = pixel_matrix(rgba)
    assert shape == (3, 3, 3) and pixels.max() == 0
    floats, shape = pixel_matrix(np.full((2, 3, 3), 0.25))
    assert shape == (1, 3, 3) and np.all(floats == 0.25)


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_idx_source_with_sibling_or_given_labels(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (20, 6, 6), dtype=np.uint8)
    labels = (np.arange(20) % 2).astype(np.uint8)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(labels))
    source = read_image_source(tmp_path / "train-images-idx3-ubyte.gz")
    assert source.image_shape == (1, 6, 6) and source.frame["label"].tolist() == labels.tolist()
    np.save(tmp_path / "other.npy", 1 - labels.astype(np.int64))
    cfg = DataConfig(source=str(tmp_path / "train-images-idx3-ubyte.gz"), labels=str(tmp_path / "other.npy"))
    dataset = load_dataset(cfg, seed=0)
    assert dataset.image_shape == (1, 6, 6)
    assert dataset.raw["label"].tolist() == (1 - labels).tolist()


def test_array_source_mistakes(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match="without labels") as err:
        load_dataset(DataConfig(source=str(tmp_path / "x.npy")), seed=0)
    assert "data.labels" in str(err.value)
    np.save(tmp_path / "short.npy", np.zeros(3))
    with pytest.raises(DataError, match="3 images|for 10 images"):
        load_dataset(DataConfig(source=str(tmp_path / "x.npy"), labels=str(tmp_path / "short.npy")), seed=0)
    np.save(tmp_path / "y.npy", np.arange(10) % 2)
    with pytest.raises(RecipeError, match="data.image.size"):
        load_dataset(DataConfig(source=str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy"),
                                image={"size": [8, 8]}), seed=0)
    pd.DataFrame({"a": [1, 2], "y": [0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(RecipeError, match="data.labels"):
        load_dataset(DataConfig(source=str(tmp_path / "t.csv"), target="y", labels=str(tmp_path / "y.npy")), 0)


def test_mean_without_std_is_a_recipe_error():
    with pytest.raises(RecipeError, match="data.image") as err:
        load_recipe({"data": {"source": "x", "image": {"mean": [0.5]}}})
    assert "std" in str(err.value)


# --------------------------------------------------------------------------- the network's input shape


def test_cnn_input_shape_comes_from_the_images(tmp_path):
    root = _folder(tmp_path / "pets", per_class=6, mode="RGB")
    dataset = load_dataset(DataConfig(source=str(root)), seed=0)
    assert dataset.image_shape == (3, 6, 5)
    cnn = _resolved_recipe(load_recipe({"data": {"source": str(root)}, "model": {"type": "cnn"}}), dataset)
    assert cnn.model.params["input_shape"] == [3, 6, 5] and cnn.data.target == "label"
    given = load_recipe({"data": {"source": str(root)}, "model": {"type": "cnn", "params": {"input_shape": [1, 90]}}})
    assert _resolved_recipe(given, dataset).model.params["input_shape"] == [1, 90]
    for other in ("mlp", "auto"):
        assert "input_shape" not in _resolved_recipe(load_recipe({"data": {"source": str(root)},
                                                                  "model": {"type": other}}), dataset).model.params
    digits = load_dataset(DataConfig(source="builtin:digits"), seed=0)
    assert digits.image_shape is None
    plain = _resolved_recipe(load_recipe({"data": {"source": "builtin:digits"}, "model": {"type": "cnn"}}), digits)
    assert "input_shape" not in plain.model.params
