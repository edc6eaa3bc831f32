"""Run every recipe beside this script and print the numbers of docs/unsupervised.md.

    .venv/bin/python examples/unsupervised/run_examples.py [OUT]     # about a minute on 2 cores

The anomaly recipes read ``OUT/outliers.csv``, written here: 1,000 normal rows (6 correlated Gaussian
columns) and 50 planted outliers (5%) on a sphere far from them (radius 7 before the same mixing), with an ``outlier`` label column.
Besides each run's test metrics, the script checks the isolation forest's decisions against
scikit-learn's own ``IsolationForest`` (same preprocessed training rows, same seed) as an oracle.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import recall_score, roc_auc_score

import honing

HERE = Path(__file__).parent
RECIPES = ("iris_kmeans", "iris_agglomerative", "iris_gmm", "iris_dbscan", "digits_pca", "digits_autoencoder",
           "digits_reduce_logistic", "outliers_isolation_forest", "outliers_autoencoder")
SHOWN = ("clusters", "silhouette", "davies_bouldin", "adjusted_rand", "nmi", "reconstructed_variance",
         "accuracy", "precision", "recall", "roc_auc")


def outliers_csv(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(6, 6))
    normal = rng.normal(size=(1000, 6)) @ mixing
    far = rng.normal(size=(50, 6))
    far = 7 * far / np.linalg.norm(far, axis=1, keepdims=True) @ mixing
    frame = pd.DataFrame(np.vstack([normal, far]), columns=[f"x{i}" for i in range(6)])
    frame["outlier"] = np.r_[np.zeros(1000, int), np.ones(50, int)]
    frame.sample(frac=1.0, random_state=seed).to_csv(path, index=False)
    return path


def iforest_agreement(result, data: Path) -> float:
    """Fraction of rows where the bundle's is_anomaly equals sklearn's IsolationForest.predict == -1."""
    from sklearn.ensemble import IsolationForest

    from honing.unsupervised_flow import load_unsupervised

    bundle = honing.load(result.bundle_dir)
    train = load_unsupervised(result.recipe).splits["train"]
    params = result.recipe.model.params
    oracle = IsolationForest(contamination=params["contamination"], random_state=result.recipe.seed)
    oracle.fit(bundle.transform(bundle.prepare(train)))
    frame = pd.read_csv(data)
    ours = bundle.predict(frame)["is_anomaly"].to_numpy()
    return float(np.mean(ours == (oracle.predict(bundle.transform(bundle.prepare(frame))) == -1)))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = outliers_csv(out / "outliers.csv")
    rows = []
    for name in RECIPES:
        overrides = [f"data.source={data}"] if name.startswith("outliers") else []
        start = time.perf_counter()
        result = honing.train(HERE / f"{name}.yaml", overrides=overrides, out=out / name, track=False)
        seconds = time.perf_counter() - start
        test = result.metrics["test"]
        row = {"recipe": f"{name}.yaml", "model": result.model, "seconds": round(seconds, 1),
               **{k: round(float(test[k]), 4) if isinstance(test[k], float) else test[k]
                  for k in SHOWN if isinstance(test.get(k), (int, float))}}
        if "explained_variance" in result.metrics:
            row["components"] = result.metrics["components"]
        if name == "iris_kmeans":
            row["k"] = result.recipe.model.params["k"]
        if name.startswith("outliers"):  # every planted outlier of the file, not only the test split's
            frame = pd.read_csv(data)
            scored = honing.load(result.bundle_dir).predict(frame)
            row["recall_all_rows"] = round(float(recall_score(frame["outlier"], scored["is_anomaly"])), 4)
            row["roc_auc_all_rows"] = round(float(roc_auc_score(frame["outlier"], scored["anomaly_score"])), 4)
        if name == "outliers_isolation_forest":
            row["agrees_with_sklearn"] = iforest_agreement(result, data)
        rows.append(row)
        print(json.dumps(row))
    (out / "unsupervised_examples.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/unsupervised-examples"))
