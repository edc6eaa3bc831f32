"""The model card of a run, and the facts about it a reader looks at first.

:func:`headline` picks the number a reader looks at first; :func:`model_card` writes plain sentences
about the model (intended use, performance, limitations, ethical considerations, what it was not
evaluated on) from the run's metrics and audit, as :func:`honing.report.run_files.load_run` read them.
Everything here returns plain text: :mod:`honing.report.sections` escapes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from honing.report.run_files import RunFiles, dig, fmt, fmt_p, is_number, pct, span

Card = list[tuple[str, list[str | list[str]]]]  # (heading, paragraphs; a list is a bulleted list)


# ---------------------------------------------------------------------------------------------- facts


def lower_is_better(metric: str) -> bool:
    """Whether a smaller ``metric`` is better (honing.evaluation.metrics, imported when first needed)."""
    from honing.evaluation.metrics import LOWER_IS_BETTER

    return metric in LOWER_IS_BETTER


@dataclass
class Headline:
    """The selection metric on test, its bootstrap interval, and the dummy baseline's score."""

    metric: str
    value: float | None
    interval: tuple[float, float] | None
    confidence: float | None
    resamples: int | None
    baseline: float | None
    greater_is_better: bool


def headline(metrics: dict) -> Headline | None:
    """The headline number of a run (None when metrics.json has no test scores)."""
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    metric = metrics.get("selection_metric")
    if metric not in test:
        metric = next((k for k, v in test.items() if is_number(v)), None)
    if metric is None:
        return None
    interval = dig(metrics, "intervals", "test", metric)
    ok = isinstance(interval, list) and len(interval) == 2 and all(is_number(v) for v in interval)
    return Headline(metric, test.get(metric), tuple(interval) if ok else None,
                    dig(metrics, "intervals", "confidence"), dig(metrics, "intervals", "resamples"),
                    dig(metrics, "baseline", "test", metric), not lower_is_better(metric))


def source_phrase(recipe: dict) -> str:
    """The data source in words: "the built-in 'iris' dataset" or "the file data.csv"."""
    source = str(dig(recipe, "data", "source", default="") or "")
    if dig(recipe, "data", "env", default=None):  # an agent's environment (data.task: reinforcement)
        return f"the gymnasium environment {dig(recipe, 'data', 'env')}"
    if source.startswith("builtin:"):
        return f"the built-in '{source.split(':', 1)[1]}' dataset"
    return f"the data in {source}" if source else "data whose source is not recorded"


def feature_names(run: RunFiles) -> list[str]:
    """The model's input columns (schema.json, else the bundle manifest), the target left out."""
    schema = run.schema or dig(run.manifest, "features", default={})
    target = schema.get("target") if isinstance(schema, dict) else None
    columns = dig(schema, "columns", default=[])
    return [str(c.get("name")) for c in columns if isinstance(c, dict) and c.get("name") != target]


def cv_facts(metrics: dict, metric: str) -> dict | None:
    """Cross-validation of ``metric``: folds, repeats, model and baseline mean ± std, p-values."""
    cv = metrics.get("cv")
    model = dig(cv, "model", "summary", metric)
    if not isinstance(model, dict):
        return None
    repeats = dig(cv, "repeats")
    folds = f"{dig(cv, 'folds')} folds" + (f" × {repeats} repeats" if is_number(repeats) and repeats > 1 else "")
    return {"folds": folds, "mean": model.get("mean"),
            "std": model.get("std"), "baseline_mean": dig(cv, "baseline", "summary", metric, "mean"),
            "baseline_std": dig(cv, "baseline", "summary", metric, "std"),
            "p": dig(cv, "comparison", "p_value"), "wilcoxon_p": dig(cv, "comparison", "wilcoxon_p_value"),
            "better": dig(cv, "comparison", "better")}


def findings(audit: dict | None, *severities: str) -> list[dict]:
    """The audit's findings of the given severities (all when none given), most severe first."""
    order = {"error": 0, "warning": 1, "info": 2}
    rows = [f for f in dig(audit, "findings", default=[]) if isinstance(f, dict)]
    rows = [f for f in rows if not severities or f.get("severity") in severities]
    return sorted(rows, key=lambda f: order.get(str(f.get("severity")), 3))


# ---------------------------------------------------------------------------------------------- the card


