"""The report's sections, one builder each: ``builder(run, model) -> HTML``.

``run`` is the run directory as :func:`honing.report.run_files.load_run` read it; ``model`` is the run
whose model the section describes (for a tuning run, its ``best/`` refit).  A section with nothing to
show says so in one line.  The Errors and Fairness sections live in :mod:`honing.report.errors_section`
and :mod:`honing.report.fairness_section`; :mod:`honing.report.html` puts them all on the page.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from honing.report.card import (
    cv_facts,
    feature_names,
    findings,
    headline,
    lower_is_better,
    model_card,
    source_phrase,
)
from honing.report.markup import (
    Raw,
    badge,
    esc,
    figure,
    figures,
    kv,
    none,
    para,
    severity_badges,
    table,
)
from honing.report.run_files import RunFiles, dig, fmt, fmt_p, pct, span
from honing.report.transfer_section import transfer_table

#: Plots the evaluation section shows, in order, with their captions; other unknown plots follow them.
EVALUATION_PLOTS = {"confusion_matrix": "Confusion matrix (test)", "roc": "ROC curve (test)",
                    "pr": "Precision-recall curve (test)", "reliability": "Reliability (test)",
                    "threshold": "Decision threshold (validation)", "residuals": "Residuals (test)"}
OTHER_SECTION_PLOTS = {"importance", "partial_dependence", "learning_curve"}


# ---------------------------------------------------------------------------------------------- shared parts


def card_html(run: RunFiles) -> str:
    """The model card as HTML: a heading per part, paragraphs and bulleted lists."""
    out = []
    for heading, paragraphs in model_card(run):
        out.append(f"<h3>{escape(heading)}</h3>")
        for item in paragraphs:
            out.append("<ul>" + "".join(f"<li>{escape(x)}</li>" for x in item) + "</ul>"
                       if isinstance(item, list) else para(item))
    return "".join(out)


def headline_html(metrics: dict) -> str:
    """The headline: the selection metric on test with its bootstrap interval, vs the baseline."""
    head = headline(metrics)
    if head is None:
        return none("No test scores in metrics.json.")
    text = f'Test {escape(head.metric)}: <strong class="value">{esc(head.value)}</strong>'
    if head.interval:
        level = pct(head.confidence) if head.confidence else ""
        resamples = f", {head.resamples} bootstrap resamples" if head.resamples else ""
        text += (f' <span class="note">({escape(level)} interval <span class="interval">{escape(span(head.interval))}'
                 f"</span>{escape(resamples)})</span>")
    if head.baseline is not None:
        text += f' vs baseline <span class="baseline">{esc(head.baseline)}</span>'
    direction = "" if head.greater_is_better else ' <span class="note">(lower is better)</span>'
    return f'<p class="headline" data-metric="{escape(head.metric)}">{text}{direction}</p>'


def summary_pairs(model: RunFiles) -> list[tuple[str, Any]]:
    """The summary's facts: task, data, rows, model, cross-validation, threshold, audit, training."""
    m = model.metrics
    rows = m.get("rows") if isinstance(m.get("rows"), dict) else {}
    head, cv = headline(m), None
    if head is not None and (facts := cv_facts(m, head.metric)):
        cv = (f"{head.metric} {fmt(facts['mean'])} ± {fmt(facts['std'])} over {facts['folds']} "
              f"(baseline {fmt(facts['baseline_mean'])} ± {fmt(facts['baseline_std'])}); "
              f"paired t-test vs baseline p {fmt_p(facts['p'])}")
    decision = m.get("decision") if isinstance(m.get("decision"), dict) else {}
    threshold = (f"{fmt(decision['threshold'])} on P({decision.get('positive_class')}), chosen for "
                 f"{decision.get('method')} on validation" if "threshold" in decision else None)
    groups = dig(model.manifest, "decision", "groups", "thresholds")
    if isinstance(groups, dict):
        threshold = "per group of '{}': {}".format(dig(model.manifest, "decision", "groups", "column"),
                                                   ", ".join(f"{k} {fmt(v)}" for k, v in groups.items()))
    found = findings(model.audit)
    audit = Raw(severity_badges({s: sum(f.get("severity") == s for f in found) for s in ("error", "warning", "info")})
                ) if model.audit is not None else "not run (no audit.json)"
    diagnostics = m.get("diagnostics")
    health = None if diagnostics is None else (f"{len(diagnostics)} finding(s), see Training" if diagnostics
                                               else "no problem found")
    features = feature_names(model)
    return [("Task", m.get("task")), ("Target", m.get("target")),
            ("Data", f"{source_phrase(model.recipe)}" + (f", {len(features)} input columns" if features else "")),
            ("Rows", " · ".join(f"{k} {fmt(v)}" for k, v in rows.items()) or None),
            ("Model", m.get("model")), ("Selected by", f"{m['selection_metric']} on the validation split"
                                        if m.get("selection_metric") and rows.get("validation") else None),
            ("Cross-validation", cv), ("Decision threshold", threshold), ("Data audit", audit),
            ("Training health", health)]


