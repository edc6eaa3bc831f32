"""The data stage: read a table, infer its schema, split it, and build the preprocessor.

Modules: :mod:`~honing.data.sources` (readers and fingerprints), :mod:`~honing.data.builtin`
(bundled datasets), :mod:`~honing.data.schema` (column kinds and task inference),
:mod:`~honing.data.split` (train / validation / test) and :mod:`~honing.data.preprocess`
(row cleaning, feature coercion and the scikit-learn preprocessor).
"""
