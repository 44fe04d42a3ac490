"""Incident membership is stored once, in each finding's own row: a new finding of an incident leaves the rows of
the incident's other findings as they were, and their related findings are read through the membership."""

from __future__ import annotations

from sqlalchemy import select
from tests.detections import detection

from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import FileInfo
from bindrift.sinks.store.models import FindingRow
from bindrift.sinks.store.sql_store import MAX_RELATED, SqlStore


def rows(store: SqlStore) -> dict[str, tuple[object, ...]]:
    with store.engine.connect() as connection:
        return {r.id: tuple(r) for r in connection.execute(select(FindingRow))}


def test_a_new_member_rewrites_no_other_finding(store: SqlStore) -> None:
    pipeline = FindingsPipeline(store)
    first = [pipeline.process(detection(minutes=n, file=FileInfo(path=f"/tmp/{n}", sha256=f"{n:064x}")))
             for n in range(5)]  # fmt: skip
    before = rows(store)
    late = pipeline.process(detection(minutes=10, file=FileInfo(path="/tmp/late", sha256="e" * 64)))
    after = rows(store)
    assert {k: v for k, v in after.items() if k != late.id} == before, "the other members' rows are untouched"
    assert late.incident_id == first[0].incident_id and late.related == [f.id for f in first]
    stored = store.get_finding(first[0].id)
    assert stored is not None and stored.related == [f.id for f in first[1:]] + [late.id]


def test_one_batch_of_many_members_is_read_back_bounded(store: SqlStore) -> None:
    n = MAX_RELATED + 20
    found = FindingsPipeline(store).process_batch(
        [detection(minutes=i / 10, file=FileInfo(path=f"/tmp/{i}", sha256=f"{i:064x}")) for i in range(n)]
    )
    assert len({f.incident_id for f in found}) == 1 and all(len(f.related) == MAX_RELATED for f in found)
    incident = store.get_incident(found[0].incident_id)
    assert incident is not None and incident.finding_ids == [f.id for f in found], "all members, earliest first"
