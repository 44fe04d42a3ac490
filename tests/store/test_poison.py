"""Hostile detections on both backends: fields over the columns' lengths and NUL characters are cut or replaced
at the boundary, visibly, and stored, and event times out of range replaced by the time received; a detection the
store still refuses is set aside as a dead letter while the rest of its batch is stored (the local path:
`DetectionBatcher`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
from sqlalchemy import String
from tests.detections import POD, detection
from tests.refusing_store import REFUSAL, refuse_path

from bindrift.findings.batcher import DetectionBatcher
from bindrift.findings.dead_letter import COVERAGE_PATH
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.bounds import PATH_LIMIT, RESOURCE_LIMITS, SHA256_LIMIT
from bindrift.schema.finding import Detection, FileInfo, Finding, Resource
from bindrift.sinks.store.models import FindingRow, IncidentRow
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

# A time Python cannot bring to UTC (it overflows year 9999).
UNREPRESENTABLE = datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5)))


def _drop(i: int) -> Detection:
    return detection(minutes=i, resource=msgspec.structs.replace(POD, container_id=f"{i:064x}"),
                     file=FileInfo(path=f"/tmp/d{i}", sha256=f"{i + 1:064x}"))  # fmt: skip


def _length(column: object) -> int:
    kind = getattr(column, "type", None)
    assert isinstance(kind, String) and kind.length is not None
    return kind.length


def test_the_bounds_fit_the_store_columns() -> None:
    columns = FindingRow.__table__.c
    for name, limit in RESOURCE_LIMITS.items():
        if name in columns:
            assert limit <= _length(columns[name]), name
    assert _length(columns["sha256"]) >= SHA256_LIMIT
    scope = _length(IncidentRow.__table__.c["scope"])
    assert len("node:") + RESOURCE_LIMITS["node"] <= scope
    assert len("container:") + RESOURCE_LIMITS["container_id"] <= scope


def test_oversized_and_nul_fields_are_cut_visibly_and_stored(store: SqlStore) -> None:
    hostile = Resource(node="n" * 300, cluster="c" * 400, namespace="s" * 300, pod="p\x00" * 200,
                       container_id="f" * 500, container_name="x" * 5000, image="i" * 3000)  # fmt: skip
    bad = detection(resource=hostile, file=FileInfo(path="/tmp/\x00" + "a" * 70_000, sha256="z" * 100))
    pipeline = FindingsPipeline(store)
    stored = pipeline.process_batch([_drop(1), bad, _drop(2)])
    assert [f.file.path for f in stored][::2] == ["/tmp/d1", "/tmp/d2"]
    finding = store.get_finding(stored[1].id)
    assert finding is not None
    r = finding.resource
    for name, limit in RESOURCE_LIMITS.items():
        value = getattr(r, name)
        assert len(value) == limit and "…[cut " in value and "\x00" not in value, name
    assert r.pod.startswith("p\ufffdp\ufffd")
    # The path keeps its NUL (response refuses such a path); its column has U+FFFD instead.
    assert len(finding.file.path) == PATH_LIMIT and finding.file.path.startswith("/tmp/\x00aaa")
    assert store.list_findings(FindingFilter(text="/tmp/\ufffdaaa"))[0].id == finding.id
    assert len(finding.file.sha256) == SHA256_LIMIT and finding.file.sha256.endswith("]")
    note = next(e for e in finding.evidence if e.kind == "bounded")
    assert note.values == {"resource.node": 300, "resource.cluster": 400, "resource.namespace": 300,
                           "resource.pod": 400, "resource.container_id": 500, "resource.container_name": 5000,
                           "resource.image": 3000, "file.path": 70_006, "file.sha256": 100}  # fmt: skip
    # The same hostile detection again is the same finding: the cut is deterministic.
    assert pipeline.process(bad).count == 2
    # Two long values that differ only past the cut stay apart.
    other = msgspec.structs.replace(bad, resource=msgspec.structs.replace(hostile, container_id="f" * 499 + "g"))
    assert pipeline.process(other).id != finding.id
    assert store.count_findings(FindingFilter(namespace=r.namespace)) == 2


def test_event_times_out_of_range_are_replaced_by_the_time_received(store: SqlStore) -> None:
    """Go's zero time (a source that left the time unset), a time before 1970, one past year 9999 in UTC: each is
    stored at the time it was received, with the time given in the evidence; a time in range is kept."""
    given = [datetime(1, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, tzinfo=UTC), UNREPRESENTABLE,
             datetime(9500, 1, 1, tzinfo=UTC)]  # fmt: skip
    pipeline = FindingsPipeline(store)
    before = datetime.now(UTC)
    stored = pipeline.process_batch([msgspec.structs.replace(_drop(i), observed_at=t) for i, t in enumerate(given)])
    after = datetime.now(UTC)
    assert len(stored) == 4
    for finding, moment in zip(stored, given, strict=True):
        kept = store.get_finding(finding.id)
        assert kept is not None and before <= kept.first_seen <= after
        note = next(e for e in kept.evidence if e.kind == "bounded")
        assert note.values == {"observed_at": moment.isoformat()}
        assert "replaced by the time received" in note.summary and "cut" not in note.summary
    in_range = pipeline.process(_drop(9))
    assert in_range.first_seen == _drop(9).observed_at and not [e for e in in_range.evidence if e.kind == "bounded"]


def test_a_refused_detection_is_set_aside_and_the_batch_stored(store: SqlStore) -> None:
    stored: list[Finding] = []
    batcher = DetectionBatcher(FindingsPipeline(store), stored.append, size=16, linger_s=60)
    poison = _drop(99)
    refuse_path(store.engine, poison.file.path)
    for d in [_drop(i) for i in range(7)] + [poison] + [_drop(i) for i in range(7, 12)]:
        batcher.add(d)
    batcher.flush()
    assert sorted(f.file.path for f in stored) == sorted(f"/tmp/d{i}" for i in range(12))
    assert batcher.failures == batcher.dead_lettered == 1
    letters, total = store.dead_letters()
    assert total == 1 and letters[0].source == "local" and letters[0].node == POD.node
    assert REFUSAL in letters[0].error and letters[0].deliveries == 1
    assert msgspec.json.decode(letters[0].body, type=Detection) == poison
    coverage = store.list_findings(FindingFilter(category="Coverage degraded"))
    assert [(f.file.path, f.resource.node, f.count) for f in coverage] == [(COVERAGE_PATH, POD.node, 1)]
    assert coverage[0].evidence[0].values["message_id"] == letters[0].message_id
    # The batcher goes on.
    batcher.add(_drop(20))
    batcher.close()
    assert stored[-1].file.path == "/tmp/d20"
    assert store.count_findings(FindingFilter(category="Added Binary Executed")) == 13
