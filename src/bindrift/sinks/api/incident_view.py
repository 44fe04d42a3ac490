"""An incident as an analyst triages it: a title and summary derived from its lead (most severe) finding —
what happened, where, who wrote the file — with its owner and state, and its findings counted by state."""

from __future__ import annotations

from datetime import datetime

import msgspec

from bindrift.schema.finding import Finding, Incident, ProcessInfo, Resource
from bindrift.sinks.store.incident_triage import IncidentState, IncidentTriage


class IncidentTriageView(msgspec.Struct, frozen=True):
    """Title and summary (derived), owner and state (set by an analyst, `by` whom and `at` when), and the
    incident's findings counted by state."""

    title: str
    summary: str
    scope: str
    owner: str = ""
    state: IncidentState = "new"
    by: str = ""
    at: datetime | None = None
    findings_by_state: dict[str, int] = msgspec.field(default_factory=dict)


def scope(resource: Resource) -> str:
    """`container`, `pod` or `host`: what an incident's findings share."""
    if resource.container_id or resource.container_name:
        return "container"
    return "pod" if resource.pod else "host"


def where(resource: Resource) -> str:
    """The workload in words: namespace/pod (container), a container, or the host node."""
    if resource.pod:
        inside = f" ({resource.container_name})" if resource.container_name else ""
        return f"pod {resource.namespace}/{resource.pod}{inside}"
    if resource.container_id or resource.container_name:
        return f"container {resource.container_name or resource.container_id[:12]}"
    return f"host {resource.node}" if resource.node else "the host"


def _who(process: ProcessInfo) -> str:
    name = process.exe or process.comm or f"pid {process.pid}"
    return f"{name} ({process.downloaded_by})" if process.downloaded_by else name


def view(
    incident: Incident, lead: Finding | None, triage: IncidentTriage, states: dict[str, int]
) -> IncidentTriageView:
    """The triage view of `incident`, titled after its `lead` finding."""
    others = len(incident.finding_ids) - 1
    more = f" and {others} more finding{'s' if others != 1 else ''}" if others > 0 else ""
    if lead is None:
        title, summary = f"Incident on {where(incident.resource)}", f"{len(incident.finding_ids)} finding(s)"
    else:
        name = lead.file.path.rsplit("/", 1)[-1] or lead.file.path
        title = f"{lead.category}: {name}"
        parts = [f"{lead.category} of {lead.file.path}"]
        if lead.writer is not None:
            parts.append(f"written by {_who(lead.writer)}")
        if lead.process is not None:
            parts.append(f"run by {_who(lead.process)}")
        summary = f"{', '.join(parts)}, in {where(incident.resource)} on node {incident.resource.node or '?'}{more}."
    return IncidentTriageView(title, summary, scope(incident.resource), triage.owner, triage.state, triage.by,
                              triage.at, states)  # fmt: skip
