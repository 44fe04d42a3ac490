"""Soak: 100,000 detections, shuffled, through a NATS server and two `bindrift worker` processes into PostgreSQL,
one worker killed with SIGKILL mid-run and replaced. None lost, none stored twice, and the findings and incidents
are those of the same detections stored in time order by one process."""

from __future__ import annotations

import random
import signal
import time
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import create_engine, func, select
from tests import postgres
from tests.bus.test_distributed import start_worker, stop_worker
from tests.detections import POD, T0, detection
from tests.findings.test_incidents_event_time import outcome
from tests.nats_cluster import NatsCluster

from bindrift.bus.publisher import BusPublisher
from bindrift.bus.spool import Spool
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.schema.finding import Detection, FileInfo
from bindrift.sinks.store.models import ProcessedMessageRow
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

N = 100_000
CONTAINERS = 400
FILES = 20  # per container: 8,000 findings, each seen about 12 times (a page of findings holds 10,000)
NODES = 4
DEADLINE_S = 420.0


def soak_detections() -> list[Detection]:
    """Sightings over five days (incidents split where a container is quiet for a day), in shuffled order."""
    rng = random.Random(15)
    days = [rng.sample(range(5), 3) for _ in range(CONTAINERS)]  # each container active on 3 of 5 days
    out = []
    for i in range(N):
        c, f = rng.randrange(CONTAINERS), rng.randrange(FILES)
        resource = msgspec.structs.replace(POD, container_id=f"{c:064x}", container_name=f"app-{c}")
        minutes = rng.choice(days[c]) * 24 * 60 + rng.randrange(6 * 60)
        file = FileInfo(path=f"/tmp/{f}", sha256=f"{c:032x}{f:032x}", size=1000 + f)
        out.append(msgspec.structs.replace(detection(), resource=resource, file=file,
                                           observed_at=T0 + timedelta(minutes=minutes, microseconds=i)))  # fmt: skip
    return out


def stored_messages(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(ProcessedMessageRow)).scalar_one())
    finally:
        engine.dispose()


def wait_stored(url: str, at_least: int, deadline: float) -> int:
    while (count := stored_messages(url)) < at_least:
        assert time.monotonic() < deadline, f"{count} of {at_least} stored in time"
        time.sleep(0.5)
    return count


def results(url: str) -> tuple[object, object]:
    store = SqlStore(url)
    try:
        assert sum(f.count for f in store.list_findings(FindingFilter(limit=10_000))) == N, "none lost, none twice"
        return outcome(store)
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE_S + 120)
def test_soak_two_workers_one_killed(nats_folder: Path, postgres_url: str, tmp_path: Path) -> None:
    items = soak_detections()
    server = NatsCluster(nats_folder, 1)
    server.start(0)
    deadline = time.monotonic() + DEADLINE_S
    with postgres.fresh_database(postgres_url, "soak_bus") as bus_db, \
            postgres.fresh_database(postgres_url, "soak_ordered") as ordered_db:  # fmt: skip
        SqlStore(bus_db).close()  # migrated once, before the workers start together
        workers = []
        try:
            server.wait_jetstream()
            # Four nodes publish through their own spools, as a cluster's agents do.
            publishers = [BusPublisher(server.urls, Spool(tmp_path / f"spool{i}"), f"soak-node-{i}", batch=1024)
                          for i in range(NODES)]  # fmt: skip
            for i, item in enumerate(items):
                publishers[i % NODES].publish(item)
            workers = [start_worker(server, bus_db, tmp_path / f"w{i}.log", batch=256) for i in range(2)]
            wait_stored(bus_db, N // 3, deadline)
            workers[0].send_signal(signal.SIGKILL)  # mid-run, most likely mid-batch
            workers[0].wait(timeout=10)
            workers[0] = start_worker(server, bus_db, tmp_path / "w2.log", batch=256)
            while any(publisher.spool.pending for publisher in publishers):
                assert time.monotonic() < deadline, "the publishers did not drain"
                time.sleep(0.1)
            for publisher in publishers:
                publisher.close()
            assert wait_stored(bus_db, N, deadline) == N
            time.sleep(3.0)  # the stream's redeliveries (ack wait 2 s) would show up as more
            counts = [stop_worker(w, tmp_path / log) for w, log in zip(workers, ("w2.log", "w1.log"), strict=True)]
            workers = []
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)
            server.stop()
        assert stored_messages(bus_db) == N
        assert all(c["rejected"] == c["failed"] == c["dead_lettered"] == 0 for c in counts), counts
        assert sum(c["redelivered"] for c in counts) >= 1, "the killed worker's messages came again, stored once"
        store = SqlStore(ordered_db)
        try:
            pipeline = FindingsPipeline(store)
            ordered = sorted(items, key=lambda d: d.observed_at)
            for start in range(0, N, 1000):
                pipeline.store_batch(ordered[start : start + 1000])
        finally:
            store.close()
        assert results(bus_db) == results(ordered_db)
