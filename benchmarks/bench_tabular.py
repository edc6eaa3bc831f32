"""Benchmark: honing's tabular spine against the same work written by hand with scikit-learn.

For each bundled dataset it measures, in the same run on the same machine:

- train: ``honing.train`` with ``model.type: auto`` (read, infer schema, split, preprocess, fit
  linear + random forest + LightGBM + baseline, score, write a checksummed bundle) against a
  hand-written scikit-learn script doing the same fitting and scoring (no schema inference, no bundle);
- predict: ``honing.load(bundle).predict`` on every row (input checks, coercion, preprocessing, model)
  against the in-memory scikit-learn pipeline's ``predict``;
- the test metric of each, so speed is never bought with accuracy.

Ratios are honing / hand-written (lower is better). Run: ``make bench`` or
``python benchmarks/bench_tabular.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import honing
from honing.data.builtin import load_builtin

CASES = {
    "titanic": {"drop": ["PassengerId", "Name"], "metric": "accuracy"},
    "california_housing": {"drop": [], "metric": "r2"},
}


def hand_written(name: str, drop: list[str], seed: int):
    """The scikit-learn script a practitioner would write for the same job."""
    data = load_builtin(name)
    frame = data.frame.drop(columns=drop).drop_duplicates()
    y = frame.pop(data.target)
    classify = data.task == "classification"
    strat = y if classify else None
    X_rest, X_test, y_rest, y_test = train_test_split(frame, y, test_size=0.15, random_state=seed, stratify=strat)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=0.15 / 0.85, random_state=seed, stratify=y_rest if classify else None)
    numeric = [c for c in frame.columns if frame[c].dtype.kind in "if"]
    categorical = [c for c in frame.columns if c not in numeric]
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=30,
                                            sparse_output=False)), categorical),
    ])
    if classify:
        models = [LogisticRegression(max_iter=2000), RandomForestClassifier(200, n_jobs=-1, random_state=seed),
                  LGBMClassifier(n_estimators=300, learning_rate=0.05, verbose=-1, random_state=seed)]
        score = accuracy_score
    else:
        models = [Ridge(), RandomForestRegressor(200, n_jobs=-1, random_state=seed),
                  LGBMRegressor(n_estimators=300, learning_rate=0.05, verbose=-1, random_state=seed)]
        score = r2_score
    fitted = [make_pipeline(pre, m).fit(X_train, y_train) for m in models]
    best = max(fitted, key=lambda p: score(y_val, p.predict(X_val)))
    return best, score(y_test, best.predict(X_test)), data.frame


def timed(fn, repeat: int):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(repeat: int) -> list[dict]:
    rows = []
    for name, case in CASES.items():
        recipe = {"name": name, "data": {"source": f"builtin:{name}", "drop": case["drop"]}}
        with tempfile.TemporaryDirectory() as tmp:
            t_honing, result = timed(lambda r=recipe, t=tmp: honing.train(r, out=Path(t) / "run"), repeat)
            t_hand, (pipe, hand_metric, frame) = timed(lambda n=name, c=case: hand_written(n, c["drop"], 42),
                                                       repeat)
            model = honing.load(result.bundle_dir)
            rows_in = frame.drop(columns=[model.manifest["target"]])
            p_honing, _ = timed(lambda m=model, x=rows_in: m.predict(x), repeat)
            hand_rows = rows_in.drop(columns=case["drop"])
            p_hand, _ = timed(lambda p=pipe, x=hand_rows: p.predict(x), repeat)
        rows.append({
            "dataset": name, "rows": len(frame), "metric": case["metric"],
            "honing": result.metrics["test"][case["metric"]], "sklearn": hand_metric,
            "train_honing": t_honing, "train_sklearn": t_hand,
            "predict_honing": p_honing, "predict_sklearn": p_hand,
        })
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        ("| dataset | rows | test metric honing / sklearn | train s honing / sklearn (ratio) "
         "| predict all rows ms honing / sklearn (ratio) |"),
        "|---|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['rows']} | {r['metric']} {r['honing']:.3f} / {r['sklearn']:.3f} "
            f"| {r['train_honing']:.2f} / {r['train_sklearn']:.2f} ({r['train_honing'] / r['train_sklearn']:.2f}×) "
            f"| {1e3 * r['predict_honing']:.1f} / {1e3 * r['predict_sklearn']:.1f} "
            f"({r['predict_honing'] / r['predict_sklearn']:.2f}×) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N timings (default 3)")
    args = parser.parse_args()
    np.random.seed(0)
    print(table(run(args.repeat)))


if __name__ == "__main__":
    main()
