"""The verbs of honing as Python functions; the CLI is a thin layer over these.

Each verb composes the stages (data → preprocess → model → evaluate → bundle) and holds no
logic of its own beyond wiring them together.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from honing.bundle import Bundle, save_bundle
from honing.data import preprocess
from honing.data.balance import balance_training
from honing.data.dataset import SPLITS, Dataset, encode_target, load_dataset
from honing.data.preprocess import extra_columns
from honing.data.schema import Schema
from honing.data.sources import read_table
from honing.errors import DataError, HoningError, RecipeError
from honing.evaluation.metrics import compute_metrics, confusion
from honing.evaluation.scoring import score_splits
from honing.loading import TRUSTED_TYPES, load_predictor
from honing.models import classic
from honing.models.select import Selection, select_model
from honing.progress import SILENT, Progress
from honing.recipe import Recipe, load_recipe
from honing.report.html import build_report
from honing.report.plots import learning_curve
from honing.tracking import (
    CHECKPOINTS,
    default_run_dir,
    launched_rank,
    partial_dir,
    run_directory,
    scratch_directory,
    write_json,
    write_text,
)
from honing.training.seed import seed_everything


@dataclass
class RunResult:
    """What ``train`` produced: where the run is and its headline numbers."""

    run_dir: Path
    recipe: Recipe
    task: str
    model: str
    metrics: dict[str, Any]
    leaderboard: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def bundle_dir(self) -> Path:
        return self.run_dir / "bundle"


def train(recipe: str | Path | dict | Recipe, overrides: list[str] | None = None,
          out: str | Path | None = None, progress: Progress = SILENT, resume: bool = False,
          fit_on_validation: bool = False, track: bool = True) -> RunResult:
    """Train the model a recipe describes; write the run directory (bundle, metrics, recipe,
    report.html) and log it to MLflow (``tracking:``; ``track=False`` leaves that to the caller).

    Neural models checkpoint every epoch inside the run's partial directory; with ``resume`` (see
    :func:`resume`) training continues from those checkpoints.  ``fit_on_validation`` trains on
    train + validation (a model already chosen, with its epochs fixed), scored on test alone.
    """
    started = time.time()
    recipe = load_recipe(recipe, overrides)
    classic.check_model_names(recipe.model.type, recipe.model.candidates, recipe.model.params)
    run_dir = Path(out) if out is not None else default_run_dir(recipe.name)
    writer = launched_rank() == 0  # under torchrun, rank 0 alone writes the run
    with run_directory(run_dir, resume=resume) if writer else scratch_directory() as tmp:
        if writer:
            progress.note(f"run directory: {run_dir}")
            write_text(tmp / "recipe.yaml", recipe.to_yaml())  # what --resume reads back
        result = _train_into(recipe, run_dir, tmp, progress if writer else SILENT,
                             partial_dir(run_dir) / CHECKPOINTS, fit_on_validation)
    if writer and track:
        _track(result.recipe, run_dir, progress, started)
    return result


def _track(recipe: Recipe, run_dir: Path, progress: Progress, started: float | None = None) -> None:
    """Log a finished run to MLflow (a tuning run when ``started`` is None); an unreachable store
    is a warning, since the run is saved."""
    import warnings

    from honing import mlflow_runs
    from honing.mlflow_store import redact

    if not mlflow_runs.enabled(recipe.tracking):
        return
    try:
        with progress.step(f"logging the run to MLflow ({redact(mlflow_runs.tracking_uri(recipe.tracking.uri))})"):
            if started is None:
                mlflow_runs.log_tune(run_dir, recipe)
            else:
                mlflow_runs.log_train(run_dir, recipe, started=started)
    except HoningError as exc:
        warnings.warn(f"{exc} (the run is saved in {run_dir})", stacklevel=2)


def launch_train(recipe: str | Path, overrides: list[str], out: str | Path | None, processes: int | None,
                 nnodes: int = 1, node_rank: int = 0, rdzv: str | None = None, quiet: bool = False) -> int | None:
    """Re-run ``honing train`` in N data-parallel processes through torchrun when the recipe (or
    ``processes``) asks for more than one; None when this process should just train."""
    parsed = load_recipe(recipe, overrides)
    processes = processes or parsed.train.processes
    if (processes == 1 and nnodes == 1) or "RANK" in os.environ:
        return None
    neural = classic.MODELS.names(neural=True)
    if parsed.model.type not in neural:
        raise RecipeError(f"train.processes: data-parallel training is for neural models, not '{parsed.model.type}'",
                          f"set model.type to one of {', '.join(neural)}, or train.processes: 1")
    from honing.training.distributed import launch

    out = Path(out) if out is not None else default_run_dir(parsed.name)  # one directory for every rank
    argv = ["-m", "honing.cli", *(["--quiet"] if quiet else []), "train", str(recipe), "--out", str(out)]
    for item in overrides:
        argv += ["--set", item]
    return launch(argv, processes, nnodes, node_rank, rdzv)


def resume(run_dir: str | Path, progress: Progress = SILENT) -> RunResult:
    """Continue an interrupted run from its last checkpoint, with exactly the same recipe."""
    recipe = _resumable(run_dir, "neural training")
    return train(recipe, out=run_dir, progress=progress, resume=True)


def _train_into(recipe: Recipe, run_dir: Path, tmp: Path, progress: Progress, checkpoints: Path,
                fit_on_validation: bool = False) -> RunResult:
    from honing.evaluation import fairness_check
    from honing.evaluation.evaluate import check_config, evaluate, predictor

    dataset = _load(recipe, progress)
    if fit_on_validation:
        dataset = dataset.with_validation_in_train()
    resolved = _resolved_recipe(recipe, dataset)
    audit = _audit_before_training(resolved, dataset, progress)
    fairness_check.check_mitigation(resolved, dataset)
    check_config(resolved, dataset)
    if resolved.model.pretrained:
        from honing.evaluation.transfer import check_base_eval

        check_base_eval(resolved.model.pretrained, resolved.model.finetune, dataset.task, dataset.classes)
    if resolved.audit.exclude_sensitive:
        dataset = dataset.excluding(resolved.audit.sensitive)
    dataset = _augmented_text(dataset, resolved, progress)
    with progress.step("fitting preprocessing on the training split"):
        preprocessor, data = dataset.prepared(resolved.data)
    if resolved.data.balance != "none":
        with progress.step(f"balancing the training split ({resolved.data.balance})"):
            data, weights = balance_training(data, resolved.data.balance, dataset.task, resolved.seed)
    else:
        weights = None
    selection = select_model(resolved.model, dataset.task, resolved.seed, data, dataset.n_classes,
                             resolved.evaluate.metric, progress, resolved.train, checkpoints, weights,
                             classic.neural_options(resolved))
    best = selection.best
    params = resolved.model.params if resolved.model.type != "auto" else {}
    model, decision = best.estimator, {}
    if resolved.audit.mitigate != "none":
        mitigated = fairness_check.mitigate(model, preprocessor, dataset, data, resolved, best.type, params, progress)
        model, decision = mitigated.model, mitigated.decision
    evaluation = evaluate(model, preprocessor, dataset, data, resolved, tmp / "plots", progress, decision)
    metrics = _metrics(selection, dataset, data, evaluation)
    if resolved.model.pretrained:  # the base model (and a from-scratch twin) beside the fine-tuned one
        from honing.evaluation import transfer

        metrics.update(transfer.compare(best.estimator, data, dataset.task, dataset.classes, resolved.model.finetune,
                                        preprocess.pretrained_tokenizer(preprocessor), progress))
    if resolved.evaluate.cv is not None:
        from honing.evaluation.evaluate import cross_validation

        metrics["cv"] = cross_validation(resolved, dataset, best.type, params, progress)
    if audit is not None and audit.sensitive and "test" in data:
        before = predictor(best.estimator, preprocessor, dataset) if model is not best.estimator or decision else None
        fairness = fairness_check.assess(evaluation.predictions["test"][0], before, dataset, data, resolved)
        audit.fairness, audit.findings = fairness.report, [*audit.findings, *fairness.findings]
        _note_findings(fairness.findings, progress)
        audit.enforce_model(fairness.findings, fairness.measured)
    history = getattr(best.estimator, "history_", None)
    if history is not None:
        metrics["diagnostics"] = _diagnostics(best.estimator, progress)
    with progress.step(f"writing {run_dir}"):
        save_bundle(tmp / "bundle", preprocessor=preprocessor, model=model,
                    task=dataset.task, features=dataset.schema.to_dict(), classes=dataset.classes,
                    model_type=best.type, metrics=metrics, recipe=resolved.model_dump(mode="json"),
                    data_fingerprint=dataset.fingerprint, trusted=TRUSTED_TYPES,
                    extra={"target": dataset.target, "decision": evaluation.decision,
                           "reference": _reference_profile(dataset, evaluation)},
                    calibrator=evaluation.calibrator)
        write_text(tmp / "recipe.yaml", resolved.to_yaml())
        write_json(tmp / "metrics.json", metrics)
        write_json(tmp / "schema.json", dataset.schema.to_dict())
        if audit is not None:
            write_json(tmp / "audit.json", audit.to_dict())
        pd.DataFrame(selection.table()).to_csv(tmp / "leaderboard.csv", index=False)
        if history is not None:
            pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
            learning_curve(history, tmp / "plots" / "learning_curve.png",
                           f"{best.type} on {resolved.data.source}")
        build_report(tmp)
    return RunResult(run_dir, resolved, dataset.task, best.type, metrics, selection.table(),
                     dataset.notes)


def _reference_profile(dataset: Dataset, evaluation: Any) -> dict:
    """The training split's profile, and the held-out predictions' (what ``honing monitor`` compares with)."""
    from honing.serving.profile import build_profile

    held_out = next((s for s in ("validation", "test") if len(evaluation.predictions.get(s, ((),))[0])), None)
    predictions = None
    if held_out is not None:
        predicted = evaluation.predictions[held_out][0]
        predictions = [dataset.classes[i] for i in predicted] if dataset.task == "classification" else predicted
    # images (pixel columns or files) are not profiled one pixel at a time; wide tables get coarser quantiles
    schema = dataset.schema if dataset.image_shape is None else Schema(columns=[], target=dataset.target)
    quantiles = 101 if len(schema.features) <= 50 else 21
    return build_profile(dataset.splits["train"], schema, predictions, task=dataset.task, quantiles=quantiles)


def _augmented_text(dataset: Dataset, recipe: Recipe, progress: Progress) -> Dataset:
    """The dataset with augmented copies of its training rows' text (``data.augment`` text steps);
    batch steps (images, tabular) need a neural model, which applies them per training batch."""
    from honing.data.augment_text import augment_training_text

    steps = recipe.data.augment
    batch_steps = classic.neural_options(recipe)["augment"]
    if batch_steps and recipe.model.type not in classic.MODELS.names(neural=True):
        raise RecipeError(f"data.augment: {batch_steps[0].get('name')} augments the training batches of neural "
                          f"models, and model.type is {recipe.model.type}",
                          "use a neural model.type (mlp, cnn, …, pretrained), or remove the step")
    text_steps = [(i, s) for i, s in enumerate(steps) if s.get("name") == "text"]
    if not text_steps:
        return dataset
    columns = [c.name for c in dataset.schema.features if c.kind == "text"]
    if not columns:
        raise RecipeError("data.augment: a text step needs a text column, and this data has none",
                          "remove the step, or set data.types: {COLUMN: text}")
    train = dataset.splits["train"]
    with progress.step(f"augmenting the training text ({', '.join(columns)})"):
        for i, step in text_steps:
            train = augment_training_text(train, columns, step, recipe.seed, index=i)
    return dataset.with_training(train)


def _audit_before_training(recipe: Recipe, dataset: Dataset, progress: Progress) -> Any:
    """The data audit (audit.json) with its gate, or None when ``audit.enabled`` is false."""
    from honing.audit.run import audit_data

    if not recipe.audit.enabled:
        return None
    audit = audit_data(dataset.raw if dataset.raw is not None else pd.concat(dataset.splits.values()),
                       dataset.target, dataset.task, sensitive=recipe.audit.sensitive,
                       fail_on=recipe.audit.fail_on, splits=dataset.splits, ignore=tuple(recipe.data.drop),
                       seed=recipe.seed, progress=progress)
    _note_findings(audit.findings, progress)
    audit.enforce_data()
    return audit


def _note_findings(findings: list, progress: Progress, most: int = 8) -> None:
    """The audit's warnings and errors on the console (the most severe first; all in audit.json)."""
    from honing.audit.findings import SEVERITIES

    shown = sorted((f for f in findings if f.severity != "info"), key=lambda f: -SEVERITIES.index(f.severity))
    for finding in shown[:most]:
        progress.note(f"audit {finding.severity}: {finding.message}")
    if len(shown) > most:
        progress.note(f"audit: {len(shown) - most} more findings in audit.json")


