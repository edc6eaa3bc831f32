"""What an audit found: one :class:`Finding` per check that flagged something.

Every check (data quality, fairness) reports findings of the same shape, so the console table,
``audit.json`` and the gate (``audit.fail_on``) treat them alike.  ``value`` is the number the
check measured (a fraction, a score, a difference); a gate rule ``{check: limit}`` compares it with
``limit``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "error")


@dataclass
class Finding:
    """One flagged result of one check.

    ``check`` names the check (``missing_values``, ``target_leakage``, ``demographic_parity_difference``
    …); ``column`` the column it is about (None for the whole table); ``count`` the rows involved;
    ``value`` the measured number; ``message`` one readable line; ``details`` anything else worth
    keeping in audit.json (JSON-serialisable).
    """

    check: str
    severity: Severity
    message: str
    column: str | None = None
    count: int | None = None
    value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
