"""Benchmark: streaming training (``data.streaming: true``) as the rows grow — peak memory and throughput.

A Parquet file of N rows × 50 columns (45 numbers, 4 categories of 12 values, a binary target that
depends on a few of them) is generated in chunks of 100,000 rows (one row group each), so the
generator itself stays small.  Each size is trained in a fresh process by ``honing train`` (an MLP
with one hidden layer of 64, 1 epoch, batch 1024, ``data.workers: 1``, every other key at its
default): statistics pass, data audit on the sample, training, and the evaluation pass.

Reported per size: the Parquet file's MiB, the peak resident memory (the training process's
``ru_maxrss``; its reader process is reported beside it, and the sum of the whole process tree,
sampled every 0.2 s), training throughput (rows/s of the training pass, from history.csv), the whole
run's seconds, test accuracy, and the peak's ratio to the smallest run's and to the data's in-memory
size (rows × columns × 8 bytes).

Run: ``python benchmarks/scaling_stream.py [--quick] [--rows 500000,5000000]`` (``--quick``: 500k rows
only).  :func:`stream_rows` is what ``benchmarks/scaling.py`` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CHUNK_ROWS = 100_000
CATEGORIES = 4


def write_table(path: Path, rows: int, columns: int = 50, seed: int = 0) -> int:
    """A Parquet file of ``rows`` × ``columns`` (the last one the target ``label``), written chunk by
    chunk; returns its size in bytes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    numbers = columns - 1 - CATEGORIES
    rng = np.random.default_rng(seed)
    writer = None
    try:
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            X = rng.normal(size=(n, numbers))
            codes = rng.integers(0, 12, size=(n, CATEGORIES))
            logit = 1.5 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] + (codes[:, 0] < 4) - 0.3
            label = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
            arrays = {f"x{i}": X[:, i] for i in range(numbers)}
            arrays |= {f"c{j}": np.char.add("v", codes[:, j].astype(str)) for j in range(CATEGORIES)}
            table = pa.table({**arrays, "label": label})
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=CHUNK_ROWS)
    finally:
        if writer is not None:
            writer.close()
    return path.stat().st_size


def _recipe(path: Path, epochs: int, workers: int) -> dict:
    return {"name": "stream-bench", "data": {"source": str(path), "target": "label", "streaming": True,
                                              "workers": workers},
            "model": {"type": "mlp", "params": {"hidden": [64]}},
            "train": {"epochs": epochs, "batch_size": 1024}, "tracking": False}


def measure(recipe: dict, out: Path) -> tuple[dict, float, float, dict]:
    """``honing train`` of ``recipe`` into ``out`` in a fresh process: its peaks (KiB: ``self``, the
    training process, and ``children``, its largest reader process), the process tree's peak resident
    bytes (sampled every 0.2 s), the seconds, and metrics.json."""
    import psutil
    import yaml

    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "HONING_TRACKING": "0"}
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--child", str(path), str(out)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree_peak, done = [0], threading.Event()

    def sample() -> None:
        parent = psutil.Process(child.pid)
        while not done.is_set():
            try:
                procs = [parent, *parent.children(recursive=True)]
                tree_peak[0] = max(tree_peak[0], sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    stdout, stderr = child.communicate()
    done.set()
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"honing train failed ({child.returncode}): {stderr[-2000:]}")
    peaks = json.loads(stdout.strip().splitlines()[-1])
    return peaks, tree_peak[0], seconds, json.loads((out / "metrics.json").read_text())


def run_once(path: Path, out: Path, epochs: int = 1, workers: int = 1) -> dict:
    """Train on ``path`` in a fresh process; its peaks (MiB), seconds and metrics."""
    peaks, tree_peak, seconds, metrics = measure(_recipe(path, epochs, workers), out)
    return {"peak_rss_mb": peaks["self"] / 1024, "reader_rss_mb": peaks["children"] / 1024,
            "tree_peak_mb": tree_peak / 2**20, "seconds": seconds,
            "rows_per_s": metrics["streaming"]["train_rows_per_s"], "test_accuracy": metrics["test"]["accuracy"],
            "phases": metrics["streaming"]["seconds"]}


def stream_rows(rows: tuple[int, ...] = (500_000, 5_000_000), columns: int = 50, epochs: int = 1,
                workers: int = 1) -> list[dict]:
    """One row per size: rows, parquet MiB, peak RSS MiB, reader RSS MiB, tree peak MiB, rows/s,
    seconds, test accuracy, and the peak's ratios to the smallest run and to the data in memory."""
    results = []
    with tempfile.TemporaryDirectory(prefix="honing-stream-bench-") as tmp:
        for n in rows:
            path = Path(tmp) / f"data-{n}.parquet"
            size = write_table(path, n, columns)
            result = run_once(path, Path(tmp) / f"run-{n}", epochs, workers)
            path.unlink()
            results.append({"rows": n, "parquet_mb": size / 2**20, "in_memory_mb": n * columns * 8 / 2**20,
                            **result})
    smallest = min(results, key=lambda r: r["rows"])["peak_rss_mb"]
    for r in results:
        r["vs_smallest"] = r["peak_rss_mb"] / smallest
        r["vs_in_memory"] = r["peak_rss_mb"] / r["in_memory_mb"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500k rows only")
    parser.add_argument("--rows", default=None, help="comma-separated row counts (default 500000,5000000)")
    args = parser.parse_args()
    rows = tuple(int(r) for r in args.rows.split(",")) if args.rows else (500_000,) if args.quick else (
        500_000, 5_000_000)
    results = stream_rows(rows)
    print("\nStreaming training (1 epoch, 50 columns, data.workers: 1): memory and throughput\n")
    columns = [("rows", "rows", ",d"), ("parquet MiB", "parquet_mb", ",.0f"), ("data in memory MiB", "in_memory_mb", ",.0f"),
               ("peak RSS MiB", "peak_rss_mb", ",.0f"), ("reader RSS MiB", "reader_rss_mb", ",.0f"),
               ("tree peak MiB", "tree_peak_mb", ",.0f"), ("× smallest", "vs_smallest", ".2f"),
               ("× data in memory", "vs_in_memory", ".2f"), ("train rows/s", "rows_per_s", ",.0f"),
               ("seconds", "seconds", ",.0f"), ("test accuracy", "test_accuracy", ".4f")]
    print(markdown(results, columns))


def markdown(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A markdown table of ``rows``: one column per ``(heading, key, format spec)``."""
    lines = ["| " + " | ".join(head for head, _, _ in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(format(row[key], fmt) for _, key, fmt in columns) + " |" for row in rows]
    return "\n".join(lines)


def _child(recipe: str, out: str) -> None:
    """``honing train RECIPE --out OUT`` in this process, then its peaks (KiB) as a JSON line."""
    from honing import cli

    sys.argv = ["honing", "--quiet", "train", recipe, "--out", out]
    try:
        cli.main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    peaks = {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
             "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}
    print(json.dumps(peaks), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        main()
