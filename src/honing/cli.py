"""The ``honing`` command: one thin command per verb of :mod:`honing.api`.

Heavy libraries are imported inside the commands, so ``honing --help`` answers at once.
User mistakes print ``error: <what> — <hint>`` and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from honing import cli_output as output

app = typer.Typer(
    name="honing",
    help=(
        "From a dataset and a short YAML recipe to a trained, evaluated, saved model.\n\n"
        "Start with `honing quickstart`, then `honing init your.csv --target COL` and "
        "`honing train recipe.yaml`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)

_state = {"quiet": False, "debug": False}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"honing {version('honing')}")
        raise typer.Exit()


@app.callback()
def _options(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only results and errors.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    _state.update(quiet=quiet, debug=debug)


def _progress(quiet: bool = False):
    from honing.progress import Progress

    return Progress(quiet=quiet or _state["quiet"])


def _console():
    return output.console()


#: Exit status of `honing monitor` when a check breaches (2 is a user mistake, 1 an internal error).
BREACH_EXIT_CODE = 3
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, only results and errors.")]
Overrides = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE", help="Override a recipe key, e.g. --set model.type=lightgbm (repeatable).")]
SettingOverrides = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE", help="Override a serve.* or monitor.* key, e.g. --set monitor.drift.psi=0.1 (repeatable).")]


@app.command()
def quickstart(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default runs/quickstart/…).")] = None,
    quiet: Quiet = False,
) -> None:
    """Train on the bundled **titanic** dataset end to end and show the results."""
    from honing import api

    result = api.quickstart(out=out, progress=_progress(quiet))
    output.print_run(result)


@app.command()
def init(
    data: Annotated[str, typer.Argument(help="CSV/TSV/Parquet/JSONL file, or builtin:NAME.")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="Column to predict.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the recipe.")] = Path("recipe.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing recipe file.")] = False,
) -> None:
    """Write a commented starter recipe with the inferred column types.

    Example: `honing init data.csv --target price` then `honing train recipe.yaml`.
    """
    from honing.errors import HoningError
    from honing.starter import starter_recipe
    from honing.tracking import write_text

    if out.exists() and not force:
        raise HoningError(f"{out} already exists", "pass --force to overwrite it, or --out another path")
    write_text(out, starter_recipe(data, target))
    _console().print(f"wrote [bold]{out}[/] — review it, then run: honing train {out}")


@app.command()
def train(
    recipe: Annotated[Path | None, typer.Argument(help="Recipe YAML file (see docs/recipe.md).")] = None,
    overrides: Overrides = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the run exactly here.")] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", metavar="RUN_DIR", help="Continue an interrupted neural run from its last checkpoint.")] = None,
    processes: Annotated[int | None, typer.Option(
        "--processes", "-p", min=1, help="Data-parallel processes on this machine (overrides train.processes).")] = None,
    nnodes: Annotated[int, typer.Option("--nnodes", min=1, help="Machines taking part (multi-node training).")] = 1,
    node_rank: Annotated[int, typer.Option("--node-rank", min=0, help="This machine's index, 0..nnodes-1.")] = 0,
    rdzv: Annotated[str | None, typer.Option(
        "--rdzv", metavar="HOST:PORT", help="Rendezvous endpoint every machine can reach (multi-node).")] = None,
    quiet: Quiet = False,
) -> None:
    """Train the model a recipe describes; writes runs/NAME/TIMESTAMP-ID/ with the bundle.

    Example: `honing train recipe.yaml --set model.type=random_forest --set seed=1`.
    A neural run that was interrupted (Ctrl-C, a crash, a killed job) continues with
    `honing train --resume RUN_DIR` and ends exactly as an uninterrupted run would.

    Data-parallel: `honing train recipe.yaml --processes 2` (one machine), or on each of two machines
    `honing train recipe.yaml --processes 2 --nnodes 2 --node-rank R --rdzv HOST:PORT --out DIR`.
    """
    from honing import api
    from honing.errors import HoningError
    from honing.tracking import launched_rank

    if (recipe is None) == (resume is None):
        raise HoningError("give a recipe file, or --resume RUN_DIR (not both)", "see honing train --help")
    if resume is not None:
        if overrides or out:
            raise HoningError("--resume continues with the run's own recipe and directory",
                              "drop --set and --out")
        result = _interruptible("train", lambda: api.resume(resume, progress=_progress(quiet)))
    else:
        code = api.launch_train(recipe, overrides or [], out, processes, nnodes, node_rank, rdzv,
                                quiet=quiet or _state["quiet"])
        if code is not None:  # the ranks ran (and rank 0 printed the results)
            raise typer.Exit(code)
        result = _interruptible("train", lambda: api.train(recipe, overrides or [], out=out, progress=_progress(quiet)))
    if launched_rank() == 0:
        output.print_run(result)


@app.command()
def tune(
    recipe: Annotated[Path | None, typer.Argument(help="Recipe YAML file with a tune: section (see docs/tuning.md).")] = None,
    overrides: Overrides = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the run exactly here.")] = None,
    trials: Annotated[int | None, typer.Option("--trials", "-n", min=1, help="Trials to run (overrides tune.trials).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", min=1, help="Seconds after which no new trial starts (overrides tune.timeout).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", min=1, help="Parallel worker processes on this machine (overrides tune.workers).")] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name in the storage (default: tune.study, else the recipe's name).")] = None,
    join: Annotated[bool, typer.Option("--join", help="Add this machine's workers to a running study in tune.storage.")] = False,
    resume: Annotated[Path | None, typer.Option(
        "--resume", metavar="RUN_DIR", help="Continue an interrupted tuning run: finished trials are kept.")] = None,
    quiet: Quiet = False,
) -> None:
    """Search hyperparameters (and architectures) with Optuna; write the best recipe and bundle.

    The recipe's `tune:` section sets the space (recipe paths, e.g.
    `train.optimizer.lr: {float: [1.0e-5, 1.0e-1], log: true}`), the sampler (tpe, gp, random, grid,
    nsga2), the pruner (hyperband, halving, median, none) and the budget. Without `tune.space`, the
    model type's default space is searched.

    Writes RUN_DIR/leaderboard.csv, best.yaml, plots/*.png, tune.json, the study journal, and
    best/ (the best recipe's bundle, refitted on train + validation and scored on test).

    Examples: `honing tune recipe.yaml --trials 30`;
    `honing tune recipe.yaml --set tune.sampler=random --set tune.pruner=none`;
    on more machines, with tune.storage a PostgreSQL URL: `honing tune recipe.yaml --join`.
    Browse a study: `optuna-dashboard RUN_DIR/study.journal`.
    """
    from honing import api
    from honing.errors import HoningError

    if (recipe is None) == (resume is None):
        raise HoningError("give a recipe file, or --resume RUN_DIR (not both)", "see honing tune --help")
    flags = {"tune.trials": trials, "tune.timeout": timeout, "tune.workers": workers}
    overrides = [*(overrides or []), *(f"{k}={v}" for k, v in flags.items() if v is not None)]
    progress = _progress(quiet)
    if resume is not None:
        if overrides or out or join or study:
            raise HoningError("--resume continues with the run's own recipe, study and directory",
                              "drop --set, --trials, --timeout, --workers, --out, --study and --join")
        result = _interruptible("tune", lambda: api.tune(None, out=resume, progress=progress, resume=True))
    elif join:
        if out is not None:
            raise HoningError("--join adds trials to a study; the machine that started it writes the results",
                              "drop --out")
        finished = api.join(recipe, overrides, study=study, progress=progress)
        _console().print(f"joined: the study has {finished} finished trials")
        return
    else:
        result = _interruptible("tune", lambda: api.tune(recipe, overrides, out=out, progress=progress, study=study))
    output.print_tuning(result)


def _interruptible(verb: str, run: Any) -> Any:
    """Run a verb that can resume; on Ctrl-C say how to resume it (or that nothing was written) and
    exit 130 (Typer would otherwise print "Aborted!" and exit 1)."""
    from honing.tracking import Interrupted

    try:
        return run()
    except Interrupted as exc:
        kept = "finished trials are kept" if verb == "tune" else "the last checkpoint is kept"
        typer.echo(f"interrupted: {kept}; continue with `honing {verb} --resume {exc.run_dir}`", err=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: nothing was written", err=True)
        raise typer.Exit(130) from None



@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (RUN/bundle).")],
    data: Annotated[str, typer.Argument(help="Labelled data with the target column.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the metrics as JSON here.")] = None,
    quiet: Quiet = False,
) -> None:
    """Score a saved model on labelled data."""
    from honing import api
    from honing.tracking import write_json

    metrics = api.evaluate(bundle, data, progress=_progress(quiet))
    if out is not None:
        write_json(out, metrics)
    output.print_metrics({"data": metrics}, f"{metrics['rows']} rows")


@app.command()
def predict(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (RUN/bundle).")],
    data: Annotated[str, typer.Argument(help="Rows to score (CSV/TSV/Parquet/JSONL).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .csv or .parquet.")] = ...,
    keep: Annotated[list[str] | None, typer.Option("--keep", "-k", help="Copy this input column to the output (repeatable).")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto (ONNX Runtime when the bundle has model.onnx), native or onnx.")] = "auto",
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", min=1, help="Rows predicted at a time (memory grows with it, not with the file).")] = 50_000,
    quiet: Quiet = False,
) -> None:
    """Predict every row of a file, streaming CSV/TSV/Parquet in chunks so memory stays flat whatever its
    size; classifiers also get one probability column per class. The output is written to a temporary
    file and renamed at the end: a failure leaves nothing behind.

    Example: `honing predict runs/titanic/bundle new.csv -o scores.parquet --keep PassengerId`
    """
    from honing import api

    rows = api.predict_file(bundle, data, out, keep=keep, chunk_rows=chunk_rows, progress=_progress(quiet),
                            backend=backend)
    _console().print(f"wrote {rows} predictions to [bold]{out}[/]")


@app.command()
def serve(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (RUN/bundle).")],
    host: Annotated[str | None, typer.Option("--host", help="Address to bind (serve.host; default 127.0.0.1, this machine only).")] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", help="TCP port (serve.port; default 8000).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Worker processes (serve.workers; default 1).")] = None,
    log: Annotated[str | None, typer.Option("--log", help="Prediction log URL (monitor.log; default sqlite:///predictions.db).")] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Log no predictions.")] = False,
    backend: Annotated[str | None, typer.Option("--backend", help="auto (ONNX Runtime when the bundle has model.onnx), native or onnx.")] = None,
    overrides: SettingOverrides = None,
) -> None:
    """Serve a model over REST: POST /v1/predict, /v1/feedback; GET /v1/health, /v1/ready, /v1/model,
    /metrics (Prometheus) and the OpenAPI docs at /docs. Every prediction is logged for `honing monitor`.

    Settings come from the recipe's `serve:` and `monitor:` sections, `--set serve.KEY=VALUE`, then these
    options. Stop with Ctrl-C: requests in flight finish first. See docs/serving.md.

    Example: `honing serve runs/titanic/bundle --port 9000 --set serve.api_key_env=HONING_KEY`
    """
    from honing import api

    api.serve(bundle, overrides, host=host, port=port, workers=workers, log=log, no_log=no_log, backend=backend)


@app.command()
def monitor(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (RUN/bundle) that is being served.")],
    log: Annotated[str | None, typer.Option("--log", help="Prediction log URL the server wrote (monitor.log; default sqlite:///predictions.db).")] = None,
    window: Annotated[str | None, typer.Option("--window", help="Judge the last 30m, 12h, 1d, 2w … or all (monitor.window; default 1d).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Also write an HTML report with plots here.")] = None,
    all_versions: Annotated[bool, typer.Option("--all-versions", help="Judge rows logged by every version of the model, not only this bundle's.")] = False,
    no_trigger: Annotated[bool, typer.Option("--no-trigger", help="Do not run monitor.on_breach on a breach.")] = False,
    overrides: SettingOverrides = None,
    quiet: Quiet = False,
) -> None:
    """Check a served model: data drift per feature against training (PSI, KS, chi-square, missing
    values), prediction drift, performance and fairness on feedback labels, latency percentiles.

    Thresholds come from the recipe's `monitor:` section (or `--set monitor.drift.psi=0.1`). Exits 0 when
    every check passes and 3 on a breach, after logging it and running `monitor.on_breach` (the retraining
    trigger) — so cron or CI can act on it. See docs/monitoring.md.

    Example: `honing monitor runs/titanic/bundle --log sqlite:///predictions.db --window 1d --html drift.html`
    """
    from honing import api
    from honing.tracking import write_json

    result = api.monitor(bundle, overrides, log=log, window=window, all_versions=all_versions,
                         run_trigger=not no_trigger, progress=_progress(quiet))
    if json_out is not None:
        write_json(json_out, result.to_dict())
    if html_out is not None:
        from honing.report.monitor_page import write_monitor_page

        write_monitor_page(result.to_dict(), html_out)
    output.print_monitor(result)
    if result.breached:
        raise typer.Exit(BREACH_EXIT_CODE)


@app.command()
def audit(
    data: Annotated[str, typer.Argument(help="CSV/TSV/Parquet/JSONL file, or builtin:NAME.")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="Column to predict (builtin datasets have one).")] = None,
    sensitive: Annotated[list[str] | None, typer.Option(
        "--sensitive", "-S", help="Sensitive column for the bias checks (repeatable; default: guessed from names like sex, race, age).")] = None,
    test: Annotated[Path | None, typer.Option("--test", help="A separate test file: split leakage and drift are checked against it.")] = None,
    fail_on: Annotated[list[str] | None, typer.Option(
        "--fail-on", metavar="CHECK[=LIMIT]", help="Exit 2 when this check flags something (or its value passes LIMIT); repeatable.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the findings as JSON here.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and the sampled checks.")] = 42,
    quiet: Quiet = False,
) -> None:
    """Audit a dataset before training: missing values, duplicates, conflicting labels, constant and
    identifier columns, outliers, class imbalance, target leakage, split leakage, drift, mixed types, and
    the bias on sensitive columns. Every check is in docs/audit.md.

    Examples: `honing audit builtin:titanic`, `honing audit train.csv --target y --test test.csv
    --fail-on split_leakage --fail-on target_leakage=0.99`. `honing train` runs the same audit (audit.json).
    """
    from honing import api
    from honing.audit.gate import MODEL_CHECKS
    from honing.errors import HoningError
    from honing.tracking import write_json

    rules = [_rule(text) for text in fail_on or []]
    on_model = [text for text in fail_on or [] if text.partition("=")[0] in MODEL_CHECKS]
    if on_model:
        raise HoningError(f"--fail-on {on_model[0]}: measured on a trained model's predictions, not on data",
                          "put it in the recipe's audit.fail_on and run honing train")
    result = api.audit(data, target, sensitive=sensitive, test=test, fail_on=rules, seed=seed,
                       progress=_progress(quiet))
    if out is not None:
        write_json(out, result.to_dict())
    output.print_audit(result)
    result.enforce_data()


def _rule(text: str) -> Any:
    """``CHECK`` or ``CHECK=LIMIT`` of --fail-on, as an audit.fail_on entry."""
    from honing.errors import HoningError

    check, sep, limit = text.partition("=")
    if not sep:
        return check.strip()
    try:
        return {check.strip(): float(limit)}
    except ValueError:
        raise HoningError(f"--fail-on {text}: the limit must be a number", "e.g. --fail-on target_leakage=0.99") from None



@app.command("augment-preview")
def augment_preview(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file with data.augment steps.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The PNG to write.")] = ...,
    rows: Annotated[int, typer.Option("--rows", "-r", min=1, max=100, help="How many training rows to show (the first ones).")] = 8,
    per_image: Annotated[int, typer.Option("--per-image", min=1, max=20, help="Augmented versions of each row.")] = 4,
    overrides: Overrides = None,
    quiet: Quiet = False,
) -> None:
    """See what the recipe's `data.augment` does before training: a PNG of the first training rows
    beside augmented versions of them (images: a grid; text: each sentence and its rewrites, also
    printed). Augmentation only ever touches the training split. Steps: docs/augmentation.md.

    Examples: `honing augment-preview recipe.yaml -o grid.png`;
    `honing augment-preview recipe.yaml -o grid.png --rows 4 --set 'data.augment=[{name: hflip}, {name: rotation, degrees: 20}]'`.
    """
    from honing import api

    result = api.augment_preview(recipe, out, rows=rows, per_image=per_image, overrides=overrides or [],
                                 progress=_progress(quiet), echo=typer.echo)
    _console().print(f"wrote [bold]{result}[/]")


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="A run directory trained with evaluate.cv.")],
    run_b: Annotated[Path, typer.Argument(help="Another, on the same data, seed and evaluate.cv.")],
    metric: Annotated[str | None, typer.Option("--metric", "-m", help="Metric to compare (default: the runs' selection metric).")] = None,
) -> None:
    """Is one model really better than another? A paired test on the same cross-validation folds.

    Both runs need `evaluate: {cv: {folds: 5}}` (and the same data and seed, so the folds match).
    Shows each run's mean ± std and interval, the corrected resampled t-test (Nadeau & Bengio) and
    the Wilcoxon signed-rank test, and each run against the dummy baseline.
    """
    from rich.table import Table

    from honing import api

    result = api.compare(run_a, run_b, metric)
    name, test = result["metric"], result["comparison"]
    table = Table("run", "model", f"{name} mean ± std", "95% interval", "p vs baseline", title=f"cross-validated {name}")
    for run, model, summary, p in zip(result["runs"], result["models"], result["summary"], result["vs_baseline"],
                                      strict=True):
        table.add_row(run, model, f"{summary['mean']:.4f} ± {summary['std']:.4f}",
                      f"{summary['low']:.4f}–{summary['high']:.4f}", f"{p:.3g}")
    base = result["baseline"]
    table.add_row("baseline", "dummy", f"{base['mean']:.4f} ± {base['std']:.4f}", f"{base['low']:.4f}–{base['high']:.4f}", "")
    console = _console()
    console.print(table)
    verdict = {"a": f"{run_a} is better", "b": f"{run_b} is better", "tie": "no significant difference"}[test["better"]]
    console.print(f"difference {test['mean_difference']:+.4f}; corrected paired t-test p = {test['p_value']:.3g}, "
                  f"Wilcoxon p = {test['wilcoxon_p_value']:.3g}: {verdict} (at p < 0.05)")


@app.command()
def explain(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (RUN/bundle).")],
    data: Annotated[str, typer.Argument(help="Rows (CSV/TSV/Parquet/JSONL); the others are the background.")],
    row: Annotated[int, typer.Option("--row", "-r", help="Which row to explain (0 = the first).")] = 0,
    top: Annotated[int, typer.Option("--top", "-n", min=1, help="How many features to show.")] = 5,
) -> None:
    """Why this prediction? Each feature's contribution for one row.

    A feature's contribution is the prediction (or the predicted class's probability) minus its
    average when that feature takes the values of the other rows (up to 200): exact for additive
    models, and it works for every model. Whole-model importances are in the run's metrics.json.
    """
    from rich.table import Table

    from honing import api

    result = api.explain(bundle, data, row=row, top=top)
    what = f"P({result['class']})" if "class" in result else "prediction"
    table = Table("feature", "value", "contribution", title=f"row {row}: predicted {result['prediction']}")
    for item in result["contributions"]:
        table.add_row(str(item["feature"]), str(item["value"]), f"{item['contribution']:+.4f}")
    console = _console()
    console.print(table)
    console.print(f"{what}: {result['output']:.4f} for this row, {result['base']:.4f} on average over the background")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (honing train or honing tune).")],
    open_: Annotated[bool, typer.Option("--open", help="Open the report in a web browser.")] = False,
) -> None:
    """(Re)build a run's self-contained report.html: metrics with intervals, audit, plots, fairness, model card.

    Every train and tune run writes one; rebuild it after upgrading honing, or to look again.
    """
    from honing import api

    path = api.report(run_dir)
    _console().print(f"wrote [bold]{path}[/]")
    if open_:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


runs_app = typer.Typer(help="Runs logged to MLflow: list them, or compare some side by side.", no_args_is_help=False,
                       rich_markup_mode="markdown")
app.add_typer(runs_app, name="runs")
TrackingUri = Annotated[str | None, typer.Option("--uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db here).")]


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only the runs of this recipe name.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most runs to show.")] = 20,
    uri: TrackingUri = None,
) -> None:
    """List the runs logged to MLflow, newest first (`honing runs compare ID ID` to compare)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from honing import api

    rows = api.runs(name, limit, uri)
    if not rows:
        _console().print("no runs logged yet (train a recipe, or check --uri)")
        return
    metric_names = list(dict.fromkeys(k for row in rows for k in row.get("metrics", {})))[:3]
    table = Table("id", "name", "date", "model", *metric_names, "seconds", title="runs")
    for row in rows:
        metrics = row.get("metrics", {})
        cells = [f"{metrics[m]:.4f}" if isinstance(metrics.get(m), float) else "" for m in metric_names]
        duration = row.get("duration")
        table.add_row(str(row["id"])[:12], str(row.get("name", "")), str(row.get("date", ""))[:19],
                      str(row.get("model", "")), *cells, f"{duration:.1f}" if duration is not None else "")
    _console().print(table)


@runs_app.command("compare")
def runs_compare(
    ids: Annotated[list[str], typer.Argument(help="Two or more MLflow run ids (see `honing runs`).")],
    uri: TrackingUri = None,
) -> None:
    """Params and metrics of runs side by side; the values that differ are highlighted."""
    from rich.table import Table

    from honing import api
    from honing.errors import HoningError

    if len(ids) < 2:
        raise HoningError("honing runs compare needs two or more run ids", "list them with `honing runs`")
    result = api.compare_tracked(ids, uri)
    different = set(result["different"])
    for kind in ("metrics", "params"):
        table = Table(kind, *[str(r)[:12] for r in result["runs"]], title=kind)
        for key, values in sorted(result[kind].items(), key=lambda kv: (kv[0] not in different, kv[0])):
            style = "bold yellow" if key in different else None
            table.add_row(key, *[f"{v:.4f}" if isinstance(v, float) else str(v) for v in values], style=style)
        _console().print(table)


@app.command()
def ui(
    port: Annotated[int, typer.Option("--port", "-p", help="Port on 127.0.0.1.")] = 5000,
    uri: TrackingUri = None,
) -> None:
    """Start the MLflow UI for the runs logged here, on http://127.0.0.1:PORT (Ctrl-C stops it)."""
    import subprocess

    from honing import mlflow_runs
    from honing.mlflow_store import redact

    command = mlflow_runs.ui_command(uri, port)
    _console().print(f"MLflow UI on http://127.0.0.1:{port} for {redact(mlflow_runs.tracking_uri(uri))} (Ctrl-C to stop)")
    raise typer.Exit(subprocess.call(command))


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name (the recipe's name).")],
    version: Annotated[int, typer.Argument(help="Model version (see the MLflow UI or `honing runs`).")],
    alias: Annotated[str, typer.Option("--alias", "-a", help="Alias to point at this version.")] = "production",
    uri: TrackingUri = None,
) -> None:
    """Point a model-registry alias (default: production) at a registered version of a model."""
    from honing import api

    api.promote(name, version, alias, uri)
    _console().print(f"{name}@{alias} → version {version}")


@app.command()
def models() -> None:
    """List the model types a recipe's `model.type` can name."""
    from rich.table import Table

    from honing.models.classic import model_table

    table = Table(title="model types (model.type)")
    table.add_column("type", no_wrap=True)
    table.add_column("tasks")
    table.add_column("estimator", overflow="fold")
    table.add_column("description")
    for row in model_table():
        table.add_row(row["name"], ", ".join(row["tasks"]), ", ".join(row["estimators"]), row["description"])
    _console().print(table)


@app.command()
def compress(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (RUN/bundle).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where the compressed bundle goes (default BUNDLE-compressed).")] = None,
    max_drop: Annotated[float | None, typer.Option("--max-drop", help="Largest validation metric drop allowed (compress.max_metric_drop).")] = None,
    data: Annotated[str | None, typer.Option("--data", help="The training data, when it is no longer where the bundle's recipe says.")] = None,
    overrides: Overrides = None,
    quiet: Quiet = False,
) -> None:
    """Make a model smaller and faster within a metric budget.

    Tries the recipe's `compress:` options — or the default ladder: ONNX Runtime, int8, pruning 30/50/70 %,
    pruned + int8 — measures metric, size and latency of each on the validation split, and writes the
    smallest candidate whose metric drops by at most `compress.max_metric_drop` (default 0.01) as a new
    bundle. Writes nothing, and exits 2, when none qualifies.

    Example: `honing compress runs/digits/bundle --set compress.prune.amount=0.5 --max-drop 0.005`
    """
    from honing import api
    from honing.errors import CompressionError

    sets = [*(overrides or []), *([f"compress.max_metric_drop={max_drop}"] if max_drop is not None else [])]
    result = api.compress(bundle, sets, out=out, data=data, progress=_progress(quiet))
    output.print_compression(result)
    if result.bundle is None:
        within = [m.name for m in result.measured[1:] if m.qualifies]
        if within:
            better = "smaller" if result.prefer == "size" else "faster"
            raise CompressionError(f"no candidate within the budget is {better} than the original ({', '.join(within)} "
                                   "qualified); nothing was written",
                                   "unstructured pruning keeps the file size (zeros are stored): try structured "
                                   "pruning or compress.quantize: [dynamic]")
        raise CompressionError(f"no candidate keeps the validation {result.metric} within {result.max_drop} of the "
                               "original; nothing was written",
                               "allow a larger drop (--max-drop), or try other options (compress.prune, …)")
    console = _console()
    if result.test_before is not None:
        before, after = result.test_before[result.metric], result.scores["test"][result.metric]
        console.print(f"test {result.metric}: {before:.4f} → {after:.4f}")
    sparsity = {k: v for k, v in result.winner.details.get("sparsity", {}).items() if v > 0}
    if sparsity:  # unstructured pruning: zeros per layer
        console.print("sparsity per layer: " + ", ".join(f"{k} {v:.0%}" for k, v in sparsity.items()))
    how = result.winner.details.get("description")
    console.print(f"chose [bold]{result.winner.name}[/]{f' — {how}' if how else ''}; bundle: [bold]{result.bundle}[/]")


@app.command()
def export(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (RUN/bundle).")],
    format: Annotated[str, typer.Option("--format", "-f", help="Export format (onnx).")] = "onnx",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the ONNX model to this .onnx file.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Rows for the parity check (default: the bundle's validation split).")] = None,
    quiet: Quiet = False,
) -> None:
    """Convert a bundle's model to ONNX, checked against the native model.

    Adds `model.onnx` to the bundle (serving then uses ONNX Runtime) after checking that its outputs
    equal the native model's on held-out rows; fails, showing the largest difference, when they do not.
    The ONNX model takes the preprocessed feature matrix (the bundle keeps the preprocessing).

    Example: `honing export runs/digits/bundle --format onnx -o digits.onnx`
    """
    from honing import api

    result = api.export(bundle, format, out=out, data=data, progress=_progress(quiet))
    if not result.attached:
        _console().print(f"the bundle's model is ONNX already: wrote it ({result.size_bytes / 1024:,.1f} KiB) to "
                         f"[bold]{result.file}[/]")
        return
    where = f" and [bold]{result.file}[/]" if result.file else ""
    _console().print(f"wrote model.onnx ({result.size_bytes / 1024:,.1f} KiB) to [bold]{result.bundle}[/]{where}; "
                     f"largest difference from the native model on {result.rows} rows: {result.max_abs_diff:.2e}")



@app.command()
def verify(bundle: Annotated[Path, typer.Argument(help="Bundle directory.")]) -> None:
    """Check a bundle's format version and the checksum of every file."""
    from honing.bundle import verify_bundle
    from honing.errors import BundleError

    problems = verify_bundle(bundle)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise BundleError(f"{bundle}: {problems[0]}{more}", "re-export the bundle, or restore it from a copy")
    _console().print(f"[green]✓[/] {bundle} is intact")





def reference_markdown() -> str:
    """``docs/cli.md``: every command with its arguments and options (generated by ``make docs``)."""
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="honing")
    lines = ["# Command-line reference", "",
             "<!-- generated from src/honing/cli.py by `make docs`; a test checks it is current -->", "",
             (group.help or "").strip(), "", "Global options (before the command):", ""]
    lines += _param_rows(group.params)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        usage = " ".join(["honing", name, "[OPTIONS]"] + [p.name.upper() for p in command.params
                                                          if p.param_type_name == "argument"])
        lines += ["", f"## honing {name}", "", f"`{usage}`", "", (command.help or "").strip(), ""]
        lines += _param_rows(command.params)
    return "\n".join(lines) + "\n"


def _param_rows(params: list) -> list[str]:
    rows = ["| argument / option | default | help |", "|---|---|---|"]
    for p in params:
        name = p.name.upper() if p.param_type_name == "argument" else ", ".join(p.opts)
        default = "" if p.default in (None, False, ()) or p.required else f"`{p.default}`"
        if p.required:
            default = "required"
        rows.append(f"| `{name}` | {default} | {getattr(p, 'help', '') or ''} |")
    return rows


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each (`warning: …`), not Python's two lines of source location."""
    text = " ".join(str(message).split())
    typer.echo(f"warning: {text}", err=True)


def main() -> None:
    """Entry point: run the app; user mistakes exit 2 with one line, bugs exit 1."""
    import warnings

    from honing.errors import HoningError

    warnings.showwarning = _show_warning
    try:
        app()
    except HoningError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
