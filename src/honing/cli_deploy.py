"""The deployment commands: `honing predict`, `serve`, `monitor`, `compress` and `export`.

Plain functions that ``honing.cli`` registers on its app (in the order of :data:`PREDICTION_COMMANDS`
and :data:`COMPRESSION_COMMANDS`); heavy libraries are imported inside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from honing import cli_options as opts
from honing import cli_output as output
from honing.cli_options import BREACH_EXIT_CODE, Quiet, SettingOverrides

CompressOverrides = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE", help="Override a compress.* key, e.g. --set compress.prune.amount=0.5 (repeatable).")]


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

    rows = api.predict_file(bundle, data, out, keep=keep, chunk_rows=chunk_rows, progress=opts.progress(quiet),
                            backend=backend)
    opts.console().print(f"wrote {rows} predictions to [bold]{out}[/]")


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
                         run_trigger=not no_trigger, progress=opts.progress(quiet))
    if json_out is not None:
        write_json(json_out, result.to_dict())
    if html_out is not None:
        from honing.report.monitor_page import write_monitor_page

        write_monitor_page(result.to_dict(), html_out)
    output.print_monitor(result)
    if result.breached:
        raise typer.Exit(BREACH_EXIT_CODE)



def compress(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory (RUN/bundle).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where the compressed bundle goes (default BUNDLE-compressed).")] = None,
    max_drop: Annotated[float | None, typer.Option("--max-drop", help="Largest validation metric drop allowed (compress.max_metric_drop).")] = None,
    data: Annotated[str | None, typer.Option("--data", help="The training data, when it is no longer where the bundle's recipe says.")] = None,
    overrides: CompressOverrides = None,
    quiet: Quiet = False,
) -> None:
    """Make a model smaller and faster within a metric budget.

    Tries the recipe's `compress:` options — or the default ladder: ONNX Runtime, int8, pruning 30/50/70 %,
    pruned + int8 — measures metric, size and latency of each on the validation split, and writes the
    smallest candidate whose metric drops by at most `compress.max_metric_drop` (default 0.01) as a new
    bundle. Writes nothing, and exits 2, when none qualifies. `--set` overrides `compress.*` keys only: the
    model, its data and split are the bundle's own (`--data` when the data moved).

    Example: `honing compress runs/digits/bundle --set compress.prune.amount=0.5 --max-drop 0.005`
    """
    from honing import api

    sets = [*(overrides or []), *([f"compress.max_metric_drop={max_drop}"] if max_drop is not None else [])]
    result = api.compress(bundle, sets, out=out, data=data, progress=opts.progress(quiet))
    output.print_compression(result)
    if result.bundle is None:
        raise _nothing_written(result)
    console = opts.console()
    if result.test_before is not None:
        before, after = result.test_before[result.metric], result.scores["test"][result.metric]
        console.print(f"test {result.metric}: {before:.4f} → {after:.4f}")
    sparsity = {k: v for k, v in result.winner.details.get("sparsity", {}).items() if v > 0}
    if sparsity:  # unstructured pruning: zeros per layer
        console.print("sparsity per layer: " + ", ".join(f"{k} {v:.0%}" for k, v in sparsity.items()))
    how = result.winner.details.get("description")
    console.print(f"chose [bold]{result.winner.name}[/]{f' — {how}' if how else ''}; bundle: [bold]{result.bundle}[/]")


def _nothing_written(result: Any) -> Exception:
    """The error of a compression that wrote nothing: no candidate could be built, none kept the metric,
    or none that did beat the original."""
    from honing.errors import CompressionError

    candidates = result.measured[1:]
    if not candidates:
        return CompressionError("the compress: options name no candidate to try (an empty compress.quantize)",
                                "list quantize modes, or set compress.prune or compress.distill")
    if all(m.error for m in candidates):  # each was skipped, with its reason printed under the table
        return CompressionError(f"no candidate could be tried ({', '.join(m.name for m in candidates)}: skipped "
                                "for the reason printed above); nothing was written",
                                "change the compress: options accordingly (compress.distill works for every model)")
    within = [m.name for m in candidates if m.qualifies]
    if within:
        better = "smaller" if result.prefer == "size" else "faster"
        other = "latency" if result.prefer == "size" else "size"
        hint = ("unstructured pruning keeps the file size (zeros are stored): try structured pruning or "
                "compress.quantize: [dynamic]" if any(name.startswith("pruned") for name in within) else
                f"the {better} candidates lost more than the budget (see the table): allow a larger drop (--max-drop), "
                f"try compress.distill, or keep the {other} gain (--set compress.prefer={other})")
        return CompressionError(f"no candidate within the budget is {better} than the original ({', '.join(within)} "
                                "qualified); nothing was written", hint)
    return CompressionError(f"no candidate keeps the validation {result.metric} within {result.max_drop} of the "
                            "original; nothing was written",
                            "allow a larger drop (--max-drop), or try other options (compress.prune, …)")


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

    result = api.export(bundle, format, out=out, data=data, progress=opts.progress(quiet))
    if not result.attached:
        opts.console().print(f"the bundle's model is ONNX already: wrote it ({result.size_bytes / 1024:,.1f} KiB) to "
                         f"[bold]{result.file}[/]")
        return
    where = f" and [bold]{result.file}[/]" if result.file else ""
    opts.console().print(f"wrote model.onnx ({result.size_bytes / 1024:,.1f} KiB) to [bold]{result.bundle}[/]{where}; "
                     f"largest difference from the native model on {result.rows} rows: {result.max_abs_diff:.2e}")


#: Registered after `honing evaluate`: scoring new rows, serving them, watching what was served.
PREDICTION_COMMANDS = (predict, serve, monitor)
#: Registered after `honing models`: making a trained model smaller, faster, portable.
COMPRESSION_COMMANDS = (compress, export)