def _diagnostics(estimator: Any, progress: Progress) -> list[dict]:
    """Training-health findings of a neural model, shown on the console and kept in metrics.json."""
    from honing.training.diagnostics import format_findings

    findings = estimator.diagnose()
    for line in format_findings(findings):
        progress.note(line)
    return [f.to_dict() for f in findings]


def _resolved_recipe(recipe: Recipe, dataset: Dataset) -> Recipe:
    data = recipe.data.model_copy(update={"target": dataset.target, "task": dataset.task})
    update: dict[str, Any] = {"data": data}
    if dataset.image_shape is not None and recipe.model.type == "cnn" and "input_shape" not in recipe.model.params:
        params = {**recipe.model.params, "input_shape": list(dataset.image_shape)}  # the images' (C, H, W)
        update["model"] = recipe.model.model_copy(update={"params": params})
    return recipe.model_copy(update=update)


def _metrics(selection: Selection, dataset: Dataset, data: dict, evaluation: Any) -> dict[str, Any]:
    held_out = {s: data[s] for s in ("validation", "test") if s in data}
    baseline = score_splits(selection.baseline.estimator, held_out, dataset.task, dataset.n_classes)
    return {"task": dataset.task, "target": dataset.target, "model": selection.best.type,
            "selection_metric": selection.metric, "classes": dataset.classes,
            "rows": {s: len(dataset.splits[s]) for s in SPLITS}, **evaluation.metrics, "baseline": baseline,
            "leaderboard": selection.table()}


