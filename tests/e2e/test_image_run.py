"""Images through the real CLI: recipe → train (cnn) → bundle → predict, from an image folder, a CSV
of relative paths, an .npz file and IDX files; and the image mistakes as one-line errors."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import honing
from conftest import assert_user_error

TRAIN = {"epochs": 3, "batch_size": 8, "optimizer": {"lr": 0.01}, "early_stopping": None}
QUICK = {"bootstrap": 0, "explain": False}


def _pixels(bright: bool, rng: np.random.Generator) -> np.ndarray:
    """An 8x8 gray image: brighter or darker than mid-gray, with noise (one pixel alone is not enough)."""
    return np.clip((180 if bright else 70) + rng.normal(0, 30, (8, 8)), 0, 255).astype(np.uint8)


def _folder(root: Path, per_class: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for label in ("bright", "dark"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(_pixels(label == "bright", rng)).save(root / label / f"{label}{i}.png")
    return root


def _recipe(path: Path, data: dict, model: str = "cnn", evaluate: dict | None = None) -> Path:
    recipe = {"recipe_version": 1, "name": "images", "seed": 0, "data": data, "model": {"type": model},
              "train": TRAIN, "evaluate": evaluate or QUICK}
    path.write_text(yaml.safe_dump(recipe))
    return path


def _arrays(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    labels = np.arange(n) % 2
    return np.stack([_pixels(bool(y), rng) for y in labels]), labels


def test_image_folder_trains_a_cnn_and_the_bundle_predicts_paths(cli, tmp_path):
    root = _folder(tmp_path / "shades")
    recipe = _recipe(tmp_path / "r.yaml", {"source": str(root)}, evaluate={"bootstrap": 50})
    result = cli("train", recipe, "--out", tmp_path / "run")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.5 and metrics["model"] == "cnn"
    manifest = json.loads((tmp_path / "run" / "bundle" / "manifest.json").read_text())
    assert manifest["recipe"]["model"]["params"]["input_shape"] == [1, 8, 8]
    assert {c["name"]: c["kind"] for c in manifest["features"]["columns"]}["path"] == "image"

    bundle = honing.load(tmp_path / "run" / "bundle")
    frame = honing.api.read_table(root)  # every image, with its label
    predicted = bundle.predict(frame[["path"]])
    assert set(predicted) <= {"bright", "dark"} and (predicted == frame["label"]).mean() > 0.5
    assert bundle.predict_proba(frame[["path"]]).shape == (32, 2)

    out = cli("predict", tmp_path / "run" / "bundle", root, "--out", tmp_path / "p.csv")
    assert out.code == 0, out.err
    assert pd.read_csv(tmp_path / "p.csv")["prediction"].tolist() == list(predicted)


def test_csv_of_relative_paths(cli, tmp_path, monkeypatch):
    root = _folder(tmp_path / "data" / "imgs")
    rows = [{"file": str(p.relative_to(tmp_path / "data")), "shade": p.parent.name, "id": i}
            for i, p in enumerate(sorted(root.rglob("*.png")))]
    pd.DataFrame(rows).to_csv(tmp_path / "data" / "table.csv", index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # paths are read from the CSV's folder, not from here
    recipe = _recipe(tmp_path / "r.yaml", {"source": "../data/table.csv", "target": "shade", "drop": ["id"],
                                           "image": {"size": [6, 6]}})
    result = cli("train", recipe, "--out", tmp_path / "run")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.5
    recipe_used = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert recipe_used["model"]["params"]["input_shape"] == [1, 6, 6]
    out = cli("predict", tmp_path / "run" / "bundle", "../data/table.csv", "--out", tmp_path / "p.csv")
    assert out.code == 0, out.err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 32


def test_npz_source(cli, tmp_path):
    images, labels = _arrays()
    np.savez(tmp_path / "shades.npz", x=images, y=labels)
    result = cli("train", _recipe(tmp_path / "r.yaml", {"source": str(tmp_path / "shades.npz")}),
                 "--out", tmp_path / "run")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.5
    used = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert used["model"]["params"]["input_shape"] == [1, 8, 8] and used["data"]["target"] == "label"
    bundle = honing.load(tmp_path / "run" / "bundle")
    frame = pd.DataFrame(images.reshape(len(images), -1) / 255.0, columns=[f"pixel_{i}" for i in range(64)])
    assert (bundle.predict(frame) == labels).mean() > 0.5


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_idx_files(tmp_path):
    images, labels = _arrays()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels.astype(np.uint8))))
    run = honing.train({"data": {"source": str(tmp_path / "train-images-idx3-ubyte.gz")}, "model": {"type": "cnn"},
                        "train": TRAIN, "evaluate": QUICK, "seed": 0}, out=tmp_path / "run")
    assert run.metrics["test"]["accuracy"] > 0.5
    assert run.recipe.model.params["input_shape"] == [1, 8, 8]
    predictions = honing.predict(run.bundle_dir, tmp_path / "train-images-idx3-ubyte.gz")
    assert len(predictions) == 40 and (predictions["prediction"] == labels).mean() > 0.5


def test_missing_image_file(cli, tmp_path):
    root = _folder(tmp_path / "shades")
    paths = sorted(str(p) for p in root.rglob("*.png"))
    frame = pd.DataFrame({"path": paths + [str(tmp_path / "gone.png")],
                          "label": [Path(p).parent.name for p in paths] + ["dark"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "run"
    result = cli("train", _recipe(tmp_path / "r.yaml", {"source": str(tmp_path / "t.csv"), "target": "label"}),
                 "--out", out)
    assert_user_error(result, "image file not found", str(tmp_path / "gone.png"))
    assert not out.exists()


def test_missing_image_file_at_predict_time(cli, tmp_path):
    root = _folder(tmp_path / "shades", per_class=8)
    run = honing.train({"data": {"source": str(root)}, "model": {"type": "mlp"}, "train": TRAIN,
                        "evaluate": QUICK}, out=tmp_path / "run")
    pd.DataFrame({"path": ["shades/dark/dark0.png", "shades/dark/nope.png"]}).to_csv(tmp_path / "new.csv", index=False)
    result = cli("predict", run.bundle_dir, tmp_path / "new.csv", "--out", tmp_path / "p.csv")
    assert_user_error(result, "image file not found", str(tmp_path / "shades" / "dark" / "nope.png"))


def test_mean_without_std(cli, tmp_path):
    root = _folder(tmp_path / "shades", per_class=2)
    recipe = _recipe(tmp_path / "r.yaml", {"source": str(root), "image": {"mean": [0.5]}})
    assert_user_error(cli("train", recipe, "--out", tmp_path / "run"), "data.image", "std")


def test_a_non_image_extra_column(cli, tmp_path):
    root = _folder(tmp_path / "shades", per_class=6)
    frame = honing.api.read_table(root)
    frame["weight"] = np.arange(len(frame), dtype=float) % 5
    frame.to_csv(tmp_path / "t.csv", index=False)
    recipe = _recipe(tmp_path / "r.yaml", {"source": str(tmp_path / "t.csv"), "target": "label"})
    assert_user_error(cli("train", recipe, "--out", tmp_path / "run"), "'path'", "weight", "data.drop")


@pytest.mark.parametrize("model", ["mlp"])
def test_other_neural_models_read_the_pixels_flat(model, tmp_path):
    root = _folder(tmp_path / "shades", per_class=8)
    run = honing.train({"data": {"source": str(root), "image": {"size": [4, 4]}}, "model": {"type": model},
                        "train": TRAIN, "evaluate": QUICK}, out=tmp_path / "run")
    assert "input_shape" not in run.recipe.model.params
    assert run.metrics["rows"]["train"] > 0


def test_tuning_a_cnn_on_rgb_images_gives_every_trial_their_shape(cli, tmp_path):
    """RGB pixels (3 × 8 × 8 = 192 values) are not one square image: each trial must get (3, 8, 8)."""
    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        (tmp_path / "rgb" / label).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 80, (8, 8, 3)).astype(np.uint8)
            pixels[..., channel] += 150
            Image.fromarray(pixels).save(tmp_path / "rgb" / label / f"{i}.png")
    recipe = {"recipe_version": 1, "name": "rgb", "seed": 0, "data": {"source": str(tmp_path / "rgb")},
              "model": {"type": "cnn", "params": {"channels": [4]}}, "train": TRAIN, "evaluate": QUICK,
              "tune": {"trials": 2}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    result = cli("tune", tmp_path / "r.yaml", "--out", tmp_path / "tuned")
    assert result.code == 0, result.err
    best = yaml.safe_load((tmp_path / "tuned" / "best.yaml").read_text())
    assert best["model"]["params"]["input_shape"] == [3, 8, 8]
    manifest = json.loads((tmp_path / "tuned" / "best" / "bundle" / "manifest.json").read_text())
    assert manifest["recipe"]["model"]["params"]["input_shape"] == [3, 8, 8]


def test_init_on_images_writes_a_cnn_recipe_that_trains(cli, tmp_path):
    folder = _folder(tmp_path / "shades")
    result = cli("init", folder, "--out", tmp_path / "folder.yaml")  # no --target: the sub-folders are the labels
    assert result.code == 0, result.err
    recipe = yaml.safe_load((tmp_path / "folder.yaml").read_text())
    assert recipe["data"]["target"] == "label" and recipe["model"]["type"] == "cnn"
    assert_user_error(cli("init", folder, "--target", "lable", "--out", tmp_path / "typo.yaml"), "'lable'", "label")
    assert not (tmp_path / "typo.yaml").exists()
    images, labels = _arrays()
    np.savez(tmp_path / "shades.npz", x=images, y=labels)
    assert cli("init", tmp_path / "shades.npz", "--out", tmp_path / "arrays.yaml").code == 0
    text = (tmp_path / "arrays.yaml").read_text()
    assert "pixel_0 … pixel_63  64 numeric pixel columns" in text and "pixel_5 " not in text  # one line, not 64
    assert yaml.safe_load(text)["model"]["type"] == "cnn"
    result = cli("train", tmp_path / "folder.yaml", "--set", "train.epochs=2", "--out", tmp_path / "run")
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["model"] == "cnn"
