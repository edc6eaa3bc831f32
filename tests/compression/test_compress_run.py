"""`honing compress` and `honing export` end to end on small bundles: the gate's table, the winner's
bundle (its lineage, its metric checked independently), the "none qualifies" path, ONNX export and
the one-line errors."""

import json

import numpy as np
import pytest
import yaml
from sklearn.metrics import accuracy_score

import honing
from conftest import assert_user_error
from honing.bundle import load_bundle
from honing.data.dataset import encode_target, load_dataset
from honing.recipe import load_recipe

pytestmark = pytest.mark.slow
QUICK = {"bootstrap": 0, "explain": False}


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """An MLP bundle on sklearn's digits (wide enough for pruning and int8 to matter)."""
    root = tmp_path_factory.mktemp("mlp")
    return honing.train({"name": "digits", "data": {"source": "builtin:digits"},
                         "model": {"type": "mlp", "params": {"hidden": [256, 128]}},
                         "train": {"epochs": 25}, "evaluate": QUICK}, out=root / "run", track=False)


@pytest.fixture(scope="module")
def logistic(tmp_path_factory):
    root = tmp_path_factory.mktemp("logistic")
    return honing.train({"name": "pima", "data": {"source": "builtin:pima_diabetes"},
                         "model": {"type": "logistic_regression"}, "evaluate": QUICK}, out=root / "run", track=False)


def _validation_accuracy(bundle_dir, recipe):
    """Accuracy of a bundle on its recipe's validation split, computed here (not by honing's gate)."""
    bundle = honing.load(bundle_dir)
    parsed = load_recipe(recipe)
    rows = load_dataset(parsed.data, parsed.seed).splits["validation"]
    y = encode_target(rows[bundle.manifest["target"]], bundle.task, bundle.classes)
    return accuracy_score(np.asarray(bundle.classes)[y], bundle.predict(rows))


def test_default_ladder_writes_the_smallest_qualifying_model(mlp, tmp_path, cli):
    out = tmp_path / "small"
    result = cli("compress", mlp.bundle_dir, "--out", out, "--max-drop", "0.02")
    assert result.code == 0, result.err
    assert "compression candidates" in result.out and f"bundle: {out}" in " ".join(result.out.split())
    manifest = json.loads((out / "manifest.json").read_text())
    rows = {r["name"]: r for r in manifest["metrics"]["compression"]["candidates"]}
    assert {"original", "onnx fp32", "int8 dynamic", "pruned 30%", "pruned 50%", "pruned 70%"} <= set(rows)
    chosen = manifest["metrics"]["compression"]["chosen"]
    assert manifest["lineage"]["compression"] == chosen and manifest["lineage"]["parent"] == str(mlp.bundle_dir)
    parent = json.loads((mlp.bundle_dir / "manifest.json").read_text())
    assert manifest["lineage"]["parent_manifest_sha256"] == parent["manifest_sha256"]
    assert rows[chosen]["size_bytes"] == min(r["size_bytes"] for r in rows.values() if r.get("qualifies"))
    assert rows[chosen]["size_bytes"] < rows["original"]["size_bytes"]
    recipe = mlp.run_dir / "recipe.yaml"
    before, after = _validation_accuracy(mlp.bundle_dir, recipe), _validation_accuracy(out, recipe)
    assert before - after <= 0.02 + 1e-9  # the gate's promise, checked independently
    assert after == pytest.approx(rows[chosen]["metric"])


def test_none_qualifies_writes_nothing(mlp, tmp_path, cli):
    out = tmp_path / "none"
    result = cli("compress", mlp.bundle_dir, "--out", out, "--max-drop", "0",
                 "--set", "compress.prune={amount: 0.95, finetune_epochs: 0}")
    assert_user_error(result, "no candidate", "nothing was written")
    assert "pruned" in result.out and not out.exists()


def test_configured_quantization_and_distillation_of_a_classic_model(logistic, tmp_path):
    result = honing.compress(logistic.bundle_dir, ["compress.quantize=[dynamic]", "compress.max_metric_drop=1",
                                                   ("compress.distill={student: {type: mlp, params: {hidden: [8]}}, "
                                                    "epochs: 5}")], out=tmp_path / "c")
    by_name = {m.name: m for m in result.measured}
    assert list(by_name)[:3] == ["original", "int8 dynamic", "distilled"]
    assert "linear layers" in by_name["int8 dynamic"].error  # skl2onnx's LinearClassifier has no MatMul to quantize
    assert by_name["distilled"].error is None and by_name["distilled"].parameters > 0
    assert by_name["distilled"].qualifies  # any drop is allowed here: so a neural student is quantized in turn
    assert by_name["distilled + int8"].error is None and by_name["distilled + int8"].size_bytes > 0


def test_pruning_a_classic_model_is_skipped_with_a_reason(logistic, tmp_path, cli):
    result = honing.compress(logistic.bundle_dir, ["compress.prune={amount: 0.5}"], out=tmp_path / "c")
    pruned = next(m for m in result.measured if m.name.startswith("pruned"))
    assert "neural" in pruned.error
    # the only candidate skipped: the error says none could be tried (not that none kept the metric), the reason once
    shown = cli("compress", logistic.bundle_dir, "--out", tmp_path / "c", "--set", "compress.prune={amount: 0.5}")
    assert_user_error(shown, "no candidate could be tried", "pruned 50%", "compress.distill")
    assert " ".join((shown.out + shown.err).split()).count("pruning applies to neural models") == 1
    assert not (tmp_path / "c").exists()


