"""Experiment tracking on MLflow: finished train and tune run directories logged as MLflow runs.

Logging happens *after* a run directory is complete, from what it holds, so it can never change or
lose a training run: a store that cannot be reached raises a one-line :class:`HoningError` and the
caller decides whether that is an error or a warning.  What one train run becomes in MLflow:

- params: the resolved recipe flattened to dotted keys (``train.optimizer.lr``), values as YAML/JSON
  text (strings as they are), in batches of MLflow's 100 params per call;
- metrics: every epoch of ``history.csv`` with ``step=epoch``, and the final numbers of
  ``metrics.json`` (``test_accuracy``, ``validation_f1_macro``, ``baseline_test_accuracy``, the
  test intervals ``test_accuracy_low/high``, cross-validation ``cv_accuracy_mean/std``), all sent
  by :meth:`MlflowClient.log_batch` in as few calls as MLflow's limits allow (one for <= 100 params
  and <= 1000 values);
- tags: ``honing.*`` (version, kind, recipe, model type, task, selection metric, data source and
  fingerprint, run directory, git commit) and MLflow's own (source, git commit, user, note);
- artifacts: the run directory's files (``bundle/``, ``plots/``, ``report.html``, ``metrics.json``,
  ``audit.json``, ``recipe.yaml``, ``history.csv``, ``leaderboard.csv``, ``schema.json``) and an
  ``MLmodel`` file at the root, which makes the run's artifact directory an MLflow model, registered
  under the recipe's name without pickling anything (see :mod:`honing.mlflow_store`).

A tuning run becomes a parent run with one nested child run per trial (tag ``mlflow.parentRunId``)
and its refitted best run (``best/``) logged by :func:`log_train` as one more child, registered.

Where the store is, how it is opened quietly, the registry, and :func:`list_runs`,
:func:`compare_runs`, :func:`promote` and :func:`ui_command` (re-exported here) live in
:mod:`honing.mlflow_store`.
"""

from __future__ import annotations

import contextlib
import csv
import getpass
import json
import math
import os
import re
import subprocess
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honing.errors import HoningError
from honing.mlflow_store import (
    client,
    compare_runs,
    experiment_id,
    list_runs,
    promote,
    quiet,
    redact,
    store_errors,
    tracking_uri,
    ui_command,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from honing.recipe import Recipe

__all__ = ["compare_runs", "enabled", "list_runs", "log_train", "log_tune", "promote", "tracking_uri", "ui_command"]

OFF = ("0", "false", "off", "no")
#: Files and folders of a run directory logged as artifacts (when present).
TRAIN_ARTIFACTS = ("bundle", "plots", "report.html", "metrics.json", "audit.json", "recipe.yaml",
                   "history.csv", "leaderboard.csv", "schema.json")
TUNE_ARTIFACTS = ("plots", "report.html", "tune.json", "leaderboard.csv", "best.yaml", "recipe.yaml", "study.json")
#: Trial states (leaderboard.csv) as MLflow run statuses.
TRIAL_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "interrupted": "KILLED"}
MAX_PARAM, MAX_KEY = 6000, 250


def enabled(cfg: Any) -> bool:
    """Whether to log: ``cfg`` is the recipe's ``tracking`` section (or the recipe, or a bool);
    the environment variable ``HONING_TRACKING=0`` (false/off/no) turns tracking off everywhere."""
    if os.environ.get("HONING_TRACKING", "").strip().lower() in OFF:
        return False
    cfg = getattr(cfg, "tracking", cfg)
    if cfg is None or isinstance(cfg, bool):
        return cfg is not False
    return bool(getattr(cfg, "enabled", True))


# --------------------------------------------------------------------------- what is logged


def key(name: str) -> str:
    """A valid MLflow param/metric key: other characters become '_', at most 250 of them."""
    return re.sub(r"[^\w.\- ]", "_", str(name))[:MAX_KEY] or "_"


