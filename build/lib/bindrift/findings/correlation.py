"""Incidents: findings on the same container (and pod) within a window form one incident."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Protocol

from bindrift.findings.identity import incident_id, scope_key
from bindrift.schema.finding import Finding, Incident
from bindrift.schema.severity import rank

DEFAULT_WINDOW = timedelta(hours=24)


class IncidentStore(Protocol):
    """What correlation needs from the store."""

    def scope_lock(self, scope: str) -> AbstractContextManager[None]:
        """Held while one container's findings are correlated and stored, across processes."""
        ...

    def latest_incident(self, scope: str) -> Incident | None: ...

    def upsert_incident(self, incident: Incident) -> Incident: ...

    def set_related(self, finding_id: str, related: list[str], incident_id: str) -> None: ...


def correlate(store: IncidentStore, finding: Finding, window: timedelta = DEFAULT_WINDOW) -> Incident:
    """Attach `finding` to its container's open incident (or open one), and list related findings both ways."""
    scope = scope_key(finding.resource)
    incident = store.latest_incident(scope)
    if incident is None or finding.last_seen - incident.last_seen > window:
        incident = Incident(
            id=incident_id(finding.resource, finding.first_seen.isoformat()), resource=finding.resource,
            first_seen=finding.first_seen, last_seen=finding.last_seen, finding_ids=[], severity=finding.severity,
        )  # fmt: skip
    if finding.id not in incident.finding_ids:
        incident.finding_ids.append(finding.id)
    incident.last_seen = max(incident.last_seen, finding.last_seen)
    incident.first_seen = min(incident.first_seen, finding.first_seen)
    if rank(finding.severity) > rank(incident.severity):
        incident.severity = finding.severity
    store.upsert_incident(incident)
    for member in incident.finding_ids:
        store.set_related(member, [other for other in incident.finding_ids if other != member], incident.id)
    finding.related = [other for other in incident.finding_ids if other != finding.id]
    finding.incident_id = incident.id
    return incident