def link_best(run: RunFiles) -> str:
    """A relative link to best/report.html (plain text when it is not there)."""
    if (run.path / "best" / "report.html").is_file():
        return '<a href="best/report.html">best/report.html</a>'
    return "<code>best/report.html</code>"


# ---------------------------------------------------------------------------------------------- sections


def summary_section(run: RunFiles, model: RunFiles) -> str:
    """Headline and facts: metrics.json, recipe.yaml, audit.json, the manifest (and tune.json)."""
    intro = _tuning_intro(run) if run.tune is not None else ""
    if not model.metrics:
        return intro + none("No metrics.json: this run has no scores to summarise.")
    return intro + headline_html(model.metrics) + kv(summary_pairs(model))


def _tuning_intro(run: RunFiles) -> str:
    """What the study did and found, from tune.json."""
    tune = run.tune or {}
    trials = tune.get("trials") if isinstance(tune.get("trials"), dict) else {}
    total = sum(v for v in trials.values() if isinstance(v, int))
    best = tune.get("best") if isinstance(tune.get("best"), dict) else {}
    scores = ", ".join(f"{k} {fmt(v)}" for k, v in (best.get("scores") or {}).items())
    won = best.get("trial") is not None
    who = f"trial {best['trial']}" if won else "the recipe as written (no trial beat it)"
    text = (f"Study '{tune.get('study')}' ran {total} trials ({', '.join(f'{v} {k}' for k, v in trials.items())}; "
            f"{fmt(tune.get('epochs'))} epochs in all), optimising {', '.join(map(str, tune.get('objectives') or []))}"
            f" on the validation split. Best: {who}" + (f", {scores}" if scores else ""))
    if won and tune.get("default_score") is not None:
        text += f" (the recipe as written: {fmt(tune['default_score'])})"
    where = ("The sections below describe the best recipe trained again in <code>best/</code> "
             f"(its own report: {link_best(run)})." if run.best is not None else
             "The best recipe's run (<code>best/</code>) is missing, so the model sections below are empty.")
    return para(text + ".") + f"<p>{where}</p>"


def model_card_section(run: RunFiles, model: RunFiles) -> str:
    """The model card (honing.report.card) from metrics.json, audit.json, recipe.yaml and the manifest."""
    if not model.metrics:
        return none("No metrics.json: there is nothing to write a model card from.")
    return card_html(model)


def audit_section(run: RunFiles, model: RunFiles) -> str:
    """audit.json's findings by severity, its notes and gate."""
    if model.audit is None:
        return none("No audit.json: the data audit was turned off (audit.enabled) or the run predates it.")
    rows = findings(model.audit)
    if not rows:
        return none("The data audit found nothing to report.")
    body = [[badge(f.get("severity")), f.get("check"), f.get("message")] for f in rows]
    notes = [n for n in dig(model.audit, "notes", default=[]) or [] if n]
    gate = dig(model.audit, "fail_on", default=[]) or []
    counts = {s: sum(1 for f in rows if f.get("severity") == s) for s in ("error", "warning", "info")}
    return (f"<p>{severity_badges(counts)}</p>" + table(["severity", "check", "finding"], body)
            + "".join(para(str(n)) for n in notes)
            + (para(f"Gate (audit.fail_on): {gate}") if gate else ""))


