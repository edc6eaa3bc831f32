"""``honing tune`` on a generation recipe (``data.task: generation``): its metric, search space and trials.

The tuning machinery calls in here for generation recipes: :func:`tune_metric` (char_lm: validation
perplexity, minimised; vae: validation ELBO, maximised), :func:`tune_space` (``tune.space``, or the model
type's default space below, checked by building the model of every bound) and :func:`tune_trial` (train
with the generation flow, reporting the validation loss every epoch so that a pruner can stop the trial).
"""

from __future__ import annotations

import json
import time
from typing import Any

from honing.errors import RecipeError
from honing.generative_flow import _model_type, _pretrained, _train_lm, _train_vae, load_pixels, load_text
from honing.progress import SILENT
from honing.recipe import Recipe
from honing.training.seed import seed_everything

LOG = {"log": True}
#: The default search spaces of the generative model types (recipe path → spec).
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "char_lm": {"train.optimizer.lr": {"float": [3e-4, 1e-2], **LOG},
                "model.params.d_model": {"choice": [32, 64, 96]},
                "model.params.dropout": {"float": [0.0, 0.3]}},
    "vae": {"train.optimizer.lr": {"float": [3e-4, 1e-2], **LOG},
            "model.params.latent": {"choice": [2, 4, 8, 16]},
            "model.params.hidden": {"choice": [64, 128, 256]}},
}


def _kind(recipe: Recipe) -> str:
    """The model type a generation recipe trains (a pretrained bundle's own, read from its manifest)."""
    if recipe.model.pretrained:
        from honing.pretrained_sources import resolve

        manifest = json.loads((resolve(recipe.model.pretrained).path / "manifest.json").read_text())
        return str(manifest.get("model_type"))
    return _model_type(recipe, None)


def tune_metric(recipe: Recipe) -> tuple[str, bool]:
    """The objective's metric and whether greater is better."""
    return ("perplexity", False) if _kind(recipe) == "char_lm" else ("elbo", True)


def tune_space(recipe: Recipe) -> tuple:
    """The checked dimensions of ``tune.space`` (default: :data:`DEFAULT_SPACES` of the model type)."""
    from honing.models.language_model import CharLanguageModel, CharVocabulary
    from honing.models.vae import VAEModel
    from honing.recipe import validate_recipe
    from honing.tuning.space import check_space, parse_space

    kind = _kind(recipe)
    dims = parse_space(recipe.tune.space if recipe.tune.space is not None else DEFAULT_SPACES[kind])

    def check(raw: dict) -> None:
        sample = validate_recipe(raw)
        if kind == "char_lm" and not sample.model.pretrained:
            CharLanguageModel(CharVocabulary("ab"), sample.model.params)
        elif not sample.model.pretrained:
            VAEModel((2, 2), 1.0, sample.model.params)

    check_space(dims, recipe.model_dump(mode="json"), check)
    return dims


def tune_trial(recipe: Recipe, trial: Any = None) -> tuple[tuple[float, ...], dict[str, Any]]:
    """One trial: the recipe trained by the generation flow (the validation loss reported every epoch),
    scored by its validation perplexity (char_lm) or ELBO (vae)."""
    import optuna

    from honing.tuning.objective import EpochReporter

    seed_everything(recipe.seed)
    base = _pretrained(recipe, SILENT)
    kind = _model_type(recipe, base)
    data = load_text(recipe) if kind == "char_lm" else load_pixels(recipe)
    # val_loss is log-perplexity (minimised) for char_lm and −ELBO for vae (whose ELBO is maximised)
    reporter = EpochReporter(trial, "val_loss", 1.0 if kind == "char_lm" else -1.0)
    start = time.perf_counter()
    train = _train_lm if kind == "char_lm" else _train_vae
    _, metrics = train(recipe, data, base, SILENT, (reporter,))
    if reporter.pruned and trial is not None:
        trial.set_user_attr("epochs", reporter.steps)
        raise optuna.TrialPruned(f"pruned at epoch {reporter.steps}")
    validation = {k: float(v) for k, v in metrics.get("validation", {}).items()}
    if not validation:
        raise RecipeError("data.split.validation: a generation trial is scored on the validation split, which is "
                          "empty", "set data.split.validation > 0")
    attrs = {"model": kind, "validation": validation, "fit_seconds": round(time.perf_counter() - start, 3),
             "epochs": reporter.steps, "refit": {}}
    return (validation[metrics["selection_metric"]],), attrs
