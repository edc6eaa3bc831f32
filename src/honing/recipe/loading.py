"""Loading a recipe: a YAML file, a dict or a :class:`~honing.recipe.schema.Recipe`, with
``--set a.b.c=value`` overrides, validated against the schema; every error is one line naming the
YAML key path (``data.split.validation: must be < 1``), with a did-you-mean for unknown keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from honing.errors import RecipeError, did_you_mean, shortened
from honing.recipe.schema import RECIPE_VERSION, Recipe, section_of


def load_recipe(
    source: str | Path | dict | Recipe, overrides: list[str] | None = None
) -> Recipe:
    """A validated recipe from a YAML path, a dict or a Recipe, with ``a.b=value`` overrides."""
    where = ""
    if isinstance(source, Recipe):
        raw = source.model_dump(mode="json")
    elif isinstance(source, dict):
        raw = source
    else:
        path = Path(source)
        where = f"{path}: "
        raw = _read_yaml(path)
    raw = dict(raw)
    for item in overrides or []:
        apply_override(raw, item)
    return validate_recipe(raw, where)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise RecipeError(f"recipe file '{path}' not found", "check the path, or create one with `honing init DATA --target COL`")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}: not valid YAML{line}", "check indentation and colons") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not a UTF-8 text file", "a recipe is a YAML text file") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping", "start with `recipe_version: 1` and `data:`")
    return raw


def apply_override(raw: dict, item: str) -> None:
    """Apply ``a.b.c=value`` in place; the value is parsed as YAML (so 0.01 is a float)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"--set '{item}': expected KEY=VALUE", "e.g. --set model.type=lightgbm")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    set_path(raw, key, value, where=f"--set {key}")


def set_path(raw: dict, key: str, value: Any, where: str | None = None) -> None:
    """Set the value at dotted path ``key`` of a raw recipe dict in place (sections are copied, not
    shared, so the caller's nested dicts are never changed)."""
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise RecipeError(f"{where or key}: '{'.'.join(parts[: i + 1])}' is not a section",
                              "override a key inside a section")
        else:
            child = node[part] = dict(child)
        node = child
    node[parts[-1]] = value


def validate_recipe(raw: dict, where: str = "") -> Recipe:
    version = raw.get("recipe_version", RECIPE_VERSION)
    if version != RECIPE_VERSION:
        raise RecipeError(f"{where}recipe_version: {version!r} is not supported", f"this honing reads recipe_version: {RECIPE_VERSION}")
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise _recipe_error(exc, where) from None


_PATTERN_MESSAGES = {
    "window": "must be a duration like 30m, 12h, 1d, 2w, or all",
    "api_key_env": "must be an environment variable name (letters, digits, '_')",
}


def _recipe_error(exc: ValidationError, where: str) -> RecipeError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) or "recipe"
    kind = err["type"]
    if kind == "extra_forbidden":
        fields = _fields_at(Recipe, loc[:-1])
        return RecipeError(f"{where}unknown key '{key}'", did_you_mean(loc[-1], fields))
    if kind == "missing":
        return RecipeError(f"{where}{key}: required key is missing", f"add `{loc[-1]}:` to the recipe")
    ctx = err.get("ctx") or {}
    if not loc and kind == "value_error":  # a check across sections: "what; what to do"
        what, _, hint = str(ctx.get("error", err["msg"])).partition("; ")
        return RecipeError(f"{where}{what}", hint or "fix the recipe or its --set overrides")
    messages = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "literal_error": "must be one of {expected}",
        "string_pattern_mismatch": _PATTERN_MESSAGES.get(loc[-1], "may contain only letters, digits, '_', '.' and '-'"),
    }
    if kind in messages:
        msg = messages[kind].format(**ctx)
    elif kind == "value_error":
        msg = str(ctx.get("error", err["msg"]))
    else:
        msg = err["msg"][0].lower() + err["msg"][1:]
    if type(err.get("input")).__name__ == "DataFrame":  # honing.train({... "source": frame}) from Python
        return RecipeError(f"{where}{key}: a DataFrame, not a path",
                           "save it to a file (frame.to_parquet('data.parquet')) and give that path")
    got = shortened(" ".join(repr(err.get("input")).split()), 80)  # one line, even for a long value
    return RecipeError(f"{where}{key}: {msg} (got {got})" if kind != "value_error" else f"{where}{key}: {msg}",
                       "fix the value in the recipe or its --set override")


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(part)
        sub = section_of(field.annotation) if field else None
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)
