"""``data.reduce``: dimensionality reduction as the last preprocessing step of any recipe.

``data.reduce: {pca: 0.95}`` keeps the principal components that explain 95% of the training split's
variance (a float in (0, 1)); ``{pca: 10}`` keeps 10 components (an integer).  The PCA is fitted with the
rest of the preprocessing on the training split only, and the bundle's preprocessor is then a
``Pipeline([("columns", ColumnTransformer), ("reduce", PCA)])``, so ``honing predict``, the Python
API and ``honing serve`` apply it like any other step.  The compiled single-row path of the server
(:mod:`honing.serving.fast_transform`) handles ColumnTransformers only, so for these bundles it is not
used and rows go through the fitted pipeline (the same numbers, a little slower per request).

Not available with image columns, or token ids (``data.text: tokens`` / ``pretrained``): ids are not
quantities a PCA can mix.  On a streamed table (``data.streaming``) the PCA is fitted on the row
sample's training rows (:mod:`honing.data.stream_fit`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from honing.errors import RecipeError, first_line


def check_reduce(schema: Any, cfg: Any) -> None:
    """RecipeError for a ``data.reduce`` the data cannot take, or a bad number of components."""
    kinds = {c.kind for c in schema.features}
    value = cfg.reduce.get("pca")
    if value is None or value <= 0 or (value >= 1 and float(value) != int(value)):
        raise RecipeError(f"data.reduce.pca: {value!r} is neither a variance fraction in (0, 1) nor a "
                          "number of components", "e.g. data.reduce: {pca: 0.95} or {pca: 10}")
    if "image" in kinds:
        raise RecipeError("data.reduce: images are not reduced (their pixels feed a cnn)", "remove data.reduce")
    if "text" in kinds and cfg.text in ("tokens", "pretrained"):
        raise RecipeError(f"data.reduce: token ids (data.text: {cfg.text}) cannot be reduced by a PCA",
                          "use data.text: tfidf, or remove data.reduce")


def with_reduction(columns: Any, cfg: Any) -> Any:
    """``columns`` (the unfitted ColumnTransformer) followed by the PCA of ``cfg.reduce``."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline

    value = float(cfg.reduce["pca"])
    components: float | int = value if value < 1 else int(value)
    return Pipeline([("columns", columns), ("reduce", PCA(n_components=components, svd_solver="full"))])


def fit_reduction(columns: Any, cfg: Any, X: Any) -> Any:
    """The pipeline of :func:`with_reduction` around the *fitted* ``columns``, its PCA fitted on
    ``X`` (their output for the training rows; a streamed table's sampled rows)."""
    pipeline = with_reduction(columns, cfg)
    with components_checked():
        pipeline.named_steps["reduce"].fit(X)
    return pipeline


@contextlib.contextmanager
def components_checked() -> Iterator[None]:
    """Around fitting a preprocessor: more PCA components than the preprocessed training rows have
    features (or rows) is a RecipeError naming data.reduce.pca, not scikit-learn's ValueError."""
    try:
        yield
    except ValueError as exc:
        if "n_components=" not in str(exc) or "must be between" not in str(exc):
            raise
        raise RecipeError(f"data.reduce.pca: {first_line(exc)}",
                          "ask for fewer components, or for a variance fraction such as {pca: 0.95}") from None
