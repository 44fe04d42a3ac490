"""Incident triage kept beside the findings store: an incident's owner and state (who set them, when), the
lead finding of each incident, bulk state changes of an incident's findings, and unique id prefixes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bindrift.schema.finding import Finding, State
from bindrift.sinks.store.models import FindingRow, IncidentRow, IncidentTriageRow, StateChangeRow
from bindrift.sinks.store.sql_store import SqlStore

IncidentState = Literal["new", "investigating", "closed"]
MAX_PREFIX_MATCHES = 5


class IncidentTriage(msgspec.Struct, frozen=True):
    """What an analyst set on an incident; `by` and `at` empty/None while nobody has."""

    owner: str = ""
    state: IncidentState = "new"
    by: str = ""
    at: datetime | None = None


class AmbiguousIdError(ValueError):
    """A prefix matching more than one id."""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def get_triage(store: SqlStore, incident_ids: Sequence[str]) -> dict[str, IncidentTriage]:
    """The triage of each incident named (defaults for those never triaged)."""
    found = dict.fromkeys(incident_ids, IncidentTriage())
    with Session(store.engine) as session:
        query = select(IncidentTriageRow).where(IncidentTriageRow.incident_id.in_(list(incident_ids)))
        for row in session.scalars(query):
            state: IncidentState = "closed" if row.state == "closed" else (
                "investigating" if row.state == "investigating" else "new")  # fmt: skip
            found[row.incident_id] = IncidentTriage(row.owner, state, row.by, _utc(row.at))
    return found


def set_triage(store: SqlStore, incident_id: str, owner: str, state: IncidentState, by: str) -> IncidentTriage:
    """Record the incident's owner and state, by whom and now."""
    triage = IncidentTriage(owner, state, by, datetime.now(UTC))
    with Session(store.engine) as session, session.begin():
        session.merge(IncidentTriageRow(incident_id=incident_id, owner=owner, state=state, by=by, at=triage.at))
    return triage


def purge_triage(store: SqlStore) -> int:
    """Retention: forget the triage of incidents no longer stored; returns how many."""
    with Session(store.engine) as session, session.begin():
        gone = ~IncidentTriageRow.incident_id.in_(select(IncidentRow.id))
        return int(session.execute(delete(IncidentTriageRow).where(gone)).rowcount)  # type: ignore[attr-defined]


def set_findings_state(store: SqlStore, finding_ids: Sequence[str], state: State, by: str, reason: str) -> list[str]:
    """Mute, resolve or reopen every finding named that is not in `state` yet, in one transaction, each change
    recorded with who, when and why (one time for all). Returns the ids changed."""
    at = datetime.now(UTC)
    with Session(store.engine) as session, session.begin():
        changed = list(session.scalars(select(FindingRow.id).where(FindingRow.id.in_(list(finding_ids)),
                                                                   FindingRow.state != state)))  # fmt: skip
        if changed:
            session.execute(update(FindingRow).where(FindingRow.id.in_(changed)).values(state=state))
            session.add_all(StateChangeRow(finding_id=i, state=state, by=by, reason=reason, at=at) for i in changed)
    return changed


def lead_findings(store: SqlStore, incident_ids: Sequence[str]) -> tuple[dict[str, Finding], dict[str, dict[str, int]]]:
    """For each incident: its most severe finding (the latest of equals), and its findings counted by state."""
    best: dict[str, tuple[int, datetime, str]] = {}
    states: dict[str, dict[str, int]] = {i: {} for i in incident_ids}
    query = select(FindingRow.incident_id, FindingRow.id, FindingRow.severity_rank, FindingRow.last_seen,
                   FindingRow.state).where(FindingRow.incident_id.in_(list(incident_ids)))  # fmt: skip
    with Session(store.engine) as session:
        for incident_id, finding_id, severity, last_seen, state in session.execute(query):
            key = (severity, _utc(last_seen), finding_id)
            if incident_id not in best or key > best[incident_id]:
                best[incident_id] = key
            states[incident_id][state] = states[incident_id].get(state, 0) + 1
    leads = {f.id: f for f in store.get_findings([key[2] for key in best.values()])}
    return {i: leads[key[2]] for i, key in best.items() if key[2] in leads}, states


def resolve_id(store: SqlStore, prefix: str, kind: Literal["finding", "incident"] = "finding") -> str | None:
    """The one finding (or incident) id starting with `prefix`, as git resolves a short hash: None when none
    does, AmbiguousIdError naming the candidates when several do. An exact id always wins."""
    column = FindingRow.id if kind == "finding" else IncidentRow.id
    with Session(store.engine) as session:
        if session.scalar(select(column).where(column == prefix)) is not None:
            return prefix
        if not prefix:
            return None
        query = select(column).where(column.startswith(prefix, autoescape=True)).order_by(column)
        matches = list(session.scalars(query.limit(MAX_PREFIX_MATCHES + 1)))
    if len(matches) > 1:
        shown = ", ".join(matches[:MAX_PREFIX_MATCHES]) + (", …" if len(matches) > MAX_PREFIX_MATCHES else "")
        raise AmbiguousIdError(f"{kind} id prefix {prefix!r} is ambiguous: it starts {shown}")
    return matches[0] if matches else None
