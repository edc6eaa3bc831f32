"""A commented starter recipe for a dataset (``honing init DATA --target COL``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from honing.data.builtin import load_builtin
from honing.data.image_sources import PIXEL_PREFIX, is_image_source, read_image_source
from honing.data.schema import Schema, check_target, infer_schema, infer_task
from honing.data.sources import read_table
from honing.errors import DataError, did_you_mean
from honing.recipe import load_recipe


def starter_recipe(source: str, target: str | None, name: str | None = None) -> str:
    """YAML text of a recipe for ``source`` that validates, with the inferred schema as comments."""
    if source.startswith("builtin:"):
        builtin = load_builtin(source.removeprefix("builtin:"))
        frame, target = builtin.frame, target or builtin.target
    elif is_image_source(source):  # an image folder or array file: its labels are the target
        image = read_image_source(source)
        frame, target = image.frame, target or image.target
    else:
        frame = read_table(source)
        if target is None:
            raise DataError(f"{source}: which column should the model predict?",
                            f"pass --target, one of: {', '.join(map(str, frame.columns[:10]))}")
    if target not in frame.columns:
        raise DataError(f"{source}: no target column '{target}'", did_you_mean(target, map(str, frame.columns)))
    task = builtin.task if source.startswith("builtin:") and target == builtin.target else \
        infer_task(frame[target].dropna())
    check_target(frame, target, task)
    schema = infer_schema(frame, target=target)
    name = name or _name_for(source)
    dropped = [c.name for c in schema.columns if c.kind == "identifier" and c.name != target]
    images = is_image_source(source) or any(c.kind == "image" for c in schema.columns)
    body = {
        "recipe_version": 1,
        "name": name,
        "seed": 42,
        "data": {"source": source, "target": target, "task": task, "drop": dropped,
                 "split": {"validation": 0.15, "test": 0.15}},
        "model": {"type": "cnn" if images else "auto"},  # a cnn reads images as (C, H, W), from the data
    }
    load_recipe(body)  # the starter must itself be a valid recipe
    return _header(source, len(frame), schema, target, task) + yaml.safe_dump(body, sort_keys=False)


def _name_for(source: str) -> str:
    stem = source.removeprefix("builtin:")
    stem = Path(stem).name.split(".")[0]
    cleaned = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in stem).lstrip("_.-")
    return cleaned or "run"


def _header(source: str, rows: int, schema: Schema, target: str, task: str) -> str:
    lines = [
        f"# honing recipe for {source} ({rows} rows), written by `honing init`.",
        "# Every key and its default: docs/recipe.md.  Train with: honing train THIS_FILE",
        f"# Target '{target}' → task: {task}.",
        "#",
        "# Inferred columns (override a kind with data.types: {COLUMN: numeric|categorical|boolean|text|datetime}):",
    ]
    pixels = [c.name for c in schema.columns if str(c.name).startswith(PIXEL_PREFIX)]
    if len(pixels) > 1:  # an array file's pixel columns: one line, not hundreds
        lines.append(f"#   {pixels[0]} … {pixels[-1]}  {len(pixels)} numeric pixel columns (model.type: cnn "
                     "reads them as images)")
    columns = [c for c in schema.columns if len(pixels) <= 1 or c.name not in pixels]
    width = max(len(str(c.name)) for c in columns)
    for c in columns:
        role = "target" if c.name == target else c.kind
        extra = f"  {c.note}" if c.note else ""
        lines.append(f"#   {c.name!s:<{width}}  {role:<11} missing {c.missing:5.1%}  "
                     f"unique {c.unique}{extra}")
    return "\n".join(lines) + "\n\n"
