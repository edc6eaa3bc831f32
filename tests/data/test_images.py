"""Image datasets: folder reading, path resolution, array files and lazily decoded, cached tensors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from honing.data.images import (
    RESAMPLE,
    ImageSpec,
    ImageTensors,
    check_image_paths,
    read_idx,
    read_image_arrays,
    read_image_folder,
    resolve_paths,
)
from honing.errors import DataError, RecipeError


def _pixels(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _write(path: Path, height: int = 6, width: int = 5, seed: int = 0, channels: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pixels(height, width, seed, channels)).save(path)
    return path


def _oracle(path: Path, mode: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Pillow's own decode, as (C, H, W) floats in [0, 1]."""
    with Image.open(path) as img:
        img = img.convert(mode)
        if size is not None:
            img = img.resize((size[1], size[0]), RESAMPLE)
        arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "train"
    for i in range(3):
        _write(root / "cat" / f"c{i}.png", seed=i)
    for i in range(2):
        _write(root / "dog" / f"d{i}.jpg", seed=10 + i)
    _write(root / "dog" / "nested" / "d9.PNG", seed=20)
    _write(root / "dog" / ".hidden.png", seed=30)
    _write(root / ".cache" / "x.png", seed=31)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("top-level file")
    return root


# --- folder per class ---------------------------------------------------------------------------

def test_read_image_folder_lists_classes_and_skips_hidden_and_non_images(folder: Path) -> None:
    frame = read_image_folder(folder)
    assert list(frame.columns) == ["path", "label"]
    assert frame["label"].value_counts().to_dict() == {"cat": 3, "dog": 3}
    assert frame.equals(frame.sort_values(["label", "path"], ignore_index=True))
    names = {Path(p).name for p in frame["path"]}
    assert names == {"c0.png", "c1.png", "c2.png", "d0.jpg", "d1.jpg", "d9.PNG"}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in frame["path"])


def test_read_image_folder_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        read_image_folder(tmp_path / "nope")
    assert "nope" in str(info.value)
    with pytest.raises(DataError, match="no class folders") as info:
        read_image_folder(tmp_path)
    assert str(tmp_path) in str(info.value) and info.value.hint
    _write(tmp_path / "flat.png")
    with pytest.raises(DataError, match="no class folders"):
        read_image_folder(tmp_path)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no images"):
        read_image_folder(tmp_path)


# --- paths from a CSV column --------------------------------------------------------------------

def test_resolve_paths_against_the_csv_folder(tmp_path: Path) -> None:
    a = _write(tmp_path / "imgs" / "a.png")
    paths = pd.Series(["imgs/a.png", str(a)], name="image")
    resolved = resolve_paths(paths, tmp_path)
    assert list(resolved) == [str(a), str(a)] and resolved.name == "image"
    check_image_paths(resolved)
    with pytest.raises(DataError, match="has no image path"):
        resolve_paths(pd.Series(["imgs/a.png", None], name="image"), tmp_path)
    with pytest.raises(DataError, match="row 1"):
        resolve_paths(pd.Series(["imgs/a.png", pd.NA], name="image", dtype="string"), tmp_path)


def test_check_image_paths_names_first_missing(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"b\.png \(and 1 more\)"):
        check_image_paths([a, tmp_path / "b.png", tmp_path / "c.png"])


# --- decoding -----------------------------------------------------------------------------------

def test_pixels_equal_pillow_decode_rgb_and_gray(folder: Path) -> None:
    paths = read_image_folder(folder)["path"].tolist()
    for channels, mode in ((3, "RGB"), (1, "L")):
        images = ImageTensors(paths, ImageSpec(size=(4, 7), channels=channels))
        got = images.all()
        assert got.shape == (len(paths), channels, 4, 7) and got.dtype == torch.float32
        assert images.shape == (channels, 4, 7)
        for i, path in enumerate(paths):
            np.testing.assert_allclose(got[i].numpy(), _oracle(Path(path), mode, (4, 7)), atol=1e-6)


