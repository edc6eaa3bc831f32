"""The data stage: read a table, infer its schema, split it, and build the preprocessor.

Modules: :mod:`~honing.data.sources` (readers and fingerprints), :mod:`~honing.data.builtin`
(bundled datasets), :mod:`~honing.data.schema` (column kinds and task inference),
:mod:`~honing.data.split` (train / validation / test), :mod:`~honing.data.preprocess`
(row cleaning, feature coercion and the scikit-learn preprocessor), :mod:`~honing.data.balance`
(class balancing of the training split), :mod:`~honing.data.text` (token ids),
:mod:`~honing.data.images` (image inputs) and :mod:`~honing.data.augment` (augmentation).
"""