@dataclass
class TuneResult:
    """What ``tune`` produced: the run directory, the best recipe and its scores."""

    run_dir: Path
    recipe: Recipe  # the best recipe (also best.yaml)
    metric: str
    objectives: list[str]  # the leaderboard's score columns: the metric, latency_ms, size_kb
    best_trial: int | None  # None when no trial beat the recipe as written (best.yaml keeps it)
    best_score: float
    default_score: float | None  # the recipe as written, on the same validation data
    leaderboard: list[dict[str, Any]]
    trained: RunResult | None  # the best recipe's bundle, under best/
    notes: list[str] = field(default_factory=list)


def tune(recipe: str | Path | dict | Recipe, overrides: list[str] | None = None, out: str | Path | None = None,
         progress: Progress = SILENT, study: str | None = None, resume: bool = False) -> TuneResult:
    """Search the recipe's ``tune.space``; write the leaderboard, best.yaml, plots and the best
    bundle (refitted on train + validation) into the run directory.

    With ``resume``, ``out`` is an interrupted tuning run: its finished trials are kept and the
    interrupted ones run again."""
    from honing.evaluation.evaluate import check_refit
    from honing.tuning import search as searching

    if resume:
        recipe = _resumable(out, "tune")
    recipe = load_recipe(recipe, overrides)
    check_refit(recipe)
    run_dir = Path(out) if out is not None else default_run_dir(recipe.name)
    with run_directory(run_dir, resume=resume) as tmp:
        progress.note(f"run directory: {run_dir}")
        dataset = _load(recipe, progress)
        search = searching.prepare(recipe, dataset, tmp, study)
        recipe = recipe.model_copy(update={"tune": recipe.tune.model_copy(update={"study": search.spec.name})})
        write_text(tmp / "recipe.yaml", recipe.to_yaml())  # what --resume reads back
        found = searching.open_study(search, create=not resume, progress=progress)
        write_json(tmp / "study.json", {"study": search.spec.name, "storage": search.spec.shown(tmp)})
        with progress.step("scoring the recipe as written"):
            default = searching.score_default(search, found, progress)
        searching.run(search, found, progress)
        outcome = searching.outcome(search, found)
        result = _write_tuning(search, outcome, default, run_dir, tmp, progress)
    _track(recipe, run_dir, progress)
    return result


