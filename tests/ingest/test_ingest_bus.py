"""`bindrift ingest --bus`: another sensor's events become detections on the bus through the agent's spool and
publisher, and `bindrift worker` processes store them — with a three-server JetStream cluster, a private
PostgreSQL, and the first worker killed (SIGKILL) mid-run: every finding stored exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from tests.bus.test_distributed import BINDRIFT, start_worker, stop_worker, stored_messages
from tests.ingest.test_falco import DROP
from tests.nats_cluster import NatsCluster

from bindrift.schema.finding import Finding
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

N = 1000


def _stored(db: str) -> list[Finding]:
    store = SqlStore(db)
    try:
        return store.list_findings(FindingFilter(limit=10_000))
    finally:
        store.close()


def _alerts(n: int) -> bytes:
    """`n` drift alerts, each in its own container not on this node (each an event-only finding)."""
    lines = []
    for i in range(n):
        fields = {**DROP["output_fields"], "container.id": f"{i:012x}", "container.full_id": f"{i:064x}"}  # type: ignore[dict-item]
        lines.append(json.dumps({**DROP, "output_fields": fields}))
    return "\n".join(lines).encode() + b"\n"


@pytest.mark.slow
def test_ingest_publishes_and_a_killed_worker_loses_nothing(nats_cluster: NatsCluster, pg_url: str,
                                                            tmp_path: Path) -> None:  # fmt: skip
    metrics = tmp_path / "ingest.prom"
    result = subprocess.run([BINDRIFT, "ingest", "--from", "falco", "--bus", ",".join(nats_cluster.urls),
                             "--spool", str(tmp_path / "spool"), "--node-name", "ingest-node",
                             "--metrics-file", str(metrics), "-"],
                            input=_alerts(N), capture_output=True, timeout=120, check=False)  # fmt: skip
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert result.stdout == b"", "with --bus the workers store; ingest prints no finding itself"
    assert f"{N} lines read, {N} events kept, 0 rejected, 0 ignored; 0 analysed in full, {N} findings" in err
    text = metrics.read_text()
    assert f"bindrift_bus_published_total {N}.0" in text and "bindrift_bus_spool_pending 0.0" in text, text
    assert f'bindrift_ingest_events_kept_total{{tool="falco"}} {N}.0' in text
    first = start_worker(nats_cluster, pg_url, tmp_path / "first.log", batch=20)  # the stream holds them all
    engine = create_engine(pg_url)  # polled on one connection: a worker stores hundreds of batches a second
    deadline = time.monotonic() + 60
    with engine.connect() as connection:
        while stored_messages(connection) < 30 and time.monotonic() < deadline:
            time.sleep(0.002)
    engine.dispose()
    first.send_signal(signal.SIGKILL)  # mid-run: some batches stored, one perhaps stored but unacknowledged
    first.wait(timeout=10)
    stored_by_first = len(_stored(pg_url))
    assert 30 <= stored_by_first < N, stored_by_first
    second = start_worker(nats_cluster, pg_url, tmp_path / "second.log", batch=20)
    try:
        deadline = time.monotonic() + 120
        while len(stored := _stored(pg_url)) < N and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3.5)  # past the ack wait: a redelivery would show now
        stored = _stored(pg_url)
    finally:
        counts = stop_worker(second, tmp_path / "second.log")
    per_container = Counter(f.resource.container_id for f in stored)
    assert sorted(per_container) == sorted(f"{i:064x}" for i in range(N)), "none lost"
    assert set(per_container.values()) == {1} and {f.count for f in stored} == {1}, "none stored twice"
    finding = stored[0]
    assert (finding.source, finding.category, finding.resource.node) == (
        "ingest:falco", "Added Binary Executed", "node-a")  # fmt: skip
    assert finding.evidence[0].kind == "event-only"
    assert counts["rejected"] == counts["failed"] == 0
