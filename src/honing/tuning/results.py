"""What a study found: the leaderboard, the best trial and the recipe it stands for."""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from honing.tuning.space import Dimension, suggest

#: Column names of the objectives besides the metric.
UNITS = {"latency": "latency_ms", "size": "size_kb"}
STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
          TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


def objective_names(objectives: list[str], metric: str) -> list[str]:
    return [metric if o == "metric" else UNITS[o] for o in objectives]


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial: for several objectives, the Pareto-optimal one best on the first."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    if len(study.directions) == 1:
        return study.best_trial
    greater = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return max(study.best_trials, key=lambda t: t.values[0] if greater else -t.values[0])


def best_values(trial: FrozenTrial, dims: tuple[Dimension, ...]) -> dict[str, Any]:
    """The recipe values of ``trial`` (replayed through the space, so lists come back as lists)."""
    return suggest(optuna.trial.FixedTrial(trial.params), dims)


def leaderboard(study: optuna.Study, names: list[str]) -> list[dict[str, Any]]:
    """One row per trial: complete ones best first, then pruned, failed and interrupted ones."""
    pareto = {t.number for t in study.best_trials} if len(names) > 1 and _any_complete(study) else set()
    signs = [-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            continue
        state = "interrupted" if trial.user_attrs.get("interrupted") else STATES.get(trial.state, str(trial.state))
        row: dict[str, Any] = {"trial": trial.number, "state": state}
        for i, name in enumerate(names):  # a pruned trial's value is only its last report
            row[name] = trial.values[i] if trial.values and trial.state == TrialState.COMPLETE else math.nan
        if pareto:
            row["pareto"] = trial.number in pareto
        row["epochs"] = trial.user_attrs.get("epochs", 0)
        row["seconds"] = round(trial.duration.total_seconds(), 2) if trial.duration else math.nan
        row.update(trial.user_attrs.get("values", {}))
        if trial.user_attrs.get("error"):
            row["error"] = trial.user_attrs["error"]
        rows.append(row)
    order = {"complete": 0, "pruned": 1, "failed": 2, "interrupted": 3, "running": 4}

    def key(row: dict) -> tuple:
        value = row[names[0]]
        return (order.get(row["state"], 5), signs[0] * value if math.isfinite(value) else math.inf, row["trial"])

    return sorted(rows, key=key)


def _any_complete(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def table(rows: list[dict[str, Any]], names: list[str], limit: int = 10) -> Any:
    """A rich table of the leaderboard's first ``limit`` rows."""
    from rich.table import Table

    fixed = {"trial", "state", "epochs", "seconds", "pareto", "error", *names}
    params = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in fixed]
    out = Table(title=f"tuning leaderboard ({len(rows)} trials{', best ' + str(limit) if len(rows) > limit else ''})")
    for column in ["trial", *names, "state", "epochs", "seconds"]:
        out.add_column(column, justify="left" if column == "state" else "right", no_wrap=True)
    out.add_column("values", overflow="fold")
    for row in rows[:limit]:
        shown = ", ".join(f"{p.split('.')[-1]}={_fmt(row[p])}" for p in params if p in row)
        out.add_row(str(row["trial"]), *(_fmt(row[n]) for n in names), row["state"] + (" ★" if row.get("pareto") else ""),
                    str(row["epochs"] or ""), _fmt(row["seconds"]), shown)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "null" if value is None else str(value)
