"""The report's comparison of a fine-tuned model with its base model and with training from
scratch (``metrics.json``: ``base_model``, ``scratch``; see :mod:`honing.evaluation.transfer`)."""

from __future__ import annotations

from typing import Any

from honing.report.markup import para, table

METHODS = {"zero_shot": "base model, zero-shot", "linear_probe": "base model, linear probe on frozen features"}


def transfer_table(m: dict[str, Any]) -> str:
    """Test (and validation) scores of the base model, the fine-tuned model and the from-scratch twin."""
    base, scratch = m.get("base_model"), m.get("scratch")
    if not isinstance(base, dict) and not isinstance(scratch, dict):
        return ""
    test = m.get("test") if isinstance(m.get("test"), dict) else {}
    names = [k for k, v in test.items() if isinstance(v, int | float)][:4]
    rows = []
    if isinstance(base, dict):
        rows.append([METHODS.get(base.get("method"), "base model"), *[_score(base, n) for n in names],
                     base.get("seconds")])
    rows.append([f"fine-tuned ({m.get('model')})", *[test.get(n) for n in names], None])
    if isinstance(scratch, dict):
        rows.append(["same network from random weights", *[_score(scratch, n) for n in names], scratch.get("seconds")])
    head = ["model", *[f"{n} (test)" for n in names], "extra seconds"]
    return ("<h3>Fine-tuning vs base model</h3>"
            + para("Every row is scored on the same test split; the base model is evaluated before any of "
                   "its weights change.") + table(head, rows))


def _score(entry: dict, name: str) -> Any:
    test = entry.get("test")
    return test.get(name) if isinstance(test, dict) else None
