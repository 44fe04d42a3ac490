"""The HTTP input: a FastAPI app taking what Falco's `http_output` posts (one JSON alert per request) and
what Falcosidekick's webhook output forwards (the same alert plus `uuid`, custom fields and tags), or
JSON lines of any adapter. Bodies are bounded; a malformed one is counted and answered 400."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

MAX_BODY = 4 << 20

# Takes one request body's lines; returns (events kept, lines rejected).
Consumer = Callable[[list[bytes]], tuple[int, int]]


def split_body(body: bytes) -> list[bytes]:
    """One JSON document, or JSON lines."""
    stripped = body.strip()
    if not stripped:
        return []
    if b"\n" not in stripped:
        return [stripped]
    return [line for line in stripped.split(b"\n") if line.strip()]


def make_app(consume: Consumer) -> FastAPI:
    """The app; `consume` runs in a worker thread (it may analyse files and write the store)."""
    app = FastAPI(title="bindrift ingest", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/")
    async def ingest(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, status_code=413)
        lines = split_body(bytes(body))
        kept, rejected = await run_in_threadpool(consume, lines)
        status = 400 if not lines or (rejected and rejected == len(lines)) else 200
        return JSONResponse({"kept": kept, "rejected": rejected}, status_code=status)

    return app
