"""`bindrift worker`: a central worker of the distributed mode. Takes the agents' detections from NATS JetStream
(all workers share one consumer group) and runs intelligence, severity, suppression and correlation on them,
storing the findings in the shared database (PostgreSQL)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from bindrift.cli.common import DbOption, open_store


def worker(
    bus: Annotated[
        str, typer.Option(envvar="BINDRIFT_BUS", help="NATS server URLs, comma-separated (nats://host:4222,…).")
    ],
    db: DbOption = None,
    batch: Annotated[
        int, typer.Option(min=1, max=1024, help="Messages taken from the stream, and stored in one transaction.")
    ] = 256,
    linger_ms: Annotated[
        float, typer.Option(min=0.0, max=5000.0, help="Milliseconds a batch waits for more after its first message.")
    ] = 50.0,
    ack_wait: Annotated[
        float,
        typer.Option(min=1.0, help="Seconds before the unacknowledged messages of a silent worker go to another."),
    ] = 30.0,
    max_ack_pending: Annotated[
        int, typer.Option(min=1, help="Messages out at all workers together (back-pressure on the stream).")
    ] = 1024,
    max_deliveries: Annotated[
        int, typer.Option(min=1, max=100, help="Deliveries after which a message the store refuses is set aside.")
    ] = 5,
    metrics_port: Annotated[int, typer.Option(help="Serve Prometheus metrics on this port (0: off).")] = 0,
    metrics_address: Annotated[
        str, typer.Option(help="The address metrics listen on (0.0.0.0 in a pod, for Prometheus to scrape).")
    ] = "127.0.0.1",
) -> None:
    """Consume the agents' detections from the bus and store them as findings (run several for more throughput)."""
    from bindrift.bus.consumer import BusConsumer, ConsumerSettings
    from bindrift.bus.metrics import BusMetrics
    from bindrift.bus.stream import parse_servers
    from bindrift.bus.worker import DetectionWorker, catch_stop_early, serve

    requested = catch_stop_early()
    from bindrift.config import load_settings
    from bindrift.findings.severity import SeverityPolicy

    logging.basicConfig(level=logging.WARNING, format="bindrift: %(message)s", stream=sys.stderr)
    logging.getLogger("bindrift").setLevel(logging.INFO)
    try:
        servers = parse_servers(bus)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    store = open_store(db)
    metrics = BusMetrics()
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_address, registry=metrics.registry)
    settings = ConsumerSettings(batch=batch, linger_s=linger_ms / 1000, ack_wait_s=ack_wait,
                                max_ack_pending=max_ack_pending, max_deliveries=max_deliveries)  # fmt: skip
    handler = DetectionWorker(store, SeverityPolicy(load_settings().severity))
    consumer = BusConsumer(servers, handler, settings, metrics)
    print(f"bindrift: worker started, storing into {store.display_url}", file=sys.stderr, flush=True)
    try:
        serve(consumer, requested)
    finally:
        store.close()
        counts = ", ".join(f"{key} {value}" for key, value in consumer.counts.items())
        print(f"bindrift: worker stopped: {counts}", file=sys.stderr, flush=True)
