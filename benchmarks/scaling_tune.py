"""Benchmark: tuning trials per hour with 1, 2 and 4 workers on one study.

Each row runs one study of ``honing tune``'s trial loop (``honing.tuning.search.run``, as the
``honing tune`` command runs it, without the final training and report) for a fixed wall time
(``--seconds``, default 30) or a fixed number of trials (``--trials``), with ``tune.workers: N``:
this process plus N-1 spawned worker processes, each pinned to its share of the CPUs and training
with one torch thread (``OMP_NUM_THREADS=1``).  Every trial trains the same small MLP on the bundled
``builtin:breast_cancer`` for a fixed 150 epochs (about 1 s on one core; random sampler, no pruning,
no early stopping), so every trial costs about the same and trials/hour measures the workers, not
the search.  The study lives in a journal file in a temporary folder (the default storage), or in
PostgreSQL with ``--postgres URL`` (the storage of workers on several machines; each row makes its
own study there).

Columns: trials finished (complete; none fails or is pruned), wall seconds of the trial loop (the
N-1 worker processes start inside it: a few seconds each to import torch, which a short run
feels), trials/hour over that wall time, trials/hour over the trials' own window (first trial start
to last trial end, from the study: the steady rate, start-up left out), and both rates against
1 worker.  On a machine with C cores the ideal ratio is min(N, C); trials running when the time is
up finish, so a row may run a little past ``--seconds``.

Each row runs in a fresh Python process (the environment it needs, one thread per worker, is set
before torch loads), so importing this module and calling :func:`tuning_rows` has no side effects.

Run: ``python benchmarks/scaling_tune.py [--workers 1 2 4] [--seconds 30] [--trials N]
[--postgres URL]`` (about 2 minutes with the defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

RECIPE = {
    "name": "scaling-tune",
    "data": {"source": "builtin:breast_cancer"},
    "model": {"type": "mlp", "params": {"hidden": [16]}},
    "train": {"epochs": 150, "early_stopping": None, "batch_size": 64},
    "tune": {"sampler": "random", "pruner": "none", "refit": False,
             "space": {"train.optimizer.lr": {"float": [1e-3, 1e-2], "log": True}}},
    "tracking": False,
}
ROOT = Path(__file__).resolve().parent.parent


def tuning_rows(workers: tuple[int, ...] = (1, 2, 4), trials: int | None = None,
                seconds_budget: float | None = 30.0, postgres: str | None = None) -> list[dict]:
    """One row per worker count: ``workers``, ``trials`` (finished), ``wall_seconds``,
    ``trials_per_hour``, ``steady_per_hour`` (over the trials' own window), ``ratio`` and
    ``steady_ratio`` (against the first row's rates, 1 worker by default), ``storage``.

    The study stops at ``trials`` finished trials or after ``seconds_budget`` seconds, whichever
    comes first (at least one must be given)."""
    if trials is None and seconds_budget is None:
        raise ValueError("tuning_rows: give trials, seconds_budget or both")
    rows = [_run_row(n, trials, seconds_budget, postgres) for n in workers]
    for row in rows:
        row["ratio"] = row["trials_per_hour"] / rows[0]["trials_per_hour"] if rows[0]["trials_per_hour"] else None
        base = rows[0]["steady_per_hour"]
        row["steady_ratio"] = row["steady_per_hour"] / base if base else None
    return rows


def _run_row(workers: int, trials: int | None, seconds: float | None, postgres: str | None) -> dict:
    """Run :func:`_one` in a fresh interpreter with one thread per worker; its JSON row."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HONING_TRACKING": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    args = [sys.executable, str(Path(__file__).resolve()), "--one", str(workers)]
    if trials is not None:
        args += ["--trials", str(trials)]
    if seconds is not None:
        args += ["--seconds", str(seconds)]
    if postgres:
        args += ["--postgres", postgres]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scaling_tune: the {workers}-worker run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _one(workers: int, trials: int | None, seconds: float | None, postgres: str | None) -> dict:
    """One study with ``workers`` workers, in this process and N-1 spawned ones."""
    from optuna.trial import TrialState

    from honing.progress import SILENT
    from honing.recipe import load_recipe
    from honing.train_flow import load_data
    from honing.tuning import search as searching

    tune = {**RECIPE["tune"], "workers": workers, "trials": trials, "timeout": seconds}
    if postgres:
        tune.update(storage=postgres, study=f"scaling-{uuid.uuid4().hex[:8]}")
    recipe = load_recipe({**RECIPE, "tune": tune})
    dataset = load_data(recipe, SILENT)
    with tempfile.TemporaryDirectory() as tmp:
        search = searching.prepare(recipe, dataset, Path(tmp))
        study = searching.open_study(search, create=True)
        start = time.perf_counter()
        searching.run(search, study)
        wall = time.perf_counter() - start
        finished = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    window = (max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)).total_seconds() \
        if finished else 0.0
    return {"workers": workers, "trials": len(finished), "wall_seconds": round(wall, 1),
            "trials_per_hour": round(len(finished) / wall * 3600) if wall else 0,
            "steady_per_hour": round(len(finished) / window * 3600) if window else 0,
            "workers_seen": len({t.user_attrs.get("worker") for t in finished}),
            "storage": "postgresql" if postgres else "journal", "cpus": len(os.sched_getaffinity(0))}


def table(rows: list[dict]) -> str:
    lines = ["| workers | trials finished | wall s | trials/hour | ratio vs 1 | steady trials/hour | steady ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        steady = f"{r['steady_ratio']:.2f}" if r["steady_ratio"] is not None else "-"
        lines.append(f"| {r['workers']} | {r['trials']} | {r['wall_seconds']:.1f} | {r['trials_per_hour']} | {ratio} "
                     f"| {r['steady_per_hour']} | {steady} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trials", type=int, default=None, help="stop each study at this many finished trials")
    parser.add_argument("--seconds", type=float, default=None, help="stop starting trials after this long (default 30)")
    parser.add_argument("--postgres", metavar="URL", default=None, help="keep the studies in this PostgreSQL database")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a row, in a fresh process
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None or args.trials is not None else 30.0
    if args.one is not None:
        print(json.dumps(_one(args.one, args.trials, seconds, args.postgres)))
        return
    rows = tuning_rows(tuple(args.workers), args.trials, seconds, args.postgres)
    cpus = rows[0]["cpus"]
    print(f"tuning throughput: MLP on breast_cancer, 150 epochs a trial, {rows[0]['storage']} storage, "
          f"{cpus} CPU(s), one torch thread per worker")
    print(table(rows))


if __name__ == "__main__":
    main()
