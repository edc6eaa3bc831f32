"""Fine-tuning from a recipe: a honing bundle as the source (transfer between digit tasks) and
MiniLM on sentences, with the base model and a from-scratch twin reported beside the result."""

import json
import subprocess
import sys

import pytest
import yaml
from safetensors.torch import load_file

import honing
from conftest import assert_user_error
from honing.data.builtin import load_builtin

pytestmark = pytest.mark.slow

PIXELS = {f"pixel_{i}": "numeric" for i in range(64)}
QUICK = {"bootstrap": 0, "explain": False}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """digits 0–4 and 5–9 as CSV files, and an MLP trained on 0–4 (the pretrained source; its BatchNorm
    statistics must survive frozen fine-tuning)."""
    root = tmp_path_factory.mktemp("digits")
    frame = load_builtin("digits").frame
    target = load_builtin("digits").target
    frame[frame[target] < 5].to_csv(root / "low.csv", index=False)
    frame[frame[target] >= 5].to_csv(root / "high.csv", index=False)
    source = honing.train({"data": {"source": str(root / "low.csv"), "target": target, "task": "classification",
                                    "types": {c: "numeric" for c in frame.columns if c != target}},
                           "model": {"type": "mlp", "params": {"hidden": [64, 32], "norm": "batch"}}, "train": {"epochs": 15},
                           "evaluate": QUICK}, out=root / "source")
    return root, target, source, {c: "numeric" for c in frame.columns if c != target}


def _recipe(root, name, target, types, source, **finetune):
    return {"data": {"source": str(root / name), "target": target, "task": "classification", "types": types},
            "model": {"pretrained": str(source.bundle_dir), "finetune": finetune},
            "train": {"epochs": 8, "optimizer": {"lr": 3e-3}}, "evaluate": QUICK}


def test_transfer_from_a_bundle_with_a_new_head(digits, tmp_path):
    root, target, source, types = digits
    run = honing.train(_recipe(root, "high.csv", target, types, source, mode="frozen", compare_scratch=True),
                       out=tmp_path / "run")
    assert run.model == "pretrained" and run.metrics["classes"] == [5, 6, 7, 8, 9]
    assert run.metrics["base_model"]["method"] == "linear_probe"  # other classes: no zero-shot
    assert {"test", "validation", "seconds"} <= set(run.metrics["scratch"])
    before, after = load_file(source.bundle_dir / "model.safetensors"), load_file(run.bundle_dir / "model.safetensors")
    for key, tensor in before.items():
        if key.startswith("blocks."):
            assert (after[key] == tensor).all(), key  # frozen: the pretrained blocks (and statistics) are unchanged
    assert any("running_mean" in key for key in before)
    assert after["head.weight"].shape[0] == 5
    from honing.models.finetune import source_net

    assert source_net(str(run.bundle_dir)) == ("mlp", (64,))  # a fine-tuned bundle is a source in turn
    assert "Fine-tuning vs base model" in (run.run_dir / "report.html").read_text()
    predictions = honing.load(run.bundle_dir).predict(load_builtin("digits").frame.head(20))
    assert set(predictions) <= {5, 6, 7, 8, 9}


def test_features_mode_probe_reuses_the_training_embeddings(digits, tmp_path, monkeypatch):
    """The linear probe of features mode reads the embeddings made for training: each training row
    goes through the backbone once, and the probe scores what frozen mode's probe (embedding anew) scores."""
    from honing.models import pretrained

    root, target, source, types = digits
    frozen = honing.train(_recipe(root, "high.csv", target, types, source, mode="frozen"), out=tmp_path / "frozen")
    embedded = []
    real = pretrained.run_batched

    def counting(module, X, *args, **kwargs):
        embedded.append(len(X))
        return real(module, X, *args, **kwargs)

    monkeypatch.setattr(pretrained, "run_batched", counting)
    run = honing.train(_recipe(root, "high.csv", target, types, source, mode="features"), out=tmp_path / "features")
    rows = run.metrics["rows"]
    assert sorted(embedded) == sorted([rows["train"], rows["validation"], rows["validation"], rows["test"]])
    for split in ("validation", "test"):
        assert run.metrics["base_model"][split]["accuracy"] == pytest.approx(
            frozen.metrics["base_model"][split]["accuracy"], abs=1e-12)


