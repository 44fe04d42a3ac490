"""Incidents sort over every incident, not within a page: by time, highest member severity, number of findings,
owner and triage state, on both backends."""

from __future__ import annotations

import msgspec
import pytest
from tests.detections import POD, detection

from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import FileInfo
from bindrift.sinks.store.incident_triage import set_triage
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

# (container, minutes after T0, findings, highest category, owner, state)
PLAN = [
    ("c1", 0, 3, "Added Binary Executed", "dana", "investigating"),
    ("c2", 10, 1, "Added Malicious Binary Executed", "", ""),
    ("c3", 20, 5, "Added Script Executed", "bob", "closed"),
    ("c4", 30, 2, "Modified Binary Executed", "", ""),
    ("c5", 40, 4, "Added Binary Executed", "carol", "new"),
]


@pytest.fixture
def incidents(store: SqlStore) -> dict[str, str]:
    """One incident per container of PLAN; its id by container."""
    pipeline = FindingsPipeline(store)
    made = {}
    for container, start, count, category, owner, state in PLAN:
        resource = msgspec.structs.replace(POD, pod=f"web-{container}", container_id=container * 32)
        for n in range(count):
            file = FileInfo(path=f"/tmp/{container}-{n}", sha256=f"{container}{n:02d}".ljust(64, "0"), size=10)
            first = category if n == 0 else "Added Binary Executed"
            finding = pipeline.process(detection(minutes=start + n, resource=resource, category=first, file=file))
            made[container] = finding.incident_id
        if state:
            set_triage(store, made[container], owner, state, "alice")  # type: ignore[arg-type]
    return made


def _pages(store: SqlStore, sort: str, size: int = 2) -> list[str]:
    ids: list[str] = []
    for offset in range(0, len(PLAN) + size, size):
        items, total = store.list_incidents(FindingFilter(sort=sort, limit=size, offset=offset))
        assert total == len(PLAN)
        ids += [incident.id for incident in items]
    return ids


@pytest.mark.parametrize(("sort", "order"), [
    ("-last_seen", ["c5", "c4", "c3", "c2", "c1"]),
    ("first_seen", ["c1", "c2", "c3", "c4", "c5"]),
    ("-count", ["c3", "c5", "c1", "c4", "c2"]),
    ("count", ["c2", "c4", "c1", "c5", "c3"]),
    ("owner", ["c4", "c2", "c3", "c5", "c1"]),  # never triaged: no owner, sorted first, then most recent first
    ("-state", ["c3", "c1", "c5", "c4", "c2"]),  # closed, investigating, then new (set or never triaged)
])  # fmt: skip
def test_incidents_sort_across_pages(store: SqlStore, incidents: dict[str, str], sort: str, order: list[str]) -> None:
    assert _pages(store, sort) == [incidents[c] for c in order]


def test_severity_is_the_highest_member_severity(store: SqlStore, incidents: dict[str, str]) -> None:
    ranked = _pages(store, "-severity")
    by_id = {incident.id: incident for incident in store.list_incidents(FindingFilter(limit=10))[0]}
    severities = [by_id[i].severity for i in ranked]
    order = ["critical", "high", "medium", "low", "info"]
    assert severities == sorted(severities, key=order.index), severities
    assert ranked[0] == incidents["c2"]  # the malicious one
    assert _pages(store, "severity")[-1] == incidents["c2"]


def test_filters_still_apply_and_unknown_sorts_are_refused(store: SqlStore, incidents: dict[str, str]) -> None:
    items, total = store.list_incidents(FindingFilter(pod="web-c3", sort="-count"))
    assert total == 1 and [i.id for i in items] == [incidents["c3"]]
    with pytest.raises(ValueError, match="cannot sort incidents by 'path'"):
        store.list_incidents(FindingFilter(sort="path"))
