"""The HTML report of ``honing monitor --html``: one self-contained page (the run report's style) drawn
from the monitor result's JSON dict: verdict, breaches, drift per feature (a PSI chart and, for the
features that moved most, training's distribution beside the logged one), performance and fairness on
feedback labels, latency."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from honing.report.html import page
from honing.report.markup import Raw, badge, figures, kv, none, png_figure, table
from honing.report.plots import PALETTE, pyplot
from honing.tracking import write_text

#: Features whose distributions are drawn (the highest PSI first).
MOST_DISTRIBUTIONS = 6
SECTIONS = [("verdict", "Verdict"), ("drift", "Drift"), ("performance", "Performance"), ("latency", "Latency")]


def write_monitor_page(result: dict, path: str | Path) -> Path:
    """Write the page for a monitor result (``MonitorResult.to_dict()``) to ``path`` (atomically)."""
    return write_text(Path(path), render_monitor(result))


def render_monitor(result: dict) -> str:
    """The whole page as a string."""
    model = result["model"]
    body = "".join(f'<section id="{sid}"><h2>{title}</h2>{builder(result)}</section>'
                   for (sid, title), builder in zip(SECTIONS, (_verdict, _drift, _performance, _latency), strict=True))
    subtitle = f"honing monitor · {model.get('type')} · version {model.get('version')} · window {result['window']}"
    return page(f"{model.get('name')} in production", subtitle, SECTIONS, body)


def _when(stamp: float | None) -> str:
    return "the beginning of the log" if stamp is None else datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _verdict(result: dict) -> str:
    verdict = badge("error", "breach") if result["breached"] else badge("ok", "no breach")
    facts = kv([("verdict", Raw(verdict)), ("from", _when(result["since"])), ("to", _when(result["until"])),
                ("rows logged", result["rows"]), ("requests", result["requests"]),
                ("rows with feedback labels", result["labelled"]), ("log", result["log"])])
    breaches = "".join(f"<li>{escape(b)}</li>" for b in result["breaches"])
    notes = "".join(f'<li class="note">{escape(n)}</li>' for n in result["notes"])
    trigger = result.get("trigger")
    ran = (f"<p>Ran <code>{escape(trigger['command'])}</code>: exit status {escape(str(trigger['exit_status']))}.</p>"
           if trigger else "")
    return facts + (f"<h3>Breaches</h3><ul>{breaches}</ul>" if breaches else "") + ran + (
        f"<h3>Notes</h3><ul>{notes}</ul>" if notes else "")


def _drift(result: dict) -> str:
    rows = [*result["drift"], *([result["prediction"]] if result.get("prediction") else [])]
    if not rows:
        return none("No drift was measured (no logged rows, or no training reference profile in the bundle).")
    head = ["feature", "kind", "rows", "PSI", "KS statistic", "KS p", "χ²", "χ² p", "missing (training)",
            "missing (now)", "drift", "why"]
    cells = [[r["feature"], r.get("kind", ""), r.get("rows", 0), r.get("psi"), r.get("ks_statistic"),
              r.get("ks_pvalue"), r.get("chi2"), r.get("chi2_pvalue"), r.get("missing_ref"), r.get("missing_now"),
              Raw(badge("error", "drift")) if r.get("drifted") else "no", "; ".join(r.get("reasons", []))]
             for r in rows]
    threshold = (result.get("thresholds") or {}).get("psi")
    plots = [png_figure(_psi_plot(rows, threshold), "PSI per feature against training (the dashed line is the threshold)")]
    ranked = sorted((r for r in rows if r.get("shares")), key=lambda r: -(r.get("psi") or 0))[:MOST_DISTRIBUTIONS]
    plots += [png_figure(_shares_plot(r), f"{r['feature']}: training vs logged") for r in ranked]
    return table(head, cells) + figures(plots)


def _performance(result: dict) -> str:
    performance = result.get("performance")
    if not performance:
        return none("No feedback labels in the window: send them to POST /v1/feedback to measure performance.")
    metrics = [[name, value] for name, value in performance.items() if isinstance(value, (int, float))]
    html = table(["metric (on labelled rows)", "value"], metrics)
    for column, report in (result.get("fairness") or {}).items():
        groups = report.get("by_group", {})
        names = sorted({m for g in groups.values() for m in g})
        html += f"<h3>Per group of {escape(column)}</h3>" + table(
            ["group", *names], [[group, *[values.get(m) for m in names]] for group, values in groups.items()])
        html += kv([(k, v) for k, v in report.get("measures", {}).items()])
    return html


def _latency(result: dict) -> str:
    latency = result.get("latency")
    if not latency:
        return none("No request latencies were logged in the window.")
    return kv([(name.replace("_ms", " (ms)").replace("_", " "), value) for name, value in latency.items()])


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    pyplot().close(fig)
    return buffer.getvalue()


def _psi_plot(rows: list[dict], threshold: float | None) -> bytes:
    plt = pyplot()
    shown = [r for r in rows if r.get("psi") is not None]
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.32 * max(len(shown), 1)), dpi=110)
    colours = [PALETTE[3] if r.get("drifted") else PALETTE[0] for r in shown]
    ax.barh([str(r["feature"]) for r in shown], [r["psi"] for r in shown], color=colours)
    if threshold:
        ax.axvline(threshold, color=PALETTE[7], linestyle="--", linewidth=1)
    ax.invert_yaxis()
    ax.set_xlabel("population stability index")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _shares_plot(row: dict) -> bytes:
    plt = pyplot()
    shares = row["shares"]
    labels = [str(label) for label in shares["labels"]]
    x = range(len(labels))
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=110)
    width = 0.4
    ax.bar([i - width / 2 for i in x], shares["reference"], width, color=PALETTE[0], label="training")
    ax.bar([i + width / 2 for i in x], shares["current"], width, color=PALETTE[1], label="logged")
    ax.set_xticks(list(x), labels, rotation=45 if len(labels) > 5 else 0, ha="right" if len(labels) > 5 else "center",
                  fontsize=8)
    ax.set_ylabel("share of rows")
    ax.set_title(f"{row['feature']} (PSI {row.get('psi', 0):.3f})")
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
