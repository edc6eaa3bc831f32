"""What the ``honing`` commands print: runs, metrics, tuning, audits and compression as rich tables
(on stdout; progress and errors go to stderr)."""

from __future__ import annotations

import math
from typing import Any


def console():
    from rich.console import Console

    return Console(highlight=False)


def print_tuning(result: Any) -> None:
    from honing.tuning.results import table

    out = console()
    out.print(table(result.leaderboard, result.objectives))
    default = f" (the recipe as written: {result.default_score:.4f})" if result.default_score is not None else ""
    which = "the recipe as written (no trial beat it)" if result.best_trial is None else f"trial {result.best_trial}"
    out.print(f"best: {which}, validation {result.metric} {result.best_score:.4f}{default}")
    if result.trained is not None:
        test = result.trained.metrics.get("test", {})
        if result.metric in test:
            out.print(f"best recipe refitted: test {result.metric} {test[result.metric]:.4f}")
    out.print(f"run: [bold]{result.run_dir}[/]   best recipe: [bold]{result.run_dir / 'best.yaml'}[/]   "
                  f"bundle: [bold]{result.run_dir / 'best' / 'bundle'}[/]")


def print_audit(result: Any) -> None:
    from rich.table import Table

    colours = {"error": "red", "warning": "yellow", "info": "dim"}
    table = Table("severity", "check", "column", "finding", title="data audit", show_lines=False)
    for finding in result.ordered():
        colour = colours[finding.severity]
        table.add_row(f"[{colour}]{finding.severity}[/]", finding.check, finding.column or "", finding.message)
    out = console()
    if result.findings:
        out.print(table)
    counts = result.counts()
    out.print(f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} notes"
                  + (f"; sensitive columns: {', '.join(result.sensitive)}" if result.sensitive else ""))


def print_compression(result: Any) -> None:
    from rich.table import Table

    def cell(value: Any, form: str) -> str:
        return "—" if value is None else format(value, form)

    table = Table("candidate", f"validation {result.metric}", "drop", "size (KiB)", "latency (ms)", "rows/s",
                  "parameters", "within budget", title=f"compression candidates (max drop {result.max_drop})")
    for m in result.measured:
        ok = "—" if m.error else "[green]yes[/]" if m.qualifies else "[red]no[/]"
        table.add_row(m.name, cell(m.metric, ".4f"), cell(m.drop, "+.4f"),
                      cell(m.size_bytes and m.size_bytes / 1024, ",.1f"), cell(m.latency_ms, ".3f"),
                      cell(m.rows_per_s, ",.0f"), cell(m.parameters, ","), ok)
    console().print(table)
    for m in result.measured:
        if m.error:
            console().print(f"[dim]{m.name}: skipped — {m.error}[/]")


def print_run(result: Any) -> None:
    from rich.table import Table

    from honing.bundle.manifest import UNSUPERVISED_TASKS

    out = console()
    if result.task in UNSUPERVISED_TASKS:  # per split (honing.unsupervised_flow)
        print_metrics({s: result.metrics[s] for s in ("train", "validation", "test") if s in result.metrics},
                      f"{result.model} ({result.task})")
        out.print(f"run: [bold]{result.run_dir}[/]   bundle: [bold]{result.bundle_dir}[/]")
        return
    if "selection_metric" not in result.metrics:  # clustering, agents, generative models: their own numbers
        print_metrics({"run": result.metrics}, f"{result.model} ({result.task})")
        out.print(f"run: [bold]{result.run_dir}[/]   bundle: [bold]{result.bundle_dir}[/]")
        return
    metric = result.metrics["selection_metric"]
    board = Table("model", f"validation {metric}", "fit seconds", title="leaderboard")
    for row in result.leaderboard:
        board.add_row(row["model"], f"{row[metric]:.4f}", f"{row['fit_seconds']:.2f}")
    out.print(board)
    print_metrics({s: result.metrics[s] for s in ("validation", "test") if s in result.metrics},
                   f"{result.model} on {result.recipe.data.source} ({result.task})",
                   baseline=result.metrics.get("baseline", {}).get("test"))
    for line in evaluation_lines(result.metrics):
        out.print(line)
    out.print(f"run: [bold]{result.run_dir}[/]   bundle: [bold]{result.bundle_dir}[/]")


