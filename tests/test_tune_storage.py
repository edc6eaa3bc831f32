"""Where a study lives: parallel workers on one journal, resume after SIGKILL / Ctrl-C, and
workers joining a study in a real PostgreSQL server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from conftest import assert_user_error
from honing import api
from honing.errors import HoningError

#: An MLP on breast_cancer: every trial trains the full 150 epochs (~0.4 s), none is pruned.
SLOW = {
    "name": "slow",
    "data": {"source": "builtin:breast_cancer"},
    "model": {"type": "mlp", "params": {"hidden": [16]}},
    "train": {"epochs": 150, "early_stopping": None, "batch_size": 64},
    "tune": {"trials": 4, "sampler": "random", "pruner": "none", "refit": False,
             "space": {"train.optimizer.lr": {"float": [1e-3, 1e-2], "log": True}}},
}
FAST = {**SLOW, "train": {"epochs": 3, "early_stopping": None}}


def _recipe(tmp_path: Path, raw: dict, **tune) -> Path:
    raw = {**raw, "tune": {**raw["tune"], **tune}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _journal(path: Path, name: str = "slow") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


def _honing(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "honing.cli", "-q", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _trials(journal: Path, name: str = "slow") -> list:
    if not journal.exists():
        return []
    try:
        return _journal(journal, name).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return []


def test_two_workers_share_a_journal(tmp_path):
    # a trial takes ~0.4 s, and the spawned worker starts its first one 3 s in (more on a busy machine):
    # enough trials that it joins before the first worker has used the budget alone
    result = api.tune(_recipe(tmp_path, SLOW, trials=24, workers=2), out=tmp_path / "run")
    study = _journal(tmp_path / "run" / "study.journal")
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert 24 <= len(finished) <= 25  # a trial running when the budget was reached may finish
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # two processes ran trials
    assert len(result.leaderboard) == len(study.trials)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_study_resumes_without_counting_a_trial_twice(tmp_path, stop):
    run = tmp_path / "run"
    journal = tmp_path / ".run.partial" / "study.journal"
    process = _honing("tune", str(_recipe(tmp_path, SLOW, trials=4)), "--out", str(run))
    try:
        _wait_for(lambda: sum(t.state == TrialState.COMPLETE for t in _trials(journal)) >= 2
                  and any(t.state == TrialState.RUNNING and t.params for t in _trials(journal)))  # sampled
    finally:
        process.send_signal(stop)
        _, err = process.communicate(timeout=60)
    if stop == signal.SIGINT:
        assert process.returncode == 130 and "honing tune --resume" in err
    before = {t.number: (t.params, t.value) for t in _trials(journal) if t.state == TrialState.COMPLETE}
    cut = [t for t in _trials(journal) if t.state != TrialState.COMPLETE]
    assert len(before) >= 2 and cut and not run.exists()

    result = api.tune(None, out=run, resume=True)

    study = _journal(run / "study.journal")
    for number, (params, value) in before.items():  # finished trials are kept as they were
        assert study.trials[number].params == params and study.trials[number].value == value
    counted = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(counted) == 4  # the budget, none counted twice
    retried = {t.user_attrs["retry_of"]: t for t in counted if "retry_of" in t.user_attrs}
    for trial in cut:  # the interrupted trial ran again with its own parameters
        assert retried[trial.number].params == trial.params
    assert set(pd.read_csv(run / "leaderboard.csv")["state"]) == {"complete", "interrupted"}
    assert (run / "best.yaml").is_file() and result.best_score == max(t.value for t in counted)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_recipe(tmp_path: Path, url: str, study: str, **tune) -> Path:
    return _recipe(tmp_path, SLOW, storage=url, study=study, **tune)


def test_a_second_machine_joins_a_study_in_postgresql(tmp_path, postgres_url):
    study_name = f"join-{uuid.uuid4().hex[:8]}"
    recipe = _pg_recipe(tmp_path, postgres_url, study_name, trials=6)
    leader = _honing("tune", str(recipe), "--out", str(tmp_path / "run"))
    storage = optuna.storages.RDBStorage(postgres_url)
    _wait_for(lambda: study_name in {s.study_name for s in optuna.get_all_study_summaries(storage)}
              and optuna.load_study(study_name=study_name, storage=storage).trials)
    finished = api.join(recipe)  # this process is the second machine
    _, err = leader.communicate(timeout=300)
    assert leader.returncode == 0, err
    study = optuna.load_study(study_name=study_name, storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert 6 <= len(complete) <= 7
    # the joined worker stops once the budget is taken, maybe while the leader still runs its last trial
    assert 0 < finished <= len(complete)
    workers = {t.user_attrs["worker"] for t in complete}
    assert len(workers) == 2, workers  # both the leader and the joined worker ran trials
    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv")
    assert len(board) == len(study.trials)


def test_postgresql_study_names_and_urls_are_checked(tmp_path, postgres_url, cli):
    name = f"names-{uuid.uuid4().hex[:8]}"
    recipe = _recipe(tmp_path, FAST, trials=1, storage=postgres_url, study=name)
    assert cli("tune", str(recipe), "--out", str(tmp_path / "a")).code == 0
    again = cli("tune", str(recipe), "--out", str(tmp_path / "b"))
    assert_user_error(again, f"a study '{name}' already exists")
    assert not (tmp_path / "b").exists() and not (tmp_path / ".b.partial").exists()
    missing = cli("tune", str(recipe), "--join", "--study", "never-started")
    assert_user_error(missing, "no study 'never-started'")


def test_an_unreachable_database_is_a_one_line_error(tmp_path, cli):
    url = "postgresql+psycopg2://nobody:secret@127.0.0.1:9/none"
    result = cli("tune", str(_recipe(tmp_path, FAST, storage=url)), "--out", str(tmp_path / "run"))
    assert_user_error(result, "tune.storage: cannot open")
    assert "secret" not in result.err and not (tmp_path / "run").exists()


def test_sqlite_storage_is_refused_for_parallel_safety(tmp_path):
    with pytest.raises(HoningError, match="SQLite is not safe"):
        api.tune(_recipe(tmp_path, FAST, storage=f"sqlite:///{tmp_path}/s.db"), out=tmp_path / "run")


def test_optuna_dashboard_reads_the_study_journal(tmp_path):
    import io
    import json

    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    api.tune(_recipe(tmp_path, FAST, trials=2), out=tmp_path / "run")
    app = optuna_dashboard.wsgi(str(tmp_path / "run" / "study.journal"))  # what `optuna-dashboard FILE` serves

    def get(path: str) -> dict:
        status = {}
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "localhost",
                   "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                   "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr}
        body = b"".join(app(environ, lambda s, headers, exc_info=None: status.setdefault("status", s)))
        assert status["status"].startswith("200"), status
        return json.loads(body)

    (summary,) = get("/api/studies")["study_summaries"]
    assert summary["study_name"] == "slow" and summary["directions"] == ["maximize"]
    trials = get(f"/api/studies/{summary['study_id']}")["trials"]
    assert len(trials) == 2 and {t["state"] for t in trials} == {"Complete"}