def value_text(value: Any) -> str:
    """A param value: strings as they are, the rest as JSON (YAML-readable), within 6000 chars."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = redact(text)
    return text if len(text) <= MAX_PARAM else text[:MAX_PARAM - 1] + "…"


def flat_params(recipe: Recipe | dict) -> dict[str, str]:
    """The recipe as ``{dotted.key: text}`` (an empty section or mapping is one ``{}`` value)."""
    raw = recipe if isinstance(recipe, dict) else recipe.model_dump(mode="json")
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for name, child in node.items():
                walk(child, f"{prefix}.{name}" if prefix else str(name))
        else:
            out[key(prefix)] = value_text(node)

    walk(raw, "")
    return out


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of metrics.json worth comparing across runs, under flat names."""
    out: dict[str, float] = {}
    for split in ("validation", "test"):
        _numbers(metrics.get(split), f"{split}_", out)
        _numbers((metrics.get("baseline") or {}).get(split), f"baseline_{split}_", out)
    for name, bounds in ((metrics.get("intervals") or {}).get("test") or {}).items():
        if isinstance(bounds, list) and len(bounds) == 2:
            _numbers({f"{name}_low": bounds[0], f"{name}_high": bounds[1]}, "test_", out)
    cv = metrics.get("cv") or {}
    for who, prefix in (("model", "cv_"), ("baseline", "baseline_cv_")):
        for name, stats in ((cv.get(who) or {}).get("summary") or {}).items():
            _numbers({f"{name}_{s}": stats.get(s) for s in ("mean", "std")}, prefix, out)
    _numbers(cv.get("comparison"), "cv_vs_baseline_", out)
    return out


def _numbers(section: Any, prefix: str, out: dict[str, float]) -> None:
    for name, value in (section or {}).items() if isinstance(section, dict) else ():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key(prefix + str(name))] = float(value)


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def history_metrics(rows: list[dict[str, str]], start_ms: int, end_ms: int) -> list[Any]:
    """One Metric per value of history.csv, ``step=epoch``, stamped when its epoch ended (from
    the ``seconds`` column, counted from the run's start)."""
    from mlflow.entities import Metric

    out, elapsed = [], 0.0
    for i, row in enumerate(rows):
        step = int(_float(row.get("epoch")) or i + 1)
        seconds = _float(row.get("seconds"))
        elapsed += seconds if seconds is not None and math.isfinite(seconds) else 0.0
        stamp = min(end_ms, start_ms + int(elapsed * 1000))
        for name, text in row.items():
            number = _float(text)
            if name != "epoch" and name is not None and number is not None:
                out.append(Metric(key(name), number, stamp, step))
    return out


def _float(text: Any) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None


def log_batch(mlflow: MlflowClient, run_id: str, metrics: Iterable[Any] = (),
              params: dict[str, str] | None = None, tags: dict[str, str] | None = None) -> int:
    """Everything in as few ``log_batch`` calls as MLflow's limits allow; returns the calls made."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.validation import (
        MAX_ENTITIES_PER_BATCH,
        MAX_METRICS_PER_BATCH,
        MAX_PARAMS_TAGS_PER_BATCH,
    )

    metrics = [m if isinstance(m, Metric) else Metric(*m) for m in metrics]
    pending_p = [Param(k, v) for k, v in (params or {}).items()]
    pending_t = [RunTag(k, v) for k, v in (tags or {}).items()]
    calls = 0
    while metrics or pending_p or pending_t:
        p, pending_p = pending_p[:MAX_PARAMS_TAGS_PER_BATCH], pending_p[MAX_PARAMS_TAGS_PER_BATCH:]
        room = MAX_PARAMS_TAGS_PER_BATCH - len(p)
        t, pending_t = pending_t[:room], pending_t[room:]
        room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(p) - len(t))
        m, metrics = metrics[:room], metrics[room:]
        mlflow.log_batch(run_id, metrics=m, params=p, tags=t, synchronous=True)
        calls += 1
    return calls


def base_tags(kind: str, run_dir: Path, recipe: Recipe) -> dict[str, str]:
    from honing import __version__

    tags = {"honing.kind": kind, "honing.version": __version__, "honing.recipe": recipe.name,
            "honing.run_dir": str(Path(run_dir).resolve()), "honing.data_source": redact(recipe.data.source or f"env:{recipe.data.env}"),
            "mlflow.source.type": "LOCAL", "mlflow.source.name": f"honing {kind}"}
    with contextlib.suppress(Exception):
        tags["mlflow.user"] = getpass.getuser()
    commit = git_commit()
    if commit:
        tags["honing.git_commit"] = tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit(cwd: Path | None = None) -> str | None:
    """HEAD of the git repository holding ``cwd`` (the working directory), None outside one."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def run_times(run_dir: Path, seconds: float, started: float | None = None) -> tuple[int, int]:
    """(start, end) in ms: the end when ``metrics.json``/``tune.json`` was written; the start given,
    or the stamp of a default run directory name (``20250101-120000-ab12cd``), or end - ``seconds``."""
    marker = next((run_dir / n for n in ("metrics.json", "tune.json") if (run_dir / n).is_file()), run_dir)
    end = marker.stat().st_mtime if marker.exists() else time.time()
    if started is None:
        stamp = re.match(r"(\d{8}-\d{6})-", run_dir.name)
        with contextlib.suppress(ValueError):
            started = datetime.strptime(stamp.group(1), "%Y%m%d-%H%M%S").timestamp() if stamp else None
    if started is None or started > end:
        started = end - max(seconds, 0.0)
    return int(started * 1000), int(end * 1000)