def evaluation_section(run: RunFiles, model: RunFiles) -> str:
    """metrics.json's scores, threshold, calibration and cross-validation, and the evaluation plots."""
    m = model.metrics
    plots = [figure(model, name, caption) for name, caption in EVALUATION_PLOTS.items()]
    plots += [figure(model, name, name.replace("_", " ")) for name in model.plots
              if name not in EVALUATION_PLOTS and name not in OTHER_SECTION_PLOTS]
    body = _metrics_table(m) + transfer_table(m) + _decision(m) + _calibration(m) + _cv_table(m) + figures(plots)
    return body or none("No evaluation results: metrics.json and the plots are missing.")


def _metrics_table(m: dict) -> str:
    """Every metric on validation and test, with the test interval and the baseline."""
    test = m.get("test") if isinstance(m.get("test"), dict) else {}
    val = m.get("validation") if isinstance(m.get("validation"), dict) else {}
    names = [k for k, v in {**val, **test}.items() if v is None or isinstance(v, int | float)]
    if not names:
        return ""
    level = pct(dig(m, "intervals", "confidence"))
    rows = []
    for name in names:
        ci = span(dig(m, "intervals", "test", name))
        label = name + (" (lower is better)" if lower_is_better(name) else "") + (
            " (selection metric)" if name == m.get("selection_metric") else "")
        rows.append([label, *([val.get(name)] if val else []), test.get(name), ci, dig(m, "baseline", "test", name)])
    head = ["metric", *(["validation"] if val else []), "test", f"test interval ({level})", "baseline (test)"]
    return "<h3>Metrics</h3>" + table(head, rows)


def _decision(m: dict) -> str:
    """The decision threshold metrics.json records, with its scores on validation."""
    d = m.get("decision")
    if not isinstance(d, dict) or "threshold" not in d:
        return ""
    text = f"Chosen on the validation split for {d.get('method')}; positive class '{d.get('positive_class')}'."
    return ("<h3>Decision threshold</h3>" + para(text)
            + kv([(k, d[k]) for k in ("threshold", "precision", "recall", "f1", "tpr", "fpr") if k in d]))


def _calibration(m: dict) -> str:
    """Calibration before/after (metrics.json calibration), else the test reliability summary."""
    cal = m.get("calibration") if isinstance(m.get("calibration"), dict) else {}
    names = {"ece": "expected calibration error (ECE)", "mce": "maximum calibration error (MCE)",
             "brier": "Brier score"}
    if isinstance(cal.get("before"), dict) and isinstance(cal.get("after"), dict):
        rows = [[label, cal["before"].get(k), cal["after"].get(k)] for k, label in names.items()]
        return ("<h3>Calibration</h3>" + para(f"{cal.get('method')} calibration, measured on the test split.")
                + table(["measure", "before", "after"], rows))
    rel = dig(m, "errors", "reliability")
    if isinstance(rel, dict) and any(k in rel for k in names):
        return "<h3>Calibration</h3>" + kv([(label, rel.get(k)) for k, label in names.items()])
    return ""


