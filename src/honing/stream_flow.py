"""The train flow for tables larger than memory (``data.streaming``), which ``train_flow`` hands over to.

Open the file → infer the target's task and the column schema from its first rows → one statistics
pass (:mod:`honing.data.stream_stats`: the split, column statistics, classes, a row sample) → the data
audit on the sample → the preprocessor, fitted from the statistics → a neural model trained by the
usual trainer on batch streams (:mod:`honing.data.stream_batches`) → validation and test predicted in
one more pass (:mod:`honing.evaluation.streamed`) → the same run directory as an in-memory run: bundle,
recipe.yaml, metrics.json, schema.json, audit.json, leaderboard.csv, history.csv, plots, report.html.

Only neural model types stream, and what needs the whole table in memory is refused with a one-line
:class:`RecipeError` (:func:`check_recipe`); docs/streaming.md says what is exact and what is sampled.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from honing.bundle import save_bundle
from honing.bundle.predictor import Bundle
from honing.data.augment_text import rows_per_row, text_steps
from honing.data.balance import check_task
from honing.data.dataset import _label_key, image_shaped
from honing.data.image_sources import LABEL
from honing.data.preprocess import coerce_features
from honing.data.schema import Schema, check_target, infer_schema, infer_task
from honing.data.stream_batches import RowStream
from honing.data.stream_fit import fitted_preprocessor
from honing.data.stream_stats import (
    SAMPLE_ROWS,
    SPLIT_COLUMN,
    StreamStats,
    check_image_sizes,
    check_schema,
    collect,
)
from honing.data.streaming import FOLDER, SPLITS, Plan, TableFile, check_split
from honing.data.text import token_vocab_size
from honing.errors import DataError, RecipeError, did_you_mean
from honing.evaluation import fairness_check
from honing.evaluation.evaluate import check_evaluate
from honing.evaluation.metrics import primary_metric
from honing.evaluation.streamed import EVAL_BATCH, baseline_scores, evaluate_stream
from honing.loading import TRUSTED_TYPES
from honing.models import classic
from honing.progress import Progress
from honing.recipe import Recipe
from honing.training.batching import inference_rows
from honing.training.seed import seed_everything

#: Rows read first to infer the task and the column kinds.
HEAD_ROWS = 50_000
#: The file :func:`tuning_sample` writes.
TUNING_SAMPLE = "tuning-sample.parquet"


def check_recipe(recipe: Recipe) -> None:
    """RecipeError for what a streamed table cannot do (before anything is read)."""
    streamable = classic.MODELS.names(neural=True)
    if recipe.model.type not in streamable:
        raise RecipeError(f"model.type: {recipe.model.type} cannot train on a streamed table (data.streaming); "
                          "only neural types do", f"set model.type to one of {', '.join(streamable)}, or "
                          "data.streaming: false")
    finetune = recipe.model.finetune
    if recipe.model.pretrained and finetune.mode == "features":
        raise RecipeError("model.finetune.mode: features holds the embeddings of every training row in memory",
                          "use finetune.mode: frozen (the same head, on embeddings made batch by batch), or "
                          "data.streaming: false")
    if recipe.model.pretrained and finetune.compare_scratch:
        raise RecipeError("model.finetune.compare_scratch: a second network trained from random weights is not "
                          "streamed", "remove compare_scratch, or set data.streaming: false")
    check_split(recipe.data.split)
    if recipe.data.balance not in ("none", "class_weight"):  # resampling needs the rows in memory
        raise RecipeError(f"data.balance: {recipe.data.balance} resamples the training rows, which needs them in "
                          "memory", "use data.balance: class_weight (a weighted loss from the class counts), or "
                          "data.streaming: false")
    if recipe.evaluate.cv is not None:  # K refits on the whole table
        raise RecipeError("evaluate.cv: not available with data.streaming (it needs the whole table in memory)",
                          "remove evaluate.cv, or set data.streaming: false")
    if recipe.audit.mitigate not in ("none", "threshold"):
        raise RecipeError(f"audit.mitigate: {recipe.audit.mitigate} refits the model on training rows held in "
                          "memory", "use audit.mitigate: threshold (one threshold per group, chosen on the "
                          "streamed validation rows), or data.streaming: false")


def train_streaming(recipe: Recipe, run_dir: Path, tmp: Path, progress: Progress, checkpoints: Path,
                    fit_on_validation: bool = False) -> Any:
    """Train ``recipe`` on its streamed ``data.source`` into ``tmp``; the :class:`RunResult` of ``run_dir``."""
    from honing.train_flow import RunResult, _diagnostics, _note_findings, record_fairness

    try:
        check_recipe(recipe)
    except RecipeError as exc:  # say why a recipe that never asked to stream streams
        if recipe.data.streaming != "auto":
            raise
        raise RecipeError(f"{exc.what} ({recipe.data.source} streams because data.streaming: auto estimates it "
                          "above 2 GiB in memory)", exc.hint) from None
    seed_everything(recipe.seed)
    cfg, started = recipe.data, time.perf_counter()
    plan, notes = _opened(recipe, progress, fit_on_validation)
    table, schema, target, task = plan.table, plan.schema, plan.target, plan.task
    plan.augment = text_steps(cfg.augment, [c.name for c in schema.features if c.kind == "text"])
    if plan.augment:
        notes.append(f"data.augment: every training row comes with {rows_per_row(plan.augment) - 1} rewrites of its "
                     "text, drawn anew each epoch")
    stats = _statistics(plan, progress)
    n_classes = _check_statistics(recipe, plan, stats)
    notes += _stream_notes(stats, recipe, target)
    for note in notes:
        progress.note(note)
    resolved = recipe.model_copy(update={"data": cfg.model_copy(update={"target": target, "task": task})})
    audit = _audit(resolved, stats, progress, _note_findings)
    classes = stats.classes if task == "classification" else None
    with progress.step("fitting preprocessing from the training statistics"):
        augment = (lambda rows: plan.augmented(rows, plan.seed)) if plan.augment else None
        plan.preprocessor = fitted_preprocessor(stats, schema, cfg, augment)
    if table.images:  # a cnn reads the decoded images as (C, H, W)
        resolved = image_shaped(resolved, plan.preprocessor.transformers_[0][1].image_shape_)
    if classes is not None:
        plan.labels = {_label_key(c): i for i, c in enumerate(classes)}
    else:
        std = float(np.sqrt(stats.y_m2 / stats.y_n)) if stats.y_n else 0.0
        plan.y_mean, plan.y_scale = stats.y_mean, std or 1.0
    n_features = plan.preprocessor.transform(coerce_features(stats.sample_of("train").head(2), schema)).shape[1]
    model, fit_seconds = _fit(resolved, plan, stats, n_features, progress, checkpoints)
    trained = time.perf_counter()
    bundle = Bundle(".", {"task": task, "classes": classes}, plan.preprocessor, model)
    evaluation = None
    sensitive = recipe.audit.sensitive
    if stats.rows[1] + stats.rows[2]:
        held = RowStream(plan, ("validation", "test"), rows=stats.rows[1] + stats.rows[2],
                         batch_size=inference_rows(n_features, EVAL_BATCH),
                         workers=cfg.workers, standardise=False, with_split=True, groups=tuple(sensitive))
        with progress.step("predicting the validation and test rows (streaming)"):
            evaluation = evaluate_stream(bundle, held, dict(zip(SPLITS, stats.rows)), classes, tmp / "plots",
                                         recipe.evaluate, sensitive[0] if recipe.audit.mitigate != "none" else None)
    if audit is not None and sensitive and evaluation is not None and "test" in evaluation.targets:
        record_fairness(audit, fairness_check.assess_predictions(
            evaluation.targets["test"], evaluation.predictions["test"][0], evaluation.before.get("test"),
            evaluation.groups["test"], recipe, task, n_classes), progress)
    metrics = _metrics(resolved, stats, task, target, classes, model, evaluation, fit_seconds)
    if recipe.model.pretrained and recipe.model.finetune.base_eval != "none" and \
            (base := _base_model(model, plan, stats, classes, recipe, progress)) is not None:
        metrics["base_model"] = base
    metrics["streaming"] = {"rows_read": int(sum(stats.rows) + stats.no_target), "sample_rows": len(stats.sample),
                            "train_rows_per_epoch": int(stats.rows[0] * rows_per_row(plan.augment)),
                            "seconds": {"before_training": round(trained - started - fit_seconds, 3),
                                        "training": round(fit_seconds, 3),
                                        "evaluation": round(time.perf_counter() - trained, 3)},
                            "train_rows_per_s": _throughput(model.history_)}
    if getattr(model, "history_", None) is not None:
        metrics["diagnostics"] = _diagnostics(model, progress)
    with progress.step(f"writing {run_dir}"):
        _write_run(tmp, resolved, schema, stats, model, plan.preprocessor, metrics, evaluation, audit)
    return RunResult(run_dir, resolved, task, resolved.model.type, metrics, metrics["leaderboard"], notes)


def tuning_sample(recipe: Recipe, folder: Path, progress: Progress) -> Recipe:
    """The recipe rewritten to tune on a uniform sample of its streamed table: one statistics pass
    draws the sample (:data:`~honing.data.stream_stats.SAMPLE_ROWS` rows, each in the split streaming
    gives it, the same on every machine), written to ``folder/`` :data:`TUNING_SAMPLE`; the recipe reads
    that file in memory, split by its split column.  (The best recipe then trains on every row.)"""
    check_recipe(recipe)  # the best recipe will stream: what cannot is refused before any trial
    cfg = recipe.data
    plan, stats = streamed_sample(recipe, progress)
    _check_statistics(recipe, plan, stats)
    sample = stats.sample
    path = folder / TUNING_SAMPLE
    sample.to_parquet(path, index=False)
    progress.note(f"tuning on a uniform sample of {len(sample):,} rows of {cfg.source} (data.streaming); the best "
                  "recipe is then trained on every row")
    data = cfg.model_copy(update={"source": str(path), "streaming": False, "target": plan.target, "task": plan.task,
                                  "split": cfg.split.model_copy(update={"column": SPLIT_COLUMN})})
    return recipe.model_copy(update={"data": data})


def streamed_sample(recipe: Recipe, progress: Progress) -> tuple[Plan, StreamStats]:
    """The plan of the recipe's streamed table and one statistics pass, whose ``sample`` holds a
    uniform row sample (:data:`~honing.data.stream_stats.SAMPLE_ROWS` rows, each with its split in
    :data:`~honing.data.stream_stats.SPLIT_COLUMN`: the same rows on every machine)."""
    plan, _ = _opened(recipe, progress)
    return plan, _statistics(plan, progress)


def _check_statistics(recipe: Recipe, plan: Plan, stats: StreamStats) -> int | None:
    """DataError for images of several sizes that ``data.image`` does not resize; RecipeError for what the
    statistics show cannot apply (``evaluate.calibrate`` / ``threshold``, ``audit.mitigate``,
    ``model.finetune.base_eval: zero_shot``), before training; the number of classes (None for regression)."""
    check_image_sizes(stats, recipe.data.image)
    n_classes = len(stats.classes) if plan.task == "classification" else None
    check_evaluate(recipe.evaluate, plan.task, n_classes, stats.rows[1])
    fairness_check.check_mitigation(recipe, plan.task, n_classes, stats.sample_of("train"), stats.rows[1])
    if recipe.model.pretrained:
        from honing.evaluation.transfer import check_base_eval

        check_base_eval(recipe.model.pretrained, recipe.model.finetune, plan.task,
                        stats.classes if n_classes is not None else None)
    return n_classes


def _base_model(model: Any, plan: Plan, stats: StreamStats, classes: list | None, recipe: Recipe,
                progress: Progress) -> dict[str, Any] | None:
    """``model.finetune.base_eval`` on the row sample: the base model's metrics on the sampled
    validation and test rows (a linear probe fits on the sampled training rows, as many as it
    reads in memory); None, with a note, when the sample lacks them."""
    from honing.data.preprocess import pretrained_tokenizer
    from honing.evaluation import transfer

    data = {}
    for split in SPLITS:
        rows = stats.sample_of(split)
        # every split wanted: the sampled rows are not at the row numbers that split them
        X, y, *_ = plan.arrays(0, rows, (0, 1, 2), standardise=False) if len(rows) else (None, None)
        if y is not None and len(y):
            data[split] = (X, y)
    held_out = {s: data[s] for s in ("validation", "test") if s in data}
    if "train" not in data or not held_out:
        progress.note("model.finetune.base_eval: the row sample has no training or no held-out rows; the base "
                      "model is not scored")
        return None
    with progress.step(f"evaluating the base model on the row sample ({len(stats.sample):,} rows)"):
        scores = transfer.base_model(model, data, held_out, plan.task, classes, recipe.model.finetune,
                                     pretrained_tokenizer(plan.preprocessor))
    return {**scores, "rows": "sample"}


def _opened(recipe: Recipe, progress: Progress, merge_validation: bool = False) -> tuple[Plan, list[str]]:
    """The recipe's table opened, its target, task and schema inferred and checked: the :class:`Plan`
    (without its preprocessor yet), and the notes of the inference."""
    cfg = recipe.data
    with progress.step(f"opening {cfg.source} (streaming)"):
        table = TableFile.open(cfg.source, cfg.read)
        target, task, schema, notes = _infer(table, recipe)
    if recipe.audit.exclude_sensitive:
        schema = schema.excluding(recipe.audit.sensitive)
    check_schema(schema, cfg)
    if cfg.balance != "none":
        check_task(task)
    table.images = [c.name for c in schema.features if c.kind == "image"]
    plan = Plan(table, schema, target, task, recipe.seed, cfg.split.validation, cfg.split.test, cfg.chunk_rows,
                merge_validation=merge_validation)
    return plan, notes


def _infer(table: TableFile, recipe: Recipe) -> tuple[str, str, Schema, list[str]]:
    """The target, the task and the schema, from the file's first rows (as the in-memory path infers them)."""
    cfg = recipe.data
    parts, rows = [], 0
    for _, frame in table.frames(table.columns, min(cfg.chunk_rows, HEAD_ROWS)):
        parts.append(frame)
        rows += len(frame)
        if rows >= HEAD_ROWS:
            break
    head = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=table.columns)
    target = cfg.target or (LABEL if table.fmt == FOLDER else None)  # an image folder's class folders
    if target is None:
        raise DataError(f"{cfg.source}: no target column given",
                        f"set data.target to one of: {', '.join(table.columns[:10])}")
    named = [("data.target", target), *(("data.drop", c) for c in cfg.drop),
             *(("audit.sensitive", c) for c in recipe.audit.sensitive)]
    for key, column in named:
        if column not in table.columns:
            raise DataError(f"{key}: no column '{column}' in {cfg.source}", did_you_mean(column, table.columns))
    if target in cfg.drop:
        raise DataError(f"data.drop: lists the target '{target}'", "remove it from data.drop")
    notes = []
    task = cfg.task
    if task == "auto":
        task = infer_task(head[target])
        notes.append(f"task inferred from target '{target}' in the first {len(head):,} rows: {task} "
                     "(set data.task to override)")
    check_target(head, target, task)
    head = head[head[target].notna()]
    schema = infer_schema(head, target=target, overrides=cfg.types, drop=list(cfg.drop))
    notes += [f"column '{c.name}': {c.note}" for c in schema.columns if c.note]
    return target, task, schema, notes


