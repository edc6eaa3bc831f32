"""From a recipe's ``data:`` section to split, typed, encoded data ready for the models.

:func:`load_dataset` reads the source, resolves the target and task, drops duplicates and rows
without a target, infers the column schema and splits the rows.  Class labels are encoded as
0..K-1 in sorted order; :attr:`Dataset.classes` maps them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pandas.api.types as pdt

from honing.data.builtin import load_builtin
from honing.data.image_sources import (
    check_image_files,
    is_array_file,
    is_image_source,
    peek_image_shape,
    read_image_dataset,
)
from honing.data.preprocess import build_preprocessor, clean_rows, coerce_features
from honing.data.schema import Schema, check_target, infer_schema, infer_task
from honing.data.sources import fingerprint, read_table
from honing.data.split import split_frame, time_order
from honing.errors import DataError, RecipeError, did_you_mean
from honing.recipe import DataConfig, Recipe, SplitConfig

SPLITS = ("train", "validation", "test")


@dataclass
class Dataset:
    """Split rows plus everything needed to turn them into model inputs."""

    task: str
    target: str
    schema: Schema
    splits: dict[str, pd.DataFrame]
    classes: list | None
    fingerprint: str
    n_rows: int
    notes: list[str] = field(default_factory=list)
    raw: pd.DataFrame | None = field(default=None, repr=False)  # the table as read, before cleaning (for the audit)
    #: (C, H, W) of the images: an image column's (from data.image or the first training image) or an
    #: image array source's pixel columns; None for other data.
    image_shape: tuple[int, int, int] | None = None

    @property
    def n_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    def features(self, split: str) -> pd.DataFrame:
        return coerce_features(self.splits[split], self.schema)

    def labels(self, split: str) -> np.ndarray:
        return self.labels_of(self.splits[split])

    def labels_of(self, rows: pd.DataFrame) -> np.ndarray:
        """The encoded target of ``rows`` (class codes 0..K-1, or floats)."""
        return encode_target(rows[self.target], self.task, self.classes)

    def prepared(self, cfg: DataConfig) -> tuple[Any, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """The preprocessing ``cfg`` describes, fitted on the training split only, and every
        non-empty split transformed by it into model inputs ``(X, y)``."""
        from honing.data.reduce import components_checked

        preprocessor = build_preprocessor(self.schema, cfg)
        with components_checked():
            preprocessor.fit(self.features("train"))
        return preprocessor, {s: (preprocessor.transform(self.features(s)), self.labels(s))
                              for s in SPLITS if len(self.splits[s])}

    def excluding(self, columns: list[str]) -> Dataset:
        """A copy whose model features leave out ``columns`` (they stay in the rows, e.g. for the
        fairness audit of ``audit.exclude_sensitive``)."""
        return replace(self, schema=self.schema.excluding(columns))

    def with_training(self, rows: pd.DataFrame) -> Dataset:
        """The dataset with other training rows (e.g. augmented copies added); the rest unchanged."""
        return replace(self, splits={**self.splits, "train": rows})

    def with_validation_in_train(self) -> Dataset:
        """A copy whose training split also holds the validation rows (to refit a chosen model)."""
        train = pd.concat([self.splits["train"], self.splits["validation"]])
        splits = {"train": train, "validation": self.splits["validation"].iloc[:0], "test": self.splits["test"]}
        return replace(self, splits=splits)

    def folds(self, k: int, split: SplitConfig, seed: int) -> list[Dataset]:
        """``k`` cross-validation folds of train + validation, as datasets whose validation split
        is the fold (test untouched): grouped, ordered by time, or stratified like the split."""
        from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit

        rows = pd.concat([self.splits["train"], self.splits["validation"]])
        if split.time:
            rows = rows.iloc[time_order(rows[split.time])]  # parsed dates, not their text
            splitter, groups = TimeSeriesSplit(n_splits=k), None
        elif split.group:
            splitter, groups = GroupKFold(n_splits=k, shuffle=True, random_state=seed), rows[split.group]
        elif self.task == "classification" and split.stratify is not False:
            splitter, groups = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed), None
        else:
            splitter, groups = KFold(n_splits=k, shuffle=True, random_state=seed), None
        labels = encode_target(rows[self.target], self.task, self.classes)
        try:
            parts = list(splitter.split(rows, labels if self.task == "classification" else None, groups))
        except ValueError as exc:
            raise DataError(f"tune.cv: cannot make {k} folds of {len(rows)} rows: {exc}",
                            "lower tune.cv, or score on the validation split (tune.cv: null)") from None
        return [replace(self, splits={"train": rows.iloc[fit], "validation": rows.iloc[held],
                                      "test": self.splits["test"]}) for fit, held in parts]


def encode_target(y: pd.Series, task: str, classes: list | None) -> np.ndarray:
    """Class labels → codes 0..K-1 (unknown labels → -1); regression targets → float."""
    if task == "regression":
        return pd.to_numeric(y, errors="coerce").to_numpy(dtype=float)
    lookup = {_label_key(c): i for i, c in enumerate(classes or [])}
    return np.array([lookup.get(_label_key(v), -1) for v in y], dtype=np.int64)


def _label_key(value) -> str:
    """Compare labels by value, so 1, 1.0, '1' and np.int64(1) are one class, and 'yes' and ' yes '."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value).strip()
    return str(int(number)) if number.is_integer() else str(number)


