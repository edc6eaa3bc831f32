"""The generation flow (``data.task: generation``): a character-level language model on text, or a VAE on images.

recipe → data (a text column or a .txt file; or pixel columns) → seeded train / validation / test split →
the network trained by honing's :class:`~honing.training.trainer.Trainer` (optionally starting from an
earlier generation bundle, ``model.pretrained``) → held-out metrics (char_lm: perplexity; vae: ELBO)
beside a simple baseline → samples (text, or a grid PNG) → the run directory: bundle (safetensors and a
JSON description, vocabulary included), recipe.yaml, metrics.json, history.csv, plots/, report.html.

Model types (``model.type``): ``char_lm``, ``vae``; ``auto`` picks char_lm for text and vae for pixels;
``model.pretrained: BUNDLE`` (type ``pretrained``) continues training the bundle's own model.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from honing.data.schema import Column, Schema
from honing.errors import DataError, RecipeError, did_you_mean, with_article
from honing.models.language_model import CharLanguageModel, CharVocabulary, sequence_loss
from honing.models.vae import VAEModel, save_grid, vae_loss
from honing.progress import Progress
from honing.recipe import Recipe
from honing.training.seed import seed_everything

MODEL_TYPES = ("char_lm", "vae")
#: Estimators a generation bundle may hold (the manifest's ``torch.estimator``).
def train_generative(recipe: Recipe, run_dir: Path, tmp: Path, progress: Progress,
                     checkpoints: Path | None = None) -> Any:
    """Train ``recipe``'s generative model into ``tmp``; the :class:`~honing.train_flow.RunResult` of ``run_dir``.
    With ``checkpoints`` (a folder), every epoch is saved as ``checkpoints/<model type>.pt``, and a
    checkpoint already there (an interrupted run, resumed) is continued."""
    from honing.train_flow import RunResult

    seed_everything(recipe.seed)
    base = _pretrained(recipe, progress)
    kind = _model_type(recipe, base)
    with progress.step(f"loading {recipe.data.source}"):
        data = load_text(recipe) if kind == "char_lm" else load_pixels(recipe)
    for note in data["notes"]:
        progress.note(note)
    train_fn = _train_lm if kind == "char_lm" else _train_vae
    checkpoint = checkpoints / f"{kind}.pt" if checkpoints is not None else None
    model, metrics = train_fn(recipe, data, base, progress, checkpoint=checkpoint)
    metrics = {"task": "generation", "model": kind, "selection_metric": metrics.pop("selection_metric"),
               "target": data["column"], "rows": data["rows"], **metrics}
    with progress.step(f"writing {run_dir}"):
        _write_run(tmp, recipe, kind, model, data, metrics)
    return RunResult(run_dir, recipe, "generation", kind, metrics, metrics["leaderboard"], data["notes"])


def _pretrained(recipe: Recipe, progress: Progress) -> Any:
    """The generative model of the bundle in ``model.pretrained`` (None without one)."""
    spec = recipe.model.pretrained
    if not spec:
        return None
    from honing.loading import TRUSTED_TYPES
    from honing.pretrained_sources import resolve

    source = resolve(spec)
    if source.kind != "bundle":
        raise RecipeError(f"model.pretrained: '{spec}' is not a honing bundle; generation fine-tunes the char_lm "
                          "or vae of an earlier honing bundle", "give the bundle (or run directory) of a "
                          "data.task: generation run")
    from honing.bundle import load_bundle

    with progress.step(f"loading the pretrained bundle {source.path}"):
        bundle = load_bundle(source.path, trusted=TRUSTED_TYPES)
    if bundle.task != "generation":
        raise RecipeError(f"model.pretrained: '{spec}' is {with_article(bundle.task)} bundle, not a generative one",
                          "give the bundle of a data.task: generation run")
    bundle.model.kind = bundle.manifest.get("model_type")
    if recipe.model.params:
        progress.note("model.params are ignored: fine-tuning keeps the pretrained bundle's architecture")
    return bundle.model


def _model_type(recipe: Recipe, base: Any) -> str:
    kind = recipe.model.type
    if base is not None:
        return base.kind
    if kind == "auto":
        return "char_lm" if _is_text_source(recipe.data.source) or recipe.data.source == "builtin:sst2" else "vae"
    if kind not in MODEL_TYPES:
        raise RecipeError(f"model.type: '{kind}' is not a generative model (data.task: generation)",
                          did_you_mean(kind, MODEL_TYPES))
    return kind


def _is_text_source(source: str) -> bool:
    return str(source).lower().endswith(".txt")


def evaluate_rows(bundle: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """``honing evaluate`` of a generative bundle: the perplexity of the text column's rows (joined by line
    breaks, as in training) or the mean ELBO of the pixel rows."""
    rows = bundle.prepare(frame) if bundle.prepare else frame  # DataError naming missing columns
    if bundle.manifest.get("model_type") == "char_lm":
        values = rows.iloc[:, 0].dropna().astype(str)
        return {"rows": len(values), **bundle.model.evaluate("".join(v + "\n" for v in values))}
    return {"rows": len(rows), **bundle.model.evaluate(rows.to_numpy(dtype=float))}


# ------------------------------------------------------------------------------------------ data


def _read(recipe: Recipe) -> tuple[pd.DataFrame, str | None]:
    """The table and the builtin's default target (None for files)."""
    from honing.data.sources import BUILTIN_PREFIX, read_table

    source = recipe.data.source
    frame = read_table(source, delimiter=recipe.data.read.delimiter, encoding=recipe.data.read.encoding)
    default = None
    if source.startswith(BUILTIN_PREFIX):
        from honing.data.builtin import load_builtin

        default = load_builtin(source[len(BUILTIN_PREFIX):]).target
    return frame, default