def test_channels_default_to_first_image(tmp_path: Path) -> None:
    gray = [_write(tmp_path / f"g{i}.png", channels=1, seed=i) for i in range(2)]
    rgb = _write(tmp_path / "rgb.png", seed=5)
    images = ImageTensors(gray + [rgb])
    assert images.channels == 1
    np.testing.assert_allclose(images[2].numpy(), _oracle(rgb, "L"), atol=1e-6)
    assert ImageTensors([rgb] + gray).batch([1]).shape == (1, 3, 6, 5)


def test_normalisation_per_channel(folder: Path) -> None:
    paths = read_image_folder(folder)["path"].tolist()[:2]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    raw = ImageTensors(paths, ImageSpec(channels=3)).all().numpy()
    normed = ImageTensors(paths, ImageSpec(channels=3, mean=mean, std=std)).all().numpy()
    expected = (raw - np.array(mean)[None, :, None, None]) / np.array(std)[None, :, None, None]
    np.testing.assert_allclose(normed, expected, rtol=1e-5, atol=1e-5)
    one = ImageTensors(paths, ImageSpec(channels=1, mean=(0.5,), std=(0.25,))).all().numpy()
    gray = ImageTensors(paths, ImageSpec(channels=1)).all().numpy()
    np.testing.assert_allclose(one, (gray - 0.5) / 0.25, rtol=1e-5, atol=1e-5)
    with pytest.raises(RecipeError, match="3 values but the images have 1"):
        ImageTensors(paths, ImageSpec(channels=1, mean=mean, std=std))


def test_spec_validation() -> None:
    with pytest.raises(RecipeError, match="channels"):
        ImageSpec(channels=2)
    with pytest.raises(RecipeError, match="size"):
        ImageSpec(size=(0, 4))
    with pytest.raises(RecipeError, match="both mean and std"):
        ImageSpec(mean=(0.5,))
    with pytest.raises(RecipeError, match="positive"):
        ImageSpec(mean=(0.5,), std=(0.0,))


# --- cache --------------------------------------------------------------------------------------

def test_cache_decodes_each_image_once(folder: Path) -> None:
    paths = read_image_folder(folder)["path"].tolist()
    images = ImageTensors(paths, ImageSpec(size=(4, 4)))
    first = images.batch([0, 1, 2])
    assert images.decoded == 3
    second = images.batch(np.array([2, 1, 0]))
    assert images.decoded == 3
    assert torch.equal(second, first.flip(0))
    images.batch(torch.tensor([0, 5, -1]))  # 5 and -1 are the same image
    assert images.decoded == 4 and images.cached == 4
    images.all()
    images.all()
    assert images.decoded == len(paths) == len(images)
    assert images.batch([]).shape == (0, 3, 4, 4)
    with pytest.raises(IndexError):
        images.batch([len(paths)])


def test_cache_byte_budget_evicts_least_recently_used(folder: Path) -> None:
    paths = read_image_folder(folder)["path"].tolist()
    one = 3 * 4 * 4 * 4  # bytes of one (3, 4, 4) float32 tensor
    images = ImageTensors(paths, ImageSpec(size=(4, 4)), cache_bytes=2 * one)
    images.batch([0, 1])
    images.batch([0])  # 0 is now the most recent
    images.batch([2])  # evicts 1
    assert images.cached == 2 and images.decoded == 3
    images.batch([0, 2])
    assert images.decoded == 3
    images.batch([1])
    assert images.decoded == 4
    tiny = ImageTensors(paths, ImageSpec(size=(4, 4)), cache_bytes=one - 1)
    tiny.batch([0])
    tiny.batch([0])
    assert tiny.decoded == 2 and tiny.cached == 0
    counted = ImageTensors(paths, ImageSpec(size=(4, 4)), cache_items=1)
    counted.all()
    assert counted.cached == 1


# --- errors -------------------------------------------------------------------------------------