def strip_label(value):
    """A label without the spaces around it (a text label; others as they are)."""
    return value.strip() if isinstance(value, str) else value


def _stripped_labels(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, str]:
    """``frame`` with its text target labels stripped of surrounding spaces (' yes ' is 'yes', as a
    feature's categories are), and a note when some were."""
    y = frame[target]
    if pdt.is_numeric_dtype(y) or pdt.is_bool_dtype(y):
        return frame, ""
    stripped = y.map(strip_label)
    changed = y.notna() & (stripped.astype(object) != y.astype(object))
    if not changed.any():
        return frame, ""
    example = y[changed].iloc[0]
    return frame.assign(**{target: stripped}), (
        f"target '{target}': {int(changed.sum())} labels had spaces around them (e.g. {example!r}), removed")


def image_shaped(recipe: Recipe, shape: tuple[int, int, int] | None) -> Recipe:
    """The recipe with a cnn reading images of ``shape`` as (C, H, W): ``model.params.input_shape``
    from the data unless the recipe sets it (an RGB image's pixels are not one square)."""
    params = recipe.model.params
    if shape is None or recipe.model.type != "cnn" or "input_shape" in params:
        return recipe
    model = recipe.model.model_copy(update={"params": {**params, "input_shape": list(shape)}})
    return recipe.model_copy(update={"model": model})


def load_dataset(cfg: DataConfig, seed: int) -> Dataset:
    """Read, clean, type and split the data described by ``cfg``."""
    notes: list[str] = []
    frame, target, task, types, image_shape = _read_with_target(cfg)
    _check_columns(frame, target, cfg)
    frame, note = _stripped_labels(frame, target)
    notes += [note] if note else []
    if task == "auto":
        task = infer_task(frame[target])
        notes.append(f"task inferred from target '{target}': {task} (set data.task to override)")
    check_target(frame, target, task)
    _check_target_kind(cfg.types.get(target), target, task)
    raw = frame
    frame, cleaning = clean_rows(frame, target, cfg.clean.duplicates)
    notes += cleaning
    drop = [*cfg.drop, *([cfg.split.column] if cfg.split.column and cfg.split.column not in cfg.drop else [])]
    schema = infer_schema(frame, target=target, overrides={**types, **cfg.types}, drop=drop)
    notes += [f"column '{c.name}': {c.note}" for c in schema.columns
              if c.note and not (c.name in types and c.name not in cfg.types)]  # kinds the source fixed: no note
    images = [c.name for c in schema.features if c.kind == "image"]
    if images:
        check_image_files(frame, images)
    split = cfg.split
    try:
        splits = split_frame(frame, target=target, task=task, validation=split.validation, test=split.test,
                             stratify=split.stratify, group=split.group, time=split.time, seed=seed,
                             column=split.column)
    except DataError as exc:
        if cleaning:  # the rows that were read are not the rows that were split: say why
            raise type(exc)(f"{cfg.source}: {exc.what} (of {len(raw)} rows read: {'; '.join(cleaning)})",
                            exc.hint + ("; or keep duplicates with data.clean.duplicates: keep"
                                        if any("duplicated" in note for note in cleaning) else "")) from None
        raise
    classes = _classes(frame[target]) if task == "classification" else None
    if classes is not None:
        _check_train_classes(frame[target], splits["train"][target], target)
    if images and image_shape is None and len(splits["train"]):
        image_shape = peek_image_shape(coerce_features(splits["train"].head(1), schema)[images[:1]], cfg.image)
    return Dataset(task=task, target=target, schema=schema, splits=splits, classes=classes,
                   fingerprint=fingerprint(frame), n_rows=len(frame), notes=notes, raw=raw,
                   image_shape=image_shape)


