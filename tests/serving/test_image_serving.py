"""Image models over REST: instances carry the image file's bytes, base64-encoded; the answers are the
bundle's own predictions of the same files; bad images are field-level 422s; no path is ever read;
the prediction log keeps a digest, not the bytes."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import honing
from honing.recipe import ServeConfig
from honing.serving.app import create_app

pytestmark = pytest.mark.slow


def _folder(root: Path, side: int = 8, per_class: int = 12) -> Path:
    """RGB images whose class is the brighter channel (red or blue)."""
    rng = np.random.default_rng(0)
    for channel, label in ((0, "red"), (2, "blue")):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 90, (side, side, 3)).astype(np.uint8)
            pixels[..., channel] += 140
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A cnn trained on an image folder (no data.image.size: every image must be 8×8), and its images."""
    root = _folder(tmp_path_factory.mktemp("rgb") / "rgb")
    run = honing.train({"name": "rgb", "data": {"source": str(root)}, "model": {"type": "cnn", "params": {"channels": [4]}},
                        "train": {"epochs": 3, "batch_size": 8}, "evaluate": {"explain": False, "bootstrap": 0}},
                       out=root.parent / "run", track=False)
    return honing.load(run.bundle_dir), sorted(root.rglob("*.png"))


def _encoded(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def test_predictions_are_the_bundles_own_on_the_same_files(served):
    bundle, files = served
    with TestClient(create_app(bundle, ServeConfig())) as client:
        answer = client.post("/v1/predict", json={"instances": [{"path": _encoded(f)} for f in files]})
        data_url = "data:image/png;base64," + _encoded(files[0])
        one = client.post("/v1/predict", json={"instances": [{"path": data_url}]})
        schema = client.get("/openapi.json").json()["components"]["schemas"]["Instance"]["properties"]["path"]
    assert answer.status_code == 200, answer.text
    frame = pd.DataFrame({"path": [str(f) for f in files]})
    assert answer.json()["predictions"] == bundle.predict(frame).tolist()
    expected = bundle.predict_proba(frame)
    got = pd.DataFrame(answer.json()["probabilities"])[list(expected.columns)]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-6, atol=1e-7)
    assert one.json()["predictions"] == bundle.predict(frame.head(1)).tolist()
    assert schema["contentEncoding"] == "base64"  # the API docs say how to send an image


def test_bad_images_are_field_level_422s_and_no_path_is_read(served, tmp_path):
    bundle, files = served
    big = io.BytesIO()
    Image.new("RGB", (16, 16)).save(big, format="PNG")  # the model reads 8×8 images, and sets no size
    cases = [(str(files[0]), "not base64"), (base64.b64encode(b"plain text").decode(), "not an image"),
             (None, "needs its image")]
    with TestClient(create_app(bundle, ServeConfig(missing="accept"))) as client:
        for value, words in cases:
            answer = client.post("/v1/predict", json={"instances": [{"path": _encoded(files[1])}, {"path": value}]})
            assert answer.status_code == 422, (value, answer.text)
            error = answer.json()["detail"][0]
            assert error["loc"][:4] == ["body", "instances", 1, "path"] and words in error["msg"]
        answer = client.post("/v1/predict", json={"instances": [{"path": base64.b64encode(big.getvalue()).decode()}]})
    assert answer.status_code == 422 and "16x16" in answer.json()["detail"] and "8x8" in answer.json()["detail"]


def test_the_log_keeps_a_digest_not_the_image(served, tmp_path):
    import hashlib

    from honing.serving.log_store import read_predictions
    from honing.serving.predict_log import PredictionLog

    bundle, files = served
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with TestClient(create_app(bundle, ServeConfig(), PredictionLog(url))) as client:
        answer = client.post("/v1/predict", json={"instances": [{"path": _encoded(files[0])}]})
    logged = read_predictions(url)
    content = files[0].read_bytes()
    assert logged["prediction"].tolist() == answer.json()["predictions"]
    assert logged["path"].tolist() == [f"image: {len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()[:16]}"]
