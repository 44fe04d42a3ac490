"""Several workers correlating findings of one container at the same time (distributed mode) must not drop
each other's findings from the incident: correlation and storing run under a lock per container."""

from __future__ import annotations

import threading

from tests.detections import detection

from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import FileInfo
from bindrift.sinks.store.sql_store import SqlStore

PER_WORKER = 12


def test_concurrent_workers_keep_every_incident_member(store_url: str) -> None:
    SqlStore(store_url).close()  # migrate once, as the first worker of a deployment does
    stores = [SqlStore(store_url) for _ in range(3)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def work(index: int, store: SqlStore) -> None:
        pipeline = FindingsPipeline(store)
        start.wait()
        try:
            for n in range(PER_WORKER):
                sha = f"{index:02x}{n:02x}".ljust(64, "e")
                pipeline.process(detection(minutes=n / 100, file=FileInfo(path=f"/tmp/w{index}-{n}", sha256=sha)))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, s)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert not errors, errors
        findings = stores[0].list_findings()
        assert len(findings) == len(stores) * PER_WORKER
        (incident_id,) = {f.incident_id for f in findings}
        incident = stores[0].get_incident(incident_id)
        assert incident is not None
        assert sorted(incident.finding_ids) == sorted(f.id for f in findings)
        for finding in findings:
            assert sorted(finding.related) == sorted(f.id for f in findings if f.id != finding.id)
    finally:
        for store in stores:
            store.close()
