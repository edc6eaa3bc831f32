"""Checks shared by every kind of ``data.augment`` step: the list of steps, a step's parameters
with defaults filled in, numbers and ``[low, high]`` pairs, each mistake a RecipeError naming the key."""

from __future__ import annotations

import math
from typing import Any

from honing.errors import RecipeError, did_you_mean


def check_steps(steps: Any) -> None:
    """``data.augment`` must be a list of mappings, each with a ``name``."""
    if not isinstance(steps, list | tuple):
        raise RecipeError(f"data.augment: expected a list of steps, got {type(steps).__name__}",
                          'e.g. [{"name": "hflip", "p": 0.5}]')
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or "name" not in step:
            raise RecipeError(f"data.augment[{i}]: expected a mapping with a 'name'", "e.g. {name: hflip, p: 0.5}")


def step_params(where: str, name: str, step: dict, defaults: dict[str, Any]) -> dict[str, Any]:
    """The step's parameters over ``defaults``; an unknown key is an error naming ``where.KEY``."""
    params = dict(defaults)
    for key, value in step.items():
        if key == "name":
            continue
        if key not in params:
            raise RecipeError(f"{where}.{key}: unknown parameter for '{name}'", did_you_mean(key, params))
        params[key] = value
    return params


def number(where: str, value: Any, lo: float = -math.inf, hi: float = math.inf, *, above: bool = False) -> float:
    """``value`` as a finite float in [lo, hi] (or (lo, hi] with ``above``), else a RecipeError."""
    span = (f"above {lo:g}" if math.isinf(hi) and above else f"between {lo:g} and {hi:g}"
            if math.isfinite(hi) or math.isfinite(lo) else "finite")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecipeError(f"{where}: expected a number, got {value!r}", f"give a number {span}")
    if value > hi or value < lo or (above and value == lo):
        raise RecipeError(f"{where} must be {span}, got {value!r}", f"give a number {span} (see docs/augmentation.md)")
    return float(value)


def pair(where: str, value: Any, lo: float, hi: float) -> tuple[float, float]:
    """``value`` as an increasing ``[a, b]`` pair within [lo, hi]."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise RecipeError(f"{where}: expected a pair [low, high], got {value!r}", f"e.g. {where.rsplit('.', 1)[-1]}: "
                          f"[{lo:g}, {hi:g}] (see docs/augmentation.md)")
    a, b = (number(where, v, lo, hi) for v in value)
    if a > b:
        raise RecipeError(f"{where}: low {a:g} is above high {b:g}", "write it as [low, high]")
    return a, b
