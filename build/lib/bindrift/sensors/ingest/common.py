"""What every input adapter shares: the rejection it raises on a malformed line, its counters, and the
normalisation of times, container ids and the tools' awkward values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from bindrift.schema.external_event import ExternalEvent

MAX_LINE = 1 << 20  # longer lines are rejected (no tool writes an exec or write event this large)
U64 = 1 << 64
MIN_ID = 12
_FRACTION = re.compile(r"\.(\d+)")
_HEX = re.compile(r"[0-9a-f]+")
_RUNTIME_PREFIX = re.compile(r"^[a-z0-9-]+://")


class MalformedEventError(ValueError):
    """A line that cannot be read as the tool's event (counted and logged by the reader, never fatal)."""


class Adapter(Protocol):
    """One tool's parser: lines in, normalised exec and write events out (others are filtered)."""

    stats: IngestStats

    def feed(self, line: bytes) -> list[ExternalEvent]:
        """The events completed by `line`; raises MalformedEventError when it is malformed."""
        ...

    def flush(self) -> list[ExternalEvent]:
        """Events still pending at the end of the input (auditd groups records)."""
        ...


@dataclass(slots=True)
class IngestStats:
    """Counters of one ingest run."""

    lines: int = 0
    kept: int = 0
    rejected: int = 0


def rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch for an RFC 3339 / ISO 8601 time with up to 9 fractional digits."""
    match = _FRACTION.search(text)
    fraction = 0
    if match is not None:
        digits = match.group(1)[:9]
        fraction = int(digits.ljust(9, "0"))
        text = text[: match.start()] + text[match.end() :]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise MalformedEventError(f"bad time {text!r}") from exc
    if moment.tzinfo is None:
        raise MalformedEventError(f"time without a zone {text!r}")
    return int(moment.timestamp()) * 1_000_000_000 + fraction


def signed64(value: int) -> int:
    """A negative duration that the tool wrapped to an unsigned 64-bit number, turned back (Falco)."""
    return value - U64 if value >= 1 << 63 else value


@lru_cache(maxsize=4096)
def container_id(raw: str | None) -> str:
    """Lower-case hex without a runtime prefix (`containerd://`, `docker://`, `cri-o://`); '' for the host
    or a value that is not a container id (fewer than 12 hex digits could match the wrong container)."""
    if not raw or raw == "host":
        return ""
    value = _RUNTIME_PREFIX.sub("", raw.strip()).lower()
    return value if len(value) >= MIN_ID and _HEX.fullmatch(value) else ""


def text(value: object) -> str:
    """A string field, with Falco's `<NA>` and JSON null as ''."""
    return value if isinstance(value, str) and value != "<NA>" else ""


def number(value: object, default: int = 0) -> int:
    """An integer field given as a number or, as protojson writes uint64s, a decimal string."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 10)
        except ValueError:
            return default
    return default
