"""Knowledge distillation: the loss against numpy, students of a random forest, LightGBM and a forest
regressor against their teachers (scikit-learn metrics, agreement), and the student as a normal estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer, make_friedman1
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from honing.bundle.predictor import LightGBMModel
from honing.compression.distill import DistillationLoss, distill, distillation_loss, soft_targets
from honing.errors import CompressionError
from honing.models.estimators import NeuralClassifier, NeuralRegressor, import_state
from honing.recipe import TrainConfig

STUDENT = {"type": "mlp", "params": {"hidden": [64], "dropout": 0.0}}


def split(X, y, stratify=True):
    """Train / validation / test, standardised on train (the bundle's preprocessed matrix)."""
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y if stratify else None)
    X_tr, X_va, y_tr, y_va = train_test_split(X_tr, y_tr, test_size=0.2, random_state=0,
                                              stratify=y_tr if stratify else None)
    scaler = StandardScaler().fit(X_tr)
    return [scaler.transform(a).astype(np.float32) for a in (X_tr, X_va, X_te)], (y_tr, y_va, y_te)


@pytest.fixture(scope="module")
def cancer():
    return split(*load_breast_cancer(return_X_y=True))


@pytest.fixture(scope="module")
def forest(cancer):
    (X_tr, _, _), (y_tr, _, _) = cancer
    return RandomForestClassifier(n_estimators=100, random_state=0).fit(X_tr, y_tr)


# ---------------------------------------------------------------------- the loss

def numpy_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_soft_targets_are_sharpened_or_softened_teacher_probabilities():
    p = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]])
    expected = p[0] ** 0.5 / (p[0] ** 0.5).sum()  # T = 2
    np.testing.assert_allclose(soft_targets(p, 2.0)[0], expected, rtol=1e-6)
    np.testing.assert_allclose(soft_targets(p, 1.0)[0], p[0], rtol=1e-6)
    second = soft_targets(p, 2.0)[1]  # zeros are clipped to 1e-6 before the power: no log(0), still ~one-hot
    np.testing.assert_allclose(second, np.array([1e-3, 1, 1e-3]) / 1.002, rtol=1e-4)
    assert np.all(second > 0)


@pytest.mark.parametrize(("temperature", "alpha"), [(2.0, 0.5), (4.0, 0.9), (1.0, 1.0)])
def test_loss_matches_a_hand_computation(temperature, alpha):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 3)) * 2
    soft = soft_targets(rng.dirichlet(np.ones(3), size=5), temperature).astype(np.float64)
    hard = np.array([0, 2, 1, 1, 0])

    log_q = numpy_log_softmax(logits / temperature)
    kl = np.mean(np.sum(soft * (np.log(soft) - log_q), axis=1))
    ce = np.mean(-numpy_log_softmax(logits)[np.arange(5), hard])
    expected = alpha * temperature**2 * kl + (1 - alpha) * ce

    got = distillation_loss(torch.tensor(logits), torch.tensor(soft), torch.tensor(hard), temperature, alpha)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    packed = torch.tensor(np.column_stack([soft, hard]))  # what the trainer hands over
    assert float(DistillationLoss(temperature, alpha)(torch.tensor(logits), packed)) == pytest.approx(expected)


def test_alpha_zero_is_cross_entropy():
    rng = np.random.default_rng(1)
    logits, hard = torch.tensor(rng.normal(size=(8, 4))), torch.tensor(rng.integers(0, 4, 8))
    soft = torch.tensor(soft_targets(rng.dirichlet(np.ones(4), size=8), 3.0), dtype=torch.float64)
    assert float(distillation_loss(logits, soft, hard, 3.0, 0.0)) == pytest.approx(float(F.cross_entropy(logits, hard)))


def test_alpha_zero_trains_like_the_plain_classifier(cancer, forest):
    """With alpha = 0 the teacher is ignored: the student's training losses are those of a NeuralClassifier
    trained on the true labels with the same seed."""
    (X_tr, _, _), (y_tr, _, _) = cancer
    student = distill(forest, X_tr, y_tr, task="classification", student=STUDENT, alpha=0.0, epochs=3, seed=7)
    plain = NeuralClassifier(net="mlp", net_params=STUDENT["params"], epochs=3, early_stopping=False,
                             random_state=7).fit(X_tr, y_tr)
    np.testing.assert_allclose([row["loss"] for row in student.history_], [row["loss"] for row in plain.history_],
                               rtol=1e-5)


# ---------------------------------------------------------------------- teachers

def check_student(student, teacher, X_te, y_te, tolerance=0.03, agreement=0.9):
    """The student is nearly as accurate as the teacher and agrees with it on most test rows."""
    teacher_pred = teacher.predict_proba(X_te).argmax(axis=1)
    student_pred = student.predict(X_te)
    assert accuracy_score(y_te, student_pred) >= accuracy_score(y_te, teacher_pred) - tolerance
    assert (student_pred == teacher_pred).mean() >= agreement


