"""Every user mistake: one line on stderr naming the file/column/key, exit code 2, no traceback,
nothing half-written."""

import json
import shutil

import pandas as pd
import pytest

from conftest import assert_user_error


def write_recipe(path, source, **data):
    import yaml

    path.write_text(yaml.safe_dump({"recipe_version": 1, "name": "t",
                                    "data": {"source": str(source), **data}}))
    return path


@pytest.fixture
def trained(cli, houses_csv, tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    recipe = write_recipe(run.parent / "r.yaml", houses_csv, target="price")
    assert cli("train", recipe, "--set", "model.type=ridge", "--out", run).code == 0
    return run


def test_missing_file(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "nope.csv", target="y")
    out = tmp_path / "run"
    assert_user_error(cli("train", recipe, "--out", out), "nope.csv", "not found")
    assert not out.exists()


def test_directory_instead_of_file(cli, tmp_path):
    (tmp_path / "adir").mkdir()
    assert_user_error(cli("init", tmp_path / "adir", "--target", "y", "--out", tmp_path / "r.yaml"), "adir")
    assert not (tmp_path / "r.yaml").exists()


def test_unknown_format(cli, tmp_path):
    (tmp_path / "data.xlsx").write_bytes(b"PK\x03\x04")
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "data.xlsx", target="y")
    assert_user_error(cli("train", recipe), "data.xlsx")


def test_empty_file(cli, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "empty.csv", target="y")
    assert_user_error(cli("train", recipe), "empty.csv")
    (tmp_path / "header.csv").write_text("a,b,y\n")
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "header.csv", target="y")
    assert_user_error(cli("train", recipe), "header.csv", "no rows")


def test_target_missing_suggests_close_match(cli, houses_csv, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", houses_csv, target="Price")
    assert_user_error(cli("train", recipe), "Price", "'price'")


def test_single_class_target(cli, tmp_path):
    pd.DataFrame({"x": range(20), "y": ["a"] * 20}).to_csv(tmp_path / "one.csv", index=False)
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "one.csv", target="y", task="classification")
    assert_user_error(cli("train", recipe), "single class")


def test_all_missing_target(cli, tmp_path):
    pd.DataFrame({"x": range(20), "y": [None] * 20}).to_csv(tmp_path / "nan.csv", index=False)
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "nan.csv", target="y")
    assert_user_error(cli("train", recipe), "'y'", "missing")


