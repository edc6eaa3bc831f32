"""The README tour on a user's own CSV: init → train → predict → evaluate, through the CLI."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import r2_score


def test_init_train_predict_evaluate(cli, houses_csv, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    result = cli("init", houses_csv, "--target", "price", "--out", recipe)
    assert result.code == 0, result.err
    text = recipe.read_text()
    assert "house_id" in text and "identifier" in text  # the id column is shown and dropped
    assert yaml.safe_load(text)["data"]["target"] == "price"

    run = tmp_path / "run"
    result = cli("train", recipe, "--set", "model.type=ridge", "--out", run)
    assert result.code == 0, result.err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "regression" and metrics["model"] == "ridge"
    assert metrics["test"]["r2"] > 0.9
    resolved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert resolved["model"]["type"] == "ridge" and resolved["data"]["task"] == "regression"

    out = tmp_path / "pred.csv"
    new_rows = pd.read_csv(houses_csv).drop(columns=["price"]).head(20)
    new_rows.to_csv(tmp_path / "new.csv", index=False)
    result = cli("predict", run / "bundle", tmp_path / "new.csv", "-o", out, "--keep", "house_id")
    assert result.code == 0, result.err
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["house_id", "prediction"] and len(predictions) == 20

    result = cli("evaluate", run / "bundle", houses_csv, "--out", tmp_path / "eval.json")
    assert result.code == 0, result.err
    scored = json.loads((tmp_path / "eval.json").read_text())
    frame = pd.read_csv(houses_csv)
    import honing

    expected = r2_score(frame["price"], honing.load(run / "bundle").predict(frame))
    assert np.isclose(scored["r2"], expected)


def test_predict_parquet_with_probabilities(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("quickstart", "--out", run).code == 0
    from honing.data.builtin import load_builtin

    frame = load_builtin("titanic").frame.drop(columns=["Survived"]).head(30)
    frame.to_parquet(tmp_path / "rows.parquet")
    result = cli("predict", run / "bundle", tmp_path / "rows.parquet", "-o", tmp_path / "p.parquet")
    assert result.code == 0, result.err
    out = pd.read_parquet(tmp_path / "p.parquet")
    assert list(out.columns) == ["prediction", "proba_0", "proba_1"]
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].sum(axis=1), 1.0)
    assert set(out["prediction"]) <= {0, 1}


def test_help_is_lazy():
    """`honing --help` must not import the heavy libraries (that is what makes it instant)."""
    code = ("import sys; from honing.cli import app; import typer.main; typer.main.get_command(app);"
            "heavy = [m for m in ('pandas', 'sklearn', 'torch', 'lightgbm', 'numpy') if m in sys.modules];"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_console_script_help_and_version():
    out = subprocess.run([sys.executable, "-m", "honing.cli", "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "quickstart" in out.stdout and "train" in out.stdout
    out = subprocess.run([sys.executable, "-m", "honing.cli", "--version"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.startswith("honing ")


def test_models_lists_every_type(cli):
    from honing.models.classic import MODELS

    result = cli("models")
    assert result.code == 0, result.err
    for name in MODELS.names():
        assert name in result.out


def test_train_without_validation_or_test_split(cli, houses_csv, tmp_path):
    import yaml as _yaml

    recipe = tmp_path / "r.yaml"
    recipe.write_text(_yaml.safe_dump({"data": {"source": str(houses_csv), "target": "price"},
                                       "model": {"type": "ridge"}}))
    run = tmp_path / "noval"
    result = cli("train", recipe, "--set", "data.split.validation=0", "--out", run)
    assert result.code == 0, result.err
    metrics = json.loads((run / "metrics.json").read_text())
    assert "validation" not in metrics and metrics["test"]["r2"] > 0.9
    result = cli("train", recipe, "--set", "data.split.test=0", "--out", tmp_path / "notest")
    assert result.code == 0, result.err
    result = cli("train", recipe, "--set", "data.split.validation=0", "--set", "model.type=auto")
    assert result.code == 2 and "validation split" in result.err
