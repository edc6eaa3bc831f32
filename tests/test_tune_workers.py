"""Many workers on one study: a worker killed mid-trial in a real PostgreSQL server (its trial is
failed by the others' heartbeat check, marked interrupted and run again once), and the budget
guarantee of N workers (at most N-1 trials more than ``tune.trials``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from honing.tuning import heartbeat
from honing.tuning import study as studies

#: An MLP on breast_cancer: every trial trains the full 150 epochs (~1 s), none is pruned.
SLOW = {
    "name": "workers",
    "data": {"source": "builtin:breast_cancer"},
    "model": {"type": "mlp", "params": {"hidden": [16]}},
    "train": {"epochs": 150, "early_stopping": None, "batch_size": 64},
    "tune": {"trials": 9, "sampler": "random", "pruner": "none", "refit": False,
             "space": {"train.optimizer.lr": {"float": [1e-3, 1e-2], "log": True}}},
}


def _honing(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "honing.cli", "-q", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout: float = 180.0, processes: tuple = ()):
    end = time.time() + timeout
    while time.time() < end:
        found = condition()
        if found:
            return found
        for process in processes:  # a worker that died early would make us wait for nothing
            assert process.poll() is None, process.communicate()[1]
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _in_threads(worker, count: int) -> None:
    """Run ``worker`` in ``count`` threads at once; every one must finish within two minutes."""
    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)


def _point(trial) -> dict:
    """The parameters a trial ran with, or, queued and not run yet, will run with."""
    return trial.params or trial.system_attrs.get("fixed_params", {})


def _load(url: str, name: str) -> optuna.Study | None:
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_failed_and_retried_once_by_the_others(tmp_path, postgres_url):
    name = f"kill-{uuid.uuid4().hex[:8]}"
    recipe = tmp_path / "recipe.yaml"
    raw = {**SLOW, "tune": {**SLOW["tune"], "storage": postgres_url, "study": name, "heartbeat": 1}}
    recipe.write_text(yaml.safe_dump(raw))
    budget = raw["tune"]["trials"]
    leader = _honing("tune", str(recipe), "--out", str(tmp_path / "run"))
    _wait_for(lambda: _load(postgres_url, name), processes=(leader,))
    joined = {p.pid: p for p in (_honing("tune", str(recipe), "--join", "--study", name) for _ in range(2))}
    try:
        def joined_trial():  # a joined worker's trial that has sampled its parameters and is training
            study = _load(postgres_url, name)
            for trial in study.get_trials(states=(TrialState.RUNNING,)):
                pid = int(trial.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
                if pid in joined and trial.params:
                    return trial
            return None

        victim = _wait_for(joined_trial, processes=(leader, *joined.values()))
        killed = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        joined[killed].send_signal(signal.SIGKILL)
        survivor = next(p for pid, p in joined.items() if pid != killed)
        _, err = leader.communicate(timeout=300)
        assert leader.returncode == 0, err
        _, err = survivor.communicate(timeout=60)
        assert survivor.returncode == 0, err
        assert joined[killed].wait(timeout=10) == -signal.SIGKILL
    finally:
        for process in (leader, *joined.values()):
            if process.poll() is None:
                process.kill()
                process.communicate()

    study = _load(postgres_url, name)
    trials = study.get_trials()
    by_number = {t.number: t for t in trials}
    assert len(by_number) == len(trials)  # trial numbers are never reused

    # (a) the killed worker's trial was failed by another worker's heartbeat check, marked interrupted
    lost = by_number[victim.number]
    assert lost.state == TrialState.FAIL and lost.user_attrs["interrupted"] == "heartbeat"
    assert lost.user_attrs["worker"].endswith(f":{killed}")
    assert not [t for t in trials if t.state == TrialState.RUNNING]  # nothing left holding the budget

    # (b) the others went on: the budget of finished trials is reached, with at most 3-1 more
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert all(studies.counted(t) == (t.state == TrialState.COMPLETE) for t in trials)
    assert budget <= len(complete) <= budget + 2, [(t.number, t.state) for t in trials]
    pids = {leader.pid, *joined}
    assert {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in complete} <= pids

    # (c) no trial ran twice: every completed trial tried its own point (a random sampler in a
    # continuous range repeats a point only when a trial is duplicated, or two workers share a seed)
    points = [t.params["train.optimizer.lr"] for t in complete]
    assert len(set(points)) == len(points), points
    # the lost trial's parameters were queued once, and run by one surviving worker if the budget needed it
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1 and _point(retries[0]) == lost.params
    assert retries[0].state in (TrialState.COMPLETE, TrialState.WAITING)  # waiting: the budget was met first
    if retries[0].state == TrialState.COMPLETE:
        assert int(retries[0].user_attrs["worker"].rsplit(":", 1)[1]) in pids - {killed}

    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv")  # the leader waited for every trial
    assert dict(zip(board["trial"], board["state"], strict=True))[victim.number] == "interrupted"
    assert (board["state"] == "complete").sum() == len(complete)


# --------------------------------------------------------------------------- in-process workers


def _storage(kind: str, tmp_path: Path, url: str | None, heartbeat: int = 1):
    if kind == "journal":
        return studies.open_storage(str(tmp_path / "study.journal"))
    return studies.open_storage(url, heartbeat)


@pytest.fixture(params=["journal", "postgresql"])
def storage_kind(request):
    if request.param == "postgresql":
        return "postgresql", request.getfixturevalue("postgres_url")
    return "journal", None


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage:UserWarning")
def test_n_workers_finish_at_most_n_minus_1_trials_past_the_budget(tmp_path, storage_kind):
    kind, url = storage_kind
    name, budget, workers = f"budget-{uuid.uuid4().hex[:8]}", 7, 4
    optuna.create_study(study_name=name, storage=_storage(kind, tmp_path, url))
    started = threading.Barrier(workers)
    seen: dict[int, set] = {}
    lock = threading.Lock()

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        with lock:
            seen.setdefault(trial.number, set()).add(threading.get_ident())
        time.sleep(0.05)
        return x

    def worker() -> None:
        study = optuna.load_study(study_name=name, storage=_storage(kind, tmp_path, url),
                                  sampler=optuna.samplers.RandomSampler(seed=threading.get_ident() % 2**31))
        started.wait()  # all check the budget at once: the worst case for overshooting it
        studies.run_trials(study, objective, budget, None)

    _in_threads(worker, workers)

    trials = optuna.load_study(study_name=name, storage=_storage(kind, tmp_path, url)).get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert budget <= len(trials) <= budget + workers - 1
    assert sorted(seen) == sorted(t.number for t in trials)
    assert all(len(threads_of) == 1 for threads_of in seen.values())  # no trial ran in two workers


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage:UserWarning")
def test_a_stale_trial_is_failed_once_and_retried_once_though_every_worker_notices(postgres_url):
    """A trial left running by a dead worker (here: created, never run) and four live workers that
    all look for stale trials at once: one fails it, it is queued again once, the budget is met."""
    name = f"stale-{uuid.uuid4().hex[:8]}"

    def storage():  # a short grace so the test takes seconds (tune.heartbeat's own is 4 × it + 10)
        return heartbeat.HeartbeatStorage(postgres_url, heartbeat_interval=1, grace_period=2,
                                         heartbeat_stale_trial_callback=heartbeat.requeue_stale)

    study = optuna.create_study(study_name=name, storage=storage())
    dead = study.ask()
    dead.suggest_float("x", 0, 1)  # then its worker dies: no heartbeat after the first
    ran: list[int] = []
    lock = threading.Lock()

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        with lock:
            ran.append(trial.number)
        time.sleep(0.05)
        return x

    workers, budget = 4, 3
    started = threading.Barrier(workers)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            mine = optuna.load_study(study_name=name, storage=storage(), sampler=optuna.samplers.RandomSampler())
            started.wait()
            studies.run_trials(mine, objective, budget, None)
        except BaseException as exc:  # noqa: BLE001 - reported below: the old code raised here
            errors.append(exc)

    _in_threads(worker, workers)
    assert not errors, errors

    trials = {t.number: t for t in optuna.load_study(study_name=name, storage=storage()).get_trials()}
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[dead.number].user_attrs["interrupted"] == "heartbeat"
    (retry,) = [t for t in trials.values() if t.user_attrs.get("retry_of") == dead.number]
    assert _point(retry) == trials[dead.number].params
    complete = [t for t in trials.values() if t.state == TrialState.COMPLETE]
    assert budget <= len(complete) <= budget + workers - 1
    assert sorted(ran) == sorted(t.number for t in complete) and len(set(ran)) == len(ran)
    # the dead trial held a place of the budget until it went stale (the workers waited for it); its
    # retry then ran, unless workers starting at once had already finished the budget
    assert retry.state == TrialState.COMPLETE or (retry.state == TrialState.WAITING and len(complete) >= budget)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage:UserWarning")
def test_a_worker_that_stalled_past_the_grace_period_loses_its_trial_and_goes_on(postgres_url):
    """A live worker silent for longer than the grace period (a stalled machine): another worker
    fails its trial as lost; when it comes back its result is refused, and it goes on with the
    next trial instead of crashing (Optuna raises "Cannot tell a FAIL trial")."""
    name = f"stall-{uuid.uuid4().hex[:8]}"

    def storage():  # beats when a trial starts, then not for a minute: silent past a 1 s grace
        return heartbeat.HeartbeatStorage(postgres_url, heartbeat_interval=60, grace_period=1,
                                         heartbeat_stale_trial_callback=heartbeat.requeue_stale)

    study = optuna.create_study(study_name=name, storage=storage(), sampler=optuna.samplers.RandomSampler(seed=0))
    other = optuna.load_study(study_name=name, storage=storage())

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 0:
            time.sleep(2.5)  # stalled: meanwhile another worker looks for dead ones
            heartbeat.fail_stale(other)
        return x

    studies.run_trials(study, objective, 2, None)

    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["interrupted"] == "heartbeat"
    assert not studies.counted(trials[0])
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert retry.state == TrialState.COMPLETE and retry.params == trials[0].params


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage:UserWarning")
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_trial_whose_worker_died_before_its_first_beat_goes_stale(kind, tmp_path, request):
    """Creating a trial and its first heartbeat are two writes: a worker killed between them leaves a
    running trial without any heartbeat, which Optuna never judges.  It is stale once it started
    longer than the grace period ago; a young one, and a beating one, are not."""
    url = f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    storage = heartbeat.HeartbeatStorage(url, heartbeat_interval=1, grace_period=1,
                                        heartbeat_stale_trial_callback=heartbeat.requeue_stale)
    study = optuna.create_study(study_name=f"unbeaten-{uuid.uuid4().hex[:8]}", storage=storage)
    study_id = storage.get_study_id_from_name(study.study_name)
    dead = optuna.storages.RDBStorage._create_new_trial(storage, study_id)  # created; the worker died before its beat
    storage.set_trial_param(dead._trial_id, "x", 0.25, optuna.distributions.FloatDistribution(0, 1))
    assert storage._get_stale_trial_ids(study_id) == []  # too young to judge
    time.sleep(1.3)
    alive = study.ask()  # beats as it starts
    assert storage._get_stale_trial_ids(study_id) == [dead._trial_id]
    heartbeat.fail_stale(study)
    trials = {t.number: t for t in study.get_trials()}
    assert trials[dead.number].state == TrialState.FAIL and trials[dead.number].user_attrs["interrupted"] == "heartbeat"
    assert trials[alive.number].state == TrialState.RUNNING
    (retry,) = [t for t in trials.values() if t.user_attrs.get("retry_of") == dead.number]
    assert retry.state == TrialState.WAITING and _point(retry) == {"x": 0.25}


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage:UserWarning")
def test_a_stale_trial_whose_failer_died_before_queueing_its_retry_is_retried_later(tmp_path):
    """Failing a stale trial and queueing its retry are two writes: a worker killed between them
    leaves no retry.  Once the grace period has passed since the fail, the next worker queues it, once."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    failer = heartbeat.HeartbeatStorage(url, heartbeat_interval=1, grace_period=1)  # dies before its callback
    study = optuna.create_study(study_name="orphan", storage=failer)
    dead = study.ask()  # its worker dies: no more beats
    dead.suggest_float("x", 0, 1)
    time.sleep(2.2)  # past the 1 s grace at SQLite's one-second clock
    heartbeat.fail_stale(study)
    (failed,) = study.get_trials()
    assert failed.state == TrialState.FAIL and failed.user_attrs["interrupted"] == "heartbeat"
    assert heartbeat.requeue_orphans(study, settle=60) == 0  # failed just now: its failer may still queue it
    time.sleep(1.5)

    storage = heartbeat.HeartbeatStorage(url, heartbeat_interval=1, grace_period=1,
                                        heartbeat_stale_trial_callback=heartbeat.requeue_stale)
    worker = optuna.load_study(study_name="orphan", storage=storage)
    seen: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        seen.append(trial.suggest_float("x", 0, 1))
        return seen[-1]

    studies.run_trials(worker, objective, 1, None)
    assert seen == [failed.params["x"]]  # the retry ran first, with the dead trial's parameters
    retries = [t for t in worker.get_trials() if t.user_attrs.get("retry_of") == failed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert heartbeat.requeue_orphans(worker, settle=0) == 0  # its retry exists: never queued twice
