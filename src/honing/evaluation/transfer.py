"""How a fine-tuned model compares with where it started (``model.finetune.base_eval``) and with
the same network trained from random weights (``model.finetune.compare_scratch``).

The base model is evaluated before any of its weights change:

* **zero-shot** where it applies: a text encoder embeds every row and every class name, and each
  row takes the class whose name's embedding is nearest (cosine); a bundle whose classes are the
  task's classes predicts as it is;
* otherwise a **linear probe**: logistic regression (ridge for regression) on the frozen network's
  features of the training rows, scored on validation and test.

Each comparison is scored with the same metrics as the fine-tuned model, on the same splits.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone

from honing.errors import RecipeError
from honing.evaluation.metrics import compute_metrics
from honing.evaluation.scoring import predict_scores
from honing.progress import SILENT, Progress

#: Temperature of the zero-shot class probabilities: softmax(cosine similarity / T).
ZERO_SHOT_TEMPERATURE = 0.05
#: At most this many training rows fit a linear probe.
PROBE_ROWS = 20000


def compare(estimator: Any, data: dict[str, tuple[np.ndarray, np.ndarray]], task: str, classes: list | None,
            finetune: Any, tokenizer: Any = None, progress: Progress = SILENT) -> dict[str, Any]:
    """``{"base_model": {...}, "scratch": {...}}`` (each present when asked for) for a fitted
    estimator fine-tuned from ``estimator.pretrained``; ``tokenizer`` (the fitted pretrained
    tokenizer) lets a text model embed the class names."""
    out: dict[str, Any] = {}
    held_out = {s: data[s] for s in ("validation", "test") if s in data and len(data[s][1])}
    if finetune.base_eval != "none":
        with progress.step("evaluating the base model"):
            out["base_model"] = base_model(estimator, data, held_out, task, classes, finetune, tokenizer)
    if finetune.compare_scratch:
        with progress.step("training the same network from random weights"):
            out["scratch"] = scratch(estimator, data, held_out, task, classes)
    return out


def check_base_eval(pretrained: str, finetune: Any, task: str, classes: list | None) -> None:
    """RecipeError, before any training, when the source bundle holds no supervised network, or when
    ``base_eval: zero_shot`` cannot apply: it needs a text model and named classes, or a bundle whose
    classes are this task's."""
    from honing.models.pretrained import bundle_meta
    from honing.pretrained_sources import resolve

    source = resolve(pretrained)
    meta = bundle_meta(source.path, pretrained) if source.kind == "bundle" else {}
    if finetune.base_eval != "zero_shot":
        return
    if source.kind == "huggingface":
        applies = task == "classification" and bool(classes) and all(isinstance(c, str) for c in classes)
    else:
        source_classes = meta.get("classes")
        applies = task == "classification" and bool(classes) and source_classes is not None and \
            sorted(map(str, source_classes)) == sorted(map(str, classes))
    if not applies:
        raise RecipeError(_NO_ZERO_SHOT, "use base_eval: linear_probe or auto")


_NO_ZERO_SHOT = ("model.finetune.base_eval: zero_shot needs a text model with named classes, or a bundle with this "
                 "task's classes")


