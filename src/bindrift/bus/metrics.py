"""Prometheus counters of the bus: what was published, spooled, dropped and consumed, and the connection's
ups and downs."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class BusMetrics:
    """The bindrift_bus_* families in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.published = Counter("bindrift_bus_published", "Detections stored in the stream", registry=r)
        self.duplicates = Counter("bindrift_bus_duplicates", "Republishes the stream recognised by id", registry=r)
        self.publish_errors = Counter("bindrift_bus_publish_errors", "Publish batches that failed and will be retried",
                                      registry=r)  # fmt: skip
        self.connection = Counter("bindrift_bus_connection_events", "Disconnects, reconnects, errors, failed connects",
                                  ["event"], registry=r)  # fmt: skip
        self.spool_pending = Gauge("bindrift_bus_spool_pending", "Detections in the disk spool, not yet published",
                                   registry=r)  # fmt: skip
        self.spool_dropped = Gauge("bindrift_bus_spool_dropped", "Detections dropped because the spool was full",
                                   registry=r)  # fmt: skip
        self.consumed = Counter("bindrift_bus_consumed", "Messages a worker finished, by outcome: stored, rejected "
                                "(not a detection), failed (to be retried), dead_lettered (set aside)", ["outcome"],
                                registry=r)  # fmt: skip
        self.redelivered = Counter("bindrift_bus_redelivered", "Messages delivered more than once", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def write(self, path: str) -> None:
        """Replace a textfile-collector file atomically."""
        temporary = f"{path}.tmp"
        with open(temporary, "wb") as fh:
            fh.write(self.render())
        os.replace(temporary, path)
