"""What every input adapter shares: the rejection it raises on a malformed line, its counters, and the
normalisation of times, container ids and the tools' awkward values."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Protocol, TypeVar

from bindrift.schema.external_event import ExternalEvent, Tool

MAX_LINE = 1 << 20  # longer lines are rejected (no tool writes an exec or write event this large)
U64 = 1 << 64
MIN_ID = 12
_FRACTION = re.compile(r"\.(\d+)")
MAX_CACHED_SECONDS = 4096
_SECONDS: dict[str, int] = {}  # `YYYY-MM-DDTHH:MM:SS` (UTC) → seconds since the epoch, for the fast path
# nanoseconds of a fraction's last digit, by the fraction's length
_FRACTION_SCALE: tuple[int, ...] = tuple(10 ** (9 - digits) for digits in range(10))
_RFC3339_UTC = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?[Zz]")
_HEX = re.compile(r"[0-9a-f]+")
_RUNTIME_PREFIX = re.compile(r"^[a-z0-9-]+://")


MAX_KINDS = 64  # distinct ignored kinds and rejection reasons counted by name; the rest as "other"


class MalformedEventError(ValueError):
    """A line that cannot be read as the tool's event (counted and logged by the reader, never fatal).
    `reason` is a short fixed text (counted, a metric label); the message adds the detail (logged)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class WrongFormatError(ValueError):
    """The input is another tool's output (the `--from` is wrong): the run stops, naming the tool."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"this input looks like {found} output, not {expected} (use --from {found})")
        self.expected, self.found = expected, found


class Adapter(Protocol):
    """One tool's parser: lines in, normalised exec and write events out (others are counted as ignored).
    `grouped` adapters (auditd) make one event of several lines and count their kept lines themselves."""

    tool: Tool
    grouped: bool
    stats: IngestStats

    def feed(self, line: bytes) -> list[ExternalEvent]:
        """The events completed by `line`; raises MalformedEventError when it is malformed."""
        ...

    def flush(self) -> list[ExternalEvent]:
        """Events still pending at the end of the input (auditd groups records)."""
        ...


class IngestStats:
    """Counters of one ingest run: every line read is kept (`kept_lines`, giving `kept` events), rejected with a
    reason, or ignored by kind (another event type, an open not for writing, a failed exec…)."""

    __slots__ = ("ignored", "kept", "kept_lines", "lines", "reasons", "rejected")

    def __init__(self) -> None:
        self.lines = self.kept = self.kept_lines = self.rejected = 0
        self.reasons: dict[str, int] = {}
        self.ignored: dict[str, int] = {}

    def __repr__(self) -> str:
        return (f"IngestStats(lines={self.lines}, kept={self.kept}, kept_lines={self.kept_lines}, "
                f"rejected={self.rejected}, reasons={self.reasons}, ignored={self.ignored})")  # fmt: skip

    def ignore(self, kind: str, lines: int = 1) -> None:
        """Counts `lines` ignored as `kind` (the first MAX_KINDS kinds by name, later ones as "other")."""
        ignored = self.ignored
        count = ignored.get(kind)
        if count is not None:
            ignored[kind] = count + lines
        elif len(ignored) < MAX_KINDS:
            ignored[kind] = lines
        else:
            ignored["other"] = ignored.get("other", 0) + lines

    def reject(self, reason: str) -> None:
        """Counts one line rejected for `reason`."""
        reasons = self.reasons
        if reason not in reasons and len(reasons) >= MAX_KINDS:
            reason = "other"
        reasons[reason] = reasons.get(reason, 0) + 1
        self.rejected += 1

    @property
    def ignored_lines(self) -> int:
        return sum(self.ignored.values())


def rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch for an RFC 3339 / ISO 8601 time with up to 9 fractional digits. The usual
    `YYYY-MM-DDTHH:MM:SS[.fraction]Z` takes a fast path: its seconds are cached (a stream's events share them)."""
    if (cached := _SECONDS.get(text[:19])) is not None and text[-1:] in "Zz":
        if text[19:20] == ".":
            digits = text[20:-1]
            if 0 < len(digits) <= 9 and digits.isascii() and digits.isdigit():
                return cached * 1_000_000_000 + int(digits) * _FRACTION_SCALE[len(digits)]
        elif len(text) == 20:
            return cached * 1_000_000_000
    fast = _RFC3339_UTC.fullmatch(text)
    if fast is not None:
        whole, digits = fast.groups()
        seconds = _utc_seconds(whole)
        if len(_SECONDS) >= MAX_CACHED_SECONDS:
            _SECONDS.clear()
        _SECONDS[whole] = seconds
        return seconds * 1_000_000_000 + (int(digits.ljust(9, "0")) if digits else 0)
    match = _FRACTION.search(text)
    fraction = 0
    if match is not None:
        digits = match.group(1)[:9]
        fraction = int(digits.ljust(9, "0"))
        text = text[: match.start()] + text[match.end() :]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise MalformedEventError("bad time", repr(text)) from exc
    if moment.tzinfo is None:
        raise MalformedEventError("time without a zone", repr(text))
    return int(moment.timestamp()) * 1_000_000_000 + fraction


def _utc_seconds(whole: str) -> int:
    try:
        return int(datetime.fromisoformat(whole + "+00:00").timestamp())
    except ValueError as exc:
        raise MalformedEventError("bad time", repr(whole)) from exc


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


K = TypeVar("K", bytes, str)
MAX_LABELS = 256  # counting labels cached per kind of name; the input chooses them, so the cache is bounded


def cached_label(cache: dict[K, str], key: K, make: Callable[[], str]) -> str:
    """The counting label of `key` (an ignored record type, syscall, event name…), made once and kept while
    the cache holds fewer than MAX_LABELS: a node writes a few dozen kinds; a hostile input cannot grow it."""
    label = cache.get(key)
    if label is None:
        label = make()
        if len(cache) < MAX_LABELS:
            cache[key] = label
    return label
