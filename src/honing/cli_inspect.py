"""The commands that look into finished runs and bundles: `honing compare` (two cross-validated runs),
`honing explain` (one prediction) and `honing report` (a run's report.html).

Plain functions that ``honing.cli`` registers on its app in the order of :data:`COMMANDS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from honing import cli_options as opts


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
    from honing.cli_output import num

    result = api.compare(run_a, run_b, metric)
    name, test = result["metric"], result["comparison"]
    table = Table("run", "model", f"{name} mean ± std", "95% interval", "p vs baseline", title=f"cross-validated {name}")
    for run, model, summary, p in zip(result["runs"], result["models"], result["summary"], result["vs_baseline"],
                                      strict=True):
        table.add_row(run, model, *_cv_cells(summary), num(p, ".3g"))
    table.add_row("baseline", "dummy", *_cv_cells(result["baseline"]), "")
    console = opts.console()
    console.print(table)
    verdict = {"a": f"{run_a} is better", "b": f"{run_b} is better", "tie": "no significant difference"}[test["better"]]
    console.print(f"difference {num(test['mean_difference'], '+.4f')}; corrected paired t-test p = "
                  f"{num(test['p_value'], '.3g')}, Wilcoxon p = {num(test['wilcoxon_p_value'], '.3g')}: {verdict} "
                  "(at p < 0.05)")


def _cv_cells(summary: dict) -> tuple[str, str]:
    """"mean ± std" and "low–high" of a cross-validation summary ("—" for an undefined number)."""
    from honing.cli_output import num

    return (f"{num(summary['mean'], '.4f')} ± {num(summary['std'], '.4f')}",
            f"{num(summary['low'], '.4f')}–{num(summary['high'], '.4f')}")


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
    console = opts.console()
    console.print(table)
    console.print(f"{what}: {result['output']:.4f} for this row, {result['base']:.4f} on average over the background")


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (honing train or honing tune).")],
    open_: Annotated[bool, typer.Option("--open", help="Open the report in a web browser.")] = False,
) -> None:
    """(Re)build a run's self-contained report.html: metrics with intervals, audit, plots, fairness, model card.

    Every train and tune run writes one; rebuild it after upgrading honing, or to look again.
    """
    from honing import api

    path = api.report(run_dir)
    opts.console().print(f"wrote [bold]{path}[/]")
    if open_:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


#: Registered after `honing augment-preview`.
COMMANDS = (compare, explain, report)
