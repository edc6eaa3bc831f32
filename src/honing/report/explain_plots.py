"""Plots of model explanations (:mod:`honing.evaluation.explain`), in the style of :mod:`.plots`.

``importance_plot`` draws permutation importances as horizontal bars with their 95% interval;
``partial_dependence_plot`` draws one small panel per feature (a line for a numeric feature,
points on stems for a categorical one).  Both write a PNG with matplotlib's file-only backend.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from honing.report.plots import PALETTE, pyplot, save

_TOP_FEATURES = 15
_PANEL_COLUMNS = 3
_LABEL_CHARS = 14



def _number(value: Any) -> float:
    """A float, NaN for None."""
    return math.nan if value is None else float(value)


def _gap(upper: float, lower: float) -> float:
    """``upper - lower`` as an error-bar length: never negative, 0 where unknown."""
    gap = upper - lower
    return 0.0 if math.isnan(gap) else max(gap, 0.0)


def _short(label: Any) -> str:
    """A tick label cut to a readable length."""
    text = str(label)
    return text if len(text) <= _LABEL_CHARS else text[:_LABEL_CHARS - 1] + "…"



def importance_plot(importances: list[dict], path: str | Path,
                    title: str = "permutation importance") -> Path:
    """The top 15 features by mean importance as horizontal bars, most important on top, each
    with its ``low``–``high`` interval as an error bar."""
    plt = pyplot()
    rows = sorted(importances, key=lambda r: -math.inf if r.get("mean") is None else r["mean"],
                  reverse=True)[:_TOP_FEATURES][::-1]
    fig, ax = plt.subplots(figsize=(7, max(4.2, 0.3 * len(rows) + 1.2)), dpi=110)
    means = [_number(r.get("mean")) for r in rows]
    lows = [_number(r.get("low", r.get("mean"))) for r in rows]
    highs = [_number(r.get("high", r.get("mean"))) for r in rows]
    errors = [[_gap(m, lo) for m, lo in zip(means, lows)], [_gap(hi, m) for m, hi in zip(means, highs)]]
    positions = list(range(len(rows)))
    ax.barh(positions, [0.0 if math.isnan(m) else m for m in means], color=PALETTE[0], alpha=0.85,
            xerr=errors, error_kw={"ecolor": PALETTE[7], "capsize": 3, "elinewidth": 1})
    ax.set_yticks(positions, [_short(r["feature"]) for r in rows])
    ax.axvline(0.0, color=PALETTE[7], linewidth=0.8)
    ax.set_xlabel("importance (how much worse the metric gets when shuffled)")
    ax.set_ylabel("feature")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    if not rows:
        ax.text(0.5, 0.5, "no features", ha="center", va="center", transform=ax.transAxes)
    return save(fig, path)


def _pd_panel(ax: Any, pd_: dict, ylabel: str | None) -> None:
    """One feature's partial dependence: a line (numeric) or points on stems (categorical)."""
    values = pd_.get("values", [])
    average = [_number(v) for v in pd_.get("average", [])]
    if pd_.get("kind") == "categorical":
        positions = list(range(len(values)))
        ax.vlines(positions, min(average, default=0.0), average, color=PALETTE[0], alpha=0.4)
        ax.plot(positions, average, "o", color=PALETTE[0])
        ax.set_xticks(positions, [_short(v) for v in values], rotation=45, ha="right", fontsize=7)
    else:
        ax.plot([_number(v) for v in values], average, color=PALETTE[0], marker=".")
    ax.set_title(_short(pd_.get("feature", "")), fontsize=9)
    ax.set_xlabel(_short(pd_.get("feature", "")), fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def partial_dependence_plot(pds: list[dict], path: str | Path, title: str = "partial dependence",
                            ylabel: str = "average prediction") -> Path:
    """One small panel per feature's partial dependence (up to three a row, on one shared y scale
    so the panels compare)."""
    plt = pyplot()
    count = max(len(pds), 1)
    cols = min(_PANEL_COLUMNS, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7, max(4.2, 2.6 * rows)), dpi=110, squeeze=False,
                             sharey=True)
    for i, ax in enumerate(axes.flat):
        if i < len(pds):
            _pd_panel(ax, pds[i], ylabel if i % cols == 0 else None)
        else:
            ax.set_axis_off()
    if not pds:
        axes.flat[0].text(0.5, 0.5, "no features", ha="center", va="center",
                          transform=axes.flat[0].transAxes)
    fig.suptitle(title)
    return save(fig, path)
