"""The recipe: the single source of truth for a run (pydantic schema, ``recipe_version: 1``).

Load a YAML file with :func:`load_recipe`, apply ``--set a.b.c=value`` overrides, and get a
validated :class:`Recipe` whose defaults are visible in ``docs/recipe.md`` (generated from the
schema by :func:`reference_markdown`, and checked against it by a test).  Every error names the
YAML key path, e.g. ``split.validation: must be < 1``.

:mod:`~honing.recipe.schema` holds the sections, :mod:`~honing.recipe.loading` the loading and its
errors, :mod:`~honing.recipe.reference` the generated reference; their public names are here.
"""

from honing.recipe.loading import apply_override, load_recipe, set_path, validate_recipe
from honing.recipe.reference import reference_markdown
from honing.recipe.schema import (
    RECIPE_VERSION,
    AuditConfig,
    CleanConfig,
    ClipConfig,
    ColumnKind,
    CompressConfig,
    CVConfig,
    DataConfig,
    DistillConfig,
    DriftThresholds,
    EarlyStoppingConfig,
    EvaluateConfig,
    FinetuneConfig,
    ImageConfig,
    LoraConfig,
    MissingConfig,
    ModelConfig,
    MonitorConfig,
    OptimizerConfig,
    PruneConfig,
    ReadConfig,
    Recipe,
    ScheduleConfig,
    ServeConfig,
    SplitConfig,
    TrackingConfig,
    TrainConfig,
    TuneConfig,
)

__all__ = [
    "RECIPE_VERSION",
    "AuditConfig",
    "CVConfig",
    "CleanConfig",
    "ClipConfig",
    "ColumnKind",
    "CompressConfig",
    "DataConfig",
    "DistillConfig",
    "DriftThresholds",
    "EarlyStoppingConfig",
    "EvaluateConfig",
    "FinetuneConfig",
    "ImageConfig",
    "LoraConfig",
    "MissingConfig",
    "ModelConfig",
    "MonitorConfig",
    "OptimizerConfig",
    "PruneConfig",
    "ReadConfig",
    "Recipe",
    "ScheduleConfig",
    "ServeConfig",
    "SplitConfig",
    "TrackingConfig",
    "TrainConfig",
    "TuneConfig",
    "apply_override",
    "load_recipe",
    "reference_markdown",
    "set_path",
    "validate_recipe",
]
