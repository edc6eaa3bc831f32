"""`honing tune` end to end: the run directory, refitting, samplers, pruners, cross-validation,
budgets, reproducibility and failed trials, checked against independent computations where one
exists (scikit-learn for cross-validation scores, a Pareto front computed here, the journal's
reports for pruned trials, `honing train` for the recipe as written)."""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import assert_user_error
from honing import api
from honing.errors import HoningError
from honing.recipe import load_recipe

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]

PNG = b"\x89PNG\r\n\x1a\n"
CANCER = {"source": "builtin:breast_cancer"}
IRIS = {"source": "builtin:iris"}


def _leaderboard(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "leaderboard.csv")


def _complete(board: pd.DataFrame) -> pd.DataFrame:
    return board[board["state"] == "complete"]


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 100 and path.read_bytes()[:8] == PNG


def _journal(run_dir: Path):
    """The study as Optuna stored it (independent of honing's leaderboard)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    name = json.loads((run_dir / "study.json").read_text())["study"]
    storage = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def _reported_steps(run_dir: Path) -> dict[int, int]:
    """The last step each trial reported to the pruner, from the journal."""
    return {t.number: max(t.intermediate_values) for t in _journal(run_dir).trials if t.intermediate_values}


def _normal_split(data: dict, seed: int = 42) -> dict[str, int]:
    """Rows per split of `honing train` on the same data section."""
    from honing.data.dataset import load_dataset

    dataset = load_dataset(load_recipe({"data": data, "seed": seed}).data, seed)
    return {split: len(frame) for split, frame in dataset.splits.items()}


def _cell(value):
    """A leaderboard cell as the recipe value it stands for (lists are written as JSON text)."""
    return json.loads(value) if isinstance(value, str) and value.startswith("[") else value


# --------------------------------------------------------------------------- outputs and refit


def test_mlp_tune_writes_the_whole_run_and_refits_on_train_plus_validation(tmp_path):
    searched = ["train.optimizer.lr", "model.params.hidden", "train.batch_size"]
    recipe = {"name": "outputs", "data": CANCER, "model": {"type": "mlp"},
              "train": {"epochs": 12, "early_stopping": {"patience": 3}, "optimizer": {"lr": 1e-5}},
              "tune": {"trials": 6, "space": {
                  "train.optimizer.lr": {"float": [1e-3, 1e-1], "log": True},
                  "model.params.hidden": {"layers": [1, 2], "width": [8, 32]},
                  "train.batch_size": {"choice": [64, 128]}}}}
    result = api.tune(recipe, out=tmp_path / "run")
    run = tmp_path / "run"

    board = _leaderboard(run)
    assert list(board.columns[:5]) == ["trial", "state", "accuracy", "epochs", "seconds"]
    assert set(searched) <= set(board.columns)
    assert len(board) == 6 and sorted(board["trial"]) == list(range(6))
    assert set(board["state"]) <= {"complete", "pruned"}

    # the best row is the best score over complete trials, and best.yaml holds its values
    complete = _complete(board)
    best = complete.loc[complete["accuracy"].idxmax()]
    assert result.best_trial == int(best["trial"]) and result.best_score == pytest.approx(best["accuracy"])
    assert board.iloc[0]["trial"] == best["trial"]
    best_yaml = load_recipe(run / "best.yaml")
    flat = {"train.optimizer.lr": best_yaml.train.optimizer.lr, "model.params.hidden": best_yaml.model.params["hidden"],
            "train.batch_size": best_yaml.train.batch_size}
    for path in searched:
        assert flat[path] == pytest.approx(_cell(best[path])), path
    assert best_yaml.train.epochs == 12 and best_yaml.train.early_stopping is not None  # as searched, not refitted

    for plot in ("optimization_history", "param_importances", "parallel_coordinates"):
        assert _is_png(run / "plots" / f"{plot}.png"), plot
    assert (run / "study.journal").stat().st_size > 0
    summary = json.loads((run / "tune.json").read_text())
    assert summary["best"]["trial"] == result.best_trial
    assert sum(summary["trials"].values()) == 6
    assert summary["epochs"] == board["epochs"].sum()

    # refit: the best epoch of the trial, no early stopping, on train + validation, scored on test only
    refit = summary["best"]["refit"]
    trained = load_recipe(run / "best" / "recipe.yaml")
    assert trained.train.early_stopping is None
    assert trained.train.epochs == refit["train.epochs"]
    assert 1 <= refit["train.epochs"] <= best["epochs"]
    assert trained.train.optimizer.lr == pytest.approx(best_yaml.train.optimizer.lr)
    metrics = json.loads((run / "best" / "metrics.json").read_text())
    assert "validation" not in metrics and metrics["test"]["accuracy"] > 0.85
    split = _normal_split(CANCER)
    assert metrics["rows"] == {"train": split["train"] + split["validation"], "validation": 0, "test": split["test"]}

    # the bundle predicts raw rows
    from honing.data.builtin import load_builtin

    frame = load_builtin("breast_cancer").frame
    model = api.load(run / "best" / "bundle")
    predicted = np.asarray(model.predict(frame.drop(columns="target")))
    assert len(predicted) == len(frame) and set(predicted) <= set(frame["target"])
    assert (predicted == frame["target"].to_numpy()).mean() > 0.85


def test_lightgbm_without_pruner_refits_at_the_best_boosting_round(tmp_path):
    recipe = {"name": "gbm", "data": CANCER, "model": {"type": "lightgbm", "params": {"n_estimators": 200}},
              "tune": {"trials": 6, "pruner": "none", "sampler": "random",
                       "space": {"model.params.learning_rate": {"float": [1e-4, 0.5], "log": True}}}}
    result = api.tune(recipe, out=tmp_path / "run")
    run = tmp_path / "run"
    board = _leaderboard(run)
    # no pruner: every trial completes, even the hopeless learning rates a pruner would stop, and none reports
    assert len(board) == 6 and (board["state"] == "complete").all()
    assert board["model.params.learning_rate"].min() < 1e-2
    assert not _reported_steps(run)

    summary = json.loads((run / "tune.json").read_text())
    rounds = summary["best"]["refit"]["model.params.n_estimators"]
    best = board[board["trial"] == result.best_trial].iloc[0]
    # the best learning rate stops early: the trial ran past its best round, the refit stops at it
    assert 1 <= rounds < best["epochs"] < 200
    trained = load_recipe(run / "best" / "recipe.yaml")
    assert trained.model.params["n_estimators"] == rounds
    assert trained.model.params["learning_rate"] == pytest.approx(best["model.params.learning_rate"])
    assert load_recipe(run / "best.yaml").model.params["n_estimators"] == 200
    metrics = json.loads((run / "best" / "metrics.json").read_text())
    assert "validation" not in metrics and metrics["test"]["accuracy"] > 0.85
    split = _normal_split(CANCER)
    assert metrics["rows"]["train"] == split["train"] + split["validation"]


# --------------------------------------------------------------------------- samplers


def test_grid_visits_every_combination_exactly_once(tmp_path):
    neighbours, weights = [1, 5, 9], ["uniform", "distance"]
    recipe = {"name": "grid", "data": IRIS, "model": {"type": "knn"},
              "tune": {"trials": None, "sampler": "grid",
                       "space": {"model.params.n_neighbors": {"choice": neighbours},
                                 "model.params.weights": {"choice": weights}}}}
    api.tune(recipe, out=tmp_path / "run")
    board = _leaderboard(tmp_path / "run")
    assert len(board) == 6 and (board["state"] == "complete").all()
    visited = list(zip(board["model.params.n_neighbors"], board["model.params.weights"], strict=True))
    assert sorted(visited) == sorted(itertools.product(neighbours, weights))


def test_grid_over_a_conditional_space_runs_each_recipe_once(tmp_path):
    recipe = {"name": "cgrid", "data": IRIS, "model": {"type": "knn"},
              "tune": {"trials": None, "sampler": "grid", "space": {"model.type": {"choice": {
                  "knn": {"model.params.n_neighbors": {"choice": [3, 5]}}, "naive_bayes": {}}}}}}
    api.tune(recipe, out=tmp_path / "run")
    board = _leaderboard(tmp_path / "run")
    recipes = [(row["model.type"], row.get("model.params.n_neighbors")) for _, row in board.iterrows()]
    recipes = [(kind, None if kind == "naive_bayes" else int(k)) for kind, k in recipes]
    assert sorted(recipes, key=str) == sorted([("knn", 3), ("knn", 5), ("naive_bayes", None)], key=str)


def test_the_best_trials_data_settings_reach_best_yaml_and_the_bundle(tmp_path):
    """A tuned data.* key (here data.scale for a knn, where it matters) is the best trial's in best.yaml,
    best/recipe.yaml and the refitted bundle (they went back to the recipe's own)."""
    recipe = {"name": "scale", "data": {"source": "builtin:wine_quality", "scale": "none"}, "model": {"type": "knn"},
              "evaluate": {"bootstrap": 0, "explain": False},
              "tune": {"trials": None, "sampler": "grid", "space": {"data.scale": {"choice": ["none", "standard"]}}}}
    api.tune(recipe, out=tmp_path / "run")
    board = _complete(_leaderboard(tmp_path / "run"))
    best = board.loc[board["r2"].idxmax(), "data.scale"]
    assert best == "standard"  # distances on unscaled columns are dominated by the widest ones
    assert load_recipe(tmp_path / "run" / "best.yaml").data.scale == best
    assert load_recipe(tmp_path / "run" / "best" / "recipe.yaml").data.scale == best
    assert api.load(tmp_path / "run" / "best" / "bundle").recipe["data"]["scale"] == best


def test_a_trial_balances_its_training_rows_as_train_does(tmp_path):
    """Each trial of a data.balance grid scores what `honing train` with that balance scores on
    validation (every trial scored the unbalanced model)."""
    modes = ["none", "class_weight", "undersample"]
    base = {"data": {"source": "builtin:pima_diabetes"}, "model": {"type": "logistic_regression"},
            "evaluate": {"metric": "balanced_accuracy", "bootstrap": 0, "explain": False}}
    api.tune({**base, "name": "bal", "tune": {"trials": None, "sampler": "grid",
                                             "space": {"data.balance": {"choice": modes}}}}, out=tmp_path / "run")
    board = _complete(_leaderboard(tmp_path / "run")).set_index("data.balance")["balanced_accuracy"]
    for mode in modes:
        trained = api.train({**base, "data": {**base["data"], "balance": mode}}, out=tmp_path / mode, track=False)
        assert board[mode] == pytest.approx(trained.metrics["validation"]["balanced_accuracy"], abs=1e-12), mode
    assert board.nunique() == len(modes)


@pytest.mark.parametrize("sampler", ["random", "gp"])
def test_samplers_stay_inside_the_space(sampler, tmp_path):
    recipe = {"name": sampler, "data": CANCER, "model": {"type": "decision_tree"},
              "tune": {"trials": 6, "sampler": sampler,
                       "space": {"model.params.max_depth": {"int": [1, 12]},
                                 "model.params.min_samples_leaf": {"int": [2, 40], "step": 2}}}}
    result = api.tune(recipe, out=tmp_path / "run")
    board = _leaderboard(tmp_path / "run")
    assert len(board) == 6 and (board["state"] == "complete").all()
    depth, leaf = board["model.params.max_depth"], board["model.params.min_samples_leaf"]
    assert depth.between(1, 12).all() and leaf.between(2, 40).all() and (leaf % 2 == 0).all()
    assert len(set(zip(depth, leaf, strict=True))) > 1  # it does search
    assert result.best_score == pytest.approx(board["accuracy"].max())


def test_nsga2_finds_the_pareto_front_of_score_and_size(tmp_path):
    recipe = {"name": "pareto", "data": CANCER, "model": {"type": "decision_tree"},
              "tune": {"trials": 10, "sampler": "nsga2", "objectives": ["metric", "size"],
                       "space": {"model.params.max_depth": {"int": [1, 12]},
                                 "model.params.min_samples_leaf": {"int": [1, 30]}}}}
    result = api.tune(recipe, out=tmp_path / "run")
    run = tmp_path / "run"
    assert result.objectives == ["accuracy", "size_kb"]
    board = _leaderboard(run)
    assert {"size_kb", "pareto"} <= set(board.columns) and len(board) == 10
    assert _is_png(run / "plots" / "pareto_front.png")
    complete = _complete(board)
    assert (complete["size_kb"] > 0).all()
    points = list(zip(complete["trial"], complete["accuracy"], complete["size_kb"], strict=True))

    def dominated(acc: float, size: float) -> bool:
        return any(a >= acc and s <= size and (a > acc or s < size) for _, a, s in points)

    front = {t for t, a, s in points if not dominated(a, s)}
    assert set(complete.loc[complete["pareto"].astype(bool), "trial"]) == front
    # the best trial is on the front and best there on the first objective
    assert result.best_trial in front
    assert result.best_score == pytest.approx(complete["accuracy"].max())


# --------------------------------------------------------------------------- pruners


@pytest.mark.parametrize("pruner", ["hyperband", "median"])
def test_pruners_stop_bad_mlp_trials_early(pruner, tmp_path):
    recipe = {"name": pruner, "data": CANCER, "model": {"type": "mlp", "params": {"hidden": [16]}},
              "train": {"epochs": 12, "early_stopping": None},
              "tune": {"trials": 10, "pruner": pruner,
                       "space": {"train.optimizer.lr": {"float": [1e-6, 1e-1], "log": True}}}}
    api.tune(recipe, out=tmp_path / "run")
    board = _leaderboard(tmp_path / "run")
    assert len(board) == 10
    pruned = board[board["state"] == "pruned"]
    assert len(pruned) >= 1
    assert (pruned["epochs"] < 12).all() and (pruned["epochs"] >= 1).all()
    assert pruned["accuracy"].isna().all()
    assert (_complete(board)["epochs"] == 12).all()  # no early stopping: complete trials train every epoch
    reported = _reported_steps(tmp_path / "run")
    for _, row in pruned.iterrows():
        assert reported[int(row["trial"])] == row["epochs"]


def test_median_pruner_stops_lightgbm_trials_at_a_boosting_round(tmp_path):
    recipe = {"name": "gbmprune", "data": CANCER, "model": {"type": "lightgbm", "params": {"n_estimators": 60}},
              "tune": {"trials": 10, "pruner": "median",
                       "space": {"model.params.learning_rate": {"float": [1e-4, 0.3], "log": True}}}}
    api.tune(recipe, out=tmp_path / "run")
    board = _leaderboard(tmp_path / "run")
    pruned = board[board["state"] == "pruned"]
    assert len(pruned) >= 1 and (pruned["epochs"] < 60).all()
    reported = _reported_steps(tmp_path / "run")
    for _, row in pruned.iterrows():
        assert reported[int(row["trial"])] == row["epochs"]


# --------------------------------------------------------------------------- cross-validation


def test_cv_score_is_the_mean_over_scikit_learn_folds(tmp_path):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from honing.data.dataset import load_dataset

    recipe = {"name": "cv", "data": CANCER, "model": {"type": "logistic_regression"},
              "tune": {"trials": None, "cv": 3, "pruner": "none", "sampler": "grid",
                       "space": {"model.params.C": {"choice": [0.05, 0.5]}}}}
    result = api.tune(recipe, out=tmp_path / "run")
    board = _leaderboard(tmp_path / "run")

    dataset = load_dataset(load_recipe(recipe).data, 42)
    rows = pd.concat([dataset.splits["train"], dataset.splits["validation"]])
    X = rows.drop(columns="target").to_numpy(float)
    y = (rows["target"] == "malignant").to_numpy(int)

    def cv_accuracy(C: float) -> float:
        scores = []
        for fit, held in StratifiedKFold(3, shuffle=True, random_state=42).split(X, y):
            model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                                  LogisticRegression(C=C, max_iter=2000, random_state=42)).fit(X[fit], y[fit])
            scores.append(accuracy_score(y[held], model.predict(X[held])))
        return float(np.mean(scores))

    assert len(board) == 2
    for _, row in board.iterrows():
        assert row["accuracy"] == pytest.approx(cv_accuracy(row["model.params.C"]), abs=1e-9)
    assert result.default_score == pytest.approx(cv_accuracy(1.0), abs=1e-9)  # C=1, the recipe as written
    metrics = json.loads((tmp_path / "run" / "best" / "metrics.json").read_text())
    assert metrics["rows"]["train"] == len(rows)