def _statistics(plan: Plan, progress: Progress) -> StreamStats:
    """The statistics pass; each warning about unparsed values is shown once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        stats = collect(plan, progress)
    for message in dict.fromkeys(str(w.message).split(" (e.g.")[0] for w in caught):
        warnings.warn(f"{message} (in at least one chunk)", UserWarning, stacklevel=3)
    return stats


def _stream_notes(stats: StreamStats, recipe: Recipe, target: str) -> list[str]:
    notes = [f"streamed {sum(stats.rows):,} rows: " + ", ".join(f"{n:,} {s}" for s, n in zip(SPLITS, stats.rows))]
    if stats.no_target:
        notes.append(f"dropped {stats.no_target:,} rows whose target '{target}' is missing")
    if recipe.data.clean.duplicates == "drop":
        notes.append("duplicate rows are not removed when streaming (data.clean.duplicates)")
    return notes


def _audit(recipe: Recipe, stats: StreamStats, progress: Progress, note_findings: Any) -> Any:
    """The data audit on the row sample (audit.json), with its gate; None when audit.enabled is false."""
    from honing.audit.run import audit_data

    if not recipe.audit.enabled:
        return None
    splits = {s: stats.sample_of(s) for s in SPLITS}
    frame = pd.concat(splits.values(), ignore_index=True)
    progress.note(f"the data audit reads a uniform sample of {len(frame):,} rows")
    audit = audit_data(frame, recipe.data.target, recipe.data.task, sensitive=recipe.audit.sensitive,
                       fail_on=recipe.audit.fail_on, splits=splits, ignore=tuple(recipe.data.drop), seed=recipe.seed,
                       progress=progress)
    note_findings(audit.findings, progress)
    audit.enforce_data()
    return audit


def _fit(recipe: Recipe, plan: Plan, stats: StreamStats, n_features: int, progress: Progress,
         checkpoints: Path) -> tuple[Any, float]:
    """The recipe's neural model trained on the streams of the training and validation rows."""
    cfg, train = recipe.data, recipe.train
    model = classic.make_model(recipe.model.type, plan.task, recipe.model.params, recipe.seed, train,
                               classic.neural_options(recipe))
    model.set_params(checkpoint=str(checkpoints / f"{recipe.model.type}.pt"))
    rows = RowStream(plan, ("train",), rows=stats.rows[0] * rows_per_row(plan.augment), batch_size=train.batch_size,
                     workers=cfg.workers, shuffle=True, buffer_rows=cfg.shuffle_buffer, by_rank=True, augment=True)
    validation = None
    if stats.rows[1]:
        validation = RowStream(plan, ("validation",), rows=stats.rows[1],
                               batch_size=max(train.batch_size, inference_rows(n_features, EVAL_BATCH)),
                               workers=cfg.workers)
    start = time.perf_counter()
    vocab_size = token_vocab_size(plan.preprocessor)  # data.text: tokens (a sequence net's embedding)
    if plan.task == "classification":
        if cfg.balance == "class_weight":  # a weighted cross-entropy from the streamed class counts
            model.set_params(class_weight="balanced")
        model.fit_stream(rows, validation, n_features=n_features, class_counts=stats.class_counts(0),
                         progress=progress, vocab_size=vocab_size)
    else:
        model.fit_stream(rows, validation, n_features=n_features, y_mean=plan.y_mean,
                         y_std=float(np.sqrt(stats.y_m2 / stats.y_n)), progress=progress, vocab_size=vocab_size)
    return model, time.perf_counter() - start


