"""The search space used when a recipe gives no ``tune.space``: a sensible one per model type.

The ranges are those practitioners start from (learning rates on a log scale, tree sizes and
regularisation around the libraries' defaults).  ``model.type: auto`` searches the model family
itself, each candidate with its own space.  ``docs/tuning.md`` lists them (a test keeps it current).
"""

from __future__ import annotations

from typing import Any

from honing.errors import RecipeError

LOG = {"log": True}

_TREES = {
    "model.params.n_estimators": {"int": [100, 500], "step": 50},
    "model.params.max_depth": {"choice": [None, 8, 16, 32]},
    "model.params.min_samples_leaf": {"int": [1, 20], **LOG},
    "model.params.max_features": {"choice": ["sqrt", 0.5, 1.0]},
}
_NEURAL = {
    "train.optimizer.lr": {"float": [1e-4, 3e-2], **LOG},
    "train.optimizer.weight_decay": {"float": [1e-6, 1e-2], **LOG},
    "model.params.dropout": {"float": [0.0, 0.5]},
}

#: model type → default space (recipe path → spec).
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "lightgbm": {
        "model.params.learning_rate": {"float": [0.01, 0.3], **LOG},
        "model.params.num_leaves": {"int": [8, 128], **LOG},
        "model.params.min_child_samples": {"int": [5, 100], **LOG},
        "model.params.colsample_bytree": {"float": [0.5, 1.0]},
        "model.params.reg_lambda": {"float": [1e-3, 10.0], **LOG},
    },
    "random_forest": _TREES,
    "extra_trees": _TREES,
    "decision_tree": {
        "model.params.max_depth": {"int": [2, 20]},
        "model.params.min_samples_leaf": {"int": [1, 50], **LOG},
    },
    "logistic_regression": {"model.params.C": {"float": [1e-3, 100.0], **LOG}},
    "ridge": {"model.params.alpha": {"float": [1e-4, 100.0], **LOG}},
    "lasso": {"model.params.alpha": {"float": [1e-5, 1.0], **LOG}},
    "elastic_net": {
        "model.params.alpha": {"float": [1e-5, 1.0], **LOG},
        "model.params.l1_ratio": {"float": [0.05, 0.95]},
    },
    "svm": {
        "model.params.C": {"float": [1e-2, 100.0], **LOG},
        "model.params.gamma": {"float": [1e-4, 1.0], **LOG},
    },
    "knn": {
        "model.params.n_neighbors": {"int": [1, 50], **LOG},
        "model.params.weights": {"choice": ["uniform", "distance"]},
    },
    "naive_bayes": {"model.params.var_smoothing": {"float": [1e-11, 1e-5], **LOG}},
    "mlp": {**_NEURAL, "model.params.hidden": {"layers": [1, 3], "width": [16, 256], **LOG},
            "train.batch_size": {"choice": [64, 128, 256]}},
    "cnn": {**_NEURAL, "model.params.channels": {"layers": [1, 3], "width": [8, 64], **LOG}},
    **{net: {**_NEURAL, "model.params.hidden": {"int": [32, 256], **LOG}, "model.params.layers": {"int": [1, 2]}}
       for net in ("rnn", "lstm", "gru")},
    "transformer": {**_NEURAL, "model.params.layers": {"int": [1, 4]}, "model.params.d_model": {"choice": [32, 64, 128]}},
}


def default_space(model_type: str, candidates: list[str]) -> dict[str, Any]:
    """The space searched for ``model_type`` (``auto``: the family among ``candidates``, each with
    its own space; candidates must already be resolved for the task)."""
    if model_type == "auto":
        return {"model.type": {"choice": {c: None for c in candidates}}}
    space = DEFAULT_SPACES.get(model_type)
    if not space:
        raise RecipeError(f"tune.space: {model_type} has no hyperparameters to search by default",
                          "give tune.space, or tune another model.type")
    return space


def option_space(option: Any) -> dict[str, Any]:
    """The sub-space of a ``model.type`` option left ``null``: its family's default (empty for a
    family with nothing to tune, e.g. linear_regression)."""
    return DEFAULT_SPACES.get(str(option), {})


def markdown() -> str:
    """``docs/tuning.md``'s table of default spaces."""
    lines = ["| model type | path | spec |", "|---|---|---|"]
    for model_type, space in DEFAULT_SPACES.items():
        for path, spec in space.items():
            text = ", ".join(f"{k}: {_yaml(v)}" for k, v in spec.items())
            lines.append(f"| {model_type} | `{path}` | `{{{text}}}` |")
    return "\n".join(lines)


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value)