def test_cv_neural_trial_counts_the_epochs_of_every_fold(tmp_path):
    recipe = {"name": "cvmlp", "data": IRIS, "model": {"type": "mlp", "params": {"hidden": [8]}},
              "train": {"epochs": 3, "early_stopping": None},
              "tune": {"trials": 2, "cv": 3, "pruner": "none",
                       "space": {"train.optimizer.lr": {"float": [1e-3, 1e-1], "log": True}}}}
    api.tune(recipe, out=tmp_path / "run")
    board = _leaderboard(tmp_path / "run")
    assert len(board) == 2 and (board["state"] == "complete").all()
    assert (board["epochs"] == 3 * 3).all()
    assert board["accuracy"].between(0, 1).all()


# --------------------------------------------------------------------------- budgets


def test_timeout_stops_starting_trials(tmp_path):
    recipe = {"name": "timeout", "data": IRIS, "model": {"type": "mlp", "params": {"hidden": [8]}},
              "train": {"epochs": 20, "early_stopping": None},
              "tune": {"trials": None, "timeout": 3, "pruner": "none",
                       "space": {"train.optimizer.lr": {"float": [1e-3, 1e-1], "log": True}}}}
    run, outcome = tmp_path / "run", {}

    def tune() -> None:
        try:
            outcome["result"] = api.tune(recipe, out=run)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    start = time.monotonic()
    worker = threading.Thread(target=tune, daemon=True)  # a timeout that is ignored never ends
    worker.start()
    worker.join(90)
    assert not worker.is_alive(), "tune went on starting trials long after tune.timeout"
    assert "error" not in outcome, outcome.get("error")
    assert time.monotonic() - start < 3 + 45
    trials = _journal(run).trials
    assert len(trials) >= 2 and len(_leaderboard(run)) == len(trials)
    first = min(t.datetime_start for t in trials)
    last_start = max(t.datetime_start for t in trials)
    last_end = max(t.datetime_complete for t in trials)
    assert (last_start - first).total_seconds() < 3  # no trial starts after the timeout
    assert (last_end - first).total_seconds() >= 3 - 0.5  # and they keep starting until then


