"""A central worker: intelligence for the detections the agents leave to it, then the findings stage, one batch
(one transaction) at a time, fed by the bus consumer until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import TYPE_CHECKING, cast

import msgspec

from bindrift.bus.consumer import BusConsumer
from bindrift.findings.dead_letter import set_aside
from bindrift.findings.pipeline import FindingsPipeline
from bindrift.findings.severity import SeverityPolicy
from bindrift.schema.finding import Detection

if TYPE_CHECKING:
    from bindrift.sinks.store.sql_store import SqlStore

INTEL_REFRESH_S = 5.0


class DetectionWorker:
    """The consumer's handler (`bindrift.bus.consumer.Handler`): looks the hashes up, then stores the batch's
    findings; sets aside what the store refuses for good."""

    def __init__(self, store: SqlStore, policy: SeverityPolicy) -> None:
        from bindrift.analysis.intel.intel_set import IntelSet, Kind

        self.pipeline = FindingsPipeline(store, policy)
        self.intel = IntelSet([(path, cast(Kind, kind)) for path, kind in store.intel_sources()])
        self._refreshed = time.monotonic()

    def handle(self, detections: list[Detection], message_ids: list[str]) -> None:
        if time.monotonic() - self._refreshed > INTEL_REFRESH_S:
            self.intel.refresh()
            self._refreshed = time.monotonic()
        # Agents on the bus leave intelligence to the workers.
        enriched = [msgspec.structs.replace(d, intel=self.intel.lookup(d.file.sha256))
                    if d.file.sha256 and not d.intel else d for d in detections]  # fmt: skip
        self.pipeline.store_batch(enriched, message_ids)

    def set_aside(self, detection: Detection, body: bytes, message_id: str, error: str, deliveries: int) -> None:
        set_aside(self.pipeline, detection, body, message_id, error, deliveries, "bus")

    def transient(self, exc: Exception) -> bool:
        """The database unreachable, a deadlock or a busy SQLite file: the same batch may well succeed later."""
        from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, TimeoutError

        return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | TimeoutError)


def catch_stop_early() -> threading.Event:
    """SIGTERM and SIGINT remembered from now on (set the event), so that one sent while the worker is still
    starting (imports, the metrics server) stops it cleanly once `serve` runs instead of killing it."""
    requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: requested.set())
    return requested


def serve(consumer: BusConsumer, requested: threading.Event | None = None) -> None:
    """Run `consumer` until SIGTERM or SIGINT (or at once when `requested`, from `catch_stop_early`, is set)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if requested is not None and requested.is_set():  # after the handlers: no signal falls in between
            stop.set()
        await consumer.run(stop)

    # Not asyncio.run: it waits for every task left to finish its cancellation, and nats-py's connect retry
    # loop (stopped mid-way by SIGTERM) may never do so; those are given one second, then left.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
    finally:
        loop.close()
