"""The ``honing`` command: one thin command per verb of :mod:`honing.api`.

Heavy libraries are imported inside the commands, so ``honing --help`` answers at once.
User mistakes print ``error: <what> — <hint>`` and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from honing import cli_deploy, cli_generate, cli_inspect, cli_tracking
from honing import cli_options as opts
from honing import cli_output as output
from honing.cli_options import Overrides, Quiet

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

_state = opts.STATE  # the global options (the same dict as honing.cli_options.STATE)


def _register(commands: tuple) -> None:
    """Add plain command functions (from cli_deploy, cli_tracking) to the app, in their order."""
    for command in commands:
        app.command()(command)


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
    _warned.clear()


@app.command()
def quickstart(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default runs/quickstart/…).")] = None,
    quiet: Quiet = False,
) -> None:
    """Train on the bundled **titanic** dataset end to end and show the results."""
    from honing import api

    result = api.quickstart(out=out, progress=opts.progress(quiet))
    output.print_run(result)


@app.command()
def init(
    data: Annotated[str, typer.Argument(
        help="CSV/TSV/Parquet/JSONL file, image folder (a sub-folder per class), .npy/.npz/IDX images, or builtin:NAME.")],
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
    opts.console().print(f"wrote [bold]{out}[/] — review it, then run: honing train {out}")


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
    A model too big for one process's memory: add `--set train.strategy=fsdp` (sharded).
    Data too big for memory: `--set data.streaming=true` (Parquet / CSV read in chunks).
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
        result = _interruptible("train", lambda: api.resume(resume, progress=opts.progress(quiet)))
    else:
        code = api.launch_train(recipe, overrides or [], out, processes, nnodes, node_rank, rdzv,
                                quiet=quiet or _state["quiet"])
        if code is not None:  # the ranks ran (and rank 0 printed the results)
            raise typer.Exit(code)
        result = _interruptible("train", lambda: api.train(recipe, overrides or [], out=out, progress=opts.progress(quiet)))
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
    progress = opts.progress(quiet)
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
        opts.console().print(f"joined: the study has {finished} finished trials")
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
    data: Annotated[str | None, typer.Argument(help="Labelled data with the target column (none for an agent, which plays episodes).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the metrics as JSON here.")] = None,
    episodes: Annotated[int | None, typer.Option("--episodes", min=1, help="Agents (data.task: reinforcement): seeded episodes to play (default: the run's evaluate.episodes).")] = None,
    quiet: Quiet = False,
) -> None:
    """Score a saved model on labelled data; an agent plays seeded episodes in its environment."""
    from honing import api
    from honing.tracking import write_json

    metrics = api.evaluate(bundle, data, progress=opts.progress(quiet), episodes=episodes)
    if out is not None:
        write_json(out, metrics)
    rows = f"{metrics['episodes']} episodes" if "episodes" in metrics and "rows" not in metrics else f"{metrics['rows']} rows"
    output.print_metrics({"data": metrics}, rows)


_register(cli_deploy.PREDICTION_COMMANDS)  # predict, serve, monitor
_register(cli_generate.COMMANDS)  # generate (generative bundles)


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
                       progress=opts.progress(quiet))
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
                                 progress=opts.progress(quiet), echo=typer.echo)
    opts.console().print(f"wrote [bold]{result}[/]")


_register(cli_inspect.COMMANDS)  # compare, explain, report


app.add_typer(cli_tracking.runs_app, name="runs")
_register(cli_tracking.COMMANDS)  # ui, promote


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
    opts.console().print(table)


_register(cli_deploy.COMPRESSION_COMMANDS)  # compress, export


@app.command()
def verify(bundle: Annotated[Path, typer.Argument(help="Bundle directory.")]) -> None:
    """Check a bundle's format version and the checksum of every file."""
    from honing.bundle import verify_bundle
    from honing.errors import BundleError

    problems = verify_bundle(bundle)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise BundleError(f"{bundle}: {problems[0]}{more}", "re-export the bundle, or restore it from a copy")
    opts.console().print(f"[green]✓[/] {bundle} is intact")


def reference_markdown() -> str:
    """``docs/cli.md``: every command with its arguments and options (generated by ``make docs``)."""
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="honing")
    lines = ["# Command-line reference", "",
             "<!-- generated from src/honing/cli.py by `make docs`; a test checks it is current -->", "",
             (group.help or "").strip(), "", "Global options (before the command):", ""]
    lines += _param_rows(group.params)
    lines += ["", ("Exit codes: `0` done; `2` a mistake in what was given (recipe, data, bundle, an option or "
              "argument), told in one `error:` line that names it and says what to do; `1` a bug, with its "
              "traceback; `130` interrupted (Ctrl-C). `--debug` shows the traceback of a mistake too.")]
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
    """Warnings as one line each (`warning: …`), not Python's two lines of source location, and each
    once (a check that runs on every split, or every chunk, says the same thing again)."""
    text = " ".join(str(message).split())
    if text not in _warned:
        _warned.add(text)
        typer.echo(f"warning: {text}", err=True)


_warned: set[str] = set()


def main() -> None:
    """Entry point: run the app; user mistakes exit 2 with one line, bugs exit 1."""
    import warnings

    from honing.errors import HoningError, shortened

    warnings.showwarning = _show_warning
    try:
        code = app(standalone_mode=False)  # click's own errors come here, to be printed as one line
    except HoningError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {shortened(str(exc))}", err=True)
        _leave(exc.exit_code)
    except typer.exceptions.TyperException as exc:  # a usage mistake: a bad option value, a missing argument, …
        if type(exc).__name__ != "NoArgsIsHelpError":  # `honing` alone has printed the help
            typer.echo(f"error: {usage_error(exc)}", err=True)
        _leave(getattr(exc, "exit_code", 2))
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        _leave(1)
    _leave(code if isinstance(code, int) else 0)


def _leave(code: int) -> None:
    """Exit with ``code``; a data-parallel rank (under torchrun) through
    :func:`honing.training.distributed.leave`, which ends its process group cleanly."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        from honing.training.distributed import leave

        leave(code)
    sys.exit(code)


def usage_error(exc: Exception) -> str:
    """A click error as one line: its message, and the command's --help to read."""
    ctx = getattr(exc, "ctx", None)
    message = " ".join((exc.format_message() if hasattr(exc, "format_message") else str(exc)).split()).rstrip(".")
    return f"{message} — see `{ctx.command_path} --help`" if ctx is not None else message


if __name__ == "__main__":
    main()
