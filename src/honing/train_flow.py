"""The train flow: recipe → data → audit → split → preprocess → select → evaluate → bundle → run dir.

:func:`train` is the body of ``honing.api.train`` (and of the refit after tuning); it also holds what
only training needs: launching data-parallel ranks, resuming an interrupted run, the training
reference profile a bundle carries for monitoring, and logging the run to MLflow.
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from honing.bundle import save_bundle
from honing.data import preprocess
from honing.data.balance import balance_training
from honing.data.dataset import SPLITS, Dataset, image_shaped, load_dataset
from honing.data.schema import Schema
from honing.errors import HoningError, RecipeError
from honing.evaluation.scoring import score_splits
from honing.loading import TRUSTED_TYPES
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

#: Tasks trained by a flow of their own: task → (module, function(recipe, run_dir, tmp, progress, checkpoints)
#: -> RunResult); ``checkpoints`` is the folder of the run's training checkpoints (what --resume continues).
TASK_FLOWS = {
    "clustering": ("honing.unsupervised_flow", "train_unsupervised"),
    "reduction": ("honing.unsupervised_flow", "train_unsupervised"),
    "anomaly": ("honing.unsupervised_flow", "train_unsupervised"),
    "reinforcement": ("honing.rl_flow", "train_agent"),
    "generation": ("honing.generative_flow", "train_generative"),
}


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
    """The run directory of a recipe (see ``honing.api.train``), logged to MLflow when ``track``."""
    started = time.time()
    recipe = load_recipe(recipe, overrides)
    if recipe.data.task not in TASK_FLOWS:  # the other tasks' flows check their own model types
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
        log_to_mlflow(result.recipe, run_dir, progress, started)
    return result


def log_to_mlflow(recipe: Recipe, run_dir: Path, progress: Progress, started: float | None = None) -> None:
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


def launch(recipe: str | Path, overrides: list[str], out: str | Path | None, processes: int | None,
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
    if parsed.train.strategy == "fsdp" and parsed.model.pretrained:
        raise RecipeError("train.strategy: fsdp shards models trained from scratch, and model.pretrained is set "
                          "(its freezing schedule works on the whole model)",
                          "fine-tune with train.strategy: ddp")
    from honing.training.distributed import launch as torchrun

    out = Path(out) if out is not None else default_run_dir(parsed.name)  # one directory for every rank
    argv = ["-m", "honing.cli", *(["--quiet"] if quiet else []), "train", str(recipe), "--out", str(out)]
    for item in overrides:
        argv += ["--set", item]
    return torchrun(argv, processes, nnodes, node_rank, rdzv)


def resumable(run_dir: str | Path | None, verb: str) -> Path:
    """The recipe an interrupted run saved, or a one-line error when there is none."""
    recipe = partial_dir(Path(run_dir or "")) / "recipe.yaml"
    if run_dir is None or not recipe.is_file():
        raise HoningError(f"--resume {run_dir}: there is no interrupted run to resume there",
                          f"only a {verb} run that was interrupted can be resumed; start it again")
    return recipe


def load_data(recipe: Recipe, progress: Progress) -> Dataset:
    """The recipe's data, read and split (everything seeded first), its notes on the console."""
    seed_everything(recipe.seed)
    with progress.step(f"loading {recipe.data.source}"):
        dataset = load_dataset(recipe.data, recipe.seed)
    for note in dataset.notes:
        progress.note(note)
    return dataset


