"""Metrics undefined on the rows they are computed on (r2 on one test row, in every one-row fold; the
silhouette of one cluster): the run finishes, says why, writes strict JSON, and later commands read it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import strict_json
from honing.cli_output import print_metrics
from honing.evaluation.unsupervised import cluster_metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A regression run on 40 rows with one test row (r2 undefined there) and 39 one-row folds."""
    tmp = tmp_path_factory.mktemp("undefined")
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    pd.DataFrame({"x": x, "y": 2 * x + rng.normal(size=40)}).to_csv(tmp / "tiny.csv", index=False)
    recipe = {"name": "tiny", "data": {"source": str(tmp / "tiny.csv"), "target": "y",
                                       "split": {"validation": 0.2, "test": 0.025}},
              "model": {"type": "linear_regression"},
              "evaluate": {"bootstrap": 100, "explain": False, "cv": {"folds": 39}}}
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    return tmp


def test_a_run_with_undefined_metrics_says_why_and_writes_strict_json(tiny_run, cli):
    out = cli("train", tiny_run / "tiny.yaml", "--out", tiny_run / "run")
    assert out.code == 0, out.err
    text = " ".join(out.out.split())
    assert "nan = undefined on those rows: r2 on test, baseline (test) (it needs at least 2 rows)" in text
    assert "cross-validation (39 folds × 1): r2 is undefined in every fold (it needs at least 2 rows)" in text
    metrics = strict_json((tiny_run / "run" / "metrics.json").read_text())
    assert metrics["test"]["r2"] is None and metrics["intervals"]["test"]["r2"] == [None, None]
    assert metrics["test"]["mae"] == pytest.approx(metrics["test"]["rmse"])  # one row: |e| = sqrt(e²)
    assert metrics["cv"]["model"]["summary"]["r2"]["mean"] is None
    manifest = strict_json((tiny_run / "run" / "bundle" / "manifest.json").read_text())
    assert manifest["metrics"]["test"]["r2"] is None
    assert cli("verify", tiny_run / "run" / "bundle").code == 0
    assert cli("report", tiny_run / "run").code == 0


def test_compare_shows_undefined_cross_validation_as_a_dash(tiny_run, cli):
    if not (tiny_run / "run").exists():
        assert cli("train", tiny_run / "tiny.yaml", "--out", tiny_run / "run").code == 0
    out = cli("compare", tiny_run / "run", tiny_run / "run", "--metric", "r2")
    assert out.code == 0, out.err
    assert "— ± —" in out.out and "difference —" in " ".join(out.out.split())


def test_one_cluster_has_an_undefined_silhouette_that_the_table_explains(capsys):
    X = np.random.default_rng(0).normal(size=(12, 2))
    scores = cluster_metrics(X, np.zeros(12, dtype=int))
    assert scores["clusters"] == 1 and all(math.isnan(scores[k]) for k in ("silhouette", "davies_bouldin"))
    print_metrics({"train": scores, "test": {"silhouette": 0.5}}, "kmeans (clustering)")
    text = " ".join(capsys.readouterr().out.split())
    assert "silhouette on train (it needs at least 2 clusters and more rows than clusters)" in text
    assert "davies_bouldin on train (" in text  # test has no davies_bouldin: a dash, not a nan