def join(recipe: str | Path, overrides: list[str] | None = None, study: str | None = None,
         progress: Progress = SILENT) -> int:
    """Run trials of a study in shared storage (``tune.storage``) that ``honing tune`` started on
    another machine; returns how many trials the study has finished."""
    from honing.tuning import search as searching

    recipe = load_recipe(recipe, overrides)
    if recipe.tune.storage is None:
        raise RecipeError("--join: tune.storage is empty, so there is no shared study to join",
                          "set tune.storage: postgresql://USER@HOST/DB in the recipe (the same as the first machine's)")
    dataset = _load(recipe, progress)
    search = searching.prepare(recipe, dataset, Path.cwd(), study)
    found = searching.open_study(search, create=False, progress=progress)
    searching.run(search, found, progress)
    return sum(t.state.is_finished() for t in found.get_trials(deepcopy=False))


def _load(recipe: Recipe, progress: Progress) -> Dataset:
    seed_everything(recipe.seed)
    with progress.step(f"loading {recipe.data.source}"):
        dataset = load_dataset(recipe.data, recipe.seed)
    for note in dataset.notes:
        progress.note(note)
    return dataset


def _write_tuning(search: Any, outcome: Any, default: float | None, run_dir: Path, tmp: Path,
                  progress: Progress) -> TuneResult:
    from honing.report.tuning_plots import tuning_plots

    tune = search.recipe.tune
    for note in outcome.notes:
        progress.note(note)
    with progress.step(f"writing {run_dir}"):
        pd.DataFrame(outcome.rows).to_csv(tmp / "leaderboard.csv", index=False)
        write_text(tmp / "best.yaml", outcome.recipe.to_yaml())
        _, notes = tuning_plots(outcome.study, tmp / "plots", outcome.names)
    for note in notes:
        progress.note(note)
    refit = outcome.refitted if tune.refit else outcome.recipe
    what = "train + validation" if tune.refit else "train"
    which = "the recipe as written" if outcome.trial is None else f"trial {outcome.trial}"
    progress.note(f"training the best recipe ({which}) on {what}")
    trained = train(refit, out=tmp / "best", progress=progress, fit_on_validation=tune.refit, track=False)
    write_json(tmp / "tune.json", outcome.summary(search.spec.name, default, trained.metrics.get("test", {})))
    build_report(tmp)
    return TuneResult(run_dir, outcome.recipe, search.metric, outcome.names, outcome.trial, outcome.scores[0], default,
                      outcome.rows, trained, [*outcome.notes, *notes])