def _train_into(recipe: Recipe, run_dir: Path, tmp: Path, progress: Progress, checkpoints: Path,
                fit_on_validation: bool = False) -> RunResult:
    from honing.data.streaming import streams
    from honing.evaluation import fairness_check
    from honing.evaluation.evaluate import evaluate, predictor

    if recipe.data.task in TASK_FLOWS:  # unsupervised, reinforcement and generative runs have flows of their own
        module, function = TASK_FLOWS[recipe.data.task]
        return getattr(importlib.import_module(module), function)(recipe, run_dir, tmp, progress, checkpoints)
    if streams(recipe.data):  # a table larger than memory: read in chunks (docs/streaming.md)
        from honing.stream_flow import train_streaming
        return train_streaming(recipe, run_dir, tmp, progress, checkpoints, fit_on_validation)
    resolved, dataset, audit = _checked_data(recipe, progress, fit_on_validation)
    with progress.step("fitting preprocessing on the training split"):
        preprocessor, data = dataset.prepared(resolved.data)
    unbalanced, weights = data["train"], None
    if resolved.data.balance != "none":
        with progress.step(f"balancing the training split ({resolved.data.balance})"):
            data, weights = balance_training(data, resolved.data.balance, dataset.task, resolved.seed)
    selection = select_model(resolved.model, dataset.task, resolved.seed, data, dataset.n_classes,
                             resolved.evaluate.metric, progress, resolved.train, checkpoints, weights,
                             classic.neural_options(resolved), baseline_train=unbalanced)
    best = selection.best
    params = resolved.model.params if resolved.model.type != "auto" else {}
    model, decision = best.estimator, {}
    if resolved.audit.mitigate != "none":
        mitigated = fairness_check.mitigate(model, preprocessor, dataset, data, resolved, best.type, params, progress,
                                            weights)
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
        record_fairness(audit, fairness_check.assess(evaluation.predictions["test"][0], before, dataset, data,
                                                     resolved), progress)
    if getattr(best.estimator, "history_", None) is not None:
        metrics["diagnostics"] = _diagnostics(best.estimator, progress)
    with progress.step(f"writing {run_dir}"):
        _write_run(tmp, resolved, dataset, selection, model, preprocessor, evaluation, metrics, audit)
    return RunResult(run_dir, resolved, dataset.task, best.type, metrics, selection.table(),
                     dataset.notes)


def record_fairness(audit: Any, fairness: Any, progress: Progress) -> None:
    """The model's fairness in the audit (audit.json), its findings shown, and the gate of ``audit.fail_on``."""
    audit.fairness, audit.findings = fairness.report, [*audit.findings, *fairness.findings]
    _note_findings(fairness.findings, progress)
    audit.enforce_model(fairness.findings, fairness.measured)


def _checked_data(recipe: Recipe, progress: Progress, fit_on_validation: bool) -> tuple[Recipe, Dataset, Any]:
    """The resolved recipe, the data as the model will see it (sensitive columns excluded, text
    augmented) and the data audit, after every check that can fail before training."""
    from honing.evaluation import fairness_check
    from honing.evaluation.evaluate import check_config

    dataset = load_data(recipe, progress)
    if fit_on_validation:
        dataset = dataset.with_validation_in_train()
    resolved = resolved_recipe(recipe, dataset)
    audit = _audit_before_training(resolved, dataset, progress)
    fairness_check.check_mitigation(resolved, dataset.task, dataset.n_classes, dataset.splits["train"],
                                    len(dataset.splits["validation"]))
    check_config(resolved, dataset)
    if resolved.model.pretrained:
        from honing.evaluation.transfer import check_base_eval

        check_base_eval(resolved.model.pretrained, resolved.model.finetune, dataset.task, dataset.classes)
    if resolved.audit.exclude_sensitive:
        dataset = dataset.excluding(resolved.audit.sensitive)
    return resolved, _augmented_text(dataset, resolved, progress), audit


def _write_run(tmp: Path, resolved: Recipe, dataset: Dataset, selection: Selection, model: Any, preprocessor: Any,
               evaluation: Any, metrics: dict[str, Any], audit: Any) -> None:
    """The bundle, recipe, metrics, schema, audit, leaderboard, history and report of a run."""
    best = selection.best
    save_bundle(tmp / "bundle", preprocessor=preprocessor, model=model,
                task=dataset.task, features=dataset.schema.to_dict(), classes=dataset.classes,
                model_type=best.type, metrics=metrics, recipe=resolved.model_dump(mode="json"),
                data_fingerprint=dataset.fingerprint, trusted=TRUSTED_TYPES,
                extra={"target": dataset.target, "decision": evaluation.decision,
                       "reference": _reference_profile(dataset, evaluation)},
                calibrator=evaluation.calibrator)
    write_run_files(tmp, resolved, metrics, schema=dataset.schema.to_dict(), audit=audit,
                    leaderboard=selection.table(), history=getattr(best.estimator, "history_", None),
                    title=f"{best.type} on {resolved.data.source}")


