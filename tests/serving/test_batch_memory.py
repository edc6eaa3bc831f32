"""Streaming prediction keeps memory flat: the peak RSS for a 2M-row CSV is within 1.5× of a 100k-row one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

import honing

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sys.platform == "win32", reason="peak RSS is read with the resource module")]

CHUNK_ROWS = 25_000  # the 100k-row file is itself streamed in 4 chunks

# Predict in a fresh interpreter, then print the rows written and the peak RSS (after loading the
# bundle, and at the end) in MiB.
CHILD = """
import resource, sys
import honing
from honing.serving.batch import predict_file

def peak():  # VmHWM: ru_maxrss would count the parent's RSS at fork time (Linux keeps it across exec)
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2**10
    except OSError:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 2**10

bundle = honing.load(sys.argv[1])
loaded = peak()
rows = predict_file(bundle, sys.argv[2], sys.argv[3], keep=["PassengerId"], chunk_rows=int(sys.argv[4]))
print(rows, loaded, peak())
"""


def _write_titanic_like(path, rows: int, seed: int = 0, block: int = 250_000) -> None:
    """Random titanic-like rows, written block by block with pyarrow (a few seconds for 2M rows)."""
    rng = np.random.default_rng(seed)
    tickets = np.array(["347082", "1601", "CA. 2343", "3101295", "PC 17599", "113803", "A/5 21171"])
    cabins = np.array(["C85", "C123", "E46", "G6", "B96 B98", "F33"])
    schema = pa.schema([("PassengerId", pa.int64()), ("Pclass", pa.int64()), ("Sex", pa.string()),
                        ("Age", pa.float64()), ("SibSp", pa.int64()), ("Parch", pa.int64()), ("Ticket", pa.string()),
                        ("Fare", pa.float64()), ("Cabin", pa.string()), ("Embarked", pa.string())])
    with pacsv.CSVWriter(str(path), schema) as writer:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            writer.write_table(pa.table({
                "PassengerId": np.arange(start, start + n), "Pclass": rng.integers(1, 4, n),
                "Sex": np.where(rng.random(n) < 0.6, "male", "female"),
                "Age": pa.array(np.round(rng.uniform(0.5, 80, n), 1), mask=rng.random(n) < 0.2),
                "SibSp": rng.integers(0, 6, n), "Parch": rng.integers(0, 5, n),
                "Ticket": tickets[rng.integers(0, len(tickets), n)], "Fare": np.round(rng.exponential(30, n), 4),
                "Cabin": pa.array(cabins[rng.integers(0, len(cabins), n)], mask=rng.random(n) < 0.77),
                "Embarked": np.array(["S", "C", "Q"])[rng.integers(0, 3, n)],
            }, schema=schema))


def _predict_in_child(bundle_dir, data, out) -> tuple[int, float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HONING_TRACKING": "0"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(bundle_dir), str(data), str(out), str(CHUNK_ROWS)],
                          check=False, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows, loaded, peak = done.stdout.split()[-3:]
    return int(rows), float(loaded), float(peak)


def test_peak_memory_does_not_grow_with_the_file(tmp_path):
    run = honing.train({"name": "titanic", "data": {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]},
                        "model": {"type": "logistic_regression"}, "evaluate": {"explain": False, "bootstrap": 0}},
                       out=tmp_path / "run", track=False)
    work = tmp_path / "files"
    work.mkdir()
    try:
        peaks = {}
        for rows in (100_000, 2_000_000):
            data = work / f"rows_{rows}.csv"
            _write_titanic_like(data, rows)
            written, loaded, peaks[rows] = _predict_in_child(run.bundle_dir, data, work / f"out_{rows}.parquet")
            assert written == rows
            print(f"\nbatch prediction of {rows:,} rows ({data.stat().st_size / 2**20:.0f} MiB of CSV, chunk_rows="
                  f"{CHUNK_ROWS:,}): peak RSS {peaks[rows]:.0f} MiB (bundle loaded: {loaded:.0f} MiB)")
            data.unlink()
        assert peaks[2_000_000] <= 1.5 * peaks[100_000], peaks
    finally:
        shutil.rmtree(work, ignore_errors=True)
