"""`bindrift worker`: a central worker of the distributed mode. Takes the agents' detections from NATS JetStream
(all workers share one consumer group) and runs intelligence, severity, suppression and correlation on them,
storing the findings in the shared database (PostgreSQL)."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated, cast

import typer

from bindrift.cli.common import DbOption, open_store

INTEL_REFRESH_S = 5.0


def worker(
    bus: Annotated[
        str, typer.Option(envvar="BINDRIFT_BUS", help="NATS server URLs, comma-separated (nats://host:4222,…).")
    ],
    db: DbOption = None,
    batch: Annotated[int, typer.Option(min=1, max=1024, help="Messages taken from the stream at a time.")] = 64,
    ack_wait: Annotated[
        float,
        typer.Option(min=1.0, help="Seconds before the unacknowledged messages of a silent worker go to another."),
    ] = 30.0,
    max_ack_pending: Annotated[
        int, typer.Option(min=1, help="Messages out at all workers together (back-pressure on the stream).")
    ] = 1024,
    metrics_port: Annotated[int, typer.Option(help="Serve Prometheus metrics on this port (0: off).")] = 0,
    metrics_address: Annotated[
        str, typer.Option(help="The address metrics listen on (0.0.0.0 in a pod, for Prometheus to scrape).")
    ] = "127.0.0.1",
) -> None:
    """Consume the agents' detections from the bus and store them as findings (run several for more throughput)."""
    import asyncio
    import time

    import msgspec

    from bindrift.analysis.intel.intel_set import IntelSet, Kind
    from bindrift.bus.consumer import BusConsumer, ConsumerSettings
    from bindrift.bus.metrics import BusMetrics
    from bindrift.bus.stream import parse_servers
    from bindrift.config import load_settings
    from bindrift.findings.pipeline import FindingsPipeline
    from bindrift.findings.severity import SeverityPolicy
    from bindrift.schema.finding import Detection

    logging.basicConfig(level=logging.WARNING, format="bindrift: %(message)s", stream=sys.stderr)
    logging.getLogger("bindrift").setLevel(logging.INFO)
    try:
        servers = parse_servers(bus)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    store = open_store(db)
    pipeline = FindingsPipeline(store, SeverityPolicy(load_settings().severity))
    intel = IntelSet([(path, cast(Kind, kind)) for path, kind in store.intel_sources()])
    refreshed = time.monotonic()

    def handle(detection: Detection, message_id: str) -> None:
        nonlocal refreshed
        if time.monotonic() - refreshed > INTEL_REFRESH_S:
            intel.refresh()
            refreshed = time.monotonic()
        if detection.file.sha256 and not detection.intel:  # agents on the bus leave intelligence to the workers
            detection = msgspec.structs.replace(detection, intel=intel.lookup(detection.file.sha256))
        pipeline.process(detection, message_id)

    metrics = BusMetrics()
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_address, registry=metrics.registry)
    settings = ConsumerSettings(batch=batch, ack_wait_s=ack_wait, max_ack_pending=max_ack_pending)
    consumer = BusConsumer(servers, handle, settings, metrics)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(f"bindrift: worker started, storing into {store.display_url}", file=sys.stderr, flush=True)
        await consumer.run(stop)

    try:
        asyncio.run(main())
    finally:
        store.close()
        counts = ", ".join(f"{key} {value}" for key, value in consumer.counts.items())
        print(f"bindrift: worker stopped: {counts}", file=sys.stderr, flush=True)