def _split_rows(n: int, recipe: Recipe) -> dict[str, np.ndarray]:
    """Seeded row indices of each split (data.split.validation / test fractions)."""
    order = np.random.default_rng(recipe.seed).permutation(n)
    n_val, n_test = round(n * recipe.data.split.validation), round(n * recipe.data.split.test)
    return {"validation": np.sort(order[:n_val]), "test": np.sort(order[n_val:n_val + n_test]),
            "train": np.sort(order[n_val + n_test:])}


def load_text(recipe: Recipe) -> dict[str, Any]:
    """The splits of a text column (one row = one line, rows joined by line breaks) or of a .txt file
    (contiguous parts: the first for training, then validation, then test)."""
    cfg, notes = recipe.data, []
    if _is_text_source(cfg.source):
        path = Path(cfg.source)
        if not path.is_file():
            raise DataError(f"data.source: '{cfg.source}' does not exist", "check the path of the text file")
        text = path.read_text(encoding=cfg.read.encoding or "utf-8", errors="replace")
        n = len(text)
        a, b = round(n * (1 - cfg.split.validation - cfg.split.test)), round(n * (1 - cfg.split.test))
        splits, column, rows = {"train": text[:a], "validation": text[a:b], "test": text[b:]}, None, {}
    else:
        frame, default = _read(recipe)
        column = _text_column(frame, cfg.target, default, cfg.source)
        if cfg.target is None:
            notes.append(f"text column: '{column}' (set data.target to choose another)")
        values = frame[column].dropna().astype(str).to_numpy()
        parts = _split_rows(len(values), recipe)
        splits = {s: "".join(v + "\n" for v in values[idx]) for s, idx in parts.items()}
        rows = {s: len(idx) for s, idx in parts.items()}
    if len(splits["train"]) < 2:
        raise DataError(f"data.source: {cfg.source} has no training text", "give a longer text or more rows")
    schema = Schema([Column(column or "text", "text", "string", 0.0, 0)], target=None)  # what predict scores
    notes.append(f"characters: {', '.join(f'{len(t):,} {s}' for s, t in splits.items())}")
    digest = hashlib.sha256("\x00".join(splits.values()).encode("utf-8", "replace")).hexdigest()
    return {"splits": splits, "column": column, "rows": rows or {s: len(t) for s, t in splits.items()},
            "schema": schema.to_dict(), "fingerprint": digest, "notes": notes}


def _text_column(frame: pd.DataFrame, target: str | None, default: str | None, source: str) -> str:
    if target is not None:
        if target not in frame.columns:
            raise DataError(f"data.target: no column '{target}' in {source}", did_you_mean(target, frame.columns))
        return target
    texts = [c for c in frame.columns if c != default and (frame[c].dtype == object or
                                                           pd.api.types.is_string_dtype(frame[c]))]
    if not texts:
        raise RecipeError(f"data.target: {source} has no text column for a char_lm",
                          f"set data.target to the column holding the text (columns: {', '.join(map(str, frame.columns[:10]))})")
    return max(texts, key=lambda c: frame[c].dropna().astype(str).str.len().mean())  # the longest text


