"""The neural estimators are scikit-learn estimators: scikit-learn's own checks, and real tasks."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import GridSearchCV, cross_validate, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from honing.models.estimators import NeuralClassifier, NeuralRegressor

# Checks that cannot apply, with the reason: none today (the two skips are scikit-learn's own, for
# sample-weight checks of estimators whose fit takes no sample_weight).
EXPECTED_FAILURES: dict[str, dict[str, str]] = {}


@parametrize_with_checks(
    [NeuralClassifier(epochs=40, random_state=0), NeuralRegressor(epochs=40, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILURES.get(type(est).__name__, {}),
)
def test_scikit_learn_compatible(estimator, check):
    check(estimator)


def test_mlp_on_breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), NeuralClassifier(random_state=0)).fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.95


def test_cnn_on_digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, random_state=0, stratify=y)
    model = NeuralClassifier(net="cnn", batch_size=64, lr=3e-3, random_state=0).fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.97
    assert model.input_shape_ == (1, 8, 8)


def test_works_with_cross_validate_and_grid_search():
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), NeuralClassifier(epochs=15, random_state=0))
    scores = cross_validate(pipe, X, y, cv=3)["test_score"]
    assert scores.mean() > 0.9
    grid = GridSearchCV(pipe, {"neuralclassifier__lr": [1e-3, 1e-2]}, cv=2).fit(X, y)
    assert grid.best_params_["neuralclassifier__lr"] in (1e-3, 1e-2)


def test_early_stopping_uses_the_eval_set_and_stops():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = X[:, 0] * 2 + rng.normal(scale=0.1, size=200)
    model = NeuralRegressor(epochs=500, patience=3, lr=1e-2, random_state=0)
    model.fit(X[:150], y[:150], eval_set=(X[150:], y[150:]))
    assert len(model.history_) < 500 and "val_loss" in model.history_[0]
    assert model.score(X[150:], y[150:]) > 0.9


def test_regressor_restores_target_units():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    y = 1e5 * (X @ np.array([1.0, -2.0, 0.5])) + 3e6
    model = NeuralRegressor(epochs=200, lr=1e-2, random_state=0).fit(X, y)
    assert abs(model.predict(X).mean() - 3e6) < 0.05 * 3e6 and model.score(X, y) > 0.95


@pytest.mark.parametrize("net", ["lstm", "transformer"])
def test_sequence_nets_on_token_ids(net):
    """A toy text task: the label is whether token 3 occurs; ids are right-padded with 0."""
    rng = np.random.default_rng(0)
    X = rng.integers(4, 20, size=(400, 12))
    lengths = rng.integers(4, 13, size=400)
    X[np.arange(12) >= lengths[:, None]] = 0
    y = rng.integers(0, 2, size=400)
    X[y == 1, 0] = 3
    model = NeuralClassifier(net=net, net_params={"vocab_size": 20}, epochs=30, lr=3e-3, random_state=0)
    model.fit(X[:300], y[:300])
    assert model.score(X[300:], y[300:]) > 0.9


def test_same_seed_same_model():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    a = NeuralClassifier(epochs=5, random_state=3).fit(X, y).predict_proba(X)
    b = NeuralClassifier(epochs=5, random_state=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_recipe_model_types_build_neural_estimators():
    from honing.errors import ModelError
    from honing.models.classic import check_model_names, make_model
    from honing.recipe import TrainConfig

    train = TrainConfig.model_validate({
        "epochs": 7, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.5, "nesterov": True},
        "schedule": {"name": "warmup_linear", "warmup": 0.2}, "clip": {"value": 0.3}, "threads": 1,
        "early_stopping": {"monitor": "val_accuracy", "mode": "max", "min_delta": 0.01, "patience": 4}})
    model = make_model("mlp", "classification", {"hidden": [16], "dropout": 0.0}, seed=3, train=train)
    assert isinstance(model, NeuralClassifier) and model.random_state == 3
    assert model.net_params == {"hidden": [16], "dropout": 0.0}
    # every key of the recipe's train: section reaches the training loop, not only the common ones
    assert model.train_config().model_dump(exclude={"device"}) == train.model_dump(exclude={"device"})
    with pytest.raises(ModelError, match="model.params.hiden.*hidden"):
        make_model("mlp", "regression", {"hiden": [16]})
    with pytest.raises(ModelError, match="model.params.dropout"):
        make_model("mlp", "regression", {"dropout": 2})
    with pytest.raises(ModelError, match="model.params.hiden"):
        check_model_names("mlp", [], {"hiden": [3]})


def test_batch_imbalance_is_diagnosed_from_real_training():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 4)).astype(np.float32)
    y = (rng.random(2000) < 0.02).astype(int)  # 2% positives
    model = NeuralClassifier(epochs=3, batch_size=64, early_stopping=False, random_state=0).fit(X, y)
    assert "batch_imbalance" in {f.rule for f in model.diagnose()}
    balanced = NeuralClassifier(epochs=3, batch_size=64, early_stopping=False, random_state=0)
    balanced.fit(X, (X[:, 0] > 0).astype(int))
    assert "batch_imbalance" not in {f.rule for f in balanced.diagnose()}


def test_label_smoothing_softens_probabilities():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    sharp = NeuralClassifier(epochs=30, early_stopping=False, random_state=0).fit(X, y)
    smooth = NeuralClassifier(epochs=30, early_stopping=False, label_smoothing=0.3, random_state=0).fit(X, y)
    assert smooth.predict_proba(X).max(axis=1).mean() < sharp.predict_proba(X).max(axis=1).mean() - 0.05


def test_weight_decay_shrinks_weights():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)

    def norm(model):
        return sum(float((p.detach() ** 2).sum()) for n, p in model.module_.named_parameters() if "weight" in n)

    common = {"epochs": 30, "batch_size": 32, "early_stopping": False, "random_state": 0}
    plain = NeuralClassifier(weight_decay=0.0, **common).fit(X, y)
    decayed = NeuralClassifier(weight_decay=1.0, **common).fit(X, y)
    assert norm(decayed) < 0.8 * norm(plain)


def test_dropout_regularises_training_fit():
    """Dropout makes the network fit its training rows less tightly (higher training loss)."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    common = {"epochs": 40, "early_stopping": False, "random_state": 0}
    loose = NeuralClassifier(net_params={"dropout": 0.6}, **common).fit(X, y)
    tight = NeuralClassifier(net_params={"dropout": 0.0}, **common).fit(X, y)
    assert loose.history_[-1]["loss"] > tight.history_[-1]["loss"]


def test_gradient_checkpointing_trains_the_same_model():
    """Recomputing activations changes memory and time, not the result."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    common = {"epochs": 5, "early_stopping": False, "random_state": 0, "net_params": {"dropout": 0.0}}
    plain = NeuralClassifier(**common).fit(X, y)
    recomputed = NeuralClassifier(gradient_checkpointing=True, **common).fit(X, y)
    assert recomputed.module_.checkpointing and not plain.module_.checkpointing
    np.testing.assert_allclose(recomputed.predict_proba(X), plain.predict_proba(X), rtol=1e-4, atol=1e-6)


def test_early_stopping_monitor_from_the_train_section():
    """A recipe's early_stopping.monitor (here val_accuracy, mode max) is what stops training."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = NeuralClassifier(epochs=200, random_state=0, train={
        "early_stopping": {"monitor": "val_accuracy", "mode": "max", "patience": 3, "min_delta": 0.5}})
    model.fit(X, y)
    # no epoch can raise validation accuracy by 0.5, so training stops 3 epochs after the first
    assert len(model.history_) == 4 and "val_accuracy" in model.history_[0]
