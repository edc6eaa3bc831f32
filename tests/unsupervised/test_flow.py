"""recipe → honing train → run directory and bundle → honing predict / honing.load(b).predict for
clustering, reduction and anomaly runs (honing.unsupervised_flow, honing.bundle.unsupervised_outputs)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import metrics
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler

import honing
from conftest import assert_user_error
from honing.data.builtin import load_builtin
from honing.errors import DataError


def _recipe(tmp_path, **sections) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "u", "tracking": False, **sections}))
    return str(path)


@pytest.fixture
def outliers_csv(tmp_path):
    """400 normal rows (3 numeric columns and a category) and 20 planted outliers, with a label column."""
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(400, 3))
    far = rng.normal(size=(20, 3))
    far = 8 * far / np.linalg.norm(far, axis=1, keepdims=True)
    frame = pd.DataFrame(np.vstack([normal, far]), columns=["a", "b", "c"])
    frame["colour"] = rng.choice(["red", "blue"], size=len(frame))
    frame["outlier"] = np.r_[np.zeros(400, int), np.ones(20, int)]
    path = tmp_path / "points.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_clustering_run_k_auto_and_predict(cli, tmp_path):
    recipe = _recipe(tmp_path, data={"source": "builtin:iris", "task": "clustering"},
                     model={"type": "kmeans", "params": {"k": [2, 3, 4]}})
    out = tmp_path / "run"
    result = cli("train", recipe, "--out", out)
    assert result.code == 0, result.err
    for name in ("bundle/manifest.json", "metrics.json", "recipe.yaml", "schema.json", "leaderboard.csv",
                 "plots/elbow.png", "report.html"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board["k"]) == [2, 3, 4]
    best = int(board.loc[board["silhouette"].idxmax(), "k"])  # the chosen k: the best training silhouette
    assert yaml.safe_load((out / "recipe.yaml").read_text())["model"]["params"]["k"] == best == m["clusters"]
    bundle = honing.load(out / "bundle")
    iris = load_builtin("iris").frame.drop_duplicates()
    ids = bundle.predict(iris)
    assert ids.dtype.kind == "i" and set(ids) <= set(range(best))
    scores = m["test"]
    assert {"silhouette", "davies_bouldin", "calinski_harabasz", "adjusted_rand", "nmi"} <= set(scores)
    assert m["train"]["adjusted_rand"] > 0.5  # species are clusters, roughly
    data = tmp_path / "iris.csv"
    iris.to_csv(data, index=False)
    result = cli("predict", out / "bundle", data, "-o", tmp_path / "ids.csv", "--keep", "species")
    assert result.code == 0, result.err
    written = pd.read_csv(tmp_path / "ids.csv")
    assert list(written.columns) == ["species", "cluster"] and np.array_equal(written["cluster"], ids)


def test_clustering_metrics_are_sklearns_on_the_preprocessed_rows(tmp_path):
    result = honing.train(_recipe(tmp_path, data={"source": "builtin:iris", "task": "clustering"},
                                  model={"type": "kmeans", "params": {"k": 3}}), out=tmp_path / "run")
    bundle = honing.load(result.bundle_dir)
    from honing.unsupervised_flow import load_unsupervised

    data = load_unsupervised(result.recipe)  # the run's split
    features = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    assert sorted(c["name"] for c in bundle.features["columns"] if c["name"] != "species") == sorted(features)
    # the oracle: scikit-learn's scaler and k-means fitted on the training rows
    scaler = StandardScaler().fit(data.splits["train"][features])
    kmeans = KMeans(n_clusters=3, random_state=42, n_init="auto").fit(scaler.transform(data.splits["train"][features]))
    test = data.splits["test"]
    X = scaler.transform(test[features])
    labels = bundle.predict(test)
    assert np.array_equal(labels, kmeans.predict(X))
    scores = result.metrics["test"]
    assert scores["silhouette"] == pytest.approx(metrics.silhouette_score(X, labels))
    assert scores["davies_bouldin"] == pytest.approx(metrics.davies_bouldin_score(X, labels))
    assert scores["adjusted_rand"] == pytest.approx(metrics.adjusted_rand_score(test["species"], labels))
    assert scores["nmi"] == pytest.approx(metrics.normalized_mutual_info_score(test["species"], labels))


@pytest.mark.parametrize(("model", "params"), [("agglomerative", {"k": 3, "linkage": "average"}),
                                                ("dbscan", {"eps": 1.0, "min_samples": 4}),
                                                ("gaussian_mixture", {"k": 3}), ("minibatch_kmeans", {"k": 3})])
def test_every_cluster_model_bundles_and_predicts_after_loading(tmp_path, model, params):
    result = honing.train(_recipe(tmp_path, data={"source": "builtin:iris", "task": "clustering"},
                                  model={"type": model, "params": params}), out=tmp_path / "run")
    bundle = honing.load(result.bundle_dir)
    from honing.unsupervised_flow import load_unsupervised

    train = load_unsupervised(result.recipe).splits["train"]
    again = bundle.predict(train)  # the loaded bundle on the rows the model was fitted on
    fitted = bundle.model.labels_  # the clustering found in training
    if model in ("gaussian_mixture", "minibatch_kmeans"):
        assert np.array_equal(again, fitted)
    else:  # the documented rule for new rows (nearest centroid / nearest core sample) mostly agrees
        assert np.mean(again == fitted) >= 0.9
    assert result.metrics["clusters"] == len(set(fitted.tolist()) - {-1})


def test_reduction_pca_run_and_embeddings(tmp_path):
    result = honing.train(_recipe(tmp_path, data={"source": "builtin:digits", "task": "reduction"},
                                  model={"type": "pca", "params": {"components": 0.9}}), out=tmp_path / "run")
    assert (result.run_dir / "plots" / "explained_variance.png").is_file()
    assert result.metrics["explained_variance"] >= 0.9
    bundle = honing.load(result.bundle_dir)
    digits = load_builtin("digits").frame.head(20)
    emb = bundle.predict(digits)
    d = result.metrics["components"]
    assert list(emb.columns) == [f"emb_{i}" for i in range(d)]
    pca = bundle.model.estimator_
    assert np.allclose(emb.to_numpy(), pca.transform(bundle.transform(bundle.prepare(digits))))
    out = honing.predict(bundle, digits, keep=["target"])
    assert list(out.columns) == ["target", *emb.columns]
    nothing = honing.predict(bundle, digits.iloc[:0], keep=["target"])  # no rows: no embeddings, same columns
    assert len(nothing) == 0 and list(nothing.columns) == list(out.columns)
    with pytest.raises(DataError, match="'prediction'|emb_0"):  # an output column cannot be kept
        honing.predict(bundle, digits.assign(emb_0=1.0), keep=["emb_0"])


def test_reduction_autoencoder_bundle_round_trip(tmp_path):
    result = honing.train(_recipe(tmp_path, data={"source": "builtin:iris", "task": "reduction"},
                                  model={"type": "autoencoder", "params": {"latent": 2, "epochs": 5}}),
                          out=tmp_path / "run")
    assert (result.run_dir / "history.csv").is_file()
    assert set(json.loads((result.bundle_dir / "manifest.json").read_text())["files"]) == {
        "model.skops", "preprocess.skops"}  # weights as arrays in skops: nothing pickled
    bundle = honing.load(result.bundle_dir)
    iris = load_builtin("iris").frame
    emb = bundle.predict(iris)
    assert emb.shape == (len(iris), 2) and np.isfinite(emb.to_numpy()).all()


def test_anomaly_isolation_forest_against_sklearn(cli, tmp_path, outliers_csv):
    path, frame = outliers_csv
    recipe = _recipe(tmp_path, data={"source": str(path), "task": "anomaly", "target": "outlier",
                                     "split": {"validation": 0, "test": 0.2}},
                     model={"type": "isolation_forest", "params": {"contamination": 0.05}})
    out = tmp_path / "run"
    assert cli("train", recipe, "--out", out).code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["anomaly_label"] == "1" and m["test"]["recall"] >= 0.75 and m["test"]["roc_auc"] > 0.95
    bundle = honing.load(out / "bundle")
    scored = bundle.predict(frame)
    assert list(scored.columns) == ["anomaly_score", "is_anomaly"]
    assert metrics.recall_score(frame["outlier"], scored["is_anomaly"]) >= 0.9  # planted outliers found
    # the oracle: sklearn's IsolationForest on the same preprocessed training rows
    from honing.unsupervised_flow import load_unsupervised

    data = load_unsupervised(bundle_recipe(out))
    train = bundle.transform(bundle.prepare(data.splits["train"]))
    oracle = IsolationForest(contamination=0.05, random_state=42).fit(train)
    X = bundle.transform(bundle.prepare(frame))
    assert np.array_equal(scored["is_anomaly"].to_numpy(), (oracle.predict(X) == -1).astype(int))
    assert cli("predict", out / "bundle", path, "-o", tmp_path / "s.parquet").code == 0
    assert np.allclose(pd.read_parquet(tmp_path / "s.parquet")["anomaly_score"], scored["anomaly_score"])


def bundle_recipe(run):
    from honing.recipe import load_recipe

    return load_recipe(run / "recipe.yaml")


def test_anomaly_autoencoder_finds_planted_outliers(tmp_path, outliers_csv):
    path, frame = outliers_csv
    result = honing.train(_recipe(tmp_path, data={"source": str(path), "task": "anomaly", "target": "outlier"},
                                  model={"type": "autoencoder", "params": {"contamination": 0.05, "latent": 2,
                                                                           "epochs": 40}}),
                          out=tmp_path / "run")
    scored = honing.load(result.bundle_dir).predict(frame)
    assert metrics.recall_score(frame["outlier"], scored["is_anomaly"]) >= 0.85
    assert metrics.roc_auc_score(frame["outlier"], scored["anomaly_score"]) > 0.95


def test_user_mistakes_are_one_line_errors(cli, tmp_path):
    bad_type = _recipe(tmp_path, data={"source": "builtin:iris", "task": "clustering"}, model={"type": "kmean"})
    assert_user_error(cli("train", bad_type), "model.type", "kmean")
    bad_k = _recipe(tmp_path, data={"source": "builtin:iris", "task": "clustering"},
                    model={"type": "dbscan", "params": {"k": "auto"}})
    assert_user_error(cli("train", bad_k), "model.params.k", "dbscan")
    bad_list = _recipe(tmp_path, data={"source": "builtin:iris", "task": "clustering"},
                       model={"type": "kmeans", "params": {"k": [1, "x"]}})
    assert_user_error(cli("train", bad_list), "model.params.k")
    one = _recipe(tmp_path, data={"source": "builtin:iris", "task": "clustering"},
                  model={"type": "kmeans", "params": {"k": 1}})
    assert_user_error(cli("train", one), "model.params.k", ">= 2 clusters", "got 1")  # as in a list
    unknown = _recipe(tmp_path, data={"source": "builtin:iris", "task": "clustering"},
                      model={"type": "kmeans", "params": {"bogus": 3}})
    assert_user_error(cli("train", unknown), "model.params.bogus: not a parameter of kmeans")  # not "KMeans.got"
    for components, words in ((10, "at most 4"), (1.5, "between 0 and 1")):
        pca = _recipe(tmp_path, data={"source": "builtin:iris", "task": "reduction", "drop": ["species"]},
                      model={"type": "pca", "params": {"components": components}})
        assert_user_error(cli("train", pca), "model.params.components", words)  # not n_components / svd_solver
    streamed = _recipe(tmp_path, data={"source": "builtin:iris", "task": "clustering", "streaming": True})
    assert_user_error(cli("train", streamed), "data.streaming")
    bad_column = _recipe(tmp_path, data={"source": "builtin:iris", "task": "anomaly", "target": "specie"})
    assert_user_error(cli("train", bad_column), "data.target", "specie")
