"""The search space of ``honing tune``: recipe paths mapped to Optuna distributions.

A space is a mapping from recipe paths to specs::

    train.optimizer.lr: {float: [1.0e-5, 1.0e-1], log: true}
    train.batch_size: {choice: [64, 128, 256]}
    model.params.num_leaves: {int: [8, 128], log: true}
    model.params.min_child_samples: {int: [5, 50], step: 5}
    model.params.hidden: {layers: [1, 3], width: [16, 256], log: true}   # depth, then each width
    model.type: {choice: {lightgbm: null, mlp: {train.optimizer.lr: {float: [1.0e-4, 1.0e-2], log: true}}}}

A ``choice`` given as a mapping is conditional: each option carries its own sub-space, sampled only
when that option is chosen (``null`` = the option's default space when the path is ``model.type``).
Parameters inside an option are named ``OPTION/PATH`` in the study, so two families may give the
same path different ranges.  :func:`parse_space` checks the shape of every spec;
:func:`check_space` then checks every path and bound against the recipe and the model types.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from honing.errors import HoningError, RecipeError, did_you_mean
from honing.recipe import set_path

KINDS = ("float", "int", "choice", "layers")
OPTIONS = ("log", "step", "width")
#: Paths a search may not set: they name the run or the search itself.
FIXED = ("recipe_version", "name", "tune")
#: The most combinations a grid may hold.
MAX_GRID = 100_000


@dataclass(frozen=True)
class Dimension:
    """One searched recipe path: its distribution, and for a conditional choice the sub-spaces."""

    path: str
    name: str  # the Optuna parameter name: the path, prefixed by the options it is conditional on
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    branches: Mapping[Any, tuple[Dimension, ...]] | None = None
    width: tuple[int, int] | None = None  # layers: the range of every layer's width

    def labels(self) -> list:
        """The choices as values Optuna can store (lists and mappings become JSON text)."""
        return [_label(c) for c in self.choices]


def _label(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


# --------------------------------------------------------------------------- parsing


def parse_space(raw: Any, defaults: Callable[[Any], dict] | None = None,
                where: str = "tune.space", prefix: str = "", taken: frozenset = frozenset()) -> tuple[Dimension, ...]:
    """The dimensions of a raw space mapping, its shape checked; errors name ``where.PATH``.

    ``defaults(option)`` gives the sub-space of a ``model.type`` option left ``null`` (without the
    paths ``taken`` by the space around it: an explicit range wins over a default one)."""
    if not isinstance(raw, Mapping) or not raw:
        raise RecipeError(f"{where}: must be a non-empty mapping of recipe paths to specs",
                          "e.g. train.optimizer.lr: {float: [1.0e-5, 1.0e-1], log: true}")
    dims = []
    taken = taken | {str(p) for p in raw}
    for path, spec in raw.items():
        path = str(path)
        key = f"{where}.{path}"
        if path.split(".")[0] in FIXED:
            raise RecipeError(f"{key}: '{path.split('.')[0]}' cannot be searched", "search model, train or data keys")
        dims.append(_dimension(path, spec, key, prefix, defaults, taken))
    paths = {d.path for d in dims}
    for dim in dims:
        for sub in (dim.branches or {}).values():
            twice = sorted({d.path for d in _walk(sub)} & paths)
            if twice:
                raise RecipeError(f"{where}.{dim.path}: an option's sub-space searches '{twice[0]}', "
                                  "which the space already searches", "search each path in one place")
    return tuple(dims)


def _dimension(path: str, spec: Any, key: str, prefix: str, defaults: Callable | None, taken: frozenset) -> Dimension:
    if not isinstance(spec, Mapping):
        raise RecipeError(f"{key}: expected a spec like {{float: [LOW, HIGH]}}, {{int: [LOW, HIGH]}} or {{choice: [...]}}, "
                          f"got {spec!r}", "to fix a value instead of searching it, set it in the recipe")
    for name in spec:
        if name not in KINDS + OPTIONS:
            raise RecipeError(f"{key}: unknown spec key '{name}'", did_you_mean(str(name), KINDS + OPTIONS))
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise RecipeError(f"{key}: give exactly one of {', '.join(KINDS)}", "e.g. {float: [0.001, 0.1], log: true}")
    kind, name = kinds[0], prefix + path
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise RecipeError(f"{key}.log: must be true or false, got {log!r}")
    if "width" in spec and kind != "layers":
        raise RecipeError(f"{key}.width: only for {{layers: [MIN, MAX], width: [MIN, MAX]}}")
    if kind == "choice":
        if log or step is not None:
            raise RecipeError(f"{key}: log and step are for float, int and layers ranges, not choice")
        return _choice(path, spec["choice"], key, name, prefix, defaults, taken)
    if kind == "layers":
        layers = _bounds(spec["layers"], f"{key}.layers", integer=True, log=False, minimum=1)
        width = _bounds(spec.get("width"), f"{key}.width", integer=True, log=log, minimum=1)
        _check_step(step, width, f"{key}.step", log, integer=True)
        return Dimension(path, name, kind, *layers, log=log, step=step, width=width)
    integer = kind == "int"
    low, high = _bounds(spec[kind], f"{key}.{kind}", integer=integer, log=log)
    _check_step(step, (low, high), f"{key}.step", log, integer)
    return Dimension(path, name, kind, low, high, log=log, step=step)


def _bounds(value: Any, key: str, integer: bool, log: bool, minimum: float | None = None) -> tuple:
    kind = "integers" if integer else "numbers"
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(_is_number(v, integer) for v in value)):
        raise RecipeError(f"{key}: expected [LOW, HIGH], two {kind}, got {value!r}", "e.g. [1, 4]" if integer else "e.g. [0.001, 0.1]")
    low, high = value
    if low > high or (low == high and not integer):
        raise RecipeError(f"{key}: the range [{low}, {high}] is empty", "LOW must be below HIGH")
    if log and low <= 0:
        raise RecipeError(f"{key}: a log range needs a positive lower bound, got {low}", "raise LOW above 0, or drop log: true")
    if minimum is not None and low < minimum:
        raise RecipeError(f"{key}: must be at least {minimum}, got {low}")
    return (int(low), int(high)) if integer else (float(low), float(high))


def _is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    if integer:
        return isinstance(value, int)
    return isinstance(value, (int, float)) and math.isfinite(value)


def _check_step(step: Any, bounds: tuple, key: str, log: bool, integer: bool) -> None:
    if step is None:
        return
    if not _is_number(step, integer) or step <= 0:
        raise RecipeError(f"{key}: must be a positive {'integer' if integer else 'number'}, got {step!r}")
    if log:
        raise RecipeError(f"{key}: use either step or log, not both", "Optuna samples stepped ranges uniformly")
    if step > bounds[1] - bounds[0] and bounds[1] > bounds[0]:
        raise RecipeError(f"{key}: {step} is wider than the range {list(bounds)}", "use a smaller step")


def _choice(path: str, options: Any, key: str, name: str, prefix: str, defaults: Callable | None,
            taken: frozenset) -> Dimension:
    if isinstance(options, Mapping):
        if not options:
            raise RecipeError(f"{key}.choice: is empty", "list at least one option")
        branches = {}
        for option, sub in options.items():
            if sub is None and path == "model.type" and defaults is not None:
                sub = {k: v for k, v in defaults(option).items() if k not in taken}
            branches[option] = (parse_space(sub, defaults, f"{key}.choice.{option}", f"{prefix}{option}/", taken)
                                if sub else ())
        nested = {d.path for dims in branches.values() for d in _walk(dims)}
        if path in nested:
            raise RecipeError(f"{key}: an option's sub-space sets '{path}' again", "remove it from the sub-space")
        return Dimension(path, name, "choice", choices=tuple(options), branches=branches)
    if not isinstance(options, (list, tuple)) or not options:
        raise RecipeError(f"{key}.choice: expected a non-empty list of values, got {options!r}",
                          "e.g. {choice: [64, 128, 256]}")
    labels = [_label(o) for o in options]
    if len(set(map(repr, labels))) != len(labels):
        raise RecipeError(f"{key}.choice: lists a value twice", "list each option once")
    if path == "model.type" and defaults is not None:  # each family brings its default sub-space
        return _choice(path, {o: None for o in options}, key, name, prefix, defaults, taken)
    return Dimension(path, name, "choice", choices=tuple(options))


def _walk(dims: tuple[Dimension, ...]) -> Iterator[Dimension]:
    """Every dimension, depth first, branches included."""
    for dim in dims:
        yield dim
        for sub in (dim.branches or {}).values():
            yield from _walk(sub)


# --------------------------------------------------------------------------- sampling


def suggest(trial: Any, dims: tuple[Dimension, ...]) -> dict[str, Any]:
    """Ask ``trial`` for a value of every dimension (and of the chosen options' sub-spaces);
    return them by recipe path."""
    values: dict[str, Any] = {}
    for dim in dims:
        if dim.kind == "float":
            values[dim.path] = trial.suggest_float(dim.name, dim.low, dim.high, log=dim.log, step=dim.step)
        elif dim.kind == "int":
            values[dim.path] = trial.suggest_int(dim.name, dim.low, dim.high, log=dim.log, step=dim.step or 1)
        elif dim.kind == "layers":
            depth = trial.suggest_int(f"{dim.name}.layers", dim.low, dim.high)
            values[dim.path] = [trial.suggest_int(f"{dim.name}.width{i + 1}", *dim.width, log=dim.log, step=dim.step or 1)
                                for i in range(depth)]
        else:
            labels = dim.labels()
            label = trial.suggest_categorical(dim.name, labels)
            option = dim.choices[_index(labels, label)]
            values[dim.path] = option
            if dim.branches:
                values.update(suggest(trial, dim.branches[option]))
    return values


def _index(labels: list, label: Any) -> int:
    """The position of ``label``, told apart by type too (1, 1.0 and True are different choices)."""
    return next(i for i, x in enumerate(labels) if type(x) is type(label) and x == label)


def _values(dim: Dimension) -> list:
    if dim.kind == "choice":
        return dim.labels()
    if dim.kind == "layers":
        return list(range(dim.width[0], dim.width[1] + 1, dim.step or 1))
    if dim.kind == "int":
        return list(range(int(dim.low), int(dim.high) + 1, dim.step or 1))
    if dim.step is None:
        raise RecipeError(f"tune.space.{dim.path}: the grid sampler needs a step for a float range",
                          "give it step: (not log:), use choice:, or another tune.sampler")
    count = math.floor((dim.high - dim.low) / dim.step + 1e-9) + 1
    return [round(dim.low + i * dim.step, 12) for i in range(count)]


def grid_size(dims: tuple[Dimension, ...]) -> int:
    """How many distinct recipes the grid holds: conditional parameters count only under their
    option, and a layer's width only when the network is that deep."""
    size = _count(dims)
    if size > MAX_GRID:
        raise RecipeError(f"tune.space: the grid has {size:,} combinations (most {MAX_GRID:,})",
                          "add steps or fewer choices, or use tune.sampler: tpe")
    return size


def _count(dims: tuple[Dimension, ...]) -> int:
    total = 1
    for dim in dims:
        if dim.kind == "choice" and dim.branches:
            total *= sum(_count(dim.branches[option]) for option in dim.choices)
        elif dim.kind == "layers":
            widths = len(_values(dim))
            total *= sum(widths ** depth for depth in range(int(dim.low), int(dim.high) + 1))
        else:
            total *= len(_values(dim))
    return total


# --------------------------------------------------------------------------- recipes


def apply_values(base: dict, values: Mapping[str, Any]) -> dict:
    """A copy of the raw recipe ``base`` with ``values`` set by path; a new ``model.type`` starts
    from empty ``model.params`` (the base's parameters belong to the base's type)."""
    raw = copy.deepcopy(base)
    model = raw.setdefault("model", {})
    if "model.type" in values and values["model.type"] != model.get("type", "auto"):
        model["params"] = {}
    for path, value in values.items():
        set_path(raw, path, copy.deepcopy(value))
    return raw


def examples(dims: tuple[Dimension, ...], context: dict | None = None) -> Iterator[tuple[str, dict]]:
    """(path, values) pairs that together put every bound and option of the space into a recipe:
    each dimension's extremes, with the options its branch is conditional on."""
    context = dict(context or {})
    for dim in dims:
        if dim.kind == "choice":
            for option in dim.choices:
                yield dim.path, {**context, dim.path: option}
                if dim.branches:
                    yield from examples(dim.branches[option], {**context, dim.path: option})
        elif dim.kind == "layers":
            for depth, width in ((dim.low, dim.width[0]), (dim.high, dim.width[1])):
                yield dim.path, {**context, dim.path: [int(width)] * int(depth)}
        else:
            cast = int if dim.kind == "int" else float
            for bound in (dim.low, dim.high):
                yield dim.path, {**context, dim.path: cast(bound)}


def check_space(dims: tuple[Dimension, ...], base: dict, check: Callable[[dict], None]) -> None:
    """Check every path and bound by building recipes with them and calling ``check(raw)``, which
    raises a :class:`HoningError` for an invalid recipe; errors are re-raised naming ``tune.space``."""
    for path, values in examples(dims):
        try:
            check(apply_values(base, values))
        except HoningError as exc:
            what = exc.what if path in exc.what else f"{path}: {exc.what}"
            raise type(exc)(f"tune.space: {what}", exc.hint) from None


def params_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """Searched values for display: lists and mappings as compact JSON."""
    return {path: _label(v) for path, v in values.items()}


def build_space(recipe: Any, task: str) -> tuple[Dimension, ...]:
    """The checked dimensions of ``recipe.tune.space`` (or the model type's default space) for
    ``task``: every path and bound is tried in a recipe and a model of that task."""
    from honing.models.classic import make_model, neural_options, resolve_candidates
    from honing.recipe import validate_recipe
    from honing.tuning.defaults import default_space, option_space
    from honing.tuning.tasks import task_tuner

    tuner = task_tuner(task)  # unsupervised, reinforcement and generation: their own spaces and checks
    if tuner is not None:
        return tuner.tune_space(recipe)
    model = recipe.model
    candidates = resolve_candidates(model.candidates, task) if model.type == "auto" else []
    raw = recipe.tune.space if recipe.tune.space is not None else default_space(model.type, candidates)
    dims = parse_space(raw, option_space)
    if model.type == "auto" and "model.type" not in {d.path for d in dims}:
        raise RecipeError("tune.space: model.type is auto, so the space must search model.type",
                          "add model.type: {choice: [lightgbm, mlp]}, or leave tune.space out")

    def check(raw_recipe: dict) -> None:
        sample = validate_recipe(raw_recipe)
        if sample.model.type != "auto":
            make_model(sample.model.type, task, sample.model.params, sample.seed, sample.train,
                       neural_options(sample))

    check_space(dims, recipe.model_dump(mode="json"), check)
    return dims
