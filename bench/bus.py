"""Distributed-mode benchmark (not part of the test suite): detections through NATS JetStream into PostgreSQL.

    python bench/bus.py            # 1,000 detections per run, 100 latency samples
    python bench/bus.py --quick    # 300 and 30

Starts its own three-server JetStream cluster (R3 stream) and PostgreSQL on loopback. Measures, in the same run:
the local pipeline (FindingsPipeline in one process, the agent's path without a bus: the peer), then the bus with
one and with two `bindrift worker` processes (from the first publish to the last stored finding), and the latency
from publishing a detection to its stored finding (p50/p99, one worker, one detection every 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sqlalchemy import create_engine, select  # noqa: E402
from tests.detections import POD, detection  # noqa: E402
from tests.nats_cluster import NatsCluster  # noqa: E402
from tests.postgres import fresh_database, private_postgres  # noqa: E402

from bindrift.bus.publisher import BusPublisher  # noqa: E402
from bindrift.bus.spool import Spool  # noqa: E402
from bindrift.bus.stream import STREAM  # noqa: E402
from bindrift.findings.pipeline import FindingsPipeline  # noqa: E402
from bindrift.schema.finding import Detection, FileInfo  # noqa: E402
from bindrift.sinks.store.models import FindingRow  # noqa: E402
from bindrift.sinks.store.sql_store import SqlStore  # noqa: E402

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
INTERVAL_S = 0.1  # well below one worker's throughput: the latency of an unloaded system


def detections(n: int, tag: str) -> list[Detection]:
    """`n` distinct findings, each the first of its container (a cluster of many nodes), observed now."""
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        resource = msgspec.structs.replace(POD, container_id=f"{ord(tag):02x}{i:062x}", container_name=f"app-{i}")
        file = FileInfo(path=f"/tmp/{tag}/{i}", sha256=f"{ord(tag):02x}{i:062x}", size=1000 + i)
        out.append(msgspec.structs.replace(detection(), observed_at=now, resource=resource, file=file))
    return out


def wait_stored(url: str, n: int) -> None:
    """Until `n` findings are in the database (one connection, a count every 10 ms)."""
    from sqlalchemy import func

    engine = create_engine(url)
    with engine.connect() as connection:
        while connection.execute(select(func.count()).select_from(FindingRow)).scalar_one() < n:
            connection.commit()
            time.sleep(0.01)
    engine.dispose()


def local_rate(url: str, items: list[Detection]) -> float:
    store = SqlStore(url)
    pipeline = FindingsPipeline(store)
    start = time.perf_counter()
    for item in items:
        pipeline.process(item)
    elapsed = time.perf_counter() - start
    store.close()
    return len(items) / elapsed


def start_workers(k: int, urls: list[str], db: str, logs: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for i in range(k):
        log = logs / f"worker{i}-{time.monotonic_ns()}.log"
        with log.open("w") as err:
            workers.append(subprocess.Popen([BINDRIFT, "worker", "--bus", ",".join(urls), "--db", db, "--batch", "64"],
                                            stdout=subprocess.DEVNULL, stderr=err))  # fmt: skip
        while "bus worker consuming" not in log.read_text():
            time.sleep(0.05)
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=60)


async def _reset_stream(urls: list[str]) -> None:
    import nats

    client = await nats.connect(servers=urls)
    try:
        js = client.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(STREAM)
    finally:
        await client.close()


def bus_rate(k: int, cluster: NatsCluster, db: str, items: list[Detection], work: Path) -> tuple[float, float]:
    """(stored detections/s end to end, detections/s into the stream) with `k` workers."""
    asyncio.run(_reset_stream(cluster.urls))
    workers = start_workers(k, cluster.urls, db, work)
    publisher = BusPublisher(cluster.urls, Spool(work / f"spool-{k}"), "bench-node")
    try:
        start = time.perf_counter()
        for item in items:
            publisher.publish(item)
        while publisher.spool.pending:
            time.sleep(0.005)
        published = time.perf_counter() - start
        wait_stored(db, len(items))
        elapsed = time.perf_counter() - start
    finally:
        publisher.close()
        stop_workers(workers)
    return len(items) / elapsed, len(items) / published


def latency(cluster: NatsCluster, db: str, samples: int, work: Path) -> list[float]:
    """Seconds from publish to the finding being visible in PostgreSQL, one detection every 100 ms."""
    asyncio.run(_reset_stream(cluster.urls))
    workers = start_workers(1, cluster.urls, db, work)
    publisher = BusPublisher(cluster.urls, Spool(work / "spool-latency"), "bench-node")
    items = detections(samples, "c")
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()
    engine = create_engine(db)

    def watch() -> None:
        with engine.connect() as connection:
            while not done.is_set():
                rows = connection.execute(select(FindingRow.path).where(FindingRow.path.like("/tmp/c/%"))).scalars()
                now = time.perf_counter()
                for path in rows:
                    seen.setdefault(path, now)
                connection.commit()
                time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for item in items:
            sent[item.file.path] = time.perf_counter()
            publisher.publish(item)
            time.sleep(INTERVAL_S)
        deadline = time.monotonic() + 30
        while len(seen) < samples and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        done.set()
        watcher.join()
        publisher.close()
        stop_workers(workers)
        engine.dispose()
    return sorted(seen[path] - sent[path] for path in sent if path in seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, samples = (300, 30) if args.quick else (1000, 100)
    work = Path(tempfile.mkdtemp(prefix="bindrift-bus-bench-"))
    cluster = NatsCluster(work / "nats", 3)
    (work / "nats").mkdir()
    results: dict[str, float] = {}
    with private_postgres() as server:
        try:
            for i in range(3):
                cluster.start(i)
            cluster.wait_jetstream()
            with fresh_database(server, "bench_local") as db:
                results["local pipeline (detections/s)"] = local_rate(db, detections(n, "a"))
            for k in (1, 2):
                with fresh_database(server, f"bench_bus{k}") as db:
                    stored, published = bus_rate(k, cluster, db, detections(n, "b"), work)
                results[f"bus, {k} worker(s) (detections/s)"] = stored
                results[f"publish into the stream, run {k} (detections/s)"] = published
            with fresh_database(server, "bench_latency") as db:
                delays = latency(cluster, db, samples, work)
            results["latency p50 (ms)"] = statistics.median(delays) * 1000
            results["latency p99 (ms)"] = delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000
            results["latency samples"] = len(delays)
        finally:
            cluster.stop()
    peer = results["local pipeline (detections/s)"]
    print(f"{n} distinct findings per run, 3-server JetStream cluster (R3), PostgreSQL 15, same machine")
    for key, value in results.items():
        ratio = f"  {value / peer:.2f}× the local pipeline" if key.startswith("bus,") else ""
        print(f"{key:52} {value:10.1f}{ratio}")
    one, two = results["bus, 1 worker(s) (detections/s)"], results["bus, 2 worker(s) (detections/s)"]
    print(f"{'two workers vs one':52} {two / one:10.2f}×")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "bus.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
