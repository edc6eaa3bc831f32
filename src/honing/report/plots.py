"""Plots for run directories, drawn with matplotlib's file-only backend in one consistent style."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Okabe-Ito colours: distinguishable with every common colour-vision deficiency.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (imported lazily: it is slow to load)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: str | Path) -> Path:
    """Lay out, write and close ``fig``; the parent folders are created."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    pyplot().close(fig)
    return path


def learning_curve(history: list[dict], path: str | Path, title: str = "learning curve") -> Path:
    """Training and validation loss per epoch (and the learning rate when it changes) as a PNG."""
    plt = pyplot()
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(epochs, [row["loss"] for row in history], color=PALETTE[0], label="training loss")
    if any("val_loss" in row for row in history):
        ax.plot(epochs, [row.get("val_loss", float("nan")) for row in history], color=PALETTE[1],
                label="validation loss")
        best = min(history, key=lambda row: row.get("val_loss", float("inf")))
        ax.axvline(best["epoch"], color=PALETTE[2], linestyle=":", label=f"best epoch ({best['epoch']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    lrs = [row.get("lr") for row in history]
    if all(lr is not None for lr in lrs) and len(set(lrs)) > 1:
        twin = ax.twinx()
        twin.plot(epochs, lrs, color=PALETTE[4], linestyle="--", alpha=0.7, label="learning rate")
        twin.set_ylabel("learning rate")
        twin.legend(loc="center right", frameon=False)
    ax.legend(loc="upper right", frameon=False)
    return save(fig, path)
