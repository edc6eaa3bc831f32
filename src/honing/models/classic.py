"""Classic model types: scikit-learn and LightGBM estimators, by recipe name.

Every type is a factory ``(task, params, seed) -> estimator`` registered in :data:`MODELS` with the
tasks it does (``tasks=("classification", "regression")``).  Factories apply honing's defaults
under the user's ``model.params`` (the user wins) and seed ``random_state``.  :func:`make_model` is
the checked entry point: an unknown type, a type that does not do the task, an unknown parameter or
an invalid value raises a :class:`~honing.errors.ModelError` naming the recipe key.

Classifiers are trained on labels encoded as 0..K-1 and all support ``predict_proba``.
"""

from __future__ import annotations

import os
import re
from numbers import Integral, Real
from typing import Any

from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from honing.errors import ModelError, RecipeError, did_you_mean
from honing.registry import Registry

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)
BOTH = TASKS

#: The model types, by recipe name (``model.type`` / ``model.candidates``).
MODELS = Registry("model type", ModelError)

#: Types inside fitted models that skops does not trust by default but honing's own models contain;
#: a bundle loader trusts exactly these (plus the preprocessing's), nothing a bundle claims itself.
TRUSTED_TYPES = [
    "sklearn.tree._tree.Tree",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    *(f"sklearn.metrics._dist_metrics.{m}Distance64" for m in ("Euclidean", "Manhattan", "Chebyshev", "Minkowski")),
]

#: What the candidate name ``linear`` means for each task.
LINEAR = {CLASSIFICATION: "logistic_regression", REGRESSION: "ridge"}


def _seeded(defaults: dict[str, Any], params: dict[str, Any], seed: int | None) -> dict[str, Any]:
    """Defaults, then ``random_state=seed`` (when given), then the user's params on top."""
    merged = dict(defaults)
    if seed is not None:
        merged["random_state"] = seed
    merged.update(params)
    return merged


