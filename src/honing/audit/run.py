"""The audit of a dataset before training: data-quality checks plus the data's bias on the sensitive
columns, gathered in one :class:`Audit` that becomes ``audit.json`` and the console table."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from honing.audit.fairness import FairnessLimits, data_bias
from honing.audit.findings import SEVERITIES, Finding
from honing.audit.gate import FAIRNESS_CHECKS, MODEL_CHECKS, Rule, enforce, parse_rules
from honing.audit.quality import CHECKS, QualityLimits, check_quality
from honing.errors import RecipeError
from honing.progress import SILENT, Progress

#: Column names that usually hold a protected attribute; `honing audit` audits them when no
#: sensitive column is given (a guess, said so on the console).
_SENSITIVE_NAMES = re.compile(r"(^|[^a-z])(sex|gender|race|ethnicity|ethnic|religion|age|nationality|"
                              r"marital|disability|pregnan)", re.IGNORECASE)


@dataclass
class Audit:
    """What the audit found: flagged findings (quality and bias), the bias tables, the gate's rules."""

    findings: list[Finding]
    sensitive: list[str] = field(default_factory=list)
    bias: dict[str, Any] = field(default_factory=dict)  # before training, per sensitive column
    fairness: dict[str, Any] = field(default_factory=dict)  # after training (filled by `honing train`)
    rules: list[Rule] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ordered(self) -> list[Finding]:
        """Findings, the most severe first."""
        return sorted(self.findings, key=lambda f: -SEVERITIES.index(f.severity))

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def enforce_data(self) -> None:
        """Stop (AuditFailed) when a data rule of ``audit.fail_on`` is breached."""
        enforce([r for r in self.rules if r.check not in MODEL_CHECKS], self.findings, stage="before training")

    def enforce_model(self, findings: list[Finding], measured: dict[str, list[tuple[str | None, float]]]) -> None:
        """Stop (AuditFailed) when a fairness rule on the trained model is breached."""
        enforce([r for r in self.rules if r.check in MODEL_CHECKS], findings, measured,
                stage="after training (nothing was saved)")

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts(), "findings": [f.to_dict() for f in self.ordered()],
                "sensitive": self.sensitive, "bias": self.bias, "fairness": self.fairness,
                "fail_on": [str(r) for r in self.rules], "notes": self.notes}


#: The limit field of each data check whose value a fail_on limit is compared with.
_LIMIT_FIELDS = {"near_constant_column": ("near_constant",), "high_cardinality": ("max_categories",),
                 "outliers": ("outliers",), "class_imbalance": ("imbalance",),
                 "target_leakage": ("leakage", "leakage_r2"), "distribution_shift": ("shift_effect",),
                 "group_imbalance": ("group_imbalance",), "label_rate_difference": ("label_rate",),
                 "label_mean_difference": ("label_mean",)}


def _tightened(limits: Any, rules: list[Rule]) -> Any:
    """``limits`` with each check's flagging limit lowered to a stricter fail_on limit, so the check
    reports what the rule must see."""
    changes = {}
    for rule in rules:
        for name in _LIMIT_FIELDS.get(rule.check, ()) if rule.limit is not None else ():
            if hasattr(limits, name):
                default = getattr(limits, name)
                changes[name] = type(default)(min(default, rule.limit))
    return replace(limits, **changes)


def guess_sensitive(columns: list[str], exclude: tuple[str, ...] = ()) -> list[str]:
    """Columns whose names suggest a protected attribute (sex, gender, race, age, …)."""
    return [c for c in map(str, columns) if c not in exclude and _SENSITIVE_NAMES.search(c)]


def audit_data(frame: pd.DataFrame, target: str | None, task: str | None, *, sensitive: list[str],
               fail_on: list, splits: dict[str, pd.DataFrame] | None = None, ignore: tuple[str, ...] = (),
               seed: int = 0, progress: Progress = SILENT) -> Audit:
    """Run every data check on ``frame`` (the table as read) and ``splits``, and the bias measures
    of ``sensitive``; ``fail_on`` is parsed here (an unknown check fails before any work) and
    enforced by :meth:`Audit.enforce_data` / :meth:`Audit.enforce_model`."""
    rules = parse_rules(fail_on, CHECKS)
    unmeasured = [str(r) for r in rules if r.check in FAIRNESS_CHECKS] if not sensitive else []
    if unmeasured:
        raise RecipeError(f"audit.fail_on: {unmeasured[0]} is measured on sensitive columns, and none is given",
                          "set audit.sensitive: [COLUMN] (or --sensitive COLUMN)")
    with progress.step("auditing the data"):
        findings = check_quality(frame, target, task, splits=splits, ignore=ignore, seed=seed,
                                 limits=_tightened(QualityLimits(), rules))
        bias: dict[str, Any] = {}
        if sensitive and target is not None and task is not None:
            labelled = frame[frame[target].notna()]
            bias, flagged = data_bias(labelled, target, sensitive, task, limits=_tightened(FairnessLimits(), rules))
            findings += flagged
    return Audit(findings, list(sensitive), bias, rules=rules)
