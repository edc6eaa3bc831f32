"""The train flow of ``data.task: clustering | reduction | anomaly`` (``train_flow.TASK_FLOWS`` hands over here).

recipe → read the table (no target needed; ``data.target``, or a builtin dataset's label column, is kept
out of the features and used for evaluation only) → clean, type and split the rows as a supervised run
does (never stratified) → the preprocessing, fitted on the training split → the model
(:mod:`honing.models.unsupervised`) fitted on the training rows → metrics on every split
(:mod:`honing.evaluation.unsupervised`) → plots → the same run directory as any run: bundle,
recipe.yaml, metrics.json, schema.json, leaderboard.csv, history.csv (autoencoder), plots/, report.html.

Choosing k (clustering): ``model.params.k: auto`` tries k = 2 … 10, a list tries those values; each k is
fitted on the training rows and the one with the highest training silhouette is kept (ties: the
smallest k).  ``plots/elbow.png`` shows the inertia (within-cluster sum of squares) and the silhouette
against k, and ``leaderboard.csv`` lists them.  Bundles predict cluster ids, embeddings or anomaly scores
(:mod:`honing.bundle.unsupervised_outputs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from honing.errors import DataError, RecipeError, did_you_mean
from honing.progress import Progress
from honing.recipe import Recipe

#: The k tried by ``model.params.k: auto``.
AUTO_K = tuple(range(2, 11))


def train_unsupervised(recipe: Recipe, run_dir: Path, tmp: Path, progress: Progress,
                       checkpoints: Path | None = None) -> Any:
    """Train the unsupervised ``recipe`` into ``tmp``; the :class:`~honing.train_flow.RunResult` of ``run_dir``.
    ``checkpoints`` is not used: these models train in one call, and a resumed run trains again."""
    from honing.models import unsupervised
    from honing.train_flow import RunResult
    from honing.training.seed import seed_everything

    task = recipe.data.task
    model_type = unsupervised.check_model(task, recipe.model.type)
    if recipe.data.streaming is True:
        raise RecipeError(f"data.streaming: {task} reads the table in memory", "set data.streaming: auto or false")
    seed_everything(recipe.seed)
    with progress.step(f"loading {recipe.data.source}"):
        data = load_unsupervised(recipe)
    for note in data.notes:
        progress.note(note)
    with progress.step("fitting preprocessing on the training split"):
        data.fit_preprocessing(recipe)
    params, sweep = dict(recipe.model.params), []
    if task == "clustering":
        params, sweep = choose_k(model_type, params, data.X["train"], recipe.seed, progress)
    with progress.step(f"fitting {model_type} on {len(data.X['train']):,} training rows"):
        model = unsupervised.make_model(task, model_type, params, recipe.seed, data.X["train"])
    metrics = _metrics(task, model_type, model, data, recipe.seed)
    metrics["leaderboard"] = sweep or [{"model": model_type, **_headline(metrics)}]
    resolved = recipe.model_copy(update={
        "data": recipe.data.model_copy(update={"target": data.target}),
        "model": recipe.model.model_copy(update={"type": model_type, "params": params})})
    with progress.step(f"writing {run_dir}"):
        _write_run(tmp, resolved, data, model, metrics, sweep)
    return RunResult(run_dir, resolved, task, model_type, metrics, metrics["leaderboard"], data.notes)


class UnsupervisedData:
    """The split rows, their schema and label column (or None), and, once fitted, the preprocessor
    and the preprocessed arrays ``X[split]``."""

    def __init__(self, splits: dict[str, pd.DataFrame], schema: Any, target: str | None, fingerprint: str,
                 notes: list[str]):
        self.splits, self.schema, self.target, self.fingerprint, self.notes = splits, schema, target, fingerprint, notes
        self.preprocessor: Any = None
        self.X: dict[str, np.ndarray] = {}

    def fit_preprocessing(self, recipe: Recipe) -> None:
        from honing.data.preprocess import build_preprocessor, coerce_features
        from honing.data.reduce import components_checked

        if not self.schema.features:
            raise DataError(f"{recipe.data.source}: no feature columns are left", "check data.drop and data.types")
        self.preprocessor = build_preprocessor(self.schema, recipe.data)
        with components_checked():
            self.preprocessor.fit(coerce_features(self.splits["train"], self.schema))
        self.X = {s: self.transform(rows) for s, rows in self.splits.items() if len(rows)}

    def transform(self, rows: pd.DataFrame) -> np.ndarray:
        from honing.data.preprocess import coerce_features

        X = self.preprocessor.transform(coerce_features(rows, self.schema))
        return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=float)

    def labels(self, split: str) -> pd.Series | None:
        return self.splits[split][self.target] if self.target is not None else None


def load_unsupervised(recipe: Recipe) -> UnsupervisedData:
    """Read, clean, type and split ``recipe.data`` without requiring a target."""
    from honing.data.builtin import load_builtin
    from honing.data.image_sources import is_image_source, read_image_dataset
    from honing.data.preprocess import clean_rows
    from honing.data.schema import infer_schema
    from honing.data.sources import fingerprint, read_table
    from honing.data.split import split_frame

    cfg, notes, types = recipe.data, [], {}
    target = cfg.target
    if cfg.source.startswith("builtin:"):
        builtin = load_builtin(cfg.source.removeprefix("builtin:"))
        frame, types = builtin.frame, dict(builtin.types)
        if target is None and builtin.target in frame.columns:
            target = builtin.target
            notes.append(f"column '{target}' (the dataset's label) is used for evaluation only, never as a feature")
    elif is_image_source(cfg.source):
        image = read_image_dataset(cfg)
        frame, types, target = image.frame, dict(image.types), target or image.target
    else:
        frame = read_table(cfg.source, delimiter=cfg.read.delimiter, encoding=cfg.read.encoding)
    columns = [str(c) for c in frame.columns]
    for key, column in [("data.target", target), *(("data.drop", c) for c in cfg.drop)]:
        if column is not None and column not in columns:
            raise DataError(f"{key}: no column '{column}' in {cfg.source}", did_you_mean(column, columns))
    for key in ("group", "time", "column"):
        column = getattr(cfg.split, key)
        if column is not None and column not in columns:
            raise DataError(f"data.split.{key}: no column '{column}' in {cfg.source}", did_you_mean(column, columns))
    if cfg.split.stratify:
        raise RecipeError(f"data.split.stratify: {cfg.task} has no classes to stratify by",
                          "remove data.split.stratify")
    frame, cleaning = clean_rows(frame, None, cfg.clean.duplicates)
    notes += cleaning
    drop = [c for c in [*cfg.drop, cfg.split.column] if c and c != target]
    types = {c: k for c, k in {**types, **cfg.types}.items() if c not in drop}
    schema = infer_schema(frame, target=target, overrides=types, drop=drop)
    split = cfg.split
    splits = split_frame(frame, target=target or columns[0], task="regression", validation=split.validation,
                         test=split.test, stratify=False, group=split.group, time=split.time, seed=recipe.seed,
                         column=split.column)
    if len(splits["train"]) < 3:
        raise DataError(f"{cfg.source}: only {len(splits['train'])} training rows", "use more rows")
    return UnsupervisedData(splits, schema, target, fingerprint(frame), notes)


def choose_k(model_type: str, params: dict, X: np.ndarray, seed: int,
             progress: Progress) -> tuple[dict, list[dict]]:
    """The params with k chosen (see the module doc) and the sweep's rows ([] when k is fixed)."""
    from honing.evaluation.unsupervised import cluster_metrics
    from honing.models.unsupervised import WITH_K, ClusterModel

    k = params.get("k")
    if k is None or isinstance(k, int) and not isinstance(k, bool):
        if k is not None and (model_type not in WITH_K or k < 2):  # one cluster groups nothing (and scores nan)
            raise RecipeError(f"model.params.k: {model_type} takes no k" if model_type not in WITH_K
                              else f"model.params.k: must be >= 2 clusters (got {k})", "remove k, or set it to auto or a list")
        return params, []
    if model_type not in WITH_K:
        raise RecipeError(f"model.params.k: {model_type} finds its own number of clusters", "remove model.params.k")
    candidates = list(AUTO_K) if k == "auto" else k
    if not isinstance(candidates, list) or not candidates or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 2 for c in candidates):
        raise RecipeError(f"model.params.k: must be an integer, auto or a list of integers >= 2 (got {k!r})",
                          "e.g. k: auto, or k: [2, 3, 4, 5]")
    candidates = sorted(c for c in set(candidates) if c < len(X)) or [2]
    rows = []
    with progress.step(f"choosing k among {', '.join(map(str, candidates))} (silhouette)"):
        for c in candidates:
            model = ClusterModel(model_type).fit(X, {**params, "k": c}, seed)
            scores = cluster_metrics(X, model.labels_, seed=seed)
            rows.append({"model": model_type, "k": c, "inertia": inertia(X, model.labels_),
                         "silhouette": scores.get("silhouette", float("nan")),
                         "davies_bouldin": scores.get("davies_bouldin", float("nan"))})
    best = max(rows, key=lambda r: (np.nan_to_num(r["silhouette"], nan=-2.0), -r["k"]))
    progress.note(f"k = {best['k']}: the highest training silhouette ({best['silhouette']:.3f})")
    return {**params, "k": best["k"]}, rows


