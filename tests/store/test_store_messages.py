"""Idempotent storing of bus messages on SQLite and PostgreSQL: a message stored once is never counted again,
also when two workers store it at the same moment."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from tests.detections import POD, SHA_A, T0, detection

from bindrift.findings.identity import finding_id
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.sinks.store.models import ProcessedMessageRow
from bindrift.sinks.store.sql_store import SqlStore


def _messages(store: SqlStore) -> list[tuple[str, str]]:
    with store.engine.connect() as connection:
        rows = connection.execute(select(ProcessedMessageRow.id, ProcessedMessageRow.finding_id).order_by("id"))
        return [(str(a), str(b)) for a, b in rows]


def test_a_message_stored_twice_counts_once(store: SqlStore) -> None:
    pipeline = FindingsPipeline(store)
    first = pipeline.process(detection(), message_id="m1")
    again = pipeline.process(detection(), message_id="m1")
    assert again.count == first.count == 1
    assert again.id == first.id and again.last_seen == T0 and again.incident_id == first.incident_id
    assert again.related == [] and again.file.sha256 == SHA_A and again.resource == POD
    repeat = pipeline.process(detection(minutes=5), message_id="m2")
    assert repeat.count == 2 and repeat.last_seen == T0 + timedelta(minutes=5) and repeat.first_seen == T0
    stored = store.get_finding(first.id)
    assert stored is not None and stored.count == 2
    assert _messages(store) == [("m1", first.id), ("m2", first.id)]
    incident = store.latest_incident(f"container:{POD.container_id}")
    assert incident is not None and incident.id == first.incident_id and incident.finding_ids == [first.id]


def test_without_message_id_every_call_counts(store: SqlStore) -> None:
    pipeline = FindingsPipeline(store)
    pipeline.process(detection())
    assert pipeline.process(detection()).count == 2
    assert _messages(store) == []


def test_concurrent_stores_of_one_message_count_once(store: SqlStore) -> None:
    pipeline = FindingsPipeline(store)
    pipeline.process(detection(minutes=1), message_id="seed")
    start = threading.Barrier(4)
    results: list[int] = []

    def worker() -> None:
        start.wait()
        results.append(pipeline.process(detection(minutes=2), message_id="same").count)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [2, 2, 2, 2]
    stored = store.get_finding(finding_id(detection()))
    assert stored is not None and stored.count == 2 and stored.last_seen == T0 + timedelta(minutes=2)


def test_purge_forgets_old_messages(store: SqlStore) -> None:
    stored = FindingsPipeline(store).process(detection(), message_id="old")
    assert store.purge(datetime.now(UTC) - timedelta(days=1)) == 1, "the finding (last seen at T0) goes"
    assert _messages(store) == [("old", stored.id)], "the message was processed now: kept until it is old"
    store.purge(datetime.now(UTC) + timedelta(seconds=1))
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ProcessedMessageRow)).scalar() == 0
