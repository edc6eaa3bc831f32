"""The report's Fairness section: per sensitive column, the data's bias, per-group test results and
the fairness measures with the audit's verdict, then the mitigation before and after.

Everything comes from ``audit.json`` (honing.audit); a run without sensitive columns gets one line
saying so.
"""

from __future__ import annotations

from html import escape

from honing.report.card import findings
from honing.report.markup import badge, none, para, table
from honing.report.run_files import RunFiles, dig

GROUP_HEADERS = {"count": "rows", "ci": "imbalance (CI)", "dpl": "label-rate gap (DPL)",
                 "rest_label_rate": "label rate in the rest"}


def fairness_section(run: RunFiles, model: RunFiles) -> str:
    """audit.json: per sensitive column, data bias, per-group test results and measures; the mitigation."""
    audit = model.audit or {}
    sensitive = [str(c) for c in audit.get("sensitive") or []]
    if not sensitive:
        return none("There are no sensitive columns (audit.sensitive) in this run, so fairness was not assessed.")
    out = [_fairness_column(audit, column) for column in sensitive]
    mitigation = dig(audit, "fairness", "mitigation")
    if isinstance(mitigation, dict) and mitigation:
        out.append(_mitigation(mitigation))
    return "".join(out)


def _dict_table(first: str, groups: dict, extra: dict | None = None) -> str:
    """Rows of ``{name: {key: value}}`` as a table with one column per key."""
    items = [(k, v) for k, v in {**groups, **(extra or {})}.items() if isinstance(v, dict)]
    keys = list(dict.fromkeys(key for _, v in items for key, x in v.items() if not isinstance(x, dict | list)))
    head = [first, *[GROUP_HEADERS.get(k, k.replace("_", " ")) for k in keys]]
    return table(head, [[name, *[v.get(k) for k in keys]] for name, v in items])


def _fairness_column(audit: dict, column: str) -> str:
    """One sensitive column: label rates in the data, results per group on test, and the measures."""
    out = [f"<h3>Sensitive column '{escape(column)}'</h3>"]
    groups = dig(audit, "bias", column, "groups")
    if isinstance(groups, dict) and groups:
        out.append(para("In the data (before training): rows, share and positive label rate per group.")
                   + _dict_table("group", groups))
    report = dig(audit, "fairness", "test", column, default={}) or {}
    if isinstance(report.get("by_group"), dict):
        out.append(para("On the test split, per group and overall:")
                   + _dict_table("group", report["by_group"], {"overall": report.get("overall")}))
    measures = report.get("measures") if isinstance(report.get("measures"), dict) else {}
    flagged = {f.get("check"): f for f in findings(audit) if f.get("column") == column}
    rows = [[k.replace("_", " "), v,
             badge(flagged[k].get("severity")) if k in flagged else badge("ok", "within limits")]
            for k, v in measures.items()]
    small = report.get("small_groups") if isinstance(report.get("small_groups"), dict) else {}
    out.append(table(["measure", "value", "audit"], rows) or none(
        "No fairness measures: " + ("every group has too few test rows." if small else "none were recorded.")))
    if small:
        shown = ", ".join(f"{k} ({v} rows)" for k, v in small.items())
        out.append(para(f"Groups with too few test rows to trust their numbers: {shown}."))
    return "".join(out) if len(out) > 1 else "".join(out) + none("No per-group results were recorded.")


def _mitigation(mitigation: dict) -> str:
    """The mitigation's scores and measures before and after, side by side."""
    column = mitigation.get("column")
    before, after = mitigation.get("before") or {}, mitigation.get("after") or {}
    rows = [[k, v, dig(after, "metrics", k)] for k, v in (before.get("metrics") or {}).items()]
    rows += [[k.replace("_", " "), v, dig(after, "measures", column, k)]
             for k, v in (dig(before, "measures", column, default={}) or {}).items()]
    return (f"<h3>Mitigation: {escape(str(mitigation.get('method')))} on '{escape(str(column))}'</h3>"
            + para("Test scores and fairness measures before and after the mitigation, side by side.")
            + table(["score or measure", "before", "after"], rows))