def _cv_table(m: dict) -> str:
    """Cross-validation mean ± std per metric for the model and the baseline, and their comparison."""
    cv = m.get("cv") if isinstance(m.get("cv"), dict) else {}
    summary = dig(cv, "model", "summary")
    if not isinstance(summary, dict):
        return ""
    base = dig(cv, "baseline", "summary", default={}) or {}

    def spread(s: Any) -> str | None:
        return f"{fmt(s.get('mean'))} ± {fmt(s.get('std'))}" if isinstance(s, dict) else None

    rows = [[k, spread(v), spread(base.get(k))] for k, v in summary.items()]
    comp = cv.get("comparison") if isinstance(cv.get("comparison"), dict) else {}
    repeats = cv.get("repeats") if isinstance(cv.get("repeats"), int) and cv["repeats"] > 1 else None
    text = f"{cv.get('folds')} folds" + (f" × {repeats} repeats" if repeats else "") + (
        f", grouped by '{cv['group']}'" if cv.get("group") else "") + "; mean ± standard deviation over the folds."
    if comp:
        winner = {"a": "the model", "b": "the baseline"}.get(str(comp.get("better")), "neither")
        text += (f" Paired comparison on {comp.get('metric')}: mean difference {fmt(comp.get('mean_difference'))}, "
                 f"t-test p {fmt_p(comp.get('p_value'))}, Wilcoxon p {fmt_p(comp.get('wilcoxon_p_value'))}; "
                 f"better: {winner}.")
    return "<h3>Cross-validation</h3>" + para(text) + table(["metric", "model", "baseline"], rows)


def importance_section(run: RunFiles, model: RunFiles) -> str:
    """Permutation importance (metrics.json explain) and the importance / partial dependence plots."""
    rows = [i for i in dig(model.metrics, "explain", "importance", default=[]) or [] if isinstance(i, dict)]
    plots = figures([figure(model, "importance", "Permutation importance (test)"),
                     figure(model, "partial_dependence", "Partial dependence of the top columns")])
    if not rows and not plots:
        return none("No explanations: evaluate.explain was off, or the run predates them.")
    metric = model.metrics.get("selection_metric") or "the metric"
    body = [[i.get("feature"), i.get("mean"), i.get("std"), span([i.get("low"), i.get("high")])]
            for i in rows[:15]]
    more = f" The top 15 of {len(rows)} columns." if len(rows) > 15 else ""
    return (para(f"How much {metric} drops on the test split when one column is shuffled (permutation importance, "
                 f"over repeated shuffles).{more}") + table(["column", "importance", "std", "interval"], body) + plots)


def training_section(run: RunFiles, model: RunFiles) -> str:
    """history.csv, the learning curve and metrics.json diagnostics; the model-selection leaderboard."""
    out, history = [], model.history
    if history:
        best = min((h for h in history if isinstance(h.get("val_loss"), int | float)),
                   key=lambda h: h["val_loss"], default={})
        seconds = sum(h.get("seconds") or 0 for h in history if isinstance(h.get("seconds"), int | float))
        out.append(figures([figure(model, "learning_curve", "Learning curve")]) + kv([
            ("epochs", len(history)), ("best epoch (validation loss)", best.get("epoch")),
            ("best validation loss", best.get("val_loss")), ("final training loss", history[-1].get("loss")),
            ("training time (s)", float(seconds) if seconds else None)]))
    diagnostics = [d for d in model.metrics.get("diagnostics") or [] if isinstance(d, dict)]
    if diagnostics:
        rows = [[badge(d.get("severity")), d.get("rule"), d.get("message"), d.get("cause"), d.get("remedy")]
                for d in diagnostics]
        out.append("<h3>Training health</h3>"
                   + table(["severity", "rule", "what was seen", "likely cause", "remedy"], rows))
    elif "diagnostics" in model.metrics:
        out.append("<h3>Training health</h3>" + para("The training-health checks found no problem."))
    if not out:
        out.append(none(f"A {model.metrics.get('model') or 'model'} model is not trained in epochs, so there is no "
                        "learning curve and no training-health check."))
    board = [r for r in model.metrics.get("leaderboard") or model.leaderboard if isinstance(r, dict)]
    if board:
        out.append("<h3>Model selection (validation)</h3>" + table(list(board[0]), [list(r.values()) for r in board]))
    return "".join(out)