def _throughput(history: list[dict] | None) -> float | None:
    speeds = [row["samples_per_s"] for row in history or [] if row.get("samples_per_s")]
    return round(float(np.mean(speeds)), 1) if speeds else None


def _metrics(recipe: Recipe, stats: StreamStats, task: str, target: str, classes: list | None, model: Any,
             evaluation: Any, fit_seconds: float) -> dict[str, Any]:
    metric, _ = primary_metric(task, recipe.evaluate.metric)
    held = evaluation.metrics if evaluation is not None else {}
    targets = evaluation.targets if evaluation is not None else {}
    counts = stats.class_counts(0) if classes is not None else None
    baseline = baseline_scores(task, targets, counts, stats.y_mean)
    leaderboard = [{"model": recipe.model.type, metric: held.get("validation", {}).get(metric, float("nan")),
                    "fit_seconds": round(fit_seconds, 3)},
                   {"model": "baseline", metric: baseline.get("validation", {}).get(metric, float("nan")),
                    "fit_seconds": 0.0}]
    return {"task": task, "target": target, "model": recipe.model.type, "selection_metric": metric,
            "classes": classes, "rows": dict(zip(SPLITS, stats.rows)), **held, "baseline": baseline,
            "leaderboard": leaderboard}


def _write_run(tmp: Path, recipe: Recipe, schema: Schema, stats: StreamStats, model: Any, preprocessor: Any,
               metrics: dict[str, Any], evaluation: Any, audit: Any) -> None:
    """The bundle, recipe, metrics, schema, audit, leaderboard, history and report of the run."""
    from honing.serving.profile import build_profile

    task, classes = metrics["task"], metrics["classes"]
    predictions = None
    held = [s for s in ("validation", "test") if evaluation is not None and s in evaluation.predictions]
    if held:
        predicted = evaluation.predictions[held[0]][0]
        if len(predicted) > SAMPLE_ROWS:
            predicted = predicted[np.sort(np.random.default_rng(recipe.seed).choice(len(predicted), SAMPLE_ROWS,
                                                                                    replace=False))]
        predictions = [classes[i] for i in predicted] if task == "classification" else predicted
    profiled = schema  # images are not profiled (as in memory)
    if any(c.kind == "image" for c in schema.features):
        profiled = Schema(columns=[], target=schema.target)
    reference = build_profile(stats.sample_of("train"), profiled, predictions, task=task)
    save_bundle(tmp / "bundle", preprocessor=preprocessor, model=model, task=task, features=schema.to_dict(),
                classes=classes, model_type=recipe.model.type, metrics=metrics,
                recipe=recipe.model_dump(mode="json"), data_fingerprint=stats.fingerprint, trusted=TRUSTED_TYPES,
                extra={"target": metrics["target"], "decision": evaluation.decision if evaluation else {},
                       "reference": reference}, calibrator=evaluation.calibrator if evaluation else None)
    from honing.train_flow import write_run_files

    write_run_files(tmp, recipe, metrics, schema=schema.to_dict(), audit=audit, leaderboard=metrics["leaderboard"],
                    history=getattr(model, "history_", None), title=f"{recipe.model.type} on {recipe.data.source}")