def inertia(X: np.ndarray, labels: np.ndarray) -> float:
    """Within-cluster sum of squared distances to the cluster means (noise rows left out)."""
    return float(sum(((X[labels == c] - X[labels == c].mean(axis=0)) ** 2).sum()
                     for c in set(labels.tolist()) - {-1}))


def _metrics(task: str, model_type: str, model: Any, data: UnsupervisedData, seed: int) -> dict[str, Any]:
    from honing.evaluation import unsupervised as ev

    out: dict[str, Any] = {"task": task, "target": data.target, "model": model_type, "classes": None,
                           "rows": {s: len(rows) for s, rows in data.splits.items()}}
    for split, X in data.X.items():
        labels = data.labels(split)
        if task == "clustering":
            out[split] = ev.cluster_metrics(X, model.predict(X), None if labels is None else labels.astype(str), seed)
        elif task == "anomaly":
            truth = ev.anomaly_labels(labels)[0] if labels is not None else None
            out[split] = ev.anomaly_metrics(model.score(X), model.predict(X), truth)
        else:
            out[split] = {"rows": len(X), "reconstructed_variance": ev.reconstruction_variance(X, model.transform(X))}
    if task == "clustering":
        out["clusters"] = model.n_clusters_
    elif task == "anomaly":
        out["threshold"] = model.threshold_
        out["quantile"] = model.quantile_
        if data.target is not None:
            out["anomaly_label"] = ev.anomaly_labels(data.labels("train"))[1]
    else:
        out["components"] = model.n_components_
        if model_type == "pca":
            out["explained_variance"] = float(model.estimator_.explained_variance_ratio_.sum())
    return out


