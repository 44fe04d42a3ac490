"""Detections arriving one by one, stored in batches by `DetectionBatcher`, on a real store."""

from __future__ import annotations

import time

from tests.detections import detection

from bindrift.findings.batcher import DetectionBatcher
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import Detection, FileInfo, Finding, Resource
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore


def _drop(i: int) -> Detection:
    return detection(minutes=i / 60, resource=Resource(node="n", container_id=f"{i:064x}"),
                     file=FileInfo(path=f"/tmp/d{i}", sha256=f"{i:064x}"))  # fmt: skip


def test_batches_by_size_and_close_stores_the_rest(store: SqlStore) -> None:
    transactions: list[int] = []
    pipeline = FindingsPipeline(store)
    real = pipeline.process_batch

    def counted(ds: list[Detection], ids: tuple[str, ...] = ()) -> list[Finding]:
        transactions.append(len(ds))
        return real(ds, ids)

    pipeline.process_batch = counted  # type: ignore[assignment,method-assign]
    stored: list[Finding] = []
    batcher = DetectionBatcher(pipeline, stored.append, size=50, linger_s=60)
    for i in range(120):
        batcher.add(_drop(i))
    assert transactions == [50, 50] and len(stored) == 100
    batcher.close()
    assert transactions == [50, 50, 20]
    assert sorted(f.file.path for f in stored) == sorted(f"/tmp/d{i}" for i in range(120))
    assert len(store.list_findings(FindingFilter(limit=1000))) == 120


def test_a_quiet_stream_is_flushed_after_the_linger(store: SqlStore) -> None:
    stored: list[Finding] = []
    batcher = DetectionBatcher(FindingsPipeline(store), stored.append, size=256, linger_s=0.05)
    batcher.add(_drop(1))
    deadline = time.monotonic() + 5
    while not stored and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [f.file.path for f in stored] == ["/tmp/d1"], "stored without waiting for more detections"