def model_card(run: RunFiles) -> Card:
    """The model card of a train run: each heading with its paragraphs, as plain text."""
    return [("Model details", _details(run)), ("Intended use", _intended_use(run)),
            ("Performance", _performance(run.metrics)), ("Limitations", _limitations(run)),
            ("Ethical considerations", _ethics(run)), ("What it was not evaluated on", _not_evaluated(run))]


def _details(run: RunFiles) -> list[str | list[str]]:
    """What the model is, what it predicts from what, and how it was chosen."""
    metrics, features = run.metrics, feature_names(run)
    model, task = metrics.get("model") or dig(run.recipe, "model", "type") or "model", metrics.get("task")
    classes = metrics.get("classes") if isinstance(metrics.get("classes"), list) else []
    what = f"one of {len(classes)} classes ({_names(classes)})" if classes else "a number"
    inputs = f"{len(features)} input columns" if features else "its input columns"
    text = (f"This {task or ''} model ({model}) predicts '{metrics.get('target', '?')}' as {what} from {inputs} "
            f"of {source_phrase(run.recipe)}.").replace("  ", " ")
    if task == "reinforcement":  # an agent: actions from observations
        text = f"This agent ({model}) picks an action from each observation ({inputs}) of {source_phrase(run.recipe)}."
    version, created = run.manifest.get("honing_version"), run.manifest.get("created")
    if version or created:
        text += f" It was trained with honing {version or '(version not recorded)'}" + (
            f" on {str(created)[:10]}." if created else ".")
    rivals = [str(r.get("model")) for r in dig(metrics, "leaderboard", default=[])
              if isinstance(r, dict) and r.get("model") not in (None, "baseline")]
    if len(rivals) > 1:
        text += (f" It scored best on the validation split by {metrics.get('selection_metric')} among "
                 f"{_names(rivals)}.")
    return [text]


def _intended_use(run: RunFiles) -> list[str | list[str]]:
    """Which rows it is for, its decision rule, and the human oversight people-data calls for."""
    out = [(f"It is meant to score new rows that come from the same population and the same collection process "
            f"as {source_phrase(run.recipe)}, with the same columns in the same units and encodings.")]
    decision = run.metrics.get("decision") or {}
    if is_number(decision.get("threshold")):
        out.append(f"It predicts '{decision.get('positive_class')}' when that class's probability reaches "
                   f"{fmt(decision['threshold'])}, a threshold chosen on the validation split for "
                   f"{decision.get('method')}; another balance of false positives and false negatives needs "
                   "another threshold.")
    groups = dig(run.manifest, "decision", "groups")
    if isinstance(groups, dict) and isinstance(groups.get("thresholds"), dict):
        shown = ", ".join(f"{k}: {fmt(v)}" for k, v in groups["thresholds"].items())
        out.append(f"It applies a different decision threshold for each group of '{groups.get('column')}' "
                   f"({shown}) to narrow the gap between groups, so two rows that differ only in that column can "
                   "receive different predictions.")
    if dig(run.audit, "sensitive"):
        out.append("Sensitive columns were declared, so its rows describe people: its output should inform a decision "
                   "that a person reviews, not replace it, and the people affected should have a way to contest it.")
    return out


def _performance(metrics: dict) -> list[str | list[str]]:
    """The headline with its interval against the baseline, cross-validation and calibration."""
    head = headline(metrics)
    if head is None:
        return ["metrics.json has no test scores, so the model's performance was not measured on held-out rows."]
    n = dig(metrics, "rows", "test")
    text = f"On {n if n is not None else 'the'} held-out test rows its {head.metric} is {fmt(head.value)}"
    if head.interval:
        low, high = head.interval
        text += f" ({pct(head.confidence) if head.confidence else ''} bootstrap interval {span(head.interval)})"
    text += f", against {fmt(head.baseline)} for the dummy baseline." if head.baseline is not None else "."
    out: list[str | list[str]] = [text.replace("( ", "(")]
    if head.interval and is_number(head.baseline):
        low, high = head.interval
        beaten = low > head.baseline if head.greater_is_better else high < head.baseline
        out.append(f"The interval is {fmt(high - low, 2)} wide: differences between models smaller than that are not "
                   "established by this test set." if beaten else
                   "The interval reaches the baseline's score: the test set does not show the model to be better "
                   "than a trivial predictor.")
    cv = cv_facts(metrics, head.metric)
    if cv:
        out.append(f"Across {cv['folds']} of cross-validation its {head.metric} "
                   f"was {fmt(cv['mean'])} ± {fmt(cv['std'])} (baseline {fmt(cv['baseline_mean'])}); a paired "
                   f"t-test against the baseline gives p {fmt_p(cv['p'])}.")
    ece = dig(metrics, "errors", "reliability", "ece")
    if is_number(ece):
        method = dig(metrics, "calibration", "method")
        after = f" after {method} calibration" if method else ""
        out.append(f"Its predicted probabilities have an expected calibration error of {fmt(ece, 2)} on test{after}"
                   + (" : read them as scores rather than frequencies." if ece > 0.05 else ".").lstrip())
    return out


