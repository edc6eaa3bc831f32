"""MLflow tracking of finished runs (honing.mlflow_runs / honing.mlflow_store), checked by reading
everything back from a private SQLite store with MlflowClient and comparing it with the run directory's
own files (recipe.yaml, metrics.json, history.csv, leaderboard.csv, the bundle's manifest)."""

from __future__ import annotations

import csv
import json
import subprocess
import time

import pytest
import yaml

import honing
from honing import api
from honing import mlflow_runs as mr
from honing import mlflow_store as store
from honing.errors import HoningError
from honing.recipe import load_recipe

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

CANCER = {"source": "builtin:breast_cancer"}
QUICK_EVAL = {"bootstrap": 50, "explain": False}


@pytest.fixture(scope="module")
def uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlruns.db'}"


@pytest.fixture(scope="module")
def mlflow(uri):
    return mr.client(uri)


def _recipe(uri: str, name: str, **sections) -> dict:
    # tracking off so that train does not log by itself; the store is still named for log_*.
    return {"name": name, "data": CANCER, "evaluate": QUICK_EVAL, "tracking": {"enabled": False, "uri": uri},
            **sections}


@pytest.fixture(scope="module")
def neural(uri, tmp_path_factory):
    """A 6-epoch MLP run and its MLflow run id."""
    out = tmp_path_factory.mktemp("neural") / "run"
    result = api.train(_recipe(uri, "mlp-cancer", model={"type": "mlp", "params": {"hidden": [16]}},
                               train={"epochs": 6, "early_stopping": None}), out=out)
    return result, mr.log_train(out, result.recipe)


@pytest.fixture(scope="module")
def classic(uri, tmp_path_factory):
    """A cross-validated logistic regression run, logged twice (two registered versions)."""
    out = tmp_path_factory.mktemp("classic") / "run"
    result = api.train(_recipe(uri, "logreg-cancer", model={"type": "logistic_regression"},
                               evaluate={**QUICK_EVAL, "cv": {"folds": 3}}), out=out)
    return result, [mr.log_train(out, result.recipe) for _ in range(2)]


