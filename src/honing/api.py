"""The verbs of honing as Python functions; the CLI is a thin layer over these.

One short function per verb, composing the stages (the train flow in :mod:`honing.train_flow`, the
tune flow in :mod:`honing.tune_flow`, serving, compression, …) and holding no logic of its own
beyond wiring them together.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from honing import train_flow, tune_flow
from honing.bundle import Bundle
from honing.bundle.manifest import UNSUPERVISED_TASKS
from honing.data.dataset import Dataset, encode_target, load_dataset
from honing.data.preprocess import extra_columns
from honing.data.schema import Schema, check_target
from honing.data.sources import read_table
from honing.errors import DataError, HoningError, SplitError, with_article
from honing.evaluation.metrics import compute_metrics, confusion
from honing.loading import TRUSTED_TYPES, load_predictor
from honing.progress import SILENT, Progress
from honing.recipe import Recipe, load_recipe
from honing.report.html import build_report
from honing.train_flow import RunResult, load_data
from honing.tune_flow import TuneResult


def train(recipe: str | Path | dict | Recipe, overrides: list[str] | None = None,
          out: str | Path | None = None, progress: Progress = SILENT, resume: bool = False,
          fit_on_validation: bool = False, track: bool = True) -> RunResult:
    """Train the model a recipe describes; write the run directory (bundle, metrics, recipe,
    report.html) and log it to MLflow (``tracking:``; ``track=False`` leaves that to the caller).

    Neural models checkpoint every epoch inside the run's partial directory; with ``resume`` (see
    :func:`resume`) training continues from those checkpoints.  ``fit_on_validation`` trains on
    train + validation (a model already chosen, with its epochs fixed), scored on test alone.
    """
    return train_flow.train(recipe, overrides, out, progress, resume, fit_on_validation, track)


def launch_train(recipe: str | Path, overrides: list[str], out: str | Path | None, processes: int | None,
                 nnodes: int = 1, node_rank: int = 0, rdzv: str | None = None, quiet: bool = False) -> int | None:
    """Re-run ``honing train`` in N data-parallel processes through torchrun when the recipe (or
    ``processes``) asks for more than one; None when this process should just train."""
    return train_flow.launch(recipe, overrides, out, processes, nnodes, node_rank, rdzv, quiet)


def resume(run_dir: str | Path, progress: Progress = SILENT) -> RunResult:
    """Continue an interrupted run from its last checkpoint, with exactly the same recipe."""
    recipe = train_flow.resumable(run_dir, "neural training")
    return train(recipe, out=run_dir, progress=progress, resume=True)


def tune(recipe: str | Path | dict | Recipe, overrides: list[str] | None = None, out: str | Path | None = None,
         progress: Progress = SILENT, study: str | None = None, resume: bool = False) -> TuneResult:
    """Search the recipe's ``tune.space``; write the leaderboard, best.yaml, plots and the best
    bundle (refitted on train + validation) into the run directory.

    With ``resume``, ``out`` is an interrupted tuning run: its finished trials are kept and the
    interrupted ones run again."""
    return tune_flow.tune(recipe, overrides, out, progress, study, resume)


def join(recipe: str | Path, overrides: list[str] | None = None, study: str | None = None,
         progress: Progress = SILENT) -> int:
    """Run trials of a study in shared storage (``tune.storage``) that ``honing tune`` started on
    another machine; returns how many trials the study has finished."""
    return tune_flow.join(recipe, overrides, study, progress)


def audit(data: str | Path, target: str | None = None, *, sensitive: list[str] | None = None,
          test: str | Path | None = None, fail_on: list | None = None, seed: int = 42,
          progress: Progress = SILENT) -> Any:
    """Audit a dataset (``honing audit``): data-quality checks and, on the sensitive columns (given,
    else guessed from their names), the data's bias.  With ``test`` (a second file) split leakage
    and distribution shift compare it with ``data``; without, with the default random split.
    A breached ``fail_on`` rule raises :class:`honing.audit.gate.AuditFailed` after the audit."""
    from honing.audit.run import audit_data, guess_sensitive
    from honing.data.streaming import TableFile, streams
    from honing.recipe import DataConfig, Recipe

    cfg = DataConfig(source=str(data), target=target)
    large = streams(cfg)  # a table larger than memory (data.streaming: auto): audited on a uniform sample
    if target is None and not str(data).startswith("builtin:"):
        columns = ", ".join(map(str, (TableFile.open(data).columns if large else read_table(data).columns)[:10]))
        raise DataError(f"{data}: which column is the target?", f"pass --target COL (one of: {columns})")
    if large:
        from honing.data.stream_stats import SPLIT_COLUMN
        from honing.stream_flow import streamed_sample

        plan, stats = streamed_sample(Recipe(data=cfg.model_copy(update={"streaming": True}), seed=seed), progress)
        sample = stats.sample
        splits = {s: rows.drop(columns=SPLIT_COLUMN) for s, rows in sample.groupby(SPLIT_COLUMN)}
        frame, target, task, notes = sample.drop(columns=SPLIT_COLUMN), plan.target, plan.task, [
            f"{data} is larger than memory: the audit reads a uniform sample of {len(sample):,} rows"]
    else:
        with progress.step(f"loading {data}"):
            try:
                dataset = load_dataset(cfg, seed)
            except SplitError as exc:  # its hint names recipe keys, which the audit command has not
                raise DataError(exc.what, "add rows: the audit splits them as `honing train` does by default "
                                "(15% validation, 15% test)") from None
        frame, splits, target, task, notes = dataset.raw, dataset.splits, dataset.target, dataset.task, dataset.notes
    if test is not None:
        test_frame = read_table(test)
        if target not in test_frame.columns:
            raise DataError(f"{test}: no target column '{target}'", "the test file needs the same columns")
        missing = [str(c) for c in frame.columns if c not in test_frame.columns]
        if missing:  # leakage and drift are checked on the shared columns only
            note = (f"{test} lacks {len(missing)} column(s) of {data}: {', '.join(missing[:10])} (not compared; a "
                    f"model trained on {data} needs them to predict)")
            progress.note(note)
            notes = [*notes, note]
        splits = {"train": frame, "test": test_frame}
    if sensitive is None:
        sensitive = guess_sensitive(list(frame.columns), exclude=(target,))
        if sensitive:
            progress.note(f"sensitive columns guessed from their names: {', '.join(sensitive)} "
                          "(choose them with --sensitive)")
    result = audit_data(frame, target, task, sensitive=sensitive, fail_on=fail_on or [],
                        splits=splits, seed=seed, progress=progress)
    result.notes = [*notes]
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
    from honing.evaluation.explain import FrameModel, check_explainable, local_explanation

    bundle = bundle if isinstance(bundle, Bundle) else load(bundle)
    check_explainable(bundle)
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
    loaded = load(bundle, backend or "auto")
    serve_config, monitor_config = settings.resolve(loaded.recipe, overrides, flags)
    if no_log:
        monitor_config.log = None
    same = serve_config.backend == (backend or "auto")  # else the recipe's serve.backend asks for another
    server.run(bundle, serve_config, monitor_config, backend=serve_config.backend, loaded=loaded if same else None)


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


def evaluate(bundle: str | Path | Bundle, data: str | Path | pd.DataFrame | None = None,
             progress: Progress = SILENT, episodes: int | None = None) -> dict[str, Any]:
    """Metrics of a bundle on labelled data (rows without a target are skipped); an agent's bundle
    (data.task: reinforcement) plays ``episodes`` seeded episodes in its environment instead."""
    loaded = bundle if isinstance(bundle, Bundle) else load(bundle)
    if loaded.task == "reinforcement":
        from honing.rl_flow import evaluate_agent

        if data is not None:
            raise HoningError(f"{'DATA' if isinstance(data, pd.DataFrame) else data}: an agent is evaluated by playing "
                              "episodes in its environment, not on data", "drop the data (--episodes N plays N episodes)")
        return evaluate_agent(loaded, episodes)
    if episodes is not None:
        raise HoningError(f"--episodes: only an agent (data.task: reinforcement) plays episodes; this is a "
                          f"{loaded.task} bundle", "drop --episodes")
    if data is None:
        if loaded.task in UNSUPERVISED_TASKS:
            raise HoningError(f"evaluate needs rows to score (DATA) for {with_article(loaded.task)} bundle",
                              "give a data file of its feature columns (a label column is optional: ARI / NMI, "
                              "anomaly recall)")
        raise HoningError("evaluate needs labelled data (DATA)", "give a data file with the target column")
    bundle, frame = _open(loaded, data)
    with _naming(data):
        return _evaluate_frame(bundle, frame, progress)


def _evaluate_frame(bundle: Bundle, frame: pd.DataFrame, progress: Progress) -> dict[str, Any]:
    if bundle.task in UNSUPERVISED_TASKS:  # labels optional (honing.evaluation.unsupervised)
        from honing.evaluation.unsupervised import evaluate_frame
        return evaluate_frame(bundle, frame)
    if bundle.task == "generation":  # perplexity (char_lm) or ELBO (vae) of the rows (docs/generative.md)
        from honing.generative_flow import evaluate_rows

        return evaluate_rows(bundle, frame)
    target = bundle.manifest["target"]
    if target not in frame.columns:
        raise DataError(f"the data has no target column '{target}'", "evaluate needs labelled rows")
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        raise DataError(f"every row has a missing '{target}'", "evaluate needs labelled rows")
    if len(labelled) < len(frame):
        progress.note(f"skipping {len(frame) - len(labelled)} of {len(frame)} rows without a '{target}' value")
    frame = labelled
    if bundle.task == "regression":  # what training refuses: text or infinite targets (nan metrics)
        try:
            check_target(frame, target, "regression")
        except DataError as exc:
            raise DataError(exc.what, "a regression model is scored on finite numbers: check the file") from None
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
    from honing.bundle.predictor import as_rows
    from honing.serving.batch_read import read_whole

    bundle = bundle if isinstance(bundle, Bundle) else load(bundle, backend)
    return bundle, read_whole(bundle, data) if isinstance(data, str | os.PathLike) else as_rows(data)


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
    from honing.compression.compress import check_overrides, check_task, compress_bundle, default_out

    check_overrides(overrides or [])
    parent = load(bundle, backend="native")
    check_task(parent)
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
    from honing.compression.compress import check_task
    from honing.compression.export import export_bundle, write_onnx_model

    if format != "onnx":
        raise HoningError(f"--format {format}: unknown export format", "use --format onnx")
    parent = load(bundle, backend="native")
    check_task(parent)
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
        return recipe, load_data(recipe, progress)
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
    dataset = load_data(recipe, progress)
    with progress.step(f"drawing {out}"):
        return write_preview(recipe, dataset, out, rows, per_image, echo)