def _threads() -> int:
    """Threads for LightGBM: the CPUs this process may use, at most 8 (more rarely helps)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


# --------------------------------------------------------------------------- the model types


@MODELS.register(
    "logistic_regression", tasks=(CLASSIFICATION,),
    description="Linear model of the log-odds (L2-regularised); fast, a strong baseline.",
)
def _logistic_regression(task: str, params: dict, seed: int) -> Any:
    return LogisticRegression(**_seeded({"max_iter": 2000}, params, seed))


@MODELS.register(
    "linear_regression", tasks=(REGRESSION,),
    description="Ordinary least squares, no regularisation.",
)
def _linear_regression(task: str, params: dict, seed: int) -> Any:
    return LinearRegression(**params)


@MODELS.register(
    "ridge", tasks=(REGRESSION,),
    description="Least squares with an L2 penalty (alpha); robust to correlated features.",
)
def _ridge(task: str, params: dict, seed: int) -> Any:
    return Ridge(**_seeded({}, params, seed))


@MODELS.register(
    "lasso", tasks=(REGRESSION,),
    description="Least squares with an L1 penalty (alpha); drives weak features to zero.",
)
def _lasso(task: str, params: dict, seed: int) -> Any:
    return _standardised_target(Lasso(**_seeded({"alpha": 0.01, "max_iter": 10000}, params, seed)))


@MODELS.register(
    "elastic_net", tasks=(REGRESSION,),
    description="Least squares with a mix of L1 and L2 penalties (alpha, l1_ratio).",
)
def _elastic_net(task: str, params: dict, seed: int) -> Any:
    return _standardised_target(
        ElasticNet(**_seeded({"alpha": 0.01, "max_iter": 10000}, params, seed)))


@MODELS.register(
    "decision_tree", tasks=BOTH,
    description="A single decision tree; interpretable, prone to overfit without max_depth.",
)
def _decision_tree(task: str, params: dict, seed: int) -> Any:
    cls = DecisionTreeClassifier if task == CLASSIFICATION else DecisionTreeRegressor
    return cls(**_seeded({}, params, seed))


@MODELS.register(
    "random_forest", tasks=BOTH,
    description="Averaged bootstrapped decision trees (200 by default); robust, little tuning.",
)
def _random_forest(task: str, params: dict, seed: int) -> Any:
    cls = RandomForestClassifier if task == CLASSIFICATION else RandomForestRegressor
    return cls(**_seeded({"n_estimators": 200, "n_jobs": -1}, params, seed))


@MODELS.register(
    "extra_trees", tasks=BOTH,
    description="Extremely randomised trees (200 by default); like a random forest, faster.",
)
def _extra_trees(task: str, params: dict, seed: int) -> Any:
    cls = ExtraTreesClassifier if task == CLASSIFICATION else ExtraTreesRegressor
    return cls(**_seeded({"n_estimators": 200, "n_jobs": -1}, params, seed))


@MODELS.register(
    "lightgbm", tasks=BOTH,
    description="Gradient-boosted trees (LightGBM, 300 rounds at 0.05); usually the most accurate.",
)
def _lightgbm(task: str, params: dict, seed: int) -> Any:
    cls = LGBMClassifier if task == CLASSIFICATION else LGBMRegressor
    defaults = {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "n_jobs": _threads(),
        "verbose": -1,
    }
    return cls(**_seeded(defaults, params, seed))


@MODELS.register(
    "svm", tasks=BOTH,
    description="Support vector machine (RBF kernel); good on small scaled data, slow on large.",
)
def _svm(task: str, params: dict, seed: int) -> Any:
    if task == REGRESSION:
        return _standardised_target(SVR(**params))
    # SVC(probability=True) is deprecated since scikit-learn 1.9: Platt scaling via calibration.
    return CalibratedClassifierCV(SVC(**_seeded({}, params, seed)), ensemble=False)


@MODELS.register(
    "knn", tasks=BOTH,
    description="k nearest neighbours (5 by default); no training, needs scaled features.",
)
def _knn(task: str, params: dict, seed: int) -> Any:
    cls = KNeighborsClassifier if task == CLASSIFICATION else KNeighborsRegressor
    return cls(**params)


@MODELS.register(
    "naive_bayes", tasks=(CLASSIFICATION,),
    description="Gaussian naive Bayes; very fast, assumes independent normal features.",
)
def _naive_bayes(task: str, params: dict, seed: int) -> Any:
    return GaussianNB(**params)


# --------------------------------------------------------------------------- building models


for _net, _what in {
    "mlp": "Multi-layer perceptron for tabular data (hidden, activation, dropout, norm); trained by honing's loop.",
    "cnn": "Convolutional network for images given as pixel columns (channels, kernel, pool, batch_norm).",
    "rnn": "Recurrent network over token ids (data.text: tokens) or float sequences (embed_dim, hidden, layers).",
    "lstm": "LSTM over token ids (data.text: tokens) or float sequences (embed_dim, hidden, layers, bidirectional).",
    "gru": "GRU over token ids (data.text: tokens) or float sequences (embed_dim, hidden, layers, bidirectional).",
    "transformer": "Transformer encoder over token ids (data.text: tokens) (d_model, heads, layers, ff, pooling).",
    "pretrained": "A pretrained network (model.pretrained: builtin:minilm, a model folder or a bundle) with a new "
                  "head, fine-tuned as model.finetune says.",
}.items():
    MODELS.register(_net, tasks=BOTH, neural=True, description=_what)(None)


def _neural(net: str, task: str, params: dict, seed: int, train: Any, options: dict) -> Any:
    """A honing neural estimator (imported lazily: classic models never pay for importing torch)."""
    from honing.models.estimators import from_recipe
    from honing.models.nets import check_net_params
    from honing.recipe import TrainConfig

    if net == "pretrained":
        if not options.get("pretrained"):
            raise ModelError("model.type: pretrained needs model.pretrained", "e.g. model.pretrained: builtin:minilm")
    else:
        check_net_params(net, {k: v for k, v in params.items() if k != "input_shape"})
    return from_recipe(net, task, params, train or TrainConfig(), seed, **options)


def neural_options(recipe: Any) -> dict[str, Any]:
    """The recipe's settings for neural estimators beyond model.params and train: the training
    batches' augmentation (data.augment) and the fine-tuning (model.pretrained, model.finetune)."""
    batch_steps = [s for s in recipe.data.augment if s.get("name") != "text"]
    pretrained = recipe.model.pretrained
    return {"augment": batch_steps or None, "pretrained": pretrained,
            "finetune": recipe.model.finetune.model_dump(mode="json") if pretrained else None}


