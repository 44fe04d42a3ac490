"""How a worker takes its batches from a real JetStream server: full batches from a full stream, with a linger
and without one; every message stored once and acknowledged."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests.bus.test_distributed import occurrence, wait_published
from tests.nats_cluster import NatsCluster

from bindrift.bus.consumer import BusConsumer, ConsumerSettings
from bindrift.bus.publisher import BusPublisher
from bindrift.bus.spool import Spool
from bindrift.bus.worker import DetectionWorker
from bindrift.findings.severity import SeverityPolicy
from bindrift.schema.finding import Detection
from bindrift.sinks.store.sql_store import SqlStore


class RecordingWorker(DetectionWorker):
    """The real worker, noting the size of each batch it stores."""

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store, SeverityPolicy())
        self.batches: list[int] = []

    def handle(self, detections: list[Detection], message_ids: list[str]) -> None:
        super().handle(detections, message_ids)
        self.batches.append(len(detections))


async def _drain(consumer: BusConsumer, n: int) -> None:
    stop = asyncio.Event()

    async def watch() -> None:
        while consumer.counts["stored"] < n:
            await asyncio.sleep(0.01)
        stop.set()

    watcher = asyncio.ensure_future(watch())
    await asyncio.wait_for(asyncio.gather(consumer.run(stop), watcher), timeout=60)


def _publish(server: NatsCluster, spool: Path, node: str, count: int) -> None:
    """`count` distinct detections published from `node`, all of them in the stream on return."""
    publisher = BusPublisher(server.urls, Spool(spool), node)
    for i in range(count):
        publisher.publish(occurrence(i, 0))
    wait_published(publisher)
    publisher.close()


@pytest.mark.parametrize("linger_s", [0.0, 0.05])
def test_a_full_stream_is_taken_in_full_batches(nats_folder: Path, tmp_path: Path, linger_s: float) -> None:
    server = NatsCluster(nats_folder, 1)
    server.start(0)
    try:
        server.wait_jetstream()
        _publish(server, tmp_path / "spool", "node-b", 200)
        store = SqlStore(f"sqlite:///{tmp_path / 'b.db'}")
        worker = RecordingWorker(store)
        consumer = BusConsumer(server.urls, worker, ConsumerSettings(batch=64, linger_s=linger_s))
        try:
            asyncio.run(_drain(consumer, 200))
            assert store.count_findings() == 200
        finally:
            store.close()
    finally:
        server.stop()
    assert sum(worker.batches) == 200 and consumer.counts["stored"] == 200
    assert worker.batches[:3] == [64, 64, 64], worker.batches
    assert consumer.counts["failed"] == consumer.counts["rejected"] == consumer.counts["redelivered"] == 0


def _allow_connections(pg_url: str, allowed: bool) -> None:
    """Let the database take connections or not (and end the ones it has): the store becomes unreachable."""
    server = pg_url.rsplit("/", 1)[0] + "/postgres"
    name = pg_url.rsplit("/", 1)[1]
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                               {"n": name})  # fmt: skip
    engine.dispose()


def test_an_unreachable_store_sets_nothing_aside(nats_folder: Path, pg_url: str, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The database refusing connections is no reason to set a message aside, however often it comes back."""
    server = NatsCluster(nats_folder, 1)
    server.start(0)
    store = SqlStore(pg_url)
    try:
        server.wait_jetstream()
        _publish(server, tmp_path / "spool", "node-u", 20)
        consumer = BusConsumer(server.urls, RecordingWorker(store), ConsumerSettings(batch=64, max_deliveries=2))
        _allow_connections(pg_url, False)

        async def outage_then_back() -> None:
            stop = asyncio.Event()
            running = asyncio.ensure_future(consumer.run(stop))
            deadline = time.monotonic() + 30
            while consumer.counts["failed"] < 60 and time.monotonic() < deadline:  # each message 3 times
                await asyncio.sleep(0.05)
            await asyncio.to_thread(_allow_connections, pg_url, True)
            while consumer.counts["stored"] < 20 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            stop.set()
            await running

        asyncio.run(outage_then_back())
        assert store.count_findings() == 20 and store.dead_letters()[1] == 0
    finally:
        _allow_connections(pg_url, True)
        store.close()
        server.stop()
    assert consumer.counts["failed"] >= 60 and consumer.counts["dead_lettered"] == 0, consumer.counts
    assert consumer.counts["stored"] == 20 and consumer.counts["redelivered"] >= 40
    assert "the store is unreachable (OperationalError" in caplog.text, "not halved, not a refusal"
    assert "refused" not in caplog.text and "set aside" not in caplog.text
