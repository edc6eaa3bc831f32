"""audit.fail_on: parsing with clear errors, which values breach a rule, and stricter limits reaching the checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from honing.audit.findings import Finding
from honing.audit.gate import AuditFailed, Rule, breaches, enforce, parse_rules
from honing.audit.quality import CHECKS
from honing.audit.run import audit_data
from honing.errors import RecipeError


def test_rules_parse_names_and_limits():
    rules = parse_rules(["split_leakage", {"demographic_parity_difference": 0.1}], CHECKS)
    assert rules == [Rule("split_leakage"), Rule("demographic_parity_difference", 0.1)]
    assert str(rules[1]) == "{demographic_parity_difference: 0.1}"


@pytest.mark.parametrize(("entry", "words"), [
    ("target_leek", ["audit.fail_on[0]", "target_leakage"]),
    ({"target_leakage": "high"}, ["audit.fail_on[0].target_leakage", "number"]),
    ({"target_leakage": 0.9, "split_leakage": 0.1}, ["one check per entry"]),
])
def test_bad_rules_name_the_entry(entry, words):
    with pytest.raises(RecipeError) as caught:
        parse_rules([entry], CHECKS)
    assert all(w in str(caught.value) for w in words)


def test_which_values_breach():
    assert Rule("split_leakage").breached_by(None) and Rule("split_leakage").breached_by(0.01)
    assert Rule("demographic_parity_difference", 0.1).breached_by(-0.2)  # either direction
    assert not Rule("demographic_parity_difference", 0.1).breached_by(0.1)
    assert Rule("disparate_impact", 0.8).breached_by(0.7) and not Rule("disparate_impact", 0.8).breached_by(0.9)


def test_breaches_use_findings_and_every_measured_value():
    finding = Finding("split_leakage", "error", "12 test rows are in train", count=12, value=0.04)
    rules = [Rule("split_leakage"), Rule("equalized_odds_difference", 0.05)]
    lines = breaches(rules, [finding], {"equalized_odds_difference": [("Sex", 0.03), ("Age", 0.07)]})
    assert lines == ["split_leakage: 12 test rows are in train", "equalized_odds_difference for 'Age' is 0.07 (limit 0.05)"]
    assert breaches(rules, [], {"equalized_odds_difference": [("Sex", 0.03)]}) == []
    with pytest.raises(AuditFailed) as caught:
        enforce(rules, [finding], stage="before training")
    assert "before training: split_leakage" in str(caught.value) and caught.value.exit_code == 2


def test_a_stricter_limit_reaches_the_check():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    hint = np.where(rng.random(2000) < 0.93, y, 1 - y)  # predicts the target 93% of the time
    frame = pd.DataFrame({"hint": hint + rng.normal(scale=0.01, size=2000), "noise": rng.normal(size=2000), "y": y})
    default = audit_data(frame, "y", "classification", sensitive=[], fail_on=[])
    assert not [f for f in default.findings if f.check == "target_leakage"]  # below the default 0.98
    strict = audit_data(frame, "y", "classification", sensitive=[], fail_on=[{"target_leakage": 0.9}])
    assert [f.column for f in strict.findings if f.check == "target_leakage"] == ["hint"]
    with pytest.raises(AuditFailed, match="target_leakage for 'hint'"):
        strict.enforce_data()
