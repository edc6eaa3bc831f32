"""The MLflow commands: `honing runs` (list, `runs compare`), `honing ui` and `honing promote`.

``honing.cli`` adds :data:`runs_app` as the `runs` group and registers :data:`COMMANDS` on its app;
MLflow is imported inside the commands.
"""

from __future__ import annotations

from typing import Annotated

import typer

from honing import cli_options as opts
from honing.cli_options import TrackingUri

runs_app = typer.Typer(help="Runs logged to MLflow: list them, or compare some side by side.", no_args_is_help=False,
                       rich_markup_mode="markdown")


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
        from honing.mlflow_store import redact, tracking_uri

        opts.console().print(f"no runs logged yet in {redact(tracking_uri(uri))} (train a recipe, or check --uri)")
        return
    metric_names = list(dict.fromkeys(k for row in rows for k in row.get("metrics", {})))[:3]
    table = Table("id", "name", "date", "model", *metric_names, "seconds", title="runs")
    for row in rows:
        metrics = row.get("metrics", {})
        cells = [f"{metrics[m]:.4f}" if isinstance(metrics.get(m), float) else "" for m in metric_names]
        duration = row.get("duration")
        table.add_row(str(row["id"])[:12], str(row.get("name", "")), str(row.get("date", ""))[:19],
                      str(row.get("model", "")), *cells, f"{duration:.1f}" if duration is not None else "")
    opts.console().print(table)


@runs_app.command("compare")
def runs_compare(
    ids: Annotated[list[str], typer.Argument(help="Two or more MLflow run ids, or their first characters as `honing runs` shows them.")],
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
        table = Table(kind, *[f"{r['name'] or ''} {r['id'][:8]}".strip() for r in result["runs"]], title=kind)
        for key, values in sorted(result[kind].items(), key=lambda kv: (kv[0] not in different, kv[0])):
            style = "bold yellow" if key in different else None
            table.add_row(key, *[f"{v:.4f}" if isinstance(v, float) else str(v) for v in values], style=style)
        opts.console().print(table)


def ui(
    port: Annotated[int, typer.Option("--port", "-p", help="Port on 127.0.0.1.")] = 5000,
    uri: TrackingUri = None,
) -> None:
    """Start the MLflow UI for the runs logged here, on http://127.0.0.1:PORT (Ctrl-C stops it)."""
    import subprocess

    from honing import mlflow_runs
    from honing.mlflow_store import redact

    command = mlflow_runs.ui_command(uri, port)
    opts.console().print(f"MLflow UI on http://127.0.0.1:{port} for {redact(mlflow_runs.tracking_uri(uri))} (Ctrl-C to stop)")
    raise typer.Exit(subprocess.call(command))


def promote(
    name: Annotated[str, typer.Argument(help="Registered model name (the recipe's name).")],
    version: Annotated[int, typer.Argument(help="Model version (see the MLflow UI or `honing runs`).")],
    alias: Annotated[str, typer.Option("--alias", "-a", help="Alias to point at this version.")] = "production",
    uri: TrackingUri = None,
) -> None:
    """Point a model-registry alias (default: production) at a registered version of a model."""
    from honing import api

    api.promote(name, version, alias, uri)
    opts.console().print(f"{name}@{alias} → version {version}")


#: Registered after `honing report`.
COMMANDS = (ui, promote)
