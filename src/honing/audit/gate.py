"""The gate: ``audit.fail_on`` rules that stop a run when the audit finds what they name.

A rule is a check name (``split_leakage``: stop when that check flags anything) or ``{check: limit}``
(stop when the check's measured value passes ``limit``: above it, or below it for the ratios where
lower is worse, such as ``disparate_impact``).  Data rules are enforced before training; fairness
rules after training, before anything is saved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from honing.audit.findings import Finding
from honing.errors import HoningError, RecipeError, did_you_mean

#: Fairness measures a rule may name (computed when audit.sensitive is set).
DATA_FAIRNESS_CHECKS = ("group_imbalance", "label_rate_difference", "label_mean_difference")
#: Measured after training (on the model's test predictions).
MODEL_CHECKS = frozenset({"demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
                          "equal_opportunity_difference", "disparate_impact", "accuracy_difference",
                          "mae_difference", "mae_relative_difference"})
FAIRNESS_CHECKS = (*DATA_FAIRNESS_CHECKS, *sorted(MODEL_CHECKS))
#: Ratios where a smaller value is worse: a rule fails when the value falls below its limit.
LOWER_IS_WORSE = frozenset({"disparate_impact", "demographic_parity_ratio"})


class AuditFailed(HoningError):
    """An ``audit.fail_on`` rule was breached: the run stops and nothing is saved."""


@dataclass(frozen=True)
class Rule:
    check: str
    limit: float | None = None  # None: any finding of the check breaches the rule

    def __str__(self) -> str:
        return self.check if self.limit is None else f"{{{self.check}: {self.limit:g}}}"

    def breached_by(self, value: float | None) -> bool:
        if self.limit is None or value is None:
            return self.limit is None
        return value < self.limit if self.check in LOWER_IS_WORSE else abs(value) > self.limit


def parse_rules(fail_on: Iterable[Any], data_checks: Iterable[str]) -> list[Rule]:
    """The rules of ``audit.fail_on``; an unknown check or a malformed entry is a RecipeError."""
    known = [*data_checks, *FAIRNESS_CHECKS]
    rules = []
    for i, entry in enumerate(fail_on):
        where = f"audit.fail_on[{i}]"
        if isinstance(entry, dict):
            if len(entry) != 1:
                raise RecipeError(f"{where}: one check per entry, got {entry!r}",
                                  "write each rule as its own list item, e.g. - {target_leakage: 0.99}")
            (check, limit), = entry.items()
            if isinstance(limit, bool) or not isinstance(limit, (int, float)):
                raise RecipeError(f"{where}.{check}: the limit must be a number, got {limit!r}",
                                  "e.g. {demographic_parity_difference: 0.1}")
            rule = Rule(str(check), float(limit))
        else:
            rule = Rule(str(entry))
        if rule.check not in known:
            raise RecipeError(f"{where}: unknown check '{rule.check}'", did_you_mean(rule.check, known))
        rules.append(rule)
    return rules


def breaches(rules: Iterable[Rule], findings: Iterable[Finding],
             measured: dict[str, list[tuple[str | None, float]]] | None = None) -> list[str]:
    """One line per breached rule.  ``findings`` are what the checks flagged; ``measured`` adds every
    value a check measured, flagged or not (check → [(column, value)]), so a rule stricter than the
    check's own default limit still sees it."""
    findings = list(findings)
    lines = []
    for rule in rules:
        values = [(f.column, f.value, f.message) for f in findings if f.check == rule.check]
        values += [(column, value, None) for column, value in (measured or {}).get(rule.check, [])]
        hit = next(((c, v, m) for c, v, m in values if rule.breached_by(v)), None)
        if hit is None:
            continue
        column, value, message = hit
        measured_text = f"{value:.4g}" if value is not None else "flagged"
        about = f" for '{column}'" if column else ""
        lines.append(f"{rule.check}: {message}" if rule.limit is None and message else
                     f"{rule.check}{about} is {measured_text} (limit {rule.limit:g})")
    return lines


def enforce(rules: Iterable[Rule], findings: Iterable[Finding],
            measured: dict[str, list[tuple[str | None, float]]] | None = None, *, stage: str) -> None:
    """Raise :class:`AuditFailed` naming the first breached rule (and how many others) at ``stage``."""
    rules = list(rules)
    lines = breaches(rules, findings, measured)
    if not lines:
        return
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    raise AuditFailed(f"audit.fail_on stopped the run {stage}: {lines[0]}{more}",
                      "fix the data or the model, or relax the rule in audit.fail_on (see audit.json and docs/audit.md)")