def evaluation_lines(metrics: dict) -> list[str]:
    """The headline metric's confidence interval, cross-validation and its test against the baseline."""
    metric, lines = metrics["selection_metric"], []
    intervals = metrics.get("intervals")
    if intervals and metric in intervals["test"] and metric in metrics.get("test", {}):
        low, high = intervals["test"][metric]
        level = f"{intervals['confidence']:.0%}"
        if low is not None and high is not None:  # None: undefined on the test rows (noted under the table)
            lines.append(f"test {metric}: {metrics['test'][metric]:.4f} ({level} bootstrap interval {low:.4f}–"
                         f"{high:.4f})")
    cv = metrics.get("cv")
    if cv:
        model, base = cv["model"]["summary"].get(metric, {}), cv["baseline"]["summary"].get(metric, {})
        test = cv["comparison"]
        order = " in time order" if cv.get("time") else ""
        head = f"cross-validation ({cv['folds']} folds × {cv['repeats']}{order}): {metric}"
        if model and model["mean"] is None:
            lines.append(f"{head} is undefined in every fold{_needs(metric)}")
        elif model and base:
            lines.append(f"{head} {num(model['mean'], '.4f')} ± {num(model['std'], '.4f')} (interval "
                         f"{num(model['low'], '.4f')}–{num(model['high'], '.4f')}); baseline "
                         f"{num(base['mean'], '.4f')}; corrected paired t-test p = {num(test['p_value'], '.3g')}")
    decision = metrics.get("decision")
    if decision:
        lines.append(f"decision threshold ({decision['method']}): {decision['threshold']:.3f} on "
                     f"P({decision['positive_class']})")
    return lines


def print_metrics(by_split: dict[str, dict], title: str, baseline: dict | None = None) -> None:
    """A table of each split's scores: "—" where a column has no such score, ``nan`` where it is
    undefined on those rows, with a note saying what the metric needs."""
    from rich.table import Table

    if not by_split:  # data.split.validation and data.split.test both 0: every row trained
        console().print(f"{title}: no validation or test rows, so no held-out metrics (raise data.split.test "
                        "to measure the model)")
        return
    columns = {**by_split, **({"baseline (test)": baseline} if baseline else {})}
    table = Table("metric", *columns, title=title)
    undefined: dict[str, list[str]] = {}
    for name, value in next(iter(by_split.values())).items():
        if not isinstance(value, float):
            continue
        values = [scores.get(name) for scores in columns.values()]
        table.add_row(name, *(num(v, ".4f") for v in values))
        where = [column for column, v in zip(columns, values, strict=True) if v is not None and math.isnan(v)]
        if where:
            undefined[name] = where
    console().print(table)
    if undefined:
        console().print(_undefined_note(undefined))


def _undefined_note(undefined: dict[str, list[str]]) -> str:
    """One line naming each metric that is ``nan`` (undefined), where, and what it needs."""
    parts = [f"{name} on {', '.join(where)}{_needs(name)}" for name, where in undefined.items()]
    return "[dim]nan = undefined on those rows: " + "; ".join(parts) + "[/]"


def num(value: Any, form: str = ".3f") -> str:
    """A number in ``form``; "—" for None (what metrics.json holds for an undefined number)."""
    return "—" if value is None else format(value, form)


def _needs(metric: str) -> str:
    """" (it needs …)": what ``metric`` needs to be defined, when known."""
    from honing.evaluation.metrics import NEEDS

    return f" (it needs {NEEDS[metric]})" if metric in NEEDS else ""


def print_monitor(result: Any) -> None:
    """Drift per feature, then the other checks, then the verdict."""
    from rich.table import Table

    out = console()
    model = result.model
    out.print(f"[bold]{model['name']}[/] ({model['type']}, version {model['version']}): {result.rows} rows in "
              f"{result.requests} requests logged in the window ({result.window}), {result.labelled} with labels")
    if result.drift:
        table = Table("feature", "kind", "rows", "PSI", "KS / χ² p", "missing (train → now)", "drift",
                      title="data drift against training")
        for row in [*result.drift, *([result.prediction] if result.prediction else [])]:
            p = row.get("ks_pvalue", row.get("chi2_pvalue"))
            missing = f"{num(row.get('missing_ref'), '.1%')} → {num(row.get('missing_now'), '.1%')}"
            verdict = "[red]yes[/]" if row.get("drifted") else "no"
            table.add_row(str(row["feature"]), str(row.get("kind", "")), str(row.get("rows", 0)), num(row.get("psi")),
                          num(p, ".3g"), missing, verdict)
        out.print(table)
    if result.performance:
        shown = {k: v for k, v in result.performance.items() if isinstance(v, (int, float))}
        out.print("performance on feedback: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
    if result.latency:
        lat = result.latency
        out.print(f"latency per request: p50 {lat['p50_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} ms, "
                  f"p99 {lat['p99_ms']:.1f} ms ({lat['requests']} requests)")
    for note in result.notes:
        out.print(f"[dim]note:[/] {note}")
    for breach in result.breaches:
        out.print(f"[red]breach:[/] {breach}")
    if result.trigger:
        out.print(f"ran monitor.on_breach ({result.trigger['command']}): exit status {result.trigger['exit_status']}")
    out.print("[red]BREACH[/]" if result.breached else "[green]OK[/]: no check breached")
