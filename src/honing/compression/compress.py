"""``honing compress``: try the candidates on the parent bundle's own data, apply the accuracy gate and
write the winner as a new bundle that records its lineage — or write nothing when none qualifies.

The data is the parent's: its recipe's ``data`` section is loaded again and split with the same seed,
so the validation rows of the gate are the ones the parent was selected on; the parent's fitted
preprocessing (never refitted) turns them into the model's matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from honing.bundle import Bundle, save_bundle
from honing.bundle.manifest import _RESERVED, SUPERVISED_TASKS
from honing.compression import ladder
from honing.compression.gate import Gate, Measurement, Rows
from honing.data.dataset import Dataset, encode_target
from honing.errors import CompressionError, DataError, ModelError, RecipeError, with_article
from honing.progress import Progress
from honing.recipe import Recipe


@dataclass
class CompressResult:
    """What ``compress`` measured and wrote: every candidate, the winner (None when none qualified), its
    validation / test metrics (``scores``) beside the original's test metrics, and where the new bundle
    is (None when nothing was written)."""

    parent: Path
    metric: str
    max_drop: float
    measured: list[Measurement]
    winner: Measurement | None
    prefer: str = "size"
    bundle: Path | None = None
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    test_before: dict[str, Any] | None = None

    def table(self) -> list[dict[str, Any]]:
        """One row per candidate (for printing and the manifest)."""
        return [m.to_dict() for m in self.measured]


#: What the compressed bundle keeps of the parent's metrics: facts about the data and the task, and the
#: dummy baseline; the parent model's own results (intervals, cross-validation, …) describe another model.
KEPT_METRICS = ("task", "target", "model", "selection_metric", "classes", "rows", "baseline", "decision")


def default_out(parent: Path) -> Path:
    """Where the compressed bundle goes unless told: beside the parent, ``<name>-compressed``."""
    return parent.parent / f"{parent.name}-compressed"


def check_task(bundle: Bundle) -> None:
    """Refuse, before any data is read, a bundle that compression and ONNX export do not handle (a
    clustering, generative or reinforcement-learning one: the gate and the ONNX parity check need labels
    or values)."""
    if bundle.task not in SUPERVISED_TASKS:
        raise CompressionError(f"{bundle.path}: {with_article(bundle.task)} bundle ({bundle.manifest.get('model_type')}) cannot be "
                               "compressed or exported to ONNX yet",
                               "compression and ONNX export are for classification and regression bundles")


def check_overrides(overrides: list[str]) -> None:
    """``honing compress --set`` changes ``compress.*`` keys only: the model, its data, split and seed are the
    bundle's own (``--data`` says where its data moved)."""
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key != "compress" and not key.startswith("compress."):
            raise RecipeError(f"--set {item}: honing compress reads only compress.* keys (the model, data and seed "
                              "are the bundle's own)",
                              "e.g. --set compress.prune.amount=0.5; pass --data FILE if the training data moved")


def encoded(parent: Bundle, frame: Any) -> tuple[np.ndarray, np.ndarray]:
    """A split of raw rows as (preprocessed matrix, encoded target), through the parent's preprocessing."""
    target = parent.manifest["target"]
    X = parent.transform(parent.prepare(frame) if parent.prepare else frame)
    return X, encode_target(frame[target], parent.task, parent.classes)


def compress_bundle(parent: Bundle, recipe: Recipe, dataset: Dataset, out: Path, trusted: list[str],
                    progress: Progress) -> CompressResult:
    """Measure the candidates of ``recipe.compress`` against ``parent``'s model; save the winner at ``out``."""
    cfg = recipe.compress
    splits = dataset.splits
    if not len(splits.get("validation", [])):
        raise DataError("compress measures candidates on the validation split the model was selected on, and this "
                        "bundle's recipe has none", "train the model with a validation split (data.split.validation)")
    train, validation = encoded(parent, splits["train"]), encoded(parent, splits["validation"])
    try:
        gate = Gate(parent, Rows(*validation, raw=splits["validation"]), cfg.metric or recipe.evaluate.metric,
                    cfg.max_metric_drop, prefer=cfg.prefer, latency_rows=cfg.latency_rows)
    except ModelError as exc:  # an unknown metric: name the key the user set
        raise ModelError(exc.what.replace("evaluate.metric", "compress.metric") if cfg.metric else exc.what,
                         exc.hint) from None
    ladder.run(gate, parent.model, cfg, train, validation, recipe.seed, progress)
    if gate.measured[0].error:
        raise CompressionError(f"cannot measure the original model ({gate.measured[0].error})")
    result = CompressResult(parent.path, gate.metric, cfg.max_metric_drop, gate.measured, gate.winner(), cfg.prefer)
    if result.winner is None:
        return result
    winner = gate.candidates[result.winner.name].model
    result.scores = {"validation": gate.metrics(winner)}
    if len(splits.get("test", [])):  # the compressed model's own test metrics, beside the original's
        test = Rows(*encoded(parent, splits["test"]), raw=splits["test"])
        result.scores["test"], result.test_before = gate.metrics(winner, test), gate.metrics(parent.model, test)
    with progress.step(f"writing {out}"):
        result.bundle = _save(parent, winner, result, out, trusted)
    return result


def _save(parent: Bundle, model: Any, result: CompressResult, out: Path, trusted: list[str]) -> Path:
    """The winner as a bundle: the parent's preprocessing, calibration, decision and manifest extras,
    the new model, and ``lineage`` naming the parent (its manifest checksum) and what was done."""
    manifest = parent.manifest
    extra = {k: v for k, v in manifest.items() if k not in _RESERVED and k != "lineage"}
    extra["lineage"] = {
        "parent": str(parent.path), "parent_manifest_sha256": manifest.get("manifest_sha256"),
        "parents": [*manifest.get("lineage", {}).get("parents", []), manifest.get("manifest_sha256")],
        "compression": result.winner.name, "details": result.winner.details,
    }
    kept = {k: v for k, v in parent.metrics.items() if k in KEPT_METRICS}  # not the parent's model's own results
    metrics = {**kept, "compression": {"metric": result.metric, "max_drop": result.max_drop,
                                       "chosen": result.winner.name, "candidates": result.table()}}
    metrics.update(result.scores)  # validation and test metrics are the compressed model's own
    if result.test_before is not None:
        metrics["compression"]["test_before"] = result.test_before
    return save_bundle(out, preprocessor=parent.preprocessor, model=model, task=parent.task,
                       features=parent.features, classes=parent.classes, model_type=manifest["model_type"],
                       metrics=metrics, recipe=parent.recipe, data_fingerprint=manifest["data_fingerprint"],
                       trusted=trusted, extra=extra, calibrator=parent.calibrator)