def make_model(type: str, task: str, params: dict | None = None, seed: int = 0, train: Any = None,
               options: dict | None = None) -> Any:
    """An unfitted estimator of model ``type`` for ``task``, with ``params`` checked and applied.

    ``train`` (the recipe's ``train:`` section) configures neural types, and so do ``options``
    (:func:`neural_options`); classic types ignore both.
    Raises :class:`ModelError` naming ``model.type`` or ``model.params.KEY`` for user mistakes.
    """
    _check_task(task)
    entry = MODELS.entry(type, key="model.type")
    if task not in entry.meta["tasks"]:
        raise ModelError(
            f"model.type: '{type}' does not do {task}",
            f"types that do: {', '.join(MODELS.names(tasks=task))}",
        )
    params = {str(k): v for k, v in (params or {}).items()}
    if entry.meta.get("neural"):
        return _neural(type, task, params, seed, train, options or {})
    _check_param_names(type, core_estimator(entry.obj(task, {}, seed)), params)
    estimator = entry.obj(task, params, seed)
    _check_param_values(core_estimator(estimator), params)
    return estimator


def check_model_names(type: str, candidates: list[str], params: dict | None = None) -> None:
    """Fail fast, before any data is read, on an unknown model type, candidate or parameter name
    (parameter names are checked against every task the type does; the task is not known yet)."""
    if type == "auto":
        for name in candidates:
            if name != "linear":
                MODELS.entry(name, key="model.candidates")
        if params:  # whose parameters would they be?
            raise RecipeError(f"model.params: {', '.join(params)} set, but model.type is auto (a portfolio of "
                              f"{', '.join(candidates)}, each with its defaults)",
                              "set model.type to the one model these parameters are for, or remove model.params")
        return
    entry = MODELS.entry(type, key="model.type")
    if type == "pretrained":
        known = set()  # the network keeps its own architecture; model.finetune says how it trains
    elif entry.meta.get("neural"):
        from honing.models.nets import net_params

        known = {*net_params(type), "input_shape"}
    else:
        known = set()
        for task in entry.meta["tasks"]:
            known |= set(core_estimator(entry.obj(task, {}, 0)).get_params(deep=False))
    for key in params or {}:
        if str(key) not in known:
            raise ModelError(f"model.params.{key}: not a parameter of {type}", did_you_mean(str(key), known))


def make_baseline(task: str, seed: int = 0) -> Any:
    """The trivial model every run is compared with: most frequent class, or the mean."""
    _check_task(task)
    if task == CLASSIFICATION:
        # "prior": predicts the most frequent class, with the class frequencies as probabilities
        # (so its log loss and ROC-AUC are those of an honest know-nothing model)
        return DummyClassifier(strategy="prior", random_state=seed)
    return DummyRegressor(strategy="mean")


def _standardised_target(regressor: Any) -> TransformedTargetRegressor:
    """Fit on a standardised target, so defaults like alpha=1 or epsilon=0.1 mean the same whatever
    the target's units (an SVR on house prices in dollars would otherwise predict nearly a constant)."""
    return TransformedTargetRegressor(regressor=regressor, transformer=StandardScaler())


def core_estimator(estimator: Any) -> Any:
    """The estimator whose parameters the user sets (inside the calibration / target wrappers)."""
    if isinstance(estimator, CalibratedClassifierCV):
        return estimator.estimator
    if isinstance(estimator, TransformedTargetRegressor):
        return estimator.regressor
    return estimator


def resolve_candidates(names: list[str], task: str) -> list[str]:
    """The model types to try for ``task``: ``linear`` resolved, unknown names rejected,
    types that do not do the task dropped, duplicates removed (first kept)."""
    _check_task(task)
    out: list[str] = []
    for name in names:
        name = LINEAR[task] if name == "linear" else str(name)
        if name not in MODELS:
            raise ModelError(
                f"model.candidates: unknown model type '{name}'",
                did_you_mean(name, [*MODELS.names(), "linear"]),
            )
        if task in MODELS.entry(name).meta["tasks"] and name not in out:
            out.append(name)
    if not out:
        raise ModelError(
            f"model.candidates: none of {list(names)} does {task}",
            f"add one of: linear, {', '.join(MODELS.names(tasks=task))}",
        )
    return out


