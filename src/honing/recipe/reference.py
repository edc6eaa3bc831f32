"""``docs/recipe.md``, generated from the schema (``make docs``; a test checks it is current)."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel

from honing.recipe.schema import Recipe, section_of


def reference_markdown() -> str:
    """``docs/recipe.md``: every key with its type, default and description."""
    lines = [
        "# Recipe reference",
        "",
        "<!-- generated from src/honing/recipe/schema.py by `make docs`; a test checks it is current -->",
        "",
        "A recipe is a YAML file validated against this schema (`recipe_version: 1`). Unknown keys are",
        "errors (with a \"did you mean\"). Any key can be overridden on the command line:",
        "`honing train recipe.yaml --set model.type=lightgbm --set data.split.test=0.2`.",
        "The resolved recipe (every default filled in) is saved as `recipe.yaml` in every run.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    lines += _rows(Recipe, "")
    lines.append("")
    return "\n".join(lines)


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = prefix + name
        sub = section_of(field.annotation)
        if sub is not None:
            rows.append(f"| `{key}` | section | | {field.description or ''} |")
            rows += _rows(sub, key + ".")
            continue
        if field.is_required():
            default = "required"
        else:
            value = field.get_default(call_default_factory=True)
            default = f"`{yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}`"
        rows.append(f"| `{key}` | {_type_name(field.annotation)} | {default} | {field.description or ''} |")
    return rows


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(str(a) for a in get_args(annotation))
    if origin is not None and get_args(annotation):
        args = [a for a in get_args(annotation) if a is not type(None)]
        inner = ", ".join(_type_name(a) for a in args)
        name = getattr(origin, "__name__", "")
        if name in ("list", "dict"):
            return f"{name}[{inner}]"
        return inner + (" or null" if len(args) < len(get_args(annotation)) else "")
    return getattr(annotation, "__name__", str(annotation))