def _resumable(run_dir: str | Path | None, verb: str) -> Path:
    """The recipe an interrupted run saved, or a one-line error when there is none."""
    recipe = partial_dir(Path(run_dir or "")) / "recipe.yaml"
    if run_dir is None or not recipe.is_file():
        raise HoningError(f"--resume {run_dir}: there is no interrupted run to resume there",
                          f"only a {verb} run that was interrupted can be resumed; start it again")
    return recipe


def audit(data: str | Path, target: str | None = None, *, sensitive: list[str] | None = None,
          test: str | Path | None = None, fail_on: list | None = None, seed: int = 42,
          progress: Progress = SILENT) -> Any:
    """Audit a dataset (``honing audit``): data-quality checks and, on the sensitive columns (given,
    else guessed from their names), the data's bias.  With ``test`` (a second file) split leakage
    and distribution shift compare it with ``data``; without, with the default random split.
    A breached ``fail_on`` rule raises :class:`honing.audit.gate.AuditFailed` after the audit."""
    from honing.audit.run import audit_data, guess_sensitive
    from honing.recipe import DataConfig

    if target is None and not str(data).startswith("builtin:"):
        columns = ", ".join(map(str, read_table(data).columns[:10]))
        raise DataError(f"{data}: which column is the target?", f"pass --target COL (one of: {columns})")
    with progress.step(f"loading {data}"):
        dataset = load_dataset(DataConfig(source=str(data), target=target), seed)
    frame = dataset.raw
    splits = dataset.splits
    if test is not None:
        test_frame = read_table(test)
        if dataset.target not in test_frame.columns:
            raise DataError(f"{test}: no target column '{dataset.target}'", "the test file needs the same columns")
        splits = {"train": frame, "test": test_frame}
    if sensitive is None:
        sensitive = guess_sensitive(list(frame.columns), exclude=(dataset.target,))
        if sensitive:
            progress.note(f"sensitive columns guessed from their names: {', '.join(sensitive)} "
                          "(choose them with --sensitive)")
    result = audit_data(frame, dataset.target, dataset.task, sensitive=sensitive, fail_on=fail_on or [],
                        splits=splits, seed=seed, progress=progress)
    result.notes = [*dataset.notes]
    return result


def compare(run_a: str | Path, run_b: str | Path, metric: str | None = None) -> dict[str, Any]:
    """Compare two cross-validated runs (``evaluate.cv``) on their shared folds: the corrected
    resampled t-test and the Wilcoxon test of their fold scores, each also against the baseline."""
    from honing.evaluation.evaluate import compare_runs

    return compare_runs(_run_metrics(run_a), _run_metrics(run_b), (str(run_a), str(run_b)), metric)


