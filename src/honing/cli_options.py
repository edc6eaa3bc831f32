"""What the ``honing`` commands share: option types, the global options' state, progress and console.

Light on purpose (typer and the standard library): it is imported by ``honing --help``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from honing import cli_output

#: The global options (``honing --quiet/--debug COMMAND``), set by the app's callback.
STATE = {"quiet": False, "debug": False}

#: Exit status of `honing monitor` when a check breaches (2 is a user mistake, 1 an internal error).
BREACH_EXIT_CODE = 3

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, only results and errors.")]
Overrides = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE", help="Override a recipe key, e.g. --set model.type=lightgbm (repeatable).")]
SettingOverrides = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE", help="Override a serve.* or monitor.* key, e.g. --set monitor.drift.psi=0.1 (repeatable).")]
TrackingUri = Annotated[str | None, typer.Option("--uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db here).")]


def progress(quiet: bool = False):
    """The progress display of a command: silent with the command's or the global ``--quiet``."""
    from honing.progress import Progress

    return Progress(quiet=quiet or STATE["quiet"])


def console():
    """The console the commands print their results on (stdout)."""
    return cli_output.console()
