"""The report's Errors section: the most-confused classes, residuals, worst test rows and weak slices.

Everything comes from ``metrics.json`` ``errors`` (honing.evaluation.errors); a run without it gets
one line saying so.
"""

from __future__ import annotations

from honing.report.markup import badge, kv, none, para, table
from honing.report.run_files import RunFiles, dig, fmt, pct


def errors_section(run: RunFiles, model: RunFiles) -> str:
    """metrics.json errors: confused classes, residuals, worst rows and slices."""
    e = model.metrics.get("errors") if isinstance(model.metrics.get("errors"), dict) else {}
    body = _confused(e) + _residuals(e) + _worst_rows(model, e) + _slices(model, e)
    return body or none("No error analysis in metrics.json.")


def _confused(e: dict) -> str:
    """The most-confused class pairs on test."""
    pairs = dig(e, "confusion", "most_confused")
    if not isinstance(pairs, list):
        return ""
    rows = [[p.get("true"), p.get("predicted"), p.get("count"), pct(p.get("rate"))] for p in pairs[:10]
            if isinstance(p, dict)]
    return "<h3>Most-confused classes (test)</h3>" + (
        table(["true class", "predicted as", "rows", "share of the true class"], rows) if rows
        else none("No test row was misclassified."))


def _residuals(e: dict) -> str:
    """The regression residuals' summary on test."""
    s = dig(e, "residuals", "summary")
    if not isinstance(s, dict):
        return ""
    return "<h3>Residuals (test)</h3>" + kv([("mean (true − predicted)", s.get("mean")), ("standard deviation",
                                             s.get("std")), ("mean absolute", s.get("mae")),
                                            ("largest absolute", s.get("max_abs"))])


def _worst_rows(model: RunFiles, e: dict) -> str:
    """The test rows with the largest loss, with the most important columns."""
    rows = [r for r in e.get("worst_rows") or [] if isinstance(r, dict)]
    if not rows:
        return ""
    ranked = [str(i.get("feature")) for i in dig(model.metrics, "explain", "importance", default=[]) or []
              if isinstance(i, dict)]
    present = list(rows[0].get("features") or {})
    columns = ([c for c in ranked if c in present] + [c for c in present if c not in ranked])[:6]
    loss = "squared error" if model.metrics.get("task") == "regression" else "log loss"
    body = [[r.get("row"), r.get("true"), r.get("predicted"), r.get("loss"),
             *[dig(r, "features", c) for c in columns]] for r in rows]
    more = f" Showing {len(columns)} of {len(present)} columns, the most important first." if len(present) > 6 else ""
    return ("<h3>Worst test rows</h3>" + para(f"The test rows with the largest {loss}.{more}")
            + table(["row", "true", "predicted", loss, *columns], body))


def _slices(model: RunFiles, e: dict) -> str:
    """The flagged slices (else the weakest five), from metrics.json errors.slices."""
    slices = [s for s in e.get("slices") or [] if isinstance(s, dict)]
    if not slices:
        return ""
    metric = next((k for k in slices[0] if k not in ("column", "slice", "rows", "gap", "flagged")), "score")
    flagged = [s for s in slices if s.get("flagged")]
    gap = dig(model.recipe, "evaluate", "slice_gap")
    shown = flagged or sorted(slices, key=lambda s: -(s.get("gap") or 0))[:5]
    text = (f"{len(flagged)} slice(s) score more than {fmt(gap)} worse than overall on {metric}." if flagged else
            f"No slice scores more than {fmt(gap)} worse than overall on {metric}; the five weakest:")
    body = [[s.get("column"), s.get("slice"), s.get("rows"), s.get(metric), s.get("gap"),
             badge("warning", "flagged") if s.get("flagged") else "no"] for s in shown[:20]]
    return ("<h3>Slices (test)</h3>" + para(text)
            + table(["column", "slice", "rows", metric, "gap", "flagged"], body))
