"""Feeding an adapter: bounded lines from a file or stdin, each counted; a malformed line is logged and
counted, never fatal."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from bindrift.schema.external_event import ExternalEvent, Tool
from bindrift.sensors.ingest.common import MAX_LINE, Adapter, MalformedEventError
from bindrift.sensors.ingest.sniff import check_format

log = logging.getLogger(__name__)
LOG_FIRST_REJECTIONS = 20
LOG_REJECTIONS_EVERY = 1000
CHUNK = 1 << 16


def make_adapter(tool: Tool) -> Adapter:
    """The parser for `tool`."""
    if tool == "falco":
        from bindrift.sensors.ingest.falco import FalcoAdapter

        return FalcoAdapter()
    if tool == "tetragon":
        from bindrift.sensors.ingest.tetragon import TetragonAdapter

        return TetragonAdapter()
    if tool == "tracee":
        from bindrift.sensors.ingest.tracee import TraceeAdapter

        return TraceeAdapter()
    from bindrift.sensors.ingest.auditd import AuditdAdapter

    return AuditdAdapter()


def feed_lines(adapter: Adapter, lines: Iterable[bytes], *, check: bool = False) -> list[ExternalEvent]:
    """The events these lines complete; blank lines are skipped, over-long and malformed ones counted and
    logged. One loop for many lines: at 500,000 lines a second the per-line calls are most of the cost.
    The input's first line (or, with `check`, these lines' first) must not be plainly another tool's output
    (WrongFormatError)."""
    stats, feed = adapter.stats, adapter.feed
    events: list[ExternalEvent] = []
    first = check or stats.lines == 0
    for line in lines:
        if not line or line.isspace():
            continue
        if first:
            check_format(adapter.tool, line)
            first = False
        if len(line) > MAX_LINE and len(line.rstrip(b"\r\n")) > MAX_LINE:
            _rejected(adapter, f"line longer than {MAX_LINE} bytes", "", count=True)
            continue
        stats.lines += 1
        try:
            events += feed(line)
        except MalformedEventError as exc:
            _rejected(adapter, exc.reason, str(exc))
        except Exception as exc:  # a parser bug on one hostile line must not stop the input
            log.debug("parser failure", exc_info=True)
            _rejected(adapter, "parser failure", repr(exc))
    stats.kept += len(events)
    if not adapter.grouped:
        stats.kept_lines += len(events)
    return events


def finish(adapter: Adapter) -> list[ExternalEvent]:
    """Events still pending at the end of the input."""
    events = adapter.flush()
    adapter.stats.kept += len(events)
    if not adapter.grouped:
        adapter.stats.kept_lines += len(events)
    return events


def _rejected(adapter: Adapter, reason: str, detail: str, *, count: bool = False) -> None:
    """Counts a rejection (and the line itself when `count`), logging the first ones and then a sample."""
    stats = adapter.stats
    stats.lines += count
    stats.reject(reason)
    if stats.rejected <= LOG_FIRST_REJECTIONS or stats.rejected % LOG_REJECTIONS_EVERY == 0:
        log.warning("line %d rejected (%d so far): %s", stats.lines, stats.rejected, ascii((detail or reason)[:300]))


def read_events(stream: BinaryIO, adapter: Adapter) -> Iterator[ExternalEvent]:
    """Every exec and write event in `stream`; lines over MAX_LINE bytes are rejected and skipped. Reads what
    is available (`read1`), so the lines of a live pipe are handled as they come."""
    read = getattr(stream, "read1", stream.read)
    tail = b""
    skipping = False  # inside a rejected over-long line, up to its newline
    while chunk := read(CHUNK):
        if skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                continue
            chunk, skipping = chunk[newline + 1 :], False
        data = tail + chunk if tail else chunk
        # BytesIO finds newlines with memchr (bytes.split scans byte by byte, 6x slower); all the chunk's lines
        # at once, the last one kept for the next chunk when its newline is still to come (no copy of the rest)
        lines = io.BytesIO(data).readlines()
        tail = lines.pop() if not lines[-1].endswith(b"\n") else b""
        if lines:
            yield from feed_lines(adapter, lines)
        if len(tail) > MAX_LINE:
            _rejected(adapter, f"line longer than {MAX_LINE} bytes", "", count=True)
            tail, skipping = b"", True
    yield from feed_lines(adapter, [tail])  # the last line, without its newline
    yield from finish(adapter)