def test_same_classes_base_model_is_the_source_as_is(digits, tmp_path):
    """Zero-shot on the source's own task scores what the source bundle scores (the same split)."""
    root, target, source, types = digits
    run = honing.train(_recipe(root, "low.csv", target, types, source, mode="full"), out=tmp_path / "run")
    base = run.metrics["base_model"]
    assert base["method"] == "zero_shot"
    assert base["test"]["accuracy"] == pytest.approx(source.metrics["test"]["accuracy"])


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    frame = load_builtin("sst2").frame
    small = frame.groupby("split").head(60)
    path = tmp_path_factory.mktemp("sst") / "sst.csv"
    small.to_csv(path, index=False)
    return path


def test_minilm_lora_from_the_cli_serves_without_peft(sentences, tmp_path, cli):
    recipe = {"data": {"source": str(sentences), "target": "label", "split": {"column": "split"}, "max_tokens": 40},
              "model": {"pretrained": "builtin:minilm",
                        "finetune": {"mode": "lora", "base_eval": "zero_shot", "lora": {"rank": 4, "alpha": 8}}},
              "train": {"epochs": 2, "batch_size": 16, "bucket_by_length": True, "optimizer": {"lr": 1e-3}},
              "evaluate": QUICK}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = cli("train", path, "--out", tmp_path / "run")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["base_model"]["method"] == "zero_shot" and 0 <= metrics["base_model"]["test"]["accuracy"] <= 1
    resolved = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert resolved["data"]["text"] == "pretrained" and resolved["data"]["tokenizer"] == "builtin:minilm"
    script = ("import sys; sys.modules['peft'] = None\n"  # importing peft now fails
              "import pandas as pd, honing\n"
              f"m = honing.load({str(tmp_path / 'run' / 'bundle')!r})\n"
              "print([str(p) for p in m.predict(pd.DataFrame({'sentence': ['a wonderful film', 'dull and lifeless']}))])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert set(eval(out.stdout.strip().splitlines()[-1])) <= {"negative", "positive"}


@pytest.mark.parametrize(("model", "words"), [
    ({"pretrained": "no/such/folder"}, ["model.pretrained", "no/such/folder"]),
    ({"pretrained": "builtin:minilm", "type": "lightgbm"}, ["model.pretrained", "pretrained"]),
    ({"pretrained": "builtin:bert"}, ["model.pretrained", "builtin:bert"]),
])
def test_pretrained_mistakes_are_one_line_errors(model, words, tmp_path, cli):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "builtin:sst2"}, "model": model}))
    assert_user_error(cli("train", path, "--out", tmp_path / "run"), *words)
    assert not (tmp_path / "run").exists()


def test_a_bundle_without_a_supervised_network_is_refused_before_training(digits, tmp_path, cli):
    """A char_lm bundle is a network, but not one with features in and a head out."""
    root, target, source, types = digits
    (tmp_path / "text.csv").write_text("text\n" + "a cat sees a dog.\n" * 40)
    lm = honing.train({"data": {"source": str(tmp_path / "text.csv"), "target": "text", "task": "generation"},
                       "model": {"type": "char_lm", "params": {"block_size": 8, "d_model": 8, "heads": 1, "layers": 1}},
                       "train": {"epochs": 1}}, out=tmp_path / "lm", track=False)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**_recipe(root, "high.csv", target, types, source),
                                    "model": {"pretrained": str(lm.bundle_dir)}}))
    result = cli("train", path, "--out", tmp_path / "run")
    assert_user_error(result, "model.pretrained", "generation model")
    assert "preprocessing" not in result.err and not (tmp_path / "run").exists()


def test_lora_needs_a_text_backbone(digits, tmp_path, cli):
    root, target, source, types = digits
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(_recipe(root, "high.csv", target, types, source, mode="lora")))
    assert_user_error(cli("train", path, "--out", tmp_path / "run"), "finetune.mode")


