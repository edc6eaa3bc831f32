"""Plots of the evaluation stage: confusion matrix, ROC and precision-recall curves, threshold
trade-off, reliability diagram and regression residuals, drawn from the JSON-ready dicts of :mod:`honing.evaluation` in the style of
:mod:`honing.report.plots` (file-only backend, Okabe-Ito colours)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from honing.report.plots import PALETTE, pyplot, save


def confusion_matrix_plot(analysis: dict, path: str | Path, title: str = "confusion matrix") -> Path:
    """The confusion matrix of :func:`~honing.evaluation.errors.confusion_analysis`: cells coloured by
    the row-normalised rate (recall on the diagonal), annotated with counts.  The figure grows with
    the number of classes; beyond 30 classes the counts are left out (the colours still read)."""
    plt = pyplot()
    labels, counts, rates = analysis["labels"], analysis["counts"], analysis["normalized"]
    k = len(labels)
    side = min(max(4.2, 0.42 * k + 1.5), 16.0)
    fig, ax = plt.subplots(figsize=(max(7.0, side + 1.6), side), dpi=110)
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if k <= 30:
        size = max(5.0, 10.0 - 0.2 * k)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i][j]), ha="center", va="center", fontsize=size,
                        color="white" if rates[i][j] > 0.5 else "black")
    ticks = list(range(k))
    ax.set_xticks(ticks, labels=labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center",
                  fontsize=max(6.0, 10.0 - 0.15 * k))
    ax.set_yticks(ticks, labels=labels, fontsize=max(6.0, 10.0 - 0.15 * k))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return save(fig, path)


def threshold_plot(curve: dict, chosen: dict | None, path: str | Path, title: str = "decision threshold") -> Path:
    """Precision, recall and F1 against the decision threshold (:func:`~honing.evaluation.threshold.
    threshold_curve`), with the chosen threshold marked when ``chosen`` is given."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, color in zip(("precision", "recall", "f1"), PALETTE, strict=False):
        ax.plot(curve["threshold"], curve[name], color=color, label=name)
    if chosen is not None:
        label = f"chosen ({chosen.get('method', '?')}): {chosen['threshold']:.3f}"
        if chosen.get("f1") is not None:
            label += f", F1 {chosen['f1']:.3f}"
        ax.axvline(chosen["threshold"], color=PALETTE[3], linestyle=":", label=label)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("threshold (predict positive when P(positive) ≥ threshold)")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", frameon=False)
    return save(fig, path)


def reliability_plot(rel: dict, path: str | Path, title: str = "reliability") -> Path:
    """The reliability diagram of :func:`~honing.evaluation.calibration.reliability`: each bin's
    accuracy against its mean confidence with the perfect-calibration diagonal, ECE in the legend,
    and the number of rows per bin below."""
    plt = pyplot()
    fig, (ax, below) = plt.subplots(2, 1, figsize=(7, 5.2), dpi=110, sharex=True,
                                    gridspec_kw={"height_ratios": [3, 1]})
    filled = [b for b in rel["bins"] if b["count"]]
    ax.plot([0, 1], [0, 1], color=PALETTE[7], linestyle="--", linewidth=1, label="perfectly calibrated")
    ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], color=PALETTE[0],
            marker="o", label=f"model (ECE {rel['ece']:.3f}, MCE {rel['mce']:.3f})")
    for b in filled:
        ax.plot([b["confidence"]] * 2, [b["confidence"], b["accuracy"]], color=PALETTE[3], alpha=0.6)
    top_label = rel.get("mode") == "top_label"
    ax.set_ylabel("accuracy" if top_label else "fraction positive")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", frameon=False)
    below.bar([(b["low"] + b["high"]) / 2 for b in rel["bins"]], [b["count"] for b in rel["bins"]],
              width=[(b["high"] - b["low"]) * 0.9 for b in rel["bins"]], color=PALETTE[5])
    below.set_xlabel("confidence (top-label probability)" if top_label else "predicted P(positive)")
    below.set_ylabel("rows")
    below.grid(alpha=0.3)
    return save(fig, path)


def residual_plot(residuals: dict, path: str | Path, title: str = "residuals") -> Path:
    """Residuals (true − predicted) against the predicted value, from
    :func:`~honing.evaluation.errors.residual_analysis`, with the zero line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    points = residuals.get("points") or []
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=10, alpha=0.5, color=PALETTE[0],
               edgecolors="none", label=f"rows ({len(points)} shown)")
    ax.axhline(0.0, color=PALETTE[7], linewidth=1, linestyle="--", label="no error")
    summary = residuals.get("summary") or {}
    if summary.get("mae") is not None:
        ax.axhline(summary["mean"], color=PALETTE[3], linewidth=1, linestyle=":",
                   label=f"mean residual {summary['mean']:.3g} (MAE {summary['mae']:.3g})")
    ax.set_xlabel("predicted value")
    ax.set_ylabel("residual (true − predicted)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", frameon=False)
    return save(fig, path)


def _one_vs_rest(y_true: Any, proba: Any, classes: list, most: int = 8) -> list[tuple[str, Any, Any]]:
    """(label, is this class, its probability) for the positive class of a binary task, or for
    each of the ``most`` most frequent classes (one-vs-rest); a class that is every row or none
    has no curve and is left out."""
    import numpy as np

    y_true, proba = np.asarray(y_true), np.asarray(proba, dtype=float)
    if proba.shape[1] == 2:
        shown = [1]
    else:
        shown = sorted(np.argsort(-np.bincount(y_true, minlength=proba.shape[1]), kind="stable")[:most])
    curves = [(str(classes[k]), y_true == k, proba[:, k]) for k in shown]
    return [(label, hits, scores) for label, hits, scores in curves if 0 < hits.sum() < len(hits)]


def roc_plot(y_true: Any, proba: Any, classes: list, path: str | Path, title: str = "ROC curve") -> Path:
    """ROC curve of the positive class (binary) or of each class against the rest, with its AUC."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, (label, hits, scores) in enumerate(_one_vs_rest(y_true, proba, classes)):
        fpr, tpr, _ = roc_curve(hits, scores)
        ax.plot(fpr, tpr, color=PALETTE[i % len(PALETTE)], label=f"{label} (AUC {roc_auc_score(hits, scores):.3f})")
    ax.plot([0, 1], [0, 1], color=PALETTE[7], linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", frameon=False)
    return save(fig, path)


def pr_plot(y_true: Any, proba: Any, classes: list, path: str | Path, title: str = "precision-recall curve") -> Path:
    """Precision against recall of the positive class (binary) or of each class against the rest,
    with its average precision and the no-skill level (the class's share)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, (label, hits, scores) in enumerate(_one_vs_rest(y_true, proba, classes)):
        precision, recall, _ = precision_recall_curve(hits, scores)
        color = PALETTE[i % len(PALETTE)]
        ax.step(recall, precision, where="post", color=color,
                label=f"{label} (AP {average_precision_score(hits, scores):.3f}, no skill {hits.mean():.2f})")
        ax.axhline(hits.mean(), color=color, linestyle=":", linewidth=1)
    if not ax.lines:  # every row is of one class: a class against the rest has no curve
        ax.text(0.5, 0.5, "no curve: these rows hold a single class", ha="center", va="center",
                transform=ax.transAxes, color=PALETTE[7])
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(loc="lower left", frameon=False)
    return save(fig, path)