def load_pixels(recipe: Recipe) -> dict[str, Any]:
    """The numeric (pixel) columns of the table, less data.target (labels: not used) and data.drop, split."""
    cfg = recipe.data
    frame, default = _read(recipe)
    label = cfg.target or default
    drop = [c for c in [label, *cfg.drop] if c is not None]
    for column in drop:
        if column not in frame.columns:
            key = "data.target" if column == label else "data.drop"
            raise DataError(f"{key}: no column '{column}' in {cfg.source}", did_you_mean(column, frame.columns))
    numeric = [c for c in frame.columns if c not in drop and pd.api.types.is_numeric_dtype(frame[c])]
    if not numeric:
        raise RecipeError(f"data.source: {cfg.source} has no numeric pixel columns for a vae",
                          "give a table of pixel columns (e.g. builtin:digits), or model.type: char_lm for text")
    X = frame[numeric].to_numpy(dtype=np.float32)
    side = math.isqrt(len(numeric))
    shape = (side, side) if side * side == len(numeric) else (1, len(numeric))
    parts = _split_rows(len(X), recipe)
    splits = {s: X[idx] for s, idx in parts.items()}
    peak = float(np.nanmax(splits["train"])) if len(splits["train"]) else 1.0
    scale = 1.0 if peak <= 1.0 else (255.0 if peak > 16 else peak)
    schema = Schema([Column(c, "numeric", "float64", 0.0, 0) for c in numeric], target=None)
    notes = [(f"{len(numeric)} pixel columns as {shape[0]}×{shape[1]} images, divided by {scale:g}; "
             f"rows: {', '.join(f'{len(v):,} {s}' for s, v in splits.items())}")]
    scaled = splits["train"] / scale
    outside = float(np.mean((scaled < 0) | (scaled > 1))) if scaled.size else 0.0
    if outside:  # a Bernoulli decoder models intensities in [0, 1]: the rest is clipped
        notes.append(f"{outside:.1%} of the training pixel values fall outside [0, 1] once divided by {scale:g} and "
                     "are clipped: a vae models pixel intensities (0–1, 0–16 or 0–255), not signed values")
    return {"splits": splits, "column": None, "rows": {s: len(v) for s, v in splits.items()}, "shape": shape,
            "scale": scale, "schema": schema.to_dict(), "fingerprint": hashlib.sha256(X.tobytes()).hexdigest(),
            "notes": notes}


# ------------------------------------------------------------------------------------------ training


def _fit(module: torch.nn.Module, loss_fn: Any, recipe: Recipe, train: tuple, validation: tuple | None,
         progress: Progress, finetune: bool, callbacks: tuple = (), checkpoint: Path | None = None
         ) -> tuple[list[dict], float]:
    """Train ``module`` with the recipe's ``train:`` section, saving each epoch to ``checkpoint`` (and
    continuing one found there); returns the history and the seconds taken."""
    from honing.training.callbacks import ProgressBar
    from honing.training.checkpoint import Checkpoint, load_checkpoint
    from honing.training.trainer import Trainer

    cfg = recipe.train
    if finetune:  # the pretrained weights are not re-initialised; the learning rate is scaled
        optimizer = cfg.optimizer.model_copy(update={"lr": cfg.optimizer.lr * recipe.model.finetune.backbone_lr})
        cfg = cfg.model_copy(update={"init": "default", "optimizer": optimizer})
    if validation is None or len(validation[0]) == 0:
        validation = (None, None)
        if cfg.early_stopping is not None and cfg.early_stopping.monitor.startswith("val_"):
            cfg = cfg.model_copy(update={"early_stopping": None})
    start = time.perf_counter()
    saving = [Checkpoint(checkpoint)] if checkpoint is not None else []
    trainer = Trainer(module, loss_fn, cfg, callbacks=[ProgressBar(progress), *callbacks, *saving], seed=recipe.seed)
    if checkpoint is not None and checkpoint.is_file():
        load_checkpoint(trainer, checkpoint)
        progress.note(f"resuming from the interrupted run's checkpoint ({checkpoint.name})")
    history = trainer.fit(train[0], train[1], *validation).rows
    module.cpu().eval()
    return history, time.perf_counter() - start


