"""Distributed-mode benchmark (not part of the test suite): detections through NATS JetStream into PostgreSQL.

    python bench/bus.py            # 10,000 detections per run, 100 latency samples
    python bench/bus.py --quick    # 3,000 and 30

Starts its own three-server JetStream cluster (R3 stream) and PostgreSQL on loopback. For three shapes of input —
every detection on its own container (a cluster of many nodes), all on one container, all on one host scope (a
node watched with --host-path) — it measures in the same run:
- the local pipeline, one detection per transaction (`FindingsPipeline.process`, on a sample: the old path);
- the local pipeline in batches (`FindingsPipeline.store_batch`, 256 a transaction): the peer of the workers;
- one and two `bindrift worker` processes storing what is waiting in the stream: from the moment all of them are
  consuming to the last finding stored (the stream is filled first, so the publisher's rate does not count), with
  the CPU the workers, PostgreSQL and NATS used meanwhile: per detection, as cores kept busy (what a shared
  machine gave them), and as the ceiling that cost allows on all the machine's cores.
Then the latency from publishing a detection to its stored finding (p50/p99, one worker, one every 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sqlalchemy import Connection, create_engine, func, select  # noqa: E402
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
BATCH = 256
SHAPES = ("distinct containers", "one container", "one host scope")


def detections(n: int, tag: str, shape: str = SHAPES[0]) -> list[Detection]:
    """`n` distinct findings observed now, a millisecond apart, in the given shape."""
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        resource = POD
        if shape == "distinct containers":
            resource = msgspec.structs.replace(POD, container_id=f"{ord(tag):02x}{i:062x}", container_name=f"app-{i}")
        elif shape == "one host scope":
            resource = msgspec.structs.replace(POD, container_id="", container_name="", pod="", namespace="", image="")
        file = FileInfo(path=f"/tmp/{tag}/{i}", sha256=f"{ord(tag):02x}{i:062x}", size=1000 + i)
        out.append(msgspec.structs.replace(detection(), observed_at=now + timedelta(milliseconds=i), resource=resource,
                                           file=file))  # fmt: skip
    return out


def stored(connection: Connection) -> int:
    count = connection.execute(select(func.count()).select_from(FindingRow)).scalar_one()
    connection.commit()
    return int(count)


def local_rate(url: str, items: list[Detection], batched: bool) -> tuple[float, float]:
    """(detections/s, CPU µs of this process per detection)."""
    store = SqlStore(url)
    pipeline = FindingsPipeline(store)
    start, cpu = time.perf_counter(), time.process_time()
    if batched:
        for i in range(0, len(items), BATCH):
            pipeline.store_batch(items[i : i + BATCH])
    else:
        for item in items:
            pipeline.process(item)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    store.close()
    return len(items) / elapsed, cpu / len(items) * 1e6


async def _reset_stream(urls: list[str]) -> None:
    import nats

    client = await nats.connect(servers=urls)
    try:
        js = client.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(STREAM)
    finally:
        await client.close()


def fill_stream(cluster: NatsCluster, items: list[Detection], work: Path, tag: str) -> float:
    """Publish `items` through the agent's spool and publisher; returns detections/s into the stream."""
    publisher = BusPublisher(cluster.urls, Spool(work / f"spool-{tag}"), "bench-node")
    try:
        start = time.perf_counter()
        for item in items:
            publisher.publish(item)
        while publisher.spool.pending:
            time.sleep(0.005)
        return len(items) / (time.perf_counter() - start)
    finally:
        publisher.close()


def start_workers(k: int, urls: list[str], db: str, logs: Path) -> tuple[list[subprocess.Popen[bytes]], list[Path]]:
    workers, paths = [], []
    for i in range(k):
        log = logs / f"worker{i}-{time.monotonic_ns()}.log"
        with log.open("w") as err:
            command = [BINDRIFT, "worker", "--bus", ",".join(urls), "--db", db, "--batch", str(BATCH)]
            workers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err))
        paths.append(log)
    return workers, paths


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=60)


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids(url: str) -> list[int]:
    """The postmaster listening on the URL's port, and its children (the backends)."""
    port = url.rsplit(":", 1)[1].split("/", 1)[0]
    parents, master = {}, 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                args = (entry / "cmdline").read_bytes().split(b"\0")
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if args[0].endswith(b"/postgres") and b"-p" in args and args[args.index(b"-p") + 1] == port.encode():
                    master = int(entry.name)
    return [master] + [pid for pid, parent in parents.items() if parent == master]