def log_artifacts(mlflow: MlflowClient, run_id: str, run_dir: Path, names: Iterable[str]) -> list[str]:
    """Log ``names`` of ``run_dir`` that exist (folders under their own name); returns them."""
    logged = []
    for name in names:
        path = run_dir / name
        if path.is_dir():
            mlflow.log_artifacts(run_id, str(path), name)
        elif path.is_file():
            mlflow.log_artifact(run_id, str(path))
        else:
            continue
        logged.append(name)
    return logged


def read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise HoningError(f"{path.parent}: not a {what} run directory (no {path.name})",
                          f"give a directory `honing {what}` wrote")
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the public verbs


def _fail(mlflow: MlflowClient, run_id: str) -> None:
    with contextlib.suppress(Exception):
        mlflow.set_terminated(run_id, "FAILED")


def log_train(run_dir: Path, recipe: Recipe, *, parent_run_id: str | None = None, register: bool | None = None,
              started: float | None = None) -> str:
    """Log one finished train run directory as an MLflow run; returns the run id.

    ``register`` (default ``recipe.tracking.register_model``) adds the run's bundle to the model
    registry under the recipe's name, a new version per run.  ``started`` (seconds since the epoch)
    is when the run began; without it the default run directory name's stamp, or the model's fit
    time before metrics.json was written, stands in.
    """
    from honing import mlflow_store

    run_dir = Path(run_dir)
    metrics = read_json(run_dir / "metrics.json", "train")
    manifest_path = run_dir / "bundle" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    board = read_csv(run_dir / "leaderboard.csv")
    model = metrics.get("model") or manifest.get("model_type") or recipe.model.type
    fit = next((_float(r.get("fit_seconds")) for r in board if r.get("model") == model), None)
    history = read_csv(run_dir / "history.csv")
    start, end = run_times(run_dir, fit or sum(_float(r.get("seconds")) or 0.0 for r in history), started)

    values = final_metrics(metrics)
    if fit is not None:
        values["fit_seconds"] = fit
    selection = str(metrics.get("selection_metric") or "")
    tags = {**base_tags("train", run_dir, recipe), "honing.model_type": str(model),
            "honing.task": str(metrics.get("task") or manifest.get("task") or ""), "honing.metric": selection}
    if manifest.get("data_fingerprint"):
        tags["honing.data_fingerprint"] = manifest["data_fingerprint"]
    headline = values.get(f"test_{selection}", values.get(f"validation_{selection}"))
    tags["mlflow.note.content"] = f"{model} on {recipe.data.source}" + (
        f": test {selection} {headline:.4f}" if headline is not None else "")

    uri = tracking_uri(recipe.tracking.uri)
    mlflow = client(uri)
    with quiet(), store_errors(uri, "logging the run"):
        if parent_run_id:
            exp = mlflow.get_run(parent_run_id).info.experiment_id
            tags["mlflow.parentRunId"] = parent_run_id
        else:
            exp = experiment_id(mlflow, recipe.tracking.experiment or recipe.name, uri)
        run = mlflow.create_run(exp, start_time=start, tags=tags, run_name=run_dir.name)
        run_id = run.info.run_id
        try:
            from mlflow.entities import Metric

            finals = [Metric(k, v, end, 0) for k, v in values.items()]
            log_batch(mlflow, run_id, [*history_metrics(history, start, end), *finals], flat_params(recipe))
            log_artifacts(mlflow, run_id, run_dir, TRAIN_ARTIFACTS)
            mlflow_store.log_mlmodel(mlflow, run_id, manifest, str(model))
            if recipe.tracking.register_model if register is None else register:
                version = mlflow_store.register(mlflow, recipe.name, run, tags, headline)
                mlflow.set_tag(run_id, "honing.registered_model", f"{recipe.name}/{version}")
            mlflow.set_terminated(run_id, "FINISHED", end_time=max(end, start))
        except BaseException:
            _fail(mlflow, run_id)
            raise
    return run_id


