"""Incidents by event time: whatever order detections arrive in, and however they are batched, the same findings
and the same incidents come out as from the same detections stored one by one in time order."""

from __future__ import annotations

import random
import tempfile
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.detections import POD, T0, detection

from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import Detection, FileInfo
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

HOST = msgspec.structs.replace(POD, container_id="", container_name="", pod="", namespace="")
SCOPES = [POD, msgspec.structs.replace(POD, container_id="f" * 64), HOST]


def make(scope: int, file: int, minutes: int, intel: bool) -> Detection:
    sha = f"{file:064x}"
    found = detection(minutes=minutes, resource=SCOPES[scope], file=FileInfo(path=f"/tmp/f{file}", sha256=sha))
    return msgspec.structs.replace(found, category="Modified Binary Executed") if intel else found


# Times on a grid of 6 hours over 5 days: gaps around the 24-hour window are common.
detections = st.lists(
    st.builds(make, st.integers(0, 2), st.integers(0, 5), st.integers(0, 20).map(lambda n: n * 360),
              st.booleans()),
    min_size=1, max_size=30,
)  # fmt: skip


def outcome(store: SqlStore) -> tuple[object, object]:
    """Every finding's (id, count, span, incident) and every incident's (id, span, severity, members)."""
    findings = sorted((f.id, f.count, f.first_seen, f.last_seen, f.incident_id, tuple(sorted(f.related)))
                      for f in store.list_findings(FindingFilter(limit=10_000)))  # fmt: skip
    incidents, _ = store.list_incidents(FindingFilter(limit=10_000))
    return findings, sorted((i.id, i.first_seen, i.last_seen, i.severity, tuple(sorted(i.finding_ids)))
                            for i in incidents)  # fmt: skip


def run(batches: list[list[Detection]]) -> tuple[object, object]:
    with tempfile.TemporaryDirectory(prefix="bindrift-incidents-") as folder:
        store = SqlStore(f"sqlite:///{Path(folder) / 'findings.db'}")
        try:
            pipeline = FindingsPipeline(store)
            for batch in batches:
                pipeline.store_batch(batch)
            return outcome(store)
        finally:
            store.close()


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=detections, order=st.randoms(use_true_random=False), cuts=st.lists(st.integers(1, 30), max_size=5))
def test_shuffled_batches_give_the_incidents_of_time_order(items: list[Detection], order: random.Random,
                                                           cuts: list[int]) -> None:  # fmt: skip
    in_order = run([[d] for d in sorted(items, key=lambda d: d.observed_at)])
    shuffled = list(items)
    order.shuffle(shuffled)
    batches, start = [], 0
    for cut in [*sorted(set(cuts)), len(shuffled)]:
        if cut > start:
            batches.append(shuffled[start:cut])
            start = cut
    assert run(batches) == in_order


def test_a_late_finding_joins_two_incidents_and_moves_the_start(store: SqlStore) -> None:
    pipeline = FindingsPipeline(store)
    day = 24 * 60
    a = pipeline.process(detection(minutes=0))
    b = pipeline.process(detection(minutes=2 * day, file=FileInfo(path="/tmp/b", sha256="b" * 64)))
    assert a.incident_id != b.incident_id, "two days apart: two incidents"
    bridge = pipeline.process(detection(minutes=day, file=FileInfo(path="/tmp/m", sha256="c" * 64)))
    assert bridge.incident_id == a.incident_id, "the earlier incident's id is kept: its start did not move"
    incident = store.get_incident(a.incident_id)
    assert incident is not None and sorted(incident.finding_ids) == sorted([a.id, b.id, bridge.id])
    assert store.get_incident(b.incident_id) is None, "the later incident was absorbed"
    stored_b = store.get_finding(b.id)
    assert stored_b is not None and stored_b.incident_id == a.incident_id
    assert sorted(stored_b.related) == sorted([a.id, bridge.id])
    assert any(a.incident_id in step.command for step in stored_b.response), "its steps name the incident it is in"
    early = pipeline.process(detection(minutes=-60, file=FileInfo(path="/tmp/e", sha256="d" * 64)))
    assert early.incident_id not in (a.incident_id, "") and store.get_incident(a.incident_id) is None
    (incident,) = store.list_incidents()[0]
    assert incident.id == early.incident_id and incident.first_seen == T0 - timedelta(minutes=60)
    assert len(incident.finding_ids) == 4