def _run_metrics(run_dir: str | Path) -> dict[str, Any]:
    import json

    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise HoningError(f"{run_dir}: not a run directory (no metrics.json)", "give the directories `honing train` wrote")
    return json.loads(path.read_text(encoding="utf-8"))


def explain(bundle: str | Path | Bundle, data: str | Path | pd.DataFrame, row: int = 0, top: int = 5,
            samples: int = 200, seed: int = 0) -> dict[str, Any]:
    """Why the model predicts what it does for one row of ``data`` (by position): each feature's
    contribution against the other rows of ``data`` as background (see docs/evaluation.md)."""
    from honing.evaluation.explain import FrameModel, local_explanation

    bundle, frame = _open(bundle, data)
    if not -len(frame) <= row < len(frame):
        raise DataError(f"--row {row}: the data has {len(frame)} rows", f"choose a row from 0 to {len(frame) - 1}")
    with _naming(data):
        features = bundle.prepare(frame)
    model = FrameModel(bundle.transform, bundle.model, bundle.task, len(bundle.classes or []) or None)
    result = local_explanation(model, features.iloc[[row]], features, task=bundle.task, top=top,
                               samples=samples, seed=seed)
    if bundle.is_classifier and "class" in result:  # the explained class: the model's argmax, as its label
        result["prediction"] = result["class"] = bundle.classes[int(result["class"])]
    return {"row": row, **result}


def report(run_dir: str | Path) -> Path:
    """(Re)build a run directory's self-contained report.html."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file() and not (run_dir / "tune.json").is_file():
        raise HoningError(f"{run_dir}: not a run directory (no metrics.json)", "give a directory `honing train` or `honing tune` wrote")
    return build_report(run_dir)


def runs(name: str | None = None, limit: int = 50, uri: str | None = None) -> list[dict[str, Any]]:
    """Runs logged to MLflow, newest first (``name``: only that recipe's)."""
    from honing import mlflow_runs

    return mlflow_runs.list_runs(uri, name=name, limit=limit)


def compare_tracked(run_ids: list[str], uri: str | None = None) -> dict[str, Any]:
    """Params and metrics of MLflow runs side by side, with the keys whose values differ."""
    from honing import mlflow_runs

    return mlflow_runs.compare_runs(run_ids, uri)


def promote(name: str, version: int, alias: str, uri: str | None = None) -> None:
    """Point a registry alias (e.g. production) at a registered model version."""
    from honing import mlflow_runs

    mlflow_runs.promote(name, version, alias, uri)


def quickstart(out: str | Path | None = None, progress: Progress = SILENT) -> RunResult:
    """Train on the bundled titanic data with a default recipe."""
    recipe = {"name": "quickstart", "data": {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]}}
    return train(recipe, out=out, progress=progress)


def load(path: str | Path, backend: str = "auto") -> Bundle:
    """Load a bundle as a predictor: ``predict(df)`` / ``predict_proba(df)`` on raw rows.  ``backend``:
    ``auto`` predicts through ONNX Runtime when the bundle has an ONNX model (``honing export``),
    ``native`` through the bundle's own model, ``onnx`` through ONNX (an error when there is none)."""
    return load_predictor(path, backend)


def serve(bundle: str | Path, overrides: list[str] | None = None, *, host: str | None = None,
          port: int | None = None, workers: int | None = None, log: str | None = None, no_log: bool = False,
          backend: str | None = None) -> None:
    """Serve a bundle over REST until interrupted (docs/serving.md).  Settings: the bundle recipe's
    ``serve:`` and ``monitor:`` sections, then ``overrides`` (``serve.port=9000`` …), then the arguments."""
    from honing.serving import server, settings

    flags = {"serve.host": host, "serve.port": port, "serve.workers": workers, "serve.backend": backend,
             "monitor.log": log}
    serve_config, monitor_config = settings.resolve(load(bundle, backend or "auto").recipe, overrides, flags)
    if no_log:
        monitor_config.log = None
    server.run(bundle, serve_config, monitor_config, backend=serve_config.backend)