def _limitations(run: RunFiles) -> list[str | list[str]]:
    """Audit problems, weak slices, confusions, training warnings and a small test set."""
    metrics, items = run.metrics, []
    sensitive = [str(c) for c in dig(run.audit, "sensitive", default=[]) or []]  # those go under ethics
    items += _audit_items([f for f in findings(run.audit, "error", "warning") if f.get("column") not in sensitive])
    slices = dig(metrics, "errors", "slices", default=[])
    for s in [s for s in slices if isinstance(s, dict) and s.get("flagged")][:3] if isinstance(slices, list) else []:
        metric = next((k for k in s if k not in ("column", "slice", "rows", "gap", "flagged")), "score")
        items.append(f"It is weaker where '{s.get('column')}' is {s.get('slice')} ({s.get('rows')} test rows: "
                     f"{metric} {fmt(s.get(metric))}, {fmt(s.get('gap'), 2)} worse than overall).")
    pair = dig(metrics, "errors", "confusion", "most_confused", 0)
    if isinstance(pair, dict) and pair.get("count"):
        items.append(f"It most often mistakes '{pair.get('true')}' for '{pair.get('predicted')}' "
                     f"({pair.get('count')} test rows, {pct(pair.get('rate'))} of '{pair.get('true')}').")
    items += [f"Training: {d.get('message')}" for d in dig(metrics, "diagnostics", default=[])
              if isinstance(d, dict) and d.get("severity") == "warning"]
    n = dig(metrics, "rows", "test")
    if is_number(n) and n < 200:
        items.append(f"The test split has {n} rows, so every test score above carries the uncertainty its "
                     "interval shows.")
    if run.audit is None:
        items.append("No data audit was run, so duplicates, leakage between splits, conflicting labels and "
                     "missing values were not checked.")
    return [items] if items else ["Neither the data audit nor the error analysis flagged a problem."]


def _audit_items(problems: list[dict], most: int = 6) -> list[str]:
    """One line per audit check that warned: its message, or the columns it flagged when several."""
    by_check: dict[str, list[dict]] = {}
    for finding in problems:
        by_check.setdefault(str(finding.get("check")), []).append(finding)
    items = []
    for check, group in by_check.items():
        if len(group) == 1:
            items.append(f"Data audit ({group[0].get('severity')}): {group[0].get('message')}")
        else:
            columns = [f.get("column") for f in group if f.get("column") is not None]
            where = (f" in {len(columns)} columns: {_names(columns)}." if len(columns) == len(group)
                     else ": " + "; ".join(str(f.get("message")) for f in group))
            items.append(f"Data audit ({group[0].get('severity')}): {check.replace('_', ' ')}{where}")
    return items[:most] + ([f"… and {len(items) - most} more audit checks (see the data audit)."]
                           if len(items) > most else [])


def _ethics(run: RunFiles) -> list[str | list[str]]:
    """Group differences in the data and on test, the mitigation's trade-off (or their absence)."""
    sensitive = dig(run.audit, "sensitive", default=[]) or []
    if not sensitive:
        return [("No sensitive columns were declared (audit.sensitive), so the model was not checked for different "
                 "outcomes or error rates between groups of people. If the rows describe people, declare columns "
                 "such as sex or age and train again to measure this.")]
    out: list[str | list[str]] = []
    for column in sensitive:
        out += _group_sentences(run.audit, str(column))
    mitigation = dig(run.audit, "fairness", "mitigation")
    if isinstance(mitigation, dict) and mitigation.get("method"):
        out.append(_mitigation_sentence(mitigation, run.metrics.get("selection_metric")))
    if dig(run.recipe, "audit", "exclude_sensitive"):
        out.append("The sensitive columns were left out of the model's inputs; other columns can still stand in "
                   "for them, which is why the groups are still compared above.")
    return out


