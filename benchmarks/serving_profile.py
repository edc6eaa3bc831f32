"""Profile of one scoring call of ``honing serve``: where the time of a request's model work goes.

    python benchmarks/serving_profile.py [--calls N]

Trains the titanic logistic regression of ``benchmarks/serving.py`` and times, for 1 and for 32 rows,
each step of the server's scoring call (``serving.app.scorer``): coercing the raw rows
(``bundle.prepare``), the fitted preprocessing through scikit-learn (``ColumnTransformer.transform``)
and through the server's compiled path (``serving.fast_transform``), and the model (``bundle.scores``).
Prints the median milliseconds per call and the ratio of the two preprocessing paths.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from honing.serving.fast_transform import compile_transform

sys.path.insert(0, str(Path(__file__).parent))
from serving import held_out_rows, train  # the same model and rows as the serving benchmark


def median_ms(call, calls: int) -> float:
    """Median wall time of ``call()`` in milliseconds, after one warm-up call."""
    call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls per step (default 300)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="honing-serving-profile-") as tmp:
        bundle = train(Path(tmp), "logistic_regression")
        rows = held_out_rows(bundle)
        fast = compile_transform(bundle.preprocessor)
        print("| rows | prepare ms | scikit-learn transform ms | compiled transform ms | × faster | scores ms |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n in (1, 32):
            frame = rows.head(n)
            prepared = bundle.prepare(frame)
            X = fast.transform(prepared)
            steps = [partial(bundle.prepare, frame), partial(bundle.preprocessor.transform, prepared),
                     partial(fast.transform, prepared), partial(bundle.scores, X, frame)]
            times = [median_ms(step, args.calls) for step in steps]
            print(f"| {n} | {times[0]:.3f} | {times[1]:.3f} | {times[2]:.3f} | {times[1] / times[2]:.0f}× "
                  f"| {times[3]:.3f} |")


if __name__ == "__main__":
    main()
