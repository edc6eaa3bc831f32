"""Class balancing primitives: weights, random over/under-sampling, SMOTE, and their effect."""

import numpy as np
import pytest
import scipy.sparse as sp
from imblearn.over_sampling import SMOTE, RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

from honing.data.balance import METHODS, class_weights, resample, sample_weights
from honing.data.builtin import load_builtin
from honing.errors import DataError, RecipeError


def _imbalanced(seed=0, counts=(60, 25, 9), features=4):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(loc=3 * c, size=(n, features)) for c, n in enumerate(counts)])
    y = np.repeat(np.arange(len(counts)), counts)
    order = rng.permutation(len(y))
    return X[order], y[order]


def _counts(y):
    classes, counts = np.unique(y, return_counts=True)
    return dict(zip(classes.tolist(), counts.tolist()))


def test_methods_match_the_recipe_choices():
    assert METHODS == ("none", "class_weight", "oversample", "undersample", "smote")


@pytest.mark.parametrize("y", [np.array([0] * 7 + [1] * 3), np.array([2, 2, 5, 9, 9, 9, 9]),
                               np.array(["a", "b", "b", "c", "c", "c"])])
def test_class_weights_equal_sklearn_balanced(y):
    classes = np.unique(y)
    expected = compute_class_weight("balanced", classes=classes, y=y)
    weights = class_weights(y)
    assert list(weights) == classes.tolist()
    np.testing.assert_allclose([weights[c] for c in classes.tolist()], expected)
    rows = sample_weights(y)
    np.testing.assert_allclose(rows, [weights[v] for v in y.tolist()])
    assert rows.mean() == pytest.approx(1.0)
    assert all(type(k) is not np.int64 for k in weights)  # plain Python keys


@pytest.mark.parametrize("method,sampler", [("oversample", RandomOverSampler), ("undersample", RandomUnderSampler),
                                            ("smote", SMOTE)])
@pytest.mark.parametrize("seed", [0, 7])
def test_resampled_counts_equal_imblearn(method, sampler, seed):
    X, y = _imbalanced(seed)
    X_out, y_out = resample(X, y, method, seed=seed)
    X_ref, y_ref = sampler(random_state=seed).fit_resample(X, y)
    assert _counts(y_out) == _counts(y_ref)
    np.testing.assert_array_equal(y_out, y_ref)
    np.testing.assert_allclose(X_out, X_ref)
    expected = {"oversample": 60, "undersample": 9, "smote": 60}[method]
    assert set(_counts(y_out).values()) == {expected}


def test_resampling_is_seeded():
    X, y = _imbalanced()
    a, b, c = (resample(X, y, "smote", seed=s)[0] for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("method", ["none", "class_weight"])
def test_none_and_class_weight_return_the_input(method):
    X, y = _imbalanced()
    X_out, y_out = resample(X, y, method)
    assert X_out is X and y_out is y


@pytest.mark.parametrize("method", ["oversample", "undersample", "smote"])
def test_sparse_input_stays_sparse(method):
    X, y = _imbalanced()
    X[np.abs(X) < 1] = 0
    X_out, y_out = resample(sp.csr_matrix(X), y, method, seed=1)
    X_dense, y_dense = resample(X, y, method, seed=1)
    assert sp.issparse(X_out)
    np.testing.assert_array_equal(y_out, y_dense)
    np.testing.assert_allclose(X_out.toarray(), X_dense)


def test_smote_rows_lie_between_minority_neighbours():
    X, y = _imbalanced(counts=(80, 20))
    X_out, y_out = resample(X, y, "smote", seed=0)
    np.testing.assert_array_equal(X_out[: len(X)], X)  # originals first, unchanged
    synthetic = X_out[len(X):]
    assert len(synthetic) == 60 and (y_out[len(X):] == 1).all()
    minority = X[y == 1]
    _, neighbours = NearestNeighbors(n_neighbors=6).fit(minority).kneighbors(minority)
    for s in synthetic:
        found = False
        for i, row in enumerate(neighbours):
            for j in row[1:]:
                a, b = minority[i], minority[j]
                t = np.dot(s - a, b - a) / np.dot(b - a, b - a)
                if -1e-9 <= t <= 1 + 1e-9 and np.allclose(a + t * (b - a), s, atol=1e-9):
                    found = True
                    break
            if found:
                break
        assert found, "a SMOTE row is not on a segment between a minority row and one of its neighbours"


def test_smote_reduces_k_for_a_tiny_minority():
    X, y = _imbalanced(counts=(30, 3))
    X_out, y_out = resample(X, y, "smote", seed=2)
    X_ref, y_ref = SMOTE(k_neighbors=2, random_state=2).fit_resample(X, y)
    np.testing.assert_array_equal(y_out, y_ref)
    assert _counts(y_out) == {0: 30, 1: 30}
    np.testing.assert_allclose(X_out, X_ref)
    with pytest.raises(ValueError):  # imblearn's default k would fail here
        SMOTE(random_state=2).fit_resample(X, y)


def test_smote_refuses_a_single_row_class():
    X, y = _imbalanced(counts=(30, 1))
    with pytest.raises(DataError, match="data.balance") as err:
        resample(X, y, "smote")
    assert err.value.hint and "oversample" in err.value.hint
    assert _counts(resample(X, y, "oversample")[1]) == {0: 30, 1: 30}  # random oversampling copes


def test_regression_targets_are_refused():
    y = np.linspace(0, 1, 20)
    X = np.zeros((20, 2))
    for call in (lambda: class_weights(y), lambda: sample_weights(y), lambda: resample(X, y, "smote"),
                 lambda: resample(X, y, "none"), lambda: resample(X, np.arange(20.0), "oversample", task="regression")):
        with pytest.raises(RecipeError, match="data.balance.*class balancing is for classification"):
            call()
    # integer-valued float labels are classes
    assert class_weights(np.array([0.0, 0.0, 1.0])) == pytest.approx({0.0: 0.75, 1.0: 1.5})


def test_unknown_method_and_single_class():
    X, y = _imbalanced()
    with pytest.raises(RecipeError, match="data.balance") as err:
        resample(X, y, "smot")
    assert "smote" in err.value.hint
    with pytest.raises(DataError, match="single class"):
        resample(X[:5], np.zeros(5, dtype=int), "oversample")


def test_balancing_improves_minority_recall_on_pima():
    frame = load_builtin("pima_diabetes").frame
    X, y = frame.drop(columns="outcome").to_numpy(dtype=float), frame["outcome"].to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
    # make training imbalanced: positives are 15% of its rows (the held-out split keeps the real 35%)
    rng = np.random.default_rng(0)
    negatives, positives = np.flatnonzero(y_train == 0), np.flatnonzero(y_train == 1)
    keep = rng.choice(positives, size=round(len(negatives) * 0.15 / 0.85), replace=False)
    rows = np.sort(np.concatenate([negatives, keep]))
    X_train, y_train = X_train[rows], y_train[rows]
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

    def recall(method):
        model = LogisticRegression(max_iter=1000)
        if method == "class_weight":
            model.fit(X_train, y_train, sample_weight=sample_weights(y_train))
        else:
            model.fit(*resample(X_train, y_train, method, seed=0))
        return recall_score(y_test, model.predict(X_test), pos_label=1)

    baseline = recall("none")
    results = {m: recall(m) for m in METHODS[1:]}
    assert baseline < 0.5
    for method, value in results.items():
        assert value > baseline + 0.15, (method, value, baseline)