def test_recipe_wrong_type_and_unknown_key(cli, houses_csv, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", houses_csv, target="price")
    assert_user_error(cli("train", recipe, "--set", "data.split.test=lots"), "data.split.test")
    text = recipe.read_text().replace("target:", "targett:")
    (tmp_path / "typo.yaml").write_text(text)
    assert_user_error(cli("train", tmp_path / "typo.yaml"), "typo.yaml", "data.targett", "did you mean 'target'")


def test_unknown_model_type_and_param(cli, houses_csv, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", houses_csv, target="price")
    assert_user_error(cli("train", recipe, "--set", "model.type=random_forrest"), "model.type", "random_forest")
    assert_user_error(cli("train", recipe, "--set", "model.type=random_forest",
                          "--set", "model.params.n_estimator=5"), "model.params.n_estimator", "n_estimators")


def test_predict_data_lacking_columns(cli, trained, houses_csv, tmp_path):
    frame = pd.read_csv(houses_csv).drop(columns=["area", "city"])
    frame.to_csv(tmp_path / "less.csv", index=False)
    out = tmp_path / "p.csv"
    assert_user_error(cli("predict", trained / "bundle", tmp_path / "less.csv", "-o", out), "area", "city")
    assert not out.exists()


def test_tampered_bundle(cli, trained, houses_csv, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(trained / "bundle", bundle)
    model = next(p for p in bundle.iterdir() if p.name.startswith("model."))
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    assert_user_error(cli("predict", bundle, houses_csv, "-o", tmp_path / "p.csv"), "checksum")
    assert_user_error(cli("verify", bundle), "checksum")
    assert not (tmp_path / "p.csv").exists()


def test_unknown_bundle_format_version(cli, trained, houses_csv, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(trained / "bundle", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["format_version"] = 99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert_user_error(cli("evaluate", bundle, houses_csv), "newer")


def test_not_a_bundle(cli, houses_csv, tmp_path):
    assert_user_error(cli("predict", tmp_path, houses_csv, "-o", tmp_path / "p.csv"), "bundle")


def test_init_refuses_to_overwrite(cli, houses_csv, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("mine")
    assert_user_error(cli("init", houses_csv, "--target", "price", "--out", recipe), "--force")
    assert recipe.read_text() == "mine"


def test_bad_output_format(cli, trained, houses_csv, tmp_path):
    assert_user_error(cli("predict", trained / "bundle", houses_csv, "-o", tmp_path / "p.xlsx"), ".csv")


def test_debug_shows_traceback(cli, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "nope.csv", target="y")
    from honing.errors import HoningError

    with pytest.raises(HoningError):
        cli("--debug", "train", recipe)


def test_model_names_are_checked_before_reading_data(cli, tmp_path):
    """A typo in the model section fails at once: no data is read (the source does not even exist)."""
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "not-there.csv", target="y")
    result = cli("train", recipe, "--set", "model.type=lightgbn")
    assert_user_error(result, "model.type", "lightgbm")
    assert result.err.count("\n") == 1
    assert_user_error(cli("train", recipe, "--set", "model.candidates=[linear, forest]"), "model.candidates")
    # a portfolio's members keep their defaults: parameters for "auto" were silently dropped
    assert_user_error(cli("train", recipe, "--set", "model.params.max_depth=3"), "model.params", "max_depth",
                      "model.type is auto")


def test_outputs_that_are_directories(cli, trained, houses_csv, tmp_path):
    (tmp_path / "mine").mkdir()
    assert_user_error(cli("evaluate", trained / "bundle", houses_csv, "-o", tmp_path / "mine"), "is a directory")
    (tmp_path / "d.csv").mkdir()
    assert_user_error(cli("predict", trained / "bundle", houses_csv, "-o", tmp_path / "d.csv"), "is a directory")


def test_warnings_are_one_line(cli, trained, houses_csv, tmp_path):
    frame = pd.read_csv(houses_csv)
    frame["area"] = frame["area"].astype(str)
    frame.loc[0, "area"] = "105.2 m2"
    frame.to_csv(tmp_path / "odd.csv", index=False)
    result = cli("predict", trained / "bundle", tmp_path / "odd.csv", "-o", tmp_path / "p.csv")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert any("area" in w and "105.2 m2" in w for w in warnings), result.err
    assert "warnings.warn" not in result.err
    infinite = pd.read_csv(houses_csv)
    infinite.loc[::10, "area"] = float("inf")
    infinite.to_csv(tmp_path / "train.csv", index=False)  # training coerces each split more than once
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "train.csv", target="price")
    result = cli("train", recipe, "--set", "model.type=ridge", "--out", tmp_path / "run")
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: ")]
    assert any("infinite" in w for w in warnings) and len(warnings) == len(set(warnings)), result.err


def test_neural_model_on_the_wrong_kind_of_data(cli, houses_csv, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", houses_csv, target="price")
    assert_user_error(cli("train", recipe, "--set", "model.type=cnn", "--set", "train.epochs=1"),
                      "cnn", "input_shape")
    assert_user_error(cli("train", recipe, "--set", "model.type=transformer", "--set", "train.epochs=1"),
                      "token ids", "data.text: tokens")
    assert_user_error(cli("train", recipe, "--set", "model.type=cnn", "--set", "model.params.input_shape=[1, 3, 3]"),
                      "model.params.input_shape")


def test_no_held_out_rows_trains_on_every_row_and_says_so(cli, houses_csv, tmp_path):
    """data.split.validation and test both 0 (a final fit on every row): no metrics to print, a note."""
    recipe = write_recipe(tmp_path / "r.yaml", houses_csv, target="price", split={"validation": 0, "test": 0})
    result = cli("train", recipe, "--set", "model.type=ridge", "--out", tmp_path / "run")
    assert result.code == 0, result.err
    assert "no validation or test rows" in " ".join(result.out.split())
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())["rows"]
    assert rows["validation"] == rows["test"] == 0 and rows["train"] == len(pd.read_csv(houses_csv))


def test_init_with_a_wrong_target_on_a_builtin(cli, tmp_path):
    assert_user_error(cli("init", "builtin:iris", "--target", "specis", "--out", tmp_path / "r.yaml"), "species")
    assert cli("init", "builtin:iris", "--target", "petal width (cm)", "--out", tmp_path / "r.yaml").code == 0
    assert "task: regression" in (tmp_path / "r.yaml").read_text()  # another column of a builtin: its own task


def test_evaluate_refuses_regression_targets_that_training_would(cli, trained, houses_csv, tmp_path):
    """Text or infinite values in a regression target gave nan metrics and exit 0; missing ones are
    skipped with a note, and the metrics are those of the labelled rows (oracle: scikit-learn)."""
    from sklearn.metrics import mean_absolute_error

    import honing

    frame = pd.read_csv(houses_csv)
    for value, words in (("expensive", "not"), ("inf", "infinite")):
        bad = frame.astype({"price": object})
        bad.loc[5, "price"] = value
        bad.to_csv(tmp_path / "bad.csv", index=False)
        assert_user_error(cli("evaluate", trained / "bundle", tmp_path / "bad.csv"), "'price'", words)
    gaps = frame.copy()
    gaps.loc[:9, "price"] = None
    gaps.to_csv(tmp_path / "gaps.csv", index=False)
    result = cli("evaluate", trained / "bundle", tmp_path / "gaps.csv", "-o", tmp_path / "ev.json")
    assert result.code == 0 and "skipping 10 of 300 rows without a 'price' value" in result.err
    rows = frame.iloc[10:]
    expected = mean_absolute_error(rows["price"], honing.load(trained / "bundle").predict(rows))
    assert json.loads((tmp_path / "ev.json").read_text())["mae"] == pytest.approx(expected)


def test_an_error_quoting_a_huge_cell_stays_short(cli, tmp_path):
    long = "word " * 20000
    pd.DataFrame({"x": [1, 2, 3], "text": [long] * 3}).to_csv(tmp_path / "long.csv", index=False)
    result = cli("init", tmp_path / "long.csv", "--target", "text", "--out", tmp_path / "r.yaml")
    assert_user_error(result, "single class 'word word")
    assert len(result.err) < 700


def test_too_few_rows_after_dropping_duplicates_says_so(cli, tmp_path):
    pd.DataFrame({"a": [1, 2] * 20, "y": ["x", "z"] * 20}).to_csv(tmp_path / "same.csv", index=False)
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "same.csv", target="y")
    assert_user_error(cli("train", recipe, "--out", tmp_path / "run"), "same.csv", "too few rows",
                      "of 40 rows read: dropped 38 rows that duplicated", "data.clean.duplicates: keep")
    # the audit has no recipe keys to name: its own hint, for the same error (a SplitError)
    assert_user_error(cli("audit", tmp_path / "same.csv", "--target", "y"), "too few rows", "of 40 rows read",
                      "the audit splits them")


@pytest.mark.parametrize(("args", "words"), [
    (("predict", "b", "d.csv", "--chunk-rows", "0"), ["'--chunk-rows'", "greater than or equal to 1",
                                                      "honing predict --help"]),
    (("predict",), ["Missing argument 'bundle'", "honing predict --help"]),
    (("trian",), ["No such command 'trian'", "Did you mean 'train'", "honing --help"]),
    (("train", "--bogus"), ["No such option: --bogus", "honing train --help"]),
    (("runs", "--limit", "x"), ["'--limit'", "valid integer", "honing runs --help"]),
], ids=["below-min", "missing-argument", "unknown-command", "unknown-option", "not-a-number"])
def test_usage_mistakes_are_one_line_too(cli, args, words):
    """Typer's own errors (bad option values, missing arguments, typos) in the same one-line style."""
    out = cli(*args)
    assert_user_error(out, *words)
    assert "╭" not in out.err and "Usage:" not in out.err  # not Typer's boxed usage message


def test_help_and_version_still_exit_0(cli):
    assert cli("train", "--help").code == 0 and cli("--version").code == 0
