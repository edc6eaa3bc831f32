"""``data.streaming`` on images: an image folder (its listing in memory, the pixels decoded batch by
batch) or a table of image paths, trained as a cnn like the in-memory run, with nothing cached."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score

import honing
from conftest import assert_user_error
from honing.data import image_pixels
from honing.data.streaming import TableFile, split_codes
from honing.errors import RecipeError
from honing.train_flow import train

pytestmark = pytest.mark.slow

TRAIN = {"epochs": 6, "batch_size": 16, "optimizer": {"lr": 0.01}, "early_stopping": None}
QUICK = {"explain": False, "bootstrap": 0}


def _folder(root, per_class: int = 40):
    """RGB 8×8 images whose class is the strongest colour channel (red, green, blue)."""
    rng = np.random.default_rng(0)
    for channel, label in enumerate(("red", "green", "blue")):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 90, (8, 8, 3)).astype(np.uint8)
            pixels[..., channel] += 140
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


def _recipe(source, **data) -> dict:
    return {"name": "colours", "seed": 3, "data": {"source": str(source), "streaming": True, "chunk_rows": 16, **data},
            "model": {"type": "cnn", "params": {"channels": [8]}}, "train": TRAIN, "evaluate": QUICK,
            "tracking": False}


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("colours") / "colours")


def test_a_streamed_image_folder_trains_a_cnn_whose_bundle_predicts_paths(colours, tmp_path):
    image_pixels.clear_cache()
    run = train(_recipe(colours), out=tmp_path / "run", track=False)
    assert image_pixels.cache_info()["images"] <= 2  # batches are decoded anew: only the 2 rows sizing the inputs stay
    metrics = run.metrics
    assert run.model == "cnn" and metrics["target"] == "label" and metrics["classes"] == ["blue", "green", "red"]
    assert sum(metrics["rows"].values()) == 120 and "streaming" in metrics
    assert metrics["test"]["accuracy"] >= 0.9 > metrics["baseline"]["test"]["accuracy"]
    manifest = json.loads((run.bundle_dir / "manifest.json").read_text())
    assert manifest["recipe"]["model"]["params"]["input_shape"] == [3, 8, 8]  # RGB: told the shape, not guessed

    # metrics.json's test accuracy is scikit-learn's on the bundle's predictions of the test rows
    listing = TableFile.open(colours).listing
    test = listing[split_codes(np.arange(len(listing), dtype=np.uint64), 3, 0.15, 0.15) == 2]
    bundle = honing.load(run.bundle_dir)
    assert accuracy_score(test["label"], bundle.predict(test[["path"]])) == pytest.approx(
        metrics["test"]["accuracy"], abs=1e-12)


def test_streamed_pixels_are_the_in_memory_pixels(colours):
    from honing.data.image_pixels import ImagePixels
    from honing.data.schema import infer_schema
    from honing.data.streaming import Plan
    from honing.recipe import DataConfig

    table = TableFile.open(colours)
    table.images = ["path"]
    schema = infer_schema(table.listing, target="label")
    plan = Plan(table, schema, "label", "classification", 0, 0.0, 0.0, 50)
    from honing.data.preprocess import build_preprocessor

    plan.preprocessor = build_preprocessor(schema, DataConfig(source=str(colours), image={"size": [6, 6]})).fit(
        table.listing.head(1))
    plan.labels = {"blue": 0, "green": 1, "red": 2}
    first, frame = next(table.frames(plan.columns, 50))
    X, y, _ = plan.arrays(first, frame, (0,), standardise=False)
    expected = ImagePixels(size=[6, 6]).fit(frame[["path"]]).transform(frame[["path"]])
    np.testing.assert_array_equal(X, expected)
    assert X.shape == (50, 3 * 6 * 6) and list(y) == [plan.labels[v] for v in frame["label"]]
    rows = sorted(p for _, chunk in table.frames(["path"], 7) for p in chunk["path"])
    assert rows == sorted(str(p) for p in colours.rglob("*.png"))  # every image once, whatever the chunking


def test_a_streamed_table_of_relative_paths(colours, tmp_path, monkeypatch):
    rows = [{"file": str(p.relative_to(colours.parent)), "colour": p.parent.name, "id": i}
            for i, p in enumerate(sorted(colours.rglob("*.png")))]
    pd.DataFrame(rows).to_csv(colours.parent / "files.csv", index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # paths are read from the CSV's folder, not from here
    run = train(_recipe(colours.parent / "files.csv", target="colour", drop=["id"]), out=tmp_path / "run",
                track=False)
    assert run.metrics["test"]["accuracy"] >= 0.9


def test_image_streaming_mistakes_are_one_line_errors(colours, tmp_path, cli):
    rows = [{"file": str(p), "colour": p.parent.name, "size": 1} for p in sorted(colours.rglob("*.png"))]
    rows[100]["file"] = str(colours / "red" / "gone.png")
    pd.DataFrame(rows).to_csv(tmp_path / "missing.csv", index=False)
    (tmp_path / "r.yaml").write_text(json.dumps(_recipe(tmp_path / "missing.csv", target="colour", drop=["size"])))
    assert_user_error(cli("train", tmp_path / "r.yaml", "--out", tmp_path / "run1"), "gone.png")
    assert not (tmp_path / "run1").exists()
    (tmp_path / "r.yaml").write_text(json.dumps(_recipe(tmp_path / "missing.csv", target="colour")))
    assert_user_error(cli("train", tmp_path / "r.yaml", "--out", tmp_path / "run2"), "size", "data.drop")


def _png(height: int = 8, width: int = 8) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3)).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(("name", "content", "words"), [
    ("bad.png", b"notanimage", ("bad.png", "not an image")),
    ("odd.png", _png(9, 7), ("odd.png", "9x7", "data.image.size")),
    ("cut.png", _png()[:150], ("cut.png", "truncated"))])  # (the header is whole)
def test_a_bad_image_is_a_one_line_error_and_leaves_no_run(colours, tmp_path, cli, name, content, words):
    """Not an image, or another size: found by the statistics pass (from the headers), before training.
    Damaged after its header: found when a reader process decodes it, and said in one line as well."""
    folder = shutil.copytree(colours, tmp_path / "colours")
    (folder / "red" / name).write_bytes(content)
    (tmp_path / "r.yaml").write_text(json.dumps(_recipe(folder, workers=1)))
    result = cli("train", tmp_path / "r.yaml", "--out", tmp_path / "run")
    assert_user_error(result, *words)
    assert ("fitting preprocessing" in result.err) == (name == "cut.png")  # the others: before training
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


def test_streaming_auto_streams_a_folder_larger_than_the_threshold(colours, monkeypatch, tmp_path):
    from honing.data import streaming
    from honing.recipe import DataConfig

    assert not streaming.streams(DataConfig(source=str(colours)))  # 120 small images
    assert streaming.estimated_bytes(colours, streaming.FOLDER, DataConfig(source=str(colours))) == 120 * 3 * 8 * 8 * 4
    monkeypatch.setattr(streaming, "AUTO_BYTES", 10_000)
    assert streaming.streams(DataConfig(source=str(colours)))
    recipe = {**_recipe(colours, streaming="auto"), "model": {"type": "auto"}}
    with pytest.raises(RecipeError, match="model.type: auto .*streams because data.streaming: auto") as caught:
        train(recipe, out=tmp_path / "run", track=False)  # said why, since the recipe never asked to stream
    assert "data.streaming: false" in str(caught.value) and not (tmp_path / "run").exists()