def monitor(bundle: str | Path, overrides: list[str] | None = None, *, log: str | None = None,
            window: str | None = None, all_versions: bool = False, run_trigger: bool = True,
            progress: Progress = SILENT) -> Any:
    """Judge a served bundle's logged predictions (docs/monitoring.md): drift, performance on feedback,
    fairness, latency.  On a breach, logs it and runs ``monitor.on_breach`` (unless ``run_trigger`` is
    false).  Returns a :class:`~honing.serving.monitor.MonitorResult`."""
    from honing.serving import monitor as monitoring
    from honing.serving import settings

    loaded = load(bundle)
    _, config = settings.resolve(loaded.recipe, overrides, {"monitor.log": log, "monitor.window": window})
    with progress.step(f"judging the predictions logged in the window ({config.window})"):
        result = monitoring.run(loaded, config, all_versions=all_versions)
    if result.breached:
        monitoring.record(result, config.log)
        if config.on_breach and run_trigger:
            progress.note(f"running monitor.on_breach: {config.on_breach}")
            result.trigger = monitoring.trigger(config.on_breach, config.log)
    return result


def predict(bundle: str | Path | Bundle, data: str | Path | pd.DataFrame,
            keep: list[str] | None = None, progress: Progress = SILENT, backend: str = "auto") -> pd.DataFrame:
    """Predictions (and class probabilities) for every row of ``data`` (``backend``: see :func:`load`)."""
    bundle, frame = _open(bundle, data, backend)
    _note_extra_columns(frame, bundle, progress)
    with _naming(data):
        return _predict_frame(bundle, frame, keep)


def _predict_frame(bundle: Bundle, frame: pd.DataFrame, keep: list[str] | None) -> pd.DataFrame:
    from honing.serving.batch import predict_frame

    return predict_frame(bundle, frame, keep)


def predict_file(bundle: str | Path | Bundle, data: str | Path, out: str | Path, keep: list[str] | None = None,
                 chunk_rows: int = 50_000, progress: Progress = SILENT, backend: str = "auto") -> int:
    """Stream predictions for every row of ``data`` (a file or builtin:NAME) into ``out`` (.csv or .parquet),
    ``chunk_rows`` rows at a time (CSV/TSV/Parquet are never read whole); returns the rows written."""
    from honing.serving.batch import predict_file as stream

    bundle = bundle if isinstance(bundle, Bundle) else load(bundle, backend)
    return stream(bundle, data, out, keep=keep, chunk_rows=chunk_rows, progress=progress)


def evaluate(bundle: str | Path | Bundle, data: str | Path | pd.DataFrame,
             progress: Progress = SILENT) -> dict[str, Any]:
    """Metrics of a bundle on labelled data (rows without a target are skipped)."""
    bundle, frame = _open(bundle, data)
    with _naming(data):
        return _evaluate_frame(bundle, frame, progress)


def _evaluate_frame(bundle: Bundle, frame: pd.DataFrame, progress: Progress) -> dict[str, Any]:
    target = bundle.manifest["target"]
    if target not in frame.columns:
        raise DataError(f"the data has no target column '{target}'", "evaluate needs labelled rows")
    frame = frame[frame[target].notna()]
    if frame.empty:
        raise DataError(f"every row has a missing '{target}'", "evaluate needs labelled rows")
    _note_extra_columns(frame, bundle, progress)
    y = encode_target(frame[target], bundle.task, bundle.classes)
    unknown = int((y < 0).sum()) if bundle.task == "classification" else 0
    if unknown:
        raise DataError(f"{unknown} rows have a '{target}' value the model was not trained on",
                        f"known classes: {', '.join(map(str, bundle.classes))}")
    y_pred, proba = bundle.scores(bundle.transform(bundle.prepare(frame)), frame)
    n_classes = len(bundle.classes or []) or None
    scores: dict[str, Any] = compute_metrics(bundle.task, y, y_pred, proba, n_classes)
    if n_classes:
        scores["confusion_matrix"] = confusion(y, y_pred, n_classes)
    return {"rows": len(frame), **scores}


def _open(bundle: str | Path | Bundle, data: str | Path | pd.DataFrame,
          backend: str = "auto") -> tuple[Bundle, pd.DataFrame]:
    bundle = bundle if isinstance(bundle, Bundle) else load(bundle, backend)
    return bundle, data if isinstance(data, pd.DataFrame) else read_table(data)


@contextmanager
def _naming(data: Any) -> Iterator[None]:
    """Prefix data errors with the file they are about (a DataFrame has no name to give)."""
    try:
        yield
    except DataError as exc:
        if isinstance(data, pd.DataFrame) or str(data) in exc.what:
            raise
        raise DataError(f"{data}: {exc.what}", exc.hint) from None