def log_tune(run_dir: Path, recipe: Recipe) -> str:
    """Log a tuning run directory: a parent run (the tuning recipe, tune.json's summary, the best
    values as ``best.*`` params, plots and leaderboard.csv), one nested run per trial, and the
    refitted ``best/`` run through :func:`log_train` (registered); returns the parent's run id."""
    from mlflow.entities import Metric

    from honing.recipe import load_recipe

    run_dir = Path(run_dir)
    summary = read_json(run_dir / "tune.json", "tune")
    trials = read_csv(run_dir / "leaderboard.csv")
    names = [str(n) for n in summary.get("objectives") or []]
    start, end = run_times(run_dir, sum(_float(t.get("seconds")) or 0.0 for t in trials))
    best = summary.get("best") or {}
    values: dict[str, float] = {}
    _numbers(best.get("scores"), "best_", values)
    _numbers(summary.get("test"), "test_", values)
    _numbers(summary.get("trials"), "trials_", values)
    _numbers({"epochs_total": summary.get("epochs"), f"default_{names[0] if names else 'score'}":
              summary.get("default_score")}, "", values)
    params = flat_params(recipe)
    params.update({key(f"best.{k}"): value_text(v) for k, v in {**(best.get("values") or {}),
                                                                 **(best.get("refit") or {})}.items()})
    tags = {**base_tags("tune", run_dir, recipe), "honing.model_type": recipe.model.type,
            "honing.metric": names[0] if names else "", "honing.study": str(summary.get("study") or ""),
            "honing.best_trial": "as written" if best.get("trial") is None else str(best["trial"])}
    if (run_dir / "best" / "metrics.json").is_file():
        tags["honing.task"] = str(read_json(run_dir / "best" / "metrics.json", "train").get("task") or "")

    uri = tracking_uri(recipe.tracking.uri)
    mlflow = client(uri)
    with quiet(), store_errors(uri, "logging the tuning run"):
        exp = experiment_id(mlflow, recipe.tracking.experiment or recipe.name, uri)
        parent = mlflow.create_run(exp, start_time=start, tags=tags, run_name=run_dir.name).info.run_id
        try:
            log_batch(mlflow, parent, [Metric(k, v, end, 0) for k, v in values.items()], params)
            for row in trials:
                _log_trial(mlflow, exp, parent, row, names, recipe.name, end)
            log_artifacts(mlflow, parent, run_dir, TUNE_ARTIFACTS)
            if (run_dir / "best" / "metrics.json").is_file():
                refit = load_recipe(run_dir / "best" / "recipe.yaml").model_copy(update={"tracking": recipe.tracking})
                best_id = log_train(run_dir / "best", refit, parent_run_id=parent)
                mlflow.set_tag(parent, "honing.best_run_id", best_id)
            mlflow.set_terminated(parent, "FINISHED", end_time=max(end, start))
        except BaseException:
            _fail(mlflow, parent)
            raise
    return parent


def _log_trial(mlflow: MlflowClient, exp: str, parent: str, row: dict[str, str], names: list[str],
               recipe_name: str, end: int) -> str:
    fixed = {"trial", "state", "epochs", "seconds", "pareto", "error", *names}
    seconds = _float(row.get("seconds"))
    state = row.get("state") or "complete"
    tags = {"mlflow.parentRunId": parent, "honing.kind": "trial", "honing.recipe": recipe_name,
            "honing.trial": str(row.get("trial")), "honing.trial_state": state}
    if row.get("pareto") not in (None, ""):
        tags["honing.pareto"] = row["pareto"]
    if row.get("error"):
        tags["honing.error"] = row["error"][:8000]
    start = end - int((seconds if seconds is not None and math.isfinite(seconds) else 0.0) * 1000)
    run_id = mlflow.create_run(exp, start_time=start, tags=tags, run_name=f"trial {row.get('trial')}").info.run_id
    metrics = [(key(n), v, end, 0) for n in [*names, "seconds", "epochs"]
               if (v := _float(row.get(n))) is not None and math.isfinite(v)]
    params = {key(k): value_text(v) for k, v in row.items() if k not in fixed and k is not None and v not in (None, "")}
    log_batch(mlflow, run_id, metrics, params)
    mlflow.set_terminated(run_id, TRIAL_STATUS.get(state, "KILLED"), end_time=end)
    return run_id
