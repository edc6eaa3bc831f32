"""Plots of a tuning study (PNG), drawn by Optuna's matplotlib visualizations.

optimization_history.png (every trial's score and the best so far), param_importances.png (how
much each searched path mattered, by fANOVA), parallel_coordinates.png (each trial as a line across
the parameters), and for several objectives pareto_front.png.  A plot that needs more complete
trials than the study has is skipped and said so.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def tuning_plots(study: Any, directory: str | Path, names: list[str]) -> tuple[list[Path], list[str]]:
    """Write the study's plots into ``directory``; return the files and notes on skipped plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis
    from optuna.trial import TrialState

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    first = {"target": (lambda t: t.values[0]), "target_name": names[0]} if len(names) > 1 else {"target_name": names[0]}
    plots = {"optimization_history": (1, lambda: vis.plot_optimization_history(study, **first)),
             "param_importances": (2, lambda: vis.plot_param_importances(study, **first)),
             "parallel_coordinates": (2, lambda: vis.plot_parallel_coordinate(study, **first))}
    if len(names) > 1:
        plots["pareto_front"] = (1, lambda: vis.plot_pareto_front(study, target_names=names[:3],
                                                                   targets=None if len(names) <= 3 else (lambda t: t.values[:3])))
    written, notes = [], []
    for name, (needed, draw) in plots.items():
        if complete < needed:
            notes.append(f"{name}.png skipped: it needs {needed} complete trials, the study has {complete}")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. one distinct value per parameter
            notes.append(f"{name}.png skipped: {exc}")
            continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        path = directory / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written, notes
