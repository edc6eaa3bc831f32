"""Which candidates ``honing compress`` tries, in order: the recipe's ``compress`` options, or the default
ladder when it names none.

Default ladder: the original → the same model in ONNX Runtime → int8 dynamic → pruned 30 / 50 / 70 %
(neural models; structured where the network allows) → the smallest qualifying pruned model + int8.
Configured: each ``quantize`` mode, ``prune`` with its settings, ``distill`` into its student; a pruned or
distilled model that qualifies is tried again with int8 dynamic quantization when ``dynamic`` is listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from honing.compression.gate import Candidate, Gate
from honing.errors import CompressionError
from honing.progress import Progress
from honing.recipe import CompressConfig, PruneConfig

#: The pruning amounts of the default ladder.
DEFAULT_AMOUNTS = (0.3, 0.5, 0.7)
QUANTIZED = {"dynamic": "int8 dynamic", "static": "int8 static", "fp16": "fp16 weights", "bf16": "bf16 weights"}


def run(gate: Gate, model: Any, cfg: CompressConfig, train: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray], seed: int, progress: Progress) -> None:
    """Build and measure every candidate on ``gate`` (the original first)."""
    task = gate.parent.task
    neural = hasattr(model, "module_")
    default = cfg.prune is None and cfg.quantize is None and cfg.distill is None
    calibration = _sample(train[0], cfg.calibration_rows, seed)
    exported: dict[int, Any] = {}  # each model is exported to ONNX once (or fails once), however many use it

    def onnx_of(m: Any) -> Any:
        if id(m) not in exported:
            try:
                exported[id(m)] = _onnx(m, task, validation[0])
            except CompressionError as exc:
                exported[id(m)] = exc
        if isinstance(exported[id(m)], CompressionError):
            raise exported[id(m)]
        return exported[id(m)]

    def tried(name: str, build: Callable[[], Candidate]) -> None:  # a skipped one's reason is in the table
        with progress.step(f"trying {name}"):
            gate.add(name, build)

    tried("original", lambda: Candidate("original", model))
    if default:
        tried("onnx fp32", lambda: Candidate("onnx fp32", onnx_of(model)))
    modes = ["dynamic"] if default else list(cfg.quantize or [])
    for mode in modes:
        tried(QUANTIZED[mode], lambda mode=mode: _quantized(model, mode, onnx_of, calibration))
    settings = [PruneConfig(amount=a) for a in DEFAULT_AMOUNTS] if default and neural else \
        [cfg.prune] if cfg.prune is not None else []
    for setting in settings:
        name = f"pruned {setting.amount:.0%}"
        tried(name, lambda s=setting, n=name: _pruned(n, model, s, neural, train, validation, seed))
    if cfg.distill is not None:
        tried("distilled", lambda: _distilled(model, cfg, task, train, validation, seed))
    if "dynamic" in modes:
        for prefix in ("pruned", "distilled"):
            best = gate.qualifying(prefix)
            if best is not None:
                name = f"{best.name} + int8"
                tried(name, lambda b=gate.candidates[best.name], n=name: _combined(n, b, onnx_of))


def _sample(X: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Up to ``rows`` training rows, drawn at random (the calibration data of static quantization)."""
    rng = np.random.default_rng(seed)
    return X[rng.permutation(len(X))[:rows]]


def _onnx(model: Any, task: str, X: np.ndarray) -> Any:
    """``model`` exported to ONNX, checked against the native model on the validation rows."""
    from honing.compression.onnx_export import export_onnx

    return export_onnx(model, task, X[:512])  # parity checked on these rows


def _quantized(model: Any, mode: str, onnx_of: Callable[[Any], Any], calibration: np.ndarray) -> Candidate:
    """``model`` with int8 (through its ONNX export, ``onnx_of(model)``) or half-precision weights."""
    from honing.compression import quantize

    if mode in ("fp16", "bf16"):
        if not hasattr(model, "module_"):
            raise CompressionError(f"{mode} weights apply to neural models", "use quantize: [dynamic] instead")
        return Candidate(QUANTIZED[mode], quantize.cast_weights(model, "float16" if mode == "fp16" else "bfloat16"))
    exported = onnx_of(model)
    if mode == "dynamic":
        return Candidate(QUANTIZED[mode], quantize.quantize_dynamic(exported))
    return Candidate(QUANTIZED[mode], quantize.quantize_static(exported, calibration))


def _pruned(name: str, model: Any, setting: PruneConfig, neural: bool, train: tuple, validation: tuple,
            seed: int) -> Candidate:
    from honing.compression.prune import prune
    from honing.compression.prune_structured import STRUCTURED

    if not neural:
        raise CompressionError(f"pruning applies to neural models, and this is a {type(model).__name__}",
                               "remove compress.prune, or try compress.distill")
    # structured pruning where the net allows it, unless the recipe asked for it explicitly (then prune says why not)
    asked = "structured" in setting.model_fields_set
    structured = setting.structured and (asked or model.net_ in STRUCTURED)
    result = prune(model, setting.amount, structured=structured, scope=setting.scope, steps=setting.steps,
                   finetune_epochs=setting.finetune_epochs, train=train, validation=validation, seed=seed)
    details = {"description": result.description, "sparsity": result.sparsity,
               "parameters_before": result.parameters_before, "parameters_after": result.parameters_after}
    return Candidate(name, result.estimator, details)


def _distilled(model: Any, cfg: CompressConfig, task: str, train: tuple, validation: tuple, seed: int) -> Candidate:
    from honing.compression.distill import distill

    spec = cfg.distill
    batch = int(np.clip(len(train[0]) // 20, 32, 256))  # at least ~20 optimizer steps per epoch
    student = distill(model, *train, task=task, student=spec.student, temperature=spec.temperature,
                      alpha=spec.alpha, epochs=spec.epochs, validation=validation, seed=seed,
                      train={"batch_size": batch})
    return Candidate("distilled", student, {"student": spec.student})


def _combined(name: str, shrunk: Candidate, onnx_of: Callable[[Any], Any]) -> Candidate:
    """A pruned or distilled candidate, quantized to int8 (dynamic); its details say both."""
    quantized = _quantized(shrunk.model, "dynamic", onnx_of, np.empty(0))
    return Candidate(name, quantized.model, {**shrunk.details, "quantized": "int8 dynamic"})