def tuning_section(run: RunFiles, model: RunFiles) -> str:
    """tune.json, the trial leaderboard (top 10) and the Optuna plots of a tuning run."""
    tune = run.tune or {}
    best = tune.get("best") if isinstance(tune.get("best"), dict) else {}

    def pairs(d: Any) -> str | None:
        return "; ".join(f"{k} = {fmt(v)}" for k, v in d.items()) or None if isinstance(d, dict) else None

    facts = kv([("study", tune.get("study")), ("objectives", ", ".join(map(str, tune.get("objectives") or []))),
                ("trials", pairs(tune.get("trials"))), ("epochs in all", tune.get("epochs")),
                ("best", f"trial {best['trial']}" if best.get("trial") is not None else "the recipe as written"),
                ("best validation scores", pairs(best.get("scores"))), ("best values", pairs(best.get("values"))),
                ("fixed for the refit", pairs(best.get("refit"))), ("recipe as written", tune.get("default_score")),
                ("refit on test", pairs({k: v for k, v in (tune.get("test") or {}).items()
                                         if isinstance(v, int | float)}))])
    board = run.leaderboard[:10]
    rows = table(list(board[0]), [list(r.values()) for r in board]) if board else none("No leaderboard.csv.")
    order = ["optimization_history", "param_importances", "parallel_coordinates", "pareto_front"]
    names = [n for n in order if n in run.plots] + [n for n in run.plots if n not in order]
    return (facts + f"<h3>Leaderboard (top {len(board)} of {len(run.leaderboard)} trials)</h3>" + rows
            + figures([figure(run, n, n.replace("_", " ")) for n in names])
            + f"<p>The best recipe's own report: {link_best(run)}.</p>")


def recipe_section(run: RunFiles, model: RunFiles) -> str:
    """recipe.yaml as resolved (and best.yaml for a tuning run)."""
    if run.tune is not None:
        best = f"<pre><code>{escape(run.best_text)}</code></pre>" if run.best_text else none("No best.yaml.")
        study = (f"<details><summary>recipe.yaml: the study as written, with its search space</summary><pre><code>"
                 f"{escape(run.recipe_text)}</code></pre></details>") if run.recipe_text else none("No recipe.yaml.")
        return "<h3>best.yaml: the best recipe</h3>" + best + "<h3>The study</h3>" + study
    if not run.recipe_text:
        return none("No recipe.yaml in this run directory.")
    return para("The recipe as resolved for this run (defaults filled in):") + (
        f"<pre><code>{escape(run.recipe_text)}</code></pre>")


def environment_section(run: RunFiles, model: RunFiles) -> str:
    """The bundle manifest: versions, data fingerprint, creation time and the checksum check."""
    man = model.manifest
    if not man:
        return none("No bundle/manifest.json: versions, data fingerprint and checksums were not recorded.")
    libs = man.get("library_versions") if isinstance(man.get("library_versions"), dict) else {}
    fingerprint = man.get("data_fingerprint")
    facts = kv([("honing", man.get("honing_version")), ("Python", libs.get("python")), ("created", man.get("created")),
                ("model", f"{man.get('model_type')} ({man.get('model_format')})" if man.get("model_type") else None),
                ("data fingerprint", Raw(f"<code>{escape(str(fingerprint))}</code>") if fingerprint else None),
                ("bundle checksums", _checksums(model.path / "bundle", man))])
    rows = [[k, v] for k, v in libs.items() if k != "python"]
    return facts + ("<h3>Libraries</h3>" + table(["library", "version"], rows) if rows else "")


def _checksums(bundle: Path, manifest: dict) -> Raw:
    """Whether the bundle's files still match the manifest's sha256 (honing.bundle.verify_bundle)."""
    try:
        from honing.bundle import verify_bundle

        problems = verify_bundle(bundle)
    except Exception as exc:  # noqa: BLE001 - a report still shows when the check cannot run
        return Raw(badge("warning", "not checked") + " " + escape(f"{type(exc).__name__}: {exc}"))
    if problems:
        return Raw(badge("error", "failed") + " " + escape("; ".join(problems)))
    files = len(manifest.get("files") or {})
    return Raw(badge("ok", "verified") + " " + escape(f"the manifest and its {files} files match their sha256"))