def test_same_recipe_and_seed_give_the_same_trials(tmp_path):
    recipe = {"name": "again", "data": CANCER, "model": {"type": "mlp", "params": {"hidden": [16]}},
              "train": {"epochs": 4, "early_stopping": None},
              "tune": {"trials": 4, "sampler": "tpe",
                       "space": {"train.optimizer.lr": {"float": [1e-4, 1e-1], "log": True},
                                 "model.params.dropout": {"float": [0.0, 0.5]}}}}
    first = _leaderboard(api.tune(recipe, out=tmp_path / "one").run_dir).drop(columns="seconds")
    second = _leaderboard(api.tune(recipe, out=tmp_path / "two").run_dir).drop(columns="seconds")
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert first["train.optimizer.lr"].nunique() == 4


def test_tuning_beats_a_poor_recipe_as_written(tmp_path):
    """With tune.refit false the best recipe is trained as searched, on train only."""
    recipe = {"name": "improve", "data": CANCER, "model": {"type": "mlp", "params": {"hidden": [16]}},
              "train": {"epochs": 5, "early_stopping": {"patience": 3}, "optimizer": {"lr": 1e-5}},
              "tune": {"trials": 4, "pruner": "none", "refit": False,
                       "space": {"train.optimizer.lr": {"float": [1e-2, 1e-1], "log": True}}}}
    result = api.tune(recipe, out=tmp_path / "run")
    # the default score is what `honing train` gets on validation with the recipe as written
    written = api.train({k: v for k, v in recipe.items() if k != "tune"}, out=tmp_path / "written")
    assert result.default_score == pytest.approx(written.metrics["validation"]["accuracy"], abs=1e-12)
    assert result.best_score > result.default_score
    assert result.recipe.train.optimizer.lr >= 1e-2
    summary = json.loads((tmp_path / "run" / "tune.json").read_text())
    assert summary["default_score"] == pytest.approx(result.default_score)

    trained = load_recipe(tmp_path / "run" / "best" / "recipe.yaml")
    assert trained.train.epochs == 5 and trained.train.early_stopping is not None  # not refitted
    assert trained.train.optimizer.lr == pytest.approx(result.recipe.train.optimizer.lr)
    metrics = json.loads((tmp_path / "run" / "best" / "metrics.json").read_text())
    assert metrics["rows"] == _normal_split(CANCER) and "test" in metrics
    # retrained on the same split with the same seed, the best recipe scores what its trial scored
    assert metrics["validation"]["accuracy"] == pytest.approx(result.best_score, abs=1e-12)


