"""The HTTP input: a FastAPI app taking what Falco's `http_output` posts (one JSON alert per request) and
what Falcosidekick's webhook output forwards (the same alert plus `uuid`, custom fields and tags), or
JSON lines of any adapter.

Every request is authenticated with the API's bearer tokens (sinks/api/auth.py; an `admin` token may post,
a `read` token only read /metrics), bounded in bytes and in lines (413), and rate-limited per token in lines
a second (429 with Retry-After). The body is parsed at once and its events queued for the analysis with
back-pressure: a full queue answers 503 with Retry-After instead of holding the request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from bindrift.sinks.api.auth import Principal, TokenSet

MAX_BODY = 4 << 20
MAX_LINES = 5000
RATE = 20_000.0  # lines a second per token

# Takes one request's lines; returns (HTTP status, JSON answer). Runs in a worker thread.
Consumer = Callable[[list[bytes]], tuple[int, dict[str, object]]]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per request: bytes and lines; per token: lines a second, with bursts of `burst` lines."""

    max_body: int = MAX_BODY
    max_lines: int = MAX_LINES
    rate: float = RATE
    burst: float = 2 * RATE


class TokenBucket:
    """Lines a second for one token. Hand-written: pyrate-limiter (the library at hand) answers only yes or no
    to a non-blocking acquire, and Retry-After needs the wait, which a bucket gives by one division."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.level, self.at = burst, time.monotonic()

    def take(self, cost: float) -> float:
        """0 when `cost` lines may pass now (and takes them), else the seconds until they may."""
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        if cost <= self.level:
            self.level -= cost
            return 0.0
        return (cost - self.level) / self.rate


def split_body(body: bytes) -> list[bytes]:
    """One JSON document, or JSON lines."""
    stripped = body.strip()
    if not stripped:
        return []
    if b"\n" not in stripped:
        return [stripped]
    return [line for line in stripped.split(b"\n") if line.strip()]


def _refused(status: int, error: str, retry_after: float = 0.0) -> JSONResponse:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="bindrift ingest"'
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def make_app(consume: Consumer, tokens: TokenSet, limits: Limits, metrics: Callable[[], bytes]) -> FastAPI:
    """The app; `consume` runs in a worker thread, `metrics` renders the Prometheus text."""
    app = FastAPI(title="bindrift ingest", docs_url=None, redoc_url=None, openapi_url=None)
    buckets: dict[str, TokenBucket] = {}  # per principal; touched only on the event loop's thread

    def principal(request: Request) -> Principal | JSONResponse:
        who = tokens.authenticate(request.headers.get("authorization"))
        return who if who is not None else _refused(401, "a valid bearer token is required")

    @app.post("/")
    async def ingest(request: Request) -> Response:
        who = principal(request)
        if isinstance(who, JSONResponse):
            return who
        if who.role != "admin":
            return _refused(403, f"{who.role} tokens may not post events")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_body:
            return _refused(413, f"body over {limits.max_body} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_body:
                return _refused(413, f"body over {limits.max_body} bytes")
        lines = split_body(bytes(body))
        if len(lines) > limits.max_lines:
            return _refused(413, f"{len(lines)} lines: over {limits.max_lines} a request")
        bucket = buckets.get(who.name)
        if bucket is None:
            bucket = buckets[who.name] = TokenBucket(limits.rate, limits.burst)
        wait = bucket.take(max(1, len(lines)))
        if wait:
            return _refused(429, f"over {limits.rate:g} lines a second for {who.name}", wait)
        status, answer = await run_in_threadpool(consume, lines)
        headers = {"Retry-After": str(answer.pop("retry_after"))} if "retry_after" in answer else {}
        return JSONResponse(answer, status_code=status, headers=headers)

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        who = principal(request)
        if isinstance(who, JSONResponse):
            return who
        return Response(metrics(), media_type="text/plain; version=0.0.4")

    return app
