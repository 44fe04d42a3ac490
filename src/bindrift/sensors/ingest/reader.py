"""Feeding an adapter: bounded lines from a file or stdin, each counted; a malformed line is logged and
counted, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import BinaryIO

from bindrift.schema.external_event import ExternalEvent, Tool
from bindrift.sensors.ingest.common import MAX_LINE, Adapter, MalformedEventError

log = logging.getLogger(__name__)
LOG_FIRST_REJECTIONS = 20
LOG_REJECTIONS_EVERY = 1000


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


def feed_line(adapter: Adapter, line: bytes) -> list[ExternalEvent]:
    """The events one line completes; blank lines are skipped, malformed ones counted and logged."""
    if not line or line.isspace():
        return []
    stats = adapter.stats
    stats.lines += 1
    try:
        events = adapter.feed(line)
    except MalformedEventError as exc:
        _rejected(adapter, str(exc))
        return []
    except Exception as exc:  # a parser bug on one hostile line must not stop the input
        log.debug("parser failure", exc_info=True)
        _rejected(adapter, f"parser failure: {exc!r}")
        return []
    stats.kept += len(events)
    return events


def finish(adapter: Adapter) -> list[ExternalEvent]:
    """Events still pending at the end of the input."""
    events = adapter.flush()
    adapter.stats.kept += len(events)
    return events


def _rejected(adapter: Adapter, reason: str) -> None:
    stats = adapter.stats
    stats.rejected += 1
    if stats.rejected <= LOG_FIRST_REJECTIONS or stats.rejected % LOG_REJECTIONS_EVERY == 0:
        log.warning("line %d rejected (%d so far): %s", stats.lines, stats.rejected, ascii(reason[:300]))


def read_events(stream: BinaryIO, adapter: Adapter) -> Iterator[ExternalEvent]:
    """Every exec and write event in `stream`; lines over MAX_LINE bytes are rejected and skipped."""
    while line := stream.readline(MAX_LINE + 1):
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            adapter.stats.lines += 1
            _rejected(adapter, f"line longer than {MAX_LINE} bytes")
            continue
        yield from feed_line(adapter, line)
    yield from finish(adapter)
