"""Severity levels shared by triage checks and findings."""

from __future__ import annotations

from typing import Literal, get_args

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


def rank(severity: Severity) -> int:
    """Order of a severity: info=0 … critical=4."""
    return _RANK[severity]


def at_least(severity: Severity, floor: Severity) -> bool:
    """True when `severity` is `floor` or above."""
    return _RANK[severity] >= _RANK[floor]


def parse_severity(text: str) -> Severity:
    """The severity named by `text` (case-insensitive); ValueError otherwise."""
    low = text.strip().lower()
    for name in SEVERITIES:
        if name == low:
            return name
    raise ValueError(f"unknown severity {text!r}; expected one of {', '.join(SEVERITIES)}")