def write_run_files(tmp: Path, recipe: Recipe, metrics: dict[str, Any], *, schema: dict | None = None,
                    audit: Any = None, leaderboard: list[dict] | None = None, history: list[dict] | None = None,
                    title: str = "", curve: Any = learning_curve) -> None:
    """What every run directory holds beside its bundle, then its report (built from them, last):
    recipe.yaml, metrics.json, and those given of schema.json, audit.json, leaderboard.csv and
    history.csv with its learning curve (drawn by ``curve``, titled ``title``)."""
    write_text(tmp / "recipe.yaml", recipe.to_yaml())
    write_json(tmp / "metrics.json", metrics)
    if schema is not None:
        write_json(tmp / "schema.json", schema)
    if audit is not None:
        write_json(tmp / "audit.json", audit.to_dict())
    if leaderboard is not None:
        pd.DataFrame(leaderboard).to_csv(tmp / "leaderboard.csv", index=False)
    if history:
        pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
        curve(history, tmp / "plots" / "learning_curve.png", title)
    build_report(tmp)


def _reference_profile(dataset: Dataset, evaluation: Any) -> dict:
    """The training split's profile, and the held-out predictions' (what ``honing monitor`` compares with)."""
    from honing.serving.profile import build_profile

    held_out = next((s for s in ("validation", "test") if len(evaluation.predictions.get(s, ((),))[0])), None)
    predictions = None
    if held_out is not None:
        predicted = evaluation.predictions[held_out][0]
        predictions = [dataset.classes[i] for i in predicted] if dataset.task == "classification" else predicted
    # images (pixel columns or files) are not profiled one pixel at a time
    schema = dataset.schema if dataset.image_shape is None else Schema(columns=[], target=dataset.target)
    return build_profile(dataset.splits["train"], schema, predictions, task=dataset.task)


def _augmented_text(dataset: Dataset, recipe: Recipe, progress: Progress) -> Dataset:
    """The dataset with augmented copies of its training rows' text (``data.augment`` text steps);
    batch steps (images, tabular) need a neural model, which applies them per training batch."""
    from honing.data.augment_text import augment_training_text, text_steps

    batch_steps = classic.neural_options(recipe)["augment"]
    if batch_steps and recipe.model.type not in classic.MODELS.names(neural=True):
        raise RecipeError(f"data.augment: {batch_steps[0].get('name')} augments the training batches of neural "
                          f"models, and model.type is {recipe.model.type}",
                          "use a neural model.type (mlp, cnn, …, pretrained), or remove the step")
    columns = [c.name for c in dataset.schema.features if c.kind == "text"]
    steps = text_steps(recipe.data.augment, columns)
    if not steps:
        return dataset
    train = dataset.splits["train"]
    with progress.step(f"augmenting the training text ({', '.join(columns)})"):
        for i, step in steps:
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


def resolved_recipe(recipe: Recipe, dataset: Dataset) -> Recipe:
    """The recipe with what the data decided: the target, the task, a cnn's ``input_shape`` on images."""
    data = recipe.data.model_copy(update={"target": dataset.target, "task": dataset.task})
    return image_shaped(recipe, dataset.image_shape).model_copy(update={"data": data})


def _metrics(selection: Selection, dataset: Dataset, data: dict, evaluation: Any) -> dict[str, Any]:
    held_out = {s: data[s] for s in ("validation", "test") if s in data}
    baseline = score_splits(selection.baseline.estimator, held_out, dataset.task, dataset.n_classes)
    return {"task": dataset.task, "target": dataset.target, "model": selection.best.type,
            "selection_metric": selection.metric, "classes": dataset.classes,
            "rows": {s: len(dataset.splits[s]) for s in SPLITS}, **evaluation.metrics, "baseline": baseline,
            "leaderboard": selection.table()}