def test_zero_shot_that_cannot_apply_fails_before_training(digits, tmp_path, cli):
    root, target, source, types = digits  # the source knows digits 0–4; this task is 5–9: no zero-shot
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(_recipe(root, "high.csv", target, types, source, base_eval="zero_shot")))
    result = cli("train", path, "--out", tmp_path / "run")
    assert_user_error(result, "base_eval", "zero_shot")
    assert "preprocessing" not in result.err and not (tmp_path / "run").exists()  # stopped before it


# --------------------------------------------------------------------------- streamed tables


def _streamed(digits, tmp_path, **finetune) -> dict:
    root, target, source, types = digits
    frame = load_builtin("digits").frame
    path = root / "high.parquet"
    if not path.exists():
        frame[frame[target] >= 5].reset_index(drop=True).to_parquet(path, row_group_size=150, index=False)
    recipe = _recipe(root, "high.parquet", target, types, source, **finetune)
    recipe["data"].update(streaming=True, workers=0)
    recipe["train"].update(epochs=10, batch_size=32, optimizer={"lr": 1e-2})
    return recipe


def test_a_streamed_table_fine_tunes_a_bundle(digits, tmp_path):
    """model.pretrained on a table read in chunks: the bundle's blocks frozen, a new head trained on the
    streamed rows, and the base model (a linear probe) scored on the row sample beside it."""
    _, _, source, _ = digits
    run = honing.train(_streamed(digits, tmp_path, mode="frozen"), out=tmp_path / "run")
    assert run.model == "pretrained" and run.metrics["classes"] == [5, 6, 7, 8, 9]
    assert run.metrics["streaming"]["rows_read"] == sum(run.metrics["rows"].values())
    base = run.metrics["base_model"]
    assert base["method"] == "linear_probe" and base["rows"] == "sample" and 0.5 < base["test"]["accuracy"] <= 1
    assert run.metrics["test"]["accuracy"] > 0.7  # chance is 0.2; in memory about 0.83, as streamed
    before, after = load_file(source.bundle_dir / "model.safetensors"), load_file(run.bundle_dir / "model.safetensors")
    for key, tensor in before.items():
        if key.startswith("blocks."):
            assert (after[key] == tensor).all(), key
    assert after["head.weight"].shape[0] == 5
    assert "Fine-tuning vs base model" in (run.run_dir / "report.html").read_text()


@pytest.mark.parametrize(("finetune", "key"), [({"mode": "features"}, "model.finetune.mode"),
                                               ({"compare_scratch": True}, "model.finetune.compare_scratch")])
def test_what_a_streamed_fine_tune_cannot_do_is_refused(digits, finetune, key, tmp_path, cli):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(_streamed(digits, tmp_path, **finetune)))
    assert_user_error(cli("train", path, "--out", tmp_path / "run"), key, "frozen" if "mode" in finetune else key)
    assert not (tmp_path / "run").exists()


def test_minilm_fine_tunes_on_a_streamed_table_with_its_own_tokenizer(sentences, tmp_path):
    import pandas as pd

    path = tmp_path / "s.parquet"
    pd.read_csv(sentences).drop(columns="split").to_parquet(path, row_group_size=50, index=False)
    run = honing.train({"data": {"source": str(path), "target": "label", "max_tokens": 32, "streaming": True,
                                 "workers": 1},
                        "model": {"pretrained": "builtin:minilm", "finetune": {"mode": "lora", "lora": {"rank": 4}}},
                        "train": {"epochs": 1, "batch_size": 16}, "evaluate": QUICK}, out=tmp_path / "run")
    assert run.recipe.data.text == "pretrained"  # the model's tokenizer, in the reader process
    assert run.metrics["base_model"]["method"] == "zero_shot" and run.metrics["base_model"]["rows"] == "sample"
    weights = load_file(run.bundle_dir / "model.safetensors")
    assert not any("lora" in key for key in weights)  # merged on save: served without peft
    predictions = honing.load(run.bundle_dir).predict(pd.DataFrame({"sentence": ["a wonderful film", "dull"]}))
    assert set(predictions) <= {"negative", "positive"}