def model_table() -> list[dict[str, Any]]:
    """One row per model type (name, tasks, estimators, description), for ``honing models``."""
    rows = []
    for name in MODELS.names():
        entry = MODELS.entry(name)
        tasks = list(entry.meta["tasks"])
        rows.append(
            {
                "name": name,
                "tasks": tasks,
                "estimators": [_class_name(entry.obj(task, {}, 0)) for task in tasks]
                if not entry.meta.get("neural") else ["NeuralClassifier", "NeuralRegressor"],
                "description": entry.meta["description"],
            }
        )
    return rows


def _class_name(estimator: Any) -> str:
    core = core_estimator(estimator)
    if core is estimator:
        return type(estimator).__name__
    return f"{type(estimator).__name__}({type(core).__name__})"


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


# --------------------------------------------------------------------------- parameter checks


def _check_param_names(type: str, default: Any, params: dict[str, Any]) -> None:
    known = default.get_params(deep=False)
    for key in params:
        if key not in known:
            raise ModelError(
                f"model.params.{key}: not a parameter of {type}", did_you_mean(key, known)
            )


_SKLEARN_MESSAGE = re.compile(r"The '(?P<key>\w+)' parameter of \w+ (?P<rest>.*)", re.DOTALL)


def _check_param_values(estimator: Any, params: dict[str, Any]) -> None:
    """Reject invalid values with the estimator's own validation (our rules for LightGBM)."""
    if isinstance(estimator, (LGBMClassifier, LGBMRegressor)):
        _check_lightgbm(params)
        return
    validate = getattr(estimator, "_validate_params", None)
    if validate is None:
        return
    try:
        validate()
    except (ValueError, TypeError) as exc:
        message = str(exc).strip()
        match = _SKLEARN_MESSAGE.match(message)
        key = match["key"] if match else None
        where = f"model.params.{key}" if key else "model.params"
        what = match["rest"].rstrip(".") if match else message
        raise ModelError(
            f"{where}: {what}", f"see the scikit-learn documentation of {type(estimator).__name__}"
        ) from None


def _is_int(v: Any) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _in_unit(v: Any) -> bool:
    return _is_real(v) and 0 < v <= 1


def _non_negative(v: Any) -> bool:
    return _is_real(v) and v >= 0


_LIGHTGBM_RULES: dict[str, tuple[Any, str]] = {
    "n_estimators": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "num_leaves": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
    "max_depth": (_is_int, "an int (<= 0 means no limit)"),
    "learning_rate": (lambda v: _is_real(v) and v > 0, "a number > 0"),
    "subsample": (_in_unit, "a number in (0, 1]"),
    "colsample_bytree": (_in_unit, "a number in (0, 1]"),
    "subsample_freq": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "subsample_for_bin": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "min_child_samples": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "min_child_weight": (_non_negative, "a number >= 0"),
    "min_split_gain": (_non_negative, "a number >= 0"),
    "reg_alpha": (_non_negative, "a number >= 0"),
    "reg_lambda": (_non_negative, "a number >= 0"),
    "n_jobs": (lambda v: v is None or _is_int(v), "an int or null"),
    "boosting_type": (lambda v: v in ("gbdt", "dart", "rf", "goss"), "one of gbdt, dart, rf, goss"),
    "class_weight": (lambda v: v is None or v == "balanced" or isinstance(v, dict), "'balanced', a mapping or null"),
}


def _check_lightgbm(params: dict[str, Any]) -> None:
    for key, value in params.items():
        rule = _LIGHTGBM_RULES.get(key)
        if rule is not None and not rule[0](value):
            raise ModelError(
                f"model.params.{key}: must be {rule[1]}, got {value!r}",
                "see the LightGBM documentation of the scikit-learn API (LGBMClassifier / LGBMRegressor)",
            )
