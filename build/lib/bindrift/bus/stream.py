"""The JetStream stream both sides agree on: its name, subjects, limits, and the id of each message."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bindrift.bus.metrics import BusMetrics

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

log = logging.getLogger(__name__)
STREAM = "BINDRIFT"
SUBJECT_PREFIX = "bindrift.detections"
SUBJECTS = f"{SUBJECT_PREFIX}.>"
MAX_MESSAGE = 1 << 20
DUPLICATE_WINDOW_S = 600.0
MAX_AGE_S = 7 * 86400.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def parse_servers(text: str) -> list[str]:
    """`nats://a:4222,nats://b:4222` → the list; a bare `host:port` gets the nats:// scheme."""
    servers = [part.strip() for part in text.split(",") if part.strip()]
    if not servers:
        raise ValueError("--bus wants one or more NATS URLs, e.g. nats://127.0.0.1:4222")
    return [server if "://" in server else f"nats://{server}" for server in servers]


def subject_for(node: str) -> str:
    """The subject a node publishes on: one token, whatever the node name holds."""
    return f"{SUBJECT_PREFIX}.{_UNSAFE.sub('_', node)[:128] or '_'}"


def message_id(body: bytes) -> str:
    """The deterministic id of an encoded detection: JetStream deduplicates republishes by it (Nats-Msg-Id),
    and the store records it with the finding so a redelivery is never counted twice."""
    return hashlib.sha256(body).hexdigest()[:32]


async def connect(servers: list[str], name: str, metrics: BusMetrics) -> Client:
    """A connection that reconnects forever (the first connect too); disconnects, reconnects and errors are
    counted, and logged: the first error after each good moment, not every retry."""
    import nats

    quiet = False

    async def on_error(exc: Exception) -> None:
        nonlocal quiet
        metrics.connection.labels("error").inc()
        if not quiet:
            log.warning("bus %s: %s: %s (retrying; detections wait in the spool)", name, type(exc).__name__, exc)
            quiet = True

    def reporter(kind: str) -> Callable[[], Awaitable[None]]:
        async def report() -> None:
            nonlocal quiet
            metrics.connection.labels(kind).inc()
            log.warning("bus %s %s", name, kind)
            quiet = kind == "disconnected" and quiet

        return report

    return await nats.connect(
        servers=servers, name=name, connect_timeout=2, reconnect_time_wait=0.5, max_reconnect_attempts=-1,
        ping_interval=5, max_outstanding_pings=2, disconnected_cb=reporter("disconnected"),
        reconnected_cb=reporter("reconnected"), error_cb=on_error,
    )  # fmt: skip


async def ensure_stream(client: Client, js: JetStreamContext) -> None:
    """Create the stream if it is missing: file storage, replicated on up to three servers of the cluster."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(STREAM)
        return
    except NotFoundError:
        pass
    replicas = min(3, max(1, len(client.servers)))
    await js.add_stream(StreamConfig(
        name=STREAM, subjects=[SUBJECTS], storage=StorageType.FILE, num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_S, max_age=MAX_AGE_S, max_msg_size=MAX_MESSAGE,
    ))  # fmt: skip