def _check_target_kind(kind: str | None, target: str, task: str) -> None:
    """RecipeError for ``data.types.TARGET`` at odds with the task (which alone says how the target is
    predicted): a numeric kind on a classification target was silently ignored."""
    wants = {"numeric": "regression", "categorical": "classification", "boolean": "classification"}.get(kind or "")
    if kind is not None and wants != task:  # (task: classification or regression, as check_target made sure)
        raise RecipeError(f"data.types.{target}: the target is predicted as data.task ({task}), not by its kind "
                          f"'{kind}'", f"set data.task: {wants}" if wants else f"remove data.types.{target}")


def _read_with_target(cfg: DataConfig) -> tuple[pd.DataFrame, str, str, dict[str, str], tuple | None]:
    """The frame, its target and task (a builtin's defaults where the recipe is silent), the
    column kinds a builtin dataset or an image source fixes, and an image array's (C, H, W)."""
    source, target, task, types, shape = cfg.source, cfg.target, cfg.task, {}, None
    if cfg.labels is not None and not is_array_file(source):
        raise RecipeError(f"data.labels: {source} is not an image array file (.npy, .npz, IDX)",
                          "remove data.labels (it gives the labels of an image array source)")
    if not source.startswith("builtin:") and is_image_source(source):
        image = read_image_dataset(cfg)
        frame, target, shape = image.frame, target or image.target, image.image_shape
        types = {c: k for c, k in image.types.items() if c not in cfg.drop}
    elif source.startswith("builtin:"):
        builtin = load_builtin(source.removeprefix("builtin:"))
        frame, types = builtin.frame, {c: k for c, k in builtin.types.items() if c not in cfg.drop}
        if target is None:
            target = builtin.target
            if task == "auto":
                task = builtin.task
    else:
        frame = read_table(source, delimiter=cfg.read.delimiter, encoding=cfg.read.encoding,
                           image_columns=[c for c, kind in cfg.types.items() if kind == "image"])
    if target is None:
        raise DataError(f"{source}: no target column given",
                        f"set data.target to one of: {', '.join(map(str, frame.columns[:10]))}")
    return frame, target, task, types, shape


def _check_columns(frame: pd.DataFrame, target: str, cfg: DataConfig) -> None:
    columns = [str(c) for c in frame.columns]
    named = [("data.target", target)] + [("data.drop", c) for c in cfg.drop] + [
        ("data.split.group", cfg.split.group),
                                                     ("data.split.time", cfg.split.time), ("data.split.column", cfg.split.column)]
    for key, column in named:
        if column is not None and column not in columns:
            raise DataError(f"{key}: no column '{column}' in {cfg.source}", did_you_mean(column, columns))
    if target in cfg.drop:
        raise DataError(f"data.drop: lists the target '{target}'", "remove it from data.drop")


def _classes(y: pd.Series) -> list:
    values = pd.unique(y.dropna())
    try:
        ordered = sorted(values)
    except TypeError:
        ordered = sorted(values, key=str)
    return [v.item() if hasattr(v, "item") else v for v in ordered]


def _check_train_classes(y: pd.Series, train: pd.Series, target: str) -> None:
    """DataError when a class of the target has no row in the training split (the rarest is named)."""
    keys = y.dropna().map(_label_key)
    seen = set(train.dropna().map(_label_key))
    missing = [(count, key) for key, count in keys.value_counts(sort=False).items() if key not in seen]
    if not missing:
        return
    count, key = min(missing)
    label = y.dropna()[keys == key].iloc[0]
    label = label.item() if hasattr(label, "item") else label
    rows = f"{count} row{'s' if count != 1 else ''}"
    raise DataError(
        f"class '{label}' of target '{target}' has {rows} and none is in the training split",
        "drop or merge rare classes, or add rows",
    )