def test_export_attaches_an_onnx_model_with_parity(mlp, tmp_path, cli):
    copy = tmp_path / "bundle"
    import shutil

    shutil.copytree(mlp.bundle_dir, copy)
    result = cli("export", copy, "--format", "onnx", "-o", tmp_path / "digits.onnx")
    assert result.code == 0, result.err
    assert (copy / "model.onnx").is_file() and (tmp_path / "digits.onnx").read_bytes() == (copy / "model.onnx").read_bytes()
    rows = load_dataset(load_recipe(mlp.run_dir / "recipe.yaml").data, 42).splits["test"]
    native = honing.load(copy)
    onnx = load_bundle(copy, trusted=honing.api.TRUSTED_TYPES, backend="onnx")
    onnx.prepare = native.prepare
    np.testing.assert_allclose(onnx.predict_proba(rows).to_numpy(), native.predict_proba(rows).to_numpy(), atol=1e-4)


@pytest.mark.parametrize(("args", "words"), [
    (["--format", "pmml"], ["--format", "pmml"]),
    (["-o", "model.txt"], ["--out", ".onnx"]),
])
def test_export_mistakes(mlp, tmp_path, cli, args, words):
    assert_user_error(cli("export", mlp.bundle_dir, *args), *words)
    assert not (mlp.bundle_dir / "model.onnx").exists()


def test_compress_mistakes(mlp, tmp_path, cli):
    assert_user_error(cli("compress", tmp_path / "nope"), "nope")
    assert_user_error(cli("compress", mlp.bundle_dir, "--out", mlp.bundle_dir), "--out", "the bundle being compressed")
    assert_user_error(cli("compress", mlp.bundle_dir, "--data", tmp_path / "gone.csv"), "gone.csv", "--data")
    assert_user_error(cli("compress", mlp.bundle_dir, "--set", "compress.prune.amount=2"), "compress.prune.amount")
    for key in ("model.type=lightgbm", "seed=1", "data.source=other.csv"):  # the bundle's own: not compress's to change
        assert_user_error(cli("compress", mlp.bundle_dir, "--set", key), f"--set {key}", "compress.* keys")
    bad = tmp_path / "r.yaml"
    bad.write_text(yaml.safe_dump({"data": {"source": "x.csv"}, "compress": {"quantize": ["int4"]}}))
    assert_user_error(cli("train", bad), "compress.quantize")


def test_predict_uses_the_onnx_model_when_the_bundle_has_one(mlp, tmp_path, cli):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(mlp.bundle_dir, copy)
    honing.export(copy)
    assert honing.load(copy).backend == "onnx" and honing.load(copy, backend="native").backend == "native"
    rows = tmp_path / "rows.csv"
    load_dataset(load_recipe(mlp.run_dir / "recipe.yaml").data, 42).splits["test"].to_csv(rows, index=False)
    outs = {}
    for backend in ("auto", "native"):
        outs[backend] = tmp_path / f"{backend}.csv"
        assert cli("predict", copy, rows, "-o", outs[backend], "--backend", backend).code == 0
    import pandas as pd

    a, b = pd.read_csv(outs["auto"]), pd.read_csv(outs["native"])
    assert (a["prediction"] == b["prediction"]).mean() > 0.99
    np.testing.assert_allclose(a.filter(like="proba_").to_numpy(), b.filter(like="proba_").to_numpy(), atol=1e-4)
    assert_user_error(cli("predict", copy, rows, "-o", tmp_path / "x.csv", "--backend", "tpu"), "tpu", "native")


def test_qualifying_but_not_smaller_says_so(mlp, tmp_path, cli):
    out = tmp_path / "sparse"  # unstructured pruning zeroes weights, and zeros take as many bytes
    result = cli("compress", mlp.bundle_dir, "--out", out, "--max-drop", "1",
                 "--set", "compress.prune={amount: 0.5, structured: false, finetune_epochs: 0}")
    assert_user_error(result, "within the budget is smaller", "pruned 50%", "structured")
    assert not out.exists()


def test_an_int8_bundle_is_onnx_and_exports_as_it_is(mlp, tmp_path, cli):
    out = tmp_path / "int8"
    result = cli("compress", mlp.bundle_dir, "--out", out, "--max-drop", "1", "--set", "compress.quantize=[dynamic]")
    assert result.code == 0, result.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_format"] == "onnx" and manifest["onnx"]["quantized"] == "int8-dynamic"
    assert_user_error(cli("export", out), "already ONNX", "-o")
    assert cli("export", out, "-o", tmp_path / "m.onnx").code == 0
    assert (tmp_path / "m.onnx").read_bytes() == (out / "model.onnx").read_bytes()


def test_the_hint_for_nothing_smaller_fits_what_qualified():
    """Pruning that qualified but stores its zeros: structured pruning; otherwise (the ONNX twin qualified,
    the smaller ones lost too much): a larger drop, distillation, or the other gain."""
    from types import SimpleNamespace as Measured

    from honing.cli_deploy import _nothing_written

    def result(*qualified: str):
        rows = [Measured(name="original", error=None, qualifies=True)]
        rows += [Measured(name=name, error=None, qualifies=name in qualified)
                 for name in ("onnx fp32", "int8 dynamic", "pruned 50%")]
        return Measured(measured=rows, prefer="size", metric="accuracy", max_drop=0.01)

    assert "structured pruning" in _nothing_written(result("pruned 50%")).hint
    hint = _nothing_written(result("onnx fp32")).hint
    assert "--max-drop" in hint and "compress.distill" in hint and "compress.prefer=latency" in hint
    assert "structured" not in hint