# --------------------------------------------------------------------------- failures


def test_failed_trials_are_recorded_and_the_study_completes(tmp_path):
    recipe = {"name": "fails", "data": IRIS, "model": {"type": "knn"},
              "tune": {"trials": None, "sampler": "grid",
                       "space": {"model.params.n_neighbors": {"choice": [3, 5, 1000]}}}}  # iris trains on ~105 rows
    result = api.tune(recipe, out=tmp_path / "run")
    board = _leaderboard(tmp_path / "run")
    assert len(board) == 3
    failed = board[board["state"] == "failed"]
    assert list(failed["model.params.n_neighbors"]) == [1000]
    assert "n_neighbors" in failed["error"].iloc[0] and failed["accuracy"].isna().all()
    assert _complete(board)["error"].isna().all()
    assert load_recipe(tmp_path / "run" / "best.yaml").model.params["n_neighbors"] in (3, 5)
    assert result.trained is not None and (tmp_path / "run" / "best" / "bundle").is_dir()


def test_no_completed_trial_is_a_one_line_error_from_the_cli(cli, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "allfail", "data": IRIS, "model": {"type": "knn"},
                                      "tune": {"trials": None, "sampler": "grid",
                                               "space": {"model.params.n_neighbors": {"choice": [500, 1000]}}}}))
    result = cli("tune", recipe, "--out", tmp_path / "run")
    assert_user_error(result, "no trial completed")
    with pytest.raises(HoningError, match="no trial completed"):
        api.tune(recipe, out=tmp_path / "again")


