"""Benchmark: epochs (and seconds) that honing tune's search strategies spend to find a near-best MLP.

On one fixed task (honing's ``mlp`` on the bundled ``builtin:digits``, 10 classes, validation
accuracy on 30% of the rows so that 0.5 point is about 3 images, at most 60 epochs with early
stopping after 8 epochs without improvement) it runs ``honing.api.tune`` with the same search
space (``--space``, see SPACES) and the same trial budget (``--trials``, default 30) under:

- (a) grid: ``sampler: grid, pruner: none`` (the whole grid when it is no larger than the budget);
- (b) random search without pruning: ``sampler: random, pruner: none``;
- (c) TPE + hyperband: ``sampler: tpe, pruner: hyperband``;
- (d) TPE + successive halving: ``sampler: tpe, pruner: halving`` (an extra row).

For each seed (``recipe.seed``: it fixes the split, the weights' initialization and the sampler)
the target is the best validation accuracy that *any* strategy's complete trial reached, minus 0.5
points (0.005).  Each strategy's trials are then walked in trial-number order, adding up the epochs
that every trial trained (pruned and failed ones cost what they trained) and its wall time, until
the first complete trial at or above the target: that sum is the strategy's cost to the target.  A
strategy that never gets there is charged its whole study and counted as not reached.  The
recipe-as-written score honing computes before the trials and the final model it trains after them
are not part of any cost.

The table gives the means over seeds and the ratios against random search (b), measured in the
same run; the issue's target is (c) ≤ 1/3 of (b)'s epochs.  Every study trains with one torch
thread (``train.threads: 1``); ``--jobs 2`` (the default) runs two studies at a time, one per core
of a 2-core machine.  Epochs do not depend on the machine; seconds do.

Run: ``python benchmarks/tuning_efficiency.py [--seeds N] [--trials N] [--space narrow|wide] [--jobs N]
[--quick]``
(about 8-9 minutes on 2 cores with the defaults, 10 seeds; ``--seeds 3``: under 3 minutes;
``--quick``: a half-minute smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

STRATEGIES = {  # label: (sampler, pruner)
    "(a) grid": ("grid", "none"),
    "(b) random": ("random", "none"),
    "(c) TPE + hyperband": ("tpe", "hyperband"),
    "(d) TPE + halving": ("tpe", "halving"),
}
BASELINE = "(b) random"
TARGET = "(c) TPE + hyperband"
#: "Within 0.5 points" of the best validation accuracy.
TOLERANCE = 0.005
#: The space every strategy searches.  narrow (the default): 5 x 3 x 2 = 30 configurations, so that
#: the grid is the whole grid within the trial budget.  wide: honing's default MLP space
#: (honing.tuning.defaults) cut into steps, 6 x 3 x 3 x 6 x 3 = 972 configurations, so that
#: near-best configurations are rarer; the grid then runs a random part of its grid.
SPACES = {
    "narrow": {
        "train.optimizer.lr": {"choice": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]},
        "model.params.hidden": {"choice": [[32], [128], [256, 256]]},
        "train.batch_size": {"choice": [32, 128]},
    },
    "wide": {
        "train.optimizer.lr": {"choice": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]},
        "train.optimizer.weight_decay": {"choice": [1e-6, 1e-4, 1e-2]},
        "model.params.dropout": {"float": [0.0, 0.5], "step": 0.25},
        "model.params.hidden": {"choice": [[16], [64], [256], [64, 64], [256, 256], [256, 256, 256]]},
        "train.batch_size": {"choice": [64, 128, 256]},
    },
}
DATA = {"source": "builtin:digits", "split": {"validation": 0.3, "test": 0.15}}
EPOCHS, PATIENCE = 60, 8
QUICK = {"seeds": 1, "trials": 8, "epochs": 12, "patience": 4}


def recipe(seed: int, sampler: str, pruner: str, trials: int, epochs: int, patience: int,
           space: str = "narrow") -> dict:
    return {
        "name": f"tuning-efficiency-{sampler}-{pruner}",
        "seed": seed,
        "data": DATA,
        "model": {"type": "mlp"},
        "train": {"epochs": epochs, "threads": 1, "early_stopping": {"patience": patience}},
        "tune": {"trials": trials, "sampler": sampler, "pruner": pruner, "space": SPACES[space], "refit": False},
    }


def run_study(job: dict) -> dict:
    """One study in a scratch directory: its trials in trial-number order."""
    from honing.api import tune
    from honing.progress import SILENT

    sampler, pruner = STRATEGIES[job["strategy"]]
    raw = recipe(job["seed"], sampler, pruner, job["trials"], job["epochs"], job["patience"], job["space"])
    with tempfile.TemporaryDirectory(prefix="tuning-efficiency-") as scratch:
        start = time.perf_counter()
        result = tune(raw, out=Path(scratch) / "run", progress=SILENT)
        wall = time.perf_counter() - start
    metric = result.metric
    trials = []
    for row in sorted(result.leaderboard, key=lambda r: r["trial"]):
        score = row.get(metric, math.nan)
        trials.append({
            "trial": row["trial"], "state": row["state"], "epochs": int(row.get("epochs") or 0),
            "seconds": float(row["seconds"]) if math.isfinite(row.get("seconds", math.nan)) else 0.0,
            "score": float(score) if row["state"] == "complete" and math.isfinite(score) else None,
            "config": json.dumps({path: row.get(path) for path in SPACES[job["space"]]}, sort_keys=True),
        })
    return {**job, "metric": metric, "trials": trials, "wall": wall}


def to_target(trials: list[dict], target: float) -> dict:
    """Epochs and seconds spent until the first complete trial scoring ≥ ``target``."""
    epochs = seconds = 0.0
    for count, trial in enumerate(trials, 1):
        epochs += trial["epochs"]
        seconds += trial["seconds"]
        if trial["score"] is not None and trial["score"] >= target - 1e-9:
            return {"epochs": epochs, "seconds": seconds, "reached": True, "trials": count}
    return {"epochs": epochs, "seconds": seconds, "reached": False, "trials": len(trials)}


def consistency(studies: list[dict]) -> list[str]:
    """The same configuration with the same seed must score the same in every study (complete
    trials only); a difference would make "the best found by any" depend on luck."""
    seen: dict[tuple, set] = {}
    for study in studies:
        for trial in study["trials"]:
            if trial["score"] is not None:
                seen.setdefault((study["seed"], trial["config"]), set()).add(round(trial["score"], 6))
    return [f"seed {seed}: {config} scored {sorted(scores)}" for (seed, config), scores in seen.items()
            if len(scores) > 1]


def analyse(studies: list[dict]) -> dict:
    by_seed: dict[int, dict[str, dict]] = {}
    for study in studies:
        by_seed.setdefault(study["seed"], {})[study["strategy"]] = study
    per_seed = {}
    for seed, runs in sorted(by_seed.items()):
        best = max(t["score"] for s in runs.values() for t in s["trials"] if t["score"] is not None)
        cells = {}
        for label, study in runs.items():
            scores = [t["score"] for t in study["trials"] if t["score"] is not None]
            cells[label] = {
                **to_target(study["trials"], best - TOLERANCE),
                "best": max(scores) if scores else math.nan,
                "total_epochs": sum(t["epochs"] for t in study["trials"]),
                "total_seconds": sum(t["seconds"] for t in study["trials"]),
                "pruned": sum(t["state"] == "pruned" for t in study["trials"]),
                "failed": sum(t["state"] == "failed" for t in study["trials"]),
                "n": len(study["trials"]),
                "wall": study["wall"],
            }
        per_seed[seed] = {"best": best, "cells": cells}
    return per_seed


def summary(per_seed: dict, labels: list[str]) -> dict[str, dict]:
    out = {}
    for label in labels:
        cells = [s["cells"][label] for s in per_seed.values() if label in s["cells"]]
        out[label] = {key: statistics.mean(c[key] for c in cells)
                      for key in ("epochs", "seconds", "best", "total_epochs", "total_seconds", "pruned", "n")}
        out[label]["reached"] = sum(c["reached"] for c in cells)
        out[label]["seeds"] = len(cells)
    return out


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}×" if base else "n/a"


def _floor(row: dict) -> str:
    """"≥" when a seed never reached the target: its whole study is counted, a lower bound."""
    return "≥ " if row["reached"] < row["seeds"] else ""


def summary_table(rows: dict[str, dict]) -> str:
    base = rows[BASELINE]
    lines = [("| strategy | epochs to target | vs random | seconds to target | vs random | reached "
              "| best val. accuracy | whole study: trials (pruned) / epochs / s |"),
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for label, r in rows.items():
        lines.append(
            f"| {label} | {_floor(r)}{r['epochs']:.0f} | {_ratio(r['epochs'], base['epochs'])} "
            f"| {_floor(r)}{r['seconds']:.1f} "
            f"| {_ratio(r['seconds'], base['seconds'])} | {r['reached']}/{r['seeds']} | {r['best']:.4f} "
            f"| {r['n']:.0f} ({r['pruned']:.1f}) / {r['total_epochs']:.0f} / {r['total_seconds']:.0f} |")
    return "\n".join(lines)


def seed_table(per_seed: dict, labels: list[str]) -> str:
    lines = ["| seed | target (best − 0.5 pt) | " + " | ".join(labels) + " |",
             "|---:|---:|" + "---|" * len(labels)]
    for seed, s in per_seed.items():
        cells = []
        for label in labels:
            c = s["cells"].get(label)
            if c is None:
                cells.append("")
                continue
            where = f"trial {c['trials'] - 1}" if c["reached"] else "not reached"
            cells.append(f"{c['epochs']:.0f} ep, {c['seconds']:.1f} s ({where}; best {c['best']:.4f})")
        lines.append(f"| {seed} | {s['best'] - TOLERANCE:.4f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    import optuna
    import torch

    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
            f"torch {torch.__version__}, optuna {optuna.__version__}; load average {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds (recipe.seed = 1..N; default 10)")
    parser.add_argument("--trials", type=int, default=30, help="trial budget of every study (default 30)")
    parser.add_argument("--jobs", type=int, default=2, help="studies run at a time, one process each (default 2)")
    parser.add_argument("--strategies", default="abcd", help="which rows to run, e.g. abc (default abcd)")
    parser.add_argument("--space", choices=list(SPACES), default="narrow",
                        help="narrow: 30 configurations (default); wide: honing's default MLP space in steps")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 8 trials, 12 epochs")
    parser.add_argument("--json", type=Path, help="also write every trial of every study to this file")
    args = parser.parse_args()
    seeds, trials, epochs, patience = args.seeds, args.trials, EPOCHS, PATIENCE
    if args.quick:
        seeds, trials, epochs, patience = QUICK["seeds"], QUICK["trials"], QUICK["epochs"], QUICK["patience"]
    labels = [label for label in STRATEGIES if label[1] in args.strategies]
    if BASELINE not in labels:
        parser.error("--strategies must include b (random search, the baseline of the ratios)")
    jobs = [{"seed": seed, "strategy": label, "trials": trials, "epochs": epochs, "patience": patience,
             "space": args.space}
            for seed in range(1, seeds + 1) for label in labels]

    print(f"machine: {machine()}")
    print(f"task: mlp on {DATA['source']} (validation {DATA['split']['validation']:.0%}), epochs ≤ {epochs}, "
          f"early stopping patience {patience}; {args.space} space {json.dumps(SPACES[args.space])}")
    print(f"{len(jobs)} studies ({seeds} seeds × {len(labels)} strategies, {trials} trials each), "
          f"{args.jobs} at a time, 1 torch thread each\n")
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            studies = list(pool.map(run_study, jobs))
    else:
        studies = [run_study(job) for job in jobs]
    elapsed = time.perf_counter() - start
    if args.json:
        args.json.write_text(json.dumps(studies, indent=1))

    per_seed = analyse(studies)
    rows = summary(per_seed, labels)
    print("Per seed: epochs and trial wall time to the target (the trial that reached it; the study's best)\n")
    print(seed_table(per_seed, labels))
    print(f"\nMeans over {seeds} seed(s); target = best validation accuracy of any strategy − 0.5 point; ratios "
          "against random search in this run (lower is better)\n")
    print(summary_table(rows))
    if TARGET in rows:
        ratio = rows[TARGET]["epochs"] / rows[BASELINE]["epochs"]
        verdict = "met" if ratio <= 1 / 3 else "missed"
        print(f"\n(c)/(b) epochs ratio = {ratio:.2f} (target ≤ 0.33: {verdict})")
    for problem in consistency(studies):
        print(f"note: the same configuration scored differently: {problem}")
    print(f"\nwhole run: {elapsed:.0f} s wall; load average now {machine().rsplit('load average ', 1)[1]}")


if __name__ == "__main__":
    main()
