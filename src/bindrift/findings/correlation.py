"""Incidents by event time: the findings of one container (or node) whose spans lie within a window of each other.

An incident is a maximal chain of findings of one scope whose spans [first seen, last seen] are at most `window`
apart. Spans only grow, so a late finding can widen an incident or join two, never split one: the incidents
depend on the findings' times, not on the order they arrive in. Membership is stored once, in the finding's
`incident_id`; nothing here touches the other members of an incident.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bindrift.findings.identity import incident_id
from bindrift.schema.finding import Finding, Incident, Resource
from bindrift.schema.severity import Severity, rank

DEFAULT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class IncidentPlan:
    """What to store for one incident a batch touches: the incident (its `finding_ids` left empty: membership
    is in the findings), the stored incidents of the scope it absorbs (their members relabelled, their rows
    deleted), and the findings of the batch that belong to it."""

    incident: Incident
    absorbed: tuple[str, ...]
    members: tuple[str, ...]


@dataclass(slots=True)
class _Group:
    first_seen: datetime
    last_seen: datetime
    resource: Resource
    severity: Severity
    absorbed: list[str]
    members: list[str]


class Correlator:
    """Plans the incidents of a batch's findings, scope by scope, against the stored incidents near them."""

    def __init__(self, window: timedelta = DEFAULT_WINDOW) -> None:
        self.window = window

    def reach(self, first_seen: datetime, last_seen: datetime) -> tuple[datetime, datetime]:
        """The times a stored incident must overlap to be joined by a finding spanning these times."""
        return first_seen - self.window, last_seen + self.window

    def plan(self, findings: Sequence[Finding], nearby: Sequence[Incident]) -> list[IncidentPlan]:
        """Incidents for `findings` of one scope (with their spans as they will be stored) and the scope's
        stored incidents within reach of them. A stored incident no finding reaches is left out."""
        spans = [(_utc(f.first_seen), _utc(f.last_seen), 0, f.id, f.resource, f.severity, True) for f in findings]
        spans += [(_utc(i.first_seen), _utc(i.last_seen), 1, i.id, i.resource, i.severity, False) for i in nearby]
        spans.sort(key=lambda s: s[:4])
        groups: list[_Group] = []
        for first, last, _kind, ident, resource, severity, is_finding in spans:
            group = groups[-1] if groups else None
            if group is None or first - group.last_seen > self.window:
                group = _Group(first, last, resource, severity, [], [])
                groups.append(group)
            group.last_seen = max(group.last_seen, last)
            if rank(severity) > rank(group.severity):
                group.severity = severity
            (group.members if is_finding else group.absorbed).append(ident)
        return [self._incident(group) for group in groups if group.members]

    @staticmethod
    def _incident(group: _Group) -> IncidentPlan:
        ident = incident_id(group.resource, group.first_seen.isoformat())
        incident = Incident(id=ident, resource=group.resource, first_seen=group.first_seen,
                            last_seen=group.last_seen, severity=group.severity)  # fmt: skip
        return IncidentPlan(incident, tuple(a for a in group.absorbed if a != ident), tuple(group.members))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