def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    images = ImageTensors([good, bad])
    images.batch([0])
    with pytest.raises(DataError) as info:
        images.batch([1])
    assert str(bad) in str(info.value) and info.value.hint
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(DataError, match="truncated.png"):
        ImageTensors([good, truncated]).all()
    with pytest.raises(DataError, match="not found"):
        ImageTensors([good, tmp_path / "gone.png"]).all()
    with pytest.raises(DataError, match="bad.png"):
        ImageTensors([bad])


def test_different_sizes_need_a_size(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.png", 6, 5)
    b = _write(tmp_path / "b.png", 8, 3)
    with pytest.raises(DataError, match="8x3") as info:
        ImageTensors([a, b]).all()
    assert "size" in info.value.hint and str(b) in str(info.value)
    assert ImageTensors([a, b], ImageSpec(size=(6, 5))).all().shape == (2, 3, 6, 5)


# --- arrays -------------------------------------------------------------------------------------

def test_npy_and_npz_round_trip(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, size=(4, 5, 6), dtype=np.uint8)
    y = np.array([0, 1, 1, 0])
    np.save(tmp_path / "x.npy", x)
    images, labels = read_image_arrays(tmp_path / "x.npy")
    assert labels is None and np.array_equal(images, x)
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    images, labels = read_image_arrays(tmp_path / "d.npz")
    assert np.array_equal(images, x) and np.array_equal(labels, y)
    np.savez(tmp_path / "only.npz", pixels=x)
    assert read_image_arrays(tmp_path / "only.npz")[1] is None
    np.savez(tmp_path / "odd.npz", a=x, b=y)
    with pytest.raises(DataError, match="has no image array") as info:
        read_image_arrays(tmp_path / "odd.npz")
    assert "x, X, images" in info.value.hint
    np.savez(tmp_path / "short.npz", X=x, y=y[:2])
    with pytest.raises(DataError, match="short.npz"):
        read_image_arrays(tmp_path / "short.npz")
    np.save(tmp_path / "flat.npy", x.reshape(4, -1))
    with pytest.raises(DataError, match="flat.npy"):
        read_image_arrays(tmp_path / "flat.npy")


def _idx_bytes(array: np.ndarray, code: int, dtype: str) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def test_idx_round_trip_gzipped_or_not(tmp_path: Path) -> None:
    x = np.random.default_rng(1).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    (tmp_path / "imgs-idx3-ubyte").write_bytes(_idx_bytes(x, 0x08, ">u1"))
    (tmp_path / "imgs-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(x, 0x08, ">u1")))
    for name in ("imgs-idx3-ubyte", "imgs-idx3-ubyte.gz"):
        images, labels = read_image_arrays(tmp_path / name)
        assert labels is None and np.array_equal(images, x)
    f = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    (tmp_path / "f.idx").write_bytes(_idx_bytes(f, 0x0D, ">f4"))
    assert np.array_equal(read_idx(tmp_path / "f.idx"), f)
    (tmp_path / "cut.idx").write_bytes(_idx_bytes(x, 0x08, ">u1")[:-5])
    with pytest.raises(DataError, match="cut.idx"):
        read_idx(tmp_path / "cut.idx")
    (tmp_path / "junk.idx").write_bytes(b"hello world")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "junk.idx")


def test_image_tensors_from_arrays(tmp_path: Path) -> None:
    x = np.random.default_rng(2).integers(0, 256, size=(3, 4, 5, 3), dtype=np.uint8)
    images = ImageTensors(x)
    np.testing.assert_allclose(images.all().numpy(), x.transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    gray = ImageTensors(x, ImageSpec(channels=1)).all().numpy()
    luma = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255.0
    np.testing.assert_allclose(gray[:, 0], luma, atol=1e-5)
    resized = ImageTensors(x[..., 0], ImageSpec(size=(8, 10), channels=3))
    out = resized.all()
    assert out.shape == (3, 3, 8, 10) and torch.equal(out[:, 0], out[:, 2])
    expected = np.asarray(Image.fromarray(x[0, :, :, 0]).resize((10, 8), RESAMPLE), dtype=np.float32) / 255
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1.5 / 255)
    resized.all()
    assert resized.decoded == 3