def test_a_recipe_as_written_that_fails_does_not_stop_the_search(tmp_path):
    recipe = {"name": "baddefault", "data": IRIS, "model": {"type": "knn", "params": {"n_neighbors": 1000}},
              "tune": {"trials": None, "sampler": "grid", "space": {"model.params.n_neighbors": {"choice": [3, 5]}}}}
    result = api.tune(recipe, out=tmp_path / "run")
    assert result.default_score is None
    assert len(_complete(_leaderboard(tmp_path / "run"))) == 2


# --------------------------------------------------------------------------- CLI


def test_cli_tune_prints_the_leaderboard_and_the_best_trial(cli, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "cli", "data": IRIS, "model": {"type": "decision_tree"},
                                      "tune": {"trials": 20}}))
    run = tmp_path / "run"
    result = cli("tune", recipe, "--trials", "3", "--out", run, "--set", "tune.sampler=random")
    assert result.code == 0, result.err
    assert "tuning leaderboard (3 trials)" in result.out
    board = _leaderboard(run)
    assert len(board) == 3
    best = _complete(board).loc[_complete(board)["accuracy"].idxmax()]
    assert f"best: trial {int(best['trial'])}, validation accuracy {best['accuracy']:.4f}" in result.out
    assert "best recipe refitted: test accuracy" in result.out
    written = load_recipe(run / "recipe.yaml")
    assert written.tune.sampler == "random" and written.tune.trials == 3
    assert not math.isnan(best["accuracy"])