def _group_sentences(audit: dict | None, column: str) -> list[str | list[str]]:
    """Label rates by group in the data and the fairness measures on test for one column."""
    out: list[str | list[str]] = []
    groups = dig(audit, "bias", column, "groups", default={})
    rates = [f"'{k}' is {pct(g.get('share'))} of the rows with a positive label rate of {pct(g.get('label_rate'))}"
             for k, g in groups.items() if isinstance(g, dict) and is_number(g.get("label_rate"))][:6]
    if rates:
        out.append(f"In the data, by '{column}': {'; '.join(rates)}. A model that learns from these labels tends to "
                   "reproduce such differences, and a small group gives it little to learn from.")
    report = dig(audit, "fairness", "test", column, default={})
    measures = report.get("measures") if isinstance(report, dict) else None
    if isinstance(measures, dict) and measures:
        shown = ", ".join(f"{k.replace('_', ' ')} {fmt(v, 3)}" for k, v in measures.items() if is_number(v))
        flagged = [f for f in findings(audit, "error", "warning") if f.get("column") == column
                   and f.get("check") in measures]
        verdict = (f"{len(flagged)} of these cross the audit's limits (see the fairness section)." if flagged
                   else "None of these crosses the audit's limits.")
        out.append(f"On the test rows, the groups of '{column}' compare as: {shown}. {verdict}")
    small = dig(report, "small_groups", default={})
    if small:
        out.append(f"Some groups of '{column}' have few test rows ({_names(list(small))}): their numbers are "
                   "unreliable.")
    return out or [f"'{column}' was declared sensitive, but no per-group results were recorded for it."]


def _mitigation_sentence(mitigation: dict, metric: str | None) -> str:
    """What the mitigation changed in fairness and in the selection metric."""
    column = mitigation.get("column")
    before, after = dig(mitigation, "before", "measures", column, default={}), dig(
        mitigation, "after", "measures", column, default={})
    key = "demographic_parity_difference" if "demographic_parity_difference" in before else next(iter(before), None)
    text = f"Mitigation ({mitigation.get('method')} on '{column}')"
    if key:
        text += f" moved {key.replace('_', ' ')} from {fmt(before.get(key), 3)} to {fmt(after.get(key), 3)}"
    metric = metric if metric in dig(mitigation, "before", "metrics", default={}) else "accuracy"
    b, a = dig(mitigation, "before", "metrics", metric), dig(mitigation, "after", "metrics", metric)
    if is_number(b) and is_number(a):
        text += f" while {metric} went from {fmt(b)} to {fmt(a)}"
    return text + "; which trade-off is acceptable is a decision for the people responsible for the model."


def _not_evaluated(run: RunFiles) -> list[str | list[str]]:
    """The conditions the evaluation did not cover."""
    split, items = dig(run.recipe, "data", "split", default={}) or {}, []
    if split.get("time"):
        items.append(f"Rows later than the test rows: the split follows '{split['time']}', but the future can "
                     "still differ from the latest rows seen.")
    else:
        items.append("Data collected later, elsewhere or by another process: the test rows are a held-out part of "
                     f"{source_phrase(run.recipe)}" + (f", split so that no '{split['group']}' appears in two "
                                                       "splits." if split.get("group") else "."))
    if not run.metrics.get("cv"):
        items.append("How much the scores vary from one split of the data to another: no cross-validation was run.")
    if not dig(run.audit, "sensitive"):
        items.append("Differences between groups of people: no sensitive columns were declared.")
    if run.metrics.get("task") == "regression":
        items.append("The uncertainty of a single prediction: the model gives point estimates, and the test "
                     f"errors above are averages (largest absolute error "
                     f"{fmt(dig(run.metrics, 'errors', 'residuals', 'summary', 'max_abs'))}).")
    items.append("Values outside the ranges and categories seen in training, and inputs that were deliberately "
                 "manipulated.")
    return [items]


def _names(values: list, most: int = 6, quote: bool = True) -> str:
    """'a', 'b' and 'c' (at most ``most``, then "and N more")."""
    shown = [f"'{v}'" if quote else str(v) for v in values[:most]]
    more = f" and {len(values) - most} more" if len(values) > most else ""
    if len(shown) <= 1:
        return "".join(shown) + more
    return ", ".join(shown[:-1]) + (" and " if not more else ", ") + shown[-1] + more
