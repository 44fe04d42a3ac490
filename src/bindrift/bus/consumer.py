"""The central side of the bus: workers share one durable pull consumer (one consumer group), take batches
(bounded by size, and by time once the first message is in), hand each batch to the findings stage, which stores
it in one transaction, and acknowledge its messages only after that committed. A worker killed mid-batch leaves
its messages unacknowledged: JetStream redelivers them after `ack_wait` to another worker, and the store, which
recorded each message id with its finding, counts none of them twice.

A batch the store refuses is split in halves until what still fails stands alone (the rest is stored); such a
message is negatively acknowledged, and once it has been delivered `max_deliveries` times it is set aside as a
dead letter with its reason (and acknowledged), so one poison message cannot stop a worker. A failure the
handler calls transient (the database unreachable) is never a reason to set a message aside."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

import msgspec

from bindrift.bus.metrics import BusMetrics
from bindrift.bus.stream import MAX_MESSAGE, STREAM, SUBJECTS, connect, ensure_stream, message_id
from bindrift.findings.dead_letter import describe, store_bisected
from bindrift.schema.finding import Detection

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

log = logging.getLogger(__name__)
DURABLE = "bindrift-workers"
NAK_DELAY_S = 1.0
DRAIN_POLL_S = 0.002  # how often a batch still filling looks at its queue
NO_WAIT_S = 1.0  # the most a batch without linger waits for the server's answer
Outcome = Literal["stored", "rejected", "failed", "dead_lettered"]
_decoder = msgspec.json.Decoder(Detection)


class Handler(Protocol):
    """The findings stage as the consumer sees it."""

    def handle(self, detections: list[Detection], message_ids: list[str]) -> None:
        """Store their findings in one transaction; a message id stored before changes nothing."""

    def set_aside(self, detection: Detection, body: bytes, message_id: str, error: str, deliveries: int) -> None:
        """Keep a message that cannot be stored as a dead letter, with its reason (the same one again: no change)."""

    def transient(self, exc: Exception) -> bool:
        """Whether `exc` says the store is unreachable rather than that it refused these detections."""


class _Taken(NamedTuple):
    position: int
    detection: Detection
    message_id: str
    message: Msg


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    """How a worker takes messages: up to `batch` at a time, waiting at most `linger_s` after the first for the
    rest (the latency a batch adds to a lone detection). `max_ack_pending` bounds the messages out at all workers
    together (the back-pressure on the stream); `ack_wait` is how long a silent worker keeps its messages. A
    message the store refuses `max_deliveries` times is set aside as a dead letter."""

    batch: int = 256
    linger_s: float = 0.05
    ack_wait_s: float = 30.0
    max_ack_pending: int = 1024
    durable: str = DURABLE
    max_deliveries: int = 5


class BusConsumer:
    """Runs until `stop` is set; `counts` says what became of every message this worker took."""

    def __init__(self, servers: list[str], handler: Handler, settings: ConsumerSettings | None = None,
                 metrics: BusMetrics | None = None) -> None:  # fmt: skip
        self.servers, self.handler = servers, handler
        self.settings = settings or ConsumerSettings()
        self.metrics = metrics or BusMetrics()
        self.counts: dict[str, int] = {"stored": 0, "rejected": 0, "failed": 0, "dead_lettered": 0, "redelivered": 0}

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
        # The next batch is fetched while the previous one is stored (one store at a time, in order); a batch is
        # acknowledged as soon as its store commits, whatever the fetch is waiting for.
        storing: asyncio.Future[None] | None = None
        try:
            while not stop.is_set():
                try:
                    messages = await self._take(client, subscription)
                except (NatsTimeout, TimeoutError):
                    continue
                except Exception as exc:  # a server went away, a leader is being elected: fetch again
                    log.warning("bus fetch failed (%s: %s)", type(exc).__name__, exc)
                    await _sleep(stop, 0.5)
                    continue
                if storing is not None:
                    await storing
                storing = asyncio.ensure_future(self._store(messages))
        finally:
            if storing is not None:
                await storing

    async def _store(self, messages: list[Msg]) -> None:
        await self._finish(messages, await asyncio.to_thread(self._process, messages))

    async def _take(self, client: Client, subscription: JetStreamContext.PullSubscription) -> list[Msg]:
        """A batch: what is there (waiting up to a second for the first message), then more until the batch is
        full or `linger_s` has passed. The first message comes through nats-py's fetch; the rest through one
        pull request of our own, expiring after `linger_s`, drained from the subscription's queue as the messages
        arrive (nats-py's fetch awaits each message in tasks of its own: most of a worker's bus CPU). What
        arrives after the batch is done stays queued for the next fetch."""
        from nats.js import JetStreamContext

        batch, linger = self.settings.batch, self.settings.linger_s
        messages = await subscription.fetch(1, timeout=1.0)
        if len(messages) >= batch:
            return messages
        inbox = subscription._sub
        # Without a linger: what is there now (the server answers at once, ending with a 404 when that is less).
        request: dict[str, int | bool] = {"batch": batch - len(messages), "expires": int(linger * 1e9)}
        if linger < 0.001:
            request, linger = {"batch": batch - len(messages), "no_wait": True}, NO_WAIT_S
        await client.publish(subscription._nms, json.dumps(request).encode(), reply=subscription._deliver)
        deadline = time.monotonic() + linger
        while True:
            while len(messages) < batch and not inbox._pending_queue.empty():
                message = inbox._pending_queue.get_nowait()
                inbox._pending_size -= len(message.data)
                status = JetStreamContext.is_status_msg(message)
                if status is None:
                    messages.append(message)
                elif status != "100":  # 404 nothing more, 408 expired, 409: the request is over (100: heartbeat)
                    return messages
            left = deadline - time.monotonic()
            if len(messages) >= batch or left <= 0:
                return messages
            await asyncio.sleep(min(left, DRAIN_POLL_S))

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

    def _process(self, messages: list[Msg]) -> list[Outcome]:
        """Decode and store a batch (in a worker thread: the store is synchronous), halving what the store
        refuses; a message refused alone is set aside once it has been delivered `max_deliveries` times."""
        outcomes: list[Outcome] = ["rejected"] * len(messages)
        taken: list[_Taken] = []
        for index, message in enumerate(messages):
            detection = _decode(message.data)
            if detection is not None:
                outcomes[index] = "stored"
                taken.append(_Taken(index, detection, message_id(message.data), message))
        if not taken:
            return outcomes

        def store(part: Sequence[_Taken]) -> None:
            self.handler.handle([t.detection for t in part], [t.message_id for t in part])

        failed = store_bisected(taken, store, whole=self.handler.transient)
        unreachable = [exc for _, exc in failed if self.handler.transient(exc)]
        if unreachable:  # once a batch, not once a message
            log.warning("the store is unreachable (%s); %d message(s) come back", describe(unreachable[0]),
                        len(unreachable))  # fmt: skip
        elif failed:
            log.warning("the store refused %d of a batch of %d findings; the rest is stored", len(failed), len(taken))
        for item, exc in failed:
            outcomes[item.position] = "failed" if self.handler.transient(exc) else self._refused(item, exc)
        return outcomes

    def _refused(self, item: _Taken, exc: Exception) -> Outcome:
        """What becomes of a message the store refused (not for want of a connection): retried later, or set aside
        as a dead letter."""
        deliveries = _deliveries(item.message)
        if deliveries < self.settings.max_deliveries:
            log.warning("storing the finding of bus message %s failed (delivery %d of %d): %s", item.message_id,
                        deliveries, self.settings.max_deliveries, describe(exc))  # fmt: skip
            return "failed"
        try:
            self.handler.set_aside(item.detection, item.message.data, item.message_id, describe(exc), deliveries)
        except Exception:
            log.exception("bus message %s could not be set aside; it comes back", item.message_id)
            return "failed"
        return "dead_lettered"

    async def _finish(self, messages: list[Msg], outcomes: list[Outcome]) -> None:
        """Acknowledge what was stored, terminate what was rejected or set aside, negative-ack what failed; count
        them."""
        redelivered = 0
        for message, outcome in zip(messages, outcomes, strict=True):
            redelivered += _deliveries(message) > 1
            try:
                if outcome in ("rejected", "dead_lettered"):
                    await message.term()
                elif outcome == "failed":
                    await message.nak(delay=NAK_DELAY_S)
                else:
                    await message.ack()
            except Exception as exc:  # the ack is lost with the connection: the message is redelivered, stored once
                log.warning("bus ack failed (%s: %s)", type(exc).__name__, exc)
        for outcome, count in Counter(outcomes).items():
            self.counts[outcome] += count
            self.metrics.consumed.labels(outcome).inc(count)
        self.counts["redelivered"] += redelivered
        self.metrics.redelivered.inc(redelivered)


def _deliveries(message: Msg) -> int:
    """How many times JetStream has delivered `message` (this time included)."""
    try:
        return int(message.metadata.num_delivered)
    except Exception:  # not a JetStream message: delivered once, as far as is known
        return 1


def _decode(data: bytes) -> Detection | None:
    """The detection of a message, or None (logged) when it is too large or not one."""
    if len(data) > MAX_MESSAGE:
        log.warning("bus message of %d bytes rejected (over %d)", len(data), MAX_MESSAGE)
        return None
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        log.warning("bus message rejected: %s (%r…)", exc, data[:80])
        return None


async def _unless_stopped(pending: Coroutine[object, object, Client], stop: asyncio.Event) -> Client | None:
    """What `pending` gives, or None (and it is cancelled) when `stop` is set first."""
    task = asyncio.ensure_future(pending)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()  # nats-py's first-connect retry loop may swallow the cancellation: not waited on for long
    await asyncio.wait({task}, timeout=1.0)
    return None


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
