"""The serving and monitoring settings of a bundle: the ``serve:`` and ``monitor:`` sections of the recipe
it was trained with, then ``--set serve.…`` / ``--set monitor.…`` overrides, then command-line flags.

Bundles trained before these sections existed get their defaults.  Only these two sections can be
changed here: the rest of the recipe describes a model that is already trained.
"""

from __future__ import annotations

from typing import Any

from honing.errors import RecipeError
from honing.recipe import MonitorConfig, ServeConfig, apply_override, set_path, validate_recipe

SECTIONS = ("serve", "monitor")


def resolve(recipe: dict, overrides: list[str] | None = None,
            flags: dict[str, Any] | None = None) -> tuple[ServeConfig, MonitorConfig]:
    """The ``serve`` and ``monitor`` settings of a bundle's resolved ``recipe`` (a dict) after
    ``overrides`` (``serve.port=9000`` …) and ``flags`` (dotted key → value; None = not given)."""
    raw = dict(recipe)
    for item in overrides or []:
        section = item.partition("=")[0].strip().split(".")[0]
        if section not in SECTIONS:
            raise RecipeError(f"--set {item.partition('=')[0].strip()}: only serve.* and monitor.* keys can be set "
                              "for a trained bundle", "retrain with honing train to change the rest of the recipe")
        apply_override(raw, item)
    for key, value in (flags or {}).items():
        if value is not None:
            set_path(raw, key, value)
    resolved = validate_recipe(raw)
    return resolved.serve, resolved.monitor
