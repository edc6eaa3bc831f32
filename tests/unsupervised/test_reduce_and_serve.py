"""``data.reduce`` in supervised recipes (honing.data.reduce), and unsupervised bundles through
``honing evaluate`` and ``honing serve``'s app."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from sklearn import metrics
from sklearn.decomposition import PCA

import honing
from conftest import assert_user_error
from honing.data.builtin import load_builtin
from honing.data.dataset import load_dataset
from honing.errors import RecipeError
from honing.recipe import ServeConfig, load_recipe
from honing.serving.app import create_app
from honing.serving.fast_transform import compile_transform


def _recipe(tmp_path, **sections) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "tracking": False, **sections}))
    return str(path)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reduce")
    recipe = _recipe(tmp, data={"source": "builtin:digits", "reduce": {"pca": 0.95}},
                     model={"type": "logistic_regression"}, evaluate={"explain": False})
    return honing.train(recipe, out=tmp / "run")


def test_reduce_keeps_95_percent_of_the_training_variance(digits_run):
    bundle = honing.load(digits_run.bundle_dir)
    columns, pca = bundle.preprocessor.named_steps["columns"], bundle.preprocessor.named_steps["reduce"]
    assert pca.explained_variance_ratio_.sum() >= 0.95
    # the oracle: a PCA(0.95) fitted on the training split's preprocessed rows only
    dataset = load_dataset(load_recipe(digits_run.run_dir / "recipe.yaml").data, 42)
    train = columns.transform(dataset.features("train"))
    oracle = PCA(n_components=0.95, svd_solver="full").fit(train)
    assert pca.n_components_ == oracle.n_components_ < train.shape[1]
    rows = load_builtin("digits").frame.head(30)
    assert np.allclose(np.abs(bundle.transform(bundle.prepare(rows))), np.abs(oracle.transform(columns.transform(
        bundle.prepare(rows)))))  # components match up to their sign


def test_a_supervised_model_trains_and_predicts_through_the_reduced_bundle(digits_run, cli, tmp_path):
    assert digits_run.metrics["test"]["accuracy"] > 0.9
    digits = load_builtin("digits").frame
    bundle = honing.load(digits_run.bundle_dir)
    assert metrics.accuracy_score(digits["target"], bundle.predict(digits)) > 0.9
    data = tmp_path / "digits.csv"
    digits.head(50).to_csv(data, index=False)
    assert cli("predict", digits_run.bundle_dir, data, "-o", tmp_path / "p.csv").code == 0
    # the server's compiled transform handles ColumnTransformers only: it steps aside for the pipeline
    assert compile_transform(bundle.preprocessor) is None
    with TestClient(create_app(bundle, ServeConfig(), None)) as client:
        rows = json.loads(digits.drop(columns=["target"]).head(5).to_json(orient="records"))
        answer = client.post("/v1/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == bundle.predict(digits.head(5)).tolist()


def test_reduce_with_a_number_of_components_and_in_clustering(tmp_path):
    result = honing.train(_recipe(tmp_path, data={"source": "builtin:iris", "task": "clustering", "reduce": {"pca": 2}},
                                  model={"type": "kmeans", "params": {"k": 3}}), out=tmp_path / "run")
    bundle = honing.load(result.bundle_dir)
    assert bundle.transform(bundle.prepare(load_builtin("iris").frame.head(4))).shape == (4, 2)


def test_reduce_mistakes_are_recipe_errors(tmp_path):
    with pytest.raises(RecipeError, match="data.reduce.pca"):
        honing.train(_recipe(tmp_path, data={"source": "builtin:iris", "reduce": {"pca": 2.5}}), out=tmp_path / "a")
    with pytest.raises(RecipeError, match="data.reduce"):
        load_recipe({"data": {"source": "builtin:iris", "reduce": {"svd": 3}}})
    for task, model in (("classification", {"type": "logistic_regression"}), ("clustering", {"type": "kmeans"})):
        with pytest.raises(RecipeError, match=r"data\.reduce\.pca: n_components=9 .*=4"):  # iris: 4 features
            honing.train(_recipe(tmp_path, data={"source": "builtin:iris", "task": task, "reduce": {"pca": 9}},
                                 model=model), out=tmp_path / task)
        assert not (tmp_path / task).exists()
    from honing.stream_flow import check_recipe

    check_recipe(load_recipe({"data": {"source": "x.parquet", "reduce": {"pca": 0.9}}, "model": {"type": "mlp"}}))


def _served(tmp_path, task: str, model: dict, rows: int):
    """A bundle trained on iris for ``task``, iris, and what ``honing serve`` answers for its first rows."""
    result = honing.train(_recipe(tmp_path, data={"source": "builtin:iris", "task": task}, model=model),
                          out=tmp_path / "run")
    bundle = honing.load(result.bundle_dir)
    iris = load_builtin("iris").frame
    with TestClient(create_app(bundle, ServeConfig(), None)) as client:
        instances = json.loads(iris.drop(columns=["species"]).head(rows).to_json(orient="records"))
        answer = client.post("/v1/predict", json={"instances": instances})
    assert answer.status_code == 200, answer.text
    return result, bundle, iris, answer.json()["predictions"]


def test_unsupervised_bundles_are_served_and_evaluated(tmp_path, cli):
    result, bundle, iris, served = _served(tmp_path, "clustering", {"type": "kmeans", "params": {"k": 3}}, 6)
    assert served == bundle.predict(iris.head(6)).tolist() and all(type(i) is int for i in served)  # ids, not 1.0
    scores = honing.evaluate(bundle, iris)
    ids = bundle.predict(iris)
    assert scores["adjusted_rand"] == pytest.approx(metrics.adjusted_rand_score(iris["species"], ids))
    data = tmp_path / "iris.csv"
    iris.to_csv(data, index=False)
    evaluated = cli("evaluate", result.bundle_dir, data)
    assert evaluated.code == 0 and "adjusted_rand" in evaluated.out
    assert_user_error(cli("export", result.bundle_dir, "--out", tmp_path / "m.onnx"), "clustering bundle")


def test_reduction_bundle_serves_embeddings(tmp_path):
    _, bundle, iris, served = _served(tmp_path, "reduction", {"type": "pca", "params": {"components": 2}}, 3)
    assert np.allclose(served, bundle.predict(iris.head(3)).to_numpy())