class CpuMeter:
    """CPU seconds used by groups of processes between `start` and `stop` (children started meanwhile count whole)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before: dict[int, float] = {}

    def start(self) -> None:
        self.before = {pid: _cpu(pid) for pids in self.groups.values() for pid in pids()}

    def stop(self) -> dict[str, float]:
        return {
            name: sum(_cpu(pid) - self.before.get(pid, 0.0) for pid in pids()) for name, pids in self.groups.items()
        }


def drain_rate(k: int, cluster: NatsCluster, db: str, items: list[Detection], work: Path) -> dict[str, float]:
    """Detections/s stored by `k` workers from a full stream, and the CPU each part used per detection meanwhile
    (µs): the workers, PostgreSQL, the NATS servers. The workers start on an empty stream and are stopped
    (SIGSTOP) while it is filled, so all of them start draining it at once (SIGCONT)."""
    n = len(items)
    asyncio.run(_reset_stream(cluster.urls))
    workers, logs = start_workers(k, cluster.urls, db, work)
    meter = CpuMeter({"workers": lambda: [w.pid for w in workers], "postgresql": lambda: postgres_pids(db),
                      "nats": lambda: [p.pid for p in cluster.processes.values()]})  # fmt: skip
    engine = create_engine(db)
    try:
        with engine.connect() as connection:
            while not all("bus worker consuming" in log.read_text() for log in logs):
                assert all(w.poll() is None for w in workers), [log.read_text() for log in logs]
                time.sleep(0.01)
            for worker in workers:
                worker.send_signal(signal.SIGSTOP)
            published = fill_stream(cluster, items, work, f"{k}-{time.monotonic_ns()}")
            meter.start()
            start = time.perf_counter()
            for worker in workers:
                worker.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 600
            while stored(connection) < n:
                assert time.monotonic() < deadline, "workers did not store everything"
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
            used = meter.stop()
    finally:
        engine.dispose()
        for worker in workers:
            worker.send_signal(signal.SIGCONT)
        stop_workers(workers)
    out = {"detections/s": n / elapsed, "publish into the stream (detections/s)": published}
    out |= {f"{name} CPU µs/detection": seconds / n * 1e6 for name, seconds in used.items()}
    out["detections per worker CPU-second"] = n / used["workers"] if used["workers"] else 0.0
    # What the machine gave the system under test, and what its two cores could give at most at this cost.
    out["cores busy (workers + PostgreSQL + NATS)"] = sum(used.values()) / elapsed
    out["ceiling on all cores (detections/s)"] = (os.cpu_count() or 1) * n / sum(used.values())
    return out


def latency(cluster: NatsCluster, db: str, samples: int, work: Path) -> list[float]:
    """Seconds from publish to the finding being visible in PostgreSQL, one detection every 100 ms."""
    asyncio.run(_reset_stream(cluster.urls))
    workers, logs = start_workers(1, cluster.urls, db, work)
    while "bus worker consuming" not in logs[0].read_text():
        time.sleep(0.05)
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


def measure_shape(server: str, cluster: NatsCluster, shape: str, n: int, work: Path) -> dict[str, float]:
    key = shape.replace(" ", "_")
    out: dict[str, float] = {}
    with fresh_database(server, f"bench_{key}_single") as db:
        out["local, one detection a transaction"] = local_rate(db, detections(min(n, 1000), "s", shape), False)[0]
    with fresh_database(server, f"bench_{key}_batch") as db:
        out["local, batches of 256"], out["local CPU µs/detection"] = local_rate(db, detections(n, "a", shape), True)
    for k in (1, 2):
        with fresh_database(server, f"bench_{key}_bus{k}") as db:
            figures = drain_rate(k, cluster, db, detections(n, "b", shape), work)
        out[f"bus, {k} worker(s)"] = figures.pop("detections/s")
        out |= {f"  {k} worker(s): {name}": value for name, value in figures.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated subset of: " + ", ".join(SHAPES))
    args = parser.parse_args()
    n, samples = (3000, 30) if args.quick else (10_000, 100)
    work = Path(tempfile.mkdtemp(prefix="bindrift-bus-bench-"))
    cluster = NatsCluster(work / "nats", 3)
    (work / "nats").mkdir()
    results: dict[str, dict[str, float]] = {}
    load = os.getloadavg()
    with private_postgres() as server:
        try:
            for i in range(3):
                cluster.start(i)
            cluster.wait_jetstream()
            for shape in args.shapes.split(","):
                results[shape] = measure_shape(server, cluster, shape, n, work)
            with fresh_database(server, "bench_latency") as db:
                delays = latency(cluster, db, samples, work)
            results["latency"] = {
                "p50 (ms)": statistics.median(delays) * 1000,
                "p99 (ms)": delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000,
                "samples": len(delays),
            }
        finally:
            cluster.stop()
    print(f"{n} distinct findings per run, 3-server JetStream cluster (R3), PostgreSQL 15, same machine")
    print(f"{os.cpu_count()} cores; load average at the start {load[0]:.1f}, at the end {os.getloadavg()[0]:.1f}")
    for shape, figures in results.items():
        print(f"\n{shape}")
        peer = figures.get("local, batches of 256")
        for key, value in figures.items():
            ratio = f"  {value / peer:.2f}× local batches" if peer and key.startswith(("bus,", "local, one")) else ""
            ratio = f"  {value / figures['local CPU µs/detection']:.2f}× local" if "worker(s): work" in key else ratio
            print(f"  {key:48} {value:10.1f}{ratio}")
        if "bus, 1 worker(s)" in figures:
            print(f"  {'two workers vs one':48} {figures['bus, 2 worker(s)'] / figures['bus, 1 worker(s)']:10.2f}×")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "bus.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
