"""honing: a dataset and a short YAML recipe in; a trained, evaluated, saved model out.

    >>> import honing
    >>> run = honing.train("recipe.yaml")            # or a dict, or honing.Recipe
    >>> model = honing.load(run.bundle_dir)
    >>> model.predict(df)

The public surface is imported lazily so that ``import honing`` (and ``honing --help``) is instant.
"""

from __future__ import annotations

import os
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("honing")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# LightGBM and scikit-learn run OpenMP threads whose default busy-waiting makes training 10-50x slower
# whenever another process competes for the cores (parallel tests, a server beside a training job);
# passive waiting costs next to nothing on an idle machine (benchmarks/bench_tabular.py). It must be
# set before those libraries load; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_PUBLIC = {
    "Recipe": "honing.recipe",
    "load_recipe": "honing.recipe",
    "train": "honing.api",
    "evaluate": "honing.api",
    "audit": "honing.api",
    "predict": "honing.api",
    "load": "honing.api",
    "quickstart": "honing.api",
    "compress": "honing.api",
    "export": "honing.api",
    "RunResult": "honing.api",
    "Bundle": "honing.bundle",
    "HoningError": "honing.errors",
}

__all__ = [  # noqa: PLE0604 (the lazy names)
    *_PUBLIC,
    "__version__",
]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'honing' has no attribute {name!r}")