def _note_extra_columns(frame: pd.DataFrame, bundle: Bundle, progress: Progress) -> None:
    target = bundle.manifest.get("target")
    extra = [c for c in extra_columns(frame, Schema.from_dict(bundle.features)) if c != target]
    if extra:
        progress.note(f"ignoring columns the model does not use: {', '.join(map(str, extra[:10]))}")


def compress(bundle: str | Path, overrides: list[str] | None = None, out: str | Path | None = None,
             data: str | Path | None = None, progress: Progress = SILENT) -> Any:
    """Try the compression candidates of the bundle's recipe (``compress:``; overridable with
    ``overrides``) on its own data (or ``data``: the training data file when it moved) and write the
    smallest / fastest one within ``compress.max_metric_drop`` to ``out`` (default ``BUNDLE-compressed``);
    see docs/compression.md.  Returns a :class:`~honing.compression.compress.CompressResult`."""
    from honing.compression.compress import compress_bundle, default_out

    parent = load(bundle, backend="native")
    out = Path(out) if out is not None else default_out(Path(bundle).resolve())
    if out.resolve() == Path(bundle).resolve():
        raise HoningError(f"--out {out}: that is the bundle being compressed", "write the compressed bundle elsewhere")
    recipe, dataset = _bundle_data(parent, bundle, data, overrides, progress)
    return compress_bundle(parent, recipe, dataset, out, TRUSTED_TYPES, progress)


def export(bundle: str | Path, format: str = "onnx", out: str | Path | None = None,
           data: str | Path | None = None, progress: Progress = SILENT) -> Any:
    """Convert the bundle's model to ONNX, check it against the native model on held-out rows (the
    bundle's validation split, or the rows of ``data``), add it to the bundle as ``model.onnx`` and, with
    ``out``, write it as a standalone file.  Returns an :class:`~honing.compression.export.ExportResult`."""
    from honing.compression.export import export_bundle, write_onnx_model

    if format != "onnx":
        raise HoningError(f"--format {format}: unknown export format", "use --format onnx")
    parent = load(bundle, backend="native")
    if parent.manifest["model_format"] == "onnx":
        return write_onnx_model(parent, Path(out) if out is not None else None)
    if data is not None and not _is_builtin(data):
        with _naming(data):
            rows = parent.transform(parent.prepare(read_table(data)))
    else:
        _, dataset = _bundle_data(parent, bundle, data, None, progress)
        held_out = next(s for s in ("validation", "test", "train") if len(dataset.splits[s]))
        rows = parent.transform(parent.prepare(dataset.splits[held_out]))
    return export_bundle(parent, rows, Path(out) if out is not None else None, progress)


def _is_builtin(data: str | Path) -> bool:
    return str(data).startswith("builtin:")


def _bundle_data(parent: Bundle, bundle: str | Path, data: str | Path | None, overrides: list[str] | None,
                 progress: Progress) -> tuple[Recipe, Dataset]:
    """The bundle's recipe (with ``overrides``) and its data split as in training; ``data`` replaces
    ``data.source`` when the training data moved."""
    moved = [f"data.source={data}"] if data is not None else []
    recipe = load_recipe(copy.deepcopy(parent.recipe), [*moved, *(overrides or [])])
    try:
        return recipe, _load(recipe, progress)
    except DataError as exc:
        raise DataError(f"{bundle}: cannot read its training data ({exc.what})",
                        "pass --data FILE with the data the bundle was trained on") from None


def augment_preview(recipe: str | Path | dict | Recipe, out: str | Path, rows: int = 8, per_image: int = 4,
                    overrides: list[str] | None = None, progress: Progress = SILENT, *,
                    echo: Any = None) -> Path:
    """Draw what the recipe's ``data.augment`` does to the first ``rows`` training rows as a PNG at
    ``out``: images beside ``per_image`` augmented versions, or sentences followed by theirs (their
    lines also go to ``echo``, a ``print``-like callable, when given).  See docs/augmentation.md."""
    from honing.data.augment_preview import check_preview, write_preview

    recipe = load_recipe(recipe, overrides)
    check_preview(recipe, out, rows, per_image)
    dataset = _load(recipe, progress)
    with progress.step(f"drawing {out}"):
        return write_preview(recipe, dataset, out, rows, per_image, echo)