def _headline(metrics: dict) -> dict:
    keys = ("silhouette", "adjusted_rand", "reconstructed_variance", "recall", "roc_auc", "anomaly_fraction")
    held = metrics.get("validation") or metrics.get("train") or {}
    return {k: held[k] for k in keys if k in held}


def _write_run(tmp: Path, recipe: Recipe, data: UnsupervisedData, model: Any, metrics: dict, sweep: list) -> None:
    from honing.bundle import save_bundle
    from honing.bundle.unsupervised_outputs import output_columns
    from honing.loading import TRUSTED_TYPES
    from honing.train_flow import write_run_files

    task = recipe.data.task
    save_bundle(tmp / "bundle", preprocessor=data.preprocessor, model=model, task=task,
                features=data.schema.to_dict(), classes=None, model_type=recipe.model.type, metrics=metrics,
                recipe=recipe.model_dump(mode="json"), data_fingerprint=data.fingerprint, trusted=TRUSTED_TYPES,
                extra={"target": data.target, "decision": {}, "outputs": output_columns(task, model),
                       "reference": _reference(task, data, model)})
    plots = tmp / "plots"
    if sweep:
        elbow_plot(sweep, recipe.model.params["k"], plots / "elbow.png", f"{recipe.model.type} on {recipe.data.source}")
    if recipe.model.type == "pca":
        variance_plot(model.estimator_.explained_variance_ratio_, plots / "explained_variance.png",
                      f"PCA on {recipe.data.source}")
    write_run_files(tmp, recipe, metrics, schema=data.schema.to_dict(), leaderboard=metrics["leaderboard"],
                    history=getattr(getattr(model, "estimator_", None), "history_", None),
                    title=f"autoencoder on {recipe.data.source}")


def _reference(task: str, data: UnsupervisedData, model: Any) -> dict:
    """The training split's reference profile for ``honing monitor``: its feature columns, and what the
    server answers on them — cluster ids (categorical) or anomaly scores (numeric); an embedding has
    no single value to profile."""
    from honing.serving.profile import build_profile

    X = data.X["train"]
    predictions = model.predict(X) if task == "clustering" else model.score(X) if task == "anomaly" else None
    return build_profile(data.splits["train"], data.schema, predictions,
                         task="regression" if task == "anomaly" else "classification")


def elbow_plot(sweep: list[dict], chosen: int, path: Path, title: str) -> Path:
    """Inertia (left axis) and silhouette (right axis) against k, the chosen k marked."""
    from honing.report.plots import PALETTE, pyplot, save

    plt = pyplot()
    ks = [r["k"] for r in sweep]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(ks, [r["inertia"] for r in sweep], "o-", color=PALETTE[0], label="inertia")
    ax.set_xlabel("k (clusters)")
    ax.set_ylabel("inertia (within-cluster sum of squares)")
    twin = ax.twinx()
    twin.plot(ks, [r["silhouette"] for r in sweep], "s--", color=PALETTE[1], label="silhouette")
    twin.set_ylabel("silhouette")
    ax.axvline(chosen, color=PALETTE[2], linestyle=":", label=f"chosen k = {chosen}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.legend(loc="upper center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 0.93))
    return save(fig, path)


def variance_plot(ratios: np.ndarray, path: Path, title: str) -> Path:
    """Explained variance per component (bars) and cumulated (line)."""
    from honing.report.plots import PALETTE, pyplot, save

    plt = pyplot()
    n = np.arange(1, len(ratios) + 1)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.bar(n, ratios, color=PALETTE[0], label="per component")
    ax.plot(n, np.cumsum(ratios), "o-", color=PALETTE[1], markersize=3, label="cumulative")
    ax.set_xlabel("component")
    ax.set_ylabel("explained variance ratio")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return save(fig, path)
