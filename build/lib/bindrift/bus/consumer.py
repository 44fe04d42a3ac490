"""The central side of the bus: workers share one durable pull consumer (one consumer group), take batches,
hand each detection to the findings pipeline and acknowledge it only after the store committed it. A worker
killed mid-batch leaves its messages unacknowledged: JetStream redelivers them after `ack_wait` to another
worker, and the store, which recorded each message id with its finding, counts none of them twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec

from bindrift.bus.metrics import BusMetrics
from bindrift.bus.stream import MAX_MESSAGE, STREAM, SUBJECTS, connect, ensure_stream, message_id
from bindrift.schema.finding import Detection

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

log = logging.getLogger(__name__)
DURABLE = "bindrift-workers"
BUSY_FETCH_S = 0.02
Outcome = Literal["stored", "rejected", "failed"]
# handle(detection, message id) stores the finding; a message id stored before changes nothing.
Handler = Callable[[Detection, str], None]
_decoder = msgspec.json.Decoder(Detection)


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    """How a worker takes messages. `max_ack_pending` bounds the messages out at all workers together (the
    back-pressure on the stream); `ack_wait` is how long a silent worker keeps its messages."""

    batch: int = 64
    ack_wait_s: float = 30.0
    max_ack_pending: int = 1024
    durable: str = DURABLE


class BusConsumer:
    """Runs until `stop` is set; `counts` says what became of every message this worker took."""

    def __init__(self, servers: list[str], handle: Handler, settings: ConsumerSettings | None = None,
                 metrics: BusMetrics | None = None) -> None:  # fmt: skip
        self.servers, self.handle = servers, handle
        self.settings = settings or ConsumerSettings()
        self.metrics = metrics or BusMetrics()
        self.counts: dict[str, int] = {"stored": 0, "rejected": 0, "failed": 0, "redelivered": 0}

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                client = await _unless_stopped(connect(self.servers, "bindrift-worker", self.metrics), stop)
                if client is None:
                    return  # stopped while the bus was unreachable (the connect retries forever)
            except Exception as exc:
                self.metrics.connection.labels("connect_failed").inc()
                if attempt == 0:
                    log.warning("bus unreachable (%s); retrying", exc)
                attempt += 1
                await _sleep(stop, min(0.2 * attempt, 2.0))
                continue
            attempt = 0
            try:
                await self._consume(client, stop)
            except Exception:  # the worker must outlive a bad moment; unacknowledged messages come back
                log.exception("bus consumer failed; reconnecting")
                await _sleep(stop, 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await client.close()

    async def _consume(self, client: Client, stop: asyncio.Event) -> None:
        from nats.errors import TimeoutError as NatsTimeout

        js = client.jetstream(timeout=5)
        subscription = await self._subscribe(client, js, stop)
        log.info("bus worker consuming %s as %s", STREAM, self.settings.durable)
        idle = True
        while not stop.is_set():
            try:
                # Idle, wait for one message (a fetch of N waits for all N or its timeout); busy, take what is there.
                if idle:
                    messages = await subscription.fetch(1, timeout=1.0)
                else:
                    messages = await subscription.fetch(self.settings.batch, timeout=BUSY_FETCH_S)
            except (NatsTimeout, TimeoutError):
                idle = True
                continue
            except Exception as exc:  # a server went away, a leader is being elected: fetch again
                log.warning("bus fetch failed (%s: %s)", type(exc).__name__, exc)
                await _sleep(stop, 0.5)
                continue
            idle = False
            for message in messages:
                await self._finish(message, await asyncio.to_thread(self._process, message))

    async def _subscribe(
        self, client: Client, js: JetStreamContext, stop: asyncio.Event
    ) -> JetStreamContext.PullSubscription:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            durable_name=self.settings.durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait_s, max_ack_pending=self.settings.max_ack_pending,
            max_waiting=512, filter_subject=SUBJECTS,
        )  # fmt: skip
        attempt = 0
        while True:
            try:
                await ensure_stream(client, js)
                return await js.pull_subscribe(SUBJECTS, durable=self.settings.durable, stream=STREAM, config=config)
            except Exception as exc:  # JetStream not ready yet (cluster forming, leader election)
                if stop.is_set():
                    raise
                if attempt == 0:
                    log.warning("bus stream not ready (%s: %s); retrying", type(exc).__name__, exc)
                attempt += 1
                await _sleep(stop, min(0.2 * attempt, 2.0))

    def _process(self, message: Msg) -> Outcome:
        """Decode and store one message (in a worker thread: the store is synchronous)."""
        data = message.data
        if len(data) > MAX_MESSAGE:
            log.warning("bus message of %d bytes rejected (over %d)", len(data), MAX_MESSAGE)
            return "rejected"
        try:
            detection = _decoder.decode(data)
        except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
            log.warning("bus message rejected: %s (%r…)", exc, data[:80])
            return "rejected"
        try:
            self.handle(detection, message_id(data))
            return "stored"
        except Exception:  # the store is down or refused: negative-ack, the message comes back
            log.exception("storing the finding of bus message %s failed", message_id(data))
            return "failed"

    async def _finish(self, message: Msg, outcome: Outcome) -> None:
        self.counts[outcome] += 1
        self.metrics.consumed.labels(outcome).inc()
        with contextlib.suppress(Exception):
            if message.metadata.num_delivered > 1:
                self.counts["redelivered"] += 1
                self.metrics.redelivered.inc()
        try:
            if outcome == "rejected":
                await message.term()
            elif outcome == "failed":
                await message.nak(delay=1.0)
            else:
                await message.ack()
        except Exception as exc:  # the ack is lost with the connection: the message is redelivered, stored once
            log.warning("bus ack failed (%s: %s)", type(exc).__name__, exc)


async def _unless_stopped(pending: Coroutine[object, object, Client], stop: asyncio.Event) -> Client | None:
    """What `pending` gives, or None (and it is cancelled) when `stop` is set first."""
    task = asyncio.ensure_future(pending)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
