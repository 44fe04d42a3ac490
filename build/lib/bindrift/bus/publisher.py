"""The agent's side of the bus: detections are spooled to disk at once (the agent never waits for the bus)
and a background thread publishes them to JetStream in order, committing the spool only on the stream's
acknowledgement. A lost connection or a failed batch is retried from the spool; JetStream deduplicates the
republished messages by their id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

import msgspec

from bindrift.bus.metrics import BusMetrics
from bindrift.bus.spool import Spool
from bindrift.bus.stream import connect, ensure_stream, message_id, subject_for
from bindrift.schema.finding import Detection

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)
BATCH = 256
PUBLISH_TIMEOUT_S = 5.0
BACKOFF_S = (0.2, 0.5, 1.0, 2.0)
METRICS_EVERY_S = 5.0
_encoder = msgspec.json.Encoder()


class BusPublisher:
    """`publish(detection)` from the agent's thread; `close()` drains for a while and stops."""

    def __init__(self, servers: list[str], spool: Spool, node: str, *, metrics: BusMetrics | None = None,
                 metrics_file: str = "", batch: int = BATCH) -> None:  # fmt: skip
        self.servers, self.spool, self.subject = servers, spool, subject_for(node)
        self.metrics = metrics or BusMetrics()
        self.metrics_file, self.batch = metrics_file, batch
        self.connected_url = ""
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._main())
        self._thread = threading.Thread(target=self._run, name="bindrift-bus-publisher", daemon=True)
        self._thread.start()

    def publish(self, detection: Detection) -> None:
        """Spool `detection` and wake the publishing thread; never blocks on the bus."""
        self.spool.append(_encoder.encode(detection))
        self._loop.call_soon_threadsafe(self._wake.set)

    def close(self, drain_s: float = 5.0) -> None:
        """Publish what is spooled for up to `drain_s` seconds (the rest stays spooled for the next start)."""
        deadline = time.monotonic() + drain_s
        while self.spool.pending and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        self._stopping = True
        self._loop.call_soon_threadsafe(self._wake.set)
        self._thread.join(timeout=1.0)
        if self._thread.is_alive():  # still connecting or waiting for acknowledgements: what is unacknowledged stays
            self._loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(timeout=PUBLISH_TIMEOUT_S)
        self._update_metrics()
        if self.metrics_file:
            self.metrics.write(self.metrics_file)
        self.spool.close()

    # The publishing thread ---------------------------------------------------------------------

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)

    async def _main(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                client = await connect(self.servers, "bindrift-agent", self.metrics)
            except Exception as exc:  # no server reachable yet: the spool keeps everything meanwhile
                self.metrics.connection.labels("connect_failed").inc()
                if attempt == 0:
                    log.warning("bus unreachable (%s); detections are spooled until it is back", exc)
                await self._pause(attempt)
                attempt += 1
                continue
            attempt = 0
            self.connected_url = client.connected_url.netloc if client.connected_url else ""
            log.info("bus connected to %s", self.connected_url)
            try:
                await self._pump(client)
            except Exception:  # the publisher must outlive a bad moment; the spool still holds everything
                log.exception("bus publisher failed; reconnecting")
                await self._pause(len(BACKOFF_S))
            finally:
                with contextlib.suppress(Exception):
                    await client.close()

    async def _pump(self, client: Client) -> None:
        js = client.jetstream(timeout=PUBLISH_TIMEOUT_S)
        failures, last_metrics = 0, 0.0
        stream_ready = False
        while True:
            if time.monotonic() - last_metrics >= METRICS_EVERY_S:
                last_metrics = time.monotonic()
                self._update_metrics()
                if self.metrics_file:
                    self.metrics.write(self.metrics_file)
            bodies, position = self.spool.read(self.batch)
            if not bodies:
                if self._stopping:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.5)
                continue
            try:
                if not stream_ready:
                    await ensure_stream(client, js)
                    stream_ready = True
                acks = await asyncio.gather(*(
                    js.publish(self.subject, body, headers={"Nats-Msg-Id": message_id(body)}) for body in bodies
                ))  # fmt: skip
            except Exception as exc:  # timeouts while a server is down or a leader is elected: retried
                self.metrics.publish_errors.inc()
                if failures == 0:
                    log.warning("bus publish failed (%s: %s); retrying from the spool", type(exc).__name__, exc)
                if self._stopping:
                    return
                await self._pause(failures)
                failures += 1
                continue
            if failures:
                log.info("bus publishing again after %d failed attempt(s)", failures)
            failures = 0
            self.spool.commit(position)
            duplicates = sum(1 for ack in acks if ack.duplicate)
            self.metrics.duplicates.inc(duplicates)
            self.metrics.published.inc(len(acks) - duplicates)
            self.connected_url = client.connected_url.netloc if client.connected_url else ""

    async def _pause(self, attempt: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested(), BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])

    async def _stop_requested(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._wake.wait()

    def _update_metrics(self) -> None:
        self.metrics.spool_pending.set(self.spool.pending)
        self.metrics.spool_dropped.set(self.spool.dropped)
