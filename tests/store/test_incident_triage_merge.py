"""An incident's triage (owner, state) survives a late finding that joins it to another incident or moves its
start (both change the incident's id): the oldest triaged incident's triage is the survivor's."""

from __future__ import annotations

import msgspec
from tests.detections import POD, detection

from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import Detection, FileInfo
from bindrift.sinks.store.incident_triage import get_triage, set_triage
from bindrift.sinks.store.sql_store import SqlStore

DAY = 24 * 60


def _at(minutes: float, n: int) -> Detection:
    return detection(minutes=minutes, file=FileInfo(path=f"/tmp/{n}", sha256=f"{n:064x}"))


def test_a_late_finding_joining_two_incidents_keeps_the_oldest_triage(store: SqlStore) -> None:
    pipeline = FindingsPipeline(store)
    early = pipeline.process(_at(0, 1)).incident_id
    late = pipeline.process(_at(2 * DAY, 2)).incident_id
    later = pipeline.process(_at(3.5 * DAY, 3)).incident_id
    assert len({early, late, later}) == 3, "more than a window (24 h) apart: three incidents"
    set_triage(store, late, "alice", "investigating", "alice")
    set_triage(store, later, "bob", "closed", "bob")
    joined = pipeline.process(_at(2.75 * DAY, 4)).incident_id  # within a window of both
    assert joined == late, "the joined incident starts with the older one, whose id it keeps"
    triage = get_triage(store, [late, later])
    assert (triage[late].owner, triage[late].state, triage[late].by) == ("alice", "investigating", "alice")
    assert triage[later].owner == "" and store.get_incident(later) is None
    survivor = store.get_incident(late)
    assert survivor is not None and len(survivor.finding_ids) == 3
    # A late finding earlier than an incident's start moves it: a new id, and the triage goes with it.
    set_triage(store, early, "carol", "investigating", "carol")
    moved = pipeline.process(_at(-DAY / 2, 6)).incident_id
    assert moved != early and store.get_incident(early) is None
    kept = get_triage(store, [moved, early])
    assert (kept[moved].owner, kept[moved].state, kept[moved].by) == ("carol", "investigating", "carol")
    assert kept[early].owner == ""


def test_only_the_later_incident_was_triaged(store: SqlStore) -> None:
    pipeline = FindingsPipeline(store)
    other = msgspec.structs.replace(POD, container_id="f" * 64)
    first = pipeline.process(_at(0, 1)).incident_id
    pipeline.process(msgspec.structs.replace(_at(DAY, 9), resource=other))  # another scope: not joined
    second = pipeline.process(_at(2 * DAY, 2)).incident_id
    assert second != first
    set_triage(store, second, "dave", "closed", "erin")
    joined = pipeline.process(_at(DAY, 3)).incident_id
    assert joined == first
    triage = get_triage(store, [first, second])
    assert (triage[first].owner, triage[first].state, triage[first].by) == ("dave", "closed", "erin")
    assert triage[second].owner == ""
