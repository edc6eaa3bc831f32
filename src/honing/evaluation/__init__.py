"""Evaluation: the metrics that score predictions and pick among models (:mod:`.metrics`)."""