def base_model(estimator: Any, data: dict, held_out: dict, task: str, classes: list | None, finetune: Any,
               tokenizer: Any = None) -> dict[str, Any]:
    """The base model's metrics on each held-out split, by zero-shot or by linear probe."""
    from honing.models.pretrained import base_network, run_batched

    start = time.perf_counter()
    module, source_classes = base_network(estimator.pretrained, estimator.input_shape_, finetune.pooling)
    n_classes = len(classes) if classes else None
    applies = _zero_shot_applies(module, source_classes, classes, tokenizer, task)
    method = finetune.base_eval
    if method == "auto":
        method = "zero_shot" if applies else "linear_probe"
    elif method == "zero_shot" and not applies:
        raise RecipeError(_NO_ZERO_SHOT, "use base_eval: linear_probe or auto")
    batch = 128 if hasattr(module, "pad_id") else 1024

    def tensor(X: np.ndarray) -> torch.Tensor:
        return estimator._tensor(np.asarray(X, dtype=np.float32), estimator.input_shape_)

    scores: dict[str, Any] = {}
    if method == "zero_shot" and source_classes is None:  # a text encoder: nearest class name
        names = torch.as_tensor(tokenizer.transform(pd.Series([str(c) for c in classes])), dtype=torch.long)
        anchors = _unit(run_batched(module, names, batch, head_inputs=True))
        for split, (X, y) in held_out.items():
            sims = _unit(run_batched(module, tensor(X), batch, head_inputs=True)) @ anchors.T
            proba = torch.softmax(sims / ZERO_SHOT_TEMPERATURE, dim=1).numpy().astype(np.float64)
            scores[split] = compute_metrics(task, y, proba.argmax(axis=1), proba, n_classes)
    elif method == "zero_shot":  # a bundle with the same classes: its own head
        order = [list(map(str, source_classes)).index(str(c)) for c in classes]
        for split, (X, y) in held_out.items():
            proba = torch.softmax(run_batched(module, tensor(X), batch), dim=1)[:, order].numpy().astype(np.float64)
            scores[split] = compute_metrics(task, y, proba.argmax(axis=1), proba, n_classes)
    else:
        scores = _linear_probe(estimator, module, tensor, data, held_out, task, n_classes, batch)
    return {"method": method, **scores, "seconds": round(time.perf_counter() - start, 2)}


def _zero_shot_applies(module: Any, source_classes: list | None, classes: list | None, tokenizer: Any,
                       task: str) -> bool:
    if task != "classification" or not classes:
        return False
    if source_classes is not None:
        return sorted(map(str, source_classes)) == sorted(map(str, classes))
    return hasattr(module, "pad_id") and tokenizer is not None and all(isinstance(c, str) for c in classes)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _linear_probe(estimator: Any, module: Any, tensor: Any, data: dict, held_out: dict, task: str,
                  n_classes: int | None, batch: int) -> dict[str, Any]:
    """Logistic (ridge) regression on the frozen network's features of the training rows (those
    features mode already embedded, when it trained on the same rows)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from honing.models.finetune import rows_digest
    from honing.models.pretrained import run_batched

    X, y = data["train"]
    digest, embedded = estimator.__dict__.pop("embedded_", (None, None))  # features mode: embedded while fitting
    if embedded is not None and digest == rows_digest(X):
        features = embedded[:PROBE_ROWS].cpu().numpy()
    else:
        features = run_batched(module, tensor(X[:PROBE_ROWS]), batch, head_inputs=True).numpy()
    y = y[:PROBE_ROWS]
    head = LogisticRegression(max_iter=2000) if task == "classification" else Ridge()
    probe = make_pipeline(StandardScaler(), head).fit(features, y)
    scores = {}
    for split, (Xs, ys) in held_out.items():
        feats = run_batched(module, tensor(Xs), batch, head_inputs=True).numpy()
        y_pred, proba = predict_scores(probe, feats, task, n_classes)
        scores[split] = compute_metrics(task, ys, y_pred, proba, n_classes)
    return scores


def scratch(estimator: Any, data: dict, held_out: dict, task: str, classes: list | None) -> dict[str, Any]:
    """The same network and training, from random weights."""
    start = time.perf_counter()
    fresh = clone(estimator).set_params(finetune={**(estimator.finetune or {}), "random_init": True},
                                        checkpoint=None)
    X, y = data["train"]
    eval_set = held_out.get("validation")
    fresh.fit(X, y, eval_set=eval_set)
    n_classes = len(classes) if classes else None
    scores = {split: compute_metrics(task, ys, *predict_scores(fresh, Xs, task, n_classes), n_classes)
              for split, (Xs, ys) in held_out.items()}
    return {**scores, "epochs": len(fresh.history_), "seconds": round(time.perf_counter() - start, 2)}
