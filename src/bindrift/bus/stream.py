"""The JetStream stream both sides agree on: its name, subjects, limits, and the id of each message."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

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


async def connect(servers: list[str], name: str, on_event: Callable[[str], None]) -> Client:
    """A connection that reconnects forever; disconnects, reconnects and errors go to `on_event`."""
    import nats

    def callback(kind: str) -> Callable[..., Awaitable[None]]:
        async def report(*_args: Any) -> None:
            on_event(kind)

        return report

    return await nats.connect(
        servers=servers, name=name, connect_timeout=2, reconnect_time_wait=0.5, max_reconnect_attempts=-1,
        ping_interval=5, max_outstanding_pings=2, disconnected_cb=callback("disconnected"),
        reconnected_cb=callback("reconnected"), error_cb=callback("error"),
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
