"""Distributed mode end to end, with real servers: Detections published through the real spool and publisher
to a three-server JetStream cluster, stored by real `bindrift worker` processes into a private PostgreSQL.
A server killed mid-run, a worker killed mid-batch, and the bus down while the agent keeps detecting."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import Connection, create_engine, func, select
from tests.detections import POD, detection
from tests.nats_cluster import NatsCluster
from tests.refusing_store import REFUSAL, refuse_path

from bindrift.bus.publisher import BusPublisher
from bindrift.bus.spool import Spool
from bindrift.bus.stream import STREAM, SUBJECTS, message_id, subject_for
from bindrift.findings.dead_letter import COVERAGE_PATH
from bindrift.schema.finding import Detection, FileInfo, Finding
from bindrift.sinks.store.models import ProcessedMessageRow
from bindrift.sinks.store.sql_store import FindingFilter, SqlStore

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
ACK_WAIT = "2"


def occurrence(n: int, repeat: int) -> Detection:
    """The `repeat`-th sighting of finding `n`: its own container (so its own incident), an hour apart."""
    resource = msgspec.structs.replace(POD, container_id=f"{n:064x}", container_name=f"app-{n}")
    return detection(minutes=n + 60 * repeat, resource=resource,
                     file=FileInfo(path=f"/tmp/drop{n}", sha256=f"{n + 1:064x}", size=1000 + n))  # fmt: skip


def start_worker(cluster: NatsCluster, db: str, log: Path, batch: int = 20, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        command = [BINDRIFT, "worker", "--bus", ",".join(cluster.urls), "--db", db, "--batch", str(batch),
                   "--ack-wait", ACK_WAIT, *extra]  # fmt: skip
        worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 30
    while "bus worker consuming" not in log.read_text():
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return worker


def stop_worker(worker: subprocess.Popen[bytes], log: Path) -> dict[str, int]:
    """SIGTERM, and what the worker says it did."""
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    line = next(line for line in log.read_text().splitlines() if "worker stopped:" in line)
    return {part.split()[0]: int(part.split()[1]) for part in line.split("stopped: ", 1)[1].split(", ")}


def findings(db: str) -> dict[str, Finding]:
    store = SqlStore(db)
    try:
        return {f.file.path: f for f in store.list_findings(FindingFilter(limit=10_000))}
    finally:
        store.close()


def wait_counts(db: str, expected: dict[str, int], timeout: float = 60.0) -> dict[str, Finding]:
    deadline = time.monotonic() + timeout
    while True:
        stored = findings(db)
        if {path: f.count for path, f in stored.items()} == expected or time.monotonic() > deadline:
            return stored
        time.sleep(0.2)


def stored_messages(connection: Connection) -> int:
    count = connection.execute(select(func.count()).select_from(ProcessedMessageRow)).scalar_one()
    connection.commit()
    return int(count)


def assert_stored_once(stored: dict[str, Finding], n: int, repeats: int) -> None:
    assert sorted(stored) == sorted(f"/tmp/drop{i}" for i in range(n))
    for i in range(n):
        finding = stored[f"/tmp/drop{i}"]
        first, last = occurrence(i, 0), occurrence(i, repeats - 1)
        assert finding.count == repeats, (i, finding.count)
        assert finding.first_seen == first.observed_at and finding.last_seen == last.observed_at
        assert finding.category == "Added Binary Executed" and finding.severity == "low" and finding.state == "active"
        assert finding.resource == first.resource and finding.file == first.file
        assert finding.process == first.process and finding.writer == first.writer
        assert finding.source == "agent" and finding.incident_id.startswith("inc-") and finding.related == []
        assert [t.id for t in finding.techniques] == ["T1105", "T1106"]


def wait_published(publisher: BusPublisher, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while publisher.spool.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert publisher.spool.pending == 0, f"{publisher.spool.pending} detections still spooled"


async def _jetstream(urls: list[str], query: str) -> Any:
    import nats

    client = await nats.connect(servers=urls, connect_timeout=2)
    try:
        js = client.jetstream(timeout=5)
        if query == "stream":
            return (await js.stream_info(STREAM)).state
        if query == "consumer":
            return await js.consumer_info(STREAM, "bindrift-workers")
        subscription = await js.pull_subscribe(SUBJECTS, stream=STREAM)  # an ephemeral reader of the stream
        messages: list[tuple[bytes, str]] = []
        while True:
            try:
                batch = await subscription.fetch(100, timeout=1)
            except nats.errors.TimeoutError:
                return messages
            for message in batch:
                messages.append((message.data, (message.headers or {}).get("Nats-Msg-Id", "")))
                await message.ack()
    finally:
        await client.close()


@pytest.mark.slow
def test_a_server_killed_mid_run_loses_and_duplicates_nothing(nats_cluster: NatsCluster, pg_url: str,
                                                              tmp_path: Path) -> None:  # fmt: skip
    n, repeats = 60, 3
    workers = [start_worker(nats_cluster, pg_url, tmp_path / f"worker{i}.log") for i in range(2)]
    publisher = BusPublisher(nats_cluster.urls, Spool(tmp_path / "spool"), "node-1")
    try:
        for i in range(n):
            publisher.publish(occurrence(i, 0))
        wait_published(publisher)
        killed = next(i for i, port in enumerate(nats_cluster.ports) if publisher.connected_url.endswith(f":{port}"))
        nats_cluster.kill(killed)  # the server this agent publishes to, while the workers are consuming
        for repeat in range(1, repeats):
            for i in range(n):
                publisher.publish(occurrence(i, repeat))
                time.sleep(0.002)
        wait_published(publisher, timeout=60)
        expected = {f"/tmp/drop{i}": repeats for i in range(n)}
        stored = wait_counts(pg_url, expected)
        time.sleep(float(ACK_WAIT) + 1.5)  # any redelivery would have arrived by now
        assert_stored_once(findings(pg_url), n, repeats)
        assert stored.keys() == expected.keys()
        assert publisher.metrics.connection.labels("disconnected")._value.get() >= 1
        alive = [url for i, url in enumerate(nats_cluster.urls) if i != killed]
        state = asyncio.run(_jetstream(alive, "stream"))
        assert state.messages == n * repeats, "republished messages were deduplicated by the stream"
        consumer = asyncio.run(_jetstream(alive, "consumer"))
        assert consumer.num_ack_pending == 0 and consumer.num_pending == 0
    finally:
        publisher.close(drain_s=0)
        counts = [stop_worker(w, tmp_path / f"worker{i}.log") for i, w in enumerate(workers)]
    assert sum(c["stored"] for c in counts) >= n * repeats and all(c["rejected"] == 0 for c in counts)
    assert all(c["stored"] > 0 for c in counts), "both workers of the group took messages"


@pytest.mark.slow
def test_a_worker_killed_mid_batch_has_its_messages_stored_once(nats_cluster: NatsCluster, pg_url: str,
                                                                tmp_path: Path) -> None:  # fmt: skip
    n, repeats = 600, 2
    publisher = BusPublisher(nats_cluster.urls, Spool(tmp_path / "spool"), "node-2")
    for repeat in range(repeats):
        for i in range(n):
            publisher.publish(occurrence(i, repeat))
    wait_published(publisher)
    publisher.close(drain_s=0)
    first = start_worker(nats_cluster, pg_url, tmp_path / "first.log", batch=20)
    engine = create_engine(pg_url)  # polled on one connection: a worker stores hundreds of batches a second
    deadline = time.monotonic() + 30
    with engine.connect() as connection:
        while stored_messages(connection) < 40 and time.monotonic() < deadline:
            time.sleep(0.002)
    engine.dispose()
    first.send_signal(signal.SIGKILL)  # in the middle of a batch of 20: stored, unacknowledged, not yet taken
    first.wait(timeout=10)
    stored_by_first = sum(f.count for f in findings(pg_url).values())
    assert 40 <= stored_by_first < n * repeats
    second = start_worker(nats_cluster, pg_url, tmp_path / "second.log", batch=50)
    try:
        wait_counts(pg_url, {f"/tmp/drop{i}": repeats for i in range(n)})
        time.sleep(float(ACK_WAIT) + 1.5)
        assert_stored_once(findings(pg_url), n, repeats)
        consumer = asyncio.run(_jetstream(nats_cluster.urls, "consumer"))
        assert consumer.num_ack_pending == 0 and consumer.num_pending == 0 and consumer.num_redelivered == 0
    finally:
        counts = stop_worker(second, tmp_path / "second.log")
    assert counts["redelivered"] >= 1, "the killed worker's unacknowledged messages came to the second one"
    assert counts["stored"] >= n * repeats - stored_by_first and counts["rejected"] == counts["failed"] == 0


@pytest.mark.slow
def test_bus_down_spools_within_its_cap_and_replays_in_order(nats_folder: Path, tmp_path: Path) -> None:
    server = NatsCluster(nats_folder, 1)
    cap, segment = 64 * 1024, 8 * 1024
    spool = Spool(tmp_path / "spool", max_bytes=cap, segment_bytes=segment)
    publisher = BusPublisher(server.urls, spool, "node/3 x")  # the bus is not there yet
    sent = [occurrence(i, 0) for i in range(500)]
    try:
        for item in sent:
            publisher.publish(item)
            assert spool.size <= cap
        assert sum(p.stat().st_size for p in (tmp_path / "spool").glob("*.seg")) <= cap
        kept = spool.pending
        assert spool.dropped == 500 - kept and 0 < kept < 500
        time.sleep(1.0)
        assert publisher.metrics.connection.labels("error")._value.get() >= 1
        server.start(0)
        server.wait_jetstream()
        wait_published(publisher)
        messages = asyncio.run(_jetstream(server.urls, "all"))
        encoded = [msgspec.json.encode(item) for item in sent[500 - kept :]]
        assert [data for data, _id in messages] == encoded, "the newest detections, in order, once each"
        assert [msg_id for _data, msg_id in messages] == [message_id(data) for data in encoded]
        assert publisher.metrics.published._value.get() == kept and spool.dropped == 500 - kept
        assert subject_for("node/3 x") == "bindrift.detections.node_3_x"
    finally:
        publisher.close(drain_s=0)
        server.stop()


def test_spooled_detections_survive_an_agent_restart(nats_folder: Path, tmp_path: Path) -> None:
    server = NatsCluster(nats_folder, 1)
    publisher = BusPublisher(server.urls, Spool(tmp_path / "spool"), "node-4")
    for i in range(5):
        publisher.publish(occurrence(i, 0))
    publisher.close(drain_s=0)  # the agent stops while the bus is down
    server.start(0)
    try:
        server.wait_jetstream()
        restarted = BusPublisher(server.urls, Spool(tmp_path / "spool"), "node-4")
        wait_published(restarted)
        restarted.close()
        messages = asyncio.run(_jetstream(server.urls, "all"))
        decoded = [msgspec.json.decode(data, type=Detection) for data, _ in messages]
        assert decoded == [occurrence(i, 0) for i in range(5)]
    finally:
        server.stop()


async def _publish_raw(urls: list[str], subject: str, body: bytes, ids: list[str]) -> None:
    import nats

    client = await nats.connect(servers=urls, connect_timeout=2)
    try:
        js = client.jetstream(timeout=5)
        for msg_id in ids:
            await js.publish(subject, body, headers={"Nats-Msg-Id": msg_id})
    finally:
        await client.close()


@pytest.mark.slow
def test_repeats_are_deduplicated_by_the_stream_and_by_the_store(nats_folder: Path, pg_url: str,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    server = NatsCluster(nats_folder, 1)
    server.start(0)
    try:
        server.wait_jetstream()
        publisher = BusPublisher(server.urls, Spool(tmp_path / "spool"), "node-5")
        publisher.publish(occurrence(0, 0))
        wait_published(publisher)
        publisher.publish(occurrence(0, 0))  # the same detection again: the same message id
        wait_published(publisher)
        assert publisher.metrics.published._value.get() == 1 and publisher.metrics.duplicates._value.get() == 1
        publisher.close()
        # The same body under other ids (a replay by hand, or a forged header): two more stream messages.
        body = msgspec.json.encode(occurrence(1, 0))
        asyncio.run(_publish_raw(server.urls, subject_for("node-5"), body, ["other-1", "other-2"]))
        asyncio.run(_publish_raw(server.urls, subject_for("node-5"), b'{"not": "a detection"}', ["junk"]))
        assert asyncio.run(_jetstream(server.urls, "stream")).messages == 4
        worker = start_worker(server, pg_url, tmp_path / "worker.log")
        try:
            stored = wait_counts(pg_url, {"/tmp/drop0": 1, "/tmp/drop1": 1}, timeout=30)
            time.sleep(1.0)
        finally:
            counts = stop_worker(worker, tmp_path / "worker.log")
    finally:
        server.stop()
    assert {path: f.count for path, f in findings(pg_url).items()} == {"/tmp/drop0": 1, "/tmp/drop1": 1}
    assert stored["/tmp/drop1"].first_seen == occurrence(1, 0).observed_at
    assert counts == {"stored": 3, "rejected": 1, "failed": 0, "dead_lettered": 0, "redelivered": 0}, (
        "stored twice, counted once"
    )
    assert "bus message rejected" in (tmp_path / "worker.log").read_text()


def test_a_poison_message_is_set_aside_and_the_worker_goes_on(nats_folder: Path, pg_url: str,
                                                               tmp_path: Path) -> None:  # fmt: skip
    """One detection the store refuses (a trigger in the database) among good ones, and one whose namespace
    is longer than its column (PostgreSQL would refuse it): the good ones are stored, the long one cut visibly, the
    poison one tried `--max-deliveries` times, then set aside with its reason; later detections are stored."""
    server = NatsCluster(nats_folder, 1)
    server.start(0)
    try:
        server.wait_jetstream()
        publisher = BusPublisher(server.urls, Spool(tmp_path / "spool"), "node-6")
        poison = occurrence(0, 0)
        schema = SqlStore(pg_url)
        try:
            refuse_path(schema.engine, poison.file.path)
        finally:
            schema.close()
        long = msgspec.structs.replace(occurrence(20, 0), resource=msgspec.structs.replace(POD, namespace="n" * 300))
        sent = [occurrence(i, 0) for i in range(1, 10)] + [poison, long] + [occurrence(i, 0) for i in range(10, 20)]
        for item in sent:
            publisher.publish(item)
        wait_published(publisher)
        worker = start_worker(server, pg_url, tmp_path / "worker.log", 64, "--max-deliveries", "3")
        expected = {f"/tmp/drop{i}": 1 for i in range(1, 22)} | {COVERAGE_PATH: 1}
        try:
            store = SqlStore(pg_url)
            try:
                deadline = time.monotonic() + 30
                while not store.dead_letters()[1] and time.monotonic() < deadline:
                    time.sleep(0.2)
                letters, total = store.dead_letters()
            finally:
                store.close()
            publisher.publish(occurrence(21, 0))  # the worker goes on
            wait_published(publisher)
            stored = wait_counts(pg_url, expected, timeout=30)
        finally:
            publisher.close()
            counts = stop_worker(worker, tmp_path / "worker.log")
        consumer = asyncio.run(_jetstream(server.urls, "consumer"))
    finally:
        server.stop()
    assert {path: f.count for path, f in stored.items()} == expected
    assert (
        stored["/tmp/drop20"].resource.namespace.startswith("n" * 200)
        and "…[cut " in stored["/tmp/drop20"].resource.namespace
    )
    assert total == 1 and letters[0].message_id == message_id(msgspec.json.encode(poison))
    assert REFUSAL in letters[0].error and letters[0].deliveries == 3 and letters[0].source == "bus"
    assert msgspec.json.decode(letters[0].body, type=Detection) == poison
    coverage = stored[COVERAGE_PATH]
    assert coverage.category == "Coverage degraded" and coverage.resource.node == POD.node
    assert coverage.evidence[0].values["message_id"] == letters[0].message_id
    assert counts["stored"] == 21 and counts["dead_lettered"] == 1 and counts["failed"] == 2, counts
    assert counts["rejected"] == 0 and consumer.num_ack_pending == 0 and consumer.num_pending == 0
    assert "set aside as a dead letter" in (tmp_path / "worker.log").read_text()
