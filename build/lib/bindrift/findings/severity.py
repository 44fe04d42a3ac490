"""Severity of a finding: documented defaults, overridable per category in the configuration."""

from __future__ import annotations

from collections.abc import Mapping

from bindrift.schema.finding import Category, Detection
from bindrift.schema.severity import Severity, at_least

DEFAULTS: dict[Category, Severity] = {
    "Added Binary Executed": "low",
    "Modified Binary Executed": "medium",
    "Added Malicious Binary Executed": "critical",
    "Modified Malicious Binary Executed": "critical",
    "Added Library Loaded": "low",
    "Fileless execution": "high",
    "Coverage degraded": "medium",
    "Prevention degraded": "medium",
}
# A suspicious binary is high when its architecture is incompatible or its headers or packer were
# tampered with, medium when it is "only" packed; an intelligence match makes it critical.
SUSPICIOUS_TAMPERED: Severity = "high"
SUSPICIOUS_PACKED: Severity = "medium"


class SeverityPolicy:
    """Default severities with per-category overrides (e.g. `{"Added Binary Executed": "medium"}`)."""

    def __init__(self, overrides: Mapping[str, Severity] | None = None) -> None:
        self._overrides = dict(overrides or {})

    def severity(self, category: Category, detection: Detection) -> Severity:
        """The severity for `detection` once categorised as `category`."""
        if category in self._overrides:
            return self._overrides[category]
        if category == "Suspicious binary":
            if detection.intel:
                return "critical"
            return SUSPICIOUS_TAMPERED if _tampered(detection) else SUSPICIOUS_PACKED
        return DEFAULTS[category]


def _tampered(detection: Detection) -> bool:
    for check in detection.file.triage:
        if check.category in ("incompatible-architecture", "header-anomaly") and at_least(check.severity, "medium"):
            return True
        if check.category == "tampered-packer":
            return True
    return False
