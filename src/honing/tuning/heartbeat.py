"""Heartbeats of trials in a database study: how the trials of a dead worker are found, failed and run again.

A running trial beats every ``tune.heartbeat`` seconds; one silent for :func:`grace` seconds (its
worker died, or stalled) is marked ``interrupted: "heartbeat"`` and failed by the first worker to
look (:func:`fail_stale`; Optuna also looks before each trial), which queues its parameters again
(:func:`requeue_stale`; once, since only one worker's FAIL lands; should that worker die between the
two writes, :func:`requeue_orphans` queues it later).  A running trial that never beat
(its worker died between creating it and beating) is stale once it started longer than that ago.  A
stalled worker that comes back finds its trial :func:`lost`: its result is refused and it goes on
with the next trial.
"""

from __future__ import annotations

import contextlib
import warnings
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

#: Seconds between a running trial's heartbeats in a database (``tune.heartbeat``'s default).
HEARTBEAT = 20


def grace(heartbeat: int) -> int:
    """Seconds without a heartbeat after which a running trial is stale (its worker is taken for
    dead): four missed beats plus 10 s for a slow network or a busy machine (90 s by default)."""
    return 4 * heartbeat + 10


class HeartbeatStorage(optuna.storages.RDBStorage):
    """Optuna's database storage, with two changes to its heartbeats:

    * a stale trial is marked ``interrupted`` while it is still running, just before Optuna fails
      it (a finished trial takes no more attributes: marking it in the stale-trial callback raised
      ``UpdateFinishedTrialError`` out of ``optimize`` in the worker that noticed, and left the
      trial counted as a failure and never retried);
    * a trial beats as soon as it runs: Optuna's first beat comes after sampling, and a trial
      without any beat is never found stale, so a worker killed while sampling left its trial
      running for ever (and the workers that wait for running trials, see :func:`honing.tuning.study.run_trials`,
      waiting with it)."""

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        trial = super()._create_new_trial(study_id, template_trial)
        if trial.state == TrialState.RUNNING:
            self.record_heartbeat(trial._trial_id)
        return trial

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        updated = super().set_trial_state_values(trial_id, state, values)
        if updated and state == TrialState.RUNNING:  # a queued trial taken by a worker
            self.record_heartbeat(trial_id)
        return updated

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id) + self._never_beaten(study_id)
        for trial_id in stale:
            with contextlib.suppress(UpdateFinishedTrialError):  # finished meanwhile: Optuna skips it
                self.set_trial_user_attr(trial_id, "interrupted", "heartbeat")
        return stale

    def _never_beaten(self, study_id: int) -> list[int]:
        """Running trials that never beat and started longer than the grace period ago: their worker
        died between creating the trial and its first beat (two writes, not one), which Optuna, finding
        no heartbeat to judge, would leave running for ever."""
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        grace_period = self.grace_period if self.grace_period is not None else 2 * (self.heartbeat_interval or 0)
        started_before = datetime.now() - timedelta(seconds=grace_period)  # datetime_start: the creator's clock
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        old = [t._trial_id for t in running if t.datetime_start is not None and t.datetime_start < started_before]
        if not old:
            return []
        with _create_scoped_session(self.scoped_session) as session:
            beaten = {row.trial_id for row in session.query(models.TrialHeartbeatModel.trial_id)
                      .filter(models.TrialHeartbeatModel.trial_id.in_(old))}
        return [trial_id for trial_id in old if trial_id not in beaten]


def fail_stale(study: optuna.Study) -> None:
    """Fail the trials of dead workers (silent for longer than the grace period) in a database;
    each is marked interrupted and queued again once.  Nothing to do in a journal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def requeue_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's callback for a database trial whose worker stopped beating, run by the one worker
    whose FAIL of it landed: queue its parameters again (it was marked interrupted just before)."""
    if trial.user_attrs.get("interrupted"):
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def requeue_orphans(study: optuna.Study, settle: float | None = None) -> int:
    """Queue again each trial failed for its silence whose retry was never queued, ``settle`` seconds
    (default: the grace period) after it was failed: the worker that failed it died before queueing it
    (two writes, not one).  The wait, far longer than that worker's gap between the two writes, keeps
    live workers from queueing a retry twice.  Returns how many were queued."""
    if settle is None:
        storage = getattr(study._storage, "_backend", study._storage)  # Optuna wraps it in a cache
        settle = getattr(storage, "grace_period", None) or 0
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    failed_before = datetime.now() - timedelta(seconds=settle)  # datetime_complete: the failer's clock
    orphans = [t for t in trials if t.user_attrs.get("interrupted") == "heartbeat" and t.state == TrialState.FAIL
               and t.number not in retried and t.datetime_complete is not None and t.datetime_complete < failed_before]
    for trial in orphans:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    return len(orphans)


def lost(study: optuna.Study, trial_id: int) -> bool:
    """Was this worker's trial failed under it by another worker, which took it for dead (this
    worker stalled past the grace period)?  Its result is refused; the retry is queued."""
    trial = study._storage.get_trial(trial_id)
    return trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted") == "heartbeat"