def _train_lm(recipe: Recipe, data: dict, base: CharLanguageModel | None, progress: Progress,
              callbacks: tuple = (), checkpoint: Path | None = None) -> tuple[Any, dict]:
    splits = data["splits"]
    if base is not None:
        model, before = base, base.evaluate(splits["validation"]) if splits["validation"] else None
        unknown = model.vocabulary.unknown(splits["train"])
        if unknown:
            progress.note(f"{unknown:,} training characters are not in the pretrained vocabulary: they read as <unk>")
    else:
        model, before = CharLanguageModel(CharVocabulary.fit(splits["train"]), recipe.model.params), None
    train = model.tensors(splits["train"])
    validation = model.tensors(splits["validation"]) if len(splits["validation"]) > 1 else None
    model.history_, seconds = _fit(model.module_, sequence_loss, recipe, train, validation, progress, base is not None,
                                   callbacks, checkpoint)
    metrics: dict[str, Any] = {"selection_metric": "perplexity", "vocabulary_size": len(model.vocabulary)}
    unigram = _unigram(splits["train"], model.vocabulary)
    metrics["baseline"] = {}
    for split in ("validation", "test"):
        if len(splits[split]) > 1:
            metrics[split] = model.evaluate(splits[split])
            metrics["baseline"][split] = {"perplexity": unigram(splits[split])}
    if before is not None:
        metrics["pretrained"] = {"bundle": str(recipe.model.pretrained), "validation_before": before}
    prompt = splits["validation"][:20] or splits["train"][:20]
    metrics["samples"] = [model.generate(prompt, 120, temperature=0.8, top_k=None, seed=recipe.seed + i)
                          for i in range(3)]
    metrics["leaderboard"] = [
        {"model": "char_lm", "perplexity": metrics.get("validation", {}).get("perplexity"),
         "fit_seconds": round(seconds, 3)},
        {"model": "unigram", "perplexity": metrics["baseline"].get("validation", {}).get("perplexity"),
         "fit_seconds": 0.0},
        {"model": "uniform", "perplexity": float(len(model.vocabulary)), "fit_seconds": 0.0}]
    return model, metrics


def _unigram(train: str, vocabulary: CharVocabulary) -> Any:
    """Perplexity of a text under the training split's character frequencies (add-one smoothed)."""
    counts = np.bincount(vocabulary.encode(train), minlength=len(vocabulary)) + 1.0
    logp = np.log(counts / counts.sum())

    def perplexity(text: str) -> float:
        ids = vocabulary.encode(text)[1:]  # the characters a language model predicts
        return float(math.exp(-logp[ids].mean()))

    return perplexity


def _train_vae(recipe: Recipe, data: dict, base: VAEModel | None, progress: Progress,
               callbacks: tuple = (), checkpoint: Path | None = None) -> tuple[Any, dict]:
    splits = data["splits"]
    if base is not None and (tuple(base.shape) != tuple(data["shape"])):
        raise RecipeError(f"model.pretrained: the bundle's vae takes {base.shape[0]}×{base.shape[1]} images and "
                          f"{recipe.data.source} has {data['shape'][0]}×{data['shape'][1]}",
                          "fine-tune on images of the same size")
    model = base if base is not None else VAEModel(data["shape"], data["scale"], recipe.model.params)
    x_train = model.pixels(splits["train"])
    validation = None
    if len(splits["validation"]):
        x_val = model.pixels(splits["validation"])
        validation = (x_val, x_val)
    model.history_, seconds = _fit(model.module_, vae_loss, recipe, (x_train, x_train), validation, progress,
                                   base is not None, callbacks, checkpoint)
    mean = x_train.mean(0).clamp(1e-4, 1 - 1e-4)
    metrics: dict[str, Any] = {"selection_metric": "elbo", "baseline": {}}
    for split in ("validation", "test"):
        if len(splits[split]):
            metrics[split] = model.evaluate(splits[split], seed=recipe.seed)
            x = model.pixels(splits[split])
            nll = torch.nn.functional.binary_cross_entropy(mean.expand_as(x), x, reduction="none").sum(1)
            metrics["baseline"][split] = {"elbo": float(-nll.mean())}
    metrics["leaderboard"] = [
        {"model": "vae", "elbo": metrics.get("validation", {}).get("elbo"), "fit_seconds": round(seconds, 3)},
        {"model": "pixel_means", "elbo": metrics["baseline"].get("validation", {}).get("elbo"), "fit_seconds": 0.0}]
    return model, metrics


# ------------------------------------------------------------------------------------------ run directory


def _write_run(tmp: Path, recipe: Recipe, kind: str, model: Any, data: dict, metrics: dict) -> None:
    from honing.bundle import save_bundle
    from honing.loading import TRUSTED_TYPES
    from honing.tracking import write_text
    from honing.train_flow import write_run_files

    plots = tmp / "plots"
    if kind == "vae":
        save_grid(model.sample(16, recipe.seed), plots / "samples.png", "16 samples of the vae (z ~ N(0, I))")
    else:
        write_text(tmp / "samples.txt", "\n\n".join(metrics["samples"]) + "\n")
    save_bundle(tmp / "bundle", preprocessor=None, model=model, task="generation", features=data["schema"],
                classes=None, model_type=kind, metrics=metrics, recipe=recipe.model_dump(mode="json"),
                data_fingerprint=data["fingerprint"], trusted=TRUSTED_TYPES, extra={"target": data["column"]})
    write_run_files(tmp, recipe, metrics, schema=data["schema"], leaderboard=metrics["leaderboard"],
                    history=model.history_, title=f"{kind} on {recipe.data.source}")
