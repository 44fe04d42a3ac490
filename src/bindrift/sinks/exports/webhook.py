"""Webhook delivery through the store's outbox: findings are queued in the transaction that stores them,
and `drain()` POSTs them with retries and exponential backoff, so a restart loses nothing."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)
SINK = "webhook"


class Outbox(Protocol):
    """The store's outbox operations."""

    def pending(self, sink: str, limit: int = 100) -> list[tuple[int, bytes, int]]: ...

    def delivered(self, outbox_id: int) -> None: ...

    def attempted(self, outbox_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What one drain did."""

    sent: int
    failed: int


class WebhookSender:
    """POSTs queued findings as JSON to `url`; failed messages stay queued for the next drain."""

    def __init__(
        self, outbox: Outbox, url: str, *, retries: int = 3, backoff_s: float = 0.5, timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # urllib would also take file:, ftp: or data: URLs, and fail on each delivery on anything else
            raise ValueError(f"webhook URL must be http:// or https:// with a host, not {url!r}")
        self.outbox = outbox
        self.url = url
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json", "User-Agent": "bindrift", **(headers or {})}

    def drain(self, limit: int = 100) -> DrainResult:
        """Deliver up to `limit` queued findings in order; stop at the first one that still fails."""
        sent = 0
        for outbox_id, payload, _attempts in self.outbox.pending(SINK, limit):
            if not self._post_with_retries(outbox_id, payload):
                return DrainResult(sent, 1)
            self.outbox.delivered(outbox_id)
            sent += 1
        return DrainResult(sent, 0)

    def _post_with_retries(self, outbox_id: int, payload: bytes) -> bool:
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                request = urllib.request.Request(self.url, data=payload, headers=self.headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if 200 <= response.status < 300:
                        return True
            except (urllib.error.URLError, OSError) as exc:
                log.warning("webhook delivery %d failed (attempt %d): %s", outbox_id, attempt + 1, exc)
            self.outbox.attempted(outbox_id)
        return False