def test_distil_a_random_forest(cancer, forest):
    (X_tr, X_va, X_te), (y_tr, y_va, y_te) = cancer
    student = distill(forest, X_tr, y_tr, task="classification", student=STUDENT, temperature=2.0, alpha=0.7,
                      epochs=30, validation=(X_va, y_va), train={"batch_size": 32}, seed=0)
    check_student(student, forest, X_te, y_te)
    assert isinstance(student, NeuralClassifier) and not student.module_.training
    assert student.classes_.tolist() == [0, 1] and student.n_features_in_ == X_tr.shape[1]
    assert "val_accuracy" in student.history_[-1] and len(student.history_) <= 30


def test_distil_lightgbm(cancer):
    import lightgbm

    (X_tr, X_va, X_te), (y_tr, y_va, y_te) = cancer
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_leaves": 8, "seed": 0},
                             lightgbm.Dataset(X_tr, y_tr), num_boost_round=60)
    teacher = LightGBMModel(booster, "classification", 2)
    student = distill(teacher, X_tr, y_tr, task="classification", student=STUDENT, epochs=30,
                      validation=(X_va, y_va), train={"batch_size": 32}, seed=0)
    check_student(student, teacher, X_te, y_te)


class WrongRule:
    """A teacher that is mostly wrong on breast_cancer: P(class 1) rises with feature 3 (mean area), while
    a large area means class 0 (malignant)."""

    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-4 * X[:, 3]))
        return np.column_stack([1 - p, p])


def test_alpha_weighs_the_teacher_against_the_labels(cancer):
    """alpha = 1 imitates even a wrong teacher; alpha = 0 learns the labels and ignores it."""
    (X_tr, _, X_te), (y_tr, _, y_te) = cancer
    teacher = WrongRule()
    rule = teacher.predict_proba(X_te).argmax(axis=1)
    assert accuracy_score(y_te, rule) < 0.3
    fit = {"task": "classification", "student": STUDENT, "epochs": 30, "train": {"batch_size": 32}, "seed": 0}
    imitator = distill(teacher, X_tr, y_tr, alpha=1.0, **fit).predict(X_te)
    assert (imitator == rule).mean() >= 0.9
    learner = distill(teacher, X_tr, y_tr, alpha=0.0, **fit).predict(X_te)
    assert accuracy_score(y_te, learner) >= 0.9


def test_distil_a_neural_teacher_with_three_classes():
    from sklearn.datasets import load_wine

    (X_tr, _, X_te), (y_tr, _, y_te) = split(*load_wine(return_X_y=True))
    teacher = NeuralClassifier(net="mlp", net_params={"hidden": [128, 64]}, epochs=40, batch_size=16,
                               early_stopping=False, random_state=0).fit(X_tr, y_tr)
    student = distill(teacher, X_tr, y_tr, task="classification", student={"type": "mlp", "params": {"hidden": [8]}},
                      temperature=3.0, epochs=60, train={"batch_size": 16}, seed=0)
    check_student(student, teacher, X_te, y_te, tolerance=0.06, agreement=0.9)
    assert len(student.history_) == 60  # no validation: no early stopping


def test_distil_a_forest_regressor():
    X, y = make_friedman1(n_samples=800, noise=0.5, random_state=0)
    (X_tr, X_va, X_te), (y_tr, y_va, y_te) = split(X, y, stratify=False)
    teacher = RandomForestRegressor(n_estimators=100, random_state=0).fit(X_tr, y_tr)
    student = distill(teacher, X_tr, y_tr, task="regression", student={"type": "mlp", "params": {"hidden": [64, 32]}},
                      alpha=0.8, epochs=80, validation=(X_va, y_va), train={"optimizer": {"lr": 3e-3}}, seed=0)
    assert isinstance(student, NeuralRegressor)
    teacher_r2 = r2_score(y_te, teacher.predict(X_te))
    assert teacher_r2 > 0.7
    assert r2_score(y_te, student.predict(X_te)) >= teacher_r2 - 0.05


# ---------------------------------------------------------------------- the student as an estimator

def test_the_student_survives_export_and_import(cancer, forest):
    (X_tr, _, X_te), (y_tr, _, _) = cancer
    student = distill(forest, X_tr, y_tr, task="classification", student=STUDENT, epochs=2,
                      train=TrainConfig(batch_size=64), seed=0)
    assert student.train_config().batch_size == 64 and student.train_config().epochs == 2
    loaded = import_state(*student.export_state())
    np.testing.assert_array_equal(loaded.predict_proba(X_te), student.predict_proba(X_te))
    np.testing.assert_array_equal(loaded.classes_, student.classes_)


def test_bad_settings_are_compression_errors(cancer, forest):
    (X_tr, _, _), (y_tr, _, _) = cancer
    fit = {"task": "classification", "student": STUDENT, "epochs": 1}
    with pytest.raises(CompressionError, match="alpha"):
        distill(forest, X_tr, y_tr, **{**fit, "alpha": 1.5})
    with pytest.raises(CompressionError, match="temperature"):
        distill(forest, X_tr, y_tr, **{**fit, "temperature": 0})
    with pytest.raises(CompressionError, match="student needs a type"):
        distill(forest, X_tr, y_tr, **{**fit, "student": {"params": {}}})
    with pytest.raises(CompressionError, match="no predict_proba"):
        distill(RandomForestRegressor(n_estimators=2).fit(X_tr, y_tr), X_tr, y_tr, **fit)
    with pytest.raises(CompressionError, match="not among the teacher's classes"):
        distill(forest, X_tr, y_tr + 5, **fit)