@pytest.fixture(scope="module")
def tuned(uri, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "run"
    recipe = _recipe(uri, "tune-cancer", model={"type": "mlp", "params": {"hidden": [8]}},
                     train={"epochs": 4, "early_stopping": None},
                     tune={"trials": 3, "sampler": "random", "pruner": "none",
                           "space": {"train.optimizer.lr": {"float": [1e-3, 1e-1], "log": True},
                                     "train.batch_size": {"choice": [32, 64]}}})
    result = api.tune(recipe, out=out)
    return result, out, mr.log_tune(out, load_recipe(out / "recipe.yaml"))


def _leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for name, child in node.items():
            yield from _leaves(child, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix, node


def _all_artifacts(mlflow, run_id, path=None) -> set[str]:
    found = set()
    for item in mlflow.list_artifacts(run_id, path):
        found |= _all_artifacts(mlflow, run_id, item.path) if item.is_dir else {item.path}
    return found


# --------------------------------------------------------------------------- one train run


def test_params_are_the_flattened_resolved_recipe(neural, mlflow):
    result, run_id = neural
    params = mlflow.get_run(run_id).data.params
    written = yaml.safe_load((result.run_dir / "recipe.yaml").read_text())
    leaves = dict(_leaves(written))
    assert set(params) == set(leaves)
    for name, value in leaves.items():  # every value reads back as the recipe's (YAML text)
        assert (params[name] if isinstance(value, str) else yaml.safe_load(params[name])) == value, name
    assert params["train.epochs"] == "6" and params["model.params.hidden"] == "[16]"
    assert params["data.split.validation"] == "0.15" and params["model.type"] == "mlp"


def test_history_is_logged_per_epoch(neural, mlflow):
    result, run_id = neural
    with (result.run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    for column in [c for c in rows[0] if c != "epoch"]:
        history = sorted(mlflow.get_metric_history(run_id, column), key=lambda m: m.step)
        assert [m.step for m in history] == [int(r["epoch"]) for r in rows], column
        assert [m.value for m in history] == pytest.approx([float(r[column]) for r in rows], rel=1e-12), column
        stamps = [m.timestamp for m in history]
        assert stamps == sorted(stamps)


def test_final_metrics_equal_metrics_json(neural, classic, mlflow):
    for result, run_id in (neural, (classic[0], classic[1][0])):
        logged = mlflow.get_run(run_id).data.metrics
        saved = json.loads((result.run_dir / "metrics.json").read_text())
        expected = {f"{split}_{k}": v for split in ("validation", "test") for k, v in saved[split].items()
                    if isinstance(v, float)}
        expected |= {f"baseline_{split}_{k}": v for split in ("validation", "test")
                     for k, v in saved["baseline"][split].items() if isinstance(v, float)}
        expected |= {f"test_{k}_low": lo for k, (lo, _) in saved["intervals"]["test"].items()}
        assert expected and {k: logged[k] for k in expected} == expected
        assert "test_accuracy" in logged and "baseline_test_accuracy" in logged
    logged = mlflow.get_run(classic[1][0]).data.metrics
    cv = json.loads((classic[0].run_dir / "metrics.json").read_text())["cv"]
    assert logged["cv_accuracy_mean"] == cv["model"]["summary"]["accuracy"]["mean"]
    assert logged["baseline_cv_accuracy_mean"] == cv["baseline"]["summary"]["accuracy"]["mean"]


def test_tags(neural, mlflow):
    result, run_id = neural
    tags = mlflow.get_run(run_id).data.tags
    manifest = json.loads((result.bundle_dir / "manifest.json").read_text())
    assert tags["honing.version"] == honing.__version__
    assert tags["honing.data_fingerprint"] == manifest["data_fingerprint"]
    assert tags["honing.run_dir"] == str(result.run_dir.resolve())
    assert (tags["honing.model_type"], tags["honing.task"], tags["honing.kind"]) == ("mlp", "classification", "train")
    assert tags["honing.recipe"] == "mlp-cancer" and tags["mlflow.runName"] == "run"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    if head.returncode == 0:  # the tests run from the repository
        assert tags["mlflow.source.git.commit"] == tags["honing.git_commit"] == head.stdout.strip()


def test_no_git_commit_outside_a_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert mr.git_commit() is None


def test_artifacts(neural, mlflow):
    result, run_id = neural
    found = _all_artifacts(mlflow, run_id)
    expected = {"MLmodel", "metrics.json", "recipe.yaml", "audit.json", "history.csv", "bundle/manifest.json"}
    expected |= {f"bundle/{name}" for name in json.loads((result.bundle_dir / "manifest.json").read_text())["files"]}
    expected |= {f"plots/{p.name}" for p in (result.run_dir / "plots").glob("*.png")}
    assert expected <= found and "plots/learning_curve.png" in found


# --------------------------------------------------------------------------- the registry


def test_a_registered_version_per_run(classic, neural, mlflow):
    result, run_ids = classic
    versions = [mlflow.search_model_versions(f"run_id = '{r}'")[0] for r in run_ids]
    assert [v.name for v in versions] == ["logreg-cancer"] * 2
    assert int(versions[1].version) == int(versions[0].version) + 1
    for version, run_id in zip(versions, run_ids, strict=True):
        assert version.source == mlflow.get_run(run_id).info.artifact_uri and version.status == "READY"
        assert version.tags["honing.model_type"] == "logistic_regression"
        assert mlflow.get_run(run_id).data.tags["honing.registered_model"] == f"logreg-cancer/{version.version}"
    unregistered = mr.log_train(result.run_dir, result.recipe, register=False)
    assert not mlflow.search_model_versions(f"run_id = '{unregistered}'")
    assert len(mlflow.search_model_versions("name = 'logreg-cancer'")) == 2


def test_registering_is_fast(classic, mlflow):
    run = mlflow.get_run(classic[1][0])
    start = time.perf_counter()
    store.register(mlflow, "timed", run, {"honing.model_type": "logistic_regression"})
    assert time.perf_counter() - start < 1.0


def test_promote_sets_the_alias(classic, uri, mlflow):
    mr.promote("logreg-cancer", 2, "champion", uri)
    assert int(mlflow.get_model_version_by_alias("logreg-cancer", "champion").version) == 2
    mr.promote("logreg-cancer", 1, "champion", uri)  # moves
    assert int(mlflow.get_model_version_by_alias("logreg-cancer", "champion").version) == 1


def test_promote_errors_name_what_exists(classic, uri):
    with pytest.raises(HoningError) as err:
        mr.promote("logreg-cancr", 1, "champion", uri)
    assert "logreg-cancr" in err.value.what and "logreg-cancer" in err.value.hint
    with pytest.raises(HoningError) as err:
        mr.promote("logreg-cancer", 9, "champion", uri)
    assert "no version 9" in err.value.what and "1, 2" in err.value.hint
    with pytest.raises(HoningError, match="alias 'v3'"):
        mr.promote("logreg-cancer", 1, "v3", uri)


def test_the_registered_model_loads_with_pyfunc(neural, uri, monkeypatch):
    import mlflow.pyfunc

    from honing.data.builtin import load_builtin

    result, _ = neural
    mr.promote("mlp-cancer", 1, "production", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    model = mlflow.pyfunc.load_model("models:/mlp-cancer@production", suppress_warnings=True)
    rows = load_builtin("breast_cancer").frame.drop(columns=["target"]).head(20)
    assert model.predict(rows).equals(api.predict(result.bundle_dir, rows))


# --------------------------------------------------------------------------- tuning


def test_tune_parent_nested_trials_and_best(tuned, mlflow):
    result, out, parent_id = tuned
    parent = mlflow.get_run(parent_id)
    assert parent.data.tags["honing.kind"] == "tune" and parent.info.status == "FINISHED"
    assert parent.data.metrics[f"best_{result.metric}"] == pytest.approx(result.best_score)
    children = mlflow.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    trials = {int(c.data.tags["honing.trial"]): c for c in children if c.data.tags["honing.kind"] == "trial"}
    best = [c for c in children if c.data.tags["honing.kind"] == "train"]
    with (out / "leaderboard.csv").open() as f:
        board = list(csv.DictReader(f))
    assert len(children) == len(board) + 1 and sorted(trials) == sorted(int(r["trial"]) for r in board)
    for row in board:
        trial = trials[int(row["trial"])]
        assert trial.data.params == {"train.optimizer.lr": row["train.optimizer.lr"],
                                     "train.batch_size": row["train.batch_size"]}
        assert trial.data.tags["honing.trial_state"] == row["state"]
        assert trial.data.metrics["seconds"] == float(row["seconds"])
        if row["state"] == "complete":
            assert trial.info.status == "FINISHED"
            assert trial.data.metrics[result.metric] == float(row[result.metric])
    [best] = best
    assert parent.data.tags["honing.best_run_id"] == best.info.run_id
    assert best.data.tags["honing.run_dir"] == str((out / "best").resolve())
    assert best.data.tags["honing.registered_model"].startswith("tune-cancer/")
    assert {"tune.json", "leaderboard.csv", "best.yaml"} <= _all_artifacts(mlflow, parent_id)


def test_failed_trials_and_pareto_columns(tuned, mlflow, tmp_path):
    import shutil

    _, out, _ = tuned
    copy = tmp_path / "tune"
    shutil.copytree(out, copy)
    with (copy / "leaderboard.csv").open() as f:
        board = list(csv.DictReader(f))
    for row in board:
        row["pareto"] = str(row["state"] == "complete")
    board.append({**{k: "" for k in board[0]}, "trial": "99", "state": "failed", "epochs": "0", "error": "boom"})
    with (copy / "leaderboard.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, [*board[0], "error"])
        writer.writeheader()
        writer.writerows(board)
    parent = mr.log_tune(copy, load_recipe(copy / "recipe.yaml"))
    exp = mlflow.get_run(parent).info.experiment_id
    [failed] = mlflow.search_runs([exp], f"tags.mlflow.parentRunId = '{parent}' and tags.`honing.trial` = '99'")
    assert failed.info.status == "FAILED" and failed.data.tags["honing.error"] == "boom"
    assert failed.data.params == {} and set(failed.data.metrics) == {"epochs"}
    pareto = mlflow.search_runs([exp], f"tags.mlflow.parentRunId = '{parent}' and tags.`honing.pareto` = 'True'")
    assert len(pareto) == sum(r["state"] == "complete" for r in board)


# --------------------------------------------------------------------------- listing and comparing


def test_list_runs(neural, classic, tuned, uri):
    runs = mr.list_runs(uri)
    dates = [r["date"] for r in runs]
    assert dates == sorted(dates, reverse=True)
    assert all(r["kind"] in ("train", "tune") for r in runs)  # trials are not listed
    mine = [r for r in runs if r["id"] == neural[1]]
    assert mine and mine[0]["model"] == "mlp" and mine[0]["task"] == "classification"
    assert mine[0]["status"] == "FINISHED" and mine[0]["duration"] > 0
    assert mine[0]["metrics"] == {"validation_accuracy": neural[0].metrics["validation"]["accuracy"],
                                  "test_accuracy": neural[0].metrics["test"]["accuracy"]}
    logreg = mr.list_runs(uri, name="logreg-cancer")
    assert {r["id"] for r in logreg} >= set(classic[1]) and {r["recipe"] for r in logreg} == {"logreg-cancer"}
    assert len(mr.list_runs(uri, limit=2)) == 2
    with pytest.raises(HoningError, match="logreg-cancr"):
        mr.list_runs(uri, name="logreg-cancr")


def test_compare_runs(neural, classic, uri):
    both = [neural[1], classic[1][0]]
    table = mr.compare_runs(both, uri)
    assert [r["id"] for r in table["runs"]] == both
    assert table["params"]["model.type"] == ["mlp", "logistic_regression"]
    assert table["params"]["seed"] == ["42", "42"]
    assert table["params"]["evaluate.cv"] == ["null", None]  # the second has evaluate.cv.folds, …
    assert "model.type" in table["different"] and "seed" not in table["different"]
    assert table["metrics"]["test_accuracy"] == [neural[0].metrics["test"]["accuracy"],
                                                  classic[0].metrics["test"]["accuracy"]]
    assert "cv_accuracy_mean" in table["different"]
    with pytest.raises(HoningError, match="0123456789abcdef"):
        mr.compare_runs([neural[1], "0123456789abcdef"], uri)
    short = [run_id[:12] for run_id in both]  # as `honing runs` shows them
    assert [r["id"] for r in mr.compare_runs(short, uri)["runs"]] == both
    with pytest.raises(HoningError, match="run id '' |not found"):
        mr.compare_runs([neural[1], ""], uri)


# --------------------------------------------------------------------------- configuration and failures


@pytest.mark.parametrize("value", ["0", "false", "OFF", "no"])
def test_honing_tracking_off(value, monkeypatch):
    monkeypatch.setenv("HONING_TRACKING", value)
    assert not mr.enabled(load_recipe({"data": CANCER}).tracking)


def test_enabled_follows_the_recipe(monkeypatch):
    monkeypatch.delenv("HONING_TRACKING", raising=False)
    assert mr.enabled(load_recipe({"data": CANCER}).tracking)
    assert not mr.enabled(load_recipe({"data": CANCER, "tracking": False}).tracking)
    assert not mr.enabled(load_recipe({"data": CANCER, "tracking": {"enabled": False}}))


def test_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = mr.tracking_uri()
    assert default == f"sqlite:///{tmp_path.resolve() / 'mlruns.db'}" and default.startswith("sqlite:////")
    assert store.artifact_root(default) == tmp_path.resolve() / "mlartifacts"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert mr.tracking_uri() == "http://tracking:5000"
    assert mr.tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_artifacts_land_beside_the_database(neural, uri, mlflow):
    artifact_uri = mlflow.get_run(neural[1]).info.artifact_uri
    assert artifact_uri.startswith(store.artifact_root(uri).as_uri() + "/")


def test_unreachable_server_is_a_quick_one_line_error(neural, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    result, _ = neural
    recipe = result.recipe.model_copy(update={"tracking": result.recipe.tracking.model_copy(
        update={"uri": "http://127.0.0.1:9"})})
    start = time.perf_counter()
    with pytest.raises(HoningError) as err:
        mr.log_train(result.run_dir, recipe)
    assert time.perf_counter() - start < 10
    assert "http://127.0.0.1:9" in err.value.what and "cannot reach the MLflow store" in err.value.what
    assert "tracking: false" in err.value.hint and "\n" not in str(err.value)
    assert (result.bundle_dir / "manifest.json").is_file()  # the run is untouched


def test_unusable_sqlite_path_is_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(HoningError, match="cannot reach the MLflow store"):
        store.client(f"sqlite:///{blocker / 'sub' / 'mlruns.db'}")


def test_commands_that_read_never_create_a_database(tmp_path):
    """A mistyped --uri of `honing runs`, `runs compare` or `promote` is not a new empty store."""
    typo = tmp_path / "typo.db"
    assert mr.list_runs(f"sqlite:///{typo}") == []
    for read in (lambda: mr.list_runs(f"sqlite:///{typo}", name="cancer"),
                 lambda: mr.compare_runs(["a", "b"], f"sqlite:///{typo}"),
                 lambda: mr.promote("cancer", 1, "production", f"sqlite:///{typo}")):
        with pytest.raises(HoningError, match="no tracking database"):
            read()
    assert not typo.exists()


def test_a_directory_that_is_no_run(tmp_path, uri):
    with pytest.raises(HoningError, match="no metrics.json"):
        mr.log_train(tmp_path, load_recipe({"data": CANCER}))


def test_ui_command(uri):
    argv = mr.ui_command(uri, port=5123)
    assert argv[argv.index("--backend-store-uri") + 1] == uri
    assert argv[argv.index("--artifacts-destination") + 1] == str(store.artifact_root(uri))
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "5123"
    assert "server" in argv
    with pytest.raises(HoningError, match="already an MLflow server"):
        mr.ui_command("http://127.0.0.1:5000")


# --------------------------------------------------------------------------- batching and values


class _Recorder:
    def __init__(self):
        self.calls = []

    def log_batch(self, run_id, metrics, params, tags, synchronous=None):
        self.calls.append((len(metrics), len(params), len(tags)))


def test_log_batch_keeps_within_mlflow_limits():
    recorder = _Recorder()
    params = {f"p{i}": "x" for i in range(250)}
    metrics = [(f"m{i % 7}", float(i), 0, i) for i in range(2500)]
    calls = mr.log_batch(recorder, "run", metrics, params, {"t": "1"})
    assert calls == len(recorder.calls) == 3
    assert sum(c[0] for c in recorder.calls) == 2500 and sum(c[1] for c in recorder.calls) == 250
    for m, p, t in recorder.calls:
        assert p + t <= 100 and m <= 1000 and m + p + t <= 1000


def test_param_values_keys_and_secrets():
    long = {"data": {**CANCER, "drop": [f"column_{i}" for i in range(1000)], "types": {"a(b)": "numeric"}},
            "tune": {"storage": "postgresql://honing:s3cret@db/optuna"}}
    params = mr.flat_params(load_recipe(long))
    assert len(params["data.drop"]) == 6000 and params["data.drop"].endswith("…")
    assert params["data.types.a_b_"] == "numeric"
    assert params["tune.storage"] == "postgresql://honing:***@db/optuna"
    assert all(len(k) <= 250 for k in params)


@pytest.mark.parametrize("task, sections", [
    ("clustering", {"data": {"source": "builtin:iris", "task": "clustering"},
                    "model": {"type": "kmeans", "params": {"k": 3}}}),
    ("generation", {"data": {"source": "builtin:digits", "task": "generation"},
                    "model": {"type": "vae"}, "train": {"epochs": 2}}),
    ("reinforcement", {"data": {"task": "reinforcement", "env": "FrozenLake-v1",
                                "env_params": {"is_slippery": False}},
                       "model": {"type": "q_learning", "params": {"episodes": 200}},
                       "evaluate": {"episodes": 10}}),
])
def test_every_task_is_logged(uri, mlflow, tmp_path, task, sections):
    if task == "reinforcement":
        pytest.importorskip("gymnasium")
    out = tmp_path / "run"
    result = api.train({"name": f"{task}-run", "tracking": {"enabled": False, "uri": uri}, **sections}, out=out)
    run = mlflow.get_run(mr.log_train(out, result.recipe))
    assert run.data.tags["honing.task"] == task and run.data.tags["honing.data_source"]
    logged = {k: v for k, v in run.data.metrics.items() if not k.startswith("system")}
    assert logged  # the run's headline numbers
