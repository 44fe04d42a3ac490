"""Incident triage in the store, on SQLite and PostgreSQL: owner and state, bulk state changes with their
history, lead findings, unique id prefixes, and retention."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import FileInfo
from bindrift.sinks.store.incident_triage import (
    AmbiguousIdError,
    IncidentTriage,
    get_triage,
    lead_findings,
    purge_triage,
    resolve_id,
    set_findings_state,
    set_triage,
)
from bindrift.sinks.store.sql_store import SqlStore
from tests.detections import T0, detection


def test_triage_bulk_state_leads_prefixes_and_retention(store_url: str) -> None:
    store = SqlStore(store_url)
    try:
        pipeline = FindingsPipeline(store)
        low = pipeline.process(detection())
        medium = pipeline.process(detection(minutes=5, category="Modified Binary Executed",
                                            file=FileInfo(path="/usr/bin/ls", sha256="b" * 64)))  # fmt: skip
        incident = low.incident_id
        assert incident and medium.incident_id == incident
        assert get_triage(store, [incident]) == {incident: IncidentTriage()}
        set_triage(store, incident, "carol", "investigating", "alice")
        set_triage(store, incident, "dave", "closed", "bob")
        got = get_triage(store, [incident])[incident]
        assert (got.owner, got.state, got.by) == ("dave", "closed", "bob") and got.at is not None
        leads, states = lead_findings(store, [incident])
        assert leads[incident].id == medium.id and states == {incident: {"active": 2}}
        assert sorted(set_findings_state(store, [low.id, medium.id, "unknown"], "muted", "alice", "why")) == sorted(
            [low.id, medium.id]
        )
        assert set_findings_state(store, [low.id, medium.id], "muted", "alice", "again") == []
        for finding in store.get_findings([low.id, medium.id]):
            assert [(c.state, c.by, c.reason) for c in finding.state_history][-1] == ("muted", "alice", "why")
        assert resolve_id(store, low.id) == low.id and resolve_id(store, low.id[:10]) == low.id
        assert resolve_id(store, incident[:8], "incident") == incident and resolve_id(store, "zz") is None
        assert resolve_id(store, "") is None and resolve_id(store, "%") is None, "no pattern characters"
        ids = [low.id, medium.id] + [pipeline.process(detection(file=FileInfo(path=f"/{i}", sha256=f"{i:064x}"))).id
                                     for i in range(15)]  # fmt: skip  # 17 ids, 16 first digits
        shared = next(i[0] for i in ids if sum(j.startswith(i[0]) for j in ids) > 1)
        with pytest.raises(AmbiguousIdError, match=f"finding id prefix '{shared}' is ambiguous"):
            resolve_id(store, shared)
        store.purge(T0 + timedelta(days=1))  # all of them
        assert purge_triage(store) == 1 and get_triage(store, [incident]) == {incident: IncidentTriage()}
    finally:
        store.close()
